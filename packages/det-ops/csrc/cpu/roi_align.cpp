// RoIAlign on the CPU.
//
// RoIAlign's sampling grid is separable: a point's taps are the product of a
// row tap and a column tap. So the taps of each RoI are two short lists (rows
// and columns of its sampling grid), computed once for all RoIs. The kernels
// then walk channel by channel, every RoI on the channel's plane while the
// plane is in cache: threads split the channels, which also keeps the
// backward's scatter into grad_input free of races.
//
// A channels-last (NHWC) map is pooled without a transposed copy: there a
// tap's channels are contiguous, so each bin accumulates a vector of all
// channels per tap, and threads split the RoIs. Its backward scatters a
// vector of channels per tap too; there threads split the channels (so no
// two threads write one element) and each RoI's output gradient is first
// transposed to [bins][channels] so the vectors are contiguous.
#include "cpu/roi_align.h"

#include <algorithm>
#include <vector>

#include "common/bilinear.h"
#include "common/roi_geometry.h"
#include "cpu/parallel.h"

namespace det_ops::cpu {
namespace {

template <typename T>
struct RoIGrid {
  AlignedRoI<T> roi;
  std::vector<AxisTap<T>> rows;  // [pooled_h * grid_h], low/high as plane offsets
  std::vector<AxisTap<T>> cols;  // [pooled_w * grid_w]
};

template <typename T>
std::vector<RoIGrid<T>> roi_grids(const T* rois, const RoIAlignShape& s) {
  std::vector<RoIGrid<T>> grids(s.num_rois);
  parallel_for(0, s.num_rois, 64, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      RoIGrid<T>& g = grids[k];
      g.roi = aligned_roi(rois + 5 * k, s.batch, static_cast<T>(s.spatial_scale), s.pooled_h,
                          s.pooled_w, s.sampling_ratio, s.aligned);
      if (g.roi.batch < 0) continue;
      for (int64_t ph = 0; ph < s.pooled_h; ++ph) {
        for (int64_t iy = 0; iy < g.roi.grid_h; ++iy) {
          AxisTap<T> row = clamped_axis(s.height, g.roi.sample_y(ph, iy));
          row.low *= s.width;
          row.high *= s.width;
          g.rows.push_back(row);
        }
      }
      for (int64_t pw = 0; pw < s.pooled_w; ++pw) {
        for (int64_t ix = 0; ix < g.roi.grid_w; ++ix) {
          g.cols.push_back(clamped_axis(s.width, g.roi.sample_x(pw, ix)));
        }
      }
    }
  });
  return grids;
}

// dst[c] += weight * src[c] for c < n.
template <typename T>
inline void scatter(T* dst, const T* src, T weight, int64_t n) {
  for (int64_t c = 0; c < n; ++c) dst[c] += weight * src[c];
}

// Channels per thread: enough that each thread's planes amortise its start.
constexpr int64_t kMinChannels = 4;
// RoIs per chunk of the channels-last kernel (a RoI is C x bins x taps of work).
constexpr int64_t kMinRoIs = 8;
// Channels per thread in the channels-last backward: a vector-wide run per tap.
constexpr int64_t kMinChannelRun = 16;

}  // namespace

