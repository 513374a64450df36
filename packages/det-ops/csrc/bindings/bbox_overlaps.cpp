#include "bindings/bindings.h"
#include "common/dispatch.h"
#include "cpu/bbox_overlaps.h"

namespace det_ops::bindings {

void bind_bbox_overlaps(py::module_& cpu, py::module_& cuda) {
  cpu.def(
      "bbox_overlaps",
      [](int dtype, std::uintptr_t boxes1, int64_t n, std::uintptr_t boxes2, int64_t m, int mode,
         bool aligned, std::uintptr_t out) {
        dispatch_float(dtype, "bbox_overlaps", [&](auto tag) {
          using T = decltype(tag);
          cpu::bbox_overlaps(as_ptr<const T>(boxes1), n, as_ptr<const T>(boxes2), m, mode, aligned,
                             as_ptr<T>(out));
        });
      },
      release_gil());
#if defined(DET_OPS_WITH_CUDA)
  cuda.def(
      "bbox_overlaps",
      [](int device, std::uintptr_t stream, int dtype, std::uintptr_t boxes1, int64_t n,
         std::uintptr_t boxes2, int64_t m, int mode, bool aligned, std::uintptr_t out) {
        cuda::DeviceGuard guard(device);
        dispatch_float(dtype, "bbox_overlaps", [&](auto tag) {
          using T = decltype(tag);
          cuda::bbox_overlaps(as_ptr<const T>(boxes1), n, as_ptr<const T>(boxes2), m, mode,
                              aligned, as_ptr<T>(out), stream);
        });
      },
      release_gil());
#else
  (void)cuda;
#endif
}

}  // namespace det_ops::bindings
