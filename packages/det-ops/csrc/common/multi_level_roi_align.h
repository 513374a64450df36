// Multi-level RoIAlign: each RoI pooled from the feature map of its pyramid level,
// every level in one call (one launch on CUDA). The levels share the batch, the
// channels and the output size; each has its own map size, spatial scale and
// memory layout. A RoI whose level is outside [0, num_levels) pools to zeros.
#pragma once

#include <cstdint>

#include "common/roi_geometry.h"

namespace det_ops {

// Levels one call takes: FPN pyramids have 4 (RoI heads) or 5 (RPN).
constexpr int kMaxFeatureLevels = 8;

// The levels of one call: level[l] is RoIAlign's shape on map l (num_rois: all
// RoIs, pooled sizes, sampling and mode the same in every level).
struct RoIAlignLevels {
  int num_levels;
  RoIAlignShape level[kMaxFeatureLevels];
  bool channels_last[kMaxFeatureLevels];  // map l laid out [B, H, W, C]
};

// One pointer per level (a map, or its gradient), passed to kernels by value.
template <typename P>
struct LevelPointers {
  P data[kMaxFeatureLevels];
};

// The level of RoI k, or -1 when it is out of range or its map is empty.
DET_HD int roi_level(const int64_t* levels, int64_t k, const RoIAlignLevels& L) {
  const int64_t l = levels[k];
  if (l < 0 || l >= L.num_levels) return -1;
  return L.level[l].height * L.level[l].width > 0 ? static_cast<int>(l) : -1;
}

}  // namespace det_ops
