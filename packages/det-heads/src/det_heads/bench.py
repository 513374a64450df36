"""Time RoIGroupNorm against nn.GroupNorm on channels-last RoI features (CPU).

    python -m det_heads.bench --threads 2

Prints, for batches of 512 RoIs, the milliseconds of one forward + backward (training) and
of one forward without autograd (inference), channels-last input, both layers in the dtype
of the row (the quickstart trains its heads under bf16 autocast, where GroupNorm runs in
the input's dtype). Medians of --repeat calls after two warm-up calls, the two layers
called in turn.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from det_heads.conv_norm import GN_GROUPS, RoIGroupNorm


def _alternating_medians_ms(fns: list[Callable[[], object]], repeat: int) -> list[float]:
    """Median milliseconds of each of ``fns``, called in turn ``repeat`` times (after two
    warm-up rounds), so that a change of load on the machine reaches all of them alike."""
    times: list[list[float]] = [[] for _ in fns]
    for round_index in range(repeat + 2):
        for fn, fn_times in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn()
            if round_index >= 2:
                fn_times.append(time.perf_counter() - start)
    return [statistics.median(t) * 1e3 for t in times]


def _train_step(layer: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    x = x.detach().requires_grad_()

    def step() -> None:
        x.grad = None
        layer.zero_grad(set_to_none=True)
        layer(x).sum().backward()

    return step


def _inference(layer: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def infer() -> None:
        with torch.no_grad():
            layer(x)

    return infer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m det_heads.bench")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rois", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"{args.rois} RoIs, channels-last input, {args.threads} threads, ms (median)")
    print(
        "| features | dtype | train nn.GroupNorm | train RoIGroupNorm | infer nn.GroupNorm "
        "| infer RoIGroupNorm |"
    )
    print("|---|---|---|---|---|---|")
    for size in (7, 14):
        for channels in (32, 64, 128, 256):
            for dtype in (torch.float32, torch.bfloat16):
                x = torch.randn(args.rois, channels, size, size, dtype=dtype)
                x = x.contiguous(memory_format=torch.channels_last)
                plain = nn.GroupNorm(GN_GROUPS, channels).to(dtype)
                ours = RoIGroupNorm(GN_GROUPS, channels).to(dtype)
                train_plain, train_ours = _alternating_medians_ms(
                    [_train_step(plain, x), _train_step(ours, x)], args.repeat
                )
                infer_plain, infer_ours = _alternating_medians_ms(
                    [_inference(plain, x), _inference(ours, x)], args.repeat
                )
                print(
                    f"| {channels} x {size} x {size} | {str(dtype).removeprefix('torch.')} "
                    f"| {train_plain:.1f} | {train_ours:.1f} | {infer_plain:.1f} "
                    f"| {infer_ours:.1f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
