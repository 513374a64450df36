// Sigmoid focal loss (Lin et al., 2017) for one logit and its target in [0, 1].
//   p = sigmoid(x), ce = BCE-with-logits(x, t), p_t = p t + (1 - p)(1 - t)
//   loss = alpha_t * (1 - p_t)^gamma * ce, alpha_t = alpha t + (1 - alpha)(1 - t)
// alpha < 0 disables the alpha weighting.
#pragma once

#include <math.h>

#include "common/macros.h"

namespace det_ops {

// q^gamma, with plain products for the usual integer exponents (faster than
// pow, and exact).
template <typename T>
DET_HD T focal_power(T q, T gamma) {
  if (gamma == T(2)) return q * q;
  if (gamma == T(1)) return q;
  if (gamma == T(0)) return T(1);
  return pow(q, gamma);
}

template <typename T>
struct FocalTerms {
  T loss;
  T grad;  // d loss / d x
};

// The loss and, when with_grad, its derivative; both share one exp and one log.
// With q = 1 - p_t:
//   d loss / d x = alpha_t * [q^gamma (p - t) - gamma q^(gamma - 1) (2t - 1) p (1 - p) ce]
template <typename T>
DET_HD FocalTerms<T> sigmoid_focal_terms(T x, T t, T alpha, T gamma, bool with_grad) {
  // e = exp(-|x|) never overflows; the sigmoid and the log term both use it.
  // Selects rather than branches: the sign of a logit is unpredictable.
  const T e = exp(-fabs(x));
  const T p = (x >= T(0) ? T(1) : e) / (T(1) + e);
  // BCE with logits. log(1 + e) rather than log1p(e): about twice as fast, and
  // for e below float epsilon the difference (at most e) is far below the loss.
  const T ce = max_of(x, T(0)) - x * t + log(T(1) + e);
  const T q = T(1) - (p * t + (T(1) - p) * (T(1) - t));
  const T weight = alpha >= T(0) ? alpha * t + (T(1) - alpha) * (T(1) - t) : T(1);
  const T q_gamma = focal_power(q, gamma);
  FocalTerms<T> terms{weight * q_gamma * ce, T(0)};
  if (with_grad) {
    T grad = q_gamma * (p - t);
    // q == 0 only when p saturates at t, where p (1 - p) is 0 as well: the
    // second term vanishes, and skipping it avoids 0 * inf for gamma < 1.
    if (gamma != T(0) && q > T(0)) {
      grad -= gamma * (q_gamma / q) * (T(2) * t - T(1)) * p * (T(1) - p) * ce;
    }
    terms.grad = weight * grad;
  }
  return terms;
}

}  // namespace det_ops
