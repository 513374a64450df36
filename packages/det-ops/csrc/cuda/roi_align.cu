// RoIAlign on the GPU. A block takes a part of one RoI's outputs (at most
// kOutputsPerBlock of its channels x bins): it computes the RoI's geometry and
// the taps of its sampling rows and columns once, into shared memory (the
// grid is separable, as on the CPU), and its threads then pool one output
// element each, reading the taps from there. Forward writes the output,
// backward scatters grad_output with atomicAdd.
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
#include "common/bilinear.h"
#include "common/roi_geometry.h"
#include "cuda/launch.cuh"
#include "cuda/precision.cuh"
#include "cuda/roi_align.h"

namespace det_ops::cuda {
namespace {

// Outputs a block pools (4 per thread): enough to amortise the RoI's taps.
constexpr int64_t kOutputsPerBlock = 4 * kThreads;
// Row (and column) taps a block keeps in shared memory: pooled size x sampling
// points along the axis; a RoI with more (adaptive sampling of a large box)
// has its taps computed per output element instead.
constexpr int kSharedTaps = 128;

template <typename T, typename I>
struct RoITaps {
  AlignedRoI<T, I> roi;
  bool shared;                    // whether rows and cols hold the RoI's taps
  AxisTap<T, I> rows[kSharedTaps];  // [pooled_h * grid_h], low/high as plane offsets
  AxisTap<T, I> cols[kSharedTaps];  // [pooled_w * grid_w]
};

template <typename I>
struct Sizes {
  I channels, height, width, pooled_h, pooled_w, bins, per_roi, parts, blocks;

