// The greedy NMS pass of the CPU kernels (cpu/nms.cpp, cpu/batched_nms_padded.cpp).
//
// Greedy NMS walks the boxes in score order in tiles. For each tile it first
// drops the members that overlap any box kept in earlier tiles (independent
// tests: vectorised and split across threads), then runs the greedy pass
// inside the tile. The result is exactly that of the textbook loop; the work
// is contiguous and branch-free where the textbook loop chases indices.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "common/iou.h"
#include "cpu/parallel.h"

namespace det_ops::cpu::greedy {

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

// Whether score a at index i comes before score b at index j: decreasing score,
// equal scores by increasing index.
template <typename T>
inline bool score_before(T a, int64_t i, T b, int64_t j) {
  return a > b || (a == b && i < j);
}

// Sorts (score, index) pairs into score order (score_before).
template <typename T>
void sort_by_score(std::vector<std::pair<T, int64_t>>& keyed) {
  std::sort(keyed.begin(), keyed.end(), [](const auto& a, const auto& b) {
    return score_before(a.first, a.second, b.first, b.second);
  });
}

// Indices of the boxes by decreasing score, ties by increasing index.
// Returns false if a score is NaN (no order exists).
template <typename T>
bool order_by_score(const T* scores, int64_t n, std::vector<int64_t>& order) {
  std::vector<std::pair<T, int64_t>> keyed(n);
  for (int64_t i = 0; i < n; ++i) {
    if (std::isnan(scores[i])) return false;
    keyed[i] = {scores[i], i};
  }
  sort_by_score(keyed);
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

// Greedy NMS over boxes already in score order; appends the kept positions, and
// stops once max_kept boxes are kept (the boxes after those cannot enter the result).
template <typename T>
void greedy_nms_sorted(const BoxColumns<T>& boxes, int64_t n, T threshold, int threads,
                       std::vector<int64_t>& kept_positions, int64_t max_kept) {
  if (max_kept <= 0) return;
  BoxColumns<T> kept(std::min(n, max_kept));
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
      if (num_kept == max_kept) return;
#pragma omp simd
      for (int64_t m = j + 1; m < stop; ++m) {
        alive[m - start] &= !(boxes.iou(j, boxes, m) > threshold);
      }
    }
  }
}

}  // namespace det_ops::cpu::greedy
