#include "common/focal.h"
#include "cuda/launch.cuh"
#include "cuda/focal_loss.h"

namespace det_ops::cuda {
namespace {

template <typename T>
__global__ void sigmoid_focal_loss_kernel(const T* logits, const T* targets,
                                          const int64_t* labels, int64_t n, int64_t classes,
                                          T alpha, T gamma, T* loss, T* grad) {
  const bool with_grad = grad != nullptr;
  DET_CUDA_LOOP(j, n * classes) {
    const T t = targets != nullptr ? targets[j] : T(labels[j / classes] == j % classes);
    const FocalTerms<T> terms = sigmoid_focal_terms(logits[j], t, alpha, gamma, with_grad);
    loss[j] = terms.loss;
    if (with_grad) grad[j] = terms.grad;
  }
}

}  // namespace

template <typename T>
void sigmoid_focal_loss(const T* logits, const T* targets, const int64_t* labels, int64_t n,
                        int64_t classes, double alpha, double gamma, T* loss, T* grad,
                        std::uintptr_t stream) {
  if (n * classes == 0) return;
  launch("sigmoid_focal_loss_kernel", sigmoid_focal_loss_kernel<T>, blocks_for(n * classes),
         kThreads, stream, logits, targets, labels, n, classes, static_cast<T>(alpha),
         static_cast<T>(gamma), loss, grad);
}

template void sigmoid_focal_loss<float>(const float*, const float*, const int64_t*, int64_t,
                                        int64_t, double, double, float*, float*, std::uintptr_t);
template void sigmoid_focal_loss<double>(const double*, const double*, const int64_t*, int64_t,
                                         int64_t, double, double, double*, double*,
                                         std::uintptr_t);

}  // namespace det_ops::cuda
