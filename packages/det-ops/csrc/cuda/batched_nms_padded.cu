// Fixed-size batched NMS on the GPU, without a host round trip: a block takes one
// group and walks its boxes in score order, 64 candidates (a word) at a time:
//  1. its threads test each candidate against the boxes the group kept so far (4
//     lanes per candidate split them) and against the later candidates of the word
//     (a 64-bit row of the word's overlap mask);
//  2. one thread resolves the word in order from those, appending the kept boxes to
//     the group's row of keep; the block stops once the row is full.
// Memory is the outputs alone (the kept boxes are read back through their indices),
// whatever the size of a group; the cost is one IoU test per candidate and kept box.
#include <cstdint>

#include "common/iou.h"
#include "cuda/batched_nms_padded.h"
#include "cuda/launch.cuh"

namespace det_ops::cuda {
namespace {

constexpr int kWordBits = 64;
constexpr int kLanes = kThreads / kWordBits;

template <typename T>
__device__ __forceinline__ T iou_with(const T* a, T area_a, const T* b) {
  return nms_iou(a[0], a[1], a[2], a[3], area_a, b[0], b[1], b[2], b[3],
                 box_area(b[0], b[1], b[2], b[3]));
}

template <typename T>
__global__ void batched_nms_padded_kernel(const T* boxes, const int64_t* order,
                                          const int64_t* group_begin, int64_t num_groups,
                                          int64_t max_per_group, T threshold, int64_t* keep,
                                          int64_t* counts) {
  __shared__ T word_boxes[kWordBits][4];
  __shared__ int64_t word_index[kWordBits];
  __shared__ bool hit[kLanes][kWordBits];          // candidate overlaps a kept box
  __shared__ uint64_t overlaps[kLanes][kWordBits];  // candidate's bits of later candidates
  __shared__ int64_t kept_count;                   // written by thread 0 between barriers
  const int c = static_cast<int>(threadIdx.x) % kWordBits;
  const int lane = static_cast<int>(threadIdx.x) / kWordBits;
  for (int64_t g = blockIdx.x; g < num_groups; g += gridDim.x) {
    const int64_t begin = group_begin[g], end = group_begin[g + 1];
    int64_t* row = keep + g * max_per_group;
    __syncthreads();  // the previous group's readers of kept_count are done
    if (threadIdx.x == 0) kept_count = 0;
    __syncthreads();
    for (int64_t base = begin; base < end; base += kWordBits) {
      const int64_t kept = kept_count;
      if (kept >= max_per_group) break;  // the same for every thread
      const int here = static_cast<int>(min(end - base, static_cast<int64_t>(kWordBits)));
      if (lane == 0 && c < here) {
        const int64_t i = order[base + c];
        word_index[c] = i;
        for (int k = 0; k < 4; ++k) word_boxes[c][k] = boxes[4 * i + k];
      }
      __syncthreads();
      bool h = false;
      uint64_t bits = 0;
      if (c < here) {
        const T* a = word_boxes[c];
        const T area = box_area(a[0], a[1], a[2], a[3]);
        for (int64_t k = lane; k < kept && !h; k += kLanes) {
          h = iou_with(a, area, boxes + 4 * row[k]) > threshold;
        }
        for (int j = c + 1 + lane; j < here; j += kLanes) {
          if (iou_with(a, area, word_boxes[j]) > threshold) bits |= 1ULL << j;
        }
      }
      hit[lane][c] = h;
      overlaps[lane][c] = bits;
      __syncthreads();
      if (threadIdx.x == 0) {
        uint64_t removed = 0;
        int64_t count = kept;
        for (int j = 0; j < here && count < max_per_group; ++j) {
          bool gone = (removed >> j) & 1ULL;
          for (int l = 0; l < kLanes; ++l) gone = gone || hit[l][j];
          if (gone) continue;
          row[count++] = word_index[j];
          for (int l = 0; l < kLanes; ++l) removed |= overlaps[l][j];
        }
        kept_count = count;
      }
      __syncthreads();
    }
    const int64_t kept = kept_count;
    for (int64_t k = kept + threadIdx.x; k < max_per_group; k += blockDim.x) row[k] = -1;
    if (threadIdx.x == 0) counts[g] = kept;
  }
}

}  // namespace

template <typename T>
void batched_nms_padded_sorted(const T* boxes, const int64_t* order, const int64_t* group_begin,
                               int64_t num_groups, int64_t max_per_group, double iou_threshold,
                               int64_t* keep, int64_t* counts, std::uintptr_t stream) {
  if (num_groups == 0) return;
  launch("batched_nms_padded_kernel", batched_nms_padded_kernel<T>, grid_blocks(num_groups),
         kThreads, stream, boxes, order, group_begin, num_groups, max_per_group,
         static_cast<T>(iou_threshold), keep, counts);
}

template void batched_nms_padded_sorted<float>(const float*, const int64_t*, const int64_t*,
                                               int64_t, int64_t, double, int64_t*, int64_t*,
                                               std::uintptr_t);
template void batched_nms_padded_sorted<double>(const double*, const int64_t*, const int64_t*,
                                                int64_t, int64_t, double, int64_t*, int64_t*,
                                                std::uintptr_t);

}  // namespace det_ops::cuda
