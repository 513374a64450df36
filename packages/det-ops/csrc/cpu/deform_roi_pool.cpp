// Deformable RoI pooling on the CPU. As in RoIAlign, the bilinear taps of every
// (shifted) sampling point of a RoI are computed once per RoI.
//
// Forward and the offset/mask gradients read a channels-last copy of the
// feature map: each tap is then one contiguous vector of channels. Reading the
// NCHW planes instead touches many more cache lines, because independently
// shifted bins no longer share their sampling rows (measured 1.4x slower
// forward, more in backward). The copy costs one pass over the map and its size
// in memory. Both run RoIs in parallel.
// grad_input scatters into the NCHW planes with the channels split between
// threads, so each thread writes its own planes.
#include "cpu/deform_roi_pool.h"

#include <algorithm>
#include <vector>

#include "common/deform_roi_pool.h"
#include "cpu/parallel.h"

namespace det_ops::cpu {
namespace {

// Only what the forward and grad_input need, so that a RoI's taps stay small.
template <typename T>
struct Tap4 {
  int64_t offset[4];
  T weight[4];
};

template <typename T>
DeformRoI<T> roi_geometry(const T* rois, int64_t k, const DeformRoIPoolShape& s) {
  return deform_roi(rois + 5 * k, s);
}

// Calls point(taps) for every sampling point of RoI k, bin by bin (row-major
// bins, then the points of each bin row-major), each bin shifted by its
// offset, and after each bin done(bin, divisor) with what its sum is divided by.
template <typename T, typename Point, typename Done>
void for_each_point(const DeformRoI<T>& g, int64_t k, const T* offset,
                    const DeformRoIPoolShape& s, const Point& point, const Done& done) {
  const int64_t bins = s.pooled_h * s.pooled_w;
  const T gamma = static_cast<T>(s.gamma);
  const T* roi_offset = offset == nullptr ? nullptr : offset + k * 2 * bins;
  BilinearTaps<T> t;
  for (int64_t ph = 0; ph < s.pooled_h; ++ph) {
    for (int64_t pw = 0; pw < s.pooled_w; ++pw) {
      const int64_t bin = ph * s.pooled_w + pw;
      const BinShift<T> shift = g.shift(gamma, roi_offset, bins, bin);
      int64_t inside = 0;
      for (int64_t iy = 0; iy < g.r.grid_h; ++iy) {
        const T y = g.point_y(ph, iy, shift.dy);
        for (int64_t ix = 0; ix < g.r.grid_w; ++ix) {
          inside += g.taps(s.height, s.width, y, g.point_x(pw, ix, shift.dx), t) ? 1 : 0;
          point(t);
        }
      }
      done(bin, g.divisor(inside));
    }
  }
}

// The taps of RoI k's points and the divisor of each of its bins.
template <typename T>
DeformRoI<T> roi_taps(const T* rois, const T* offset, int64_t k, const DeformRoIPoolShape& s,
                      std::vector<Tap4<T>>& taps, std::vector<T>& divisors) {
  const DeformRoI<T> g = roi_geometry(rois, k, s);
  taps.clear();
  divisors.assign(s.pooled_h * s.pooled_w, T(0));
  if (g.r.batch < 0) return g;
  taps.reserve(s.pooled_h * s.pooled_w * g.r.grid_h * g.r.grid_w);
  for_each_point(
      g, k, offset, s,
      [&](const BilinearTaps<T>& t) {
        taps.push_back({{t.offset[0], t.offset[1], t.offset[2], t.offset[3]},
                        {t.weight[0], t.weight[1], t.weight[2], t.weight[3]}});
      },
      [&](int64_t bin, T divisor) { divisors[bin] = divisor; });
  return g;
}

// The mask of each bin of RoI k (1 without a mask).
template <typename T>
void bin_masks(const T* mask, int64_t k, int64_t bins, std::vector<T>& m) {
  m.assign(bins, T(1));
  if (mask != nullptr) std::copy(mask + k * bins, mask + (k + 1) * bins, m.begin());
}

// [batch, channels, height, width] -> [batch, height, width, channels].
template <typename T>
std::vector<T> channels_last(const T* input, const DeformRoIPoolShape& s) {
  const int64_t plane = s.height * s.width;
  std::vector<T> out(s.batch * plane * s.channels);
  parallel_for(0, s.batch * s.height, 8, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t b = row / s.height, y = row % s.height;
      T* dst = out.data() + row * s.width * s.channels;
      for (int64_t c = 0; c < s.channels; ++c) {
        const T* src = input + (b * s.channels + c) * plane + y * s.width;
        for (int64_t x = 0; x < s.width; ++x) dst[x * s.channels + c] = src[x];
      }
    }
  });
  return out;
}

