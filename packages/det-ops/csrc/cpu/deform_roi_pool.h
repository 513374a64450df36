#pragma once

#include <cstdint>

#include "common/deform_roi_pool.h"

namespace det_ops::cpu {

template <typename T>
void deform_roi_pool_forward(const T* input, const T* rois, const T* offset, const T* mask,
                             const DeformRoIPoolShape& s, T* output);

// Any of grad_input, grad_offset, grad_mask may be null (not wanted);
// grad_offset needs offset and grad_mask needs mask. grad_input must be
// zero-filled by the caller; grad_offset and grad_mask are overwritten.
template <typename T>
void deform_roi_pool_backward(const T* grad_output, const T* input, const T* rois,
                              const T* offset, const T* mask, const DeformRoIPoolShape& s,
                              T* grad_input, T* grad_offset, T* grad_mask);

}  // namespace det_ops::cpu
