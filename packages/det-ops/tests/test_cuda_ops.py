"""Every CUDA kernel against its CPU twin (which the rest of the suite checks
against torchvision and the references). Runs only where det_ops.has_cuda()."""

import pytest
import torch
import torchvision
from ops_inputs import random_boxes, random_rois

import det_ops
import det_ops._torch  # registers torch.ops.det_ops

pytestmark = pytest.mark.gpu
CUDA = "cuda"


def clustered(n, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    centres = random_boxes(max(n // 40, 1), torch.float64, generator=g)
    picks = centres[torch.randint(0, len(centres), (n,), generator=g)]
    boxes = (picks + torch.randn(n, 4, generator=g, dtype=torch.float64) * 3).to(dtype)
    return boxes, torch.rand(n, generator=g, dtype=torch.float64).to(dtype)


def grads(fn, *inputs):
    inputs = [x.detach().clone().requires_grad_() for x in inputs]
    out = fn(*inputs)
    g = torch.Generator(device="cpu").manual_seed(0)
    weight = torch.randn(out.shape, generator=g, dtype=out.dtype).to(out.device)
    return (out, *torch.autograd.grad((out * weight).sum(), inputs))


def assert_same(cuda_values, cpu_values, **tol):
    for c, p in zip(cuda_values, cpu_values, strict=True):
        torch.testing.assert_close(c.cpu(), p, **tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n", [0, 1, 100, 5000, 100000])
def test_nms(dtype, n):
    boxes, scores = clustered(n, dtype, n)
    expected = det_ops.nms(boxes, scores, 0.5)
    assert torch.equal(det_ops.nms(boxes.to(CUDA), scores.to(CUDA), 0.5).cpu(), expected)
    if n <= 5000:
        assert torch.equal(torchvision.ops.nms(boxes, scores, 0.5), expected)


def test_nms_nan_score_is_an_error():
    boxes, scores = clustered(10, torch.float32, 0)
    scores[3] = float("nan")
    with pytest.raises(ValueError, match="scores contains NaN"):
        det_ops.nms(boxes.to(CUDA), scores.to(CUDA), 0.5)


def test_batched_nms():
    boxes, scores = clustered(3000, torch.float64, 1)
    idxs = torch.randint(0, 20, (3000,), generator=torch.Generator().manual_seed(2))
    expected = det_ops.batched_nms(boxes, scores, idxs, 0.5)
    got = det_ops.batched_nms(boxes.to(CUDA), scores.to(CUDA), idxs.to(CUDA), 0.5)
    assert torch.equal(got.cpu(), expected)


def test_bbox_overlaps():
    a, _ = clustered(300, torch.float32, 3)
    b, _ = clustered(200, torch.float32, 4)
    for mode in ("iou", "iof"):
        torch.testing.assert_close(
            det_ops.bbox_overlaps(a.to(CUDA), b.to(CUDA), mode).cpu(),
            det_ops.bbox_overlaps(a, b, mode),
        )
    torch.testing.assert_close(
        det_ops.bbox_overlaps(a[:200].to(CUDA), b.to(CUDA), aligned=True).cpu(),
        det_ops.bbox_overlaps(a[:200], b, aligned=True),
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [0, 2])
def test_roi_align(dtype, aligned, sampling_ratio):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 16, 40, 56, generator=g, dtype=dtype)
    rois = random_rois(500, 2, 40, 56, 0.25, dtype, generator=g)

    def fn(x, rois):
        return det_ops.roi_align(x, rois, 7, 0.25, sampling_ratio, aligned)

    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {}
    expected = grads(lambda x: fn(x, rois), x)
    assert_same(grads(lambda x: fn(x, rois.to(CUDA)), x.to(CUDA)), expected, **tol)


def test_roi_align_ten_thousand_rois_and_non_contiguous_input():
    g = torch.Generator().manual_seed(6)
    x = torch.randn(1, 256, 50, 76, generator=g).permute(0, 1, 3, 2)
    rois = random_rois(10000, 1, 76, 50, 1 / 16, torch.float32, generator=g)
    expected = det_ops.roi_align(x, rois, 7, 1 / 16, 2, True)
    got = det_ops.roi_align(x.to(CUDA), rois.to(CUDA), 7, 1 / 16, 2, True)
    torch.testing.assert_close(got.cpu(), expected, rtol=1e-5, atol=1e-5)
    theirs = torchvision.ops.roi_align(x.to(CUDA), rois.to(CUDA), 7, 1 / 16, 2, True)
    torch.testing.assert_close(got, theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_roi_pool(dtype):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, 8, 30, 40, generator=g, dtype=dtype)
    rois = random_rois(300, 2, 30, 40, 0.5, dtype, generator=g)
    expected = grads(lambda x: det_ops.roi_pool(x, rois, 7, 0.5), x)
    got = grads(lambda x: det_ops.roi_pool(x, rois.to(CUDA), 7, 0.5), x.to(CUDA))
    assert_same(got, expected)


@pytest.mark.parametrize("labels", [False, True])
def test_sigmoid_focal_loss(labels):
    g = torch.Generator().manual_seed(8)
    logits = torch.randn(1000, 80, generator=g, dtype=torch.float64) * 3
    targets = (
        torch.randint(0, 81, (1000,), generator=g)
        if labels
        else (torch.rand(1000, 80, generator=g, dtype=torch.float64) > 0.9).double()
    )
    expected = grads(lambda x: det_ops.sigmoid_focal_loss(x, targets), logits)
    got = grads(lambda x: det_ops.sigmoid_focal_loss(x, targets.to(CUDA)), logits.to(CUDA))
    assert_same(got, expected)


@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_deform_conv2d(with_mask, dtype):
    g = torch.Generator().manual_seed(9)
    x = torch.randn(2, 8, 12, 14, generator=g, dtype=dtype)
    offset = torch.randn(2, 2 * 2 * 9, 6, 7, generator=g, dtype=dtype) * 2
    weight = torch.randn(6, 4, 3, 3, generator=g, dtype=dtype)
    bias = torch.randn(6, generator=g, dtype=dtype)
    mask = torch.rand(2, 2 * 9, 6, 7, generator=g, dtype=dtype)
    inputs = [x, offset, weight, bias] + ([mask] if with_mask else [])

    def fn(x, offset, weight, bias, mask=None):
        return det_ops.deform_conv2d(x, offset, weight, bias, 2, 1, 1, mask)

    tol = {"rtol": 1e-4, "atol": 1e-4} if dtype == torch.float32 else {}
    expected = grads(fn, *inputs)
    assert_same(grads(fn, *[t.to(CUDA) for t in inputs]), expected, **tol)
    theirs = torchvision.ops.deform_conv2d(
        *[t.to(CUDA) for t in inputs[:4]], 2, 1, 1, mask.to(CUDA) if with_mask else None
    )
    torch.testing.assert_close(theirs.cpu(), expected[0], **tol)


def test_empty_inputs():
    x = torch.randn(1, 4, 8, 8, device=CUDA, requires_grad=True)
    assert det_ops.roi_align(x, torch.zeros(0, 5, device=CUDA), 7).shape == (0, 4, 7, 7)
    assert det_ops.roi_pool(x, torch.zeros(0, 5, device=CUDA), 7).shape == (0, 4, 7, 7)
    assert (
        det_ops.nms(torch.zeros(0, 4, device=CUDA), torch.zeros(0, device=CUDA), 0.5).numel() == 0
    )
    loss = det_ops.sigmoid_focal_loss(
        torch.zeros(0, 80, device=CUDA), torch.zeros(0, 80, device=CUDA)
    )
    assert loss.shape == (0, 80)


def test_kernels_run_on_the_current_stream():
    g = torch.Generator().manual_seed(10)
    x = torch.randn(1, 32, 64, 64, generator=g)
    rois = random_rois(2000, 1, 64, 64, 1.0, torch.float32, generator=g)
    expected = det_ops.roi_align(x, rois, 7, 1.0, 2)
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        got = det_ops.roi_align(x.to(CUDA, non_blocking=True), rois.to(CUDA), 7, 1.0, 2)
    stream.synchronize()
    torch.testing.assert_close(got.cpu(), expected, rtol=1e-5, atol=1e-5)


def test_opcheck_on_cuda():
    g = torch.Generator().manual_seed(11)
    x = torch.randn(2, 3, 10, 12, generator=g, dtype=torch.float64).to(CUDA).requires_grad_()
    rois = random_rois(4, 2, 10, 12, 0.5, torch.float64, generator=g).to(CUDA)
    logits = torch.randn(6, 4, dtype=torch.float64, device=CUDA, requires_grad=True)
    ops = torch.ops.det_ops
    cases = [
        (ops.roi_align, (x, rois, 0.5, 3, 3, 2, True)),
        (ops.roi_pool, (x, rois, 0.5, 3, 3)),
        (ops.sigmoid_focal_loss, (logits, torch.rand_like(logits), 0.25, 2.0, True)),
    ]
    for op, args in cases:
        torch.library.opcheck(op, args)


@pytest.mark.parametrize("aligned", [True, "legacy"])
@pytest.mark.parametrize("modulated", [False, True])
def test_deform_roi_pool(modulated, aligned):
    g = torch.Generator().manual_seed(12)
    x = torch.randn(2, 8, 30, 40, generator=g, dtype=torch.float64)
    rois = random_rois(200, 2, 30, 40, 0.5, torch.float64, generator=g)
    offset = torch.randn(200, 2, 7, 7, generator=g, dtype=torch.float64) * 0.1
    mask = torch.rand(200, 1, 7, 7, generator=g, dtype=torch.float64)
    args = (7, 0.5, 2 if aligned is True else 4, 0.1, aligned)

    def fn(x, offset, mask=None):
        if mask is None:
            return det_ops.deform_roi_pool(x, rois.to(x.device), offset, *args)
        return det_ops.modulated_deform_roi_pool(x, rois.to(x.device), offset, mask, *args)

    inputs = [x, offset] + ([mask] if modulated else [])
    expected = grads(fn, *inputs)
    assert_same(grads(fn, *[t.to(CUDA) for t in inputs]), expected)
