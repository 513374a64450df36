#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "bindings/bindings.h"
#include "common/multi_level_roi_align.h"
#include "cpu/multi_level_roi_align.h"

#if defined(DET_OPS_WITH_CUDA)
#include "cuda/multi_level_roi_align.h"
#endif

namespace det_ops::bindings {
namespace {

// The levels of a call from one RoIAlignShape and one layout flag per level.
RoIAlignLevels roi_align_levels(const std::vector<RoIAlignShape>& shapes,
                                const std::vector<bool>& channels_last) {
  if (shapes.empty() || shapes.size() > kMaxFeatureLevels ||
      channels_last.size() != shapes.size()) {
    throw std::invalid_argument("multi_level_roi_align: 1 to " +
                                std::to_string(kMaxFeatureLevels) +
                                " levels, one layout each, got " +
                                std::to_string(shapes.size()) + " shapes and " +
                                std::to_string(channels_last.size()) + " layouts");
  }
  RoIAlignLevels L{};
  L.num_levels = static_cast<int>(shapes.size());
  for (size_t l = 0; l < shapes.size(); ++l) {
    L.level[l] = shapes[l];
    L.channels_last[l] = channels_last[l];
  }
  return L;
}

template <typename P>
LevelPointers<P> level_pointers(const std::vector<Ptr>& addresses) {
  LevelPointers<P> pointers{};
  for (size_t l = 0; l < addresses.size() && l < kMaxFeatureLevels; ++l) {
    pointers.data[l] = reinterpret_cast<P>(addresses[l]);
  }
  return pointers;
}

}  // namespace

void bind_multi_level_roi_align(py::module_& m, py::module_& cpu, py::module_& cuda) {
  m.attr("MAX_FEATURE_LEVELS") = kMaxFeatureLevels;
  // forward(maps, rois, levels, shapes, channels_last, output): maps one address per level,
  // shapes one RoIAlignShape per level (num_rois: all RoIs), channels_last one flag per level.
  // backward(grad_output, rois, levels, shapes, channels_last, grad_inputs). The CUDA kernels
  // also take float16 and bfloat16 maps (dtype codes 2, 3), with float32 RoIs and float32
  // gradient buffers (Compute<T>).
  using Shapes = std::vector<RoIAlignShape>;
  using Layouts = std::vector<bool>;
  using Addresses = std::vector<Ptr>;
  constexpr bool kHalf = true;
  def_kernel<void(Addresses, Ptr, Ptr, Shapes, Layouts, Ptr), kHalf>(
      cpu, cuda, "multi_level_roi_align_forward", DET_OPS_LAUNCHERS(multi_level_roi_align_forward),
      [](auto launch, auto tag, Addresses maps, Ptr rois, Ptr levels, Shapes shapes,
         Layouts channels_last, Ptr output) {
        using T = decltype(tag);
        launch(level_pointers<const T*>(maps), as_ptr<const Compute<T>>(rois),
               as_ptr<const int64_t>(levels), roi_align_levels(shapes, channels_last),
               as_ptr<T>(output));
      });
  def_kernel<void(Ptr, Ptr, Ptr, Shapes, Layouts, Addresses), kHalf>(
      cpu, cuda, "multi_level_roi_align_backward",
      DET_OPS_LAUNCHERS(multi_level_roi_align_backward),
      [](auto launch, auto tag, Ptr grad_output, Ptr rois, Ptr levels, Shapes shapes,
         Layouts channels_last, Addresses grad_inputs) {
        using T = decltype(tag);
        launch(as_ptr<const T>(grad_output), as_ptr<const Compute<T>>(rois),
               as_ptr<const int64_t>(levels), roi_align_levels(shapes, channels_last),
               level_pointers<Compute<T>*>(grad_inputs));
      });
}

DET_OPS_BIND_OP(multi_level_roi_align);

}  // namespace det_ops::bindings
