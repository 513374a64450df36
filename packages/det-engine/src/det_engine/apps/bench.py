"""Speed and memory of a zoo detector, optionally side by side with torchvision's.

    python -m det_engine.bench infer faster_rcnn r50 1x --threads 2 --compare torchvision
    python -m det_engine.bench train faster_rcnn r50 1x --threads 2 --compare torchvision

`infer` times `Detector.predict` on one uint8 image (the row's test-time resize, normalise
and pad, the model, boxes back to the original image, masks pasted): images per second.
`train` times one SGD step (preprocess, forward, backward, update): seconds per iteration.
Both report the peak memory of the timed iterations: torch.cuda.max_memory_allocated on a
GPU; on the CPU the peak resident set size (VmHWM, reset just before the timed iterations).
With --compare each model is measured in fresh processes that run only that model, so that
one model's weights, or memory it freed and the allocator kept, are not charged to the other;
the median of --memory-runs such processes per model is reported.

The result is printed as a row of the 2019 zoo table next to the zoo's reference row (whose
figures were measured on V100 GPUs with 16 images per training iteration).

`--compare torchvision` (Faster / Mask R-CNN and RetinaNet R-50-FPN) builds torchvision's
model, copies its weights into ours (det_models.convert.from_torchvision) and times both on
the same inputs, alternating rounds, medians. Random weights detect nothing above a score
threshold, so the classifiers' biases of torchvision's model are first spread (the same
values then reach ours) so that some classes score above the threshold and the
post-processing does real work; each side's number of detections is reported. For training,
torchvision's model is built from its parts as its ImageNet-initialised configuration is
(FrozenBatchNorm2d, stem and first stage frozen), which is the configuration our zoo rows
train with.

Precision is the same on both sides and printed with the table: ``--amp bf16|fp16`` runs
both forward passes under torch.autocast (fp16 training: a GradScaler each, CUDA only), and
on a GPU ``--tf32 on|off`` sets TF32 for matmuls and cuDNN convolutions for both (default:
torch's, matmuls off and convolutions on). Training updates with SGD on both sides: ours
torch's fused SGD (det_engine.schedule.build_sgd, as the Trainer), torchvision's with torch's
default implementation (for-each on a GPU), as its reference scripts build it.

`--cuda-graph` (infer, CUDA) times ours with its forward captured as CUDA graphs per size
bucket (det_models.GraphedDetector; captured in the warm-up iterations).

`--runtime onnxruntime` (infer, CPU) also times our model exported to ONNX
(det_engine.export, any image size) in onnxruntime with the same threads, through
det_engine.deploy.OnnxDetector: the same preprocessing, the graph, boxes (and masks) back to
the original image. It needs the ``det-engine[export]`` extra.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from det_engine.optional_deps import install_command, missing

MODES = ("train", "infer")
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
DATA = ("random", "shapes")
TORCHVISION_NAMES = {
    "faster_rcnn": "fasterrcnn_resnet50_fpn",
    "mask_rcnn": "maskrcnn_resnet50_fpn",
    "retinanet": "retinanet_resnet50_fpn",
}
# Work that still differs with equal settings. Ours is built by torchvision_config, with
# torchvision's box conventions, so both compute the same detections; only the form of Mask
# R-CNN's output differs.
DIFFERENCES = {
    "faster_rcnn": "none (the same detections)",
    "mask_rcnn": "masks: ours binary uint8 pasted in a window around each box, torchvision "
    "float probabilities over the whole image",
    "retinanet": "none (the same detections)",
}
# The settings a --compare run uses unless given: the zoo's test scale of a COCO image.
COMPARE_SIZE = (800, 1216)
_BATCH = {"infer": 1, "train": 2}
# The 2019 zoo trained R-CNNs with SGD lr 0.02 for 16 images; a benchmark only needs the
# same update on both sides, and a small rate keeps random weights finite.
_LR = 1e-3


@dataclass
class Sample:
    """One benchmark image: uint8 Tensor[3, H, W] RGB and its target (input pixels).

    target: boxes float[G, 4] (x1, y1, x2, y2), labels int64[G] in 0..C-1, masks uint8[G, H, W].
    """

    image: Tensor
    target: dict[str, Tensor]


@dataclass
class Measure:
    """What one side measured."""

    name: str
    seconds: list[float]
    detections: int | None = None
    peak_memory_mb: float | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m det_engine.bench",
        description="Train s/iter or inference fps and peak memory of a zoo detector.",
    )
    parser.add_argument("mode", choices=MODES)
    parser.add_argument("model", help="zoo model, e.g. faster_rcnn")
    parser.add_argument("backbone", help="zoo backbone, e.g. r50")
    parser.add_argument("schedule", help="zoo schedule, e.g. 1x")
    parser.add_argument("--variant", default=None)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--iters", type=int, default=5, help="timed iterations (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed iterations first")
    parser.add_argument(
        "--img-size", type=int, nargs=2, metavar=("H", "W"), default=None,
        help="input size; default 800 1216 (the zoo's test scale of a 4:3 COCO image)",
    )  # fmt: skip
    parser.add_argument(
        "--img-scale", type=int, nargs=2, metavar=("LONG", "SHORT"), default=None,
        help="test-time resize bound instead of the row's (1333 800); both sides use it",
    )  # fmt: skip
    parser.add_argument(
        "--batch-size", type=int, default=None, help="default 1 for infer, 2 for train"
    )
    parser.add_argument("--compare", choices=("torchvision",), default=None)
    parser.add_argument(
        "--runtime",
        choices=("onnxruntime",),
        default=None,
        help="infer on the CPU: also time our model exported to ONNX, in onnxruntime",
    )
    parser.add_argument("--data", choices=DATA, default="random")
    parser.add_argument("--threads", type=int, default=None, help="torch and det_ops threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-memory", action="store_true", help="skip the peak memory measurement")
    parser.add_argument(
        "--memory-runs",
        type=int,
        default=3,
        help="with --compare: fresh processes per side whose peak memory is the median "
        "(on the CPU one run's peak RSS varies by about 50 MB)",
    )
    parser.add_argument("--no-fast", action="store_true", help="infer without Detector's fast path")
    parser.add_argument(
        "--amp", choices=("off", *AMP_DTYPES), default="off",
        help="both sides' forward under torch.autocast with this dtype (fp16: CUDA only)",
    )  # fmt: skip
    parser.add_argument(
        "--layout", choices=("channels_last", "contiguous"), default="channels_last",
        help="our model's weights and activations: channels_last (the default, what train "
        "and Detector use) or contiguous (NCHW), for an A/B of the layout on a device",
    )  # fmt: skip
    parser.add_argument(
        "--profile", type=int, default=0, metavar="STEPS",
        help="after the timings, profile STEPS more steps of each side: kernels (CPU: "
        "operators) per step, the busiest ones, and the device's idle share",
    )  # fmt: skip
    parser.add_argument(
        "--tf32", choices=("default", "on", "off"), default="default",
        help="CUDA: TF32 in matmuls and cuDNN convolutions, both sides (default: torch's)",
    )  # fmt: skip
    parser.add_argument(
        "--cuda-graph", action="store_true",
        help="infer on CUDA: our model's forward as CUDA graphs per size bucket "
        "(Detector(..., cuda_graph=True)); the first warm-up iterations capture them",
    )  # fmt: skip
    # Internal: run one side in this (fresh) process and print its peak memory as JSON.
    parser.add_argument(
        "--memory-of", choices=("ours", "torchvision", "onnxruntime"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.iters < 1 or args.warmup < 0 or args.memory_runs < 1 or args.profile < 0:
        parser.error("--iters and --memory-runs must be >= 1, --warmup and --profile >= 0")
    if args.compare and args.model not in TORCHVISION_NAMES:
        parser.error(
            f"--compare torchvision needs model one of {', '.join(TORCHVISION_NAMES)}; "
            f"got {args.model!r}"
        )
    if args.compare and (args.backbone, args.variant) != ("r50", None):
        parser.error("--compare torchvision needs backbone r50 and no variant")
    if args.runtime and (args.mode, args.device) != ("infer", "cpu"):
        parser.error("--runtime onnxruntime times inference on the CPU: use infer --device cpu")
    if args.runtime and args.amp != "off":
        parser.error("--runtime onnxruntime runs the exported model in fp32: use --amp off")
    if args.runtime:
        absent = missing("onnx", "onnxscript", "onnxruntime")
        if absent:  # before any model is built and timed
            needs = " and ".join(absent)
            parser.error(f"--runtime onnxruntime needs {needs}: {install_command(absent)}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    if args.amp == "fp16" and args.device != "cuda":
        parser.error("--amp fp16 needs --device cuda (bf16 runs on the CPU)")
    if args.cuda_graph and (args.mode, args.device) != ("infer", "cuda"):
        parser.error("--cuda-graph times captured inference: use infer --device cuda")
    if args.tf32 != "default" and args.device != "cuda":
        parser.error("--tf32 sets a CUDA setting: use it with --device cuda")
    args.img_size = tuple(args.img_size or COMPARE_SIZE)
    args.batch_size = args.batch_size or _BATCH[args.mode]
    return args


# ----------------------------------------------------------------------------- inputs


def make_samples(
    kind: str, count: int, size: tuple[int, int], num_classes: int, seed: int
) -> list[Sample]:
    """count images of size (H, W) with a few objects each.

    "random": noise images with 3..8 random boxes whose masks fill the box; "shapes": the
    first images of det_data's shapes set, resized to size, with their boxes and masks.
    """
    if kind == "shapes":
        return _shapes_samples(count, size, num_classes)
    gen = torch.Generator().manual_seed(seed)
    h, w = size
    samples = []
    for _ in range(count):
        image = torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=gen)
        n = int(torch.randint(3, 9, (1,), generator=gen))
        xy = torch.rand(n, 2, generator=gen) * torch.tensor([w * 0.7, h * 0.7])
        wh = (0.05 + 0.25 * torch.rand(n, 2, generator=gen)) * torch.tensor([w, h])
        boxes = torch.cat([xy, (xy + wh).clamp(max=torch.tensor([w - 1.0, h - 1.0]))], 1)
        masks = torch.zeros(n, h, w, dtype=torch.uint8)
        for i, (x1, y1, x2, y2) in enumerate(boxes.round().long().tolist()):
            masks[i, y1:y2, x1:x2] = 1
        labels = torch.randint(0, num_classes, (n,), generator=gen)
        samples.append(Sample(image, {"boxes": boxes, "labels": labels, "masks": masks}))
    return samples


def _shapes_samples(count: int, size: tuple[int, int], num_classes: int) -> list[Sample]:
    import torch.nn.functional as F

    from det_data import shapes

    data = shapes.dataset("val", train=False)
    h, w = size
    samples = []
    for index in range(count):
        image, _, target = data[index % len(data)]
        ih, iw = image.shape[-2:]
        image = F.interpolate(image[None], size=(h, w), mode="bilinear", align_corners=False)
        scale = torch.tensor([w / iw, h / ih, w / iw, h / ih])
        boxes = target["boxes"].float() * scale
        masks = torch.zeros(boxes.shape[0], h, w, dtype=torch.uint8)
        for i, (x1, y1, x2, y2) in enumerate(boxes.round().long().tolist()):
            masks[i, y1:y2, x1:x2] = 1
        labels = target["labels"] % num_classes
        sample_image = image[0].round().clamp(0, 255).to(torch.uint8)
        samples.append(Sample(sample_image, {"boxes": boxes, "labels": labels, "masks": masks}))
    return samples


# ----------------------------------------------------------------------------- models


def torchvision_model(
    model: str, mode: str, seed: int, img_scale: tuple[int, int] | None = None
) -> nn.Module:
    """torchvision's R-50-FPN model with the test settings of ours and spread class biases."""
    from torchvision.models import detection
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
    from torchvision.models.resnet import resnet50
    from torchvision.ops import misc

    torch.manual_seed(seed)
    name = TORCHVISION_NAMES[model]
    settings: dict[str, Any] = {"weights": None, "weights_backbone": None}
    if model == "retinanet":
        settings.update(score_thresh=0.05, nms_thresh=0.5, detections_per_img=100)
        settings.update(topk_candidates=1000)
    else:
        settings.update(box_score_thresh=0.05, box_nms_thresh=0.5, box_detections_per_img=100)
        settings.update(rpn_pre_nms_top_n_test=1000, rpn_post_nms_top_n_test=1000)
        settings.update(rpn_pre_nms_top_n_train=2000, rpn_post_nms_top_n_train=2000)
    if mode == "train":
        # What torchvision builds for ImageNet-initialised training: frozen BN, stem and
        # layer1 frozen, without downloading weights.
        resnet = resnet50(norm_layer=misc.FrozenBatchNorm2d)
        if model == "retinanet":
            from torchvision.ops.feature_pyramid_network import LastLevelP6P7

            backbone = _resnet_fpn_extractor(
                resnet, 3, returned_layers=[2, 3, 4], extra_blocks=LastLevelP6P7(256, 256)
            )
        else:
            backbone = _resnet_fpn_extractor(resnet, 3)
        del settings["weights"], settings["weights_backbone"]
        cls = {"faster_rcnn": detection.FasterRCNN, "mask_rcnn": detection.MaskRCNN}
        cls["retinanet"] = detection.RetinaNet
        net = cls[model](backbone, num_classes=91, **settings)
    else:
        net = getattr(detection, name)(**settings)
    spread_class_biases(net, model, seed)
    if img_scale is not None:
        net.transform.min_size = (min(img_scale),)
        net.transform.max_size = max(img_scale)
    return net


