#pragma once

#include <cstdint>

#include "common/roi_geometry.h"

namespace det_ops::cpu {

// output and argmax [num_rois, channels, pooled_h, pooled_w]; argmax holds the
// flat y * width + x of each maximum, -1 for an empty bin (output 0).
template <typename T>
void roi_pool_forward(const T* input, const T* rois, const RoIPoolShape& s, T* output,
                      int32_t* argmax);

// grad_input must be zero-filled by the caller.
template <typename T>
void roi_pool_backward(const T* grad_output, const T* rois, const int32_t* argmax,
                       const RoIPoolShape& s, T* grad_input);

}  // namespace det_ops::cpu
