import numpy as np
import pytest
import torch
import torchvision
from ops_inputs import random_rois

import det_ops
from det_ops.reference import roi_align as reference


def tolerances(dtype):
    return (
        {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-10, "atol": 1e-12}
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [0, 2])
@pytest.mark.parametrize(
    "batch, channels, height, width, num_rois, output_size, scale",
    [
        (2, 8, 24, 30, 20, (7, 7), 0.25),
        (1, 3, 50, 40, 9, (14, 14), 1.0),
        (3, 5, 13, 17, 12, (3, 5), 0.5),
    ],
)
def test_roi_align_matches_torchvision(
    dtype, aligned, sampling_ratio, batch, channels, height, width, num_rois, output_size, scale
):
    g = torch.Generator().manual_seed(height * width + num_rois)
    x = torch.randn(batch, channels, height, width, generator=g, dtype=dtype, requires_grad=True)
    rois = random_rois(num_rois, batch, height, width, scale, dtype, generator=g)
    args = (output_size, scale, sampling_ratio, aligned)
    ours = det_ops.roi_align(x, rois, *args)
    theirs = torchvision.ops.roi_align(x, rois, *args)
    torch.testing.assert_close(ours, theirs, **tolerances(dtype))
    grad_out = torch.randn(ours.shape, generator=g, dtype=dtype)
    (our_grad,) = torch.autograd.grad(ours, x, grad_out)
    (their_grad,) = torch.autograd.grad(theirs, x, grad_out)
    torch.testing.assert_close(our_grad, their_grad, **tolerances(dtype))
    numpy_out = det_ops.roi_align(x.detach().numpy(), rois.numpy(), *args)
    np.testing.assert_array_equal(numpy_out, ours.detach().numpy())


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [0, 3])
def test_roi_align_matches_reference_and_gradcheck(aligned, sampling_ratio):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 3, 9, 11, generator=g, dtype=torch.float64, requires_grad=True)
    rois = random_rois(6, 2, 9, 11, 0.5, torch.float64, generator=g)
    args = ((3, 4), 0.5, sampling_ratio, aligned)
    torch.testing.assert_close(
        det_ops.roi_align(x, rois, *args), reference.roi_align(x, rois, *args)
    )
    assert torch.autograd.gradcheck(lambda t: det_ops.roi_align(t, rois, *args), (x,))


def test_roi_align_hand_computed():
    # A ramp f(y, x) = x: bilinear sampling is exact, so each bin averages its x centres.
    x = torch.arange(8, dtype=torch.float64).repeat(1, 1, 6, 1)
    rois = torch.tensor([[0, 1.0, 1.0, 5.0, 3.0]], dtype=torch.float64)
    out = det_ops.roi_align(x, rois, (1, 2), sampling_ratio=1, aligned=True)
    # aligned: the RoI spans x in [0.5, 4.5]; bin centres at 1.5 and 3.5
    torch.testing.assert_close(out, torch.tensor([[[[1.5, 3.5]]]], dtype=torch.float64))


def test_roi_align_accepts_box_lists_and_non_contiguous_inputs():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 4, 16, 16, generator=g)
    boxes = [
        torch.tensor([[1.0, 2.0, 9.0, 12.0]]),
        torch.tensor([[0.0, 0.0, 5.0, 5.0], [3, 3, 15, 15.0]]),
    ]
    expected = torchvision.ops.roi_align(x, boxes, 5, 1.0, 2, True)
    torch.testing.assert_close(det_ops.roi_align(x, boxes, 5, 1.0, 2, True), expected)
    x_nc = x.permute(0, 1, 3, 2)
    rois = torch.tensor([[1, 0.0, 0.0, 5.0, 5.0], [0, 3, 3, 15, 15.0]])
    torch.testing.assert_close(
        det_ops.roi_align(x_nc, rois, 5, 1.0, 2, True),
        torchvision.ops.roi_align(x_nc, rois, 5, 1.0, 2, True),
    )


def test_roi_align_half_precision():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 4, 16, 16, generator=g)
    rois = torch.tensor([[0, 1.0, 2.0, 9.0, 12.0]])
    out = det_ops.roi_align(x.half(), rois.half(), 4, 1.0, 2)
    assert out.dtype == torch.float16
    expected = det_ops.roi_align(x.half().float(), rois.half().float(), 4, 1.0, 2)
    torch.testing.assert_close(out, expected.half())


def test_roi_align_empty_inputs():
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    out = det_ops.roi_align(x, torch.zeros(0, 5), 7)
    assert out.shape == (0, 3, 7, 7)
    out.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))
    empty_map = det_ops.roi_align(torch.zeros(1, 3, 0, 8), torch.tensor([[0, 1.0, 1, 4, 4]]), 2)
    assert torch.equal(empty_map, torch.zeros(1, 3, 2, 2))


def test_roi_align_non_finite_roi_pools_to_zero():
    x = torch.randn(1, 2, 8, 8)
    rois = torch.tensor([[0, float("nan"), 1, 4, 4], [0, 1, 1, float("inf"), 4], [0, 1.0, 1, 4, 4]])
    out = det_ops.roi_align(x, rois, 2, sampling_ratio=0, aligned=True)
    assert torch.equal(out[:2], torch.zeros(2, 2, 2, 2))
    torch.testing.assert_close(out[2:], torchvision.ops.roi_align(x, rois[2:], 2, 1.0, 0, True))


