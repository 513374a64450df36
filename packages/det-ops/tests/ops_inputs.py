"""Random inputs shared by the det-ops tests."""

import torch


def random_boxes(n: int, dtype=torch.float32, size: float = 512.0, generator=None) -> torch.Tensor:
    """n boxes (x1, y1, x2, y2) inside a size x size image, sides 1..size/4."""
    xy = torch.rand(n, 2, generator=generator, dtype=torch.float64) * size
    wh = torch.rand(n, 2, generator=generator, dtype=torch.float64) * (size / 4) + 1
    return torch.cat([xy, xy + wh], dim=1).to(dtype)


def random_rois(n: int, batch: int, height: int, width: int, scale: float, dtype, generator=None):
    """n RoIs [n, 5] spread over (and a little beyond) a height x width feature map."""
    image_h, image_w = height / scale, width / scale
    x1 = torch.rand(n, generator=generator, dtype=torch.float64) * image_w * 1.1 - image_w * 0.05
    y1 = torch.rand(n, generator=generator, dtype=torch.float64) * image_h * 1.1 - image_h * 0.05
    w = torch.rand(n, generator=generator, dtype=torch.float64) * image_w / 2
    h = torch.rand(n, generator=generator, dtype=torch.float64) * image_h / 2
    index = torch.randint(0, batch, (n,), generator=generator).to(torch.float64)
    return torch.stack([index, x1, y1, x1 + w, y1 + h], dim=1).to(dtype)
