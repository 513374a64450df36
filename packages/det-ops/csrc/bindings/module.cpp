#include "bindings/bindings.h"

PYBIND11_MODULE(_C, m) {
  using namespace det_ops::bindings;
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
}
