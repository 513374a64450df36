// RoIAlign on the GPU. A block takes a part of one RoI's outputs (at most
// kOutputsPerBlock of its channels x bins): it computes the RoI's geometry and
// the taps of its sampling rows and columns once, into shared memory (the
// grid is separable, as on the CPU), and its threads then pool one output
// element each, reading the taps from there (cuda/roi_align_blocks.cuh). Forward
// writes the output, backward scatters grad_output with atomicAdd.
//
// Two layouts of the feature map, chosen by the caller from its memory format:
// NCHW (threads over bins, then channels) and channels-last NHWC (threads over
// channels, so that a warp reads a tap's channels from contiguous memory); the
// output and grad_output are [K, C, out_h, out_w] in both. Indices are 32-bit
// where the tensors allow (with_index_type).
//
// Element types: float and double, and float16 and bfloat16 maps (S below),
// which are read and written natively and computed in float (T = Compute<S>):
// the RoIs are float, and the backward adds into a float grad_input buffer.
#include "cuda/roi_align.h"
#include "cuda/roi_align_blocks.cuh"

namespace det_ops::cuda {
namespace {

using namespace roi_align_blocks;

template <typename S, typename I, bool kChannelsLast, typename T = Compute<S>>
__device__ __forceinline__ void roi_align_forward_blocks(const S* input, const T* rois,
                                                         const RoIAlignShape& s, S* output) {
  __shared__ RoITaps<T, I> taps;
  const Sizes<I> z(s);
  for (I block = blockIdx.x; block < z.blocks; block += gridDim.x) {
    const I k = block / z.parts, part = block % z.parts;
    load_roi(rois, k, s, z, taps);
    forward_part<S, I, kChannelsLast>(input, taps, taps.roi.batch, z, k, part, output);
  }
}

template <typename S, typename I, bool kChannelsLast, typename T = Compute<S>>
__device__ __forceinline__ void roi_align_backward_blocks(const S* grad_output, const T* rois,
                                                          const RoIAlignShape& s, T* grad_input) {
  __shared__ RoITaps<T, I> taps;
  const Sizes<I> z(s);
  for (I block = blockIdx.x; block < z.blocks; block += gridDim.x) {
    const I k = block / z.parts, part = block % z.parts;
    load_roi(rois, k, s, z, taps);
    const I batch = taps.roi.batch;
    if (batch < 0) continue;  // the same for the whole block
    backward_part<S, I, kChannelsLast>(grad_output, taps, batch, z, k, part, grad_input);
  }
}

template <typename S, typename I>
__global__ void roi_align_forward_kernel(const S* input, const Compute<S>* rois, RoIAlignShape s,
                                         S* output) {
  roi_align_forward_blocks<S, I, false>(input, rois, s, output);
}

template <typename S, typename I>
__global__ void roi_align_forward_nhwc_kernel(const S* input, const Compute<S>* rois,
                                              RoIAlignShape s, S* output) {
  roi_align_forward_blocks<S, I, true>(input, rois, s, output);
}

template <typename S, typename I>
__global__ void roi_align_backward_kernel(const S* grad_output, const Compute<S>* rois,
                                          RoIAlignShape s, Compute<S>* grad_input) {
  roi_align_backward_blocks<S, I, false>(grad_output, rois, s, grad_input);
}

template <typename S, typename I>
__global__ void roi_align_backward_nhwc_kernel(const S* grad_output, const Compute<S>* rois,
                                               RoIAlignShape s, Compute<S>* grad_input) {
  roi_align_backward_blocks<S, I, true>(grad_output, rois, s, grad_input);
}

// The blocks of a launch (one per part of a RoI's outputs, capped: the blocks
// then loop) and its output elements.
struct Launch {
  unsigned int blocks;
  int64_t total;
};

Launch launch_size(const RoIAlignShape& s) {
  const int64_t per_roi = s.channels * s.pooled_h * s.pooled_w;
  const int64_t parts = (per_roi + kOutputsPerBlock - 1) / kOutputsPerBlock;
  return {grid_blocks(s.num_rois * parts), s.num_rois * per_roi};
}

template <typename T>
void launch_forward(const T* input, const Compute<T>* rois, const RoIAlignShape& s, T* output,
                    std::uintptr_t stream, bool channels_last) {
  const Launch l = launch_size(s);
  if (l.total == 0) return;
  if (s.height * s.width == 0) {  // an empty feature map pools to zeros
    check(cudaMemsetAsync(output, 0, l.total * sizeof(T), as_stream(stream)), "roi_align");
    return;
  }
  with_index_type({l.total, 5 * s.num_rois, s.batch * s.channels * s.height * s.width},
                  [&](auto index) {
    using I = decltype(index);
    if (channels_last) {
      launch("roi_align_forward_nhwc_kernel", roi_align_forward_nhwc_kernel<T, I>, l.blocks,
             kThreads, stream, input, rois, s, output);
    } else {
      launch("roi_align_forward_kernel", roi_align_forward_kernel<T, I>, l.blocks, kThreads,
             stream, input, rois, s, output);
    }
  });
}

template <typename T>
void launch_backward(const T* grad_output, const Compute<T>* rois, const RoIAlignShape& s,
                     Compute<T>* grad_input, std::uintptr_t stream, bool channels_last) {
  const Launch l = launch_size(s);
  if (l.total == 0 || s.height * s.width == 0) return;
  with_index_type({l.total, 5 * s.num_rois, s.batch * s.channels * s.height * s.width},
                  [&](auto index) {
    using I = decltype(index);
    if (channels_last) {
      launch("roi_align_backward_nhwc_kernel", roi_align_backward_nhwc_kernel<T, I>, l.blocks,
             kThreads, stream, grad_output, rois, s, grad_input);
    } else {
      launch("roi_align_backward_kernel", roi_align_backward_kernel<T, I>, l.blocks, kThreads,
             stream, grad_output, rois, s, grad_input);
    }
  });
}

}  // namespace

template <typename T>
void roi_align_forward(const T* input, const Compute<T>* rois, const RoIAlignShape& s, T* output,
                       std::uintptr_t stream) {
  launch_forward(input, rois, s, output, stream, false);
}

template <typename T>
void roi_align_forward_nhwc(const T* input, const Compute<T>* rois, const RoIAlignShape& s,
                            T* output, std::uintptr_t stream) {
  launch_forward(input, rois, s, output, stream, true);
}

template <typename T>
void roi_align_backward(const T* grad_output, const Compute<T>* rois, const RoIAlignShape& s,
                        Compute<T>* grad_input, std::uintptr_t stream) {
  launch_backward(grad_output, rois, s, grad_input, stream, false);
}

template <typename T>
void roi_align_backward_nhwc(const T* grad_output, const Compute<T>* rois,
                             const RoIAlignShape& s, Compute<T>* grad_input,
                             std::uintptr_t stream) {
  launch_backward(grad_output, rois, s, grad_input, stream, true);
}

#define DET_OPS_INSTANTIATE(T)                                                                  \
  template void roi_align_forward<T>(const T*, const Compute<T>*, const RoIAlignShape&, T*,     \
                                     std::uintptr_t);                                          \
  template void roi_align_forward_nhwc<T>(const T*, const Compute<T>*, const RoIAlignShape&,    \
                                          T*, std::uintptr_t);                                 \
  template void roi_align_backward<T>(const T*, const Compute<T>*, const RoIAlignShape&,        \
                                      Compute<T>*, std::uintptr_t);                            \
  template void roi_align_backward_nhwc<T>(const T*, const Compute<T>*, const RoIAlignShape&,   \
                                           Compute<T>*, std::uintptr_t);
DET_OPS_INSTANTIATE(float)
DET_OPS_INSTANTIATE(double)
DET_OPS_INSTANTIATE(Float16)
DET_OPS_INSTANTIATE(BFloat16)
#undef DET_OPS_INSTANTIATE

}  // namespace det_ops::cuda
