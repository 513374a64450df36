"""Inference captured as CUDA graphs, one per size bucket and batch size
(``Detector(..., cuda_graph=True)``).

A detector's inference waits on the host once per batch, for its final detections
(det-models' test_host_sync.py): everything before that read, backbone, neck, the RPN's
padded proposals, the box head's padded NMS and the mask head on the padded detections
(``FasterRCNN.padded_detections``), can be captured once and replayed on later batches,
without Python and without launching its kernels one by one. A replay serves another batch
when (a) the batch has the same shapes, (b) it is read from the same tensors and (c) nothing
that differs between batches is a Python value baked into a kernel. ``inference_batch``
gives all three:

- the images padded (zeros, bottom and right) to their size bucket (``inference_buckets``
  of the row's data config: every test-time image fits one);
- each image's (img h, img w, pad h, pad w) as a device Tensor, which the heads read, as
  the metas' img_size / pad_size, wherever a size enters arithmetic (the RPN's and the box
  head's clipping to the image; the anchors' valid flags are not used at test time);
- every other size the forward is given is the bucket's (img_shape = pad_shape = the
  bucket, scale factor 1): the same numbers for every batch of the bucket, so that a value
  read on the host anywhere is baked in the same for all of them.

det-models' test_graphed_detector.py proves on the CPU, with det_heads.op_trace, that two
batches of a bucket (different true sizes and contents) make the same operator calls, and
that the bucketed path gives the detections of the default path at the same padded size.
What comes after the host read stays eager: the counts, the boxes back to each image's
original pixels, the mask paste (det_heads' compact_detections, with the batch's own metas).

``GraphedDetector`` keeps a graph per (bucket, batch size, dtype, layout, autocast): the
first ``warmup`` batches of each run eagerly on a side stream, the next is captured and
replayed, later ones are copied into the captured batch and replayed. The images of one call
are grouped by bucket (portrait and landscape images go to their own graphs), one host read
per group. Refused by name (``NotCapturableError``): a model not on a CUDA device, a family
other than Faster / Mask R-CNN (cascades, RPN, single-stage, Fast R-CNN), soft-NMS, NMS in
original pixels (the 2019 conventions: it divides by each image's scale factor, a host
number), RoI pooling other than RoIAlign (it selects each level's RoIs by count).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from det_heads import RoIExtractor, StandardRoIHead
from det_heads.inputs import image_size, padded_size
from det_heads.roi.standard_roi_head import compact_detections
from det_models.buckets import bucket_of, inference_buckets
from det_models.capture import capture_graph
from det_models.config import DataConfig
from det_models.detectors import FasterRCNN
from det_models.inference import is_channels_last
from det_models.static_batch import NotCapturableError


@dataclass
class InferenceBatch:
    """A test-time batch at its bucket's shapes (see the module's docstring).

    Attributes:
        images: Tensor[B, 3, H, W] padded to the bucket's H x W (in the model's layout).
        sizes: float32 Tensor[B, 4]: each image's (img h, img w, pad h, pad w), pixels.
        host_metas: the batch's metas as given (what the detections are finished with).
    """

    images: Tensor
    sizes: Tensor
    host_metas: list[dict]

    @property
    def key(self) -> tuple:
        """What a captured graph is specific to: (B, H, W, dtype, channels_last)."""
        b, _, h, w = self.images.shape
        channels_last = self.images.is_contiguous(memory_format=torch.channels_last)
        return (b, h, w, self.images.dtype, channels_last)

    def metas(self) -> list[dict]:
        """The metas the captured forward takes: the bucket's size as every host number
        (the same for each batch of the bucket), each image's sizes as views of ``sizes``."""
        h, w = self.images.shape[-2:]
        shape = (h, w, 3)
        return [
            {
                "img_shape": shape,
                "pad_shape": shape,
                "ori_shape": shape,
                "scale_factor": 1.0,
                "flip": False,
                "img_size": self.sizes[i, :2],
                "pad_size": self.sizes[i, 2:],
            }
            for i in range(self.images.shape[0])
        ]

    def copy_(self, other: InferenceBatch) -> InferenceBatch:
        """Copies other's tensors into this batch's (the same key) without waiting for the
        device; the host metas are other's."""
        if other.key != self.key:
            raise ValueError(f"InferenceBatch.copy_: key {other.key} differs from {self.key}")
        self.images.copy_(other.images, non_blocking=True)
        self.sizes.copy_(other.sizes, non_blocking=True)
        self.host_metas = list(other.host_metas)
        return self


