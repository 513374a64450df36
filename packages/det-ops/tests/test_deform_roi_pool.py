"""Deformable RoI pooling: against torchvision's RoIAlign, the pure-torch reference,
finite differences and hand-computed values; argument checks; modules."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import det_ops
import det_ops._torch  # registers torch.ops.det_ops.*
from det_ops import deform_roi_pool, modulated_deform_roi_pool
from det_ops.reference import deform_roi_pool as reference


def random_case(dtype, *, seed=0, out=(3, 4), channels=3, height=12, width=14):
    """A feature map, RoIs (one reaching past the border) and random offsets and masks."""
    g = torch.Generator().manual_seed(seed)
    input = torch.randn(2, channels, height, width, dtype=dtype, generator=g)
    rois = torch.tensor(
        [
            [0, 1.0, 2.0, 9.0, 10.0],
            [1, 0.5, 3.3, 12.0, 7.0],
            [1, -3.0, -2.0, 20.0, 18.0],  # past every border: exercises the clamped band
            [0, 4.2, 4.1, 4.9, 5.0],  # smaller than a bin
        ],
        dtype=dtype,
    )
    offset = torch.randn(len(rois), 2, *out, dtype=dtype, generator=g)
    mask = torch.rand(len(rois), 1, *out, dtype=dtype, generator=g)
    return input, rois, offset, mask


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("sampling_ratio", [0, 2])
@pytest.mark.parametrize("zero_offset", [False, True])
def test_without_offset_equals_torchvision_roi_align(dtype, sampling_ratio, zero_offset):
    input, rois, offset, _ = random_case(dtype)
    input.requires_grad_()
    offset = torch.zeros_like(offset) if zero_offset else None
    out = deform_roi_pool(input, rois, offset, (3, 4), 0.9, sampling_ratio, gamma=0.3)
    expected = torchvision.ops.roi_align(input, rois, (3, 4), 0.9, sampling_ratio, aligned=True)
    torch.testing.assert_close(out, expected)
    grad = torch.randn_like(out)
    (got,) = torch.autograd.grad(out, input, grad)
    (want,) = torch.autograd.grad(expected, input, grad)
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("sampling_ratio", [0, 2])
@pytest.mark.parametrize("modulated", [False, True])
# 40 channels: more than one thread's block in the grad_input kernel.
@pytest.mark.parametrize("channels", [3, 40])
def test_matches_reference_with_gradients(sampling_ratio, modulated, channels):
    input, rois, offset, mask = random_case(torch.float32, seed=1, channels=channels)
    leaves = [input, offset] + ([mask] if modulated else [])
    for t in leaves:
        t.requires_grad_()
    args = (0.9, sampling_ratio, 0.25)
    if modulated:
        out = modulated_deform_roi_pool(input, rois, offset, mask, (3, 4), *args)
        expected = reference.modulated_deform_roi_pool(input, rois, offset, mask, (3, 4), *args)
    else:
        out = deform_roi_pool(input, rois, offset, (3, 4), *args)
        expected = reference.deform_roi_pool(input, rois, offset, (3, 4), *args)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, leaves, grad)
    want = torch.autograd.grad(expected, leaves, grad)
    for name, g, w in zip(["input", "offset", "mask"], got, want, strict=False):
        # atol relative to the gradient's scale: sums over channels and points cancel.
        atol = 1e-5 * float(w.abs().max())
        torch.testing.assert_close(g, w, rtol=1e-5, atol=atol, msg=f"grad of {name}")


def test_gradcheck_float64():
    # Bilinear interpolation has kinks where a sampling point crosses a pixel row
    # or column (and at the clamped band), where finite differences and the
    # analytic gradient legitimately disagree. The RoIs sit inside the map, the
    # offsets are small, and the assertion below checks that no sampling point
    # lies within 1e-3 pixel of a kink, far beyond gradcheck's eps of 1e-6.
    g = torch.Generator().manual_seed(3)
    input = torch.randn(1, 2, 9, 10, dtype=torch.float64, generator=g)
    rois = torch.tensor([[0, 2.3, 1.7, 7.1, 6.4], [0, 1.2, 2.9, 5.3, 7.6]], dtype=torch.float64)
    offset = 0.3 * torch.randn(2, 2, 2, 3, dtype=torch.float64, generator=g)
    mask = torch.rand(2, 1, 2, 3, dtype=torch.float64, generator=g)
    args = ((2, 3), 1.0, 2, 0.2)
    for p in reference.sample_points(rois, offset, input.shape, *args):
        for coord in (p.y, p.x):
            distance = (coord - coord.round()).abs()
            assert float(distance.min()) > 1e-3
            assert float(coord.min()) > 0 and float(coord.max()) < 8
    for t in (input, offset, mask):
        t.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda i, o, m: modulated_deform_roi_pool(i, rois, o, m, *args), (input, offset, mask)
    )
    assert torch.autograd.gradcheck(
        lambda i, o: deform_roi_pool(i, rois, o, *args), (input, offset)
    )


def ramp_case():
    """f(y, x) = x + 10 y on a 10x10 map: a bilinear sample at (y, x) is exactly x + 10 y."""
    ys, xs = torch.meshgrid(torch.arange(10.0), torch.arange(10.0), indexing="ij")
    input = (xs + 10 * ys).reshape(1, 1, 10, 10).double()
    # Aligned geometry: the RoI covers feature coordinates [1.5, 5.5] (size 4), so
    # the 2x2 bins are centred at 2.5 and 4.5 on both axes.
    rois = torch.tensor([[0, 2.0, 2.0, 6.0, 6.0]], dtype=torch.float64)
    offset = torch.empty(1, 2, 2, 2, dtype=torch.float64)
    offset[:, 0] = 0.3  # dx = gamma * roi_w * 0.3 = 0.5 * 4 * 0.3 = 0.6 pixel
    offset[:, 1] = -0.2  # dy = 0.5 * 4 * -0.2 = -0.4 pixel
    return input, rois, offset


def test_ramp_output_moves_by_the_offset():
    input, rois, offset = ramp_case()
    offset.requires_grad_()
    out = deform_roi_pool(input, rois, offset, 2, 1.0, 2, gamma=0.5)
    # Bin centres (2.1, 3.1), (2.1, 5.1), (4.1, 3.1), (4.1, 5.1) -> x + 10 y.
    expected = torch.tensor([[[[24.1, 26.1], [44.1, 46.1]]]], dtype=torch.float64)
    torch.testing.assert_close(out, expected)
    (grad,) = torch.autograd.grad(out.sum(), offset)
    # d out / d offset_x = gamma * roi_w * df/dx = 0.5 * 4 * 1; along y: 0.5 * 4 * 10.
    torch.testing.assert_close(grad[0, 0], torch.full((2, 2), 2.0, dtype=torch.float64))
    torch.testing.assert_close(grad[0, 1], torch.full((2, 2), 20.0, dtype=torch.float64))


def test_ramp_modulated_scales_bins_by_the_mask():
    input, rois, offset = ramp_case()
    mask = torch.tensor([[[[0.5, 1.0], [0.0, 2.0]]]], dtype=torch.float64, requires_grad=True)
    out = modulated_deform_roi_pool(input, rois, offset, mask, 2, 1.0, 2, gamma=0.5)
    expected = torch.tensor([[[[12.05, 26.1], [0.0, 92.2]]]], dtype=torch.float64)
    torch.testing.assert_close(out, expected)
    (grad,) = torch.autograd.grad(out.sum(), mask)
    unmasked = torch.tensor([[[[24.1, 26.1], [44.1, 46.1]]]], dtype=torch.float64)
    torch.testing.assert_close(grad, unmasked)


def test_bin_shifted_off_the_map_reads_zero():
    input, rois, offset = ramp_case()
    offset[:, 0] = 10.0  # 20 pixels to the right: past the one-pixel band
    out = deform_roi_pool(input, rois, offset, 2, 1.0, 2, gamma=0.5)
    torch.testing.assert_close(out, torch.zeros(1, 1, 2, 2, dtype=torch.float64))


def test_non_finite_offsets_and_rois_pool_to_zero():
    input, rois, offset, mask = random_case(torch.float32, out=(2, 2))
    offset[0, 0, 1, 1] = float("nan")
    offset[1, 1, 0, 0] = float("inf")
    rois[2, 3] = float("inf")
    out = modulated_deform_roi_pool(input, rois, offset, mask, 2, 1.0, 2)
    assert torch.all(out[0, :, 1, 1] == 0) and torch.all(out[1, :, 0, 0] == 0)
    assert torch.all(out[2] == 0) and torch.all(out[3] != 0)
    expected = reference.modulated_deform_roi_pool(input, rois, offset, mask, 2, 1.0, 2)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("modulated", [False, True])
def test_numpy_path_equals_torch_path(modulated):
    input, rois, offset, mask = random_case(torch.float32)
    extra = (mask,) if modulated else ()
    fn = modulated_deform_roi_pool if modulated else deform_roi_pool
    got = fn(input.numpy(), rois.numpy(), offset.numpy(), *(m.numpy() for m in extra), (3, 4))
    want = fn(input, rois, offset, *extra, (3, 4))
    assert isinstance(got, np.ndarray) and got.dtype == np.float32
    np.testing.assert_array_equal(got, want.numpy())


def test_rois_as_a_list_of_boxes_per_image():
    input, rois, offset, _ = random_case(torch.float64)
    boxes = [rois[rois[:, 0] == i, 1:] for i in range(2)]
    order = torch.cat([torch.nonzero(rois[:, 0] == i).flatten() for i in range(2)])
    out = deform_roi_pool(input, boxes, offset[order], (3, 4))
    torch.testing.assert_close(out, deform_roi_pool(input, rois[order], offset[order], (3, 4)))


def test_zero_rois():
    input = torch.randn(1, 3, 8, 8, requires_grad=True)
    offset = torch.zeros(0, 2, 2, 2, requires_grad=True)
    mask = torch.zeros(0, 1, 2, 2, requires_grad=True)
    out = modulated_deform_roi_pool(input, torch.zeros(0, 5), offset, mask, 2)
    assert out.shape == (0, 3, 2, 2)
    out.sum().backward()
    assert torch.all(input.grad == 0) and offset.grad.shape == offset.shape
    assert deform_roi_pool(np.zeros((1, 3, 8, 8)), np.zeros((0, 5)), None, 2).shape == (0, 3, 2, 2)


def test_empty_feature_map_pools_to_zeros():
    input = torch.randn(1, 2, 0, 5, requires_grad=True)
    rois = torch.tensor([[0, 0.0, 0.0, 4.0, 4.0]])
    offset = torch.randn(1, 2, 2, 2, requires_grad=True)
    mask = torch.rand(1, 1, 2, 2, requires_grad=True)
    out = modulated_deform_roi_pool(input, rois, offset, mask, 2)
    torch.testing.assert_close(out, torch.zeros(1, 2, 2, 2))
    out.sum().backward()
    assert input.grad.shape == (1, 2, 0, 5)
    torch.testing.assert_close(offset.grad, torch.zeros(1, 2, 2, 2))
    torch.testing.assert_close(mask.grad, torch.zeros(1, 1, 2, 2))


def test_pack_modules_start_as_roi_align_and_learn_offsets():
    torch.manual_seed(0)
    input = torch.randn(2, 4, 16, 16)
    rois = torch.tensor([[0, 1.0, 2.0, 20.0, 25.0], [1, 8.0, 4.0, 30.0, 14.0]])
    expected = torchvision.ops.roi_align(input, rois, 3, 0.5, 2, aligned=True)
    pack = det_ops.DeformRoIPoolPack(
        3, 4, deform_fc_channels=8, spatial_scale=0.5, sampling_ratio=2
    )
    out = pack(input, rois)
    torch.testing.assert_close(out, expected)
    out.square().sum().backward()
    # The zero-initialised last layer still gets a gradient, so offsets can be learned.
    assert pack.offset_fc[-1].weight.grad.abs().sum() > 0
    modulated = det_ops.ModulatedDeformRoIPoolPack(3, 4, 8, 0.5, 2)
    out = modulated(input, rois)
    torch.testing.assert_close(out, 0.5 * expected)
    out.square().sum().backward()
    assert modulated.mask_fc[-1].weight.grad.abs().sum() > 0
    assert modulated.offset_fc[-1].weight.grad.abs().sum() > 0


def test_deform_roi_pool_module_and_channel_check():
    input, rois, offset, _ = random_case(torch.float32)
    module = det_ops.DeformRoIPool((3, 4), 0.9, 2, 0.25)
    torch.testing.assert_close(
        module(input, rois, offset), deform_roi_pool(input, rois, offset, (3, 4), 0.9, 2, 0.25)
    )
    assert "gamma=0.25" in repr(module)
    with pytest.raises(ValueError, match="output_channels"):
        det_ops.DeformRoIPoolPack(2, 5, 8)(input, rois)


@pytest.mark.parametrize("aligned", [1, 2])  # the kernels' modes: True, "legacy"
@pytest.mark.parametrize("with_offset, with_mask", [(True, True), (True, False), (False, False)])
def test_opcheck(with_offset, with_mask, aligned):
    input, rois, offset, mask = random_case(torch.float64, out=(2, 2), channels=2)
    input.requires_grad_()
    offset = offset.requires_grad_() if with_offset else None
    mask = mask.requires_grad_() if with_mask else None
    args = (input, rois, offset, mask, 0.9, 2, 2, 2, 0.1, aligned)
    torch.library.opcheck(torch.ops.det_ops.deform_roi_pool.default, args)
    grad = torch.randn(len(rois), 2, 2, 2, dtype=torch.float64)
    # The backward op has no autograd of its own (no double backward): plain tensors.
    plain = [None if t is None else t.detach() for t in (input, offset, mask)]
    backward_args = (
        grad,
        plain[0],
        rois,
        plain[1],
        plain[2],
        0.9,
        2,
        2,
        2,
        0.1,
        aligned,
        True,
        True,
    )
    torch.library.opcheck(torch.ops.det_ops.deform_roi_pool_backward.default, backward_args)


def _bad_inputs():
    input, rois, offset, mask = random_case(torch.float32, out=(2, 2))
    ok = {"input": input, "rois": rois, "offset": offset, "mask": mask, "output_size": 2}
    cases = [
        ({"input": input[0]}, ValueError, "input"),
        ({"input": input.long()}, TypeError, "input"),
        ({"rois": rois[:, :4]}, ValueError, "rois"),
        ({"rois": rois.int()}, TypeError, "rois"),
        ({"offset": offset[:, :1]}, ValueError, "offset"),
        ({"offset": offset[0]}, ValueError, "offset"),
        ({"offset": offset[:3]}, ValueError, "offset"),
        ({"offset": offset.int()}, TypeError, "offset"),
        ({"offset": offset.numpy()}, TypeError, "offset"),
        ({"offset": offset.to("meta")}, ValueError, "offset"),
        ({"offset": torch.zeros(4, 2, 2, 3)}, ValueError, "offset"),
        ({"mask": mask.expand(4, 2, 2, 2)}, ValueError, "mask"),
        ({"mask": mask[..., 0]}, ValueError, "mask"),
        ({"mask": mask > 0.5}, TypeError, "mask"),
        ({"mask": None}, TypeError, "mask"),
        ({"gamma": "0.1"}, TypeError, "gamma"),
        ({"gamma": float("nan")}, ValueError, "gamma"),
        ({"sampling_ratio": 1.5}, TypeError, "sampling_ratio"),
        ({"output_size": 0}, ValueError, "output_size"),
        ({"spatial_scale": 0.0}, ValueError, "spatial_scale"),
        ({"rois": rois + torch.tensor([5.0, 0, 0, 0, 0])}, ValueError, "rois"),
    ]
    return [({**ok, **change}, error, name) for change, error, name in cases]


@pytest.mark.parametrize("kwargs, error, name", _bad_inputs())
def test_bad_inputs_name_the_argument(kwargs, error, name):
    with pytest.raises(error, match=name):
        modulated_deform_roi_pool(**kwargs)
    if name != "mask":
        kwargs.pop("mask")
        with pytest.raises(error, match=name):
            deform_roi_pool(**kwargs)


finite = st.floats(-100, 100, width=32)
special = st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e30, -1e30])
# RoIs stay small or non-finite: a finite huge RoI is legal but adaptive sampling
# would take 1024 x 1024 points per bin, too slow for a fuzz test.
coordinate = st.one_of(st.floats(-20, 40, width=32), st.sampled_from([float("nan"), float("inf")]))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_shapes_and_values(data):
    """Any shapes and values: either an output of the right shape, or ValueError/TypeError."""
    draw = data.draw
    # Mostly valid calls (so the kernels run on odd shapes and values), else one
    # argument made invalid.
    broken = draw(st.sampled_from([None] * 6 + ["batch_index", "output_size", "offset", "gamma"]))
    b, c, h, w = (draw(st.integers(0, 3)) for _ in range(4))
    k = draw(st.integers(0, 3))
    out_h, out_w = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    input = np.asarray(
        draw(st.lists(finite, min_size=b * c * h * w, max_size=b * c * h * w)), dtype=np.float32
    ).reshape(b, c, h, w)
    index = st.sampled_from([-1, b]) if broken == "batch_index" else st.integers(0, max(b - 1, 0))
    rows = st.tuples(index.map(float), *[coordinate] * 4)
    rois = np.asarray(draw(st.lists(rows, min_size=k, max_size=k)), dtype=np.float32).reshape(k, 5)
    offset = None
    if draw(st.booleans()) or broken == "offset":
        shape = (k, 2, out_h, out_w + (broken == "offset"))
        values = st.lists(
            st.one_of(finite, special),
            min_size=k * 2 * out_h * shape[3],
            max_size=k * 2 * out_h * shape[3],
        )
        offset = np.asarray(draw(values), dtype=np.float32).reshape(shape)
    bins = k * out_h * out_w
    mask = np.asarray(draw(st.lists(st.floats(-10, 10), min_size=bins, max_size=bins)))
    mask = mask.reshape(k, 1, out_h, out_w)
    invalid_gamma = st.sampled_from([True, "x", float("nan")])
    gamma = draw(invalid_gamma if broken == "gamma" else st.floats(-2, 2))
    output_size = (0, out_w) if broken == "output_size" else (out_h, out_w)
    sampling_ratio = draw(st.integers(-1, 3))
    aligned = draw(st.sampled_from([True, "legacy"]))
    use_torch, modulated = draw(st.booleans()), draw(st.booleans())
    if use_torch:
        input, rois, mask = torch.from_numpy(input), torch.from_numpy(rois), torch.from_numpy(mask)
        offset = None if offset is None else torch.from_numpy(offset)
    args = (output_size, 0.5, sampling_ratio, gamma, aligned)
    try:
        if modulated:
            out = modulated_deform_roi_pool(input, rois, offset, mask, *args)
        else:
            out = deform_roi_pool(input, rois, offset, *args)
    except (ValueError, TypeError):
        # b == 0 with RoIs leaves no valid batch index: an error, rightly; so does
        # legacy pooling without a positive number of points per bin side.
        assert (
            broken is not None
            or (b == 0 and k > 0)
            or (aligned == "legacy" and sampling_ratio <= 0)
        )
        return
    assert broken is None or (broken == "batch_index" and k == 0)
    assert aligned is True or sampling_ratio > 0
    assert tuple(out.shape) == (k, c, out_h, out_w)
    assert type(out) is type(input)
    # The feature map is finite; non-finite RoIs and shifts read zeros.
    assert np.isfinite(np.asarray(out)).all()
