// Greedy NMS on the GPU, without a host round trip per box.
//  1. nms_mask_kernel: for boxes in score order, bit b of mask[i][w] says box i
//     overlaps box 64 w + b (a later one) above the threshold. Upper triangle only.
//  2. nms_reduce_kernel: one block walks the boxes in order, 64 at a time: a
//     thread resolves the 64 boxes of a word sequentially, then all threads
//     fold the kept boxes' mask rows into the "removed" bits of later words.
#include <cstdint>

#include "common/iou.h"
#include "cuda/launch.cuh"
#include "cuda/nms.h"

namespace det_ops::cuda {
namespace {

constexpr int kWordBits = 64;
constexpr int kReduceThreads = 256;

template <typename T>
__global__ void nms_mask_kernel(const T* boxes, int64_t n, T threshold, uint64_t* mask,
                                int64_t words) {
  const int64_t row_word = blockIdx.y, col_word = blockIdx.x;
  if (col_word < row_word) return;  // the reduction never reads the lower triangle
  __shared__ T cols[kWordBits][5];
  const int64_t col_start = col_word * kWordBits;
  const int64_t cols_here = min(n - col_start, static_cast<int64_t>(kWordBits));
  if (threadIdx.x < cols_here) {
    const T* b = boxes + 4 * (col_start + threadIdx.x);
    cols[threadIdx.x][0] = b[0];
    cols[threadIdx.x][1] = b[1];
    cols[threadIdx.x][2] = b[2];
    cols[threadIdx.x][3] = b[3];
    cols[threadIdx.x][4] = box_area(b[0], b[1], b[2], b[3]);
  }
  __syncthreads();
  const int64_t i = row_word * kWordBits + threadIdx.x;
  if (i >= n) return;
  const T* a = boxes + 4 * i;
  const T area = box_area(a[0], a[1], a[2], a[3]);
  uint64_t bits = 0;
  const int64_t first = row_word == col_word ? threadIdx.x + 1 : 0;
  for (int64_t j = first; j < cols_here; ++j) {
    const T iou = nms_iou(a[0], a[1], a[2], a[3], area, cols[j][0], cols[j][1], cols[j][2],
                          cols[j][3], cols[j][4]);
    if (iou > threshold) bits |= 1ULL << j;
  }
  mask[i * words + col_word] = bits;
}

__global__ void nms_reduce_kernel(const uint64_t* mask, int64_t n, int64_t words,
                                  uint64_t* removed, int64_t* keep, int64_t* count) {
  __shared__ uint64_t diagonal[kWordBits];
  __shared__ uint64_t kept_bits;
  for (int64_t w = threadIdx.x; w < words; w += blockDim.x) removed[w] = 0;
  int64_t kept_total = 0;  // used by thread 0 only
  __syncthreads();
  for (int64_t w = 0; w < words; ++w) {
    const int64_t base = w * kWordBits;
    const int64_t here = min(n - base, static_cast<int64_t>(kWordBits));
    if (threadIdx.x < here) diagonal[threadIdx.x] = mask[(base + threadIdx.x) * words + w];
    __syncthreads();
    if (threadIdx.x == 0) {
      uint64_t gone = removed[w], kept = 0;
      for (int64_t b = 0; b < here; ++b) {
        if ((gone >> b) & 1ULL) continue;
        kept |= 1ULL << b;
        keep[kept_total++] = base + b;
        gone |= diagonal[b];
      }
      kept_bits = kept;
    }
    __syncthreads();
    const uint64_t kept = kept_bits;
    for (int64_t later = w + 1 + threadIdx.x; later < words; later += blockDim.x) {
      uint64_t gone = removed[later];
      for (uint64_t bits = kept; bits != 0; bits &= bits - 1) {
        const int b = __ffsll(static_cast<long long>(bits)) - 1;
        gone |= mask[(base + b) * words + later];
      }
      removed[later] = gone;
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) *count = kept_total;
}

}  // namespace

template <typename T>
void nms_sorted(const T* boxes, int64_t n, double iou_threshold, uint64_t* mask,
                uint64_t* removed, int64_t* keep, int64_t* count, std::uintptr_t stream) {
  const int64_t words = (n + kWordBits - 1) / kWordBits;
  if (n == 0) {
    check(cudaMemsetAsync(count, 0, sizeof(int64_t), as_stream(stream)), "nms");
    return;
  }
  const dim3 grid(static_cast<unsigned int>(words), static_cast<unsigned int>(words));
  launch("nms_mask_kernel", nms_mask_kernel<T>, grid, kWordBits, stream, boxes, n,
         static_cast<T>(iou_threshold), mask, words);
  launch("nms_reduce_kernel", nms_reduce_kernel, 1, kReduceThreads, stream, mask, n, words,
         removed, keep, count);
}

template void nms_sorted<float>(const float*, int64_t, double, uint64_t*, uint64_t*, int64_t*,
                                int64_t*, std::uintptr_t);
template void nms_sorted<double>(const double*, int64_t, double, uint64_t*, uint64_t*, int64_t*,
                                 int64_t*, std::uintptr_t);

}  // namespace det_ops::cuda
