// RoIAlign on the GPU: one thread per output element (forward) or per
// grad_output element (backward, scattering with atomicAdd). The geometry and
// the separable clamped interpolation are the CPU kernel's (csrc/common).
#include "common/bilinear.h"
#include "common/roi_geometry.h"
#include "cuda/launch.cuh"
#include "cuda/roi_align.h"

namespace det_ops::cuda {
namespace {

template <typename I>
struct OutputIndex {
  I k, c, ph, pw;
};

template <typename I>
__device__ __forceinline__ OutputIndex<I> split_index(I index, I channels, I pooled_h,
                                                      I pooled_w) {
  OutputIndex<I> o;
  o.pw = index % pooled_w;
  index /= pooled_w;
  o.ph = index % pooled_h;
  index /= pooled_h;
  o.c = index % channels;
  o.k = index / channels;
  return o;
}

template <typename T, typename I>
__global__ void roi_align_forward_kernel(const T* input, const T* rois, RoIAlignShape s,
                                         T* output) {
  const I channels = static_cast<I>(s.channels), height = static_cast<I>(s.height);
  const I width = static_cast<I>(s.width);
  const I pooled_h = static_cast<I>(s.pooled_h), pooled_w = static_cast<I>(s.pooled_w);
  const I total = static_cast<I>(s.num_rois) * channels * pooled_h * pooled_w;
  DET_CUDA_INDEX_LOOP(I, index, total) {
    const OutputIndex<I> o = split_index(index, channels, pooled_h, pooled_w);
    const AlignedRoI<T, I> r =
        aligned_roi(rois + 5 * o.k, static_cast<I>(s.batch), static_cast<T>(s.spatial_scale),
                    pooled_h, pooled_w, static_cast<I>(s.sampling_ratio), s.aligned);
    if (r.batch < 0) {
      output[index] = T(0);
      continue;
    }
    const T* data = input + (r.batch * channels + o.c) * height * width;
    T sum = T(0);
    for (I iy = 0; iy < r.grid_h; ++iy) {
      const AxisTap<T, I> y = clamped_axis(height, r.sample_y(o.ph, iy));
      if (!y.inside) continue;
      const I low = y.low * width, high = y.high * width;
      for (I ix = 0; ix < r.grid_w; ++ix) {
        const AxisTap<T, I> x = clamped_axis(width, r.sample_x(o.pw, ix));
        if (!x.inside) continue;
        sum += y.h * x.h * data[low + x.low] + y.h * x.l * data[low + x.high] +
               y.l * x.h * data[high + x.low] + y.l * x.l * data[high + x.high];
      }
    }
    output[index] = sum / r.count;
  }
}

template <typename T, typename I>
__global__ void roi_align_backward_kernel(const T* grad_output, const T* rois, RoIAlignShape s,
                                          T* grad_input) {
  const I channels = static_cast<I>(s.channels), height = static_cast<I>(s.height);
  const I width = static_cast<I>(s.width);
  const I pooled_h = static_cast<I>(s.pooled_h), pooled_w = static_cast<I>(s.pooled_w);
  const I total = static_cast<I>(s.num_rois) * channels * pooled_h * pooled_w;
  DET_CUDA_INDEX_LOOP(I, index, total) {
    const OutputIndex<I> o = split_index(index, channels, pooled_h, pooled_w);
    const AlignedRoI<T, I> r =
        aligned_roi(rois + 5 * o.k, static_cast<I>(s.batch), static_cast<T>(s.spatial_scale),
                    pooled_h, pooled_w, static_cast<I>(s.sampling_ratio), s.aligned);
    if (r.batch < 0) continue;
    T* grad = grad_input + (r.batch * channels + o.c) * height * width;
    const T go = grad_output[index] / r.count;
    for (I iy = 0; iy < r.grid_h; ++iy) {
      const AxisTap<T, I> y = clamped_axis(height, r.sample_y(o.ph, iy));
      if (!y.inside) continue;
      const I low = y.low * width, high = y.high * width;
      for (I ix = 0; ix < r.grid_w; ++ix) {
        const AxisTap<T, I> x = clamped_axis(width, r.sample_x(o.pw, ix));
        if (!x.inside) continue;
        atomicAdd(grad + low + x.low, y.h * x.h * go);
        atomicAdd(grad + low + x.high, y.h * x.l * go);
        atomicAdd(grad + high + x.low, y.l * x.h * go);
        atomicAdd(grad + high + x.high, y.l * x.l * go);
      }
    }
  }
}

}  // namespace

template <typename T>
void roi_align_forward(const T* input, const T* rois, const RoIAlignShape& s, T* output,
                       std::uintptr_t stream) {
  const int64_t total = s.num_rois * s.channels * s.pooled_h * s.pooled_w;
  if (total == 0) return;
  if (s.height * s.width == 0) {  // an empty feature map pools to zeros
    check(cudaMemsetAsync(output, 0, total * sizeof(T), as_stream(stream)), "roi_align");
    return;
  }
  with_index_type({total, 5 * s.num_rois, s.batch * s.channels * s.height * s.width},
                  [&](auto index) {
                    using I = decltype(index);
                    launch("roi_align_forward_kernel", roi_align_forward_kernel<T, I>,
                           blocks_for(total), kThreads, stream, input, rois, s, output);
                  });
}

template <typename T>
void roi_align_backward(const T* grad_output, const T* rois, const RoIAlignShape& s,
                        T* grad_input, std::uintptr_t stream) {
  const int64_t total = s.num_rois * s.channels * s.pooled_h * s.pooled_w;
  if (total == 0 || s.height * s.width == 0) return;
  with_index_type({total, 5 * s.num_rois, s.batch * s.channels * s.height * s.width},
                  [&](auto index) {
                    using I = decltype(index);
                    launch("roi_align_backward_kernel", roi_align_backward_kernel<T, I>,
                           blocks_for(total), kThreads, stream, grad_output, rois, s, grad_input);
                  });
}

template void roi_align_forward<float>(const float*, const float*, const RoIAlignShape&, float*,
                                       std::uintptr_t);
template void roi_align_forward<double>(const double*, const double*, const RoIAlignShape&,
                                        double*, std::uintptr_t);
template void roi_align_backward<float>(const float*, const float*, const RoIAlignShape&, float*,
                                        std::uintptr_t);
template void roi_align_backward<double>(const double*, const double*, const RoIAlignShape&,
                                         double*, std::uintptr_t);

}  // namespace det_ops::cuda
