// RoIPool (max pooling over quantised bins) on the CPU.
#include "cpu/roi_pool.h"

#include <cfloat>
#include <algorithm>
#include <cmath>
#include <vector>

#include "common/roi_geometry.h"
#include "cpu/parallel.h"

namespace det_ops::cpu {

template <typename T>
void roi_pool_forward(const T* input, const T* rois, const RoIPoolShape& s, T* output,
                      int32_t* argmax) {
  const int64_t bins = s.pooled_h * s.pooled_w;
  const int64_t plane = s.height * s.width;
  const T scale = static_cast<T>(s.spatial_scale);
  // Bin edges of every RoI, computed once: rows [pooled_h], then columns [pooled_w].
  std::vector<int64_t> batch(s.num_rois);
  std::vector<PoolBin<>> edges(s.num_rois * (s.pooled_h + s.pooled_w));
  for (int64_t k = 0; k < s.num_rois; ++k) {
    const T* roi = rois + 5 * k;
    batch[k] = pool_roi_batch(roi, s.batch);
    if (batch[k] < 0) continue;
    const int64_t x1 = round_coordinate(roi[1] * scale), y1 = round_coordinate(roi[2] * scale);
    const int64_t x2 = round_coordinate(roi[3] * scale), y2 = round_coordinate(roi[4] * scale);
    PoolBin<>* e = &edges[k * (s.pooled_h + s.pooled_w)];
    for (int64_t ph = 0; ph < s.pooled_h; ++ph) e[ph] = pool_bin<T>(y1, y2, s.pooled_h, ph, s.height);
    for (int64_t pw = 0; pw < s.pooled_w; ++pw) {
      e[s.pooled_h + pw] = pool_bin<T>(x1, x2, s.pooled_w, pw, s.width);
    }
  }
  // Channel by channel, every RoI on the channel's plane while it is in cache.
  parallel_blocks(0, s.channels, 4, [&](int64_t c_begin, int64_t c_end) {
    for (int64_t c = c_begin; c < c_end; ++c) {
      for (int64_t k = 0; k < s.num_rois; ++k) {
        T* out = output + (k * s.channels + c) * bins;
        int32_t* arg = argmax + (k * s.channels + c) * bins;
        if (batch[k] < 0) {
          std::fill(out, out + bins, T(0));
          std::fill(arg, arg + bins, int32_t(-1));
          continue;
        }
        const T* data = input + (batch[k] * s.channels + c) * plane;
        const PoolBin<>* e = &edges[k * (s.pooled_h + s.pooled_w)];
        for (int64_t ph = 0; ph < s.pooled_h; ++ph) {
          const PoolBin<> rows = e[ph];
          for (int64_t pw = 0; pw < s.pooled_w; ++pw) {
            const PoolBin<> cols = e[s.pooled_h + pw];
            const bool empty = rows.end <= rows.start || cols.end <= cols.start;
            T best = empty ? T(0) : T(-FLT_MAX);
            int32_t best_index = -1;  // a plane fits int32 (the Python side checks)
            for (int64_t y = rows.start; y < rows.end; ++y) {
              for (int64_t x = cols.start; x < cols.end; ++x) {
                const int32_t index = static_cast<int32_t>(y * s.width + x);
                if (data[index] > best) {
                  best = data[index];
                  best_index = index;
                }
              }
            }
            out[ph * s.pooled_w + pw] = best;
            arg[ph * s.pooled_w + pw] = best_index;
          }
        }
      }
    }
  });
}

template <typename T>
void roi_pool_backward(const T* grad_output, const T* rois, const int32_t* argmax,
                       const RoIPoolShape& s, T* grad_input) {
  const int64_t bins = s.pooled_h * s.pooled_w;
  const int64_t plane = s.height * s.width;
  parallel_blocks(0, s.channels, 16, [&](int64_t c_begin, int64_t c_end) {
    for (int64_t k = 0; k < s.num_rois; ++k) {
      const int64_t b = pool_roi_batch(rois + 5 * k, s.batch);
      if (b < 0) continue;
      for (int64_t c = c_begin; c < c_end; ++c) {
        T* grad = grad_input + (b * s.channels + c) * plane;
        const T* g_out = grad_output + (k * s.channels + c) * bins;
        const int32_t* arg = argmax + (k * s.channels + c) * bins;
        for (int64_t bin = 0; bin < bins; ++bin) {
          if (arg[bin] >= 0) grad[arg[bin]] += g_out[bin];
        }
      }
    }
  });
}

template void roi_pool_forward<float>(const float*, const float*, const RoIPoolShape&, float*,
                                      int32_t*);
template void roi_pool_forward<double>(const double*, const double*, const RoIPoolShape&,
                                       double*, int32_t*);
template void roi_pool_backward<float>(const float*, const float*, const int32_t*,
                                       const RoIPoolShape&, float*);
template void roi_pool_backward<double>(const double*, const double*, const int32_t*,
                                        const RoIPoolShape&, double*);

}  // namespace det_ops::cpu
