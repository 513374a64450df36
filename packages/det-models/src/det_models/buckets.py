"""Padded size buckets: the few image sizes a detector's CUDA graphs are captured at.

A captured graph serves inputs of one shape. Every image a data config makes (training or
test resize) fits one of a handful of padded sizes, its buckets; padding each batch to its
bucket lets a few graphs serve every batch (det_engine.cuda_graph for training,
det_models.graphed_detector for inference).
"""

from __future__ import annotations

from collections.abc import Sequence

from det_models.config import DataConfig
from det_models.static_batch import NotCapturableError


def size_buckets(
    img_scale: tuple[int, int], size_divisor: int | None = 32, *, keep_ratio: bool = True
) -> list[tuple[int, int]]:
    """The padded (H, W) sizes that hold every image resized to a scale.

    Args:
        img_scale: keeping the ratio, the (long side, short side) limits: a resized image
            is landscape within short x long or portrait within long x short, the two
            buckets; else the exact (w, h), the one bucket.
        size_divisor: the padding multiple, or None.
        keep_ratio: as DataConfig.keep_ratio.
    """
    d = size_divisor or 1
    up = lambda n: -(-int(n) // d) * d  # noqa: E731
    if not keep_ratio:
        return [(up(img_scale[1]), up(img_scale[0]))]
    long, short = up(max(img_scale)), up(min(img_scale))
    return [(short, long)] if long == short else [(short, long), (long, short)]


def data_buckets(data: DataConfig) -> list[tuple[int, int]]:
    """size_buckets of a data config's training images: of its largest training scale
    (multi-scale training draws at most that)."""
    scales = data.train_scales or (data.img_scale,)
    scale = (max(max(s) for s in scales), max(min(s) for s in scales))
    if not data.keep_ratio:
        scale = (max(s[0] for s in scales), max(s[1] for s in scales))
    return size_buckets(scale, data.size_divisor, keep_ratio=data.keep_ratio)


def inference_buckets(data: DataConfig) -> list[tuple[int, int]]:
    """size_buckets of a data config's test-time images (resized to its img_scale, as
    det_models.preprocess_image does)."""
    return size_buckets(data.img_scale, data.size_divisor, keep_ratio=data.keep_ratio)


def bucket_of(height: int, width: int, buckets: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """The smallest bucket (by area) that holds an H x W batch.

    Raises:
        NotCapturableError: no bucket holds it (an image larger than the data config says).
    """
    fitting = [b for b in buckets if b[0] >= height and b[1] >= width]
    if not fitting:
        raise NotCapturableError(
            f"size buckets: a batch of {height} x {width} fits none of {list(buckets)}; give "
            "buckets that hold the largest images"
        )
    return min(fitting, key=lambda b: b[0] * b[1])


__all__ = ["bucket_of", "data_buckets", "inference_buckets", "size_buckets"]
