#include "bindings/bindings.h"
#include "common/dispatch.h"
#include "cpu/deform_roi_pool.h"

namespace det_ops::bindings {

void bind_deform_roi_pool(py::module_& cpu, py::module_& cuda) {
  // shape: (batch, channels, height, width, num_rois, pooled_h, pooled_w,
  //         sampling_ratio, spatial_scale, gamma, aligned)
  // offset, mask and the gradient buffers are addresses, 0 for none.
  auto to_shape = [](const py::tuple& t) {
    return DeformRoIPoolShape{
        t[0].cast<int64_t>(), t[1].cast<int64_t>(), t[2].cast<int64_t>(), t[3].cast<int64_t>(),
        t[4].cast<int64_t>(), t[5].cast<int64_t>(), t[6].cast<int64_t>(), t[7].cast<int64_t>(),
        t[8].cast<double>(),  t[9].cast<double>(),  t[10].cast<int>()};
  };
  cpu.def("deform_roi_pool_forward",
          [to_shape](int dtype, std::uintptr_t input, std::uintptr_t rois, std::uintptr_t offset,
                     std::uintptr_t mask, const py::tuple& shape, std::uintptr_t output) {
            const DeformRoIPoolShape s = to_shape(shape);
            py::gil_scoped_release release;
            dispatch_float(dtype, "deform_roi_pool", [&](auto tag) {
              using T = decltype(tag);
              cpu::deform_roi_pool_forward(as_ptr<const T>(input), as_ptr<const T>(rois),
                                           as_ptr<const T>(offset), as_ptr<const T>(mask), s,
                                           as_ptr<T>(output));
            });
          });
  cpu.def("deform_roi_pool_backward",
          [to_shape](int dtype, std::uintptr_t grad_output, std::uintptr_t input,
                     std::uintptr_t rois, std::uintptr_t offset, std::uintptr_t mask,
                     const py::tuple& shape, std::uintptr_t grad_input,
                     std::uintptr_t grad_offset, std::uintptr_t grad_mask) {
            const DeformRoIPoolShape s = to_shape(shape);
            py::gil_scoped_release release;
            dispatch_float(dtype, "deform_roi_pool_backward", [&](auto tag) {
              using T = decltype(tag);
              cpu::deform_roi_pool_backward(
                  as_ptr<const T>(grad_output), as_ptr<const T>(input), as_ptr<const T>(rois),
                  as_ptr<const T>(offset), as_ptr<const T>(mask), s, as_ptr<T>(grad_input),
                  as_ptr<T>(grad_offset), as_ptr<T>(grad_mask));
            });
          });
#if defined(DET_OPS_WITH_CUDA)
  cuda.def("deform_roi_pool_forward",
           [to_shape](int device, std::uintptr_t stream, int dtype, std::uintptr_t input,
                      std::uintptr_t rois, std::uintptr_t offset, std::uintptr_t mask,
                      const py::tuple& shape, std::uintptr_t output) {
             const DeformRoIPoolShape s = to_shape(shape);
             py::gil_scoped_release release;
             cuda::DeviceGuard guard(device);
             dispatch_float(dtype, "deform_roi_pool", [&](auto tag) {
               using T = decltype(tag);
               cuda::deform_roi_pool_forward(as_ptr<const T>(input), as_ptr<const T>(rois),
                                             as_ptr<const T>(offset), as_ptr<const T>(mask), s,
                                             as_ptr<T>(output), stream);
             });
           });
  cuda.def("deform_roi_pool_backward",
           [to_shape](int device, std::uintptr_t stream, int dtype, std::uintptr_t grad_output,
                      std::uintptr_t input, std::uintptr_t rois, std::uintptr_t offset,
                      std::uintptr_t mask, const py::tuple& shape, std::uintptr_t grad_input,
                      std::uintptr_t grad_offset, std::uintptr_t grad_mask) {
             const DeformRoIPoolShape s = to_shape(shape);
             py::gil_scoped_release release;
             cuda::DeviceGuard guard(device);
             dispatch_float(dtype, "deform_roi_pool_backward", [&](auto tag) {
               using T = decltype(tag);
               cuda::deform_roi_pool_backward(
                   as_ptr<const T>(grad_output), as_ptr<const T>(input), as_ptr<const T>(rois),
                   as_ptr<const T>(offset), as_ptr<const T>(mask), s, as_ptr<T>(grad_input),
                   as_ptr<T>(grad_offset), as_ptr<T>(grad_mask), stream);
             });
           });
#else
  (void)cuda;
#endif
}

}  // namespace det_ops::bindings
