// RoIAlign on the GPU: one thread per output element (forward) or per
// grad_output element (backward, scattering with atomicAdd). The geometry and
// the separable clamped interpolation are the CPU kernel's (csrc/common).
#include "common/bilinear.h"
#include "common/roi_geometry.h"
#include "cuda/launch.cuh"
#include "cuda/roi_align.h"

namespace det_ops::cuda {
namespace {

struct OutputIndex {
  int64_t k, c, ph, pw;
};

__device__ __forceinline__ OutputIndex split_index(int64_t index, int64_t channels,
                                                   int64_t pooled_h, int64_t pooled_w) {
  OutputIndex o;
  o.pw = index % pooled_w;
  index /= pooled_w;
  o.ph = index % pooled_h;
  index /= pooled_h;
  o.c = index % channels;
  o.k = index / channels;
  return o;
}

template <typename T>
__global__ void roi_align_forward_kernel(const T* input, const T* rois, RoIAlignShape s,
                                         T* output) {
  const int64_t total = s.num_rois * s.channels * s.pooled_h * s.pooled_w;
  DET_CUDA_LOOP(index, total) {
    const OutputIndex o = split_index(index, s.channels, s.pooled_h, s.pooled_w);
    const AlignedRoI<T> r = aligned_roi(rois + 5 * o.k, s.batch, static_cast<T>(s.spatial_scale),
                                        s.pooled_h, s.pooled_w, s.sampling_ratio, s.aligned);
    if (r.batch < 0) {
      output[index] = T(0);
      continue;
    }
    const T* data = input + (r.batch * s.channels + o.c) * s.height * s.width;
    T sum = T(0);
    for (int64_t iy = 0; iy < r.grid_h; ++iy) {
      const AxisTap<T> y = clamped_axis(s.height, r.sample_y(o.ph, iy));
      if (!y.inside) continue;
      const int64_t low = y.low * s.width, high = y.high * s.width;
      for (int64_t ix = 0; ix < r.grid_w; ++ix) {
        const AxisTap<T> x = clamped_axis(s.width, r.sample_x(o.pw, ix));
        if (!x.inside) continue;
        sum += y.h * x.h * data[low + x.low] + y.h * x.l * data[low + x.high] +
               y.l * x.h * data[high + x.low] + y.l * x.l * data[high + x.high];
      }
    }
    output[index] = sum / r.count;
  }
}

template <typename T>
__global__ void roi_align_backward_kernel(const T* grad_output, const T* rois, RoIAlignShape s,
                                          T* grad_input) {
  const int64_t total = s.num_rois * s.channels * s.pooled_h * s.pooled_w;
  DET_CUDA_LOOP(index, total) {
    const OutputIndex o = split_index(index, s.channels, s.pooled_h, s.pooled_w);
    const AlignedRoI<T> r = aligned_roi(rois + 5 * o.k, s.batch, static_cast<T>(s.spatial_scale),
                                        s.pooled_h, s.pooled_w, s.sampling_ratio, s.aligned);
    if (r.batch < 0) continue;
    T* grad = grad_input + (r.batch * s.channels + o.c) * s.height * s.width;
    const T go = grad_output[index] / r.count;
    for (int64_t iy = 0; iy < r.grid_h; ++iy) {
      const AxisTap<T> y = clamped_axis(s.height, r.sample_y(o.ph, iy));
      if (!y.inside) continue;
      const int64_t low = y.low * s.width, high = y.high * s.width;
      for (int64_t ix = 0; ix < r.grid_w; ++ix) {
        const AxisTap<T> x = clamped_axis(s.width, r.sample_x(o.pw, ix));
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
  launch("roi_align_forward_kernel", roi_align_forward_kernel<T>, blocks_for(total), kThreads,
         stream, input, rois, s, output);
}

template <typename T>
void roi_align_backward(const T* grad_output, const T* rois, const RoIAlignShape& s,
                        T* grad_input, std::uintptr_t stream) {
  const int64_t total = s.num_rois * s.channels * s.pooled_h * s.pooled_w;
  if (total == 0 || s.height * s.width == 0) return;
  launch("roi_align_backward_kernel", roi_align_backward_kernel<T>, blocks_for(total), kThreads,
         stream, grad_output, rois, s, grad_input);
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
