// Multi-level RoIAlign on the GPU: RoIAlign's blocks (cuda/roi_align_blocks.cuh), one
// launch for every level. A block takes a part of one RoI's outputs; it reads the RoI's
// level, and pools from that level's map with that level's sizes, scale and layout (the
// same for the whole block, so the layout's branch never diverges). The levels' maps
// and sizes travel in the kernel's arguments (RoIAlignLevels, LevelPointers).
#include "common/multi_level_roi_align.h"
#include "cuda/multi_level_roi_align.h"
#include "cuda/roi_align_blocks.cuh"

namespace det_ops::cuda {
namespace {

using namespace roi_align_blocks;

template <typename S, typename I>
__global__ void multi_level_roi_align_forward_kernel(LevelPointers<const S*> inputs,
                                                     const Compute<S>* rois,
                                                     const int64_t* levels, RoIAlignLevels L,
                                                     S* output) {
  using T = Compute<S>;
  __shared__ RoITaps<T, I> taps;
  const Sizes<I> all(L.level[0]);  // parts and blocks are those of every level
  for (I block = blockIdx.x; block < all.blocks; block += gridDim.x) {
    const I k = block / all.parts, part = block % all.parts;
    const int l = roi_level(levels, k, L);
    const int at = l < 0 ? 0 : l;  // a RoI of no usable level pools to zeros
    const Sizes<I> z(L.level[at]);
    load_roi(rois, k, L.level[at], z, taps);
    const I batch = l < 0 ? I(-1) : taps.roi.batch;
    if (L.channels_last[at]) {
      forward_part<S, I, true>(inputs.data[at], taps, batch, z, k, part, output);
    } else {
      forward_part<S, I, false>(inputs.data[at], taps, batch, z, k, part, output);
    }
  }
}

template <typename S, typename I>
__global__ void multi_level_roi_align_backward_kernel(const S* grad_output,
                                                      const Compute<S>* rois,
                                                      const int64_t* levels, RoIAlignLevels L,
                                                      LevelPointers<Compute<S>*> grad_inputs) {
  using T = Compute<S>;
  __shared__ RoITaps<T, I> taps;
  const Sizes<I> all(L.level[0]);
  for (I block = blockIdx.x; block < all.blocks; block += gridDim.x) {
    const I k = block / all.parts, part = block % all.parts;
    const int l = roi_level(levels, k, L);
    if (l < 0) continue;  // the same for the whole block
    const Sizes<I> z(L.level[l]);
    load_roi(rois, k, L.level[l], z, taps);
    const I batch = taps.roi.batch;
    if (batch < 0) continue;
    if (L.channels_last[l]) {
      backward_part<S, I, true>(grad_output, taps, batch, z, k, part, grad_inputs.data[l]);
    } else {
      backward_part<S, I, false>(grad_output, taps, batch, z, k, part, grad_inputs.data[l]);
    }
  }
}

// The blocks of a launch (a part of a RoI's outputs each, capped: the blocks then
// loop), its output elements, and the index type's bound: the largest tensor indexed.
struct Launch {
  unsigned int blocks;
  int64_t total, largest;
};

Launch launch_size(const RoIAlignLevels& L) {
  const RoIAlignShape& s = L.level[0];
  const int64_t per_roi = s.channels * s.pooled_h * s.pooled_w;
  const int64_t parts = (per_roi + kOutputsPerBlock - 1) / kOutputsPerBlock;
  Launch l{grid_blocks(s.num_rois * parts), s.num_rois * per_roi, 5 * s.num_rois};
  l.largest = max_of(l.largest, l.total);
  for (int i = 0; i < L.num_levels; ++i) {
    const RoIAlignShape& m = L.level[i];
    l.largest = max_of(l.largest, m.batch * m.channels * m.height * m.width);
  }
  return l;
}

}  // namespace

template <typename T>
void multi_level_roi_align_forward(const LevelPointers<const T*>& inputs,
                                   const Compute<T>* rois, const int64_t* levels,
                                   const RoIAlignLevels& L, T* output, std::uintptr_t stream) {
  if (L.num_levels == 0) return;
  const Launch l = launch_size(L);
  if (l.total == 0) return;
  with_index_type({l.largest}, [&](auto index) {
    using I = decltype(index);
    launch("multi_level_roi_align_forward_kernel", multi_level_roi_align_forward_kernel<T, I>,
           l.blocks, kThreads, stream, inputs, rois, levels, L, output);
  });
}

template <typename T>
void multi_level_roi_align_backward(const T* grad_output, const Compute<T>* rois,
                                    const int64_t* levels, const RoIAlignLevels& L,
                                    const LevelPointers<Compute<T>*>& grad_inputs,
                                    std::uintptr_t stream) {
  if (L.num_levels == 0) return;
  const Launch l = launch_size(L);
  if (l.total == 0) return;
  with_index_type({l.largest}, [&](auto index) {
    using I = decltype(index);
    launch("multi_level_roi_align_backward_kernel", multi_level_roi_align_backward_kernel<T, I>,
           l.blocks, kThreads, stream, grad_output, rois, levels, L, grad_inputs);
  });
}

#define DET_OPS_INSTANTIATE(T)                                                                \
  template void multi_level_roi_align_forward<T>(const LevelPointers<const T*>&,              \
                                                 const Compute<T>*, const int64_t*,           \
                                                 const RoIAlignLevels&, T*, std::uintptr_t);  \
  template void multi_level_roi_align_backward<T>(const T*, const Compute<T>*, const int64_t*, \
                                                  const RoIAlignLevels&,                      \
                                                  const LevelPointers<Compute<T>*>&,          \
                                                  std::uintptr_t);
DET_OPS_INSTANTIATE(float)
DET_OPS_INSTANTIATE(double)
DET_OPS_INSTANTIATE(Float16)
DET_OPS_INSTANTIATE(BFloat16)
#undef DET_OPS_INSTANTIATE

}  // namespace det_ops::cuda
