"""The det-ops kernels as torch ops, for code that builds its own inputs and must be traced.

Importing this module registers ``torch.ops.det_ops.*`` (custom ops with fake kernels and
autograd: nms, batched_nms, batched_nms_padded, roi_align, multi_level_roi_align, roi_pool,
deform_conv2d, deform_roi_pool, bbox_overlaps, sigmoid_focal_loss, ...). They take tensors
as the kernels do, without the public functions' argument checks, which read concrete sizes
and values that torch.export cannot trace. A graph exported with them needs only this
import to run. The two fixed-shape ops take plain values:
``ops.batched_nms_padded(boxes, scores, groups, iou_threshold, num_groups, max_per_group)``
(contiguous boxes and scores of one float dtype, int64 groups, offset already applied) and
``ops.multi_level_roi_align(features, rois, levels, spatial_scales, out_h, out_w,
sampling_ratio, aligned)`` (aligned: 0 False, 1 True, 2 "legacy").
"""

import torch

import det_ops._torch  # noqa: F401  (the registrations)

ops = torch.ops.det_ops
"""The ``torch.ops.det_ops`` namespace."""
