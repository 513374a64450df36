#include "common/iou.h"
#include "cuda/launch.cuh"
#include "cuda/bbox_overlaps.h"

namespace det_ops::cuda {
namespace {

template <typename T>
__global__ void bbox_overlaps_kernel(const T* boxes1, int64_t n, const T* boxes2, int64_t m,
                                     bool iof, bool aligned, T* out) {
  const T eps = T(1e-6);  // as the CPU kernel: degenerate pairs give 0, not NaN
  const int64_t total = aligned ? n : n * m;
  DET_CUDA_LOOP(index, total) {
    const T* a = boxes1 + 4 * (aligned ? index : index / m);
    const T* b = boxes2 + 4 * (aligned ? index : index % m);
    const T inter = box_intersection(a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]);
    const T area_a = box_area(a[0], a[1], a[2], a[3]);
    const T denom = iof ? area_a : area_a + box_area(b[0], b[1], b[2], b[3]) - inter;
    out[index] = inter / max_of(denom, eps);
  }
}

}  // namespace

template <typename T>
void bbox_overlaps(const T* boxes1, int64_t n, const T* boxes2, int64_t m, int mode, bool aligned,
                   T* out, std::uintptr_t stream) {
  const int64_t total = aligned ? n : n * m;
  if (total == 0) return;
  launch("bbox_overlaps_kernel", bbox_overlaps_kernel<T>, blocks_for(total), kThreads, stream,
         boxes1, n, boxes2, m, mode == 1, aligned, out);
}

template void bbox_overlaps<float>(const float*, int64_t, const float*, int64_t, int, bool, float*,
                                   std::uintptr_t);
template void bbox_overlaps<double>(const double*, int64_t, const double*, int64_t, int, bool,
                                    double*, std::uintptr_t);

}  // namespace det_ops::cuda
