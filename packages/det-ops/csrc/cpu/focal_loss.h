#pragma once

#include <cstdint>

namespace det_ops::cpu {

// Element-wise sigmoid focal loss of logits [n, classes]. The targets are
// either `targets` [n, classes] in [0, 1], or (targets == nullptr) class
// indices `labels` [n] where a label outside [0, classes) marks background.
// Writes loss [n, classes] and, unless grad is nullptr, d loss / d logits.
template <typename T>
void sigmoid_focal_loss(const T* logits, const T* targets, const int64_t* labels, int64_t n,
                        int64_t classes, double alpha, double gamma, T* loss, T* grad);

}  // namespace det_ops::cpu