template <typename T>
void roi_align_forward(const T* input, const T* rois, const RoIAlignShape& s, T* output) {
  const int64_t bins = s.pooled_h * s.pooled_w;
  const int64_t plane = s.height * s.width;
  if (plane == 0) {  // an empty feature map pools to zeros
    std::fill(output, output + s.num_rois * s.channels * bins, T(0));
    return;
  }
  const std::vector<RoIGrid<T>> grids = roi_grids(rois, s);
  parallel_blocks(0, s.channels, kMinChannels, [&](int64_t c_begin, int64_t c_end) {
    for (int64_t c = c_begin; c < c_end; ++c) {
      for (int64_t k = 0; k < s.num_rois; ++k) {
        const RoIGrid<T>& g = grids[k];
        T* out = output + (k * s.channels + c) * bins;
        if (g.roi.batch < 0) {
          std::fill(out, out + bins, T(0));
          continue;
        }
        const T* data = input + (g.roi.batch * s.channels + c) * plane;
        const int64_t gh = g.roi.grid_h, gw = g.roi.grid_w;
        for (int64_t ph = 0; ph < s.pooled_h; ++ph) {
          for (int64_t pw = 0; pw < s.pooled_w; ++pw) {
            T sum = T(0);
            for (const AxisTap<T>* y = &g.rows[ph * gh]; y != &g.rows[ph * gh] + gh; ++y) {
              if (!y->inside) continue;
              for (const AxisTap<T>* x = &g.cols[pw * gw]; x != &g.cols[pw * gw] + gw; ++x) {
                if (!x->inside) continue;
                sum += y->h * x->h * data[y->low + x->low] + y->h * x->l * data[y->low + x->high] +
                       y->l * x->h * data[y->high + x->low] + y->l * x->l * data[y->high + x->high];
              }
            }
            out[ph * s.pooled_w + pw] = sum / g.roi.count;
          }
        }
      }
    }
  });
}

