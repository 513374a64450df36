"""Instance masks kept as COCO polygons or RLE until a transform needs pixels."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils
from torch import Tensor


def _is_polygon(segm: Any) -> bool:
    return isinstance(segm, list)


def rasterize(segm: Any, height: int, width: int) -> np.ndarray:
    """One COCO segmentation as a bitmap, exactly as pycocotools' ``annToMask``.

    Args:
        segm: a list of polygons ``[x0, y0, x1, y1, ...]`` (pixels), an RLE dict with
            ``counts`` as a list (uncompressed) or bytes/str (compressed), or a bitmap.
        height, width: the canvas.

    Returns:
        uint8 ndarray[height, width] in {0, 1}.
    """
    if isinstance(segm, np.ndarray):
        return segm
    if _is_polygon(segm):
        rle = mask_utils.merge(mask_utils.frPyObjects(segm, height, width))
    elif isinstance(segm.get("counts"), list):
        rle = mask_utils.frPyObjects(segm, height, width)
    else:
        rle = segm
    return mask_utils.decode(rle)


class InstanceMasks:
    """The masks of one image's objects, each a polygon list, an RLE dict or a bitmap.

    Polygons stay polygons through resize, flip and pad (their coordinates are moved);
    RLE and bitmaps are decoded only when a geometric transform touches them. The pixel
    convention matches the boxes: x2 = x + w, so a flip maps x to ``width - x``.

    Args:
        segms: one COCO segmentation per object (list of polygons, RLE dict, or uint8
            ndarray[height, width]).
        height, width: the canvas the segmentations live on, pixels.
    """

    def __init__(self, segms: list[Any], height: int, width: int) -> None:
        self.segms = list(segms)
        self.height = int(height)
        self.width = int(width)

    def __len__(self) -> int:
        return len(self.segms)

    def __repr__(self) -> str:
        kinds = sorted({"polygon" if _is_polygon(s) else type(s).__name__ for s in self.segms})
        return f"InstanceMasks(n={len(self)}, size=({self.height}, {self.width}), kinds={kinds})"

    def select(self, keep: Tensor | np.ndarray | list[int]) -> InstanceMasks:
        """The masks at the given indices (or boolean mask), same canvas."""
        keep = np.asarray(keep)
        if keep.dtype == bool:
            keep = np.flatnonzero(keep)
        return InstanceMasks([self.segms[int(i)] for i in keep], self.height, self.width)

    def _bitmap(self, segm: Any) -> np.ndarray:
        return rasterize(segm, self.height, self.width)

    def resize(self, height: int, width: int) -> InstanceMasks:
        """The masks on a canvas of (height, width): polygons scaled, bitmaps nearest-sampled."""
        sx, sy = width / self.width, height / self.height
        out = []
        for segm in self.segms:
            if _is_polygon(segm):
                polys = []
                for poly in segm:
                    p = np.asarray(poly, dtype=np.float64).copy()
                    p[0::2] *= sx
                    p[1::2] *= sy
                    polys.append(p.tolist())
                out.append(polys)
            else:
                bitmap = torch.from_numpy(self._bitmap(segm))[None, None].float()
                resized = torch.nn.functional.interpolate(bitmap, size=(height, width))
                out.append(resized[0, 0].to(torch.uint8).numpy())
        return InstanceMasks(out, height, width)

    def flip(self) -> InstanceMasks:
        """The masks mirrored left to right (x -> width - x)."""
        out = []
        for segm in self.segms:
            if _is_polygon(segm):
                polys = []
                for poly in segm:
                    p = np.asarray(poly, dtype=np.float64).copy()
                    p[0::2] = self.width - p[0::2]
                    polys.append(p.tolist())
                out.append(polys)
            else:
                out.append(np.ascontiguousarray(self._bitmap(segm)[:, ::-1]))
        return InstanceMasks(out, self.height, self.width)

    def pad(self, height: int, width: int) -> InstanceMasks:
        """The masks on a larger canvas, padded at the bottom and right."""
        if height < self.height or width < self.width:
            raise ValueError(
                f"InstanceMasks.pad: ({height}, {width}) is smaller than ({self.height}, "
                f"{self.width})"
            )
        out = []
        for segm in self.segms:
            if _is_polygon(segm):
                out.append(segm)
            else:
                canvas = np.zeros((height, width), dtype=np.uint8)
                canvas[: self.height, : self.width] = self._bitmap(segm)
                out.append(canvas)
        return InstanceMasks(out, height, width)

    def crop(self, x1: int, y1: int, x2: int, y2: int) -> InstanceMasks:
        """The masks inside the pixel window [x1, x2) x [y1, y2), as bitmaps."""
        out = [
            np.ascontiguousarray(self._bitmap(s)[y1:y2, x1:x2]).astype(np.uint8) for s in self.segms
        ]
        return InstanceMasks(out, y2 - y1, x2 - x1)

    def expand(self, top: int, left: int, height: int, width: int) -> InstanceMasks:
        """The masks placed at (top, left) on a (height, width) canvas, as bitmaps."""
        out = []
        for segm in self.segms:
            canvas = np.zeros((height, width), dtype=np.uint8)
            canvas[top : top + self.height, left : left + self.width] = self._bitmap(segm)
            out.append(canvas)
        return InstanceMasks(out, height, width)

    def to_tensor(self) -> Tensor:
        """All masks rasterised: uint8 Tensor[N, height, width] in {0, 1}."""
        if not self.segms:
            return torch.zeros(0, self.height, self.width, dtype=torch.uint8)
        return torch.from_numpy(np.stack([self._bitmap(s) for s in self.segms]).astype(np.uint8))

    def for_heads(self) -> list[list[list[float]]] | Tensor:
        """What det-heads' mask targets take: polygon lists when every mask is a polygon
        (no rasterisation), else the uint8 Tensor[N, height, width] bitmaps."""
        if all(_is_polygon(s) for s in self.segms):
            return [[list(map(float, p)) for p in s] for s in self.segms]
        return self.to_tensor()