def spread_class_biases(net: nn.Module, model: str, seed: int) -> None:
    """Random class biases, so that random weights still give detections above 0.05.

    R-CNN: softmax biases N(0, 3): a few classes take most of each RoI's probability.
    RetinaNet: sigmoid biases N(log(0.01 / 0.99), 1): about 5 % of (anchor, class) pairs
    score above 0.05.
    """
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        if model == "retinanet":
            bias = net.head.classification_head.cls_logits.bias
            bias.copy_(-4.595 + torch.randn(bias.shape, generator=gen))
        else:
            bias = net.roi_heads.box_predictor.cls_score.bias
            bias.copy_(3.0 * torch.randn(bias.shape, generator=gen))


def our_model_from(tv_model: nn.Module, model: str) -> nn.Module:
    """Our model with torchvision's weights (det_models.convert.from_torchvision)."""
    from det_models import build_model, from_torchvision, replace_path, torchvision_config

    name = TORCHVISION_NAMES[model]
    config = torchvision_config(name)
    if model == "retinanet":
        # The bench's test settings on both sides: 100 detections (torchvision's default 300).
        config = replace_path(config, "dense.nms.max_per_img", 100)
    ours = build_model(config)
    state = from_torchvision(tv_model.state_dict(), name).state_dict
    ours.load_state_dict(state, strict=True)
    return ours


