// Deformable convolution's sampling on the GPU:
//  * im2col: one thread per (image, channel, position), which decomposes its
//    index once and takes the masked bilinear samples of all kernel taps;
//  * col2im: one thread per sample (image, channel, tap, position), scattered
//    back with atomicAdd;
//  * col2im_coord: (image, offset group, tap, position) -> the offset and
//    mask gradients, summed over the group's channels.
// Sampling points and taps are those of csrc/common, as on the CPU; indices
// are 32-bit where the tensors allow (with_index_type).
#include "common/bilinear.h"
#include "common/deform_conv.h"
#include "cuda/launch.cuh"
#include "cuda/deform_conv.h"

namespace det_ops::cuda {
namespace {

// A DeformConvGeometry's sizes in the kernel's index type.
template <typename I>
struct Sizes {
  I channels, height, width, offset_groups, group_channels, kernel_h, kernel_w, taps, out_w,
      positions;

  explicit __device__ Sizes(const DeformConvGeometry& s)
      : channels(static_cast<I>(s.channels)),
        height(static_cast<I>(s.height)),
        width(static_cast<I>(s.width)),
        offset_groups(static_cast<I>(s.offset_groups)),
        group_channels(static_cast<I>(s.channels_per_group())),
        kernel_h(static_cast<I>(s.kernel_h)),
        kernel_w(static_cast<I>(s.kernel_w)),
        taps(kernel_h * kernel_w),
        out_w(static_cast<I>(s.out_w)),
        positions(static_cast<I>(s.positions())) {}

