"""Small random batches in the data contract's shape, for the detector tests."""

from __future__ import annotations

import torch


def make_batch(
    height: int = 128,
    width: int = 160,
    num_classes: int = 3,
    masks: bool = False,
    scale: float = 0.5,
    seed: int = 0,
):
    """Two images (the second smaller than the padded batch), metas, targets.

    Returns:
        images Tensor[2, 3, height, width], metas, targets (boxes x1, y1, x2, y2 in input
        pixels; labels in 0..num_classes-1; bitmap masks Tensor[G, height, width] if masks).
    """
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(2, 3, height, width, generator=g)
    shapes = [(height, width), (height - 32, width - 32)]
    metas = [
        {
            "image_id": i,
            "img_shape": (h, w, 3),
            "pad_shape": (height, width, 3),
            "ori_shape": (round(h / scale), round(w / scale), 3),
            "scale_factor": scale,
            "flip": False,
        }
        for i, (h, w) in enumerate(shapes)
    ]
    targets = []
    for h, w in shapes:
        boxes = torch.tensor([[10.0, 12.0, 70.0, 80.0], [40.0, 30.0, 90.0, 90.0]])
        boxes[:, 0::2] = boxes[:, 0::2].clamp(max=w - 1)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(max=h - 1)
        target = {"boxes": boxes, "labels": torch.tensor([0, num_classes - 1])}
        if masks:
            bitmap = torch.zeros(2, height, width, dtype=torch.uint8)
            for j, (x1, y1, x2, y2) in enumerate(boxes.long().tolist()):
                bitmap[j, y1 + 5 : y2 - 5, x1 + 5 : x2 - 5] = 1
            target["masks"] = bitmap
        targets.append(target)
    return images, metas, targets
