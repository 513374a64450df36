#pragma once

#include <cstdint>

#include "common/multi_level_roi_align.h"

namespace det_ops::cpu {

// inputs.data[l]: the map of level l (NCHW, or NHWC where L.channels_last[l]); rois
// [K, 5], levels [K]; output [K, C, out_h, out_w].
template <typename T>
void multi_level_roi_align_forward(const LevelPointers<const T*>& inputs, const T* rois,
                                   const int64_t* levels, const RoIAlignLevels& L, T* output);

// grad_inputs.data[l]: the gradient of map l, in its layout, zero-filled by the caller.
template <typename T>
void multi_level_roi_align_backward(const T* grad_output, const T* rois, const int64_t* levels,
                                    const RoIAlignLevels& L,
                                    const LevelPointers<T*>& grad_inputs);

}  // namespace det_ops::cpu
