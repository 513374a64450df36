#pragma once

#include <cstdint>

#include "common/deform_conv.h"

namespace det_ops::cpu {

// input [batch, channels, height, width]; offset [batch, 2 * offset_groups *
// taps, out_h, out_w]; mask [batch, offset_groups * taps, out_h, out_w] or
// null (DCN v1: every mask value is 1); columns and grad_columns
// [batch, channels * taps, out_h * out_w], row c * taps + k.
// height * width must fit in int32.

// columns = the masked bilinear samples of every channel at every tap.
template <typename T>
void deform_im2col(const T* input, const T* offset, const T* mask, const DeformConvGeometry& s,
                   T* columns);

// grad_input [batch, channels, height, width], overwritten: the adjoint of
// deform_im2col with respect to input.
template <typename T>
void deform_col2im(const T* grad_columns, const T* offset, const T* mask,
                   const DeformConvGeometry& s, T* grad_input);

// grad_offset (shaped like offset) and grad_mask (shaped like mask, null when
// mask is), overwritten: the adjoint of deform_im2col with respect to the
// sampling coordinates and the mask.
template <typename T>
void deform_col2im_coord(const T* grad_columns, const T* input, const T* offset, const T* mask,
                         const DeformConvGeometry& s, T* grad_offset, T* grad_mask);

}  // namespace det_ops::cpu
