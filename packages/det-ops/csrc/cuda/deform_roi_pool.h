// Host launchers of the CUDA kernels of deformable RoI pooling (cuda/deform_roi_pool.cu).
// Pointers are device memory allocated by the caller; `stream` is a cudaStream_t
// passed as an integer.
#pragma once

#include <cstdint>

#include "common/deform_roi_pool.h"

namespace det_ops::cuda {

template <typename T>
void deform_roi_pool_forward(const T* input, const T* rois, const T* offset, const T* mask,
                             const DeformRoIPoolShape& s, T* output, std::uintptr_t stream);

// The same for a channels-last input (memory laid out [B, H, W, C]); output as above.
template <typename T>
void deform_roi_pool_forward_nhwc(const T* input, const T* rois, const T* offset, const T* mask,
                                  const DeformRoIPoolShape& s, T* output,
                                  std::uintptr_t stream);

// grad_input must be zero-filled by the caller; grad_offset and grad_mask
// (either may be null) are overwritten.
template <typename T>
void deform_roi_pool_backward(const T* grad_output, const T* input, const T* rois,
                              const T* offset, const T* mask, const DeformRoIPoolShape& s,
                              T* grad_input, T* grad_offset, T* grad_mask, std::uintptr_t stream);

// The same for a channels-last input, into a channels-last grad_input (memory
// [B, H, W, C], zero-filled by the caller).
template <typename T>
void deform_roi_pool_backward_nhwc(const T* grad_output, const T* input, const T* rois,
                                   const T* offset, const T* mask, const DeformRoIPoolShape& s,
                                   T* grad_input, T* grad_offset, T* grad_mask,
                                   std::uintptr_t stream);

}  // namespace det_ops::cuda
