"""Deformable RoI pooling against torchvision's roi_align on the CPU.

1000 RoIs x 256 channels x 7x7 bins, sampling ratio 2, on a 1x256x200x304
feature map (stride 4 of an 800x1216 image). Prints a markdown table of median
times for forward and backward (backward: from the saved graph, all gradients).

    PYTHONPATH=src python benchmarks/bench_deform_roi_pool.py
"""

from __future__ import annotations

import statistics
import time

import torch
import torchvision

import det_ops


def median_ms(fn, repeats: int = 7) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def make_inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    input = torch.randn(1, 256, 200, 304, generator=g)
    size = 16 + 384 * torch.rand(1000, 2, generator=g)
    corner = torch.rand(1000, 2, generator=g) * (torch.tensor([1216.0, 800.0]) - size)
    rois = torch.cat([torch.zeros(1000, 1), corner, corner + size], dim=1)
    offset = 0.5 * torch.randn(1000, 2, 7, 7, generator=g)
    mask = torch.rand(1000, 1, 7, 7, generator=g)
    return input, rois, offset, mask


def timings(name, forward, leaves):
    fwd = median_ms(lambda: forward())
    grad = None

    def backward():
        for t in leaves:
            t.grad = None
        out = forward()
        nonlocal grad
        if grad is None:
            grad = torch.randn_like(out)
        out.backward(grad)

    total = median_ms(backward)
    return f"| {name} | {fwd:.1f} | {total - fwd:.1f} |"


def main() -> None:
    input, rois, offset, mask = make_inputs()
    args = (7, 0.25, 2)
    input.requires_grad_()
    offset.requires_grad_()
    mask.requires_grad_()
    rows = [
        timings(
            "torchvision.ops.roi_align (aligned=True)",
            lambda: torchvision.ops.roi_align(input, rois, *args, aligned=True),
            [input],
        ),
        timings("det_ops.roi_align", lambda: det_ops.roi_align(input, rois, *args), [input]),
        timings(
            "det_ops.deform_roi_pool, offset=None",
            lambda: det_ops.deform_roi_pool(input, rois, None, *args),
            [input],
        ),
        timings(
            "det_ops.deform_roi_pool",
            lambda: det_ops.deform_roi_pool(input, rois, offset, *args),
            [input, offset],
        ),
        timings(
            "det_ops.modulated_deform_roi_pool",
            lambda: det_ops.modulated_deform_roi_pool(input, rois, offset, mask, *args),
            [input, offset, mask],
        ),
    ]
    print(f"torch threads {torch.get_num_threads()}, det_ops threads {det_ops.num_threads()}\n")
    print("| op | forward (ms) | backward (ms) |")
    print("|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
