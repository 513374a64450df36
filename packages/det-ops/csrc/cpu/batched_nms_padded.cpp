// Fixed-size batched NMS on the CPU: the valid boxes are bucketed by group
// (a counting sort, index order kept), then the groups run in parallel, each
// sorting its boxes by score and running the greedy pass of cpu/greedy_nms.h,
// which stops once a group has max_per_group boxes.
#include "cpu/batched_nms_padded.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "cpu/greedy_nms.h"
#include "cpu/parallel.h"

namespace det_ops::cpu {

template <typename T>
void batched_nms_padded(const T* boxes, const T* scores, const int64_t* groups, int64_t n,
                        double iou_threshold, int64_t num_groups, int64_t max_per_group,
                        int64_t* keep, int64_t* counts) {
  auto group_of = [&](int64_t i) -> int64_t {
    const T s = scores[i];
    const bool valid = !std::isnan(s) && s != -INFINITY && groups[i] >= 0 &&
                       groups[i] < num_groups;
    return valid ? groups[i] : -1;
  };
  // 1. Bucket the valid boxes by group: members[begin[g], begin[g + 1]) in index order.
  std::vector<int64_t> begin(num_groups + 1, 0);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t g = group_of(i);
    if (g >= 0) ++begin[g + 1];
  }
  for (int64_t g = 0; g < num_groups; ++g) begin[g + 1] += begin[g];
  std::vector<int64_t> members(begin[num_groups]);
  {
    std::vector<int64_t> next(begin.begin(), begin.end() - 1);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t g = group_of(i);
      if (g >= 0) members[next[g]++] = i;
    }
  }
  // 2. Greedy NMS per group, into its row of keep.
  const T threshold = static_cast<T>(iou_threshold);
  auto run_groups = [&](int64_t gb, int64_t ge, int threads) {
    std::vector<std::pair<T, int64_t>> keyed;
    std::vector<int64_t> kept;
    for (int64_t g = gb; g < ge; ++g) {
      const int64_t size = begin[g + 1] - begin[g];
      keyed.resize(size);
      for (int64_t j = 0; j < size; ++j) {
        const int64_t i = members[begin[g] + j];
        keyed[j] = {scores[i], i};
      }
      greedy::sort_by_score(keyed);
      greedy::BoxColumns<T> sorted(size);
      for (int64_t j = 0; j < size; ++j) sorted.set(j, boxes + 4 * keyed[j].second);
      kept.clear();
      greedy::greedy_nms_sorted(sorted, size, threshold, threads, kept, max_per_group);
      int64_t* row = keep + g * max_per_group;
      const int64_t count = static_cast<int64_t>(kept.size());
      for (int64_t k = 0; k < count; ++k) row[k] = keyed[kept[k]].second;
      std::fill(row + count, row + max_per_group, int64_t{-1});
      counts[g] = count;
    }
  };
  if (num_groups > 1 && begin[num_groups] > 4 * greedy::kTile) {
    parallel_for(0, num_groups, 1, [&](int64_t gb, int64_t ge) { run_groups(gb, ge, 1); });
  } else {
    run_groups(0, num_groups, num_threads());
  }
}

#define DET_OPS_INSTANTIATE(T)                                                            \
  template void batched_nms_padded<T>(const T*, const T*, const int64_t*, int64_t, double, \
                                      int64_t, int64_t, int64_t*, int64_t*);
DET_OPS_INSTANTIATE(float)
DET_OPS_INSTANTIATE(double)
#undef DET_OPS_INSTANTIATE

}  // namespace det_ops::cpu
