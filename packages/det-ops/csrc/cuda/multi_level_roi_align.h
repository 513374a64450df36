// Host launchers of the CUDA kernels of multi-level RoIAlign
// (cuda/multi_level_roi_align.cu). Pointers are device memory allocated by the
// caller; `stream` is a cudaStream_t passed as an integer. T is float, double,
// Float16 or BFloat16 (common/precision.h); the RoIs and the input gradients are in
// Compute<T> (float for the 16-bit types).
#pragma once

#include <cstdint>

#include "common/multi_level_roi_align.h"
#include "common/precision.h"

namespace det_ops::cuda {

// One launch for every level: inputs.data[l] is the map of level l (NCHW, or NHWC
// where L.channels_last[l]); rois [K, 5], levels [K]; output [K, C, out_h, out_w].
template <typename T>
void multi_level_roi_align_forward(const LevelPointers<const T*>& inputs,
                                   const Compute<T>* rois, const int64_t* levels,
                                   const RoIAlignLevels& L, T* output, std::uintptr_t stream);

// One launch: grad_inputs.data[l] is the gradient of map l, in its layout,
// zero-filled by the caller.
template <typename T>
void multi_level_roi_align_backward(const T* grad_output, const Compute<T>* rois,
                                    const int64_t* levels, const RoIAlignLevels& L,
                                    const LevelPointers<Compute<T>*>& grad_inputs,
                                    std::uintptr_t stream);

}  // namespace det_ops::cuda