  // The offset map's dy plane of (image b, offset group g, tap k); dx follows.
  __device__ I offset_plane(I b, I g, I k) const {
    return ((b * offset_groups + g) * 2 * taps + 2 * k) * positions;
  }
  __device__ I mask_plane(I b, I g, I k) const {
    return ((b * offset_groups + g) * taps + k) * positions;
  }
};

// The undeformed sampling point of kernel tap (i, j) at output position p:
// DeformConvGeometry::base_point in the index type.
template <typename T, typename I>
__device__ __forceinline__ void base_point(const DeformConvGeometry& s, const Sizes<I>& z, I i,
                                           I j, I p, T& y, T& x) {
  const I oy = p / z.out_w, ox = p - oy * z.out_w;
  y = static_cast<T>(oy * static_cast<I>(s.stride_h) - static_cast<I>(s.pad_h) +
                     i * static_cast<I>(s.dilation_h));
  x = static_cast<T>(ox * static_cast<I>(s.stride_w) - static_cast<I>(s.pad_w) +
                     j * static_cast<I>(s.dilation_w));
}

// Taps of tap k at position p of image b, offset group g.
template <typename T, typename I, typename Taps>
__device__ __forceinline__ void sample_taps(const DeformConvGeometry& s, const Sizes<I>& z,
                                            const T* offset, I b, I g, I k, I p, Taps& taps) {
  T y, x;
  base_point(s, z, k / z.kernel_w, k % z.kernel_w, p, y, x);
  const T* dy = offset + z.offset_plane(b, g, k);
  zero_padded_bilinear(z.height, z.width, y + dy[p], x + dy[z.positions + p], taps);
}

template <typename T, typename I>
__global__ void deform_im2col_kernel(const T* input, const T* offset, const T* mask,
                                     DeformConvGeometry s, T* columns) {
  const Sizes<I> z(s);
  const I total = static_cast<I>(s.batch) * z.channels * z.positions;
  DET_CUDA_INDEX_LOOP(I, index, total) {
    const I p = index % z.positions;
    const I c = (index / z.positions) % z.channels;
    const I b = index / (z.positions * z.channels);
    const I g = c / z.group_channels;
    T y0, x0;
    base_point(s, z, I(0), I(0), p, y0, x0);
    const T* plane = input + (b * z.channels + c) * z.height * z.width;
    const T* dy = offset + z.offset_plane(b, g, 0) + p;  // tap k: dy[2k P], dx[(2k + 1) P]
    const T* m = mask != nullptr ? mask + z.mask_plane(b, g, 0) + p : nullptr;
    T* column = columns + (b * z.channels + c) * z.taps * z.positions + p;
    ForwardTaps<T, I> t;  // im2col needs no derivative
    for (I i = 0, k = 0; i < z.kernel_h; ++i) {
      const T y = y0 + static_cast<T>(i * static_cast<I>(s.dilation_h));
      for (I j = 0; j < z.kernel_w; ++j, ++k) {
        const T x = x0 + static_cast<T>(j * static_cast<I>(s.dilation_w));
        zero_padded_bilinear(z.height, z.width, y + dy[2 * k * z.positions],
                             x + dy[(2 * k + 1) * z.positions], t);
        const T scale = m != nullptr ? m[k * z.positions] : T(1);
        column[k * z.positions] = t.sample(plane) * scale;
      }
    }
  }
}

template <typename T, typename I>
__global__ void deform_col2im_kernel(const T* grad_columns, const T* offset, const T* mask,
                                     DeformConvGeometry s, T* grad_input) {
  const Sizes<I> z(s);
  const I total = static_cast<I>(s.batch) * z.channels * z.taps * z.positions;
  DET_CUDA_INDEX_LOOP(I, index, total) {
    const I p = index % z.positions;
    const I k = (index / z.positions) % z.taps;
    const I c = (index / (z.positions * z.taps)) % z.channels;
    const I b = index / (z.positions * z.taps * z.channels);
    const I g = c / z.group_channels;
    ForwardTaps<T, I> t;
    sample_taps(s, z, offset, b, g, k, p, t);
    const T scale = mask != nullptr ? mask[z.mask_plane(b, g, k) + p] : T(1);
    const T v = grad_columns[index] * scale;
    T* grad = grad_input + (b * z.channels + c) * z.height * z.width;
    for (int i = 0; i < 4; ++i) {
      if (t.weight[i] != T(0)) atomicAdd(grad + t.offset[i], t.weight[i] * v);
    }
  }
}

template <typename T, typename I>
__global__ void deform_col2im_coord_kernel(const T* grad_columns, const T* input,
                                           const T* offset, const T* mask, DeformConvGeometry s,
                                           T* grad_offset, T* grad_mask) {
  const Sizes<I> z(s);
  const I plane = z.height * z.width;
  const I total = static_cast<I>(s.batch) * z.offset_groups * z.taps * z.positions;
  DET_CUDA_INDEX_LOOP(I, index, total) {
    const I p = index % z.positions;
    const I k = (index / z.positions) % z.taps;
    const I g = (index / (z.positions * z.taps)) % z.offset_groups;
    const I b = index / (z.positions * z.taps * z.offset_groups);
    BilinearTaps<T, I> t;
    sample_taps(s, z, offset, b, g, k, p, t);
    T sum_dy = T(0), sum_dx = T(0), sum_value = T(0);
    if (plane > 0) {
      for (I c = g * z.group_channels; c < (g + 1) * z.group_channels; ++c) {
        const T* data = input + (b * z.channels + c) * plane;
        const T gc = grad_columns[((b * z.channels + c) * z.taps + k) * z.positions + p];
        const T v0 = data[t.offset[0]], v1 = data[t.offset[1]];
        const T v2 = data[t.offset[2]], v3 = data[t.offset[3]];
        sum_dy += gc * (t.dweight_dy[0] * v0 + t.dweight_dy[1] * v1 + t.dweight_dy[2] * v2 +
                        t.dweight_dy[3] * v3);
        sum_dx += gc * (t.dweight_dx[0] * v0 + t.dweight_dx[1] * v1 + t.dweight_dx[2] * v2 +
                        t.dweight_dx[3] * v3);
        sum_value += gc * (t.weight[0] * v0 + t.weight[1] * v1 + t.weight[2] * v2 +
                           t.weight[3] * v3);
      }
    }
    const T scale = mask != nullptr ? mask[z.mask_plane(b, g, k) + p] : T(1);
    grad_offset[z.offset_plane(b, g, k) + p] = sum_dy * scale;
    grad_offset[z.offset_plane(b, g, k) + z.positions + p] = sum_dx * scale;
    if (grad_mask != nullptr) grad_mask[z.mask_plane(b, g, k) + p] = sum_value;
  }
}

// Elements of the columns buffer [batch, channels, taps, positions].
int64_t columns_size(const DeformConvGeometry& s) {
  return s.batch * s.channels * s.taps() * s.positions();
}

}  // namespace

template <typename T>
void deform_im2col(const T* input, const T* offset, const T* mask, const DeformConvGeometry& s,
                   T* columns, std::uintptr_t stream) {
  const int64_t total = s.batch * s.channels * s.taps() * s.positions();
  if (total == 0) return;
  if (s.height * s.width == 0) {  // an empty map reads as zeros everywhere
    check(cudaMemsetAsync(columns, 0, total * sizeof(T), as_stream(stream)), "deform_im2col");
    return;
  }
  with_index_type({total, s.batch * s.channels * s.height * s.width,
                   s.batch * s.offset_groups * 2 * s.taps() * s.positions()},
                  [&](auto index) {
                    using I = decltype(index);
                    // One thread per (image, channel, position), for all taps.
                    launch("deform_im2col_kernel", deform_im2col_kernel<T, I>,
                           blocks_for(total / s.taps()), kThreads, stream, input, offset, mask, s,
                           columns);
                  });
}

template <typename T>
void deform_col2im(const T* grad_columns, const T* offset, const T* mask,
                   const DeformConvGeometry& s, T* grad_input, std::uintptr_t stream) {
  const int64_t input_size = s.batch * s.channels * s.height * s.width;
  if (input_size == 0) return;
  check(cudaMemsetAsync(grad_input, 0, input_size * sizeof(T), as_stream(stream)),
        "deform_col2im");
  const int64_t total = s.batch * s.channels * s.taps() * s.positions();
  if (total == 0) return;
  with_index_type({total, input_size, s.batch * s.offset_groups * 2 * s.taps() * s.positions()},
                  [&](auto index) {
                    using I = decltype(index);
                    launch("deform_col2im_kernel", deform_col2im_kernel<T, I>, blocks_for(total),
                           kThreads, stream, grad_columns, offset, mask, s, grad_input);
                  });
}

template <typename T>
void deform_col2im_coord(const T* grad_columns, const T* input, const T* offset, const T* mask,
                         const DeformConvGeometry& s, T* grad_offset, T* grad_mask,
                         std::uintptr_t stream) {
  const int64_t total = s.batch * s.offset_groups * s.taps() * s.positions();
  if (total == 0) return;
  with_index_type({2 * total, columns_size(s), s.batch * s.channels * s.height * s.width},
                  [&](auto index) {
                    using I = decltype(index);
                    launch("deform_col2im_coord_kernel", deform_col2im_coord_kernel<T, I>,
                           blocks_for(total), kThreads, stream, grad_columns, input, offset, mask,
                           s, grad_offset, grad_mask);
                  });
}

#define DET_OPS_INSTANTIATE(T)                                                               \
  template void deform_im2col<T>(const T*, const T*, const T*, const DeformConvGeometry&, T*, \
                                 std::uintptr_t);                                            \
  template void deform_col2im<T>(const T*, const T*, const T*, const DeformConvGeometry&, T*, \
                                 std::uintptr_t);                                            \
  template void deform_col2im_coord<T>(const T*, const T*, const T*, const T*,               \
                                       const DeformConvGeometry&, T*, T*, std::uintptr_t);
DET_OPS_INSTANTIATE(float)
DET_OPS_INSTANTIATE(double)
#undef DET_OPS_INSTANTIATE

}  // namespace det_ops::cuda
