"""Timings of det-heads' parts against the code they replace.

    python -m det_heads.bench --threads 2
    python -m det_heads.bench paste --threads 2

The first (groupnorm) times RoIGroupNorm against nn.GroupNorm on channels-last RoI features
(CPU): for batches of 512 RoIs, the milliseconds of one forward + backward (training) and of
one forward without autograd (inference), both layers in the dtype of the row (the
quickstart trains its heads under bf16 autocast, where GroupNorm runs in the input's
dtype).

The second (paste) times paste_masks' two forms on 100 boxes of 28 x 28 maps in an 800 x
1216 image, every style: the per-box paste (the boxes read on the host; what paste_masks
runs on the CPU) and the batched paste (nothing read on the host; what it runs on an
accelerator), on the CPU and, where there is one, on the GPU. The boxes' sides are
log-uniform between 16 and 600 pixels, centred anywhere in the image.

Both print medians of --repeat calls after two warm-up calls, the timed functions called in
turn.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from det_heads.conv_norm import GN_GROUPS, RoIGroupNorm
from det_heads.roi.mask_paste import PASTE_STYLES, _paste_batched, _paste_per_box


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


def _paste_inputs(
    boxes: int, image_size: tuple[int, int], map_size: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(masks Tensor[boxes, M, M] probabilities, boxes Tensor[boxes, 4]) of seed 0."""
    g = torch.Generator().manual_seed(0)
    h, w = image_size
    sides = torch.exp(torch.empty(boxes, 2).uniform_(math.log(16), math.log(600), generator=g))
    centres = torch.rand(boxes, 2, generator=g) * torch.tensor([w, h])
    corners = torch.cat([centres - sides / 2, centres + sides / 2], dim=1)
    corners = corners.clamp(min=0).minimum(torch.tensor([w, h, w, h]))
    logits = torch.randn(boxes, map_size, map_size, generator=g) * 4
    return logits.sigmoid().to(device), corners.to(device)


def _paste_call(
    fn: Callable[..., torch.Tensor],
    masks: torch.Tensor,
    boxes: torch.Tensor,
    image_size: tuple[int, int],
    style: str,
) -> Callable[[], None]:
    def call() -> None:
        fn(masks, boxes, image_size, 0.5, style)
        if masks.device.type == "cuda":
            torch.cuda.synchronize()

    return call


def paste_table(
    repeat: int, devices: list[str], boxes: int = 100, image_size: tuple[int, int] = (800, 1216)
) -> None:
    """Prints the paste rows: per-box and batched milliseconds, their ratio."""
    h, w = image_size
    print(f"{boxes} boxes, 28 x 28 maps, image {h} x {w}, ms (median)")
    print("| device | style | per box | batched | batched / per box |")
    print("|---|---|---|---|---|")
    for device in map(torch.device, devices):
        masks, corners = _paste_inputs(boxes, image_size, 28, device)
        for style in PASTE_STYLES:
            same = torch.equal(
                _paste_per_box(masks, corners, image_size, 0.5, style),
                _paste_batched(masks, corners, image_size, 0.5, style),
            )
            per_box, batched = _alternating_medians_ms(
                [
                    _paste_call(fn, masks, corners, image_size, style)
                    for fn in (_paste_per_box, _paste_batched)
                ],
                repeat,
            )
            note = "" if same else " (masks differ!)"
            print(
                f"| {device.type} | {style} | {per_box:.1f} | {batched:.1f} "
                f"| {batched / per_box:.2f}{note} |",
                flush=True,
            )


def groupnorm_table(rois: int, repeat: int) -> None:
    """Prints the RoIGroupNorm rows."""
    print(f"{rois} RoIs, channels-last input, ms (median)")
    print(
        "| features | dtype | train nn.GroupNorm | train RoIGroupNorm | infer nn.GroupNorm "
        "| infer RoIGroupNorm |"
    )
    print("|---|---|---|---|---|---|")
    for size in (7, 14):
        for channels in (32, 64, 128, 256):
            for dtype in (torch.float32, torch.bfloat16):
                x = torch.randn(rois, channels, size, size, dtype=dtype)
                x = x.contiguous(memory_format=torch.channels_last)
                plain = nn.GroupNorm(GN_GROUPS, channels).to(dtype)
                ours = RoIGroupNorm(GN_GROUPS, channels).to(dtype)
                train_plain, train_ours = _alternating_medians_ms(
                    [_train_step(plain, x), _train_step(ours, x)], repeat
                )
                infer_plain, infer_ours = _alternating_medians_ms(
                    [_inference(plain, x), _inference(ours, x)], repeat
                )
                print(
                    f"| {channels} x {size} x {size} | {str(dtype).removeprefix('torch.')} "
                    f"| {train_plain:.1f} | {train_ours:.1f} | {infer_plain:.1f} "
                    f"| {infer_ours:.1f} |",
                    flush=True,
                )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m det_heads.bench")
    parser.add_argument("what", nargs="?", choices=("groupnorm", "paste"), default="groupnorm")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rois", type=int, default=512, help="groupnorm: RoIs per batch")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        action="append",
        help="paste: where to time it (repeatable; default the CPU, and CUDA where there is one)",
    )
    parser.add_argument(
        "--image-size", type=int, nargs=2, default=(800, 1216), help="paste: H W of the image"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"{args.threads} threads")
    if args.what == "paste":
        devices = args.device or ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
        paste_table(args.repeat, devices, image_size=tuple(args.image_size))
    else:
        groupnorm_table(args.rois, args.repeat)


if __name__ == "__main__":
    main()
