#include "cpu/focal_loss.h"

#include "common/focal.h"
#include "cpu/parallel.h"

namespace det_ops::cpu {
namespace {

constexpr int64_t kGrain = 1 << 14;

template <typename T>
T target_of(const T* targets, const int64_t* labels, int64_t i, int64_t classes) {
  return targets != nullptr ? targets[i] : T(labels[i / classes] == i % classes);
}

}  // namespace

template <typename T>
void sigmoid_focal_loss_forward(const T* logits, const T* targets, const int64_t* labels,
                                int64_t n, int64_t classes, double alpha, double gamma, T* loss) {
  const T a = static_cast<T>(alpha), g = static_cast<T>(gamma);
  parallel_for(0, n * classes, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      loss[i] = sigmoid_focal_loss_value(logits[i], target_of(targets, labels, i, classes), a, g);
    }
  });
}

template <typename T>
void sigmoid_focal_loss_backward(const T* logits, const T* targets, const int64_t* labels,
                                 const T* grad_loss, int64_t n, int64_t classes, double alpha,
                                 double gamma, T* grad_logits) {
  const T a = static_cast<T>(alpha), g = static_cast<T>(gamma);
  parallel_for(0, n * classes, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      grad_logits[i] = grad_loss[i] * sigmoid_focal_loss_grad(
                                          logits[i], target_of(targets, labels, i, classes), a, g);
    }
  });
}

#define DET_OPS_INSTANTIATE_FOCAL(T)                                                           \
  template void sigmoid_focal_loss_forward<T>(const T*, const T*, const int64_t*, int64_t,     \
                                              int64_t, double, double, T*);                    \
  template void sigmoid_focal_loss_backward<T>(const T*, const T*, const int64_t*, const T*,   \
                                               int64_t, int64_t, double, double, T*);
DET_OPS_INSTANTIATE_FOCAL(float)
DET_OPS_INSTANTIATE_FOCAL(double)

}  // namespace det_ops::cpu
