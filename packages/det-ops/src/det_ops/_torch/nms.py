from __future__ import annotations

import torch
from torch import Tensor

from det_ops._arrays import TORCH
from det_ops.nms import batched_nms_kernel, nms_kernel, soft_nms_kernel


@torch.library.custom_op("det_ops::nms", mutates_args=())
def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    return nms_kernel(TORCH, boxes.contiguous(), scores.contiguous(), iou_threshold).clone()


@nms.register_fake
def _(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    kept = torch.library.get_ctx().new_dynamic_size()
    return boxes.new_empty((kept,), dtype=torch.int64)


@torch.library.custom_op("det_ops::batched_nms", mutates_args=())
def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    return batched_nms_kernel(
        TORCH, boxes.contiguous(), scores.contiguous(), idxs.contiguous(), iou_threshold
    ).clone()


@batched_nms.register_fake
def _(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    kept = torch.library.get_ctx().new_dynamic_size()
    return boxes.new_empty((kept,), dtype=torch.int64)


@torch.library.custom_op("det_ops::soft_nms", mutates_args=())
def soft_nms(
    boxes: Tensor, scores: Tensor, iou_threshold: float, sigma: float, min_score: float, method: str
) -> tuple[Tensor, Tensor]:
    keep, new_scores = soft_nms_kernel(
        TORCH, boxes.contiguous(), scores.contiguous(), iou_threshold, sigma, min_score, method
    )
    return keep.clone(), new_scores.clone()


@soft_nms.register_fake
def _(
    boxes: Tensor, scores: Tensor, iou_threshold: float, sigma: float, min_score: float, method: str
) -> tuple[Tensor, Tensor]:
    kept = torch.library.get_ctx().new_dynamic_size()
    return boxes.new_empty((kept,), dtype=torch.int64), scores.new_empty((kept,))
