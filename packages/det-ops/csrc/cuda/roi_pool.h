// Host launchers of the CUDA kernels of RoIPool (cuda/roi_pool.cu).
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
void roi_pool_forward(const T* input, const Compute<T>* rois, const RoIPoolShape& s, T* output,
                      int32_t* argmax, std::uintptr_t stream);

// The same for a channels-last input (memory laid out [B, H, W, C]); output and
// argmax as above.
template <typename T>
void roi_pool_forward_nhwc(const T* input, const Compute<T>* rois, const RoIPoolShape& s,
                           T* output, int32_t* argmax, std::uintptr_t stream);

// grad_input must be zero-filled by the caller.
template <typename T>
void roi_pool_backward(const T* grad_output, const Compute<T>* rois, const int32_t* argmax,
                       const RoIPoolShape& s, Compute<T>* grad_input, std::uintptr_t stream);

// The same into a channels-last grad_input (memory [B, H, W, C], zero-filled by the
// caller).
template <typename T>
void roi_pool_backward_nhwc(const T* grad_output, const Compute<T>* rois, const int32_t* argmax,
                            const RoIPoolShape& s, Compute<T>* grad_input,
                            std::uintptr_t stream);

}  // namespace det_ops::cuda
