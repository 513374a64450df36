// Deformable RoI pooling (Dai et al., 2017) and its modulated variant (Zhu et
// al., 2019): RoI pooling where each bin is shifted by a learned,
// RoI-size-normalised offset and, in the modulated variant, scaled by a mask.
// Two geometries:
//
// * kRoIAligned: RoIAlign (aligned=True). For bin b = (ph, pw) of a RoI with
//   geometry r (see roi_geometry.h):
//     (dy, dx) = gamma * (r.roi_h * offset[1][b], r.roi_w * offset[0][b])
//     out[c][b] = mask[b] / r.count * sum over the bin's points p of
//                 clamped_bilinear(input[c], sample_y(p) + dy, sample_x(p) + dx)
// * kRoILegacy: the 2019 mmdetection kernel (mmdet v0.6 ops/dcn/src/
//   deform_pool_cuda_kernel.cu, DeformablePSROIPoolForwardKernel, with one
//   group and one part per bin). The RoI's corners are rounded to whole
//   pixels, it spans [x1 * scale - 0.5, (x2 + 1) * scale - 0.5], at least 0.1
//   wide; a bin's n x n points (n = sampling_ratio) sit at its shifted start
//   plus i * bin / n (not centred), (dy, dx) = (offset * gamma) * roi size;
//   points more than half a pixel outside the map are skipped and the others
//   averaged (a bin with none is 0); see legacy_bilinear.
//
// offset and mask are optional (null: no shift, mask 1).
#pragma once

#include "common/bilinear.h"
#include "common/roi_geometry.h"

namespace det_ops {

// Feature map [batch, channels, height, width]; rois [num_rois, 5];
// offset [num_rois, 2, pooled_h, pooled_w] (x, y) or null; mask
// [num_rois, 1, pooled_h, pooled_w] or null; output and grad_output
// [num_rois, channels, pooled_h, pooled_w].
struct DeformRoIPoolShape {
  int64_t batch, channels, height, width, num_rois, pooled_h, pooled_w, sampling_ratio;
  double spatial_scale, gamma;
  int aligned;  // kRoIAligned or kRoILegacy (a RoIAlignMode)
};

// Shift of one bin on the feature map.
template <typename T>
struct BinShift {
  T dy, dx;
};

// The 2019 kernel's sampling of one point: a point more than half a pixel
// outside the map is skipped (returns false, all weights zero: it is not
// counted in the bin's average); the others are clamped to [0, size - 1] and
// interpolated between the floor and the ceiling of each coordinate, so that
// the derivatives vanish where a coordinate is clamped or a whole number.
// Taps in that kernel's order: (y0, x0), (y1, x0), (y0, x1), (y1, x1).
// A non-finite coordinate is skipped.
template <typename T, typename I>
DET_HD void legacy_derivatives(T dy, T dx, BilinearTaps<T, I>& taps) {
  taps.dweight_dy[0] = -(T(1) - dx);
  taps.dweight_dy[1] = T(1) - dx;
  taps.dweight_dy[2] = -dx;
  taps.dweight_dy[3] = dx;
  taps.dweight_dx[0] = -(T(1) - dy);
  taps.dweight_dx[1] = -dy;
  taps.dweight_dx[2] = T(1) - dy;
  taps.dweight_dx[3] = dy;
}

template <typename T, typename I>
DET_HD void legacy_derivatives(T, T, ForwardTaps<T, I>&) {}

template <typename T, typename I, typename Taps>
DET_HD bool legacy_bilinear(I height, I width, T y, T x, Taps& taps) {
  clear_taps(taps);
  if (!(x >= T(-0.5) && x <= static_cast<T>(width) - T(0.5) && y >= T(-0.5) &&
        y <= static_cast<T>(height) - T(0.5))) {
    return false;
  }
  x = min_of(max_of(x, T(0)), static_cast<T>(width - 1));
  y = min_of(max_of(y, T(0)), static_cast<T>(height - 1));
  const T x_floor = floor(x), y_floor = floor(y);
  const I x0 = static_cast<I>(x_floor), x1 = static_cast<I>(ceil(x));
  const I y0 = static_cast<I>(y_floor), y1 = static_cast<I>(ceil(y));
  const T dx = x - x_floor, dy = y - y_floor;
  taps.offset[0] = y0 * width + x0;
  taps.offset[1] = y1 * width + x0;
  taps.offset[2] = y0 * width + x1;
  taps.offset[3] = y1 * width + x1;
  taps.weight[0] = (T(1) - dx) * (T(1) - dy);
  taps.weight[1] = (T(1) - dx) * dy;
  taps.weight[2] = dx * (T(1) - dy);
  taps.weight[3] = dx * dy;
  legacy_derivatives(dy, dx, taps);
  return true;
}

// The 2019 kernel's RoI on the feature map (see the top of this file); grid_h
// = grid_w = samples, the points per bin side. count is unused: a legacy bin
// divides by the number of its points that were not skipped.
template <typename T, typename I>
DET_HD AlignedRoI<T, I> legacy_deform_roi(const T* roi, I batch_size, T spatial_scale, I pooled_h,
                                          I pooled_w, I samples) {
  AlignedRoI<T, I> r;
  r.start_x = static_cast<T>(round(roi[1])) * spatial_scale - T(0.5);
  r.start_y = static_cast<T>(round(roi[2])) * spatial_scale - T(0.5);
  const T end_x = (static_cast<T>(round(roi[3])) + T(1)) * spatial_scale - T(0.5);
  const T end_y = (static_cast<T>(round(roi[4])) + T(1)) * spatial_scale - T(0.5);
  r.roi_w = max_of(end_x - r.start_x, T(0.1));
  r.roi_h = max_of(end_y - r.start_y, T(0.1));
  r.bin_h = r.roi_h / static_cast<T>(pooled_h);
  r.bin_w = r.roi_w / static_cast<T>(pooled_w);
  r.grid_h = r.grid_w = samples > 0 ? samples : I(0);
  r.count = static_cast<T>(r.grid_h * r.grid_w);
  r.batch = roi_batch_index(roi, batch_size, r.start_x, r.start_y, end_x, end_y);
  if (r.batch < 0) r.grid_h = r.grid_w = 0;
  return r;
}

// One RoI's geometry in either mode, with where its (shifted) points lie and
// how they are read and averaged.
template <typename T, typename I = int64_t>
struct DeformRoI {
  AlignedRoI<T, I> r;
  bool legacy;

