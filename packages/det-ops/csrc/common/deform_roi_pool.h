// Deformable RoI pooling (Dai et al., 2017) and its modulated variant (Zhu et
// al., 2019): RoIAlign (aligned=True) where each bin is shifted by a learned,
// RoI-size-normalised offset and, in the modulated variant, scaled by a mask.
//
// For bin b = (ph, pw) of a RoI with geometry r (see roi_geometry.h):
//   (dy, dx) = gamma * (r.roi_h * offset[1][b], r.roi_w * offset[0][b])
//   out[c][b] = mask[b] / r.count * sum over the bin's points p of
//               clamped_bilinear(input[c], sample_y(p) + dy, sample_x(p) + dx)
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
};

// Shift of one bin on the feature map, from an offset laid out [2, bins]
// (channel 0: x, channel 1: y). `offset` is this RoI's slice, or null.
template <typename T>
struct BinShift {
  T dy, dx;
};

template <typename T>
DET_HD BinShift<T> deform_bin_shift(const AlignedRoI<T>& r, T gamma, const T* offset,
                                    int64_t bins, int64_t bin) {
  if (offset == nullptr) return {T(0), T(0)};
  return {gamma * r.roi_h * offset[bins + bin], gamma * r.roi_w * offset[bin]};
}

// Factor that turns d sample / d shift (summed over a bin's points) into
// d out / d offset along one axis: gamma * roi_extent * mask / count.
template <typename T>
DET_HD T deform_offset_scale(T gamma, T roi_extent, T mask, T count) {
  return gamma * roi_extent * mask / count;
}

// d (bilinear sample) / d y and d x at the taps' point, for one plane.
template <typename T>
DET_HD T sample_dy(const BilinearTaps<T>& t, const T* plane) {
  return t.dweight_dy[0] * plane[t.offset[0]] + t.dweight_dy[1] * plane[t.offset[1]] +
         t.dweight_dy[2] * plane[t.offset[2]] + t.dweight_dy[3] * plane[t.offset[3]];
}

template <typename T>
DET_HD T sample_dx(const BilinearTaps<T>& t, const T* plane) {
  return t.dweight_dx[0] * plane[t.offset[0]] + t.dweight_dx[1] * plane[t.offset[1]] +
         t.dweight_dx[2] * plane[t.offset[2]] + t.dweight_dx[3] * plane[t.offset[3]];
}

}  // namespace det_ops