template <typename T>
void offset_and_mask_grads(const T* grad_output, const T* input_hwc, const T* rois,
                           const T* offset, const T* mask, const DeformRoIPoolShape& s,
                           T* grad_offset, T* grad_mask) {
  const int64_t bins = s.pooled_h * s.pooled_w;
  const int64_t plane = s.height * s.width;
  const int64_t channels = s.channels;
  const T gamma = static_cast<T>(s.gamma);
  parallel_for(0, s.num_rois, 1, [&](int64_t begin, int64_t end) {
    std::vector<BilinearTaps<T>> taps;
    std::vector<T> g_bin(channels), divisors(bins);
    for (int64_t k = begin; k < end; ++k) {
      const DeformRoI<T> geometry = roi_geometry(rois, k, s);
      const AlignedRoI<T>& r = geometry.r;
      T* g_offset = grad_offset == nullptr ? nullptr : grad_offset + k * 2 * bins;
      T* g_mask = grad_mask == nullptr ? nullptr : grad_mask + k * bins;
      if (r.batch < 0 || plane == 0) {
        if (g_offset != nullptr) std::fill(g_offset, g_offset + 2 * bins, T(0));
        if (g_mask != nullptr) std::fill(g_mask, g_mask + bins, T(0));
        continue;
      }
      taps.clear();
      for_each_point(
          geometry, k, offset, s, [&](const BilinearTaps<T>& t) { taps.push_back(t); },
          [&](int64_t bin, T divisor) { divisors[bin] = divisor; });
      const T* image = input_hwc + r.batch * plane * channels;
      const T* g_out = grad_output + k * channels * bins;
      const int64_t points = r.grid_h * r.grid_w;
      const BilinearTaps<T>* tap = taps.data();
      for (int64_t bin = 0; bin < bins; ++bin) {
        for (int64_t c = 0; c < channels; ++c) g_bin[c] = g_out[c * bins + bin];
        // Sums over channels of grad_output times the bin's samples (for the
        // mask) and their y and x derivatives (for the offset): per tap, one
        // dot product of grad_output with the tap's channel vector.
        T value = T(0), dy = T(0), dx = T(0);
        for (int64_t p = 0; p < points; ++p, ++tap) {
          for (int t = 0; t < 4; ++t) {
            const T* pixel = image + tap->offset[t] * channels;
            T dot = T(0);
#pragma omp simd reduction(+ : dot)
            for (int64_t c = 0; c < channels; ++c) dot += g_bin[c] * pixel[c];
            value += tap->weight[t] * dot;
            dy += tap->dweight_dy[t] * dot;
            dx += tap->dweight_dx[t] * dot;
          }
        }
        const T m = mask == nullptr ? T(1) : mask[k * bins + bin];
        const T divisor = divisors[bin];
        if (g_mask != nullptr) g_mask[bin] = bin_value(value, divisor, T(1));
        if (g_offset != nullptr) {
          g_offset[bin] = dx * deform_offset_scale(gamma, r.roi_w, m, divisor);
          g_offset[bins + bin] = dy * deform_offset_scale(gamma, r.roi_h, m, divisor);
        }
      }
    }
  });
}

}  // namespace

