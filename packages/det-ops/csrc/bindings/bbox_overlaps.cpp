#include "bindings/bindings.h"
#include "cpu/bbox_overlaps.h"

#if defined(DET_OPS_WITH_CUDA)
#include "cuda/bbox_overlaps.h"
#endif

namespace det_ops::bindings {

void bind_bbox_overlaps(py::module_& /*m*/, py::module_& cpu, py::module_& cuda) {
  def_kernel<void(Ptr, int64_t, Ptr, int64_t, int, bool, Ptr)>(
      cpu, cuda, "bbox_overlaps", DET_OPS_LAUNCHERS(bbox_overlaps),
      [](auto launch, auto tag, Ptr boxes1, int64_t n, Ptr boxes2, int64_t m, int mode,
         bool aligned, Ptr out) {
        using T = decltype(tag);
        launch(as_ptr<const T>(boxes1), n, as_ptr<const T>(boxes2), m, mode, aligned,
               as_ptr<T>(out));
      });
}

DET_OPS_BIND_OP(bbox_overlaps);

}  // namespace det_ops::bindings
