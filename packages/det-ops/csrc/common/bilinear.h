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
// as well, for the coordinate gradients of deformable conv and RoI pooling;
// their ForwardTaps overloads give the weights alone, for kernels that need
// no derivative.
//
// Offsets and sizes are of an index type I: int64_t on the CPU; the CUDA
// kernels use int32_t where every tensor's element count fits (32-bit
// division and multiplication are several times cheaper on a GPU).
#pragma once

#include <math.h>

#include "common/macros.h"

namespace det_ops {

template <typename T, typename I = int64_t>
struct BilinearTaps {
  I offset[4];        // y * width + x of the neighbours (0 for an unused tap)
  T weight[4];        // interpolation weights (0 for an unused tap)
  T dweight_dy[4];    // d weight / d y
  T dweight_dx[4];    // d weight / d x

  DET_HD T sample(const T* plane) const {
    return weight[0] * plane[offset[0]] + weight[1] * plane[offset[1]] +
           weight[2] * plane[offset[2]] + weight[3] * plane[offset[3]];
  }
};

// The weights of the four taps without their derivatives.
template <typename T, typename I = int64_t>
struct ForwardTaps {
  I offset[4];
  T weight[4];

  DET_HD T sample(const T* plane) const {
    return weight[0] * plane[offset[0]] + weight[1] * plane[offset[1]] +
           weight[2] * plane[offset[2]] + weight[3] * plane[offset[3]];
  }
};

template <typename T, typename I>
DET_HD void clear_taps(ForwardTaps<T, I>& taps) {
  for (int i = 0; i < 4; ++i) {
    taps.offset[i] = 0;
    taps.weight[i] = T(0);
  }
}

template <typename T, typename I>
DET_HD void clear_taps(BilinearTaps<T, I>& taps) {
  for (int i = 0; i < 4; ++i) {
    taps.offset[i] = 0;
    taps.weight[i] = T(0);
    taps.dweight_dy[i] = T(0);
    taps.dweight_dx[i] = T(0);
  }
}

// One axis of RoIAlign's clamped interpolation. RoIAlign's 2-D sampling is
// the product of two of these, which lets a kernel precompute the taps of a
// RoI's sampling rows and columns separately.
template <typename T, typename I = int64_t>
struct AxisTap {
  I low, high;        // neighbouring pixel indices along the axis
  T l, h;             // weights of high and low (l + h = 1)
  T slope;            // d position / d coordinate: 0 where the coordinate is clamped
  bool inside;        // false: the point is out of range (or NaN) and samples 0
};

template <typename T, typename I>
DET_HD AxisTap<T, I> clamped_axis(I size, T v) {
  AxisTap<T, I> a{0, 0, T(0), T(0), T(0), false};
  // Written as a negated range test so that NaN lands in the "outside" branch.
  if (!(v >= T(-1) && v <= T(size))) return a;
  a.inside = true;
  a.slope = T(1);
  if (v <= T(0)) {
    v = T(0);
    a.slope = T(0);
  }
  a.low = static_cast<I>(v);
  if (a.low >= size - 1) {
    a.high = a.low = size - 1;
    v = static_cast<T>(a.low);
    a.slope = T(0);
  } else {
    a.high = a.low + 1;
  }
  a.l = v - static_cast<T>(a.low);
  a.h = T(1) - a.l;
  return a;
}

// Offsets and weights of the product of a row tap and a column tap (the
// derivatives are the caller's: clamped_bilinear).
template <typename T, typename I, typename Taps>
DET_HD void axis_product(const AxisTap<T, I>& ay, const AxisTap<T, I>& ax, I width, Taps& taps) {
  taps.offset[0] = ay.low * width + ax.low;
  taps.offset[1] = ay.low * width + ax.high;
  taps.offset[2] = ay.high * width + ax.low;
  taps.offset[3] = ay.high * width + ax.high;
  taps.weight[0] = ay.h * ax.h;
  taps.weight[1] = ay.h * ax.l;
  taps.weight[2] = ay.l * ax.h;
  taps.weight[3] = ay.l * ax.l;
}

// RoIAlign convention. Returns false (all weights zero) when the point is out
// of range or not finite.
template <typename T, typename I>
DET_HD bool clamped_bilinear(I height, I width, T y, T x, BilinearTaps<T, I>& taps) {
  clear_taps(taps);
  const AxisTap<T, I> ay = clamped_axis(height, y), ax = clamped_axis(width, x);
  if (!(ay.inside && ax.inside)) return false;
  axis_product(ay, ax, width, taps);
  taps.dweight_dy[0] = -ax.h * ay.slope;
  taps.dweight_dy[1] = -ax.l * ay.slope;
  taps.dweight_dy[2] = ax.h * ay.slope;
  taps.dweight_dy[3] = ax.l * ay.slope;
  taps.dweight_dx[0] = -ay.h * ax.slope;
  taps.dweight_dx[1] = ay.h * ax.slope;
  taps.dweight_dx[2] = -ay.l * ax.slope;
  taps.dweight_dx[3] = ay.l * ax.slope;
  return true;
}

// The same taps without derivatives.
template <typename T, typename I>
DET_HD bool clamped_bilinear(I height, I width, T y, T x, ForwardTaps<T, I>& taps) {
  clear_taps(taps);
  const AxisTap<T, I> ay = clamped_axis(height, y), ax = clamped_axis(width, x);
  if (!(ay.inside && ax.inside)) return false;
  axis_product(ay, ax, width, taps);
  return true;
}

// Deformable-convolution convention: zero padding outside the map. Returns
// false (all weights zero) when no neighbour is inside or the point is not finite.
// Taps: BilinearTaps, or ForwardTaps for the weights alone.
template <typename T, typename I>
DET_HD void set_derivatives(BilinearTaps<T, I>& taps, int i, T dy, T dx) {
  taps.dweight_dy[i] = dy;
  taps.dweight_dx[i] = dx;
}

template <typename T, typename I>
DET_HD void set_derivatives(ForwardTaps<T, I>&, int, T, T) {}

template <typename T, typename I, typename Taps>
DET_HD bool zero_padded_bilinear(I height, I width, T y, T x, Taps& taps) {
  clear_taps(taps);
  if (!(y > T(-1) && y < T(height) && x > T(-1) && x < T(width))) return false;
  const T y_floor = floor(y), x_floor = floor(x);
  const I y_low = static_cast<I>(y_floor), x_low = static_cast<I>(x_floor);
  const I y_high = y_low + 1, x_high = x_low + 1;
  const T ly = y - y_floor, lx = x - x_floor;
  const T hy = T(1) - ly, hx = T(1) - lx;
  const bool y_low_in = y_low >= 0, y_high_in = y_high <= height - 1;
  const bool x_low_in = x_low >= 0, x_high_in = x_high <= width - 1;
  const bool used[4] = {y_low_in && x_low_in, y_low_in && x_high_in,
                        y_high_in && x_low_in, y_high_in && x_high_in};
  const I offset[4] = {y_low * width + x_low, y_low * width + x_high,
                       y_high * width + x_low, y_high * width + x_high};
  const T weight[4] = {hy * hx, hy * lx, ly * hx, ly * lx};
  const T dweight_dy[4] = {-hx, -lx, hx, lx};
  const T dweight_dx[4] = {-hy, hy, -ly, ly};
  for (int i = 0; i < 4; ++i) {
    if (!used[i]) continue;
    taps.offset[i] = offset[i];
    taps.weight[i] = weight[i];
    set_derivatives(taps, i, dweight_dy[i], dweight_dx[i]);
  }
  return true;
}

}  // namespace det_ops
