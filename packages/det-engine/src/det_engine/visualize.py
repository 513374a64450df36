"""Detections drawn on images: boxes, "label score" captions and translucent masks (Pillow);
images read as training and evaluation read them (det_data.read_image)."""

from __future__ import annotations

import colorsys
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from det_data import read_image

# The first colours are fixed and easy to tell apart; later classes step around the hue circle
# by the golden ratio, so neighbouring labels never get similar colours.
_PALETTE = (
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (0, 128, 128),
    (170, 110, 40),
)


def class_color(label: int) -> tuple[int, int, int]:
    """The RGB colour of class ``label`` (0-based): the same for a label in every picture."""
    if label < 0:
        raise ValueError(f"label must be >= 0, got {label}")
    if label < len(_PALETTE):
        return _PALETTE[label]
    hue = (label * 0.6180339887) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.8, 0.95)
    return int(r * 255 + 0.5), int(g * 255 + 0.5), int(b * 255 + 0.5)


def _numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _check_image(image: Any, name: str = "image") -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name} must be a numpy uint8 [H, W, 3] RGB array, got {type(image)}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{name} must be an [H, W, 3] RGB array, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"{name} must have dtype uint8, got {image.dtype}")
    return image


def _check_result(
    result: Mapping[str, Any], height: int, width: int, num_names: int
) -> dict[str, np.ndarray]:
    if not isinstance(result, Mapping) or "boxes" not in result:
        raise ValueError("result must be a dict with 'boxes' (and scores, labels, masks)")
    boxes = _numpy(result["boxes"]).astype(np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"result['boxes'] must be [N, 4] (x1, y1, x2, y2), got {boxes.shape}")
    n = len(boxes)
    out = {"boxes": boxes}
    for key in ("scores", "labels"):
        if key in result:
            value = _numpy(result[key]).reshape(-1)
            if len(value) != n:
                raise ValueError(f"result['{key}'] has {len(value)} entries, 'boxes' has {n}")
            out[key] = value
    if "labels" in out:
        labels = out["labels"].astype(np.int64)
        bad = labels[(labels < 0) | (labels >= num_names)]
        if len(bad):
            raise ValueError(
                f"result['labels'] holds label {int(bad[0])} but class_names has {num_names} names"
            )
        out["labels"] = labels
    if "masks" in result:
        masks = _numpy(result["masks"])
        if masks.shape != (n, height, width):
            raise ValueError(
                f"result['masks'] must be [N, H, W] = [{n}, {height}, {width}] like the image, "
                f"got {masks.shape}"
            )
        out["masks"] = masks.astype(bool)
    return out


def _text_color(fill: tuple[int, int, int]) -> tuple[int, int, int]:
    luminance = 0.299 * fill[0] + 0.587 * fill[1] + 0.114 * fill[2]
    return (0, 0, 0) if luminance > 150 else (255, 255, 255)


def draw_detections(
    image: np.ndarray,
    result: Mapping[str, Any],
    class_names: Sequence[str],
    score_thr: float = 0.3,
    *,
    line_width: int = 2,
    mask_alpha: float = 0.5,
) -> np.ndarray:
    """A copy of ``image`` with the detections scoring at least ``score_thr`` drawn on it.

    Each kept detection gets its class colour (:func:`class_color`): its mask blended in with
    ``mask_alpha`` (only the masked pixels change), a box outline ``line_width`` pixels wide
    inside the box and a caption "name 0.87" on a filled strip above the box (inside it when
    the box touches the top). Higher scores are drawn last, on top.

    Args:
        image: uint8 ndarray[H, W, 3], RGB.
        result: a detector's output for this image: boxes [N, 4] (x1, y1, x2, y2, pixels of
            this image), optional scores [N] (without them every box is drawn, no score in
            the caption), optional labels [N] in 0..C-1 (without them, proposals: one colour,
            no name), optional masks [N, H, W] (bool or 0/1). Tensors or arrays.
        class_names: the name of each label.
        score_thr: detections below this score are left out.
        line_width: box outline width, pixels.
        mask_alpha: weight of the class colour in masked pixels, 0..1.

    Returns:
        uint8 ndarray[H, W, 3], RGB; ``image`` itself is not changed.

    Raises:
        ValueError / TypeError: naming the argument whose shape, dtype or values are wrong.
    """
    image = _check_image(image)
    if isinstance(class_names, str) or not isinstance(class_names, Sequence):
        raise TypeError(f"class_names must be a sequence of names, got {type(class_names)}")
    if line_width < 1:
        raise ValueError(f"line_width must be >= 1, got {line_width}")
    if not 0.0 <= mask_alpha <= 1.0:
        raise ValueError(f"mask_alpha must be in [0, 1], got {mask_alpha}")
    height, width = image.shape[:2]
    det = _check_result(result, height, width, len(class_names))
    n = len(det["boxes"])
    scores = det.get("scores")
    keep = np.arange(n) if scores is None else np.nonzero(scores >= score_thr)[0]
    if scores is not None:
        keep = keep[np.argsort(scores[keep], kind="stable")]
    labels = det.get("labels")
    colors = [class_color(int(labels[i])) if labels is not None else _PALETTE[0] for i in keep]

    out = image.astype(np.float32)
    if "masks" in det:
        for i, color in zip(keep, colors, strict=True):
            mask = det["masks"][i]
            out[mask] = (1.0 - mask_alpha) * out[mask] + mask_alpha * np.asarray(color)
    canvas = Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for i, color in zip(keep, colors, strict=True):
        # Each corner clamped into the image, then ordered: a box on or past an edge (an
        # untrained model's) still draws as a line along that edge.
        x1, y1, x2, y2 = (int(np.rint(v)) for v in det["boxes"][i])
        x1, x2 = sorted(min(max(x, 0), width - 1) for x in (x1, x2))
        y1, y2 = sorted(min(max(y, 0), height - 1) for y in (y1, y2))
        draw.rectangle((x1, y1, x2, y2), outline=color, width=line_width)
        parts = []
        if labels is not None:
            parts.append(str(class_names[int(labels[i])]))
        if scores is not None:
            parts.append(f"{float(scores[i]):.2f}")
        if not parts:
            continue
        text = " ".join(parts)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tw, th = right - left + 4, bottom - top + 2
        ty = y1 - th if y1 - th >= 0 else y1
        draw.rectangle((x1, ty, x1 + tw, ty + th), fill=color)
        draw.text((x1 + 2 - left, ty + 1 - top), text, fill=_text_color(color), font=font)
    return np.asarray(canvas)


