import importlib

import numpy as np
import pytest
import torch
import torchvision
from ops_inputs import random_rois

import det_ops
from det_ops.reference import roi_align as reference


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "batch, channels, height, width, num_rois, output_size, scale",
    [
        (2, 8, 24, 30, 20, (7, 7), 0.25),
        (1, 3, 50, 40, 9, (14, 14), 1.0),
        (3, 5, 13, 17, 12, (3, 5), 0.5),
    ],
)
def test_roi_pool_matches_torchvision(
    dtype, batch, channels, height, width, num_rois, output_size, scale
):
    g = torch.Generator().manual_seed(height + num_rois)
    x = torch.randn(batch, channels, height, width, generator=g, dtype=dtype, requires_grad=True)
    rois = random_rois(num_rois, batch, height, width, scale, dtype, generator=g)
    ours = det_ops.roi_pool(x, rois, output_size, scale)
    theirs = torchvision.ops.roi_pool(x, rois, output_size, scale)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    torch.testing.assert_close(
        ours, reference.roi_pool(x.detach(), rois, output_size, scale), rtol=0, atol=0
    )
    grad_out = torch.randn(ours.shape, generator=g, dtype=dtype)
    (our_grad,) = torch.autograd.grad(ours, x, grad_out)
    (their_grad,) = torch.autograd.grad(theirs, x, grad_out)
    torch.testing.assert_close(our_grad, their_grad)
    numpy_out = det_ops.roi_pool(x.detach().numpy(), rois.numpy(), output_size, scale)
    np.testing.assert_array_equal(numpy_out, ours.detach().numpy())


def test_roi_pool_hand_computed():
    x = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4)
    rois = torch.tensor([[0, 0.0, 0.0, 3.0, 3.0], [0, 2.6, 0.4, 3.0, 1.0]])
    out = det_ops.roi_pool(x, rois, 2)
    # RoI 0 covers the map in 2x2 quadrants; RoI 1 rounds to x 3..3, y 0..1: one column
    assert out[0, 0].tolist() == [[5.0, 7.0], [13.0, 15.0]]
    assert out[1, 0].tolist() == [[3.0, 3.0], [7.0, 7.0]]


def test_roi_pool_gradcheck():
    g = torch.Generator().manual_seed(6)
    x = torch.randn(1, 2, 8, 9, generator=g, dtype=torch.float64, requires_grad=True)
    rois = random_rois(5, 1, 8, 9, 1.0, torch.float64, generator=g)
    assert torch.autograd.gradcheck(lambda t: det_ops.roi_pool(t, rois, (3, 2)), (x,))


def test_roi_pool_empty_and_non_finite():
    x = torch.randn(1, 2, 8, 8, requires_grad=True)
    assert det_ops.roi_pool(x, torch.zeros(0, 5), 3).shape == (0, 2, 3, 3)
    rois = torch.tensor([[0, float("nan"), 0, 4, 4], [0, 0, 0, 1e30, 4]])
    out = det_ops.roi_pool(x, rois, 2)
    assert torch.equal(out[0], torch.zeros(2, 2, 2))
    assert torch.isfinite(out).all()
    assert torch.equal(
        det_ops.roi_pool(torch.zeros(1, 2, 0, 0), rois[1:], 2), torch.zeros(1, 2, 2, 2)
    )


def test_roi_pool_saves_an_int32_argmax():
    # int32 halves what the backward keeps (1000 RoIs x 256 x 7 x 7: 50 MB, not 100 MB).
    x = torch.randn(1, 3, 9, 10)
    rois = torch.tensor([[0, 1.0, 2.0, 8.0, 7.0], [0, 50.0, 50.0, 60.0, 60.0]])
    out, argmax = torch.ops.det_ops.roi_pool(x, rois, 1.0, 2, 2)
    assert argmax.dtype == torch.int32
    assert torch.equal(argmax[1], torch.full((3, 2, 2), -1, dtype=torch.int32))  # empty bins
    planes = x[0].flatten(1)
    assert torch.equal(out[0].flatten(1), planes.gather(1, argmax[0].flatten(1).long()))
    fake = torch.ops.det_ops.roi_pool(x.to("meta"), rois.to("meta"), 1.0, 2, 2)
    assert fake[1].dtype == torch.int32


def test_roi_pool_rejects_planes_beyond_the_int32_argmax(monkeypatch):
    monkeypatch.setattr(importlib.import_module("det_ops.roi_pool"), "ARGMAX_LIMIT", 63)
    with pytest.raises(ValueError, match=r"planes of at most 2\*\*31 - 1 pixels.*got 8 x 8"):
        det_ops.roi_pool(torch.zeros(1, 1, 8, 8), torch.zeros(0, 5), 2)


def test_roi_pool_module_and_errors():
    x = torch.randn(1, 4, 16, 16)
    rois = torch.tensor([[0, 1.0, 2.0, 29.0, 22.0]])
    module = det_ops.RoIPool(7, spatial_scale=0.5)
    torch.testing.assert_close(module(x, rois), torchvision.ops.roi_pool(x, rois, 7, 0.5))
    with pytest.raises(ValueError, match=r"boxes must have shape \[K, 5\]"):
        module(x, rois[:, :4])
