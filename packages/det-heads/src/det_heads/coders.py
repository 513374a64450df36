"""Box coders: boxes <-> regression targets."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from det_heads.tracing import DeviceCache


class DeltaXYWHCoder:
    """(dx, dy, dw, dh) deltas of a box from a reference box, normalised by means and stds.

    dx = (gx - px) / pw, dy = (gy - py) / ph, dw = log(gw / pw), dh = log(gh / ph), where
    (px, py) is the reference centre and (pw, ph) its size (x2 - x1 + offset); the target is
    (d - means) / stds. Decoding clamps dw, dh to |log(clip_ratio)| so that exp cannot blow up.

    With offset 1 (the 2019 code, mmdet/core/bbox/transforms.py bbox2delta / delta2bbox) a
    box of width w spans [cx - 0.5 (w - 1), cx + 0.5 (w - 1)] and decoded boxes are clipped
    to [0, W - 1] x [0, H - 1]; with offset 0 to [0, W] x [0, H].

    Defaults are the 2019 R-CNN box head's (stds 0.1, 0.1, 0.2, 0.2); the RPN uses stds of 1.

    Args:
        means: Tensor[4]-like offsets of the normalised deltas.
        stds: Tensor[4]-like scales of the normalised deltas.
        clip_ratio: smallest width/height ratio a decoded box may shrink or grow by
            (16 / 1000: dw, dh <= log(1000 / 16) = 4.135).
        offset: 0 (widths x2 - x1) or 1 (x2 - x1 + 1).
        clamp: "both" (dw, dh clamped to +-log(1 / clip_ratio)) or "max" (from above only,
            as torchvision's BoxCoder.decode).
    """

    def __init__(
        self,
        means: Sequence[float] = (0.0, 0.0, 0.0, 0.0),
        stds: Sequence[float] = (0.1, 0.1, 0.2, 0.2),
        clip_ratio: float = 16 / 1000,
        *,
        offset: int = 0,
        clamp: str = "both",
    ) -> None:
        if len(means) != 4 or len(stds) != 4:
            raise ValueError(f"DeltaXYWHCoder: means and stds need 4 values, got {means}, {stds}")
        if not 0 < clip_ratio < 1:
            raise ValueError(f"DeltaXYWHCoder: clip_ratio must be in (0, 1), got {clip_ratio}")
        if isinstance(offset, bool) or offset not in (0, 1):
            raise ValueError(f"DeltaXYWHCoder: offset must be 0 or 1, got {offset!r}")
        if clamp not in ("both", "max"):
            raise ValueError(f"DeltaXYWHCoder: clamp must be 'both' or 'max', got {clamp!r}")
        self.means = tuple(float(m) for m in means)
        self.stds = tuple(float(s) for s in stds)
        self.max_ratio = abs(math.log(clip_ratio))
        self.offset = int(offset)
        self.clamp = clamp
        self._constants = DeviceCache()

    def _means_stds(self, like: Tensor) -> tuple[Tensor, Tensor]:
        """(means, stds) Tensor[4] on like's device and dtype, made once per pair of them."""

        def make() -> tuple[Tensor, Tensor]:
            values = torch.tensor([self.means, self.stds], dtype=like.dtype)
            return tuple(values.to(like.device).unbind(0))

        return self._constants.get((like.device, like.dtype), make)

    def encode(self, boxes: Tensor, gt_boxes: Tensor) -> Tensor:
        """Regression targets that move boxes onto gt_boxes.

        Args:
            boxes: Tensor[N, 4] reference boxes (x1, y1, x2, y2), pixels, positive size.
            gt_boxes: Tensor[N, 4] matched targets, same convention.

        Returns:
            Tensor[N, 4] normalised (dx, dy, dw, dh).
        """
        # x and y together, as (x, y) column pairs: fewer, larger operations.
        o = self.offset
        p_size = boxes[:, 2:] - boxes[:, :2] + o
        g_size = gt_boxes[:, 2:] - gt_boxes[:, :2] + o
        if o:
            p_centre = (boxes[:, :2] + boxes[:, 2:]) * 0.5
            g_centre = (gt_boxes[:, :2] + gt_boxes[:, 2:]) * 0.5
        else:
            p_centre = boxes[:, :2] + 0.5 * p_size
            g_centre = gt_boxes[:, :2] + 0.5 * g_size
        deltas = torch.cat([(g_centre - p_centre) / p_size, torch.log(g_size / p_size)], dim=1)
        means, stds = self._means_stds(deltas)
        return (deltas - means) / stds

    def decode(
        self,
        boxes: Tensor,
        deltas: Tensor,
        max_shape: tuple[int, int] | tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        """Boxes moved by deltas.

        Args:
            boxes: Tensor[N, 4] reference boxes (x1, y1, x2, y2), pixels.
            deltas: Tensor[N, 4 * k] normalised deltas (k = 1, or one set per class).
            max_shape: (h, w) to clip the decoded boxes to (numbers, or scalar Tensors: see
                clip_boxes), or None.

        Returns:
            Tensor[N, 4 * k] decoded boxes (x1, y1, x2, y2), pixels.
        """
        # Explicit sizes: with N = 0 a -1 in the reshapes would be ambiguous.
        n, width = deltas.shape[0], deltas.shape[1]
        means, stds = self._means_stds(deltas)
        d = deltas.reshape(n, width // 4, 4) * stds
        d = d + means
        low = None if self.clamp == "max" else -self.max_ratio
        dw = d[..., 2].clamp(low, self.max_ratio)
        dh = d[..., 3].clamp(low, self.max_ratio)
        o = self.offset
        pw = (boxes[:, 2] - boxes[:, 0] + o)[:, None]
        ph = (boxes[:, 3] - boxes[:, 1] + o)[:, None]
        if o:
            px = ((boxes[:, 0] + boxes[:, 2]) * 0.5)[:, None]
            py = ((boxes[:, 1] + boxes[:, 3]) * 0.5)[:, None]
        else:
            px = boxes[:, 0, None] + 0.5 * pw
            py = boxes[:, 1, None] + 0.5 * ph
        gx, gy = px + pw * d[..., 0], py + ph * d[..., 1]
        gw, gh = pw * dw.exp(), ph * dh.exp()
        if o:
            half_w, half_h = gw * 0.5, gh * 0.5
            out = torch.stack(
                [gx - half_w + 0.5, gy - half_h + 0.5, gx + half_w - 0.5, gy + half_h - 0.5], -1
            )
        else:
            out = torch.stack([gx - 0.5 * gw, gy - 0.5 * gh, gx + 0.5 * gw, gy + 0.5 * gh], -1)
        if max_shape is not None:
            out = clip_boxes(out, max_shape, o)
        return out.reshape(n, width)


def clip_boxes(
    boxes: Tensor, max_shape: tuple[int, int] | tuple[Tensor, Tensor], offset: int = 0
) -> Tensor:
    """Tensor[..., 4] boxes (x1, y1, x2, y2) clipped to x in [0, w - offset] and y in
    [0, h - offset] for max_shape (h, w).

    Sizes given as numbers stay numbers (nothing is copied to the device, and an exported
    graph keeps them symbolic); sizes given as scalar Tensors on the boxes' device
    (det_heads.inputs.image_bounds of a captured step) are read by the kernels, and clip
    to the same values.
    """
    h, w = max_shape[0] - offset, max_shape[1] - offset
    x1, y1, x2, y2 = boxes.unbind(dim=-1)
    if isinstance(h, Tensor) or isinstance(w, Tensor):
        zero = boxes.new_zeros(())
        h, w = torch.as_tensor(h).to(boxes), torch.as_tensor(w).to(boxes)
        return torch.stack(
            [
                torch.clamp(x1, zero, w),
                torch.clamp(y1, zero, h),
                torch.clamp(x2, zero, w),
                torch.clamp(y2, zero, h),
            ],
            dim=-1,
        )
    return torch.stack([x1.clamp(0, w), y1.clamp(0, h), x2.clamp(0, w), y2.clamp(0, h)], dim=-1)
