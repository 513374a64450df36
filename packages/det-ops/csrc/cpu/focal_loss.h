#pragma once

#include <cstdint>

namespace det_ops::cpu {

// Element-wise sigmoid focal loss of logits [n, classes]. The targets are
// either `targets` [n, classes] in [0, 1], or (targets == nullptr) class
// indices `labels` [n] where a label outside [0, classes) marks background.
template <typename T>
void sigmoid_focal_loss_forward(const T* logits, const T* targets, const int64_t* labels,
                                int64_t n, int64_t classes, double alpha, double gamma, T* loss);

// grad_logits = grad_loss * d loss / d logits (all [n, classes]).
template <typename T>
void sigmoid_focal_loss_backward(const T* logits, const T* targets, const int64_t* labels,
                                 const T* grad_loss, int64_t n, int64_t classes, double alpha,
                                 double gamma, T* grad_logits);

}  // namespace det_ops::cpu
