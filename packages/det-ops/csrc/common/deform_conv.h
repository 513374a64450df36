// Where deformable convolution samples the input: output position (oy, ox)
// and kernel tap (i, j) read the input at
//   y = oy * stride_h - pad_h + i * dilation_h + dy
//   x = ox * stride_w - pad_w + j * dilation_w + dx
// with (dy, dx) read from the offset map, by zero-padded bilinear
// interpolation (common/bilinear.h). Offset channels, per offset group g and
// tap k = i * kernel_w + j: g * 2 * taps + 2 * k is dy and + 1 is dx
// (torchvision's layout); mask channel g * taps + k scales the sample (DCN v2).
#pragma once

#include "common/macros.h"

namespace det_ops {

// Shapes and hyper-parameters of one deformable convolution; `taps` is
// kernel_h * kernel_w and `positions` out_h * out_w.
struct DeformConvGeometry {
  int64_t batch, channels, height, width, offset_groups;
  int64_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
  int64_t out_h, out_w;

  DET_HD int64_t taps() const { return kernel_h * kernel_w; }
  DET_HD int64_t positions() const { return out_h * out_w; }
  DET_HD int64_t channels_per_group() const { return channels / offset_groups; }

  // First element of the dy plane of (image b, offset group g, tap k) in the
  // offset map [batch, 2 * offset_groups * taps, out_h, out_w]; dx follows one
  // plane later.
  DET_HD int64_t offset_plane(int64_t b, int64_t g, int64_t k) const {
    return ((b * offset_groups + g) * 2 * taps() + 2 * k) * positions();
  }
  // First element of the plane of (b, g, k) in the mask [batch, offset_groups * taps, ...].
  DET_HD int64_t mask_plane(int64_t b, int64_t g, int64_t k) const {
    return ((b * offset_groups + g) * taps() + k) * positions();
  }

  // Undeformed sampling point of tap k at output position p.
  template <typename T>
  DET_HD void base_point(int64_t k, int64_t p, T& y, T& x) const {
    const int64_t i = k / kernel_w, j = k - i * kernel_w;
    const int64_t oy = p / out_w, ox = p - oy * out_w;
    y = static_cast<T>(oy * stride_h - pad_h + i * dilation_h);
    x = static_cast<T>(ox * stride_w - pad_w + j * dilation_w);
  }

  // Deformed sampling point of tap k at output position p of image b,
  // offset group g: the undeformed point plus (dy, dx) from the offset map.
  template <typename T>
  DET_HD void sample_point(const T* offset, int64_t b, int64_t g, int64_t k, int64_t p, T& y,
                           T& x) const {
    base_point(k, p, y, x);
    const T* dy = offset + offset_plane(b, g, k);
    y += dy[p];
    x += dy[positions() + p];
  }
};

}  // namespace det_ops
