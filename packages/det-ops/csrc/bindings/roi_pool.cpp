#include "bindings/bindings.h"
#include "common/dispatch.h"
#include "cpu/roi_pool.h"

namespace det_ops::bindings {

void bind_roi_pool(py::module_& cpu, py::module_& cuda) {
  // shape: (batch, channels, height, width, num_rois, pooled_h, pooled_w, spatial_scale)
  auto to_shape = [](const py::tuple& t) {
    return RoIPoolShape{t[0].cast<int64_t>(), t[1].cast<int64_t>(), t[2].cast<int64_t>(),
                             t[3].cast<int64_t>(), t[4].cast<int64_t>(), t[5].cast<int64_t>(),
                             t[6].cast<int64_t>(), t[7].cast<double>()};
  };
  cpu.def("roi_pool_forward", [to_shape](int dtype, std::uintptr_t input, std::uintptr_t rois,
                                         const py::tuple& shape, std::uintptr_t output,
                                         std::uintptr_t argmax) {
    const RoIPoolShape s = to_shape(shape);
    py::gil_scoped_release release;
    dispatch_float(dtype, "roi_pool", [&](auto tag) {
      using T = decltype(tag);
      cpu::roi_pool_forward(as_ptr<const T>(input), as_ptr<const T>(rois), s, as_ptr<T>(output),
                            as_ptr<int64_t>(argmax));
    });
  });
  cpu.def("roi_pool_backward", [to_shape](int dtype, std::uintptr_t grad_output,
                                          std::uintptr_t rois, std::uintptr_t argmax,
                                          const py::tuple& shape, std::uintptr_t grad_input) {
    const RoIPoolShape s = to_shape(shape);
    py::gil_scoped_release release;
    dispatch_float(dtype, "roi_pool_backward", [&](auto tag) {
      using T = decltype(tag);
      cpu::roi_pool_backward(as_ptr<const T>(grad_output), as_ptr<const T>(rois),
                             as_ptr<const int64_t>(argmax), s, as_ptr<T>(grad_input));
    });
  });
#if defined(DET_OPS_WITH_CUDA)
  cuda.def("roi_pool_forward", [to_shape](int device, std::uintptr_t stream, int dtype,
                                          std::uintptr_t input, std::uintptr_t rois,
                                          const py::tuple& shape, std::uintptr_t output,
                                          std::uintptr_t argmax) {
    const RoIPoolShape s = to_shape(shape);
    py::gil_scoped_release release;
    cuda::DeviceGuard guard(device);
    dispatch_float(dtype, "roi_pool", [&](auto tag) {
      using T = decltype(tag);
      cuda::roi_pool_forward(as_ptr<const T>(input), as_ptr<const T>(rois), s, as_ptr<T>(output),
                             as_ptr<int64_t>(argmax), stream);
    });
  });
  cuda.def("roi_pool_backward", [to_shape](int device, std::uintptr_t stream, int dtype,
                                           std::uintptr_t grad_output, std::uintptr_t rois,
                                           std::uintptr_t argmax, const py::tuple& shape,
                                           std::uintptr_t grad_input) {
    const RoIPoolShape s = to_shape(shape);
    py::gil_scoped_release release;
    cuda::DeviceGuard guard(device);
    dispatch_float(dtype, "roi_pool_backward", [&](auto tag) {
      using T = decltype(tag);
      cuda::roi_pool_backward(as_ptr<const T>(grad_output), as_ptr<const T>(rois),
                              as_ptr<const int64_t>(argmax), s, as_ptr<T>(grad_input), stream);
    });
  });
#else
  (void)cuda;
#endif
}

}  // namespace det_ops::bindings
