#include "bindings/bindings.h"
#include "common/dispatch.h"
#include "cpu/batched_nms_padded.h"

#if defined(DET_OPS_WITH_CUDA)
#include "cuda/batched_nms_padded.h"
#endif

namespace det_ops::bindings {

// The CPU function sorts and groups the boxes itself; the CUDA one takes them visited in
// score order per group (Python sorts them with torch, on the device).
void bind_batched_nms_padded(py::module_& /*m*/, py::module_& cpu, py::module_& cuda) {
  cpu.def(
      "batched_nms_padded",
      [](int dtype, Ptr boxes, Ptr scores, Ptr groups, int64_t n, double threshold,
         int64_t num_groups, int64_t max_per_group, Ptr keep, Ptr counts) {
        dispatch_float(dtype, "batched_nms_padded", [&](auto tag) {
          using T = decltype(tag);
          cpu::batched_nms_padded(as_ptr<const T>(boxes), as_ptr<const T>(scores),
                                  as_ptr<const int64_t>(groups), n, threshold, num_groups,
                                  max_per_group, as_ptr<int64_t>(keep), as_ptr<int64_t>(counts));
        });
      },
      release_gil());
#if defined(DET_OPS_WITH_CUDA)
  cuda.def(
      "batched_nms_padded_sorted",
      [](int device, std::uintptr_t stream, int dtype, Ptr boxes, Ptr order, Ptr group_begin,
         int64_t num_groups, int64_t max_per_group, double threshold, Ptr keep, Ptr counts) {
        cuda::DeviceGuard guard(device);
        dispatch_float(dtype, "batched_nms_padded", [&](auto tag) {
          using T = decltype(tag);
          cuda::batched_nms_padded_sorted(as_ptr<const T>(boxes), as_ptr<const int64_t>(order),
                                          as_ptr<const int64_t>(group_begin), num_groups,
                                          max_per_group, threshold, as_ptr<int64_t>(keep),
                                          as_ptr<int64_t>(counts), stream);
        });
      },
      release_gil());
#else
  (void)cuda;
#endif
}

DET_OPS_BIND_OP(batched_nms_padded);

}  // namespace det_ops::bindings
