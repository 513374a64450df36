#include "bindings/bindings.h"
#include "cpu/deform_roi_pool.h"

#if defined(DET_OPS_WITH_CUDA)
#include "cuda/deform_roi_pool.h"
#endif

namespace det_ops::bindings {

void bind_deform_roi_pool(py::module_& m, py::module_& cpu, py::module_& cuda) {
  ShapeClass<DeformRoIPoolShape>(m, "DeformRoIPoolShape",
                                 "Deformable RoI pooling's input, RoIs, output size, sampling "
                                 "and offset scale (csrc/common/deform_roi_pool.h).")
      .field("batch", &DeformRoIPoolShape::batch)
      .field("channels", &DeformRoIPoolShape::channels)
      .field("height", &DeformRoIPoolShape::height)
      .field("width", &DeformRoIPoolShape::width)
      .field("num_rois", &DeformRoIPoolShape::num_rois)
      .field("pooled_h", &DeformRoIPoolShape::pooled_h)
      .field("pooled_w", &DeformRoIPoolShape::pooled_w)
      .field("sampling_ratio", &DeformRoIPoolShape::sampling_ratio)
      .field("spatial_scale", &DeformRoIPoolShape::spatial_scale)
      .field("gamma", &DeformRoIPoolShape::gamma)
      .field("aligned", &DeformRoIPoolShape::aligned);

  // offset, mask and the gradient buffers are addresses, 0 for none.
  auto forward = [](auto launch, auto tag, Ptr input, Ptr rois, Ptr offset, Ptr mask,
                    const DeformRoIPoolShape& s, Ptr output) {
    using T = decltype(tag);
    launch(as_ptr<const T>(input), as_ptr<const T>(rois), as_ptr<const T>(offset),
           as_ptr<const T>(mask), s, as_ptr<T>(output));
  };
  // grad_input must be zero-filled by the caller; grad_offset and grad_mask are overwritten.
  auto backward = [](auto launch, auto tag, Ptr grad_output, Ptr input, Ptr rois, Ptr offset,
                     Ptr mask, const DeformRoIPoolShape& s, Ptr grad_input, Ptr grad_offset,
                     Ptr grad_mask) {
    using T = decltype(tag);
    launch(as_ptr<const T>(grad_output), as_ptr<const T>(input), as_ptr<const T>(rois),
           as_ptr<const T>(offset), as_ptr<const T>(mask), s, as_ptr<T>(grad_input),
           as_ptr<T>(grad_offset), as_ptr<T>(grad_mask));
  };
  using Forward = void(Ptr, Ptr, Ptr, Ptr, const DeformRoIPoolShape&, Ptr);
  using Backward = void(Ptr, Ptr, Ptr, Ptr, Ptr, const DeformRoIPoolShape&, Ptr, Ptr, Ptr);
  def_kernel<Forward>(cpu, cuda, "deform_roi_pool_forward",
                      DET_OPS_LAUNCHERS(deform_roi_pool_forward), forward);
  def_kernel<Backward>(cpu, cuda, "deform_roi_pool_backward",
                       DET_OPS_LAUNCHERS(deform_roi_pool_backward), backward);
  // The channels-last kernels (CUDA only; the CPU kernels transpose a copy themselves)
  // read a [B, H, W, C] map and write a [B, H, W, C] grad_input in place.
  def_kernel<Forward>(cpu, cuda, "deform_roi_pool_forward_nhwc",
                      DET_OPS_CUDA_LAUNCHER(deform_roi_pool_forward_nhwc), forward);
  def_kernel<Backward>(cpu, cuda, "deform_roi_pool_backward_nhwc",
                       DET_OPS_CUDA_LAUNCHER(deform_roi_pool_backward_nhwc), backward);
}

DET_OPS_BIND_OP(deform_roi_pool);

}  // namespace det_ops::bindings
