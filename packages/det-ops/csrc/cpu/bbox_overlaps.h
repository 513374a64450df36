#pragma once

#include <cstdint>

namespace det_ops::cpu {

// boxes1 [n, 4], boxes2 [m, 4] (x1, y1, x2, y2). mode 0: IoU, 1: IoF
// (intersection over the area of boxes1). out [n, m], or [n] when aligned
// (then m == n and box i is compared with box i only).
template <typename T>
void bbox_overlaps(const T* boxes1, int64_t n, const T* boxes2, int64_t m, int mode, bool aligned,
                   T* out);

}  // namespace det_ops::cpu
