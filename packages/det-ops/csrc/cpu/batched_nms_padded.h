#pragma once

#include <cstdint>

namespace det_ops::cpu {

// Greedy NMS inside each group of groups [n], into fixed-size outputs: keep
// [num_groups, max_per_group] receives each group's kept indices by decreasing score
// (ties: lower index first), the first max_per_group of them, padded with -1; counts
// [num_groups] how many. Boxes whose score is NaN or -inf, or whose group is outside
// [0, num_groups), are never kept and never suppress.
template <typename T>
void batched_nms_padded(const T* boxes, const T* scores, const int64_t* groups, int64_t n,
                        double iou_threshold, int64_t num_groups, int64_t max_per_group,
                        int64_t* keep, int64_t* counts);

}  // namespace det_ops::cpu