template <typename T>
void deform_roi_pool_forward(const T* input, const T* rois, const T* offset, const T* mask,
                             const DeformRoIPoolShape& s, T* output) {
  const int64_t bins = s.pooled_h * s.pooled_w;
  const int64_t plane = s.height * s.width;
  const int64_t channels = s.channels;
  if (plane == 0) {  // an empty feature map pools to zeros
    std::fill(output, output + s.num_rois * channels * bins, T(0));
    return;
  }
  const std::vector<T> input_hwc = channels_last(input, s);
  parallel_for(0, s.num_rois, 1, [&](int64_t begin, int64_t end) {
    std::vector<Tap4<T>> taps;
    std::vector<T> m, divisors, sum(channels);
    for (int64_t k = begin; k < end; ++k) {
      const AlignedRoI<T> r = roi_taps(rois, offset, k, s, taps, divisors).r;
      T* out = output + k * channels * bins;
      if (r.batch < 0) {
        std::fill(out, out + channels * bins, T(0));
        continue;
      }
      bin_masks(mask, k, bins, m);
      const T* image = input_hwc.data() + r.batch * plane * channels;
      const int64_t points = r.grid_h * r.grid_w;
      const Tap4<T>* tap = taps.data();
      for (int64_t bin = 0; bin < bins; ++bin) {
        std::fill(sum.begin(), sum.end(), T(0));
        for (int64_t p = 0; p < points; ++p, ++tap) {
          const T* p0 = image + tap->offset[0] * channels;
          const T* p1 = image + tap->offset[1] * channels;
          const T* p2 = image + tap->offset[2] * channels;
          const T* p3 = image + tap->offset[3] * channels;
          const T w0 = tap->weight[0], w1 = tap->weight[1], w2 = tap->weight[2],
                  w3 = tap->weight[3];
          // Same sum per point as RoIAlign's, so no offset gives its exact values.
#pragma omp simd
          for (int64_t c = 0; c < channels; ++c) {
            sum[c] += w0 * p0[c] + w1 * p1[c] + w2 * p2[c] + w3 * p3[c];
          }
        }
        // Divided before masking so that without a mask this is RoIAlign's value.
        for (int64_t c = 0; c < channels; ++c) {
          out[c * bins + bin] = bin_value(sum[c], divisors[bin], m[bin]);
        }
      }
    }
  });
}

template <typename T>
void deform_roi_pool_backward(const T* grad_output, const T* input, const T* rois,
                              const T* offset, const T* mask, const DeformRoIPoolShape& s,
                              T* grad_input, T* grad_offset, T* grad_mask) {
  const int64_t bins = s.pooled_h * s.pooled_w;
  const int64_t plane = s.height * s.width;
  if (grad_input != nullptr && plane > 0) {
    // Every thread walks all RoIs for its channels: at least 16 channels each.
    parallel_blocks(0, s.channels, 16, [&](int64_t c_begin, int64_t c_end) {
      std::vector<Tap4<T>> taps;
      std::vector<T> m, divisors;
      for (int64_t k = 0; k < s.num_rois; ++k) {
        const AlignedRoI<T> r = roi_taps(rois, offset, k, s, taps, divisors).r;
        if (r.batch < 0) continue;
        bin_masks(mask, k, bins, m);
        const int64_t points = r.grid_h * r.grid_w;
        for (int64_t c = c_begin; c < c_end; ++c) {
          T* grad = grad_input + (r.batch * s.channels + c) * plane;
          const T* g_out = grad_output + (k * s.channels + c) * bins;
          const Tap4<T>* tap = taps.data();
          for (int64_t bin = 0; bin < bins; ++bin) {
            const T g = bin_value(g_out[bin], divisors[bin], m[bin]);
            for (int64_t p = 0; p < points; ++p, ++tap) {
              for (int t = 0; t < 4; ++t) grad[tap->offset[t]] += tap->weight[t] * g;
            }
          }
        }
      }
    });
  }
  if (grad_offset != nullptr || grad_mask != nullptr) {
    const std::vector<T> input_hwc = plane > 0 ? channels_last(input, s) : std::vector<T>();
    offset_and_mask_grads(grad_output, input_hwc.data(), rois, offset, mask, s, grad_offset,
                          grad_mask);
  }
}

template void deform_roi_pool_forward<float>(const float*, const float*, const float*,
                                             const float*, const DeformRoIPoolShape&, float*);
template void deform_roi_pool_forward<double>(const double*, const double*, const double*,
                                              const double*, const DeformRoIPoolShape&, double*);
template void deform_roi_pool_backward<float>(const float*, const float*, const float*,
                                              const float*, const float*,
                                              const DeformRoIPoolShape&, float*, float*, float*);
template void deform_roi_pool_backward<double>(const double*, const double*, const double*,
                                               const double*, const double*,
                                               const DeformRoIPoolShape&, double*, double*,
                                               double*);

}  // namespace det_ops::cpu
