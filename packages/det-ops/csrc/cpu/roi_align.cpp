// RoIAlign on the CPU. For each RoI the bilinear taps of every sampling point
// are computed once and then applied to each channel's plane.
// Forward runs RoIs in parallel; backward splits the channels between threads,
// so each thread scatters into its own planes of grad_input.
#include "cpu/roi_align.h"

#include <algorithm>
#include <vector>

#include "common/bilinear.h"
#include "common/roi_geometry.h"
#include "cpu/parallel.h"

namespace det_ops::cpu {
namespace {

template <typename T>
struct Tap4 {
  int64_t offset[4];
  T weight[4];
};

// Taps of all sampling points of one RoI, bin by bin (row-major bins, then the
// points of each bin row-major). Returns the RoI's geometry.
template <typename T>
AlignedRoI<T> roi_taps(const T* roi, const RoIAlignShape& s, std::vector<Tap4<T>>& taps) {
  const AlignedRoI<T> r = aligned_roi(roi, s.batch, static_cast<T>(s.spatial_scale), s.pooled_h,
                                      s.pooled_w, s.sampling_ratio, s.aligned);
  taps.clear();
  if (r.batch < 0) return r;
  taps.reserve(s.pooled_h * s.pooled_w * r.grid_h * r.grid_w);
  BilinearTaps<T> t;
  for (int64_t ph = 0; ph < s.pooled_h; ++ph) {
    for (int64_t pw = 0; pw < s.pooled_w; ++pw) {
      for (int64_t iy = 0; iy < r.grid_h; ++iy) {
        const T y = r.sample_y(ph, iy);
        for (int64_t ix = 0; ix < r.grid_w; ++ix) {
          clamped_bilinear(s.height, s.width, y, r.sample_x(pw, ix), t);
          taps.push_back({{t.offset[0], t.offset[1], t.offset[2], t.offset[3]},
                          {t.weight[0], t.weight[1], t.weight[2], t.weight[3]}});
        }
      }
    }
  }
  return r;
}

}  // namespace

template <typename T>
void roi_align_forward(const T* input, const T* rois, const RoIAlignShape& s, T* output) {
  const int64_t bins = s.pooled_h * s.pooled_w;
  const int64_t plane = s.height * s.width;
  if (plane == 0) {  // an empty feature map pools to zeros
    std::fill(output, output + s.num_rois * s.channels * bins, T(0));
    return;
  }
  parallel_for(0, s.num_rois, 1, [&](int64_t begin, int64_t end) {
    std::vector<Tap4<T>> taps;
    for (int64_t k = begin; k < end; ++k) {
      const AlignedRoI<T> r = roi_taps(rois + 5 * k, s, taps);
      T* out = output + k * s.channels * bins;
      if (r.batch < 0) {
        for (int64_t i = 0; i < s.channels * bins; ++i) out[i] = T(0);
        continue;
      }
      const int64_t points = r.grid_h * r.grid_w;
      for (int64_t c = 0; c < s.channels; ++c) {
        const T* data = input + (r.batch * s.channels + c) * plane;
        const Tap4<T>* tap = taps.data();
        for (int64_t bin = 0; bin < bins; ++bin) {
          T sum = T(0);
          for (int64_t p = 0; p < points; ++p, ++tap) {
            sum += tap->weight[0] * data[tap->offset[0]] + tap->weight[1] * data[tap->offset[1]] +
                   tap->weight[2] * data[tap->offset[2]] + tap->weight[3] * data[tap->offset[3]];
          }
          out[c * bins + bin] = sum / r.count;
        }
      }
    }
  });
}

template <typename T>
void roi_align_backward(const T* grad_output, const T* rois, const RoIAlignShape& s,
                        T* grad_input) {
  const int64_t bins = s.pooled_h * s.pooled_w;
  const int64_t plane = s.height * s.width;
  if (plane == 0) return;
  // Every thread walks all RoIs for its channels: at least 16 channels each.
  parallel_blocks(0, s.channels, 16, [&](int64_t c_begin, int64_t c_end) {
    std::vector<Tap4<T>> taps;
    for (int64_t k = 0; k < s.num_rois; ++k) {
      const AlignedRoI<T> r = roi_taps(rois + 5 * k, s, taps);
      if (r.batch < 0) continue;
      const int64_t points = r.grid_h * r.grid_w;
      for (int64_t c = c_begin; c < c_end; ++c) {
        T* grad = grad_input + (r.batch * s.channels + c) * plane;
        const T* g_out = grad_output + (k * s.channels + c) * bins;
        const Tap4<T>* tap = taps.data();
        for (int64_t bin = 0; bin < bins; ++bin) {
          const T g = g_out[bin] / r.count;
          for (int64_t p = 0; p < points; ++p, ++tap) {
            for (int t = 0; t < 4; ++t) grad[tap->offset[t]] += tap->weight[t] * g;
          }
        }
      }
    }
  });
}

template void roi_align_forward<float>(const float*, const float*, const RoIAlignShape&, float*);
template void roi_align_forward<double>(const double*, const double*, const RoIAlignShape&,
                                        double*);
template void roi_align_backward<float>(const float*, const float*, const RoIAlignShape&, float*);
template void roi_align_backward<double>(const double*, const double*, const RoIAlignShape&,
                                         double*);

}  // namespace det_ops::cpu
