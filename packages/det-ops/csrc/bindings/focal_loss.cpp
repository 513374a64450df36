#include "bindings/bindings.h"
#include "common/dispatch.h"
#include "cpu/focal_loss.h"

namespace det_ops::bindings {

void bind_focal_loss(py::module_& cpu, py::module_& cuda) {
  // Exactly one of targets and labels is non-zero; grad 0: loss only.
  cpu.def(
      "sigmoid_focal_loss",
      [](int dtype, std::uintptr_t logits, std::uintptr_t targets, std::uintptr_t labels,
         int64_t n, int64_t classes, double alpha, double gamma, std::uintptr_t loss,
         std::uintptr_t grad) {
        dispatch_float(dtype, "sigmoid_focal_loss", [&](auto tag) {
          using T = decltype(tag);
          cpu::sigmoid_focal_loss(as_ptr<const T>(logits), as_ptr<const T>(targets),
                                  as_ptr<const int64_t>(labels), n, classes, alpha, gamma,
                                  as_ptr<T>(loss), as_ptr<T>(grad));
        });
      },
      release_gil());
#if defined(DET_OPS_WITH_CUDA)
  cuda.def(
      "sigmoid_focal_loss",
      [](int device, std::uintptr_t stream, int dtype, std::uintptr_t logits,
         std::uintptr_t targets, std::uintptr_t labels, int64_t n, int64_t classes, double alpha,
         double gamma, std::uintptr_t loss, std::uintptr_t grad) {
        cuda::DeviceGuard guard(device);
        dispatch_float(dtype, "sigmoid_focal_loss", [&](auto tag) {
          using T = decltype(tag);
          cuda::sigmoid_focal_loss(as_ptr<const T>(logits), as_ptr<const T>(targets),
                                   as_ptr<const int64_t>(labels), n, classes, alpha, gamma,
                                   as_ptr<T>(loss), as_ptr<T>(grad), stream);
        });
      },
      release_gil());
#else
  (void)cuda;
#endif
}

}  // namespace det_ops::bindings
