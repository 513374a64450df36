from __future__ import annotations

import torch
from torch import Tensor

from det_ops._arrays import TORCH
from det_ops.batched_nms_padded import batched_nms_padded_kernel


@torch.library.custom_op("det_ops::batched_nms_padded", mutates_args=())
def batched_nms_padded(
    boxes: Tensor,
    scores: Tensor,
    groups: Tensor,
    iou_threshold: float,
    num_groups: int,
    max_per_group: int,
) -> tuple[Tensor, Tensor]:
    return batched_nms_padded_kernel(
        TORCH,
        boxes.contiguous(),
        scores.to(boxes.dtype).contiguous(),
        groups.to(torch.int64).contiguous(),
        iou_threshold,
        num_groups,
        max_per_group,
    )


@batched_nms_padded.register_fake
def _(boxes, scores, groups, iou_threshold, num_groups, max_per_group):
    # Fixed shapes: the point of the op is that nothing depends on the data.
    keep = boxes.new_empty((num_groups, max_per_group), dtype=torch.int64)
    return keep, boxes.new_empty((num_groups,), dtype=torch.int64)
