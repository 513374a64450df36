// Multi-level RoIAlign on the CPU: the RoIs of each level are gathered and run
// through that level's RoIAlign kernel (cpu/roi_align.cpp, NCHW or channels-last),
// whose outputs (or output gradients) are moved to and from the RoIs' rows.
// The copies are one output's size, small beside the pooling.
#include "cpu/multi_level_roi_align.h"

#include <algorithm>
#include <vector>

#include "cpu/roi_align.h"

namespace det_ops::cpu {
namespace {

// The RoIs of each level, in order.
std::vector<std::vector<int64_t>> rois_by_level(const int64_t* levels, const RoIAlignLevels& L) {
  std::vector<std::vector<int64_t>> members(L.num_levels);
  const int64_t num_rois = L.num_levels > 0 ? L.level[0].num_rois : 0;
  for (int64_t k = 0; k < num_rois; ++k) {
    const int l = roi_level(levels, k, L);
    if (l >= 0) members[l].push_back(k);
  }
  return members;
}

template <typename T>
std::vector<T> gather_rois(const T* rois, const std::vector<int64_t>& members) {
  std::vector<T> out(5 * members.size());
  for (size_t i = 0; i < members.size(); ++i) {
    std::copy(rois + 5 * members[i], rois + 5 * members[i] + 5, out.begin() + 5 * i);
  }
  return out;
}

}  // namespace

template <typename T>
void multi_level_roi_align_forward(const LevelPointers<const T*>& inputs, const T* rois,
                                   const int64_t* levels, const RoIAlignLevels& L, T* output) {
  if (L.num_levels == 0) return;
  const RoIAlignShape& first = L.level[0];
  const int64_t row = first.channels * first.pooled_h * first.pooled_w;
  std::fill(output, output + first.num_rois * row, T(0));  // RoIs of no usable level
  const auto members = rois_by_level(levels, L);
  for (int l = 0; l < L.num_levels; ++l) {
    const std::vector<int64_t>& ks = members[l];
    if (ks.empty()) continue;
    const std::vector<T> level_rois = gather_rois(rois, ks);
    RoIAlignShape s = L.level[l];
    s.num_rois = static_cast<int64_t>(ks.size());
    std::vector<T> pooled(s.num_rois * row);
    if (L.channels_last[l]) {
      roi_align_forward_nhwc(inputs.data[l], level_rois.data(), s, pooled.data());
    } else {
      roi_align_forward(inputs.data[l], level_rois.data(), s, pooled.data());
    }
    for (size_t i = 0; i < ks.size(); ++i) {
      std::copy(pooled.begin() + i * row, pooled.begin() + (i + 1) * row, output + ks[i] * row);
    }
  }
}

template <typename T>
void multi_level_roi_align_backward(const T* grad_output, const T* rois, const int64_t* levels,
                                    const RoIAlignLevels& L,
                                    const LevelPointers<T*>& grad_inputs) {
  if (L.num_levels == 0) return;
  const RoIAlignShape& first = L.level[0];
  const int64_t row = first.channels * first.pooled_h * first.pooled_w;
  const auto members = rois_by_level(levels, L);
  for (int l = 0; l < L.num_levels; ++l) {
    const std::vector<int64_t>& ks = members[l];
    if (ks.empty()) continue;
    const std::vector<T> level_rois = gather_rois(rois, ks);
    RoIAlignShape s = L.level[l];
    s.num_rois = static_cast<int64_t>(ks.size());
    std::vector<T> grad(s.num_rois * row);
    for (size_t i = 0; i < ks.size(); ++i) {
      std::copy(grad_output + ks[i] * row, grad_output + (ks[i] + 1) * row,
                grad.begin() + i * row);
    }
    if (L.channels_last[l]) {
      roi_align_backward_nhwc(grad.data(), level_rois.data(), s, grad_inputs.data[l]);
    } else {
      roi_align_backward(grad.data(), level_rois.data(), s, grad_inputs.data[l]);
    }
  }
}

#define DET_OPS_INSTANTIATE(T)                                                                 \
  template void multi_level_roi_align_forward<T>(const LevelPointers<const T*>&, const T*,     \
                                                 const int64_t*, const RoIAlignLevels&, T*);   \
  template void multi_level_roi_align_backward<T>(const T*, const T*, const int64_t*,          \
                                                  const RoIAlignLevels&,                       \
                                                  const LevelPointers<T*>&);
DET_OPS_INSTANTIATE(float)
DET_OPS_INSTANTIATE(double)
#undef DET_OPS_INSTANTIATE

}  // namespace det_ops::cpu
