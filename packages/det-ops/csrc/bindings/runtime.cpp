// Build and runtime facts: threads of the CPU kernels, whether CUDA is in.
#include "bindings/bindings.h"
#include "cpu/parallel.h"

#if defined(DET_OPS_WITH_CUDA)
#include "cuda/device.h"
#endif

namespace det_ops::bindings {

void bind_runtime(py::module_& m) {
  m.def("num_threads", &cpu::num_threads, "Threads the CPU kernels use.");
  m.def("set_num_threads", &cpu::set_num_threads, py::arg("n"),
        "Sets the threads the CPU kernels use (at least 1).");
#if defined(DET_OPS_WITH_CUDA)
  m.attr("cuda_compiled") = true;
  m.def("cuda_device_count", &cuda::device_count,
        "CUDA devices usable by this build (0 without a driver or a GPU).");
#else
  m.attr("cuda_compiled") = false;
  m.def("cuda_device_count", []() { return 0; }, "Always 0: built without CUDA.");
#endif
}

}  // namespace det_ops::bindings