template <typename T>
void roi_align_forward_nhwc(const T* input, const T* rois, const RoIAlignShape& s, T* output) {
  const int64_t bins = s.pooled_h * s.pooled_w;
  const int64_t plane = s.height * s.width;
  const int64_t channels = s.channels;
  if (plane == 0) {
    std::fill(output, output + s.num_rois * channels * bins, T(0));
    return;
  }
  const std::vector<RoIGrid<T>> grids = roi_grids(rois, s);
  parallel_for(0, s.num_rois, kMinRoIs, [&](int64_t k_begin, int64_t k_end) {
    std::vector<T> acc(channels);
    for (int64_t k = k_begin; k < k_end; ++k) {
      const RoIGrid<T>& g = grids[k];
      T* out = output + k * channels * bins;
      if (g.roi.batch < 0) {
        std::fill(out, out + channels * bins, T(0));
        continue;
      }
      const T* data = input + g.roi.batch * plane * channels;
      const int64_t gh = g.roi.grid_h, gw = g.roi.grid_w;
      for (int64_t ph = 0; ph < s.pooled_h; ++ph) {
        for (int64_t pw = 0; pw < s.pooled_w; ++pw) {
          std::fill(acc.begin(), acc.end(), T(0));
          T* a = acc.data();
          for (const AxisTap<T>* y = &g.rows[ph * gh]; y != &g.rows[ph * gh] + gh; ++y) {
            if (!y->inside) continue;
            for (const AxisTap<T>* x = &g.cols[pw * gw]; x != &g.cols[pw * gw] + gw; ++x) {
              if (!x->inside) continue;
              const T w1 = y->h * x->h, w2 = y->h * x->l, w3 = y->l * x->h, w4 = y->l * x->l;
              const T* p1 = data + (y->low + x->low) * channels;
              const T* p2 = data + (y->low + x->high) * channels;
              const T* p3 = data + (y->high + x->low) * channels;
              const T* p4 = data + (y->high + x->high) * channels;
              for (int64_t c = 0; c < channels; ++c) {
                a[c] += w1 * p1[c] + w2 * p2[c] + w3 * p3[c] + w4 * p4[c];
              }
            }
          }
          T* o = out + ph * s.pooled_w + pw;
          for (int64_t c = 0; c < channels; ++c) o[c * bins] = a[c] / g.roi.count;
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
  const std::vector<RoIGrid<T>> grids = roi_grids(rois, s);
  parallel_blocks(0, s.channels, kMinChannels, [&](int64_t c_begin, int64_t c_end) {
    for (int64_t c = c_begin; c < c_end; ++c) {
      for (int64_t k = 0; k < s.num_rois; ++k) {
        const RoIGrid<T>& g = grids[k];
        if (g.roi.batch < 0) continue;
        T* grad = grad_input + (g.roi.batch * s.channels + c) * plane;
        const T* g_out = grad_output + (k * s.channels + c) * bins;
        const int64_t gh = g.roi.grid_h, gw = g.roi.grid_w;
        for (int64_t ph = 0; ph < s.pooled_h; ++ph) {
          for (int64_t pw = 0; pw < s.pooled_w; ++pw) {
            const T go = g_out[ph * s.pooled_w + pw] / g.roi.count;
            for (const AxisTap<T>* y = &g.rows[ph * gh]; y != &g.rows[ph * gh] + gh; ++y) {
              if (!y->inside) continue;
              for (const AxisTap<T>* x = &g.cols[pw * gw]; x != &g.cols[pw * gw] + gw; ++x) {
                if (!x->inside) continue;
                grad[y->low + x->low] += y->h * x->h * go;
                grad[y->low + x->high] += y->h * x->l * go;
                grad[y->high + x->low] += y->l * x->h * go;
                grad[y->high + x->high] += y->l * x->l * go;
              }
            }
          }
        }
      }
    }
  });
}

template <typename T>
void roi_align_backward_nhwc(const T* grad_output, const T* rois, const RoIAlignShape& s,
                             T* grad_input) {
  const int64_t bins = s.pooled_h * s.pooled_w;
  const int64_t plane = s.height * s.width;
  const int64_t channels = s.channels;
  if (plane == 0) return;
  const std::vector<RoIGrid<T>> grids = roi_grids(rois, s);
  parallel_blocks(0, channels, kMinChannelRun, [&](int64_t c_begin, int64_t c_end) {
    const int64_t run = c_end - c_begin;
    std::vector<T> go(bins * run);  // one RoI's gradient over this block: [bins][run]
    for (int64_t k = 0; k < s.num_rois; ++k) {
      const RoIGrid<T>& g = grids[k];
      if (g.roi.batch < 0) continue;
      const T* src = grad_output + (k * channels + c_begin) * bins;
      for (int64_t c = 0; c < run; ++c) {
        for (int64_t b = 0; b < bins; ++b) go[b * run + c] = src[c * bins + b] / g.roi.count;
      }
      T* grad = grad_input + g.roi.batch * plane * channels + c_begin;
      const int64_t gh = g.roi.grid_h, gw = g.roi.grid_w;
      for (int64_t ph = 0; ph < s.pooled_h; ++ph) {
        for (int64_t pw = 0; pw < s.pooled_w; ++pw) {
          const T* v = go.data() + (ph * s.pooled_w + pw) * run;
          for (const AxisTap<T>* y = &g.rows[ph * gh]; y != &g.rows[ph * gh] + gh; ++y) {
            if (!y->inside) continue;
            for (const AxisTap<T>* x = &g.cols[pw * gw]; x != &g.cols[pw * gw] + gw; ++x) {
              if (!x->inside) continue;
              // One loop per tap: clamped taps may share a pixel, so the four must not
              // be fused into one read-modify-write.
              scatter(grad + (y->low + x->low) * channels, v, y->h * x->h, run);
              scatter(grad + (y->low + x->high) * channels, v, y->h * x->l, run);
              scatter(grad + (y->high + x->low) * channels, v, y->l * x->h, run);
              scatter(grad + (y->high + x->high) * channels, v, y->l * x->l, run);
            }
          }
        }
      }
    }
  });
}

template void roi_align_forward<float>(const float*, const float*, const RoIAlignShape&, float*);
template void roi_align_forward<double>(const double*, const double*, const RoIAlignShape&,
                                        double*);
template void roi_align_forward_nhwc<float>(const float*, const float*, const RoIAlignShape&,
                                           float*);
template void roi_align_forward_nhwc<double>(const double*, const double*, const RoIAlignShape&,
                                            double*);
template void roi_align_backward<float>(const float*, const float*, const RoIAlignShape&, float*);
template void roi_align_backward<double>(const double*, const double*, const RoIAlignShape&,
                                         double*);
template void roi_align_backward_nhwc<float>(const float*, const float*, const RoIAlignShape&,
                                            float*);
template void roi_align_backward_nhwc<double>(const double*, const double*,
                                             const RoIAlignShape&, double*);

}  // namespace det_ops::cpu
