#include "bindings/bindings.h"
#include "common/dispatch.h"
#include "cpu/focal_loss.h"

namespace det_ops::bindings {

void bind_focal_loss(py::module_& cpu) {
  // targets or labels is 0: the other one gives the targets.
  cpu.def(
      "sigmoid_focal_loss_forward",
      [](int dtype, std::uintptr_t logits, std::uintptr_t targets, std::uintptr_t labels,
         int64_t n, int64_t classes, double alpha, double gamma, std::uintptr_t loss) {
        dispatch_float(dtype, "sigmoid_focal_loss", [&](auto tag) {
          using T = decltype(tag);
          cpu::sigmoid_focal_loss_forward(as_ptr<const T>(logits), as_ptr<const T>(targets),
                                          as_ptr<const int64_t>(labels), n, classes, alpha, gamma,
                                          as_ptr<T>(loss));
        });
      },
      release_gil());
  cpu.def(
      "sigmoid_focal_loss_backward",
      [](int dtype, std::uintptr_t logits, std::uintptr_t targets, std::uintptr_t labels,
         std::uintptr_t grad_loss, int64_t n, int64_t classes, double alpha, double gamma,
         std::uintptr_t grad_logits) {
        dispatch_float(dtype, "sigmoid_focal_loss_backward", [&](auto tag) {
          using T = decltype(tag);
          cpu::sigmoid_focal_loss_backward(as_ptr<const T>(logits), as_ptr<const T>(targets),
                                           as_ptr<const int64_t>(labels),
                                           as_ptr<const T>(grad_loss), n, classes, alpha, gamma,
                                           as_ptr<T>(grad_logits));
        });
      },
      release_gil());
}

}  // namespace det_ops::bindings