@pytest.mark.parametrize(
    "input, rois, kwargs, error, message",
    [
        (
            torch.zeros(3, 8, 8),
            torch.zeros(1, 5),
            {},
            ValueError,
            r"input must have shape \[B, C, H, W\]",
        ),
        (
            torch.zeros(1, 3, 8, 8),
            torch.zeros(1, 4),
            {},
            ValueError,
            r"boxes must have shape \[K, 5\]",
        ),
        (
            torch.zeros(1, 3, 8, 8),
            torch.tensor([[1.0, 0, 0, 2, 2]]),
            {},
            ValueError,
            r"boxes\[:, 0\] must be batch indices in \[0, 1\)",
        ),
        (
            torch.zeros(1, 3, 8, 8),
            torch.zeros(1, 5),
            {"output_size": 0},
            ValueError,
            "output_size must be an int >= 1",
        ),
        (
            torch.zeros(1, 3, 8, 8),
            torch.zeros(1, 5),
            {"spatial_scale": 0.0},
            ValueError,
            "spatial_scale must be > 0",
        ),
        (
            torch.zeros(1, 3, 8, 8),
            torch.zeros(1, 5),
            {"sampling_ratio": 1.5},
            TypeError,
            "sampling_ratio must be an int",
        ),
        (
            torch.zeros(1, 3, 8, 8, dtype=torch.int32),
            torch.zeros(1, 5),
            {},
            TypeError,
            "input must have a floating dtype",
        ),
        (torch.zeros(1, 3, 8, 8), torch.zeros(1, 5, device="meta"), {}, ValueError, "same device"),
    ],
)
def test_roi_align_rejects_bad_inputs(input, rois, kwargs, error, message):
    kwargs = {"output_size": 2, **kwargs}
    with pytest.raises(error, match=message):
        det_ops.roi_align(input, rois, **kwargs)


def test_roi_align_module():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(1, 4, 16, 16, generator=g)
    rois = torch.tensor([[0, 1.0, 2.0, 29.0, 22.0]])
    module = det_ops.RoIAlign((7, 7), spatial_scale=0.5, sampling_ratio=2, aligned=True)
    torch.testing.assert_close(module(x, rois), torchvision.ops.roi_align(x, rois, 7, 0.5, 2, True))
    assert "sampling_ratio=2" in repr(module)


@pytest.mark.parametrize("aligned", [False, True])
def test_roi_align_channels_last_matches_contiguous(aligned):
    g = torch.Generator().manual_seed(3)
    feats = torch.randn(2, 19, 23, 31, generator=g)
    xy = torch.rand(40, 2, generator=g) * torch.tensor([200.0, 150.0]) - 10
    wh = torch.rand(40, 2, generator=g) * 120
    batch = torch.randint(0, 2, (40, 1), generator=g).float()
    rois = torch.cat([batch, xy, xy + wh], 1)
    rois[3, 1] = float("nan")  # pools to zeros on both paths
    nhwc = feats.contiguous(memory_format=torch.channels_last).requires_grad_()
    out = det_ops.roi_align(nhwc, rois, 7, 1 / 8, 2, aligned)
    expected = det_ops.roi_align(feats, rois, 7, 1 / 8, 2, aligned)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    assert out.is_contiguous()
    out.sum().backward()
    leaf = feats.clone().requires_grad_()
    det_ops.roi_align(leaf, rois, 7, 1 / 8, 2, aligned).sum().backward()
    torch.testing.assert_close(nhwc.grad, leaf.grad)


@pytest.mark.parametrize("channels", [5, 40])  # one thread's block; blocks on two threads
@pytest.mark.parametrize("sampling_ratio", [0, 2])
def test_roi_align_channels_last_backward_matches_torchvision(channels, sampling_ratio):
    """The channels-last backward scatters vectors of channels; border RoIs (clamped taps
    that share a pixel) and an out-of-image RoI included; the gradient stays channels-last."""
    g = torch.Generator().manual_seed(5)
    feats = torch.randn(2, channels, 13, 17, generator=g, dtype=torch.float64)
    xy = torch.rand(30, 2, generator=g, dtype=torch.float64) * 120 - 20
    wh = torch.rand(30, 2, generator=g, dtype=torch.float64) * 90
    batch = torch.randint(0, 2, (30, 1), generator=g).double()
    rois = torch.cat([batch, xy, xy + wh], 1)
    rois[0, 1:] = torch.tensor([130.0, 100.0, 160.0, 140.0], dtype=torch.float64)  # outside
    rois[1, 1:] = torch.tensor([-5.0, -5.0, 3.0, 2.0], dtype=torch.float64)  # corner
    nhwc = feats.contiguous(memory_format=torch.channels_last).requires_grad_()
    out = det_ops.roi_align(nhwc, rois, (3, 4), 1 / 8, sampling_ratio, True)
    grad_out = torch.randn(out.shape, generator=g, dtype=torch.float64)
    out.backward(grad_out)
    leaf = feats.clone().requires_grad_()
    torchvision.ops.roi_align(leaf, rois, (3, 4), 1 / 8, sampling_ratio, True).backward(grad_out)
    torch.testing.assert_close(nhwc.grad, leaf.grad)
    assert nhwc.grad.is_contiguous(memory_format=torch.channels_last)
    assert nhwc.grad[0].abs().sum() > 0 and nhwc.grad[1].abs().sum() > 0
