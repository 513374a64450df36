// RoIPool on the GPU: one thread per output element; the backward scatters
// through the saved argmax with atomicAdd.
#include <cfloat>

#include "common/roi_geometry.h"
#include "cuda/launch.cuh"
#include "cuda/roi_pool.h"

namespace det_ops::cuda {
namespace {

template <typename T>
__global__ void roi_pool_forward_kernel(const T* input, const T* rois, RoIPoolShape s, T* output,
                                        int64_t* argmax) {
  const int64_t total = s.num_rois * s.channels * s.pooled_h * s.pooled_w;
  const T scale = static_cast<T>(s.spatial_scale);
  DET_CUDA_LOOP(index, total) {
    const int64_t pw = index % s.pooled_w, ph = (index / s.pooled_w) % s.pooled_h;
    const int64_t c = (index / (s.pooled_w * s.pooled_h)) % s.channels;
    const int64_t k = index / (s.pooled_w * s.pooled_h * s.channels);
    const T* roi = rois + 5 * k;
    const int64_t b = pool_roi_batch(roi, s.batch);
    if (b < 0) {
      output[index] = T(0);
      argmax[index] = -1;
      continue;
    }
    const PoolBin rows = pool_bin<T>(round_coordinate(roi[2] * scale),
                                     round_coordinate(roi[4] * scale), s.pooled_h, ph, s.height);
    const PoolBin cols = pool_bin<T>(round_coordinate(roi[1] * scale),
                                     round_coordinate(roi[3] * scale), s.pooled_w, pw, s.width);
    const bool empty = rows.end <= rows.start || cols.end <= cols.start;
    const T* data = input + (b * s.channels + c) * s.height * s.width;
    T best = empty ? T(0) : T(-FLT_MAX);
    int64_t best_index = -1;
    for (int64_t y = rows.start; y < rows.end; ++y) {
      for (int64_t x = cols.start; x < cols.end; ++x) {
        const int64_t i = y * s.width + x;
        if (data[i] > best) {
          best = data[i];
          best_index = i;
        }
      }
    }
    output[index] = best;
    argmax[index] = best_index;
  }
}

template <typename T>
__global__ void roi_pool_backward_kernel(const T* grad_output, const T* rois,
                                         const int64_t* argmax, RoIPoolShape s, T* grad_input) {
  const int64_t total = s.num_rois * s.channels * s.pooled_h * s.pooled_w;
  DET_CUDA_LOOP(index, total) {
    if (argmax[index] < 0) continue;
    const int64_t c = (index / (s.pooled_w * s.pooled_h)) % s.channels;
    const int64_t k = index / (s.pooled_w * s.pooled_h * s.channels);
    const int64_t b = pool_roi_batch(rois + 5 * k, s.batch);
    if (b < 0) continue;
    atomicAdd(grad_input + (b * s.channels + c) * s.height * s.width + argmax[index],
              grad_output[index]);
  }
}

}  // namespace

template <typename T>
void roi_pool_forward(const T* input, const T* rois, const RoIPoolShape& s, T* output,
                      int64_t* argmax, std::uintptr_t stream) {
  const int64_t total = s.num_rois * s.channels * s.pooled_h * s.pooled_w;
  if (total == 0) return;
  launch("roi_pool_forward_kernel", roi_pool_forward_kernel<T>, blocks_for(total), kThreads,
         stream, input, rois, s, output, argmax);
}

template <typename T>
void roi_pool_backward(const T* grad_output, const T* rois, const int64_t* argmax,
                       const RoIPoolShape& s, T* grad_input, std::uintptr_t stream) {
  const int64_t total = s.num_rois * s.channels * s.pooled_h * s.pooled_w;
  if (total == 0) return;
  launch("roi_pool_backward_kernel", roi_pool_backward_kernel<T>, blocks_for(total), kThreads,
         stream, grad_output, rois, argmax, s, grad_input);
}

template void roi_pool_forward<float>(const float*, const float*, const RoIPoolShape&, float*,
                                      int64_t*, std::uintptr_t);
template void roi_pool_forward<double>(const double*, const double*, const RoIPoolShape&, double*,
                                       int64_t*, std::uintptr_t);
template void roi_pool_backward<float>(const float*, const float*, const int64_t*,
                                       const RoIPoolShape&, float*, std::uintptr_t);
template void roi_pool_backward<double>(const double*, const double*, const int64_t*,
                                        const RoIPoolShape&, double*, std::uintptr_t);

}  // namespace det_ops::cuda
