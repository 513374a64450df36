// Host launchers of the CUDA kernels of pairwise or aligned IoU / IoF (cuda/bbox_overlaps.cu).
// Pointers are device memory allocated by the caller; `stream` is a cudaStream_t
// passed as an integer.
#pragma once

#include <cstdint>

namespace det_ops::cuda {

template <typename T>
void bbox_overlaps(const T* boxes1, int64_t n, const T* boxes2, int64_t m, int mode, bool aligned,
                   T* out, std::uintptr_t stream);

}  // namespace det_ops::cuda
