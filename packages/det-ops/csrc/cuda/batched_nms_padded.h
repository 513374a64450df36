// Host launcher of the CUDA kernel of fixed-size batched NMS (cuda/batched_nms_padded.cu).
// Pointers are device memory allocated by the caller; `stream` is a cudaStream_t
// passed as an integer.
#pragma once

#include <cstdint>

namespace det_ops::cuda {

// Greedy NMS per group over boxes [n, 4] (in input order) visited in `order`: the
// positions order[group_begin[g], group_begin[g + 1]) hold group g's boxes by
// decreasing score. Writes keep [num_groups, max_per_group] (kept indices into boxes,
// padded with -1) and counts [num_groups]. Nothing is read back to the host.
template <typename T>
void batched_nms_padded_sorted(const T* boxes, const int64_t* order, const int64_t* group_begin,
                               int64_t num_groups, int64_t max_per_group, double iou_threshold,
                               int64_t* keep, int64_t* counts, std::uintptr_t stream);

}  // namespace det_ops::cuda