# ----------------------------------------------------------------------------- steps


class Side:
    """One model under test: a step function over a batch of samples."""

    def __init__(self, name: str, step: Callable[[list[Sample]], int | None]) -> None:
        self.name = name
        self.step = step


def _autocast(device: torch.device, amp: str):
    return torch.autocast(device.type, dtype=AMP_DTYPES.get(amp), enabled=amp != "off")


def _update(loss: Tensor, optimizer: torch.optim.Optimizer, scaler) -> None:
    """One SGD update from ``loss`` (through the fp16 GradScaler when there is one)."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        optimizer.step()
        return
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


def ours_side(
    net: nn.Module,
    mode: str,
    device: torch.device,
    data_config,
    fast: bool = True,
    amp: str = "off",
    channels_last: bool = True,
    cuda_graph: bool = False,
) -> Side:
    from det_engine.schedule import build_sgd
    from det_models import Detector, preprocess

    layout = torch.channels_last if channels_last else torch.contiguous_format
    if mode == "infer":
        detector = Detector(net.to(device), data_config, fast=fast, cuda_graph=cuda_graph)
        if not channels_last:  # the fast path's folded model in NCHW (inputs follow it)
            detector.model.to(memory_format=layout)

        def infer(batch: list[Sample]) -> int:
            with _autocast(device, amp):
                out = detector.predict([s.image for s in batch])
            return sum(int(r["scores"].numel()) for r in out)

        return Side("ours", infer)
    # Training runs channels_last (NHWC activations forward and backward) unless asked: the
    # layout the conv kernels are fastest in on the CPU; frozen BN is folded per call by the
    # backbone itself.
    net = net.to(device, memory_format=layout).train()
    optimizer = build_sgd(net, _LR)
    scaler = torch.amp.GradScaler(device.type) if amp == "fp16" else None

    def train(batch: list[Sample]) -> None:
        images, metas = preprocess([s.image for s in batch], data_config, device)
        targets = [{k: v.to(device) for k, v in s.target.items()} for s in batch]
        with _autocast(device, amp):
            losses = net(images, metas, targets)
        _update(sum(losses.values()), optimizer, scaler)
        return None

    return Side("ours", train)


def torchvision_side(net: nn.Module, mode: str, device: torch.device, amp: str = "off") -> Side:
    net = net.to(device)
    if mode == "infer":
        net.eval()

        def infer(batch: list[Sample]) -> int:
            with torch.inference_mode(), _autocast(device, amp):
                out = net([s.image.to(device).float() / 255 for s in batch])
            return sum(int(r["scores"].numel()) for r in out)

        return Side("torchvision", infer)
    net.train()
    optimizer = torch.optim.SGD(
        [p for p in net.parameters() if p.requires_grad], lr=_LR, momentum=0.9, weight_decay=1e-4
    )
    scaler = torch.amp.GradScaler(device.type) if amp == "fp16" else None

    def train(batch: list[Sample]) -> None:
        images = [s.image.to(device).float() / 255 for s in batch]
        targets = []
        for s in batch:
            t = {k: v.to(device) for k, v in s.target.items()}
            t["labels"] = t["labels"] + 1  # torchvision's index 0 is the background
            targets.append(t)
        with _autocast(device, amp):
            losses = net(images, targets)
        _update(sum(losses.values()), optimizer, scaler)
        return None

    return Side("torchvision", train)


def onnxruntime_side(net: nn.Module, data_config, threads: int | None) -> Side:
    """Our model exported to ONNX (any image size) and run in onnxruntime on the CPU, with
    the row's preprocessing and the boxes (and masks) moved back to the original image."""
    from det_engine.onnx_detector import OnnxDetector
    from det_engine.onnx_export import default_input_size, deploy_metadata, write_onnx
    from det_models import ExportableDetector, export_detector

    net = net.eval()
    example = torch.zeros(1, 3, *default_input_size(data_config))
    program = export_detector(net, example, dynamic=True)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.onnx")
        metadata = deploy_metadata(net, data_config, None)
        write_onnx(program, path, ExportableDetector(net).output_names, metadata)
        detector = OnnxDetector(path, threads=threads)  # the session holds the model

    def infer(batch: list[Sample]) -> int:
        return sum(int(detector(s.image)["scores"].size) for s in batch)

    return Side("onnxruntime", infer)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_sides(
    sides: Sequence[Side], batch: list[Sample], iters: int, warmup: int, device: torch.device
) -> list[Measure]:
    """Alternating rounds: each round runs every side once; medians are compared."""
    measures = [Measure(s.name, []) for s in sides]
    for _ in range(warmup):
        for side in sides:
            side.step(batch)
    for _ in range(iters):
        for side, measure in zip(sides, measures, strict=True):
            _sync(device)
            start = time.perf_counter()
            count = side.step(batch)
            _sync(device)
            measure.seconds.append(time.perf_counter() - start)
            measure.detections = count
    return measures


