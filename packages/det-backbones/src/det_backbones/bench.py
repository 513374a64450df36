"""Backbone benchmark: det-backbones against torchvision's ResNets with the same weights.

    python -m det_backbones.bench [--repeat N] [--size H W] [--models r50 r101 x101-32x4d]
                                  [--write BENCHMARKS.md]

Times the CPU forward pass (C2-C5, batch 1, eval mode, torch.inference_mode) of each
variant, interleaved so that load changes on a shared machine hit every variant alike, and
reports medians. Needs torchvision (the package's `test` extra); not part of the tests.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from det_backbones.build import build_backbone
from det_backbones.fuse import fuse
from det_backbones.weights import load_torchvision

# model name -> torchvision Bottleneck ResNet arguments (blocks per stage, groups, width)
TORCHVISION_ARCHS = {
    "r50": ((3, 4, 6, 3), 1, 64),
    "r101": ((3, 4, 23, 3), 1, 64),
    "x101-32x4d": ((3, 4, 23, 3), 32, 4),
}
VARIANTS = (
    "torchvision",
    "torchvision channels_last",
    "ours",
    "ours fused",
    "ours fused channels_last",
)


class TorchvisionStages(nn.Module):
    """A torchvision ResNet's forward up to C2-C5 (no pooling, no classifier)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> list[Tensor]:
        m = self.model
        x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        outs = []
        for stage in (m.layer1, m.layer2, m.layer3, m.layer4):
            x = stage(x)
            outs.append(x)
        return outs


def make_variants(name: str, seed: int = 0) -> dict[str, tuple[nn.Module, bool]]:
    """Every variant of one backbone with the same weights: name -> (module, channels_last)."""
    import torchvision

    blocks, groups, width = TORCHVISION_ARCHS[name]
    torch.manual_seed(seed)
    theirs = torchvision.models.ResNet(
        torchvision.models.resnet.Bottleneck, list(blocks), groups=groups, width_per_group=width
    ).eval()
    # Non-trivial BN statistics, so that folding them has real work to do.
    with torch.no_grad():
        for module in theirs.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_var.uniform_(0.5, 1.5)
                module.running_mean.normal_(0, 0.1)

    def ours(fused: bool, channels_last: bool) -> nn.Module:
        model = build_backbone(name).eval()
        load_torchvision(model, theirs.state_dict())
        if fused:
            fuse(model)
        if channels_last:
            model.to(memory_format=torch.channels_last)
        return model

    theirs_cl = torchvision.models.ResNet(
        torchvision.models.resnet.Bottleneck, list(blocks), groups=groups, width_per_group=width
    ).eval()
    theirs_cl.load_state_dict(theirs.state_dict())
    return {
        "torchvision": (TorchvisionStages(theirs), False),
        "torchvision channels_last": (
            TorchvisionStages(theirs_cl).to(memory_format=torch.channels_last),
            True,
        ),
        "ours": (ours(False, False), False),
        "ours fused": (ours(True, False), False),
        "ours fused channels_last": (ours(True, True), True),
    }


def check_outputs(variants: dict[str, tuple[nn.Module, bool]], x: Tensor) -> float:
    """Largest difference of any variant's C5 from torchvision's, relative to its max."""
    with torch.inference_mode():
        reference = variants["torchvision"][0](x)[-1]
        worst = 0.0
        for model, channels_last in variants.values():
            inp = x.to(memory_format=torch.channels_last) if channels_last else x
            c5 = model(inp)[-1]
            worst = max(worst, ((c5 - reference).abs().max() / reference.abs().max()).item())
    return worst


def time_variants(
    variants: dict[str, tuple[nn.Module, bool]], x: Tensor, repeat: int
) -> dict[str, float]:
    """Median forward time of each variant in milliseconds, runs interleaved."""
    calls: dict[str, Callable[[], object]] = {}
    for key, (model, channels_last) in variants.items():
        inp = x.contiguous(memory_format=torch.channels_last) if channels_last else x
        calls[key] = lambda model=model, inp=inp: model(inp)
    times: dict[str, list[float]] = {key: [] for key in calls}
    with torch.inference_mode():
        for call in calls.values():
            call()  # warm-up: oneDNN primitive creation, allocator
        for _ in range(repeat):
            for key, call in calls.items():
                t0 = time.perf_counter()
                call()
                times[key].append((time.perf_counter() - t0) * 1e3)
    return {key: statistics.median(values) for key, values in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--size", type=int, nargs=2, default=(800, 1216), metavar=("H", "W"))
    parser.add_argument(
        "--models", nargs="+", default=list(TORCHVISION_ARCHS), choices=list(TORCHVISION_ARCHS)
    )
    parser.add_argument("--write", type=Path, help="write the table to this Markdown file")
    args = parser.parse_args(argv)

    x = torch.randn(1, 3, *args.size, generator=torch.Generator().manual_seed(0))
    header = (
        "| backbone | "
        + " | ".join(f"{v} (ms)" for v in VARIANTS)
        + " | fused speed-up | C5 max rel. diff |"
    )
    lines = [header, "|---" * (len(VARIANTS) + 3) + "|"]
    for name in args.models:
        variants = make_variants(name)
        error = check_outputs(variants, x)
        ms = time_variants(variants, x, args.repeat)
        best = min(ms["ours fused"], ms["ours fused channels_last"])
        cells = " | ".join(f"{ms[v]:.0f}" for v in VARIANTS)
        speedup = ms["torchvision"] / best
        lines.append(f"| {name} | {cells} | {speedup:.2f}x | {error:.1e} |")
        print(lines[-1], flush=True)
        del variants

    command = "python -m det_backbones.bench " + " ".join(sys.argv[1:] if argv is None else argv)
    report = "\n".join(
        [
            "# det-backbones benchmarks",
            "",
            f"Command: `{command.strip()}`",
            "",
            f"CPU forward of the backbone (C2-C5) at 1x3x{args.size[0]}x{args.size[1]}, eval "
            f"mode, torch.inference_mode, median of {args.repeat} interleaved runs after a "
            "warm-up. Every variant holds the same weights; the last column is the largest "
            "difference of any variant's C5 from torchvision's, relative to its largest "
            "value. Speed-up: torchvision (NCHW) time over the faster fused variant's.",
            "",
            f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
            f"{platform.processor() or platform.machine()}, {platform.python_version()}",
            "",
            *lines,
            "",
        ]
    )
    print(report)
    if args.write:
        args.write.write_text(report)


if __name__ == "__main__":
    main()
