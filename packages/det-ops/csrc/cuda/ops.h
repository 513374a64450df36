// Host launchers of the CUDA kernels. Pointers are device memory allocated by
// the caller; `stream` is a cudaStream_t passed as an integer. Shape structs
// are the CPU kernels' (csrc/common), so both paths read one description.
#pragma once

#include <cstdint>

#include "common/deform_conv.h"
#include "common/deform_roi_pool.h"
#include "common/roi_geometry.h"

namespace det_ops::cuda {

// NMS over boxes already sorted by decreasing score. Workspaces: mask uint64
// [n, ceil(n / 64)], removed uint64 [ceil(n / 64)]; keep [n] receives
// positions into the sorted order and count [1] how many.
template <typename T>
void nms_sorted(const T* boxes, int64_t n, double iou_threshold, uint64_t* mask,
                uint64_t* removed, int64_t* keep, int64_t* count, std::uintptr_t stream);

template <typename T>
void bbox_overlaps(const T* boxes1, int64_t n, const T* boxes2, int64_t m, int mode, bool aligned,
                   T* out, std::uintptr_t stream);

template <typename T>
void roi_align_forward(const T* input, const T* rois, const RoIAlignShape& s, T* output,
                       std::uintptr_t stream);

// grad_input must be zero-filled by the caller.
template <typename T>
void roi_align_backward(const T* grad_output, const T* rois, const RoIAlignShape& s,
                        T* grad_input, std::uintptr_t stream);

template <typename T>
void roi_pool_forward(const T* input, const T* rois, const RoIPoolShape& s, T* output,
                      int64_t* argmax, std::uintptr_t stream);

// grad_input must be zero-filled by the caller.
template <typename T>
void roi_pool_backward(const T* grad_output, const T* rois, const int64_t* argmax,
                       const RoIPoolShape& s, T* grad_input, std::uintptr_t stream);

template <typename T>
void sigmoid_focal_loss(const T* logits, const T* targets, const int64_t* labels, int64_t n,
                        int64_t classes, double alpha, double gamma, T* loss, T* grad,
                        std::uintptr_t stream);

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

// grad_input must be zero-filled by the caller; grad_offset and grad_mask
// (either may be null) are overwritten.
template <typename T>
void deform_roi_pool_forward(const T* input, const T* rois, const T* offset, const T* mask,
                             const DeformRoIPoolShape& s, T* output, std::uintptr_t stream);

template <typename T>
void deform_roi_pool_backward(const T* grad_output, const T* input, const T* rois,
                              const T* offset, const T* mask, const DeformRoIPoolShape& s,
                              T* grad_input, T* grad_offset, T* grad_mask, std::uintptr_t stream);

}  // namespace det_ops::cuda
