#include "bindings/bindings.h"
#include "cpu/focal_loss.h"

#if defined(DET_OPS_WITH_CUDA)
#include "cuda/focal_loss.h"
#endif

namespace det_ops::bindings {

void bind_focal_loss(py::module_& /*m*/, py::module_& cpu, py::module_& cuda) {
  // Exactly one of targets and labels is non-zero; grad 0: loss only.
  def_kernel<void(Ptr, Ptr, Ptr, int64_t, int64_t, double, double, Ptr, Ptr)>(
      cpu, cuda, "sigmoid_focal_loss", DET_OPS_LAUNCHERS(sigmoid_focal_loss),
      [](auto launch, auto tag, Ptr logits, Ptr targets, Ptr labels, int64_t n, int64_t classes,
         double alpha, double gamma, Ptr loss, Ptr grad) {
        using T = decltype(tag);
        launch(as_ptr<const T>(logits), as_ptr<const T>(targets), as_ptr<const int64_t>(labels),
               n, classes, alpha, gamma, as_ptr<T>(loss), as_ptr<T>(grad));
      });
}

DET_OPS_BIND_OP(focal_loss);

}  // namespace det_ops::bindings
