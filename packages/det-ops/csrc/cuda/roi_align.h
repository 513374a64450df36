// Host launchers of the CUDA kernels of RoIAlign (cuda/roi_align.cu).
// Pointers are device memory allocated by the caller; `stream` is a cudaStream_t
// passed as an integer. T is float, double, Float16 or BFloat16
// (common/precision.h); the RoIs and the input gradient are in Compute<T> (float
// for the 16-bit types).
#pragma once

#include <cstdint>

#include "common/precision.h"
#include "common/roi_geometry.h"

namespace det_ops::cuda {

template <typename T>
void roi_align_forward(const T* input, const Compute<T>* rois, const RoIAlignShape& s, T* output,
                       std::uintptr_t stream);

// The same for a channels-last input (memory laid out [B, H, W, C]); output as above.
template <typename T>
void roi_align_forward_nhwc(const T* input, const Compute<T>* rois, const RoIAlignShape& s,
                            T* output, std::uintptr_t stream);

// grad_input must be zero-filled by the caller.
template <typename T>
void roi_align_backward(const T* grad_output, const Compute<T>* rois, const RoIAlignShape& s,
                        Compute<T>* grad_input, std::uintptr_t stream);

// The same into a channels-last grad_input (memory [B, H, W, C], zero-filled by the
// caller); grad_output is [K, C, out_h, out_w] as above.
template <typename T>
void roi_align_backward_nhwc(const T* grad_output, const Compute<T>* rois,
                             const RoIAlignShape& s, Compute<T>* grad_input,
                             std::uintptr_t stream);

}  // namespace det_ops::cuda