def inference_batch(
    images: Tensor, metas: Sequence[dict], size: tuple[int, int], *, channels_last: bool = False
) -> InferenceBatch:
    """A preprocessed batch (det_models.preprocess) made an InferenceBatch of bucket size.

    Args:
        images: Tensor[B, 3, h, w], normalised, zeros past each image's pad_shape; h or w
            may exceed the bucket's where other images made the batch larger (a mixed batch
            grouped by bucket_groups), as long as each image's pad_shape fits.
        metas: per image dict(img_shape, pad_shape, scale_factor, ori_shape ...).
        size: the bucket (H, W).
        channels_last: the padded images in channels_last (a model prepared for inference
            takes them so: det_models.inference.to_model_layout).

    Raises:
        ValueError: an image's pad_shape does not fit the bucket.
    """
    height, width = size
    for i, meta in enumerate(metas):
        h, w = padded_size(meta)
        if h > height or w > width:
            raise ValueError(
                f"inference_batch: metas[{i}] pad_shape {(h, w)} does not fit the bucket {size}"
            )
    crop = images[..., : min(height, images.shape[-2]), : min(width, images.shape[-1])]
    padded = F.pad(crop, (0, width - crop.shape[-1], 0, height - crop.shape[-2]))
    layout = torch.channels_last if channels_last else torch.contiguous_format
    padded = padded.contiguous(memory_format=layout)
    sizes = torch.tensor(
        [[*image_size(m), *padded_size(m)] for m in metas], dtype=torch.float32
    ).to(images.device, non_blocking=True)
    return InferenceBatch(padded, sizes, list(metas))


