// Host launchers of the CUDA kernels of deformable convolution: its sampling
// (im2col) and the gradients of that (cuda/deform_conv.cu).
// Pointers are device memory allocated by the caller; `stream` is a cudaStream_t
// passed as an integer.
#pragma once

#include <cstdint>

#include "common/deform_conv.h"

namespace det_ops::cuda {

template <typename T>
void deform_im2col(const T* input, const T* offset, const T* mask, const DeformConvGeometry& s,
                   T* columns, std::uintptr_t stream);

// grad_input is overwritten (zero-filled here, then accumulated).
template <typename T>
void deform_col2im(const T* grad_columns, const T* offset, const T* mask,
                   const DeformConvGeometry& s, T* grad_input, std::uintptr_t stream);

template <typename T>
void deform_col2im_coord(const T* grad_columns, const T* input, const T* offset, const T* mask,
                         const DeformConvGeometry& s, T* grad_offset, T* grad_mask,
                         std::uintptr_t stream);

}  // namespace det_ops::cuda
