#include "bindings/bindings.h"
#include "cpu/deform_conv.h"

#if defined(DET_OPS_WITH_CUDA)
#include "cuda/deform_conv.h"
#endif

namespace det_ops::bindings {

void bind_deform_conv(py::module_& m, py::module_& cpu, py::module_& cuda) {
  ShapeClass<DeformConvGeometry>(m, "DeformConvGeometry",
                                 "Shapes and hyper-parameters of one deformable convolution "
                                 "(csrc/common/deform_conv.h).")
      .field("batch", &DeformConvGeometry::batch)
      .field("channels", &DeformConvGeometry::channels)
      .field("height", &DeformConvGeometry::height)
      .field("width", &DeformConvGeometry::width)
      .field("offset_groups", &DeformConvGeometry::offset_groups)
      .field("kernel_h", &DeformConvGeometry::kernel_h)
      .field("kernel_w", &DeformConvGeometry::kernel_w)
      .field("stride_h", &DeformConvGeometry::stride_h)
      .field("stride_w", &DeformConvGeometry::stride_w)
      .field("pad_h", &DeformConvGeometry::pad_h)
      .field("pad_w", &DeformConvGeometry::pad_w)
      .field("dilation_h", &DeformConvGeometry::dilation_h)
      .field("dilation_w", &DeformConvGeometry::dilation_w)
      .field("out_h", &DeformConvGeometry::out_h)
      .field("out_w", &DeformConvGeometry::out_w);

  // A mask or grad_mask address of 0 means none (DCN v1).
  def_kernel<void(Ptr, Ptr, Ptr, const DeformConvGeometry&, Ptr)>(
      cpu, cuda, "deform_im2col", DET_OPS_LAUNCHERS(deform_im2col),
      [](auto launch, auto tag, Ptr input, Ptr offset, Ptr mask, const DeformConvGeometry& s,
         Ptr columns) {
        using T = decltype(tag);
        launch(as_ptr<const T>(input), as_ptr<const T>(offset), as_ptr<const T>(mask), s,
               as_ptr<T>(columns));
      });
  def_kernel<void(Ptr, Ptr, Ptr, const DeformConvGeometry&, Ptr)>(
      cpu, cuda, "deform_col2im", DET_OPS_LAUNCHERS(deform_col2im),
      [](auto launch, auto tag, Ptr grad_columns, Ptr offset, Ptr mask,
         const DeformConvGeometry& s, Ptr grad_input) {
        using T = decltype(tag);
        launch(as_ptr<const T>(grad_columns), as_ptr<const T>(offset), as_ptr<const T>(mask), s,
               as_ptr<T>(grad_input));
      });
  def_kernel<void(Ptr, Ptr, Ptr, Ptr, const DeformConvGeometry&, Ptr, Ptr)>(
      cpu, cuda, "deform_col2im_coord", DET_OPS_LAUNCHERS(deform_col2im_coord),
      [](auto launch, auto tag, Ptr grad_columns, Ptr input, Ptr offset, Ptr mask,
         const DeformConvGeometry& s, Ptr grad_offset, Ptr grad_mask) {
        using T = decltype(tag);
        launch(as_ptr<const T>(grad_columns), as_ptr<const T>(input), as_ptr<const T>(offset),
               as_ptr<const T>(mask), s, as_ptr<T>(grad_offset), as_ptr<T>(grad_mask));
      });
}

DET_OPS_BIND_OP(deform_conv);

}  // namespace det_ops::bindings
