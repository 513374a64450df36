// Bilinear sampling of one feature-map plane at a real-valued point (y, x),
// expressed as four taps (flat offsets into the plane and weights). Two
// border conventions exist and the kernels that use them must not mix them:
//
//  * clamped_bilinear: RoIAlign's. Points more than one pixel outside the map
//    give zero; points in the outer half-pixel band are clamped to the border.
//  * zero_padded_bilinear: deformable convolution's. The map is zero outside;
//    each of the four neighbours contributes only if it lies inside.
//
// Both return the partial derivatives of the weights with respect to y and x
// as well, for the coordinate gradients of deformable conv and RoI pooling.
#pragma once

#include <math.h>

#include "common/macros.h"

namespace det_ops {

template <typename T>
struct BilinearTaps {
  int64_t offset[4];  // y * width + x of the neighbours (0 for an unused tap)
  T weight[4];        // interpolation weights (0 for an unused tap)
  T dweight_dy[4];    // d weight / d y
  T dweight_dx[4];    // d weight / d x

  DET_HD T sample(const T* plane) const {
    return weight[0] * plane[offset[0]] + weight[1] * plane[offset[1]] +
           weight[2] * plane[offset[2]] + weight[3] * plane[offset[3]];
  }
};

template <typename T>
DET_HD void clear_taps(BilinearTaps<T>& taps) {
  for (int i = 0; i < 4; ++i) {
    taps.offset[i] = 0;
    taps.weight[i] = T(0);
    taps.dweight_dy[i] = T(0);
    taps.dweight_dx[i] = T(0);
  }
}

// RoIAlign convention. Returns false (all weights zero) when the point is out
// of range or not finite.
template <typename T>
DET_HD bool clamped_bilinear(int64_t height, int64_t width, T y, T x, BilinearTaps<T>& taps) {
  clear_taps(taps);
  // Written as a negated range test so that NaN lands in the "outside" branch.
  if (!(y >= T(-1) && y <= T(height) && x >= T(-1) && x <= T(width))) return false;
  // Inside the clamped band a coordinate does not move the sample.
  T dy_scale = T(1), dx_scale = T(1);
  if (y <= T(0)) { y = T(0); dy_scale = T(0); }
  if (x <= T(0)) { x = T(0); dx_scale = T(0); }
  int64_t y_low = static_cast<int64_t>(y);
  int64_t x_low = static_cast<int64_t>(x);
  int64_t y_high, x_high;
  if (y_low >= height - 1) {
    y_high = y_low = height - 1;
    y = static_cast<T>(y_low);
    dy_scale = T(0);
  } else {
    y_high = y_low + 1;
  }
  if (x_low >= width - 1) {
    x_high = x_low = width - 1;
    x = static_cast<T>(x_low);
    dx_scale = T(0);
  } else {
    x_high = x_low + 1;
  }
  const T ly = y - static_cast<T>(y_low), lx = x - static_cast<T>(x_low);
  const T hy = T(1) - ly, hx = T(1) - lx;
  taps.offset[0] = y_low * width + x_low;
  taps.offset[1] = y_low * width + x_high;
  taps.offset[2] = y_high * width + x_low;
  taps.offset[3] = y_high * width + x_high;
  taps.weight[0] = hy * hx;
  taps.weight[1] = hy * lx;
  taps.weight[2] = ly * hx;
  taps.weight[3] = ly * lx;
  taps.dweight_dy[0] = -hx * dy_scale;
  taps.dweight_dy[1] = -lx * dy_scale;
  taps.dweight_dy[2] = hx * dy_scale;
  taps.dweight_dy[3] = lx * dy_scale;
  taps.dweight_dx[0] = -hy * dx_scale;
  taps.dweight_dx[1] = hy * dx_scale;
  taps.dweight_dx[2] = -ly * dx_scale;
  taps.dweight_dx[3] = ly * dx_scale;
  return true;
}

// Deformable-convolution convention: zero padding outside the map. Returns
// false (all weights zero) when no neighbour is inside or the point is not finite.
template <typename T>
DET_HD bool zero_padded_bilinear(int64_t height, int64_t width, T y, T x, BilinearTaps<T>& taps) {
  clear_taps(taps);
  if (!(y > T(-1) && y < T(height) && x > T(-1) && x < T(width))) return false;
  const T y_floor = floor(y), x_floor = floor(x);
  const int64_t y_low = static_cast<int64_t>(y_floor), x_low = static_cast<int64_t>(x_floor);
  const int64_t y_high = y_low + 1, x_high = x_low + 1;
  const T ly = y - y_floor, lx = x - x_floor;
  const T hy = T(1) - ly, hx = T(1) - lx;
  const bool y_low_in = y_low >= 0, y_high_in = y_high <= height - 1;
  const bool x_low_in = x_low >= 0, x_high_in = x_high <= width - 1;
  const bool used[4] = {y_low_in && x_low_in, y_low_in && x_high_in,
                        y_high_in && x_low_in, y_high_in && x_high_in};
  const int64_t offset[4] = {y_low * width + x_low, y_low * width + x_high,
                             y_high * width + x_low, y_high * width + x_high};
  const T weight[4] = {hy * hx, hy * lx, ly * hx, ly * lx};
  const T dweight_dy[4] = {-hx, -lx, hx, lx};
  const T dweight_dx[4] = {-hy, hy, -ly, ly};
  for (int i = 0; i < 4; ++i) {
    if (!used[i]) continue;
    taps.offset[i] = offset[i];
    taps.weight[i] = weight[i];
    taps.dweight_dy[i] = dweight_dy[i];
    taps.dweight_dx[i] = dweight_dx[i];
  }
  return true;
}

}  // namespace det_ops
