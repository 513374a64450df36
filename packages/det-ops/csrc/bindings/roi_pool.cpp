#include "bindings/bindings.h"
#include "cpu/roi_pool.h"

#if defined(DET_OPS_WITH_CUDA)
#include "cuda/roi_pool.h"
#endif

namespace det_ops::bindings {

void bind_roi_pool(py::module_& m, py::module_& cpu, py::module_& cuda) {
  ShapeClass<RoIPoolShape>(m, "RoIPoolShape",
                           "RoIPool's input, RoIs and output size (csrc/common/roi_geometry.h).")
      .field("batch", &RoIPoolShape::batch)
      .field("channels", &RoIPoolShape::channels)
      .field("height", &RoIPoolShape::height)
      .field("width", &RoIPoolShape::width)
      .field("num_rois", &RoIPoolShape::num_rois)
      .field("pooled_h", &RoIPoolShape::pooled_h)
      .field("pooled_w", &RoIPoolShape::pooled_w)
      .field("spatial_scale", &RoIPoolShape::spatial_scale);

  // argmax (int32): the flat y * width + x of each output's maximum, -1 if its bin is empty.
  auto forward = [](auto launch, auto tag, Ptr input, Ptr rois, const RoIPoolShape& s,
                    Ptr output, Ptr argmax) {
    using T = decltype(tag);
    launch(as_ptr<const T>(input), as_ptr<const Compute<T>>(rois), s, as_ptr<T>(output),
           as_ptr<int32_t>(argmax));
  };
  // grad_input must be zero-filled by the caller.
  auto backward = [](auto launch, auto tag, Ptr grad_output, Ptr rois, Ptr argmax,
                     const RoIPoolShape& s, Ptr grad_input) {
    using T = decltype(tag);
    launch(as_ptr<const T>(grad_output), as_ptr<const Compute<T>>(rois),
           as_ptr<const int32_t>(argmax), s, as_ptr<Compute<T>>(grad_input));
  };
  using Forward = void(Ptr, Ptr, const RoIPoolShape&, Ptr, Ptr);
  using Backward = void(Ptr, Ptr, Ptr, const RoIPoolShape&, Ptr);
  // The CUDA kernels also take float16 and bfloat16 maps (dtype codes 2, 3), with float32
  // RoIs and a float32 grad_input (Compute<T>).
  constexpr bool kHalf = true;
  def_kernel<Forward, kHalf>(cpu, cuda, "roi_pool_forward", DET_OPS_LAUNCHERS(roi_pool_forward),
                             forward);
  def_kernel<Backward, kHalf>(cpu, cuda, "roi_pool_backward",
                              DET_OPS_LAUNCHERS(roi_pool_backward), backward);
  // The channels-last kernels (CUDA only; a channels-last CPU map is copied to NCHW)
  // read and write [B, H, W, C] maps in place; output, argmax and grad_output as above.
  def_kernel<Forward, kHalf>(cpu, cuda, "roi_pool_forward_nhwc",
                             DET_OPS_CUDA_LAUNCHER(roi_pool_forward_nhwc), forward);
  def_kernel<Backward, kHalf>(cpu, cuda, "roi_pool_backward_nhwc",
                              DET_OPS_CUDA_LAUNCHER(roi_pool_backward_nhwc), backward);
}

DET_OPS_BIND_OP(roi_pool);

}  // namespace det_ops::bindings
