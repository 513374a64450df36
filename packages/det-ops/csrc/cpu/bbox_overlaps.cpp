#include "cpu/bbox_overlaps.h"

#include <algorithm>
#include <vector>

#include "common/iou.h"
#include "cpu/parallel.h"

namespace det_ops::cpu {

template <typename T>
void bbox_overlaps(const T* boxes1, int64_t n, const T* boxes2, int64_t m, int mode, bool aligned,
                   T* out) {
  const T eps = T(1e-6);  // keeps degenerate (zero-area) pairs at 0 instead of NaN
  const bool iof = mode == 1;
  if (aligned) {
    parallel_for(0, n, 1 << 16, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const T* a = boxes1 + 4 * i;
        const T* b = boxes2 + 4 * i;
        const T inter = box_intersection(a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]);
        const T area_a = box_area(a[0], a[1], a[2], a[3]);
        const T denom = iof ? area_a : area_a + box_area(b[0], b[1], b[2], b[3]) - inter;
        out[i] = inter / max_of(denom, eps);
      }
    });
    return;
  }
  // Columns of boxes2 so the inner loop vectorises.
  std::vector<T> bx1(m), by1(m), bx2(m), by2(m), barea(m);
  for (int64_t j = 0; j < m; ++j) {
    const T* b = boxes2 + 4 * j;
    bx1[j] = b[0];
    by1[j] = b[1];
    bx2[j] = b[2];
    by2[j] = b[3];
    barea[j] = box_area(b[0], b[1], b[2], b[3]);
  }
  const int64_t grain = std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(m, 1));
  parallel_for(0, n, grain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const T* a = boxes1 + 4 * i;
      const T ax1 = a[0], ay1 = a[1], ax2 = a[2], ay2 = a[3];
      const T area_a = box_area(ax1, ay1, ax2, ay2);
      T* row = out + i * m;
#pragma omp simd
      for (int64_t j = 0; j < m; ++j) {
        const T inter = box_intersection(ax1, ay1, ax2, ay2, bx1[j], by1[j], bx2[j], by2[j]);
        const T denom = iof ? area_a : area_a + barea[j] - inter;
        row[j] = inter / max_of(denom, eps);
      }
    }
  });
}

template void bbox_overlaps<float>(const float*, int64_t, const float*, int64_t, int, bool,
                                   float*);
template void bbox_overlaps<double>(const double*, int64_t, const double*, int64_t, int, bool,
                                    double*);

}  // namespace det_ops::cpu