def tile_images(
    images: Sequence[np.ndarray], columns: int | None = None, *, gap: int = 4
) -> np.ndarray:
    """Images side by side in a grid of equal cells (the largest image's size), white between.

    Args:
        images: uint8 ndarrays[H, W, 3] RGB, sizes may differ (each sits top-left in its cell).
        columns: images per row; default all in one row.
        gap: white pixels between cells.

    Returns:
        uint8 ndarray[rows * (Hmax + gap) - gap, columns * (Wmax + gap) - gap, 3].
    """
    if len(images) == 0:
        raise ValueError("images must hold at least one image")
    checked = [_check_image(im, f"images[{i}]") for i, im in enumerate(images)]
    columns = len(checked) if columns is None else columns
    if columns < 1:
        raise ValueError(f"columns must be >= 1, got {columns}")
    if gap < 0:
        raise ValueError(f"gap must be >= 0, got {gap}")
    cell_h = max(im.shape[0] for im in checked)
    cell_w = max(im.shape[1] for im in checked)
    columns = min(columns, len(checked))
    rows = -(-len(checked) // columns)
    grid = np.full(
        (rows * (cell_h + gap) - gap, columns * (cell_w + gap) - gap, 3), 255, dtype=np.uint8
    )
    for i, im in enumerate(checked):
        top, left = (i // columns) * (cell_h + gap), (i % columns) * (cell_w + gap)
        grid[top : top + im.shape[0], left : left + im.shape[1]] = im
    return grid


def save_image(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Writes a uint8 [H, W, 3] RGB array as an image file (format from the suffix, e.g. .png).

    The folder is created if missing. Returns the path written.
    """
    image = _check_image(image)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


def save_detections(
    path: str | os.PathLike,
    image: np.ndarray,
    result: Mapping[str, Any],
    class_names: Sequence[str],
    score_thr: float = 0.3,
) -> Path:
    """:func:`draw_detections` written to ``path`` (a PNG, say); returns the path."""
    return save_image(path, draw_detections(image, result, class_names, score_thr))


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """An image file as a uint8 [H, W, 3] RGB array: det_data.read_image's pixels, the ones
    training and evaluation see.

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ValueError: the file cannot be decoded.
    """
    return read_image(path, torch.uint8).permute(1, 2, 0).numpy()


@torch.no_grad()
def draw_validation(
    model: torch.nn.Module,
    dataset: Any,
    out: str | os.PathLike,
    count: int,
    device: torch.device,
    collate: Any = None,
) -> Path:
    """Draws a model's detections on the first ``count`` images of ``dataset``, 3 per row,
    into one PNG; returns its path.

    Args:
        model: a detector (or its DistributedDataParallel wrapper); left in eval mode.
        dataset: a det-data dataset (``records[i].file``, ``classes``).
        out: the PNG to write.
        count: images drawn.
        device: where the model runs.
        collate: batches one sample (default det_data.collate).
    """
    from det_engine.evaluation.loop import detect

    if collate is None:
        from det_data import collate
    module = model.module if hasattr(model, "module") else model
    module.eval()
    tiles = []
    for index in range(min(count, len(dataset))):
        (result,) = detect(module, *collate([dataset[index]]), device)
        names = dataset.classes
        if "labels" not in result:  # RPN proposals: one class, the best 10 drawn
            result = {
                "boxes": result["boxes"][:10],
                "scores": result["scores"][:10],
                "labels": torch.zeros(min(10, len(result["boxes"])), dtype=torch.int64),
            }
            names = ("proposal",)
        tiles.append(draw_detections(read_rgb(dataset.records[index].file), result, names))
    return save_image(out, tile_images(tiles, columns=3))


__all__ = [
    "class_color",
    "draw_detections",
    "draw_validation",
    "read_rgb",
    "save_detections",
    "save_image",
    "tile_images",
]
