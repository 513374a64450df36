"""Deformable RoI pooling with aligned="legacy" (the 2019 mmdetection kernel,
mmdet v0.6 ops/dcn/src/deform_pool_cuda_kernel.cu): hand-computed values of its
geometry, sampling, skipping and gradients; the pure-torch reference with
gradients; the numpy path; argument checks; modules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import det_ops
from det_ops import deform_roi_pool, modulated_deform_roi_pool
from det_ops.reference import deform_roi_pool as reference

LEGACY = "legacy"


def ramp(height=10, width=10):
    """f(y, x) = x + 10 y: a bilinear sample at (y, x) inside the map is exactly x + 10 y."""
    ys, xs = torch.meshgrid(torch.arange(float(height)), torch.arange(float(width)), indexing="ij")
    return (xs + 10 * ys).reshape(1, 1, height, width).double()


def box(x1, y1, x2, y2):
    return torch.tensor([[0, x1, y1, x2, y2]], dtype=torch.float64)


def pool(input, rois, offset=None, size=2, scale=1.0, samples=2, gamma=0.5, mask=None):
    if mask is None:
        return deform_roi_pool(input, rois, offset, size, scale, samples, gamma, aligned=LEGACY)
    return modulated_deform_roi_pool(
        input, rois, offset, mask, size, scale, samples, gamma, aligned=LEGACY
    )


def shift(dx, dy, size=2):
    """Offsets of one RoI, the same for every bin."""
    offset = torch.empty(1, 2, size, size, dtype=torch.float64)
    offset[:, 0], offset[:, 1] = dx, dy
    return offset


def test_geometry_by_hand():
    # The RoI (2, 2, 5, 5) spans [2 - 0.5, 5 + 1 - 0.5] = [1.5, 5.5] on the map: 2x2 bins of
    # size 2, each with 2x2 points at its start + 0, 1 (not centred): bin (0, 0) reads
    # x, y in {1.5, 2.5}, mean 2 + 10 * 2.
    out = pool(ramp(), box(2.0, 2.0, 5.0, 5.0))
    expected = torch.tensor([[[[22.0, 24.0], [42.0, 44.0]]]], dtype=torch.float64)
    torch.testing.assert_close(out, expected)
    # RoIAlign's aligned geometry spans [1.5, 4.5] with centred points: other values.
    aligned = deform_roi_pool(ramp(), box(2.0, 2.0, 5.0, 5.0), None, 2, 1.0, 2)
    assert not torch.allclose(aligned, expected)


def test_offsets_move_bins_by_gamma_times_the_roi_size_with_gradients():
    # dx = (0.3 * gamma) * roi_w = 0.15 * 4 = 0.6, dy = -0.1 * 4 = -0.4: bin (0, 0) reads
    # x in {2.1, 3.1}, y in {1.1, 2.1}: 2.6 + 16.
    offset = shift(0.3, -0.2).requires_grad_()
    out = pool(ramp(), box(2.0, 2.0, 5.0, 5.0), offset)
    expected = torch.tensor([[[[18.6, 20.6], [38.6, 40.6]]]], dtype=torch.float64)
    torch.testing.assert_close(out, expected)
    (grad,) = torch.autograd.grad(out.sum(), offset)
    # d out / d offset = gamma * roi size * df/dx (1) or df/dy (10).
    torch.testing.assert_close(grad[0, 0], torch.full((2, 2), 2.0, dtype=torch.float64))
    torch.testing.assert_close(grad[0, 1], torch.full((2, 2), 20.0, dtype=torch.float64))


def test_no_gradient_on_whole_pixels():
    # dx = 0.125 * 4 = 0.5 puts every x on a whole pixel, where the 2019 kernel interpolates
    # between floor and ceil (the same pixel): no gradient along x; y is unaffected.
    offset = shift(0.25, -0.2).requires_grad_()
    out = pool(ramp(), box(2.0, 2.0, 5.0, 5.0), offset)
    (grad,) = torch.autograd.grad(out.sum(), offset)
    torch.testing.assert_close(grad[0, 0], torch.zeros(2, 2, dtype=torch.float64))
    torch.testing.assert_close(grad[0, 1], torch.full((2, 2), 20.0, dtype=torch.float64))
    want = torch.autograd.grad(
        reference.deform_roi_pool(
            ramp(), box(2.0, 2.0, 5.0, 5.0), offset, 2, 1.0, 2, 0.5, LEGACY
        ).sum(),
        offset,
    )[0]
    torch.testing.assert_close(grad, want)


def test_points_outside_are_skipped_and_the_rest_averaged():
    # One 1x1 bin of the RoI (9, 0, 12, 3): x in [8.5, 12.5], points 8.5 and 10.5 (more than
    # half a pixel past the last column: skipped); y in [-0.5, 3.5], points -0.5 (clamped to
    # 0) and 1.5. Mean of the two points left: 8.5 + 10 * 0.75.
    input = ramp().requires_grad_()
    out = pool(input, box(9.0, 0.0, 12.0, 3.0), size=1)
    torch.testing.assert_close(out.flatten(), torch.tensor([16.0], dtype=torch.float64))
    # The input gradient is spread over the two points kept, each weighted 1 / 2.
    (grad,) = torch.autograd.grad(out.sum(), input)
    expected = torch.zeros(10, 10, dtype=torch.float64)
    expected[0, 8:10] += 0.25  # (0, 8.5)
    expected[1:3, 8:10] += 0.125  # (1.5, 8.5)
    torch.testing.assert_close(grad[0, 0], expected)


def test_a_bin_with_every_point_outside_is_zero():
    offset = shift(10.0, 0.0).requires_grad_()  # 20 pixels to the right
    mask = torch.full((1, 1, 2, 2), 0.5, dtype=torch.float64, requires_grad=True)
    out = pool(ramp(), box(2.0, 2.0, 5.0, 5.0), offset, mask=mask)
    torch.testing.assert_close(out, torch.zeros(1, 1, 2, 2, dtype=torch.float64))
    grads = torch.autograd.grad(out.sum(), [offset, mask])
    for g in grads:
        assert torch.all(g == 0)


def test_corners_are_rounded_half_away_from_zero():
    # 2.5 rounds to 3 (torch.round would give 2) and -2.5 to -3; 2.4 to 2.
    input = ramp(12, 12)
    rounded = pool(input, box(3.0, -3.0, 7.0, 6.0))
    torch.testing.assert_close(pool(input, box(2.5, -2.5, 6.6, 5.5)), rounded)
    assert not torch.allclose(pool(input, box(2.4, -2.5, 6.6, 5.5)), rounded)
    expected = reference.deform_roi_pool(
        input, box(2.5, -2.5, 6.6, 5.5), None, 2, 1.0, 2, 0.5, LEGACY
    )
    torch.testing.assert_close(rounded, expected)


def test_rois_are_at_least_a_tenth_of_a_pixel():
    # The point RoI (32, 32, 32, 32) at scale 1/16 spans [1.5, 1.5625]: 0.0625 wide, widened to
    # 0.1, so the points of its 1x1 bin are 1.5 and 1.55 along each axis.
    out = pool(ramp(), box(32.0, 32.0, 32.0, 32.0), size=1, scale=1 / 16)
    torch.testing.assert_close(out.flatten(), torch.tensor([1.525 * 11], dtype=torch.float64))


def test_mask_scales_each_bin():
    mask = torch.tensor([[[[0.5, 1.0], [0.0, 2.0]]]], dtype=torch.float64, requires_grad=True)
    out = pool(ramp(), box(2.0, 2.0, 5.0, 5.0), shift(0.3, -0.2), mask=mask)
    unmasked = torch.tensor([[[[18.6, 20.6], [38.6, 40.6]]]], dtype=torch.float64)
    torch.testing.assert_close(out, unmasked * mask.detach())
    (grad,) = torch.autograd.grad(out.sum(), mask)
    torch.testing.assert_close(grad, unmasked)


def random_case(dtype, *, seed=0, channels=3, out=(3, 4)):
    """RoIs inside, across the border and past it, with half-pixel corners; random offsets."""
    g = torch.Generator().manual_seed(seed)
    input = torch.randn(2, channels, 12, 14, dtype=dtype, generator=g)
    rois = torch.tensor(
        [
            [0, 1.0, 2.0, 9.0, 10.0],
            [1, 0.5, 3.5, 12.0, 7.0],
            [1, -3.0, -2.0, 20.0, 18.0],
            [0, 4.2, 4.1, 4.9, 5.0],
            [1, 12.0, 9.0, 30.0, 25.0],  # mostly past the map: many points skipped
            [0, -2.5, 6.5, 3.5, 11.5],
        ],
        dtype=dtype,
    )
    offset = 0.5 * torch.randn(len(rois), 2, *out, dtype=dtype, generator=g)
    mask = torch.rand(len(rois), 1, *out, dtype=dtype, generator=g)
    return input, rois, offset, mask


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("modulated", [False, True])
@pytest.mark.parametrize("samples", [1, 4])
# 40 channels: more than one thread's block in the grad_input kernel.
@pytest.mark.parametrize("channels", [3, 40])
def test_matches_reference_with_gradients(dtype, modulated, samples, channels):
    input, rois, offset, mask = random_case(dtype, seed=samples, channels=channels)
    leaves = [input, offset] + ([mask] if modulated else [])
    for t in leaves:
        t.requires_grad_()
    args = ((3, 4), 0.9, samples, 0.3, LEGACY)
    if modulated:
        out = modulated_deform_roi_pool(input, rois, offset, mask, *args)
        expected = reference.modulated_deform_roi_pool(input, rois, offset, mask, *args)
    else:
        out = deform_roi_pool(input, rois, offset, *args)
        expected = reference.deform_roi_pool(input, rois, offset, *args)
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {}
    torch.testing.assert_close(out, expected, **tol)
    assert torch.any(out == 0) and torch.any(out != 0)  # some bins wholly outside
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, leaves, grad)
    want = torch.autograd.grad(expected, leaves, grad)
    for name, g, w in zip(["input", "offset", "mask"], got, want, strict=False):
        atol = (1e-5 if dtype == torch.float32 else 1e-12) * float(w.abs().max())
        torch.testing.assert_close(g, w, rtol=1e-5, atol=atol, msg=f"grad of {name}")


def test_gradcheck_float64():
    # Away from the kinks (whole pixels, the map's border band): the RoIs sit inside the
    # map, the offsets are small, and no point lies within 1e-3 pixel of a whole pixel.
    g = torch.Generator().manual_seed(3)
    input = torch.randn(1, 2, 9, 10, dtype=torch.float64, generator=g)
    rois = torch.tensor([[0, 2.0, 2.0, 6.0, 5.0], [0, 1.0, 3.0, 5.0, 6.0]], dtype=torch.float64)
    offset = 0.1 * torch.randn(2, 2, 2, 3, dtype=torch.float64, generator=g)
    mask = torch.rand(2, 1, 2, 3, dtype=torch.float64, generator=g)
    args = ((2, 3), 0.9, 3, 0.2, LEGACY)
    for p in reference.sample_points(rois, offset, input.shape, *args):
        for coord in (p.y, p.x):
            assert float((coord - coord.round()).abs().min()) > 1e-3
            assert float(coord.min()) > 0 and float(coord.max()) < 8
    for t in (input, offset, mask):
        t.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda i, o, m: modulated_deform_roi_pool(i, rois, o, m, *args), (input, offset, mask)
    )
    assert torch.autograd.gradcheck(
        lambda i, o: deform_roi_pool(i, rois, o, *args), (input, offset)
    )


@pytest.mark.parametrize("modulated", [False, True])
def test_numpy_path_equals_torch_path(modulated):
    input, rois, offset, mask = random_case(torch.float32)
    extra = (mask,) if modulated else ()
    fn = modulated_deform_roi_pool if modulated else deform_roi_pool
    args = ((3, 4), 0.9, 4, 0.1, LEGACY)
    got = fn(input.numpy(), rois.numpy(), offset.numpy(), *(m.numpy() for m in extra), *args)
    want = fn(input, rois, offset, *extra, *args)
    assert isinstance(got, np.ndarray) and got.dtype == np.float32
    np.testing.assert_array_equal(got, want.numpy())


def test_no_offset_is_zero_offset():
    input, rois, offset, _ = random_case(torch.float32)
    args = ((3, 4), 0.9, 4, 0.1, LEGACY)
    torch.testing.assert_close(
        deform_roi_pool(input, rois, None, *args),
        deform_roi_pool(input, rois, torch.zeros_like(offset), *args),
        rtol=0,
        atol=0,
    )


def test_non_finite_offsets_and_rois_pool_to_zero():
    input, rois, offset, mask = random_case(torch.float32, out=(2, 2))
    offset[0, 0, 1, 1] = float("nan")
    offset[1, 1, 0, 0] = float("inf")
    rois[2, 3] = float("inf")
    out = modulated_deform_roi_pool(input, rois, offset, mask, 2, 1.0, 2, aligned=LEGACY)
    assert torch.all(out[0, :, 1, 1] == 0) and torch.all(out[1, :, 0, 0] == 0)
    assert torch.all(out[2] == 0) and torch.all(out[3] != 0)
    expected = reference.modulated_deform_roi_pool(
        input, rois, offset, mask, 2, 1.0, 2, aligned=LEGACY
    )
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("aligned", [False, "mmdet", None, 2])
def test_invalid_geometry_names_the_op_and_the_choices(aligned):
    input, rois, offset, mask = random_case(torch.float32, out=(2, 2))
    choices = r"aligned must be True .* or 'legacy'"
    with pytest.raises(ValueError, match=f"deform_roi_pool: {choices}"):
        deform_roi_pool(input, rois, offset, 2, aligned=aligned)
    with pytest.raises(ValueError, match=f"modulated_deform_roi_pool: {choices}"):
        modulated_deform_roi_pool(input, rois, offset, mask, 2, aligned=aligned)
    with pytest.raises(ValueError, match=f"DeformRoIPoolPack: {choices}"):
        det_ops.DeformRoIPoolPack(2, 3, 8, aligned=aligned)


def test_legacy_needs_points_per_bin():
    input, rois, offset, _ = random_case(torch.float32, out=(2, 2))
    with pytest.raises(ValueError, match="deform_roi_pool: sampling_ratio must be > 0"):
        deform_roi_pool(input, rois, offset, 2, 1.0, 0, aligned=LEGACY)


def test_pack_modules_pool_the_offset_mlp_input_the_legacy_way():
    torch.manual_seed(0)
    input = torch.randn(2, 4, 16, 16)
    rois = torch.tensor([[0, 1.0, 2.0, 20.0, 25.0], [1, 8.0, 4.0, 30.0, 14.0]])
    args = (3, 0.5, 4, 0.1, LEGACY)
    expected = deform_roi_pool(input, rois, None, *args)
    pack = det_ops.DeformRoIPoolPack(3, 4, 8, 0.5, 4, aligned=LEGACY)
    assert "aligned='legacy'" in repr(pack)
    torch.testing.assert_close(pack(input, rois), expected)  # fresh: zero offsets
    modulated = det_ops.ModulatedDeformRoIPoolPack(3, 4, 8, 0.5, 4, aligned=LEGACY)
    torch.testing.assert_close(modulated(input, rois), 0.5 * expected)
    # With trained layers: the MLPs read the legacy pooling without offsets.
    for module in (pack, modulated):
        for p in module.parameters():
            torch.nn.init.normal_(p, std=0.05)
    with torch.no_grad():
        features = expected.flatten(1)
        offset = pack.offset_fc(features).view(-1, 2, 3, 3)
        torch.testing.assert_close(pack(input, rois), deform_roi_pool(input, rois, offset, *args))
        offset = modulated.offset_fc(features).view(-1, 2, 3, 3)
        mask = torch.sigmoid(modulated.mask_fc(features)).view(-1, 1, 3, 3)
        torch.testing.assert_close(
            modulated(input, rois), modulated_deform_roi_pool(input, rois, offset, mask, *args)
        )
