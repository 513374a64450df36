// Sigmoid focal loss (Lin et al., 2017) for one logit and its target in [0, 1].
//   p = sigmoid(x), ce = BCE-with-logits(x, t), p_t = p t + (1 - p)(1 - t)
//   loss = alpha_t * (1 - p_t)^gamma * ce, alpha_t = alpha t + (1 - alpha)(1 - t)
// alpha < 0 disables the alpha weighting.
#pragma once

#include <math.h>

#include "common/macros.h"

namespace det_ops {

template <typename T>
DET_HD T stable_sigmoid(T x) {
  if (x >= T(0)) return T(1) / (T(1) + exp(-x));
  const T e = exp(x);
  return e / (T(1) + e);
}

// Binary cross-entropy with logits, without overflow for large |x|.
template <typename T>
DET_HD T bce_with_logits(T x, T t) {
  return max_of(x, T(0)) - x * t + log1p(exp(-fabs(x)));
}

template <typename T>
DET_HD T focal_alpha_weight(T t, T alpha) {
  return alpha >= T(0) ? alpha * t + (T(1) - alpha) * (T(1) - t) : T(1);
}

template <typename T>
DET_HD T sigmoid_focal_loss_value(T x, T t, T alpha, T gamma) {
  const T p = stable_sigmoid(x);
  const T one_minus_pt = T(1) - (p * t + (T(1) - p) * (T(1) - t));
  return focal_alpha_weight(t, alpha) * pow(one_minus_pt, gamma) * bce_with_logits(x, t);
}

// d loss / d x. With q = 1 - p_t:
//   alpha_t * [q^gamma (p - t) - gamma q^(gamma - 1) (2t - 1) p (1 - p) ce]
template <typename T>
DET_HD T sigmoid_focal_loss_grad(T x, T t, T alpha, T gamma) {
  const T p = stable_sigmoid(x);
  const T q = T(1) - (p * t + (T(1) - p) * (T(1) - t));
  T grad = pow(q, gamma) * (p - t);
  // q == 0 only when p saturates at t, where p (1 - p) is 0 as well: the
  // second term vanishes, and skipping it avoids 0 * inf for gamma < 1.
  if (gamma != T(0) && q > T(0)) {
    grad -= gamma * pow(q, gamma - T(1)) * (T(2) * t - T(1)) * p * (T(1) - p) *
            bce_with_logits(x, t);
  }
  return focal_alpha_weight(t, alpha) * grad;
}

}  // namespace det_ops
