#pragma once

#include <cstdint>

namespace det_ops::cpu {

// Feature map [batch, channels, height, width]; rois [num_rois, 5];
// offset [num_rois, 2, pooled_h, pooled_w] (x, y) or null; mask
// [num_rois, 1, pooled_h, pooled_w] or null; output and grad_output
// [num_rois, channels, pooled_h, pooled_w].
struct DeformRoIPoolShape {
  int64_t batch, channels, height, width, num_rois, pooled_h, pooled_w, sampling_ratio;
  double spatial_scale, gamma;
};

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
