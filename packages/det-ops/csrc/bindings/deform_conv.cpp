#include "bindings/bindings.h"
#include "common/dispatch.h"
#include "cpu/deform_conv.h"

namespace det_ops::bindings {

void bind_deform_conv(py::module_& cpu, py::module_& cuda) {
  // shape: (batch, channels, height, width, offset_groups, kernel_h, kernel_w,
  //         stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, out_h, out_w)
  // A mask or grad_mask address of 0 means none (DCN v1).
  auto to_geometry = [](const py::tuple& t) {
    if (t.size() != 15) throw std::invalid_argument("deform_conv: shape must have 15 entries");
    int64_t v[15];
    for (int i = 0; i < 15; ++i) v[i] = t[i].cast<int64_t>();
    return DeformConvGeometry{v[0], v[1], v[2],  v[3],  v[4],  v[5],  v[6], v[7],
                              v[8], v[9], v[10], v[11], v[12], v[13], v[14]};
  };
  cpu.def("deform_im2col", [to_geometry](int dtype, std::uintptr_t input, std::uintptr_t offset,
                                         std::uintptr_t mask, const py::tuple& shape,
                                         std::uintptr_t columns) {
    const DeformConvGeometry s = to_geometry(shape);
    py::gil_scoped_release release;
    dispatch_float(dtype, "deform_im2col", [&](auto tag) {
      using T = decltype(tag);
      cpu::deform_im2col(as_ptr<const T>(input), as_ptr<const T>(offset), as_ptr<const T>(mask),
                         s, as_ptr<T>(columns));
    });
  });
  cpu.def("deform_col2im", [to_geometry](int dtype, std::uintptr_t grad_columns,
                                         std::uintptr_t offset, std::uintptr_t mask,
                                         const py::tuple& shape, std::uintptr_t grad_input) {
    const DeformConvGeometry s = to_geometry(shape);
    py::gil_scoped_release release;
    dispatch_float(dtype, "deform_col2im", [&](auto tag) {
      using T = decltype(tag);
      cpu::deform_col2im(as_ptr<const T>(grad_columns), as_ptr<const T>(offset),
                         as_ptr<const T>(mask), s, as_ptr<T>(grad_input));
    });
  });
  cpu.def("deform_col2im_coord", [to_geometry](int dtype, std::uintptr_t grad_columns,
                                               std::uintptr_t input, std::uintptr_t offset,
                                               std::uintptr_t mask, const py::tuple& shape,
                                               std::uintptr_t grad_offset,
                                               std::uintptr_t grad_mask) {
    const DeformConvGeometry s = to_geometry(shape);
    py::gil_scoped_release release;
    dispatch_float(dtype, "deform_col2im_coord", [&](auto tag) {
      using T = decltype(tag);
      cpu::deform_col2im_coord(as_ptr<const T>(grad_columns), as_ptr<const T>(input),
                               as_ptr<const T>(offset), as_ptr<const T>(mask), s,
                               as_ptr<T>(grad_offset), as_ptr<T>(grad_mask));
    });
  });
#if defined(DET_OPS_WITH_CUDA)
  cuda.def("deform_im2col", [to_geometry](int device, std::uintptr_t stream, int dtype,
                                          std::uintptr_t input, std::uintptr_t offset,
                                          std::uintptr_t mask, const py::tuple& shape,
                                          std::uintptr_t columns) {
    const DeformConvGeometry s = to_geometry(shape);
    py::gil_scoped_release release;
    cuda::DeviceGuard guard(device);
    dispatch_float(dtype, "deform_im2col", [&](auto tag) {
      using T = decltype(tag);
      cuda::deform_im2col(as_ptr<const T>(input), as_ptr<const T>(offset), as_ptr<const T>(mask),
                          s, as_ptr<T>(columns), stream);
    });
  });
  cuda.def("deform_col2im", [to_geometry](int device, std::uintptr_t stream, int dtype,
                                          std::uintptr_t grad_columns, std::uintptr_t offset,
                                          std::uintptr_t mask, const py::tuple& shape,
                                          std::uintptr_t grad_input) {
    const DeformConvGeometry s = to_geometry(shape);
    py::gil_scoped_release release;
    cuda::DeviceGuard guard(device);
    dispatch_float(dtype, "deform_col2im", [&](auto tag) {
      using T = decltype(tag);
      cuda::deform_col2im(as_ptr<const T>(grad_columns), as_ptr<const T>(offset),
                          as_ptr<const T>(mask), s, as_ptr<T>(grad_input), stream);
    });
  });
  cuda.def("deform_col2im_coord", [to_geometry](int device, std::uintptr_t stream, int dtype,
                                                std::uintptr_t grad_columns,
                                                std::uintptr_t input, std::uintptr_t offset,
                                                std::uintptr_t mask, const py::tuple& shape,
                                                std::uintptr_t grad_offset,
                                                std::uintptr_t grad_mask) {
    const DeformConvGeometry s = to_geometry(shape);
    py::gil_scoped_release release;
    cuda::DeviceGuard guard(device);
    dispatch_float(dtype, "deform_col2im_coord", [&](auto tag) {
      using T = decltype(tag);
      cuda::deform_col2im_coord(as_ptr<const T>(grad_columns), as_ptr<const T>(input),
                                as_ptr<const T>(offset), as_ptr<const T>(mask), s,
                                as_ptr<T>(grad_offset), as_ptr<T>(grad_mask), stream);
    });
  });
#else
  (void)cuda;
#endif
}

}  // namespace det_ops::bindings