# ----------------------------------------------------------------------------- profile


def _busy_microseconds(intervals: list[tuple[float, float]]) -> float:
    """The length of the union of (start, end) intervals."""
    busy, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            busy += end - max(start, reach)
            reach = end
    return busy


def profile_summary(
    side: Side, batch: list[Sample], device: torch.device, steps: int, top: int = 8
) -> str:
    """What ``steps`` steps of one side run, from torch.profiler: on a GPU its kernels per
    step, the share of the steps' span in which no kernel runs (the device waiting for the
    host) and the kernels taking the most time; on the CPU the same for the operators
    called from Python (the top-level ``aten::`` calls) and their CPU time.
    """
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    gpu = device.type == "cuda"
    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if gpu else [])]
    with profile(activities=activities) as prof:
        for _ in range(steps):
            side.step(batch)
        _sync(device)
    if gpu:
        work = [e for e in prof.events() if e.device_type == DeviceType.CUDA]
        what = "kernels"
    else:
        work = [
            e
            for e in prof.events()
            if e.name.startswith("aten::")
            and not (e.cpu_parent is not None and e.cpu_parent.name.startswith("aten::"))
        ]
        what = "operators"
    spans = [(e.time_range.start, e.time_range.end) for e in work]
    span = max(end for _, end in spans) - min(start for start, _ in spans) if spans else 0.0
    idle = 1 - _busy_microseconds(spans) / span if span > 0 else 0.0
    totals: dict[str, list[float]] = {}
    for e in work:
        entry = totals.setdefault(e.name, [0, 0.0])
        entry[0] += 1
        entry[1] += e.time_range.elapsed_us()
    lines = [
        f"{side.name}: {len(work) / steps:.0f} {what} per step, {span / steps / 1e3:.2f} ms "
        f"from the first to the last per step, none running {idle:.0%} of it",
        f"| {what[:-1]} | calls per step | ms per step |",
        "|---|---|---|",
    ]
    busiest = sorted(totals.items(), key=lambda item: -item[1][1])[:top]
    for name, (calls, micros) in busiest:
        short = name if len(name) <= 70 else name[:67] + "..."
        lines.append(f"| {short} | {calls / steps:.1f} | {micros / steps / 1e3:.3f} |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- memory


def _rss_status(field: str) -> float | None:
    """A field of /proc/self/status in MB (Linux), e.g. VmHWM (peak RSS) or VmRSS."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def reset_peak_memory(device: torch.device) -> bool:
    """Starts a new peak: CUDA's allocator statistics, or the process's RSS high-water mark."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return True
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def peak_memory_mb(device: torch.device) -> float | None:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return _rss_status("VmHWM")


def memory_in_subprocess(argv: Sequence[str], side: str) -> float | None:
    """Peak memory of one side run alone in a fresh interpreter (MB), or None."""
    cmd = [sys.executable, "-m", "det_engine.bench", *argv, "--memory-of", side]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line).get("peak_memory_mb")
    sys.stderr.write(f"bench: memory run of {side} failed:\n{proc.stderr[-2000:]}\n")
    return None