def bucket_groups(
    metas: Sequence[dict], buckets: Sequence[tuple[int, int]]
) -> dict[tuple[int, int], list[int]]:
    """The images of a batch by bucket: {bucket: indices}, each image in the smallest
    bucket holding its pad_shape, buckets in the order their first image comes."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, meta in enumerate(metas):
        groups.setdefault(bucket_of(*padded_size(meta), buckets), []).append(i)
    return groups


def padded_detections(model: nn.Module, batch: InferenceBatch) -> tuple[dict, Tensor | None]:
    """What a graph captures: the model's eval forward on the batch up to its one host read
    (FasterRCNN.padded_detections)."""
    return model.padded_detections(batch.images, batch.metas())


def finish(model: nn.Module, dets: dict, probs: Tensor | None, metas: Sequence[dict]) -> list:
    """The rest, on the host's word: each image's valid detections in its original pixels,
    masks pasted (compact_detections with the batch's own metas; one host read)."""
    return compact_detections(dets, metas, probs, model.roi_head.conventions.mask_paste)


def check_inference_capturable(model: nn.Module) -> None:
    """Raises NotCapturableError naming the first part of a detector whose inference a
    GraphedDetector cannot capture, and why."""
    roi_head = getattr(model, "roi_head", None)
    if not isinstance(model, FasterRCNN) or type(roi_head) is not StandardRoIHead:
        raise NotCapturableError(
            f"model: {type(model).__name__} is not covered by the proof that every batch of a "
            "bucket makes the same calls (det-models test_graphed_detector.py: Faster and "
            "Mask R-CNN, an RPN and one R-CNN stage)"
        )
    if roi_head.nms.soft:
        raise NotCapturableError(
            "nms: soft-NMS rescores a per-image number of candidates (multiclass_nms), not the "
            "padded NMS a graph holds; use hard NMS"
        )
    if roi_head.conventions.nms_space == "original":
        raise NotCapturableError(
            "conventions.nms_space 'original' (the 2019 code): the box head's NMS runs on boxes "
            "divided by each image's scale factor, a host number that a graph would bake in"
        )
    for name, module in model.named_modules():
        if isinstance(module, RoIExtractor) and module.pool != "align":
            raise NotCapturableError(
                f"{name}: RoI pooling {module.pool!r} selects each level's RoIs by count (a "
                "host read); only RoIAlign pools every level in one call"
            )
    param = next(model.parameters(), None)
    if param is None or param.device.type != "cuda":
        where = "no parameters" if param is None else param.device
        raise NotCapturableError(
            f"device: CUDA graphs need the model on a CUDA device, got {where}"
        )


@dataclass
class _Graph:
    """The state of one key: eager runs done, then its graph, batch and outputs."""

    runs: int = 0
    graph: torch.cuda.CUDAGraph | None = None
    batch: InferenceBatch | None = None
    outputs: tuple = ()
    kept: list[Tensor] = field(default_factory=list)


class GraphedDetector:
    """A detector's inference captured per size bucket and batch size (see the module).

    Called as ``graphed(images, metas) -> detections`` on a preprocessed batch on the
    model's device (det_models.preprocess), as the eval model itself is: per image
    dict(boxes, scores, labels[, masks]) in original-image pixels, on the device.

    Args:
        model: a Faster or Mask R-CNN on a CUDA device (put in eval mode; prepare it for
            inference, det_models.prepare_for_inference, before).
        data_config: the row's DataConfig; its test-time buckets (inference_buckets).
        buckets: other padded (H, W) sizes instead.
        warmup: eager runs of each key before its capture (>= 1: caches fill, cuDNN picks).

    Raises:
        NotCapturableError: what cannot be captured (check_inference_capturable).
    """

    def __init__(
        self,
        model: nn.Module,
        data_config: DataConfig | None = None,
        *,
        buckets: Sequence[tuple[int, int]] | None = None,
        warmup: int = 1,
    ) -> None:
        check_inference_capturable(model)
        if warmup < 1:
            raise ValueError(f"warmup must be >= 1 (eager runs before a capture), got {warmup}")
        if buckets is None:
            if data_config is None:
                raise ValueError("GraphedDetector: give data_config or buckets")
            buckets = inference_buckets(data_config)
        self.model = model.eval()
        self.buckets = [tuple(b) for b in buckets]
        self.warmup = warmup
        self.device = next(model.parameters()).device
        self._stream = torch.cuda.Stream(self.device)
        self._pool = torch.cuda.graph_pool_handle()
        self.graphs: dict[tuple, _Graph] = {}

    @property
    def num_graphs(self) -> int:
        return sum(e.graph is not None for e in self.graphs.values())

    def __call__(self, images: Tensor, metas: Sequence[dict]) -> list[dict[str, Tensor]]:
        channels_last = is_channels_last(self.model)
        results: list = [None] * len(metas)
        with torch.inference_mode():
            for size, index in bucket_groups(metas, self.buckets).items():
                group = images if len(index) == len(metas) else images[index]
                batch = inference_batch(
                    group, [metas[i] for i in index], size, channels_last=channels_last
                )
                for i, det in zip(index, self._run(batch), strict=True):
                    results[i] = det
        return results

    def _run(self, batch: InferenceBatch) -> list[dict[str, Tensor]]:
        autocast = torch.is_autocast_enabled("cuda")
        key = (*batch.key, torch.get_autocast_dtype("cuda") if autocast else None)
        entry = self.graphs.setdefault(key, _Graph())
        if entry.graph is None and entry.runs < self.warmup:
            entry.runs += 1
            dets, probs = self._eager(batch)
            return finish(self.model, dets, probs, batch.host_metas)
        if entry.graph is None:
            self._capture(entry, batch)
        else:
            entry.batch.copy_(batch)
        entry.graph.replay()
        # Copies: the next replay overwrites the graph's outputs, which the detections view.
        dets, probs = entry.outputs
        dets = {k: v.clone() for k, v in dets.items()}
        probs = None if probs is None else probs.clone()
        return finish(self.model, dets, probs, batch.host_metas)

    def _eager(self, batch: InferenceBatch) -> tuple[dict, Tensor | None]:
        current = torch.cuda.current_stream(self.device)
        self._stream.wait_stream(current)
        with torch.cuda.stream(self._stream):
            outputs = padded_detections(self.model, batch)
        current.wait_stream(self._stream)
        return outputs

    def _capture(self, entry: _Graph, batch: InferenceBatch) -> None:
        entry.graph, entry.outputs, entry.kept = capture_graph(
            lambda: padded_detections(self.model, batch),
            stream=self._stream,
            pool=self._pool,
            what=f"the inference for batch {batch.key[:3]}",
        )
        entry.batch = batch


__all__ = [
    "GraphedDetector",
    "InferenceBatch",
    "bucket_groups",
    "check_inference_capturable",
    "finish",
    "inference_batch",
    "padded_detections",
]
