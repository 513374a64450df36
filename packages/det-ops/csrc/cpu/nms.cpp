// Greedy, batched and soft NMS on the CPU; the greedy pass is cpu/greedy_nms.h's.
#include "cpu/nms.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>
#include <vector>

#include "common/iou.h"
#include "cpu/greedy_nms.h"
#include "cpu/parallel.h"

namespace det_ops::cpu {

using greedy::BoxColumns;
using greedy::greedy_nms_sorted;
using greedy::kTile;
using greedy::order_by_score;

template <typename T>
int64_t nms(const T* boxes, const T* scores, int64_t n, double iou_threshold, int64_t* keep,
            int max_threads) {
  std::vector<int64_t> order;
  if (!order_by_score(scores, n, order)) return -1;
  BoxColumns<T> sorted(n);
  for (int64_t i = 0; i < n; ++i) sorted.set(i, boxes + 4 * order[i]);
  std::vector<int64_t> kept_positions;
  const int threads = std::min(max_threads, num_threads());
  greedy_nms_sorted(sorted, n, static_cast<T>(iou_threshold), threads, kept_positions, n);
  for (size_t k = 0; k < kept_positions.size(); ++k) keep[k] = order[kept_positions[k]];
  return static_cast<int64_t>(kept_positions.size());
}

template <typename T>
int64_t batched_nms(const T* boxes, const T* scores, const int64_t* idxs, int64_t n,
                    double iou_threshold, int64_t* keep) {
  std::vector<int64_t> order;
  if (!order_by_score(scores, n, order)) return -1;
  // Group by class, keeping score order inside each class.
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return idxs[a] < idxs[b]; });
  std::vector<std::pair<int64_t, int64_t>> groups;  // [begin, end) in order
  for (int64_t b = 0; b < n;) {
    int64_t e = b + 1;
    while (e < n && idxs[order[e]] == idxs[order[b]]) ++e;
    groups.emplace_back(b, e);
    b = e;
  }
  std::vector<std::vector<int64_t>> kept(groups.size());
  const T threshold = static_cast<T>(iou_threshold);
  auto run_groups = [&](int64_t gb, int64_t ge, int threads) {
    for (int64_t g = gb; g < ge; ++g) {
      const auto [b, e] = groups[g];
      BoxColumns<T> sorted(e - b);
      for (int64_t i = b; i < e; ++i) sorted.set(i - b, boxes + 4 * order[i]);
      greedy_nms_sorted(sorted, e - b, threshold, threads, kept[g], e - b);
      for (auto& position : kept[g]) position = order[b + position];
    }
  };
  if (groups.size() > 1 && n > 4 * kTile) {
    parallel_for(0, static_cast<int64_t>(groups.size()), 1,
                 [&](int64_t gb, int64_t ge) { run_groups(gb, ge, 1); });
  } else {
    run_groups(0, static_cast<int64_t>(groups.size()), num_threads());
  }
  int64_t count = 0;
  for (const auto& group : kept) {
    std::copy(group.begin(), group.end(), keep + count);
    count += static_cast<int64_t>(group.size());
  }
  std::sort(keep, keep + count, [&](int64_t a, int64_t b) {
    return scores[a] > scores[b] || (scores[a] == scores[b] && a < b);
  });
  return count;
}

template <typename T>
int64_t soft_nms(const T* boxes, const T* scores, int64_t n, double iou_threshold, double sigma,
                 double min_score, int method, int64_t* keep, T* new_scores) {
  for (int64_t i = 0; i < n; ++i) {
    if (std::isnan(scores[i])) return -1;
  }
  BoxColumns<T> columns(n);
  std::vector<T> score(scores, scores + n);
  std::vector<int64_t> live;  // candidates in index order
  live.reserve(n);
  for (int64_t i = 0; i < n; ++i) {
    columns.set(i, boxes + 4 * i);
    if (score[i] >= min_score) live.push_back(i);
  }
  const T threshold = static_cast<T>(iou_threshold), width = static_cast<T>(sigma);
  int64_t count = 0;
  while (!live.empty()) {
    // 1. Select the best remaining box (first of equal scores).
    size_t best = 0;
    for (size_t p = 1; p < live.size(); ++p) {
      if (score[live[p]] > score[live[best]]) best = p;
    }
    const int64_t i = live[best];
    keep[count] = i;
    new_scores[count] = score[i];
    ++count;
    live.erase(live.begin() + static_cast<std::ptrdiff_t>(best));
    // 2. Decay the others by their overlap with it; drop those below min_score.
    size_t remaining = 0;
    for (const int64_t j : live) {
      score[j] *= soft_nms_weight(columns.iou(i, columns, j), threshold, width, method);
      if (score[j] >= min_score) live[remaining++] = j;
    }
    live.resize(remaining);
  }
  return count;
}

#define DET_OPS_INSTANTIATE_NMS(T)                                                          \
  template int64_t nms<T>(const T*, const T*, int64_t, double, int64_t*, int);             \
  template int64_t batched_nms<T>(const T*, const T*, const int64_t*, int64_t, double,     \
                                  int64_t*);                                               \
  template int64_t soft_nms<T>(const T*, const T*, int64_t, double, double, double, int, \
                               int64_t*, T*);
DET_OPS_INSTANTIATE_NMS(float)
DET_OPS_INSTANTIATE_NMS(double)

}  // namespace det_ops::cpu
