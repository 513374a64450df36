// Deformable RoI pooling on the GPU. Forward and input gradient: a block takes
// a part of one RoI's outputs (at most kOutputsPerBlock of its channels x bins),
// computes the RoI's geometry and each bin's shift (and, for the gradient, its
// divisor) once into shared memory, and pools or scatters one output element
// per thread (the gradient with atomicAdd). Offset and mask gradients: a group
// of 32 threads per (RoI, bin). Indices are 32-bit where the tensors allow
// (with_index_type); only the offset gradient computes the taps' derivatives.
// Geometry, shifts, taps and divisors come from csrc/common, for both modes
// (RoIAlign's and the 2019 kernel's).
#include "common/bilinear.h"
#include "common/deform_roi_pool.h"
#include "cuda/launch.cuh"
#include "cuda/deform_roi_pool.h"

namespace det_ops::cuda {
namespace {

// Outputs a block pools (4 per thread): enough to amortise the RoI's geometry.
constexpr int64_t kOutputsPerBlock = 4 * kThreads;
// Bins whose shifts and divisors a block keeps in shared memory; a RoI with
// more has them computed per output element instead.
constexpr int kSharedBins = 256;

// The sizes of a DeformRoIPoolShape in the kernel's index type, and the parts
// (blocks) of each RoI's outputs.
template <typename I>
struct Sizes {
  I channels, height, width, pooled_w, bins, per_roi, parts, blocks;

