#include "bindings/bindings.h"
#include "common/dispatch.h"
#include "cpu/roi_align.h"

namespace det_ops::bindings {

void bind_roi_align(py::module_& cpu, py::module_& cuda) {
  // shape: (batch, channels, height, width, num_rois, pooled_h, pooled_w,
  //         sampling_ratio, spatial_scale, aligned: a RoIAlignMode)
  auto to_shape = [](const py::tuple& t) {
    return RoIAlignShape{t[0].cast<int64_t>(), t[1].cast<int64_t>(), t[2].cast<int64_t>(),
                              t[3].cast<int64_t>(), t[4].cast<int64_t>(), t[5].cast<int64_t>(),
                              t[6].cast<int64_t>(), t[7].cast<int64_t>(), t[8].cast<double>(),
                              t[9].cast<int>()};
  };
  // The CPU kernels share one signature: (const T* in, const T* rois, shape, T* out).
  auto def_cpu = [&cpu, to_shape](const char* name, const char* op, auto kernel) {
    cpu.def(name, [to_shape, op, kernel](int dtype, std::uintptr_t in, std::uintptr_t rois,
                                         const py::tuple& shape, std::uintptr_t out) {
      const RoIAlignShape s = to_shape(shape);
      py::gil_scoped_release release;
      dispatch_float(dtype, op, [&](auto tag) {
        using T = decltype(tag);
        kernel(as_ptr<const T>(in), as_ptr<const T>(rois), s, as_ptr<T>(out));
      });
    });
  };
  def_cpu("roi_align_forward", "roi_align", [](auto... args) { cpu::roi_align_forward(args...); });
  def_cpu("roi_align_forward_nhwc", "roi_align",
          [](auto... args) { cpu::roi_align_forward_nhwc(args...); });
  def_cpu("roi_align_backward", "roi_align_backward",
          [](auto... args) { cpu::roi_align_backward(args...); });
  def_cpu("roi_align_backward_nhwc", "roi_align_backward",
          [](auto... args) { cpu::roi_align_backward_nhwc(args...); });
#if defined(DET_OPS_WITH_CUDA)
  cuda.def("roi_align_forward", [to_shape](int device, std::uintptr_t stream, int dtype,
                                           std::uintptr_t input, std::uintptr_t rois,
                                           const py::tuple& shape, std::uintptr_t output) {
    const RoIAlignShape s = to_shape(shape);
    py::gil_scoped_release release;
    cuda::DeviceGuard guard(device);
    dispatch_float(dtype, "roi_align", [&](auto tag) {
      using T = decltype(tag);
      cuda::roi_align_forward(as_ptr<const T>(input), as_ptr<const T>(rois), s,
                              as_ptr<T>(output), stream);
    });
  });
  cuda.def("roi_align_backward", [to_shape](int device, std::uintptr_t stream, int dtype,
                                            std::uintptr_t grad_output, std::uintptr_t rois,
                                            const py::tuple& shape, std::uintptr_t grad_input) {
    const RoIAlignShape s = to_shape(shape);
    py::gil_scoped_release release;
    cuda::DeviceGuard guard(device);
    dispatch_float(dtype, "roi_align_backward", [&](auto tag) {
      using T = decltype(tag);
      cuda::roi_align_backward(as_ptr<const T>(grad_output), as_ptr<const T>(rois), s,
                               as_ptr<T>(grad_input), stream);
    });
  });
#else
  (void)cuda;
#endif
}

}  // namespace det_ops::bindings
