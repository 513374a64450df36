#include "cpu/focal_loss.h"

#include "common/focal.h"
#include "cpu/parallel.h"

namespace det_ops::cpu {

template <typename T>
void sigmoid_focal_loss(const T* logits, const T* targets, const int64_t* labels, int64_t n,
                        int64_t classes, double alpha, double gamma, T* loss, T* grad) {
  const T a = static_cast<T>(alpha), g = static_cast<T>(gamma);
  const bool with_grad = grad != nullptr;
  parallel_for(0, n, (1 << 14) / classes + 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      for (int64_t c = 0; c < classes; ++c) {
        const int64_t j = i * classes + c;
        const T t = targets != nullptr ? targets[j] : T(labels[i] == c);
        const FocalTerms<T> terms = sigmoid_focal_terms(logits[j], t, a, g, with_grad);
        loss[j] = terms.loss;
        if (with_grad) grad[j] = terms.grad;
      }
    }
  });
}

template void sigmoid_focal_loss<float>(const float*, const float*, const int64_t*, int64_t,
                                        int64_t, double, double, float*, float*);
template void sigmoid_focal_loss<double>(const double*, const double*, const int64_t*, int64_t,
                                         int64_t, double, double, double*, double*);

}  // namespace det_ops::cpu
