// det_ops._C_emulated.emulator: the emulator's launch log and seed, and
// kernels with barrier faults for its own tests (tests/test_cuda_emulation.py).
#include <pybind11/stl.h>

#include "bindings/bindings.h"
#include "common/dispatch.h"
#include "emulated/launch_log.h"
#include "emulated/selftest.h"

namespace det_ops::bindings {

void bind_emulator(py::module_& m) {
  py::module_ emulator = m.def_submodule(
      "emulator", "The CPU emulation of the CUDA execution model that runs `cuda` (tests only)");
  emulator.def("launches", &emulated::launches,
               "Launches per kernel name since the module was loaded.");
  emulator.def("set_seed", &emulated::set_seed, py::arg("seed"),
               "Restarts the seeded sequence of block and thread interleavings.");
  emulator.def(
      "rotate_through_shared_memory",
      [](std::uintptr_t in, std::uintptr_t out, int64_t blocks, bool sync) {
        emulated::rotate_through_shared_memory(as_ptr<const int64_t>(in), as_ptr<int64_t>(out),
                                               blocks, sync);
      },
      py::arg("input"), py::arg("output"), py::arg("blocks"), py::arg("sync"));
  emulator.def(
      "divergent_barrier",
      [](std::uintptr_t out) { emulated::divergent_barrier(as_ptr<int64_t>(out)); },
      py::arg("output"));
}

}  // namespace det_ops::bindings
