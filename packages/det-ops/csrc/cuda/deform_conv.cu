// Deformable convolution's sampling on the GPU, one thread per sample:
//  * im2col: (image, channel, tap, position) -> one masked bilinear sample;
//  * col2im: the same samples scattered back with atomicAdd;
//  * col2im_coord: (image, offset group, tap, position) -> the offset and
//    mask gradients, summed over the group's channels.
// Sampling points and taps come from csrc/common, as on the CPU.
#include "common/bilinear.h"
#include "common/deform_conv.h"
#include "cuda/launch.cuh"
#include "cuda/deform_conv.h"

namespace det_ops::cuda {
namespace {

template <typename T>
__device__ __forceinline__ void sample_taps(const DeformConvGeometry& s, const T* offset,
                                            int64_t b, int64_t g, int64_t k, int64_t p,
                                            BilinearTaps<T>& taps) {
  T y, x;
  s.sample_point(offset, b, g, k, p, y, x);
  zero_padded_bilinear(s.height, s.width, y, x, taps);
}

template <typename T>
__global__ void deform_im2col_kernel(const T* input, const T* offset, const T* mask,
                                     DeformConvGeometry s, T* columns) {
  const int64_t positions = s.positions(), taps = s.taps();
  const int64_t total = s.batch * s.channels * taps * positions;
  DET_CUDA_LOOP(index, total) {
    const int64_t p = index % positions;
    const int64_t k = (index / positions) % taps;
    const int64_t c = (index / (positions * taps)) % s.channels;
    const int64_t b = index / (positions * taps * s.channels);
    const int64_t g = c / s.channels_per_group();
    BilinearTaps<T> t;
    sample_taps(s, offset, b, g, k, p, t);
    const T scale = mask != nullptr ? mask[s.mask_plane(b, g, k) + p] : T(1);
    columns[index] = t.sample(input + (b * s.channels + c) * s.height * s.width) * scale;
  }
}

template <typename T>
__global__ void deform_col2im_kernel(const T* grad_columns, const T* offset, const T* mask,
                                     DeformConvGeometry s, T* grad_input) {
  const int64_t positions = s.positions(), taps = s.taps();
  const int64_t total = s.batch * s.channels * taps * positions;
  DET_CUDA_LOOP(index, total) {
    const int64_t p = index % positions;
    const int64_t k = (index / positions) % taps;
    const int64_t c = (index / (positions * taps)) % s.channels;
    const int64_t b = index / (positions * taps * s.channels);
    const int64_t g = c / s.channels_per_group();
    BilinearTaps<T> t;
    sample_taps(s, offset, b, g, k, p, t);
    const T scale = mask != nullptr ? mask[s.mask_plane(b, g, k) + p] : T(1);
    const T v = grad_columns[index] * scale;
    T* grad = grad_input + (b * s.channels + c) * s.height * s.width;
    for (int i = 0; i < 4; ++i) {
      if (t.weight[i] != T(0)) atomicAdd(grad + t.offset[i], t.weight[i] * v);
    }
  }
}

template <typename T>
__global__ void deform_col2im_coord_kernel(const T* grad_columns, const T* input,
                                           const T* offset, const T* mask, DeformConvGeometry s,
                                           T* grad_offset, T* grad_mask) {
  const int64_t positions = s.positions(), taps = s.taps();
  const int64_t plane = s.height * s.width;
  const int64_t group_channels = s.channels_per_group();
  const int64_t total = s.batch * s.offset_groups * taps * positions;
  DET_CUDA_LOOP(index, total) {
    const int64_t p = index % positions;
    const int64_t k = (index / positions) % taps;
    const int64_t g = (index / (positions * taps)) % s.offset_groups;
    const int64_t b = index / (positions * taps * s.offset_groups);
    BilinearTaps<T> t;
    sample_taps(s, offset, b, g, k, p, t);
    T sum_dy = T(0), sum_dx = T(0), sum_value = T(0);
    if (plane > 0) {
      for (int64_t c = g * group_channels; c < (g + 1) * group_channels; ++c) {
        const T* data = input + (b * s.channels + c) * plane;
        const T gc = grad_columns[((b * s.channels + c) * taps + k) * positions + p];
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
    const T scale = mask != nullptr ? mask[s.mask_plane(b, g, k) + p] : T(1);
    grad_offset[s.offset_plane(b, g, k) + p] = sum_dy * scale;
    grad_offset[s.offset_plane(b, g, k) + positions + p] = sum_dx * scale;
    if (grad_mask != nullptr) grad_mask[s.mask_plane(b, g, k) + p] = sum_value;
  }
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
  launch("deform_im2col_kernel", deform_im2col_kernel<T>, blocks_for(total), kThreads, stream,
         input, offset, mask, s, columns);
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
  launch("deform_col2im_kernel", deform_col2im_kernel<T>, blocks_for(total), kThreads, stream,
         grad_columns, offset, mask, s, grad_input);
}

template <typename T>
void deform_col2im_coord(const T* grad_columns, const T* input, const T* offset, const T* mask,
                         const DeformConvGeometry& s, T* grad_offset, T* grad_mask,
                         std::uintptr_t stream) {
  const int64_t total = s.batch * s.offset_groups * s.taps() * s.positions();
  if (total == 0) return;
  launch("deform_col2im_coord_kernel", deform_col2im_coord_kernel<T>, blocks_for(total),
         kThreads, stream, grad_columns, input, offset, mask, s, grad_offset, grad_mask);
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
