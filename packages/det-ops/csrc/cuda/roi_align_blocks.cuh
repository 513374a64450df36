// The device code of RoIAlign's blocks, shared by its kernels (cuda/roi_align.cu) and
// those of multi-level RoIAlign (cuda/multi_level_roi_align.cu). A block takes a
// part of one RoI's outputs (at most kOutputsPerBlock of its channels x bins):
// load_roi computes the RoI's geometry and the taps of its sampling rows and
// columns once, into shared memory (the grid is separable, as on the CPU), and
// forward_part / backward_part then pool (or scatter the gradient of) one output
// element per thread, reading the taps from there.
#pragma once

#include "common/bilinear.h"
#include "common/roi_geometry.h"
#include "cuda/launch.cuh"
#include "cuda/precision.cuh"

namespace det_ops::cuda::roi_align_blocks {

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

// Pools the outputs of part `part` of RoI k, whose taps load_roi put in `taps`, from
// the map `input` of the RoI's image `batch` (-1: the RoI pools to zeros).
template <typename S, typename I, bool kChannelsLast, typename T = Compute<S>>
__device__ __forceinline__ void forward_part(const S* input, const RoITaps<T, I>& taps, I batch,
                                             const Sizes<I>& z, I k, I part, S* output) {
  const I begin = part * static_cast<I>(kOutputsPerBlock);
  const I end = min_of(begin + static_cast<I>(kOutputsPerBlock), z.per_roi);
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

// Scatters the output gradient of part `part` of RoI k into grad_input (atomicAdd),
// the gradient of the map of the RoI's image `batch` (>= 0).
template <typename S, typename I, bool kChannelsLast, typename T = Compute<S>>
__device__ __forceinline__ void backward_part(const S* grad_output, const RoITaps<T, I>& taps,
                                              I batch, const Sizes<I>& z, I k, I part,
                                              T* grad_input) {
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

}  // namespace det_ops::cuda::roi_align_blocks