# ----------------------------------------------------------------------------- table


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(args: argparse.Namespace, measures: Sequence[Measure], device_text: str) -> str:
    """The zoo's reference row and one measured row per side, in the zoo table's columns."""
    from det_models import zoo

    ref_row = zoo.entry(args.model, args.backbone, args.schedule, args.variant)
    ref = ref_row.reference
    header = (
        "| source | model | backbone | schedule | variant | mem (GB) | train (s/iter) "
        "| inf (fps) | box AP | mask AP | AR1000 | detections |"
    )
    lines = [header, _separator(header)]
    key = [args.model, args.backbone, args.schedule, args.variant or "-"]
    lines.append(
        "| "
        + " | ".join(
            [
                "zoo 2019 (V100, 16 img/iter)",
                *key,
                _fmt(ref.memory_gb, 1),
                _fmt(ref.train_s_per_iter, 3),
                _fmt(ref.inference_fps, 1),
                _fmt(ref.box_ap, 1),
                _fmt(ref.mask_ap, 1),
                _fmt(ref.ar1000, 1),
                "-",
            ]
        )
        + " |"
    )
    for m in measures:
        mem_gb = None if m.peak_memory_mb is None else m.peak_memory_mb / 1024
        train = m.median if args.mode == "train" else None
        fps = args.batch_size / m.median if args.mode == "infer" else None
        name = m.name if (m.name, args.layout) != ("ours", "contiguous") else "ours NCHW"
        name += " CUDA graph" if (m.name, args.cuda_graph) == ("ours", True) else ""
        source = f"{name} ({device_text}, {args.img_size[0]}x{args.img_size[1]}, "
        source += f"batch {args.batch_size})"
        cells = [source, *key, _fmt(mem_gb, 2), _fmt(train, 3), _fmt(fps, 3), "-", "-", "-"]
        cells.append("-" if m.detections is None else str(m.detections))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _separator(header: str) -> str:
    return "|" + "---|" * (header.count("|") - 1)


