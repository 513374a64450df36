// RoIPool on the GPU: one thread per output element; the backward scatters
// through the saved argmax (int32, a pixel of the plane) with atomicAdd. NCHW
// and channels-last (NHWC) maps, each read in place; indices are 32-bit where
// the tensors allow (with_index_type). Float16 and bfloat16 maps (S below) are
// read and written natively, compared in float (T = Compute<S>) with float RoIs;
// the backward adds into a float grad_input buffer.
#include <cfloat>

#include "common/roi_geometry.h"
#include "cuda/launch.cuh"
#include "cuda/precision.cuh"
#include "cuda/roi_pool.h"

namespace det_ops::cuda {
namespace {

// The sizes of a RoIPoolShape in the kernel's index type, and where output
// element `index` lies: RoI k, channel c, bin; channels-last kernels take the
// channel as the fastest-moving index (a warp reads a pixel's channels from
// contiguous memory), the others the bin. Output, argmax and grad_output are
// [K, C, out_h, out_w] in both.
template <typename I>
struct Sizes {
  I channels, height, width, pooled_h, pooled_w, bins, total;

  explicit __device__ Sizes(const RoIPoolShape& s)
      : channels(static_cast<I>(s.channels)),
        height(static_cast<I>(s.height)),
        width(static_cast<I>(s.width)),
        pooled_h(static_cast<I>(s.pooled_h)),
        pooled_w(static_cast<I>(s.pooled_w)),
        bins(pooled_h * pooled_w),
        total(static_cast<I>(s.num_rois) * channels * bins) {}
};

template <typename I>
struct Element {
  I k, c, bin, out;  // out: the element's index in the [K, C, bins] output
};

template <typename I, bool kChannelsLast>
__device__ __forceinline__ Element<I> element(I index, const Sizes<I>& z) {
  Element<I> e;
  if (kChannelsLast) {
    e.c = index % z.channels;
    e.bin = (index / z.channels) % z.bins;
    e.k = index / (z.channels * z.bins);
    e.out = (e.k * z.channels + e.c) * z.bins + e.bin;
  } else {
    e.bin = index % z.bins;
    e.c = (index / z.bins) % z.channels;
    e.k = index / (z.bins * z.channels);
    e.out = index;
  }
  return e;
}

// Channel c of image b: its first element and the step between pixels.
template <typename T, typename I, bool kChannelsLast>
__device__ __forceinline__ T* channel_plane(T* map, I b, I c, const Sizes<I>& z, I& step) {
  step = kChannelsLast ? z.channels : I(1);
  return kChannelsLast ? map + b * z.height * z.width * z.channels + c
                       : map + (b * z.channels + c) * z.height * z.width;
}

template <typename S, typename I, bool kChannelsLast, typename T = Compute<S>>
__device__ __forceinline__ void roi_pool_forward_elements(const S* input, const T* rois,
                                                          const RoIPoolShape& s, S* output,
                                                          int32_t* argmax) {
  const Sizes<I> z(s);
  const T scale = static_cast<T>(s.spatial_scale);
  DET_CUDA_INDEX_LOOP(I, index, z.total) {
    const Element<I> e = element<I, kChannelsLast>(index, z);
    const T* roi = rois + 5 * e.k;
    const I b = pool_roi_batch(roi, static_cast<I>(s.batch));
    if (b < 0) {
      store(output + e.out, T(0));
      argmax[e.out] = -1;
      continue;
    }
    const PoolBin<I> rows = pool_bin<T>(round_coordinate(roi[2] * scale),
                                        round_coordinate(roi[4] * scale), z.pooled_h,
                                        e.bin / z.pooled_w, z.height);
    const PoolBin<I> cols = pool_bin<T>(round_coordinate(roi[1] * scale),
                                        round_coordinate(roi[3] * scale), z.pooled_w,
                                        e.bin % z.pooled_w, z.width);
    const bool empty = rows.end <= rows.start || cols.end <= cols.start;
    I step;
    const S* data = channel_plane<const S, I, kChannelsLast>(input, b, e.c, z, step);
    T best = empty ? T(0) : T(-FLT_MAX);
    I best_index = -1;
    for (I y = rows.start; y < rows.end; ++y) {
      for (I x = cols.start; x < cols.end; ++x) {
        const I i = y * z.width + x;
        const T v = load(data[i * step]);
        if (v > best) {
          best = v;
          best_index = i;
        }
      }
    }
    store(output + e.out, best);
    argmax[e.out] = static_cast<int32_t>(best_index);
  }
}

template <typename S, typename I, bool kChannelsLast, typename T = Compute<S>>
__device__ __forceinline__ void roi_pool_backward_elements(const S* grad_output, const T* rois,
                                                           const int32_t* argmax,
                                                           const RoIPoolShape& s,
                                                           T* grad_input) {
  const Sizes<I> z(s);
  DET_CUDA_INDEX_LOOP(I, index, z.total) {
    const Element<I> e = element<I, kChannelsLast>(index, z);
    const I arg = argmax[e.out];
    if (arg < 0) continue;
    const I b = pool_roi_batch(rois + 5 * e.k, static_cast<I>(s.batch));
    if (b < 0) continue;
    I step;
    T* grad = channel_plane<T, I, kChannelsLast>(grad_input, b, e.c, z, step);
    atomicAdd(grad + arg * step, load(grad_output[e.out]));
  }
}

template <typename S, typename I>
__global__ void roi_pool_forward_kernel(const S* input, const Compute<S>* rois, RoIPoolShape s,
                                        S* output, int32_t* argmax) {
  roi_pool_forward_elements<S, I, false>(input, rois, s, output, argmax);
}

template <typename S, typename I>
__global__ void roi_pool_forward_nhwc_kernel(const S* input, const Compute<S>* rois,
                                             RoIPoolShape s, S* output, int32_t* argmax) {
  roi_pool_forward_elements<S, I, true>(input, rois, s, output, argmax);
}

template <typename S, typename I>
__global__ void roi_pool_backward_kernel(const S* grad_output, const Compute<S>* rois,
                                         const int32_t* argmax, RoIPoolShape s,
                                         Compute<S>* grad_input) {
  roi_pool_backward_elements<S, I, false>(grad_output, rois, argmax, s, grad_input);
}

template <typename S, typename I>
__global__ void roi_pool_backward_nhwc_kernel(const S* grad_output, const Compute<S>* rois,
                                              const int32_t* argmax, RoIPoolShape s,
                                              Compute<S>* grad_input) {
  roi_pool_backward_elements<S, I, true>(grad_output, rois, argmax, s, grad_input);
}

template <typename T>
void launch_forward(const T* input, const Compute<T>* rois, const RoIPoolShape& s, T* output,
                    int32_t* argmax, std::uintptr_t stream, bool channels_last) {
  const int64_t total = s.num_rois * s.channels * s.pooled_h * s.pooled_w;
  if (total == 0) return;
  with_index_type({total, 5 * s.num_rois, s.batch * s.channels * s.height * s.width},
                  [&](auto index) {
    using I = decltype(index);
    if (channels_last) {
      launch("roi_pool_forward_nhwc_kernel", roi_pool_forward_nhwc_kernel<T, I>,
             blocks_for(total), kThreads, stream, input, rois, s, output, argmax);
    } else {
      launch("roi_pool_forward_kernel", roi_pool_forward_kernel<T, I>, blocks_for(total),
             kThreads, stream, input, rois, s, output, argmax);
    }
  });
}

template <typename T>
void launch_backward(const T* grad_output, const Compute<T>* rois, const int32_t* argmax,
                     const RoIPoolShape& s, Compute<T>* grad_input, std::uintptr_t stream,
                     bool channels_last) {
  const int64_t total = s.num_rois * s.channels * s.pooled_h * s.pooled_w;
  if (total == 0) return;
  with_index_type({total, 5 * s.num_rois, s.batch * s.channels * s.height * s.width},
                  [&](auto index) {
    using I = decltype(index);
    if (channels_last) {
      launch("roi_pool_backward_nhwc_kernel", roi_pool_backward_nhwc_kernel<T, I>,
             blocks_for(total), kThreads, stream, grad_output, rois, argmax, s, grad_input);
    } else {
      launch("roi_pool_backward_kernel", roi_pool_backward_kernel<T, I>, blocks_for(total),
             kThreads, stream, grad_output, rois, argmax, s, grad_input);
    }
  });
}

}  // namespace

template <typename T>
void roi_pool_forward(const T* input, const Compute<T>* rois, const RoIPoolShape& s, T* output,
                      int32_t* argmax, std::uintptr_t stream) {
  launch_forward(input, rois, s, output, argmax, stream, false);
}

template <typename T>
void roi_pool_forward_nhwc(const T* input, const Compute<T>* rois, const RoIPoolShape& s,
                           T* output, int32_t* argmax, std::uintptr_t stream) {
  launch_forward(input, rois, s, output, argmax, stream, true);
}

template <typename T>
void roi_pool_backward(const T* grad_output, const Compute<T>* rois, const int32_t* argmax,
                       const RoIPoolShape& s, Compute<T>* grad_input, std::uintptr_t stream) {
  launch_backward(grad_output, rois, argmax, s, grad_input, stream, false);
}

template <typename T>
void roi_pool_backward_nhwc(const T* grad_output, const Compute<T>* rois, const int32_t* argmax,
                            const RoIPoolShape& s, Compute<T>* grad_input,
                            std::uintptr_t stream) {
  launch_backward(grad_output, rois, argmax, s, grad_input, stream, true);
}

#define DET_OPS_INSTANTIATE(T)                                                                  \
  template void roi_pool_forward<T>(const T*, const Compute<T>*, const RoIPoolShape&, T*,       \
                                    int32_t*, std::uintptr_t);                                 \
  template void roi_pool_forward_nhwc<T>(const T*, const Compute<T>*, const RoIPoolShape&, T*,  \
                                         int32_t*, std::uintptr_t);                            \
  template void roi_pool_backward<T>(const T*, const Compute<T>*, const int32_t*,               \
                                     const RoIPoolShape&, Compute<T>*, std::uintptr_t);        \
  template void roi_pool_backward_nhwc<T>(const T*, const Compute<T>*, const int32_t*,          \
                                          const RoIPoolShape&, Compute<T>*, std::uintptr_t);
DET_OPS_INSTANTIATE(float)
DET_OPS_INSTANTIATE(double)
DET_OPS_INSTANTIATE(Float16)
DET_OPS_INSTANTIATE(BFloat16)
#undef DET_OPS_INSTANTIATE

}  // namespace det_ops::cuda
