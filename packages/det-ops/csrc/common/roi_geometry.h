// Where the bins and sampling points of one RoI lie on the feature map, for
// RoIAlign (and deformable RoI pooling, which shifts RoIAlign's bins) and for
// RoIPool's integer bins. A RoI is (batch_index, x1, y1, x2, y2) in image pixels.
// Indices and sizes are of an index type I (see bilinear.h): int64_t on the
// CPU, int32_t in the CUDA kernels where every tensor's element count fits.
#pragma once

#include <math.h>

#include "common/macros.h"

namespace det_ops {

// RoIAlign: feature map [batch, channels, height, width]; rois [num_rois, 5];
// output and grad_output [num_rois, channels, pooled_h, pooled_w].
struct RoIAlignShape {
  int64_t batch, channels, height, width, num_rois, pooled_h, pooled_w, sampling_ratio;
  double spatial_scale;
  int aligned;  // a RoIAlignMode
};

// RoIPool: as RoIAlign, without sampling.
struct RoIPoolShape {
  int64_t batch, channels, height, width, num_rois, pooled_h, pooled_w;
  double spatial_scale;
};

// Adaptive sampling never takes more points than this per bin and axis, so a
// huge box cannot stall a kernel; normal RoIs need a handful.
constexpr int64_t kMaxSamplingGrid = 1024;

template <typename T, typename I = int64_t>
struct AlignedRoI {
  I batch;               // image of the batch, or -1 if the RoI is unusable
  T start_y, start_x;    // top-left corner on the feature map
  T bin_h, bin_w;        // bin size on the feature map
  T roi_h, roi_w;        // RoI size on the feature map
  I grid_h, grid_w;      // sampling points per bin along each axis
  T count;               // points averaged per bin (at least 1)

  // Coordinate of sampling point i of bin p along one axis.
  DET_HD T sample_y(I ph, I iy) const {
    return start_y + static_cast<T>(ph) * bin_h +
           (static_cast<T>(iy) + T(0.5)) * bin_h / static_cast<T>(grid_h);
  }
  DET_HD T sample_x(I pw, I ix) const {
    return start_x + static_cast<T>(pw) * bin_w +
           (static_cast<T>(ix) + T(0.5)) * bin_w / static_cast<T>(grid_w);
  }
};

// The image of a RoI whose corners landed on the map at start and end: its batch
// index, or -1 when that is out of range or a corner is not finite.
template <typename T, typename I>
DET_HD I roi_batch_index(const T* roi, I batch_size, T start_x, T start_y, T end_x, T end_y) {
  const bool finite = isfinite(start_x) && isfinite(start_y) && isfinite(end_x) &&
                      isfinite(end_y);
  const T b = roi[0];
  return (finite && b >= T(0) && b < static_cast<T>(batch_size)) ? static_cast<I>(b) : I(-1);
}

template <typename T, typename I>
DET_HD I sampling_grid(T extent, I pooled, I sampling_ratio) {
  if (sampling_ratio > 0) return sampling_ratio;
  const T points = ceil(extent / static_cast<T>(pooled));
  if (!(points > T(0))) return 0;  // also NaN
  return points > T(kMaxSamplingGrid) ? static_cast<I>(kMaxSamplingGrid) : static_cast<I>(points);
}

// Where a RoI's corners land on the feature map:
// - kRoIUnaligned (torchvision's aligned=False): x * scale; the RoI is at least 1x1.
// - kRoIAligned: x * scale - 0.5, so that pixel centres sit at +0.5; no minimum size.
// - kRoILegacy (the 2019 mmdetection kernels, mmdet/ops/roi_align/src/roi_align_kernel.cu,
//   ROIAlignForward): start x1 * scale, end (x2 + 1) * scale; the size is clamped at 0.
enum RoIAlignMode { kRoIUnaligned = 0, kRoIAligned = 1, kRoILegacy = 2 };

template <typename T, typename I>
DET_HD AlignedRoI<T, I> aligned_roi(const T* roi, I batch_size, T spatial_scale, I pooled_h,
                                    I pooled_w, I sampling_ratio, int mode) {
  AlignedRoI<T, I> r;
  const T offset = mode == kRoIAligned ? T(0.5) : T(0);
  const T end_plus = mode == kRoILegacy ? T(1) : T(0);
  r.start_x = roi[1] * spatial_scale - offset;
  r.start_y = roi[2] * spatial_scale - offset;
  const T end_x = (roi[3] + end_plus) * spatial_scale - offset;
  const T end_y = (roi[4] + end_plus) * spatial_scale - offset;
  r.roi_w = end_x - r.start_x;
  r.roi_h = end_y - r.start_y;
  if (mode == kRoIUnaligned) {
    r.roi_w = max_of(r.roi_w, T(1));
    r.roi_h = max_of(r.roi_h, T(1));
  } else if (mode == kRoILegacy) {
    r.roi_w = max_of(r.roi_w, T(0));
    r.roi_h = max_of(r.roi_h, T(0));
  }
  r.bin_h = r.roi_h / static_cast<T>(pooled_h);
  r.bin_w = r.roi_w / static_cast<T>(pooled_w);
  r.grid_h = sampling_grid(r.roi_h, pooled_h, sampling_ratio);
  r.grid_w = sampling_grid(r.roi_w, pooled_w, sampling_ratio);
  const I points = r.grid_h * r.grid_w;
  r.count = static_cast<T>(points > 1 ? points : 1);
  r.batch = roi_batch_index(roi, batch_size, r.start_x, r.start_y, end_x, end_y);
  if (r.batch < 0) r.grid_h = r.grid_w = 0;
  return r;
}

// RoIPool's batch index of a RoI, or -1 if it is out of range or a coordinate
// is not finite.
template <typename T, typename I>
DET_HD I pool_roi_batch(const T* roi, I batch_size) {
  for (int i = 1; i < 5; ++i) {
    if (!isfinite(roi[i])) return -1;
  }
  const T b = roi[0];
  return (b >= T(0) && b < static_cast<T>(batch_size)) ? static_cast<I>(b) : I(-1);
}

// RoIPool's integer bin [start, end) along one axis, clipped to [0, size).
template <typename I = int64_t>
struct PoolBin {
  I start, end;
};

// RoI corners stay within +-1e9 (they are clamped to the map right after), so
// that huge values convert with defined behaviour, to 32 bits as well.
template <typename T>
DET_HD int64_t round_coordinate(T v) {
  const T limit = T(1e9);
  v = v > limit ? limit : (v < -limit ? -limit : v);
  return static_cast<int64_t>(round(v));
}

// The bin's ends are computed in 64 bits (a rounded corner may lie 1e9 off the
// map) and clipped to the map, where they fit I.
template <typename T, typename I>
DET_HD PoolBin<I> pool_bin(int64_t roi_start, int64_t roi_end, I pooled, I p, I size) {
  const int64_t extent = max_of<int64_t>(roi_end - roi_start + 1, 1);
  const T bin = static_cast<T>(extent) / static_cast<T>(pooled);
  int64_t start = static_cast<int64_t>(floor(static_cast<T>(p) * bin)) + roi_start;
  int64_t end = static_cast<int64_t>(ceil(static_cast<T>(p + 1) * bin)) + roi_start;
  start = min_of<int64_t>(max_of<int64_t>(start, 0), size);
  end = min_of<int64_t>(max_of<int64_t>(end, 0), size);
  return {static_cast<I>(start), static_cast<I>(end)};
}

}  // namespace det_ops
