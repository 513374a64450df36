// Host launchers of the CUDA kernel of the sigmoid focal loss, forward and
// gradient together (cuda/focal_loss.cu).
// Pointers are device memory allocated by the caller; `stream` is a cudaStream_t
// passed as an integer.
#pragma once

#include <cstdint>

namespace det_ops::cuda {

template <typename T>
void sigmoid_focal_loss(const T* logits, const T* targets, const int64_t* labels, int64_t n,
                        int64_t classes, double alpha, double gamma, T* loss, T* grad,
                        std::uintptr_t stream);

}  // namespace det_ops::cuda