def device_description(device: torch.device, amp: str = "off") -> str:
    """The device and the precision both sides ran in, as the table states them."""
    precision = "fp32" if amp == "off" else f"{amp} autocast"
    if device.type == "cuda":
        tf32 = (
            f"TF32 matmul {'on' if torch.backends.cuda.matmul.allow_tf32 else 'off'}, "
            f"conv {'on' if torch.backends.cudnn.allow_tf32 else 'off'}"
        )
        return f"{torch.cuda.get_device_name(device)}, {precision}, {tf32}"
    return f"cpu, {torch.get_num_threads()} threads, {precision}"


def set_tf32(choice: str) -> None:
    """--tf32: "on" / "off" for CUDA matmuls and cuDNN convolutions; "default" leaves torch's."""
    if choice != "default":
        torch.backends.cuda.matmul.allow_tf32 = choice == "on"
        torch.backends.cudnn.allow_tf32 = choice == "on"


# ----------------------------------------------------------------------------- main


def build_sides(args: argparse.Namespace, device: torch.device, only: str | None = None):
    """The sides to run (only one of them for a memory run) and the samples."""
    from det_engine.data import data_config_for, data_source
    from det_models import zoo

    # The row's test-time data config (det_engine.data), which Detector.predict applies.
    row_data = zoo.get(args.model, args.backbone, args.schedule, args.variant).data
    data_config = data_config_for(row_data, data_source(row_data, None), args.img_scale)
    names = [
        "ours",
        *(["torchvision"] if args.compare else []),
        *([args.runtime] if args.runtime else []),
    ]
    names = [n for n in names if only in (None, n)]
    made = {}
    if args.compare:
        tv = torchvision_model(args.model, args.mode, args.seed, args.img_scale)
        num_classes = 90
        # Only the sides measured are built: a memory run charges no other side's weights.
        net = our_model_from(tv, args.model) if {"ours", "onnxruntime"} & set(names) else None
        if "torchvision" in names:
            made["torchvision"] = torchvision_side(tv, args.mode, device, args.amp)
        del tv
    else:
        torch.manual_seed(args.seed)
        net = zoo.build(args.model, args.backbone, args.schedule, args.variant)
        num_classes = net.num_classes
    if "onnxruntime" in names:  # before ours_side, whose fast path folds the model in place
        made["onnxruntime"] = onnxruntime_side(net, data_config, args.threads)
    if "ours" in names:
        made["ours"] = ours_side(
            net, args.mode, device, data_config, not args.no_fast, args.amp,
            channels_last=args.layout == "channels_last", cuda_graph=args.cuda_graph,
        )  # fmt: skip
    sides = [made[n] for n in names]
    samples = make_samples(args.data, args.batch_size, args.img_size, num_classes, args.seed)
    return sides, samples


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
        # det-ops' CPU kernels read their thread count when first loaded (by the models
        # built below); a det_ops loaded already is set directly.
        os.environ["DET_OPS_NUM_THREADS"] = str(args.threads)
        if "det_ops" in sys.modules:
            sys.modules["det_ops"].set_num_threads(args.threads)
    device = torch.device(args.device)
    set_tf32(args.tf32)

    if args.memory_of:
        sides, samples = build_sides(args, device, only=args.memory_of)
        gc.collect()
        for _ in range(max(args.warmup, 1)):
            sides[0].step(samples)
        ok = reset_peak_memory(device)
        for _ in range(args.iters):
            sides[0].step(samples)
        print(json.dumps({"peak_memory_mb": peak_memory_mb(device) if ok else None}))
        return 0

    sides, samples = build_sides(args, device)
    measures = time_sides(sides, samples, args.iters, args.warmup, device)
    if not args.no_memory:
        if args.compare:
            peaks: dict[str, list[float]] = {m.name: [] for m in measures}
            for _ in range(args.memory_runs):  # sides in turn, as for the timings
                for m in measures:
                    peak = memory_in_subprocess(argv, m.name)
                    if peak is not None:
                        peaks[m.name].append(peak)
            for m in measures:
                m.peak_memory_mb = statistics.median(peaks[m.name]) if peaks[m.name] else None
        else:
            for side, m in zip(sides, measures, strict=True):
                if reset_peak_memory(device):
                    side.step(samples)
                    m.peak_memory_mb = peak_memory_mb(device)
    print(table(args, measures, device_description(device, args.amp)), end="")
    if args.profile:
        for side in sides:
            print(f"\nprofile of {args.profile} steps:")
            print(profile_summary(side, samples, device, args.profile), end="")
    by_name = {m.name: m for m in measures}
    ours = by_name.get("ours")
    if "torchvision" in by_name:
        theirs = by_name["torchvision"]
        print(
            f"\nours {ours.median:.3f} s, torchvision {theirs.median:.3f} s per iteration "
            f"(medians of {args.iters}); speed-up x{theirs.median / ours.median:.2f}"
        )
        print(f"remaining difference in work: {DIFFERENCES[args.model]}")
    if "onnxruntime" in by_name:
        onnx = by_name["onnxruntime"]
        print(
            f"\nonnxruntime {onnx.median:.3f} s, ours {ours.median:.3f} s per image "
            f"(medians of {args.iters}); onnxruntime / ours x{onnx.median / ours.median:.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
