#include "bindings/bindings.h"
#include "common/dispatch.h"
#include "cpu/nms.h"

#if defined(DET_OPS_WITH_CUDA)
#include "cuda/nms.h"
#endif
#include "cpu/parallel.h"

namespace det_ops::bindings {

void bind_nms(py::module_& /*m*/, py::module_& cpu, py::module_& cuda) {
  cpu.def(
      "nms",
      [](int dtype, std::uintptr_t boxes, std::uintptr_t scores, int64_t n, double threshold,
         std::uintptr_t keep) {
        int64_t count = 0;
        dispatch_float(dtype, "nms", [&](auto tag) {
          using T = decltype(tag);
          count = cpu::nms(as_ptr<const T>(boxes), as_ptr<const T>(scores), n, threshold,
                           as_ptr<int64_t>(keep), cpu::num_threads());
        });
        return count;
      },
      release_gil());
  cpu.def(
      "batched_nms",
      [](int dtype, std::uintptr_t boxes, std::uintptr_t scores, std::uintptr_t idxs, int64_t n,
         double threshold, std::uintptr_t keep) {
        int64_t count = 0;
        dispatch_float(dtype, "batched_nms", [&](auto tag) {
          using T = decltype(tag);
          count = cpu::batched_nms(as_ptr<const T>(boxes), as_ptr<const T>(scores),
                                   as_ptr<const int64_t>(idxs), n, threshold,
                                   as_ptr<int64_t>(keep));
        });
        return count;
      },
      release_gil());
  cpu.def(
      "soft_nms",
      [](int dtype, std::uintptr_t boxes, std::uintptr_t scores, int64_t n, double threshold,
         double sigma, double min_score, int method, std::uintptr_t keep,
         std::uintptr_t new_scores) {
        int64_t count = 0;
        dispatch_float(dtype, "soft_nms", [&](auto tag) {
          using T = decltype(tag);
          count = cpu::soft_nms(as_ptr<const T>(boxes), as_ptr<const T>(scores), n, threshold,
                                sigma, min_score, method, as_ptr<int64_t>(keep),
                                as_ptr<T>(new_scores));
        });
        return count;
      },
      release_gil());
#if defined(DET_OPS_WITH_CUDA)
  // Boxes sorted by decreasing score; workspaces mask [n, words], removed [words].
  cuda.def(
      "nms_sorted",
      [](int device, std::uintptr_t stream, int dtype, std::uintptr_t boxes, int64_t n,
         double threshold, std::uintptr_t mask, std::uintptr_t removed, std::uintptr_t keep,
         std::uintptr_t count) {
        cuda::DeviceGuard guard(device);
        dispatch_float(dtype, "nms", [&](auto tag) {
          using T = decltype(tag);
          cuda::nms_sorted(as_ptr<const T>(boxes), n, threshold, as_ptr<uint64_t>(mask),
                           as_ptr<uint64_t>(removed), as_ptr<int64_t>(keep),
                           as_ptr<int64_t>(count), stream);
        });
      },
      release_gil());
#else
  (void)cuda;
#endif
}

DET_OPS_BIND_OP(nms);

}  // namespace det_ops::bindings
