#include "bindings/bindings.h"

PYBIND11_MODULE(_C, m) {
  using namespace det_ops::bindings;
  m.doc() = "det-ops kernels. Takes buffer addresses and shapes; Python allocates every output.";
  bind_runtime(m);
  py::module_ cpu = m.def_submodule("cpu", "CPU kernels");
  bind_nms(cpu);
  bind_bbox_overlaps(cpu);
  bind_roi_align(cpu);
  bind_roi_pool(cpu);
  bind_focal_loss(cpu);
  bind_deform_roi_pool(cpu);
}
