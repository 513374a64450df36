"""Training steps captured as CUDA graphs, one per size bucket (``train --cuda-graph``).

A CUDA graph replays the kernels of one captured step on the same memory, without Python
and without launching them one by one. A detector's step can be replayed for another batch
when (a) it never waits for the device (det-models' test_host_sync.py), (b) the batch has
the same shapes, (c) the step reads it from the same tensors and (d) nothing that differs
between batches is a Python value baked into a kernel. ``det_models.static_batch`` gives
(b) to (d): images padded to their size bucket (det_models' ``size_buckets`` /
``data_buckets`` of the run's data config), ground truth padded to a power of two with
a valid flag, image sizes as device tensors; det-models' ``test_static_batch.py`` proves on
the CPU that two batches of a bucket make the same operator calls.

``GraphedTrainStep`` keeps a graph per (bucket, batch size, ground-truth count): the first
``warmup`` batches of each run the step eagerly on a side stream (they train: nothing is
thrown away), the next is captured (forward, backward, gradient clipping, the optimizer's
step) and replayed; later batches are copied into the captured batch's tensors and replayed.
The learning rate is a device tensor that the step fills from the optimizer's param group
before each replay (the schedule keeps working); the losses come back as device tensors,
read on the host only at log intervals. Random draws (the samplers') go through the CUDA
generator, whose offsets torch advances on each replay.

What is refused, by name (``NotCapturableError``): a non-CUDA device, DistributedDataParallel
(its bucketed NCCL all-reduce is not captured here), fp16 autocast (its GradScaler), an
optimizer other than SGD, a detector family that the static-batch proof does not cover,
samplers drawing on a CPU generator, the 2019 "mmdet" mask targets (a resize per RoI on the
host), and batches with polygon masks (the train command's loader rasterises them for a
CUDA device), crowd boxes the assigners read, or proposals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from det_engine.distributed import is_distributed
from det_engine.schedule import clip_gradients
from det_models import (  # the buckets are det-models' (inference uses them too)
    NotCapturableError,
    StaticBatch,
    bucket_of,
    capture_graph,
    data_buckets,
    size_buckets,
    static_batch,
)


@dataclass
class _Graph:
    """The state of one bucket: eager steps done, then its graph, batch and outputs."""

    steps: int = 0
    graph: torch.cuda.CUDAGraph | None = None
    batch: StaticBatch | None = None
    losses: dict[str, Tensor] = field(default_factory=dict)
    kept: list[Tensor] = field(default_factory=list)


class GraphedTrainStep:
    """A detector's training step captured per size bucket and replayed (see the module).

    Called as ``step(images, metas, targets) -> losses`` on batches already on the device;
    it runs one full step (forward, backward, clipping, optimizer step) per call with the
    lr each param group holds at the call (set by the schedule), and returns the losses as
    device tensors (copies: later replays do not change them).

    Args:
        model: the detector, on a CUDA device, in train mode (not DDP-wrapped).
        optimizer: a torch.optim.SGD over its parameters; switched to its fused CUDA form
            (``fused=True``), the one that reads a Tensor lr inside a graph.
        buckets: the padded (H, W) sizes (size_buckets of the data config).
        grad_clip: max gradient 2-norm, clipped on the device inside the graph, or None.
        amp: None or "bf16" (autocast inside the graph); "fp16" is refused.
        warmup: eager steps of each bucket before its capture (>= 1).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        buckets: Sequence[tuple[int, int]],
        grad_clip: float | None = None,
        amp: str | None = None,
        warmup: int = 3,
    ) -> None:
        check_capturable(model, optimizer, amp)
        if warmup < 1:
            raise ValueError(f"warmup must be >= 1 (eager steps before a capture), got {warmup}")
        if not buckets:
            raise ValueError("buckets: give at least one padded (H, W) size")
        self.model = model
        self.optimizer = optimizer
        self.buckets = [tuple(b) for b in buckets]
        self.grad_clip = grad_clip
        self.amp = amp
        self.warmup = warmup
        self.device = next(model.parameters()).device
        self._lr = [
            torch.tensor(float(g["lr"]), dtype=torch.float32, device=self.device)
            for g in optimizer.param_groups
        ]
        self._params = [p for p in model.parameters() if p.requires_grad]
        self._drop_ignore = not any(a.ignore_iof_thr > 0 for a in _parts(model, "ignore_iof_thr"))
        self._generators = [
            s.generator for s in _parts(model, "generator") if s.generator is not None
        ]
        self._stream = torch.cuda.Stream(self.device)
        self._pool = torch.cuda.graph_pool_handle()
        self.graphs: dict[tuple, _Graph] = {}

    def __call__(self, images: Tensor, metas: Sequence[dict], targets: Sequence[dict]) -> dict:
        size = bucket_of(images.shape[-2], images.shape[-1], self.buckets)
        batch = static_batch(images, metas, targets, size=size, drop_ignore_boxes=self._drop_ignore)
        for lr, group in zip(self._lr, self.optimizer.param_groups, strict=True):
            lr.fill_(float(group["lr"]))  # a kernel: the schedule's value, no wait
        entry = self.graphs.setdefault(batch.key, _Graph())
        if entry.graph is not None:
            entry.batch.copy_(batch)
            entry.graph.replay()
        elif entry.steps < self.warmup:
            entry.steps += 1
            return self._eager(batch)
        else:
            self._capture(entry, batch)
            entry.graph.replay()
        return {k: v.clone() for k, v in entry.losses.items()}

    @property
    def num_graphs(self) -> int:
        return sum(e.graph is not None for e in self.graphs.values())

    def _body(self, batch: StaticBatch) -> dict[str, Tensor]:
        """The step: the code run eagerly and the code captured are this one function."""
        groups = self.optimizer.param_groups
        hosts = [g["lr"] for g in groups]
        for group, lr in zip(groups, self._lr, strict=True):
            # Again at each step: an optimizer's load_state_dict (a resume) replaces the groups.
            group["lr"], group["foreach"], group["fused"] = lr, False, True
        try:
            self.optimizer.zero_grad(set_to_none=True)
            with torch.autocast(
                "cuda", dtype=torch.bfloat16, enabled=self.amp == "bf16", cache_enabled=False
            ):
                losses = self.model(batch.images, batch.metas(), batch.targets())
            sum(losses.values()).backward()
            if self.grad_clip is not None:
                clip_gradients(self._params, self.grad_clip)
            self.optimizer.step()
        finally:  # the schedule, the logs and the checkpoints see numbers
            for group, lr in zip(groups, hosts, strict=True):
                group["lr"] = lr
        return {k: v.detach() for k, v in losses.items()}

    def _eager(self, batch: StaticBatch) -> dict[str, Tensor]:
        self._stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self._stream):
            losses = self._body(batch)
        torch.cuda.current_stream(self.device).wait_stream(self._stream)
        return losses

    def _capture(self, entry: _Graph, batch: StaticBatch) -> None:
        entry.graph, entry.losses, entry.kept = capture_graph(
            lambda: self._body(batch),
            stream=self._stream,
            pool=self._pool,
            what=f"the training step for batch {batch.key[:4]}",
            generators=self._generators,
        )
        entry.batch = batch