  explicit __device__ Sizes(const RoIAlignShape& s)
      : channels(static_cast<I>(s.channels)),
        height(static_cast<I>(s.height)),
        width(static_cast<I>(s.width)),
        pooled_h(static_cast<I>(s.pooled_h)),
        pooled_w(static_cast<I>(s.pooled_w)),
        bins(pooled_h * pooled_w),
        per_roi(channels * bins),
        parts((per_roi + static_cast<I>(kOutputsPerBlock) - 1) / static_cast<I>(kOutputsPerBlock)),
        blocks(static_cast<I>(s.num_rois) * parts) {}
};

template <typename T, typename I>
__device__ __forceinline__ AxisTap<T, I> row_tap(const AlignedRoI<T, I>& r, const Sizes<I>& z,
                                                 I ph, I iy) {
  AxisTap<T, I> a = clamped_axis(z.height, r.sample_y(ph, iy));
  a.low *= z.width;
  a.high *= z.width;
  return a;
}

template <typename T, typename I>
__device__ __forceinline__ AxisTap<T, I> col_tap(const AlignedRoI<T, I>& r, const Sizes<I>& z,
                                                 I pw, I ix) {
  return clamped_axis(z.width, r.sample_x(pw, ix));
}

// Fills `taps` with RoI k's geometry and, where they fit, its row and column
// taps; every thread of the block calls it, and reads `taps` after it returns.
template <typename T, typename I>
__device__ __forceinline__ void load_roi(const T* rois, I k, const RoIAlignShape& s,
                                         const Sizes<I>& z, RoITaps<T, I>& taps) {
  __syncthreads();  // the block's previous RoI is done with `taps`
  if (threadIdx.x == 0) {
    taps.roi = aligned_roi(rois + 5 * k, static_cast<I>(s.batch), static_cast<T>(s.spatial_scale),
                           z.pooled_h, z.pooled_w, static_cast<I>(s.sampling_ratio), s.aligned);
    taps.shared = z.pooled_h * taps.roi.grid_h <= kSharedTaps &&
                  z.pooled_w * taps.roi.grid_w <= kSharedTaps;
  }
  __syncthreads();
  const AlignedRoI<T, I> r = taps.roi;
  if (r.batch >= 0 && taps.shared) {
    for (I i = static_cast<I>(threadIdx.x); i < z.pooled_h * r.grid_h; i += blockDim.x) {
      taps.rows[i] = row_tap(r, z, i / r.grid_h, i % r.grid_h);
    }
    for (I i = static_cast<I>(threadIdx.x); i < z.pooled_w * r.grid_w; i += blockDim.x) {
      taps.cols[i] = col_tap(r, z, i / r.grid_w, i % r.grid_w);
    }
  }
  __syncthreads();
}

// Output element e of a RoI: its channel and bin in the kernel's layout.
template <typename I, bool kChannelsLast>
__device__ __forceinline__ void split_element(I e, const Sizes<I>& z, I& c, I& bin) {
  if (kChannelsLast) {
    c = e % z.channels;
    bin = e / z.channels;
  } else {
    c = e / z.bins;
    bin = e % z.bins;
  }
}

// Calls tap(y, x) for every sampling point of bin (ph, pw) that is inside the map.
template <typename T, typename I, typename Tap>
__device__ __forceinline__ void for_each_point(const RoITaps<T, I>& taps, const Sizes<I>& z,
                                               I ph, I pw, const Tap& tap) {
  const AlignedRoI<T, I>& r = taps.roi;
  if (taps.shared) {
    const AxisTap<T, I>* rows = taps.rows + ph * r.grid_h;
    const AxisTap<T, I>* cols = taps.cols + pw * r.grid_w;
    for (I iy = 0; iy < r.grid_h; ++iy) {
      if (!rows[iy].inside) continue;
      for (I ix = 0; ix < r.grid_w; ++ix) {
        if (cols[ix].inside) tap(rows[iy], cols[ix]);
      }
    }
    return;
  }
  for (I iy = 0; iy < r.grid_h; ++iy) {
    const AxisTap<T, I> y = row_tap(r, z, ph, iy);
    if (!y.inside) continue;
    for (I ix = 0; ix < r.grid_w; ++ix) {
      const AxisTap<T, I> x = col_tap(r, z, pw, ix);
      if (x.inside) tap(y, x);
    }
  }
}

template <typename S, typename I, bool kChannelsLast, typename T = Compute<S>>
__device__ __forceinline__ void roi_align_forward_blocks(const S* input, const T* rois,
                                                         const RoIAlignShape& s, S* output) {
  __shared__ RoITaps<T, I> taps;
  const Sizes<I> z(s);
  for (I block = blockIdx.x; block < z.blocks; block += gridDim.x) {
    const I k = block / z.parts, part = block % z.parts;
    load_roi(rois, k, s, z, taps);
    const I begin = part * static_cast<I>(kOutputsPerBlock);
    const I end = min_of(begin + static_cast<I>(kOutputsPerBlock), z.per_roi);
    const I batch = taps.roi.batch;
    const T count = taps.roi.count;
    for (I e = begin + static_cast<I>(threadIdx.x); e < end; e += blockDim.x) {
      I c, bin;
      split_element<I, kChannelsLast>(e, z, c, bin);
      S* out = output + (k * z.channels + c) * z.bins + bin;
      if (batch < 0) {
        store(out, T(0));
        continue;
      }
      T sum = T(0);
      if (kChannelsLast) {
        const S* data = input + batch * z.height * z.width * z.channels + c;
        const I C = z.channels;
        for_each_point(taps, z, bin / z.pooled_w, bin % z.pooled_w,
                       [&](const AxisTap<T, I>& y, const AxisTap<T, I>& x) {
                         sum += y.h * x.h * load(data[(y.low + x.low) * C]) +
                                y.h * x.l * load(data[(y.low + x.high) * C]) +
                                y.l * x.h * load(data[(y.high + x.low) * C]) +
                                y.l * x.l * load(data[(y.high + x.high) * C]);
                       });
      } else {
        const S* data = input + (batch * z.channels + c) * z.height * z.width;
        for_each_point(taps, z, bin / z.pooled_w, bin % z.pooled_w,
                       [&](const AxisTap<T, I>& y, const AxisTap<T, I>& x) {
                         sum += y.h * x.h * load(data[y.low + x.low]) +
                                y.h * x.l * load(data[y.low + x.high]) +
                                y.l * x.h * load(data[y.high + x.low]) +
                                y.l * x.l * load(data[y.high + x.high]);
                       });
      }
      store(out, sum / count);
    }
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
    const I begin = part * static_cast<I>(kOutputsPerBlock);
    const I end = min_of(begin + static_cast<I>(kOutputsPerBlock), z.per_roi);
    const T count = taps.roi.count;
    for (I e = begin + static_cast<I>(threadIdx.x); e < end; e += blockDim.x) {
      I c, bin;
      split_element<I, kChannelsLast>(e, z, c, bin);
      const T go = load(grad_output[(k * z.channels + c) * z.bins + bin]) / count;
      // Channels-last: the channel is the innermost index, `stride` apart per pixel.
      T* grad = kChannelsLast ? grad_input + batch * z.height * z.width * z.channels + c
                              : grad_input + (batch * z.channels + c) * z.height * z.width;
      const I stride = kChannelsLast ? z.channels : I(1);
      for_each_point(taps, z, bin / z.pooled_w, bin % z.pooled_w,
                     [&](const AxisTap<T, I>& y, const AxisTap<T, I>& x) {
                       atomicAdd(grad + (y.low + x.low) * stride, y.h * x.h * go);
                       atomicAdd(grad + (y.low + x.high) * stride, y.h * x.l * go);
                       atomicAdd(grad + (y.high + x.low) * stride, y.l * x.h * go);
                       atomicAdd(grad + (y.high + x.high) * stride, y.l * x.l * go);
                     });
    }
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
