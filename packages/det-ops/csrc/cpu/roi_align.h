#pragma once

#include <cstdint>

namespace det_ops::cpu {

// Feature map [batch, channels, height, width]; rois [num_rois, 5];
// output and grad_output [num_rois, channels, pooled_h, pooled_w].
struct RoIAlignShape {
  int64_t batch, channels, height, width, num_rois, pooled_h, pooled_w, sampling_ratio;
  double spatial_scale;
  bool aligned;
};

template <typename T>
void roi_align_forward(const T* input, const T* rois, const RoIAlignShape& s, T* output);

// grad_input must be zero-filled by the caller.
template <typename T>
void roi_align_backward(const T* grad_output, const T* rois, const RoIAlignShape& s,
                        T* grad_input);

}  // namespace det_ops::cpu
