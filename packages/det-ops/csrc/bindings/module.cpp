#include <map>
#include <string>

#include "bindings/bindings.h"

namespace det_ops::bindings {
namespace {

// Every op's binding function, by op name. Filled while the module loads, before
// PYBIND11_MODULE runs, by the DET_OPS_BIND_OP line of each bindings/<op>.cpp.
std::map<std::string, BindOp>& registered_ops() {
  static std::map<std::string, BindOp> ops;
  return ops;
}

void define_module(py::module_& m) {
  m.doc() = "det-ops kernels. Takes buffer addresses and shapes; Python allocates every output.";
  bind_runtime(m);
  py::module_ cpu = m.def_submodule("cpu", "CPU kernels");
  py::module_ cuda = m.def_submodule("cuda", "CUDA kernels (empty when built without CUDA)");
  for (const auto& [name, bind] : registered_ops()) bind(m, cpu, cuda);
#if defined(DET_OPS_CUDA_EMULATED)
  bind_emulator(m);
#endif
}

}  // namespace

bool add_op(const char* name, BindOp bind) {
  registered_ops().emplace(name, bind);
  return true;
}

}  // namespace det_ops::bindings

#if defined(DET_OPS_CUDA_EMULATED)
// The tests' build (DET_OPS_CUDA=EMULATE): its `cuda` kernels run on the CPU.
PYBIND11_MODULE(_C_emulated, m) { det_ops::bindings::define_module(m); }
#else
PYBIND11_MODULE(_C, m) { det_ops::bindings::define_module(m); }
#endif
