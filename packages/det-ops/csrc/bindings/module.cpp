#include "bindings/bindings.h"

namespace det_ops::bindings {
namespace {

void define_module(py::module_& m) {
  m.doc() = "det-ops kernels. Takes buffer addresses and shapes; Python allocates every output.";
  bind_runtime(m);
  py::module_ cpu = m.def_submodule("cpu", "CPU kernels");
  py::module_ cuda = m.def_submodule("cuda", "CUDA kernels (empty when built without CUDA)");
  bind_nms(cpu, cuda);
  bind_bbox_overlaps(cpu, cuda);
  bind_roi_align(cpu, cuda);
  bind_roi_pool(cpu, cuda);
  bind_focal_loss(cpu, cuda);
  bind_deform_conv(cpu, cuda);
  bind_deform_roi_pool(cpu, cuda);
#if defined(DET_OPS_CUDA_EMULATED)
  bind_emulator(m);
#endif
}

}  // namespace
}  // namespace det_ops::bindings

#if defined(DET_OPS_CUDA_EMULATED)
// The tests' build (DET_OPS_CUDA=EMULATE): its `cuda` kernels run on the CPU.
PYBIND11_MODULE(_C_emulated, m) { det_ops::bindings::define_module(m); }
#else
PYBIND11_MODULE(_C, m) { det_ops::bindings::define_module(m); }
#endif
