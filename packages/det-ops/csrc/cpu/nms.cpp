// Greedy, batched and soft NMS on the CPU.
//
// Greedy NMS walks the boxes in score order in tiles. For each tile it first
// drops the members that overlap any box kept in earlier tiles (independent
// tests: vectorised and split across threads), then runs the greedy pass
// inside the tile. The result is exactly that of the textbook loop; the work
// is contiguous and branch-free where the textbook loop chases indices.
#include "cpu/nms.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>
#include <vector>

#include "common/iou.h"
#include "cpu/parallel.h"

namespace det_ops::cpu {
namespace {

constexpr int64_t kTile = 128;
// Overlap tests in one tile above which the tile is split across threads.
constexpr int64_t kParallelTests = 1 << 17;

// Boxes as one array per coordinate, so overlap loops vectorise.
template <typename T>
struct BoxColumns {
  std::vector<T> x1, y1, x2, y2, area;
  explicit BoxColumns(int64_t n) : x1(n), y1(n), x2(n), y2(n), area(n) {}

  void set(int64_t i, const T* box) {
    x1[i] = box[0];
    y1[i] = box[1];
    x2[i] = box[2];
    y2[i] = box[3];
    area[i] = box_area(box[0], box[1], box[2], box[3]);
  }
  void copy_from(int64_t i, const BoxColumns& other, int64_t j) {
    x1[i] = other.x1[j];
    y1[i] = other.y1[j];
    x2[i] = other.x2[j];
    y2[i] = other.y2[j];
    area[i] = other.area[j];
  }
  T iou(int64_t i, const BoxColumns& other, int64_t j) const {
    return nms_iou(x1[i], y1[i], x2[i], y2[i], area[i], other.x1[j], other.y1[j], other.x2[j],
                   other.y2[j], other.area[j]);
  }
};

// Indices of the boxes by decreasing score, ties by increasing index.
// Returns false if a score is NaN (no order exists).
template <typename T>
bool order_by_score(const T* scores, int64_t n, std::vector<int64_t>& order) {
  std::vector<std::pair<T, int64_t>> keyed(n);
  for (int64_t i = 0; i < n; ++i) {
    if (std::isnan(scores[i])) return false;
    keyed[i] = {scores[i], i};
  }
  std::sort(keyed.begin(), keyed.end(), [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  });
  order.resize(n);
  for (int64_t i = 0; i < n; ++i) order[i] = keyed[i].second;
  return true;
}

// Does box j of `boxes` overlap any of the first `count` boxes of `kept`
// by more than the threshold? Tested in blocks so the inner loop vectorises
// and the search still stops early.
template <typename T>
bool overlaps_kept(const BoxColumns<T>& kept, int64_t count, const BoxColumns<T>& boxes,
                   int64_t j, T threshold) {
  constexpr int64_t kBlock = 64;
  const T x1 = boxes.x1[j], y1 = boxes.y1[j], x2 = boxes.x2[j], y2 = boxes.y2[j];
  const T area = boxes.area[j];
  const T* kx1 = kept.x1.data();
  const T* ky1 = kept.y1.data();
  const T* kx2 = kept.x2.data();
  const T* ky2 = kept.y2.data();
  const T* karea = kept.area.data();
  for (int64_t b = 0; b < count; b += kBlock) {
    const int64_t e = std::min(count, b + kBlock);
    int hit = 0;
#pragma omp simd reduction(| : hit)
    for (int64_t k = b; k < e; ++k) {
      hit |= nms_iou(kx1[k], ky1[k], kx2[k], ky2[k], karea[k], x1, y1, x2, y2, area) > threshold;
    }
    if (hit) return true;
  }
  return false;
}

// Greedy NMS over boxes already in score order; appends the kept positions.
template <typename T>
void greedy_nms_sorted(const BoxColumns<T>& boxes, int64_t n, T threshold, int threads,
                       std::vector<int64_t>& kept_positions) {
  BoxColumns<T> kept(n);
  int64_t num_kept = 0;
  std::vector<char> alive(kTile);
  for (int64_t start = 0; start < n; start += kTile) {
    const int64_t stop = std::min(n, start + kTile);
    // 1. Drop the tile's boxes that a box kept earlier overlaps.
    auto test_against_kept = [&](int64_t b, int64_t e) {
      for (int64_t j = b; j < e; ++j) {
        alive[j - start] = !overlaps_kept(kept, num_kept, boxes, j, threshold);
      }
    };
    const int64_t tests = (stop - start) * num_kept;
    if (threads > 1 && tests > kParallelTests) {
      parallel_for(start, stop, (stop - start + threads - 1) / threads, test_against_kept);
    } else {
      test_against_kept(start, stop);
    }
    // 2. Greedy pass inside the tile.
    for (int64_t j = start; j < stop; ++j) {
      if (!alive[j - start]) continue;
      kept.copy_from(num_kept++, boxes, j);
      kept_positions.push_back(j);
#pragma omp simd
      for (int64_t m = j + 1; m < stop; ++m) {
        alive[m - start] &= !(boxes.iou(j, boxes, m) > threshold);
      }
    }
  }
}

}  // namespace

template <typename T>
int64_t nms(const T* boxes, const T* scores, int64_t n, double iou_threshold, int64_t* keep,
            int max_threads) {
  std::vector<int64_t> order;
  if (!order_by_score(scores, n, order)) return -1;
  BoxColumns<T> sorted(n);
  for (int64_t i = 0; i < n; ++i) sorted.set(i, boxes + 4 * order[i]);
  std::vector<int64_t> kept_positions;
  const int threads = std::min(max_threads, num_threads());
  greedy_nms_sorted(sorted, n, static_cast<T>(iou_threshold), threads, kept_positions);
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
      greedy_nms_sorted(sorted, e - b, threshold, threads, kept[g]);
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