  explicit __device__ Sizes(const DeformRoIPoolShape& s)
      : channels(static_cast<I>(s.channels)),
        height(static_cast<I>(s.height)),
        width(static_cast<I>(s.width)),
        pooled_w(static_cast<I>(s.pooled_w)),
        bins(static_cast<I>(s.pooled_h) * static_cast<I>(s.pooled_w)),
        per_roi(channels * bins),
        parts((per_roi + static_cast<I>(kOutputsPerBlock) - 1) / static_cast<I>(kOutputsPerBlock)),
        blocks(static_cast<I>(s.num_rois) * parts) {}
};

template <typename T, typename I>
__device__ __forceinline__ BinShift<T> bin_shift(const DeformRoI<T, I>& g, const T* offset, I k,
                                                 I bin, I bins, const DeformRoIPoolShape& s) {
  return g.shift(static_cast<T>(s.gamma), offset == nullptr ? nullptr : offset + k * 2 * bins,
                 bins, bin);
}

// The divisor of bin (ph, pw) of RoI g shifted by `shift`: one pass over its
// points before the pass that uses it.
template <typename T, typename I>
__device__ __forceinline__ T bin_divisor(const DeformRoI<T, I>& g, I ph, I pw,
                                         const BinShift<T>& shift, const Sizes<I>& z) {
  if (!g.legacy) return g.r.count;
  ForwardTaps<T, I> t;
  I inside = 0;
  for (I iy = 0; iy < g.r.grid_h; ++iy) {
    const T y = g.point_y(ph, iy, shift.dy);
    for (I ix = 0; ix < g.r.grid_w; ++ix) {
      inside += g.taps(z.height, z.width, y, g.point_x(pw, ix, shift.dx), t) ? 1 : 0;
    }
  }
  return g.divisor(inside);
}

// One RoI's geometry and, where they fit, its bins' shifts and divisors.
template <typename T, typename I>
struct RoIBins {
  DeformRoI<T, I> g;
  bool shared;  // whether shift (and divisor) hold the RoI's bins
  BinShift<T> shift[kSharedBins];
  T divisor[kSharedBins];
};

// Fills `rb` with RoI k (divisors too with_divisors); every thread of the block
// calls it, and reads `rb` after it returns.
template <typename T, typename I>
__device__ __forceinline__ void load_roi(const T* rois, const T* offset, I k,
                                         const DeformRoIPoolShape& s, const Sizes<I>& z,
                                         bool with_divisors, RoIBins<T, I>& rb) {
  __syncthreads();  // the block's previous RoI is done with `rb`
  if (threadIdx.x == 0) {
    rb.g = deform_roi<I>(rois + 5 * k, s);
    rb.shared = z.bins <= kSharedBins;
  }
  __syncthreads();
  if (rb.g.r.batch >= 0 && rb.shared) {
    const DeformRoI<T, I> g = rb.g;
    for (I bin = static_cast<I>(threadIdx.x); bin < z.bins; bin += blockDim.x) {
      rb.shift[bin] = bin_shift(g, offset, k, bin, z.bins, s);
      if (with_divisors) {
        rb.divisor[bin] = bin_divisor(g, bin / z.pooled_w, bin % z.pooled_w, rb.shift[bin], z);
      }
    }
  }
  __syncthreads();
}

// Element e of a RoI's outputs: its channel and bin in the kernel's layout
// (channels-last: the channel moves fastest).
template <typename I, bool kChannelsLast>
__device__ __forceinline__ void split_element(I e, const Sizes<I>& z, I& c, I& bin) {
  c = kChannelsLast ? e % z.channels : e / z.bins;
  bin = kChannelsLast ? e / z.channels : e % z.bins;
}

// Channel c of image b of a map: its first element; the taps' offsets (pixels of
// the plane) are then scaled by pixel_step(): 1 for NCHW, channels for NHWC.
template <typename T, typename I, bool kChannelsLast>
__device__ __forceinline__ T* channel_of(T* map, I b, I c, const Sizes<I>& z) {
  return kChannelsLast ? map + b * z.height * z.width * z.channels + c
                       : map + (b * z.channels + c) * z.height * z.width;
}

template <typename I, bool kChannelsLast>
__device__ __forceinline__ I pixel_step(const Sizes<I>& z) {
  return kChannelsLast ? z.channels : I(1);
}

template <typename Taps, typename I>
__device__ __forceinline__ void scale_offsets(Taps& t, I step) {
  for (int i = 0; i < 4; ++i) t.offset[i] *= step;
}

template <typename T, typename I, bool kChannelsLast>
__device__ __forceinline__ void forward_blocks(const T* input, const T* rois, const T* offset,
                                               const T* mask, const DeformRoIPoolShape& s,
                                               T* output) {
  __shared__ RoIBins<T, I> rb;
  const Sizes<I> z(s);
  for (I block = blockIdx.x; block < z.blocks; block += gridDim.x) {
    const I k = block / z.parts, begin = (block % z.parts) * static_cast<I>(kOutputsPerBlock);
    load_roi(rois, offset, k, s, z, false, rb);
    const DeformRoI<T, I> g = rb.g;
    const I end = min_of(begin + static_cast<I>(kOutputsPerBlock), z.per_roi);
    for (I e = begin + static_cast<I>(threadIdx.x); e < end; e += blockDim.x) {
      I c, bin;
      split_element<I, kChannelsLast>(e, z, c, bin);
      T* out = output + k * z.per_roi + c * z.bins + bin;
      if (g.r.batch < 0) {
        *out = T(0);
        continue;
      }
      const I ph = bin / z.pooled_w, pw = bin % z.pooled_w;
      const BinShift<T> shift = rb.shared ? rb.shift[bin] : bin_shift(g, offset, k, bin, z.bins, s);
      const T* plane = channel_of<const T, I, kChannelsLast>(input, g.r.batch, c, z);
      ForwardTaps<T, I> t;  // the forward needs no derivative
      T sum = T(0);
      I inside = 0;
      for (I iy = 0; iy < g.r.grid_h; ++iy) {
        const T y = g.point_y(ph, iy, shift.dy);
        for (I ix = 0; ix < g.r.grid_w; ++ix) {
          if (!g.taps(z.height, z.width, y, g.point_x(pw, ix, shift.dx), t)) continue;
          scale_offsets(t, pixel_step<I, kChannelsLast>(z));
          sum += t.sample(plane);
          ++inside;
        }
      }
      *out = bin_value(sum, g.divisor(inside), mask == nullptr ? T(1) : mask[k * z.bins + bin]);
    }
  }
}

template <typename T, typename I, bool kChannelsLast>
__device__ __forceinline__ void grad_input_blocks(const T* grad_output, const T* rois,
                                                  const T* offset, const T* mask,
                                                  const DeformRoIPoolShape& s, T* grad_input) {
  __shared__ RoIBins<T, I> rb;
  const Sizes<I> z(s);
  for (I block = blockIdx.x; block < z.blocks; block += gridDim.x) {
    const I k = block / z.parts, begin = (block % z.parts) * static_cast<I>(kOutputsPerBlock);
    load_roi(rois, offset, k, s, z, true, rb);
    const DeformRoI<T, I> g = rb.g;
    if (g.r.batch < 0) continue;  // the same for the whole block
    const I end = min_of(begin + static_cast<I>(kOutputsPerBlock), z.per_roi);
    for (I e = begin + static_cast<I>(threadIdx.x); e < end; e += blockDim.x) {
      I c, bin;
      split_element<I, kChannelsLast>(e, z, c, bin);
      const I ph = bin / z.pooled_w, pw = bin % z.pooled_w;
      const BinShift<T> shift = rb.shared ? rb.shift[bin] : bin_shift(g, offset, k, bin, z.bins, s);
      const T divisor = rb.shared ? rb.divisor[bin] : bin_divisor(g, ph, pw, shift, z);
      const T grad_bin = bin_value(grad_output[k * z.per_roi + c * z.bins + bin], divisor,
                                   mask == nullptr ? T(1) : mask[k * z.bins + bin]);
      T* grad = channel_of<T, I, kChannelsLast>(grad_input, g.r.batch, c, z);
      const I step = pixel_step<I, kChannelsLast>(z);
      ForwardTaps<T, I> t;
      for (I iy = 0; iy < g.r.grid_h; ++iy) {
        const T y = g.point_y(ph, iy, shift.dy);
        for (I ix = 0; ix < g.r.grid_w; ++ix) {
          if (!g.taps(z.height, z.width, y, g.point_x(pw, ix, shift.dx), t)) continue;
          for (int i = 0; i < 4; ++i) {
            atomicAdd(grad + t.offset[i] * step, t.weight[i] * grad_bin);
          }
        }
      }
    }
  }
}

// The offset and mask gradients of a (RoI, bin) sum over its points and all
// channels: a group of kLanes threads takes one, its lanes splitting the
// channels, and adds up their partial sums in shared memory.
constexpr int kLanes = 32;
constexpr int kGroups = kThreads / kLanes;

template <typename T, typename I, bool kChannelsLast>
__device__ __forceinline__ void grad_offset_mask_groups(const T* grad_output, const T* input,
                                                        const T* rois, const T* offset,
                                                        const T* mask, const DeformRoIPoolShape& s,
                                                        T* grad_offset, T* grad_mask) {
  __shared__ T partial[3][kThreads];  // value, dy, dx of each thread
  const Sizes<I> z(s);
  const I bins = z.bins, plane = z.height * z.width;
  const I items = static_cast<I>(s.num_rois) * bins;
  const I lane = static_cast<I>(threadIdx.x) % kLanes, group = static_cast<I>(threadIdx.x) / kLanes;
  // Every thread runs every round (the barriers need the whole block).
  for (I base = static_cast<I>(blockIdx.x) * kGroups; base < items;
       base += static_cast<I>(gridDim.x) * kGroups) {
    const I index = base + group;
    const I bin = index % bins, k = index / bins;
    DeformRoI<T, I> g{};
    T value = T(0), dy = T(0), dx = T(0);
    I inside = 0;
    bool usable = false;  // else the RoI's size may be NaN
    if (index < items) {
      g = deform_roi<I>(rois + 5 * k, s);
      usable = g.r.batch >= 0 && plane > 0;
    }
    if (usable) {
      const I ph = bin / z.pooled_w, pw = bin % z.pooled_w;
      const BinShift<T> shift = bin_shift(g, offset, k, bin, bins, s);
      BilinearTaps<T, I> t;
      for (I iy = 0; iy < g.r.grid_h; ++iy) {
        const T y = g.point_y(ph, iy, shift.dy);
        for (I ix = 0; ix < g.r.grid_w; ++ix) {
          if (!g.taps(z.height, z.width, y, g.point_x(pw, ix, shift.dx), t)) continue;
          ++inside;
          scale_offsets(t, pixel_step<I, kChannelsLast>(z));
          for (I c = lane; c < z.channels; c += kLanes) {
            const T go = grad_output[(k * z.channels + c) * bins + bin];
            const T* data = channel_of<const T, I, kChannelsLast>(input, g.r.batch, c, z);
            value += go * t.sample(data);
            dy += go * sample_dy(t, data);
            dx += go * sample_dx(t, data);
          }
        }
      }
    }
    partial[0][threadIdx.x] = value;
    partial[1][threadIdx.x] = dy;
    partial[2][threadIdx.x] = dx;
    __syncthreads();
    for (int step = kLanes / 2; step > 0; step /= 2) {
      if (lane < step) {
        for (int j = 0; j < 3; ++j) partial[j][threadIdx.x] += partial[j][threadIdx.x + step];
      }
      __syncthreads();
    }
    // Lane 0 reads only its own slots, which no other thread writes next round.
    if (index >= items || lane != 0) continue;
    const T divisor = usable ? g.divisor(inside) : T(0);
    const T m = mask == nullptr ? T(1) : mask[k * bins + bin];
    const T gamma = static_cast<T>(s.gamma);
    if (grad_mask != nullptr) {
      grad_mask[k * bins + bin] = bin_value(partial[0][threadIdx.x], divisor, T(1));
    }
    if (grad_offset != nullptr) {
      grad_offset[k * 2 * bins + bin] =
          partial[2][threadIdx.x] * deform_offset_scale(gamma, g.r.roi_w, m, divisor);
      grad_offset[k * 2 * bins + bins + bin] =
          partial[1][threadIdx.x] * deform_offset_scale(gamma, g.r.roi_h, m, divisor);
    }
  }
}

template <typename T, typename I>
__global__ void deform_roi_pool_forward_kernel(const T* input, const T* rois, const T* offset,
                                               const T* mask, DeformRoIPoolShape s, T* output) {
  forward_blocks<T, I, false>(input, rois, offset, mask, s, output);
}

template <typename T, typename I>
__global__ void deform_roi_pool_forward_nhwc_kernel(const T* input, const T* rois,
                                                    const T* offset, const T* mask,
                                                    DeformRoIPoolShape s, T* output) {
  forward_blocks<T, I, true>(input, rois, offset, mask, s, output);
}

template <typename T, typename I>
__global__ void deform_roi_pool_grad_input_kernel(const T* grad_output, const T* rois,
                                                  const T* offset, const T* mask,
                                                  DeformRoIPoolShape s, T* grad_input) {
  grad_input_blocks<T, I, false>(grad_output, rois, offset, mask, s, grad_input);
}

template <typename T, typename I>
__global__ void deform_roi_pool_grad_input_nhwc_kernel(const T* grad_output, const T* rois,
                                                       const T* offset, const T* mask,
                                                       DeformRoIPoolShape s, T* grad_input) {
  grad_input_blocks<T, I, true>(grad_output, rois, offset, mask, s, grad_input);
}

template <typename T, typename I>
__global__ void deform_roi_pool_grad_offset_mask_kernel(const T* grad_output, const T* input,
                                                        const T* rois, const T* offset,
                                                        const T* mask, DeformRoIPoolShape s,
                                                        T* grad_offset, T* grad_mask) {
  grad_offset_mask_groups<T, I, false>(grad_output, input, rois, offset, mask, s, grad_offset,
                                       grad_mask);
}

template <typename T, typename I>
__global__ void deform_roi_pool_grad_offset_mask_nhwc_kernel(const T* grad_output,
                                                             const T* input, const T* rois,
                                                             const T* offset, const T* mask,
                                                             DeformRoIPoolShape s,
                                                             T* grad_offset, T* grad_mask) {
  grad_offset_mask_groups<T, I, true>(grad_output, input, rois, offset, mask, s, grad_offset,
                                      grad_mask);
}

// The blocks of the forward and input-gradient kernels: one per part of a RoI's
// outputs (capped: the blocks then loop).
unsigned int roi_part_blocks(const DeformRoIPoolShape& s) {
  const int64_t per_roi = s.channels * s.pooled_h * s.pooled_w;
  return grid_blocks(s.num_rois * ((per_roi + kOutputsPerBlock - 1) / kOutputsPerBlock));
}

template <typename T>
void launch_forward(const T* input, const T* rois, const T* offset, const T* mask,
                    const DeformRoIPoolShape& s, T* output, std::uintptr_t stream,
                    bool channels_last) {
  const int64_t total = s.num_rois * s.channels * s.pooled_h * s.pooled_w;
  if (total == 0) return;
  if (s.height * s.width == 0) {  // an empty feature map pools to zeros
    check(cudaMemsetAsync(output, 0, total * sizeof(T), as_stream(stream)), "deform_roi_pool");
    return;
  }
  with_index_type({total, 5 * s.num_rois, s.batch * s.channels * s.height * s.width},
                  [&](auto index) {
    using I = decltype(index);
    if (channels_last) {
      launch("deform_roi_pool_forward_nhwc_kernel", deform_roi_pool_forward_nhwc_kernel<T, I>,
             roi_part_blocks(s), kThreads, stream, input, rois, offset, mask, s, output);
    } else {
      launch("deform_roi_pool_forward_kernel", deform_roi_pool_forward_kernel<T, I>,
             roi_part_blocks(s), kThreads, stream, input, rois, offset, mask, s, output);
    }
  });
}

template <typename T>
void launch_backward(const T* grad_output, const T* input, const T* rois, const T* offset,
                     const T* mask, const DeformRoIPoolShape& s, T* grad_input, T* grad_offset,
                     T* grad_mask, std::uintptr_t stream, bool channels_last) {
  const int64_t bins = s.pooled_h * s.pooled_w;
  const int64_t total = s.num_rois * s.channels * bins;
  with_index_type({total, 5 * s.num_rois, 2 * s.num_rois * bins,
                   s.batch * s.channels * s.height * s.width},
                  [&](auto index) {
    using I = decltype(index);
    if (grad_input != nullptr && total > 0 && s.height * s.width > 0) {
      if (channels_last) {
        launch("deform_roi_pool_grad_input_nhwc_kernel",
               deform_roi_pool_grad_input_nhwc_kernel<T, I>, roi_part_blocks(s), kThreads, stream,
               grad_output, rois, offset, mask, s, grad_input);
      } else {
        launch("deform_roi_pool_grad_input_kernel", deform_roi_pool_grad_input_kernel<T, I>,
               roi_part_blocks(s), kThreads, stream, grad_output, rois, offset, mask, s,
               grad_input);
      }
    }
    if ((grad_offset != nullptr || grad_mask != nullptr) && s.num_rois * bins > 0) {
      const unsigned int blocks = grid_blocks((s.num_rois * bins + kGroups - 1) / kGroups);
      if (channels_last) {
        launch("deform_roi_pool_grad_offset_mask_nhwc_kernel",
               deform_roi_pool_grad_offset_mask_nhwc_kernel<T, I>, blocks, kThreads, stream,
               grad_output, input, rois, offset, mask, s, grad_offset, grad_mask);
      } else {
        launch("deform_roi_pool_grad_offset_mask_kernel",
               deform_roi_pool_grad_offset_mask_kernel<T, I>, blocks, kThreads, stream,
               grad_output, input, rois, offset, mask, s, grad_offset, grad_mask);
      }
    }
  });
}

}  // namespace

template <typename T>
void deform_roi_pool_forward(const T* input, const T* rois, const T* offset, const T* mask,
                             const DeformRoIPoolShape& s, T* output, std::uintptr_t stream) {
  launch_forward(input, rois, offset, mask, s, output, stream, false);
}

template <typename T>
void deform_roi_pool_forward_nhwc(const T* input, const T* rois, const T* offset, const T* mask,
                                  const DeformRoIPoolShape& s, T* output,
                                  std::uintptr_t stream) {
  launch_forward(input, rois, offset, mask, s, output, stream, true);
}

template <typename T>
void deform_roi_pool_backward(const T* grad_output, const T* input, const T* rois,
                              const T* offset, const T* mask, const DeformRoIPoolShape& s,
                              T* grad_input, T* grad_offset, T* grad_mask,
                              std::uintptr_t stream) {
  launch_backward(grad_output, input, rois, offset, mask, s, grad_input, grad_offset, grad_mask,
                  stream, false);
}

template <typename T>
void deform_roi_pool_backward_nhwc(const T* grad_output, const T* input, const T* rois,
                                   const T* offset, const T* mask, const DeformRoIPoolShape& s,
                                   T* grad_input, T* grad_offset, T* grad_mask,
                                   std::uintptr_t stream) {
  launch_backward(grad_output, input, rois, offset, mask, s, grad_input, grad_offset, grad_mask,
                  stream, true);
}

#define DET_OPS_INSTANTIATE(T)                                                                  \
  template void deform_roi_pool_forward<T>(const T*, const T*, const T*, const T*,              \
                                           const DeformRoIPoolShape&, T*, std::uintptr_t);      \
  template void deform_roi_pool_forward_nhwc<T>(const T*, const T*, const T*, const T*,         \
                                                const DeformRoIPoolShape&, T*, std::uintptr_t); \
  template void deform_roi_pool_backward<T>(const T*, const T*, const T*, const T*, const T*,   \
                                            const DeformRoIPoolShape&, T*, T*, T*,              \
                                            std::uintptr_t);                                   \
  template void deform_roi_pool_backward_nhwc<T>(const T*, const T*, const T*, const T*,        \
                                                 const T*, const DeformRoIPoolShape&, T*, T*,   \
                                                 T*, std::uintptr_t);
DET_OPS_INSTANTIATE(float)
DET_OPS_INSTANTIATE(double)
#undef DET_OPS_INSTANTIATE

}  // namespace det_ops::cuda
