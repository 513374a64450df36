// RoIPool on the GPU: one thread per output element; the backward scatters
// through the saved argmax with atomicAdd. Indices are 32-bit where the tensors
// allow (with_index_type).
#include <cfloat>

#include "common/roi_geometry.h"
#include "cuda/launch.cuh"
#include "cuda/roi_pool.h"

namespace det_ops::cuda {
namespace {

template <typename T, typename I>
__global__ void roi_pool_forward_kernel(const T* input, const T* rois, RoIPoolShape s, T* output,
                                        int32_t* argmax) {
  const I channels = static_cast<I>(s.channels), height = static_cast<I>(s.height);
  const I width = static_cast<I>(s.width);
  const I pooled_h = static_cast<I>(s.pooled_h), pooled_w = static_cast<I>(s.pooled_w);
  const I total = static_cast<I>(s.num_rois) * channels * pooled_h * pooled_w;
  const T scale = static_cast<T>(s.spatial_scale);
  DET_CUDA_INDEX_LOOP(I, index, total) {
    const I pw = index % pooled_w, ph = (index / pooled_w) % pooled_h;
    const I c = (index / (pooled_w * pooled_h)) % channels;
    const I k = index / (pooled_w * pooled_h * channels);
    const T* roi = rois + 5 * k;
    const I b = pool_roi_batch(roi, static_cast<I>(s.batch));
    if (b < 0) {
      output[index] = T(0);
      argmax[index] = -1;
      continue;
    }
    const PoolBin<I> rows = pool_bin<T>(round_coordinate(roi[2] * scale),
                                        round_coordinate(roi[4] * scale), pooled_h, ph, height);
    const PoolBin<I> cols = pool_bin<T>(round_coordinate(roi[1] * scale),
                                        round_coordinate(roi[3] * scale), pooled_w, pw, width);
    const bool empty = rows.end <= rows.start || cols.end <= cols.start;
    const T* data = input + (b * channels + c) * height * width;
    T best = empty ? T(0) : T(-FLT_MAX);
    I best_index = -1;
    for (I y = rows.start; y < rows.end; ++y) {
      for (I x = cols.start; x < cols.end; ++x) {
        const I i = y * width + x;
        if (data[i] > best) {
          best = data[i];
          best_index = i;
        }
      }
    }
    output[index] = best;
    argmax[index] = static_cast<int32_t>(best_index);
  }
}

template <typename T, typename I>
__global__ void roi_pool_backward_kernel(const T* grad_output, const T* rois,
                                         const int32_t* argmax, RoIPoolShape s, T* grad_input) {
  const I channels = static_cast<I>(s.channels);
  const I plane = static_cast<I>(s.height) * static_cast<I>(s.width);
  const I bins = static_cast<I>(s.pooled_h) * static_cast<I>(s.pooled_w);
  const I total = static_cast<I>(s.num_rois) * channels * bins;
  DET_CUDA_INDEX_LOOP(I, index, total) {
    const I arg = argmax[index];
    if (arg < 0) continue;
    const I c = (index / bins) % channels, k = index / (bins * channels);
    const I b = pool_roi_batch(rois + 5 * k, static_cast<I>(s.batch));
    if (b < 0) continue;
    atomicAdd(grad_input + (b * channels + c) * plane + arg, grad_output[index]);
  }
}

}  // namespace

template <typename T>
void roi_pool_forward(const T* input, const T* rois, const RoIPoolShape& s, T* output,
                      int32_t* argmax, std::uintptr_t stream) {
  const int64_t total = s.num_rois * s.channels * s.pooled_h * s.pooled_w;
  if (total == 0) return;
  with_index_type({total, 5 * s.num_rois, s.batch * s.channels * s.height * s.width}, [&](auto index) {
    using I = decltype(index);
    launch("roi_pool_forward_kernel", roi_pool_forward_kernel<T, I>, blocks_for(total), kThreads,
           stream, input, rois, s, output, argmax);
  });
}

template <typename T>
void roi_pool_backward(const T* grad_output, const T* rois, const int32_t* argmax,
                       const RoIPoolShape& s, T* grad_input, std::uintptr_t stream) {
  const int64_t total = s.num_rois * s.channels * s.pooled_h * s.pooled_w;
  if (total == 0) return;
  with_index_type({total, 5 * s.num_rois, s.batch * s.channels * s.height * s.width}, [&](auto index) {
    using I = decltype(index);
    launch("roi_pool_backward_kernel", roi_pool_backward_kernel<T, I>, blocks_for(total),
           kThreads, stream, grad_output, rois, argmax, s, grad_input);
  });
}

template void roi_pool_forward<float>(const float*, const float*, const RoIPoolShape&, float*,
                                      int32_t*, std::uintptr_t);
template void roi_pool_forward<double>(const double*, const double*, const RoIPoolShape&, double*,
                                       int32_t*, std::uintptr_t);
template void roi_pool_backward<float>(const float*, const float*, const int32_t*,
                                       const RoIPoolShape&, float*, std::uintptr_t);
template void roi_pool_backward<double>(const double*, const double*, const int32_t*,
                                        const RoIPoolShape&, double*, std::uintptr_t);

}  // namespace det_ops::cuda