def check_capturable(model: nn.Module, optimizer: torch.optim.Optimizer, amp: str | None) -> None:
    """Raises NotCapturableError naming the first part of a training setup that a
    GraphedTrainStep cannot capture, and why."""
    if is_distributed() or isinstance(model, nn.parallel.DistributedDataParallel):
        raise NotCapturableError(
            "DistributedDataParallel: its gradient all-reduce (NCCL, launched by hooks as "
            "the gradients arrive) is not captured; train on one GPU without it, or without "
            "--cuda-graph"
        )
    params = list(model.parameters())
    if not params or params[0].device.type != "cuda":
        where = params[0].device if params else "no parameters"
        raise NotCapturableError(
            f"device: CUDA graphs need the model on a CUDA device, got {where}"
        )
    if amp == "fp16":
        raise NotCapturableError(
            "amp fp16: the GradScaler (its scale's update and the steps it skips) is not "
            "captured; use amp bf16, or no amp"
        )
    if amp not in (None, "bf16"):
        raise ValueError(f"amp must be None or 'bf16', got {amp!r}")
    if type(optimizer) is not torch.optim.SGD:
        raise NotCapturableError(
            f"optimizer: {type(optimizer).__name__} is not captured; only torch.optim.SGD, "
            "in its fused form (which reads the lr from a device tensor in the graph)"
        )
    if any(g.get("differentiable") or g.get("maximize") for g in optimizer.param_groups):
        raise NotCapturableError("optimizer: a differentiable or maximizing SGD is not fused")
    roi_head = getattr(model, "roi_head", None)
    # Faster / Mask R-CNN: an RPN and one R-CNN stage (a cascade has bbox_heads).
    if not hasattr(model, "rpn") or not hasattr(roi_head, "bbox_head"):
        raise NotCapturableError(
            f"model: {type(model).__name__} is not covered by the proof that every batch of a "
            "bucket makes the same calls (det-models test_static_batch.py: Faster and Mask "
            "R-CNN)"
        )
    for sampler in _parts(model, "generator"):
        if sampler.generator is not None and sampler.generator.device.type != "cuda":
            raise NotCapturableError(
                "sampler: a RandomSampler draws its keys on a CPU generator, which a graph "
                "would replay as constants; give it a CUDA generator or none"
            )
    conventions = getattr(roi_head, "conventions", None)
    has_masks = getattr(roi_head, "mask_head", None) is not None or bool(
        getattr(roi_head, "mask_heads", None)
    )
    if has_masks and getattr(conventions, "mask_targets", None) == "mmdet":
        raise NotCapturableError(
            "mask targets: the 2019 'mmdet' style crops and resizes each RoI's mask to its "
            "own integer size on the host"
        )


def _parts(model: nn.Module, attribute: str) -> list:
    """The parts held by the model's modules that are not modules themselves (assigners:
    "ignore_iof_thr", samplers: "generator") and have the attribute."""
    found = []
    for module in model.modules():
        for value in vars(module).values():
            values = value if isinstance(value, (list, tuple)) else (value,)
            found.extend(
                v
                for v in values
                if not isinstance(v, (nn.Module, Tensor)) and hasattr(v, attribute)
            )
    return found


__all__ = [
    "GraphedTrainStep",
    "NotCapturableError",
    "bucket_of",
    "check_capturable",
    "data_buckets",
    "size_buckets",
]
