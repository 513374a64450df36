// Host launchers of the CUDA kernels of NMS over boxes sorted by score (cuda/nms.cu).
// Pointers are device memory allocated by the caller; `stream` is a cudaStream_t
// passed as an integer.
#pragma once

#include <cstdint>

namespace det_ops::cuda {

// NMS over boxes already sorted by decreasing score. Workspaces: mask uint64
// [n, ceil(n / 64)], removed uint64 [ceil(n / 64)]; keep [n] receives
// positions into the sorted order and count [1] how many.
template <typename T>
void nms_sorted(const T* boxes, int64_t n, double iou_threshold, uint64_t* mask,
                uint64_t* removed, int64_t* keep, int64_t* count, std::uintptr_t stream);

}  // namespace det_ops::cuda
