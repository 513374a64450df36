"""Op benchmark: det-ops against torchvision.ops on the same inputs, in one run.

    python -m det_ops.bench [--device cpu|cuda] [--repeat N] [--write BENCHMARKS.md]

Times are medians of N runs after a warm-up (CUDA: timed with CUDA events).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import torchvision

import det_ops


@dataclass
class Row:
    op: str
    case: str
    ours_ms: float
    theirs_ms: float

    @property
    def speedup(self) -> float:
        return self.theirs_ms / self.ours_ms


def median_ms(fn: Callable[[], object], repeat: int, device: str) -> float:
    """Median wall time of fn in milliseconds, after two warm-up calls."""
    fn()
    fn()
    times = []
    for _ in range(repeat):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def detection_boxes(n: int, device: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n scored boxes like a detector's raw output on a 1333x800 image: clustered on objects."""
    g = torch.Generator().manual_seed(seed)
    objects = max(n // 50, 1)
    centres = torch.rand(objects, 2, generator=g) * torch.tensor([1333.0, 800.0])
    sizes = torch.exp(torch.rand(objects, 2, generator=g) * 3.0 + 3.0)  # 20 to 400 px
    pick = torch.randint(0, objects, (n,), generator=g)
    centre = centres[pick] + torch.randn(n, 2, generator=g) * sizes[pick] * 0.15
    size = sizes[pick] * torch.exp(torch.randn(n, 2, generator=g) * 0.15)
    boxes = torch.cat([centre - size / 2, centre + size / 2], dim=1)
    return boxes.to(device), torch.rand(n, generator=g).to(device)


def feature_rois(n: int, device: str, seed: int = 0) -> torch.Tensor:
    """n RoIs [n, 5] on an 800x1216 image, sides 32 to 512 px."""
    g = torch.Generator().manual_seed(seed)
    size = torch.exp(torch.rand(n, 2, generator=g) * 2.77 + 3.47)
    corner = torch.rand(n, 2, generator=g) * (torch.tensor([1216.0, 800.0]) - size)
    return torch.cat([torch.zeros(n, 1), corner, corner + size], dim=1).to(device)


def nms_rows(device: str, repeat: int) -> list[Row]:
    rows = []
    for n in (5000, 20000, 100000) if device == "cuda" else (1000, 5000, 20000):
        boxes, scores = detection_boxes(n, device)
        rows.append(
            Row(
                "nms",
                f"{n} boxes, IoU 0.5",
                median_ms(partial(det_ops.nms, boxes, scores, 0.5), repeat, device),
                median_ms(partial(torchvision.ops.nms, boxes, scores, 0.5), repeat, device),
            )
        )
    boxes, scores = detection_boxes(20000, device, seed=1)
    idxs = torch.randint(0, 80, (20000,), generator=torch.Generator().manual_seed(2)).to(device)
    rows.append(
        Row(
            "batched_nms",
            "20000 boxes x 80 classes",
            median_ms(lambda: det_ops.batched_nms(boxes, scores, idxs, 0.5), repeat, device),
            median_ms(
                lambda: torchvision.ops.batched_nms(boxes, scores, idxs, 0.5), repeat, device
            ),
        )
    )
    return rows


def padded_nms_rows(device: str, repeat: int) -> list[Row]:
    """batched_nms_padded in its two uses against torchvision's batched_nms per image (which
    returns what it kept, a size known only after a sync)."""
    rows = []
    images, levels, per_level = 2, 5, 2000
    n = images * levels * per_level
    boxes, scores = detection_boxes(n, device, seed=6)
    groups = torch.arange(images * levels, device=device).repeat_interleave(per_level)
    image_of = torch.arange(images, device=device).repeat_interleave(levels * per_level)

    def per_image(boxes, scores, idxs, image_of, threshold):
        return [
            torchvision.ops.batched_nms(boxes[m], scores[m], idxs[m], threshold)
            for m in (image_of == i for i in range(images))
        ]

    rows.append(
        Row(
            "batched_nms_padded (torchvision: batched_nms per image)",
            f"RPN: {images} images x {levels} levels x {per_level} boxes, IoU 0.7, 1000 kept",
            median_ms(
                lambda: det_ops.batched_nms_padded(
                    boxes, scores, groups, 0.7, num_groups=images * levels, max_per_group=1000
                ),
                repeat,
                device,
            ),
            median_ms(lambda: per_image(boxes, scores, groups, image_of, 0.7), repeat, device),
        )
    )
    classes, per_image_boxes = 80, 1000
    boxes, scores = detection_boxes(images * per_image_boxes, device, seed=7)
    boxes = boxes.repeat_interleave(classes, 0)
    g = torch.Generator().manual_seed(8)
    scores = torch.rand(len(boxes), generator=g).to(device)
    scores = scores.masked_fill(scores < 0.95, -float("inf"))  # the score threshold, as a mask
    labels = torch.arange(classes, device=device).repeat(images * per_image_boxes)
    image_of = torch.arange(images, device=device).repeat_interleave(per_image_boxes * classes)
    groups = image_of * classes + labels
    valid = scores > -float("inf")

    def thresholded_per_image():
        keep = valid.nonzero().flatten()
        return per_image(boxes[keep], scores[keep], labels[keep], image_of[keep], 0.5)

    rows.append(
        Row(
            "batched_nms_padded (torchvision: batched_nms per image)",
            f"detections: {images} images x {per_image_boxes} boxes x {classes} classes, "
            "5% above the score threshold, IoU 0.5, 100 kept",
            median_ms(
                lambda: det_ops.batched_nms_padded(
                    boxes, scores, groups, 0.5, num_groups=images * classes, max_per_group=100
                ),
                repeat,
                device,
            ),
            median_ms(thresholded_per_image, repeat, device),
        )
    )
    return rows


def multi_level_rows(device: str, repeat: int) -> list[Row]:
    """multi_level_roi_align against torchvision's roi_align per level (what its
    MultiScaleRoIAlign runs once the levels are mapped)."""
    g = torch.Generator().manual_seed(9)
    scales = [1 / 4, 1 / 8, 1 / 16, 1 / 32]
    maps = [
        torch.randn(2, 256, 800 // s, 1216 // s, generator=g).to(device).requires_grad_()
        for s in (4, 8, 16, 32)
    ]
    rois = torch.cat([feature_rois(512, device, seed=10), feature_rois(512, device, seed=11)])
    rois[512:, 0] = 1
    areas = (rois[:, 3] - rois[:, 1]) * (rois[:, 4] - rois[:, 2])
    levels = (torch.floor(4 + torch.log2(areas.sqrt() / 224 + 1e-6)).clamp(2, 5) - 2).long()
    members = [torch.nonzero(levels == lv).flatten() for lv in range(4)]

    def theirs() -> torch.Tensor:
        out = maps[0].new_zeros((len(rois), 256, 7, 7))
        for lv, m in enumerate(members):
            pooled = torchvision.ops.roi_align(maps[lv], rois[m], 7, scales[lv], 2, True)
            out = out.index_put((m,), pooled)
        return out

    return forward_backward_rows(
        "multi_level_roi_align (torchvision: roi_align per level)",
        "1024 RoIs, 2x256 P2-P5 of 800x1216, 7x7, sampling 2",
        lambda: det_ops.multi_level_roi_align(maps, rois, levels, 7, scales, 2, True),
        theirs,
        maps,
        device,
        repeat,
    )


def forward_backward_rows(
    op: str,
    case: str,
    ours: Callable,
    theirs: Callable,
    inputs: list[torch.Tensor],
    device: str,
    repeat: int,
) -> list[Row]:
    """Rows for the forward pass and the backward pass (given the forward's graph)."""
    with torch.no_grad():
        rows = [
            Row(
                f"{op} forward",
                case,
                median_ms(ours, repeat, device),
                median_ms(theirs, repeat, device),
            )
        ]
    out_ours, out_theirs = ours(), theirs()
    grad = torch.randn_like(out_ours)

    def backward(out: torch.Tensor) -> Callable[[], object]:
        return lambda: torch.autograd.grad(out, inputs, grad, retain_graph=True)

    rows.append(
        Row(
            f"{op} backward",
            case,
            median_ms(backward(out_ours), repeat, device),
            median_ms(backward(out_theirs), repeat, device),
        )
    )
    return rows


def roi_rows(device: str, repeat: int) -> list[Row]:
    g = torch.Generator().manual_seed(3)
    feature = torch.randn(1, 256, 200, 304, generator=g).to(device).requires_grad_()
    rois = feature_rois(1000, device)
    case = "1000 RoIs, 1x256x200x304, 7x7, sampling 2"
    rows = forward_backward_rows(
        "roi_align",
        case,
        lambda: det_ops.roi_align(feature, rois, 7, 0.25, 2, True),
        lambda: torchvision.ops.roi_align(feature, rois, 7, 0.25, 2, True),
        [feature],
        device,
        repeat,
    )
    # The CPU and CUDA kernels that read and write channels-last maps in place.
    nhwc = feature.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    rows += forward_backward_rows(
        "roi_align",
        case + ", channels-last",
        lambda: det_ops.roi_align(nhwc, rois, 7, 0.25, 2, True),
        lambda: torchvision.ops.roi_align(nhwc, rois, 7, 0.25, 2, True),
        [nhwc],
        device,
        repeat,
    )
    if device == "cuda":  # 16-bit maps, read natively by det-ops' CUDA kernels
        rois16 = rois.to(torch.bfloat16)  # torchvision takes the RoIs in the map's dtype
        for layout, memory_format in (
            ("", torch.contiguous_format),
            (", channels-last", torch.channels_last),
        ):
            bf16 = (
                feature.detach()
                .to(torch.bfloat16)
                .contiguous(memory_format=memory_format)
                .requires_grad_()
            )
            rows += forward_backward_rows(
                "roi_align",
                case + ", bf16" + layout,
                partial(det_ops.roi_align, bf16, rois, 7, 0.25, 2, True),
                partial(torchvision.ops.roi_align, bf16, rois16, 7, 0.25, 2, True),
                [bf16],
                device,
                repeat,
            )
    rows += forward_backward_rows(
        "roi_pool",
        "1000 RoIs, 1x256x200x304, 7x7",
        lambda: det_ops.roi_pool(feature, rois, 7, 0.25),
        lambda: torchvision.ops.roi_pool(feature, rois, 7, 0.25),
        [feature],
        device,
        repeat,
    )
    offset = (torch.randn(1000, 2, 7, 7, generator=g) * 0.1).to(device).requires_grad_()
    rows += forward_backward_rows(
        "deform_roi_pool (torchvision: roi_align)",
        "1000 RoIs, 1x256x200x304, 7x7, sampling 2, random offsets",
        lambda: det_ops.deform_roi_pool(feature, rois, offset, 7, 0.25, 2),
        lambda: torchvision.ops.roi_align(feature, rois, 7, 0.25, 2, True),
        [feature],
        device,
        repeat,
    )
    return rows


def deform_conv_rows(device: str, repeat: int) -> list[Row]:
    if not hasattr(det_ops, "deform_conv2d"):
        return []
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 256, 50, 76, generator=g).to(device).requires_grad_()
    offset = (torch.randn(2, 18, 50, 76, generator=g) * 2).to(device).requires_grad_()
    weight = (torch.randn(256, 256, 3, 3, generator=g) * 0.02).to(device).requires_grad_()
    case = "2x256x50x76, 256 filters 3x3, pad 1"
    inputs = [x, offset, weight]
    rows = forward_backward_rows(
        "deform_conv2d",
        case,
        lambda: det_ops.deform_conv2d(x, offset, weight, padding=1),
        lambda: torchvision.ops.deform_conv2d(x, offset, weight, padding=1),
        inputs,
        device,
        repeat,
    )

    def step(fn: Callable) -> Callable[[], object]:
        return lambda: torch.autograd.grad(fn().sum(), inputs)

    rows.append(
        Row(
            "deform_conv2d forward+backward",
            case,
            median_ms(
                step(lambda: det_ops.deform_conv2d(x, offset, weight, padding=1)), repeat, device
            ),
            median_ms(
                step(lambda: torchvision.ops.deform_conv2d(x, offset, weight, padding=1)),
                repeat,
                device,
            ),
        )
    )
    return rows


def focal_rows(device: str, repeat: int) -> list[Row]:
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(100000, 80, generator=g).to(device).requires_grad_()
    targets = (torch.rand(100000, 80, generator=g) > 0.99).float().to(device)

    def step(fn: Callable) -> Callable[[], object]:
        return lambda: torch.autograd.grad(fn(logits, targets, reduction="sum"), [logits])

    return [
        Row(
            "sigmoid_focal_loss forward+backward",
            "100000 anchors x 80 classes",
            median_ms(step(det_ops.sigmoid_focal_loss), repeat, device),
            median_ms(step(torchvision.ops.sigmoid_focal_loss), repeat, device),
        )
    ]


def table(rows: list[Row]) -> str:
    lines = [
        "| op | case | det-ops (ms) | torchvision (ms) | speed-up |",
        "|---|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.op} | {r.case} | {r.ours_ms:.2f} | {r.theirs_ms:.2f} | {r.speedup:.2f}x |"
        )
    return "\n".join(lines)


def machine(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {det_ops.num_threads()} threads for det-ops, {torch.get_num_threads()} for torch"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--write", type=Path, help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    rows: list[Row] = []
    for section in (
        nms_rows,
        padded_nms_rows,
        roi_rows,
        multi_level_rows,
        deform_conv_rows,
        focal_rows,
    ):
        rows += section(args.device, args.repeat)
        print(table(rows), file=sys.stderr, end="\n\n")
    command = "python -m det_ops.bench " + " ".join(argv if argv is not None else sys.argv[1:])
    report = (
        f"### {args.device.upper()}: {machine(args.device)}\n\n"
        f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
        f"det-ops {det_ops.__version__}. Command: `{command.strip()}`\n\n{table(rows)}\n"
    )
    print(report)
    if args.write:
        write_section(args.write, args.device, report)


def write_section(path: Path, device: str, report: str) -> None:
    """Replaces this device's section of the Markdown file, keeping the others."""
    header = (
        "# det-ops benchmarks\n\n"
        "Generated by `python -m det_ops.bench`; each table gives the command that made it.\n"
    )
    sections = {}
    if path.exists():
        for chunk in path.read_text().split("\n### ")[1:]:
            sections[chunk.split(":", 1)[0].strip()] = "### " + chunk.strip() + "\n"
    sections[device.upper()] = report
    path.write_text(header + "\n" + "\n".join(sections[k] for k in sorted(sections)))


if __name__ == "__main__":
    main()
