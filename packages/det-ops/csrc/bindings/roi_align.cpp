#include "bindings/bindings.h"
#include "cpu/roi_align.h"

#if defined(DET_OPS_WITH_CUDA)
#include "cuda/roi_align.h"
#endif

namespace det_ops::bindings {

void bind_roi_align(py::module_& m, py::module_& cpu, py::module_& cuda) {
  ShapeClass<RoIAlignShape>(m, "RoIAlignShape",
                            "RoIAlign's input, RoIs, output size and sampling "
                            "(csrc/common/roi_geometry.h); aligned is a RoIAlignMode.")
      .field("batch", &RoIAlignShape::batch)
      .field("channels", &RoIAlignShape::channels)
      .field("height", &RoIAlignShape::height)
      .field("width", &RoIAlignShape::width)
      .field("num_rois", &RoIAlignShape::num_rois)
      .field("pooled_h", &RoIAlignShape::pooled_h)
      .field("pooled_w", &RoIAlignShape::pooled_w)
      .field("sampling_ratio", &RoIAlignShape::sampling_ratio)
      .field("spatial_scale", &RoIAlignShape::spatial_scale)
      .field("aligned", &RoIAlignShape::aligned);

  // Every RoIAlign kernel takes (in, rois, shape, out): forward reads the input and
  // writes the output, backward reads grad_output and adds into grad_input (zero-filled
  // by the caller). The _nhwc kernels read and write channels-last maps. The CUDA kernels
  // also take float16 and bfloat16 maps (dtype codes 2, 3), with float32 RoIs and a float32
  // grad_input (Compute<T>).
  auto forward = [](auto launch, auto tag, Ptr in, Ptr rois, const RoIAlignShape& s, Ptr out) {
    using T = decltype(tag);
    launch(as_ptr<const T>(in), as_ptr<const Compute<T>>(rois), s, as_ptr<T>(out));
  };
  auto backward = [](auto launch, auto tag, Ptr in, Ptr rois, const RoIAlignShape& s, Ptr out) {
    using T = decltype(tag);
    launch(as_ptr<const T>(in), as_ptr<const Compute<T>>(rois), s, as_ptr<Compute<T>>(out));
  };
  using Signature = void(Ptr, Ptr, const RoIAlignShape&, Ptr);
  constexpr bool kHalf = true;
  def_kernel<Signature, kHalf>(cpu, cuda, "roi_align_forward",
                               DET_OPS_LAUNCHERS(roi_align_forward), forward);
  def_kernel<Signature, kHalf>(cpu, cuda, "roi_align_backward",
                               DET_OPS_LAUNCHERS(roi_align_backward), backward);
  def_kernel<Signature, kHalf>(cpu, cuda, "roi_align_forward_nhwc",
                               DET_OPS_LAUNCHERS(roi_align_forward_nhwc), forward);
  def_kernel<Signature, kHalf>(cpu, cuda, "roi_align_backward_nhwc",
                               DET_OPS_LAUNCHERS(roi_align_backward_nhwc), backward);
}

DET_OPS_BIND_OP(roi_align);

}  // namespace det_ops::bindings