  // Shift of bin `bin` from this RoI's offsets laid out [2, bins] (channel 0:
  // x, 1: y), or none if roi_offset is null.
  DET_HD BinShift<T> shift(T gamma, const T* roi_offset, I bins, I bin) const {
    if (roi_offset == nullptr) return {T(0), T(0)};
    if (legacy) return {roi_offset[bins + bin] * gamma * r.roi_h, roi_offset[bin] * gamma * r.roi_w};
    return {gamma * r.roi_h * roi_offset[bins + bin], gamma * r.roi_w * roi_offset[bin]};
  }

  // Coordinate of point i of bin p along one axis, the bin shifted by d.
  DET_HD T point_y(I ph, I iy, T dy) const {
    if (!legacy) return r.sample_y(ph, iy) + dy;
    return (static_cast<T>(ph) * r.bin_h + r.start_y + dy) +
           static_cast<T>(iy) * (r.bin_h / static_cast<T>(r.grid_h));
  }
  DET_HD T point_x(I pw, I ix, T dx) const {
    if (!legacy) return r.sample_x(pw, ix) + dx;
    return (static_cast<T>(pw) * r.bin_w + r.start_x + dx) +
           static_cast<T>(ix) * (r.bin_w / static_cast<T>(r.grid_w));
  }

  // Taps of the point (y, x); returns whether the point is inside (a point
  // outside has zero weights): BilinearTaps, or ForwardTaps for the weights alone.
  template <typename Taps>
  DET_HD bool taps(I height, I width, T y, T x, Taps& t) const {
    return legacy ? legacy_bilinear(height, width, y, x, t)
                  : clamped_bilinear(height, width, y, x, t);
  }

  // What a bin's sum is divided by, given how many of its points were inside:
  // RoIAlign counts every point; the legacy kernel only those inside (0: the
  // bin is 0).
  DET_HD T divisor(I inside) const { return legacy ? static_cast<T>(inside) : r.count; }
};

template <typename I = int64_t, typename T>
DET_HD DeformRoI<T, I> deform_roi(const T* roi, const DeformRoIPoolShape& s) {
  const T scale = static_cast<T>(s.spatial_scale);
  const I batch = static_cast<I>(s.batch), pooled_h = static_cast<I>(s.pooled_h);
  const I pooled_w = static_cast<I>(s.pooled_w), samples = static_cast<I>(s.sampling_ratio);
  if (s.aligned == kRoILegacy) {
    return {legacy_deform_roi(roi, batch, scale, pooled_h, pooled_w, samples), true};
  }
  return {aligned_roi(roi, batch, scale, pooled_h, pooled_w, samples, kRoIAligned), false};
}

// A bin's mean of its samples times its mask (0 for a bin with no point inside).
template <typename T>
DET_HD T bin_value(T sum, T divisor, T mask) {
  return divisor > T(0) ? sum / divisor * mask : T(0);
}

// Factor that turns d sample / d shift (summed over a bin's points) into
// d out / d offset along one axis: gamma * roi_extent * mask / divisor.
template <typename T>
DET_HD T deform_offset_scale(T gamma, T roi_extent, T mask, T divisor) {
  return divisor > T(0) ? gamma * roi_extent * mask / divisor : T(0);
}

// d (bilinear sample) / d y and d x at the taps' point, for one plane.
template <typename T, typename I>
DET_HD T sample_dy(const BilinearTaps<T, I>& t, const T* plane) {
  return t.dweight_dy[0] * plane[t.offset[0]] + t.dweight_dy[1] * plane[t.offset[1]] +
         t.dweight_dy[2] * plane[t.offset[2]] + t.dweight_dy[3] * plane[t.offset[3]];
}

template <typename T, typename I>
DET_HD T sample_dx(const BilinearTaps<T, I>& t, const T* plane) {
  return t.dweight_dx[0] * plane[t.offset[0]] + t.dweight_dx[1] * plane[t.offset[1]] +
         t.dweight_dx[2] * plane[t.offset[2]] + t.dweight_dx[3] * plane[t.offset[3]];
}

}  // namespace det_ops
