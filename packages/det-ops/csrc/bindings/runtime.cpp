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
  m.def(
      "set_max_grid_blocks",
      [](int64_t blocks) {
        if (blocks < 1 || blocks > 0x7fffffff) {
          throw std::invalid_argument(
              "set_max_grid_blocks: blocks must be in [1, 2**31 - 1], got " +
              std::to_string(blocks));
        }
        return cuda::set_max_grid_blocks(blocks);
      },
      py::arg("blocks"),
      "Caps the blocks of the grid-stride kernels (tests make the loops wrap with a small "
      "cap); returns the previous cap.");
  m.def(
      "set_max_index32_elements",
      [](int64_t elements) {
        if (elements < 0 || elements > (int64_t(1) << 30)) {
          throw std::invalid_argument(
              "set_max_index32_elements: elements must be in [0, 2**30], got " +
              std::to_string(elements));
        }
        return cuda::set_max_index32_elements(elements);
      },
      py::arg("elements"),
      "The most elements for which a kernel indexes in 32 bits (tests set 0 to run the "
      "64-bit kernels); returns the previous limit.");
#else
  m.attr("cuda_compiled") = false;
  m.def("cuda_device_count", []() { return 0; }, "Always 0: built without CUDA.");
#endif
}

}  // namespace det_ops::bindings
