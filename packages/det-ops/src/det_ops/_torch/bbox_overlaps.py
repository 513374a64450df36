from __future__ import annotations

import torch
from torch import Tensor

from det_ops._arrays import TORCH
from det_ops.bbox_overlaps import bbox_overlaps_kernel


@torch.library.custom_op("det_ops::bbox_overlaps", mutates_args=())
def bbox_overlaps(boxes1: Tensor, boxes2: Tensor, mode: str, aligned: bool) -> Tensor:
    return bbox_overlaps_kernel(TORCH, boxes1.contiguous(), boxes2.contiguous(), mode, aligned)


@bbox_overlaps.register_fake
def _(boxes1: Tensor, boxes2: Tensor, mode: str, aligned: bool) -> Tensor:
    if aligned:
        return boxes1.new_empty((boxes1.shape[0],))
    return boxes1.new_empty((boxes1.shape[0], boxes2.shape[0]))
