// Box overlap math for boxes given as (x1, y1, x2, y2) in pixels, no +1.
#pragma once

#include "common/macros.h"

namespace det_ops {

template <typename T>
DET_HD T box_area(T x1, T y1, T x2, T y2) {
  return (x2 - x1) * (y2 - y1);
}

template <typename T>
DET_HD T box_intersection(T ax1, T ay1, T ax2, T ay2, T bx1, T by1, T bx2, T by2) {
  const T w = max_of(T(0), min_of(ax2, bx2) - max_of(ax1, bx1));
  const T h = max_of(T(0), min_of(ay2, by2) - max_of(ay1, by1));
  return w * h;
}

// IoU as NMS uses it: inter / (area_a + area_b - inter), no epsilon. A NaN
// coordinate gives a NaN IoU, which compares false against any threshold, so
// such a box neither suppresses nor is suppressed.
template <typename T>
DET_HD T nms_iou(T ax1, T ay1, T ax2, T ay2, T area_a, T bx1, T by1, T bx2, T by2, T area_b) {
  const T inter = box_intersection(ax1, ay1, ax2, ay2, bx1, by1, bx2, by2);
  return inter / (area_a + area_b - inter);
}

// Soft-NMS score decay for one overlap. method 0: linear (1 - iou above the
// threshold), method 1: gaussian exp(-iou^2 / sigma).
template <typename T>
DET_HD T soft_nms_weight(T iou, T iou_threshold, T sigma, int method) {
  if (method == 0) return iou > iou_threshold ? T(1) - iou : T(1);
  return exp(-(iou * iou) / sigma);
}

}  // namespace det_ops
