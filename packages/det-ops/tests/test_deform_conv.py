import re

import numpy as np
import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st

import det_ops
import det_ops._torch
from det_ops._arrays import NUMPY
from det_ops.deform_conv import deform_im2col_kernel
from det_ops.modules import (
    DeformConv2d,
    DeformConv2dPack,
    ModulatedDeformConv2d,
    ModulatedDeformConv2dPack,
)
from det_ops.reference import deform_conv as reference

ops = torch.ops.det_ops


def tolerances(dtype):
    if dtype == torch.float32:
        return {"rtol": 1e-5, "atol": 2e-5}
    return {"rtol": 1e-10, "atol": 1e-10}


def pair(v):
    return (v, v) if isinstance(v, int) else v


def make_inputs(
    batch,
    channels,
    height,
    width,
    out_channels,
    kernel,
    stride,
    padding,
    dilation,
    groups,
    offset_groups,
    *,
    modulated,
    bias,
    dtype,
    offset_scale=3.0,
    seed=0,
):
    """Random inputs with offsets large enough to reach outside the map."""
    g = torch.Generator().manual_seed(seed)
    kh, kw = pair(kernel)
    (sh, sw), (ph, pw), (dh, dw) = pair(stride), pair(padding), pair(dilation)
    out_h = (height + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    out_w = (width + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    taps = kh * kw

    def randn(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=dtype) * scale).requires_grad_()

    inputs = {
        "input": randn(batch, channels, height, width),
        "offset": randn(batch, 2 * offset_groups * taps, out_h, out_w, scale=offset_scale),
        "weight": randn(out_channels, channels // groups, kh, kw, scale=0.3),
        "bias": randn(out_channels) if bias else None,
        "mask": (
            torch.rand(
                batch, offset_groups * taps, out_h, out_w, generator=g, dtype=dtype
            ).requires_grad_()
            if modulated
            else None
        ),
    }
    params = {"stride": stride, "padding": padding, "dilation": dilation}
    return inputs, params


def grads_of(fn, inputs, params, seed=1):
    out = fn(**inputs, **params)
    grad_out = torch.randn(
        out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype
    )
    leaves = [v for v in inputs.values() if v is not None]
    return out, torch.autograd.grad(out, leaves, grad_out)


# batch, channels, height, width, out_channels, kernel, stride, padding, dilation, groups,
# offset_groups
SHAPES = [
    (2, 4, 9, 11, 6, 3, 1, 1, 1, 1, 1),
    (1, 4, 10, 8, 4, 3, 2, 1, 1, 2, 2),
    (2, 6, 11, 9, 4, (3, 2), (1, 2), (2, 0), 2, 2, 3),
    (1, 3, 7, 7, 5, 1, 1, 0, 1, 1, 1),
    (2, 8, 6, 7, 8, 3, 1, 2, (2, 1), 4, 2),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("modulated", [False, True])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_torchvision(dtype, modulated, bias, shape):
    inputs, params = make_inputs(*shape, modulated=modulated, bias=bias, dtype=dtype)
    ours, our_grads = grads_of(det_ops.deform_conv2d, inputs, params)
    theirs, their_grads = grads_of(torchvision.ops.deform_conv2d, inputs, params)
    torch.testing.assert_close(ours, theirs, **tolerances(dtype))
    names = [k for k, v in inputs.items() if v is not None]
    for name, a, b in zip(names, our_grads, their_grads, strict=True):
        torch.testing.assert_close(a, b, **tolerances(dtype), msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("modulated", [False, True])
@pytest.mark.parametrize("shape", SHAPES[:3])
def test_matches_reference(modulated, shape):
    inputs, params = make_inputs(*shape, modulated=modulated, bias=True, dtype=torch.float64)
    ours, our_grads = grads_of(det_ops.deform_conv2d, inputs, params)
    theirs, their_grads = grads_of(reference.deform_conv2d, inputs, params)
    torch.testing.assert_close(ours, theirs, **tolerances(torch.float64))
    for a, b in zip(our_grads, their_grads, strict=True):
        torch.testing.assert_close(a, b, **tolerances(torch.float64))


@pytest.mark.parametrize("modulated", [False, True])
def test_gradcheck(modulated):
    inputs, params = make_inputs(
        1,
        4,
        5,
        6,
        2,
        3,
        1,
        1,
        1,
        2,
        2,
        modulated=modulated,
        bias=True,
        dtype=torch.float64,
        offset_scale=2.0,
        seed=3,
    )
    names = [k for k, v in inputs.items() if v is not None]

    def fn(*tensors):
        return det_ops.deform_conv2d(**dict(zip(names, tensors, strict=True)), **params)

    assert torch.autograd.gradcheck(fn, tuple(inputs[k] for k in names))


def test_hand_computed_ramp():
    # f(y, x) = 10 y + x is reproduced exactly by bilinear interpolation inside the
    # map; a 1x1 kernel of weight 2 and a mask of 0.5 give back f at the moved point.
    height, width = 4, 5
    ys, xs = torch.meshgrid(torch.arange(4.0), torch.arange(5.0), indexing="ij")
    input = (10 * ys + xs).reshape(1, 1, height, width).double()
    offset = torch.zeros(1, 2, height, width, dtype=torch.float64)
    offset[0, 0] = 0.5
    offset[0, 1] = 0.25
    offset[0, :, 3, 4] = torch.tensor([5.0, 5.0])  # lands outside the map: reads zero
    mask = torch.full((1, 1, height, width), 0.5, dtype=torch.float64)
    weight = torch.full((1, 1, 1, 1), 2.0, dtype=torch.float64)
    out = det_ops.deform_conv2d(input, offset, weight, mask=mask)[0, 0]
    expected = 10 * (ys + 0.5) + (xs + 0.25)
    # The last row and column reach past the map: half (or a quarter) of the
    # four neighbours are zero padding.
    expected[3, :4] = 0.5 * (10 * 3 + xs[3, :4] + 0.25)
    expected[:3, 4] = 0.75 * (10 * (ys[:3, 4] + 0.5) + 4)
    expected[3, 4] = 0.0
    torch.testing.assert_close(out, expected.double())


@pytest.mark.parametrize("modulated", [False, True])
def test_numpy_equals_torch(modulated):
    inputs, params = make_inputs(
        2, 4, 8, 9, 6, 3, 1, 1, 1, 2, 2, modulated=modulated, bias=True, dtype=torch.float64
    )
    arrays = {k: None if v is None else v.detach().numpy() for k, v in inputs.items()}
    out_np = det_ops.deform_conv2d(**arrays, **params)
    out_torch = det_ops.deform_conv2d(**inputs, **params)
    assert isinstance(out_np, np.ndarray) and out_np.dtype == np.float64
    np.testing.assert_allclose(out_np, out_torch.detach().numpy(), rtol=1e-12, atol=1e-12)
    kernel_params = (3, 3, 1, 1, 1, 1, 1, 1)
    columns_np = deform_im2col_kernel(
        NUMPY, arrays["input"], arrays["offset"], arrays["mask"], kernel_params
    )
    columns_torch = ops.deform_im2col(
        inputs["input"], inputs["offset"], inputs["mask"], *kernel_params
    )
    np.testing.assert_array_equal(columns_np, columns_torch.detach().numpy())


def test_empty_batch():
    inputs, params = make_inputs(
        0, 4, 6, 7, 6, 3, 1, 1, 1, 1, 2, modulated=True, bias=True, dtype=torch.float32
    )
    out = det_ops.deform_conv2d(**inputs, **params)
    assert out.shape == (0, 6, 6, 7)
    out.sum().backward()
    assert inputs["offset"].grad.shape == inputs["offset"].shape
    torch.testing.assert_close(inputs["weight"].grad, torch.zeros_like(inputs["weight"]))
    arrays = {k: v.detach().numpy() for k, v in inputs.items()}
    assert det_ops.deform_conv2d(**arrays, **params).shape == (0, 6, 6, 7)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_computed_in_float32(dtype):
    inputs, params = make_inputs(
        1, 4, 6, 7, 3, 3, 1, 1, 1, 1, 1, modulated=True, bias=True, dtype=torch.float32
    )
    low = {k: v.detach().to(dtype).requires_grad_() for k, v in inputs.items()}
    out = det_ops.deform_conv2d(**low, **params)
    assert out.dtype == dtype
    expected = torchvision.ops.deform_conv2d(
        **{k: v.detach().float() for k, v in low.items()}, **params
    )
    torch.testing.assert_close(out.float(), expected.to(dtype).float(), rtol=1e-2, atol=1e-2)
    out.sum().backward()
    assert low["offset"].grad.dtype == dtype


def test_modules_match_functional():
    torch.manual_seed(0)
    layer = DeformConv2d(4, 6, 3, stride=2, padding=1, groups=2, deform_groups=2)
    assert layer.weight.shape == (6, 2, 3, 3) and layer.bias.shape == (6,)
    x = torch.randn(2, 4, 9, 9)
    offset = torch.randn(2, 36, 5, 5)
    mask = torch.rand(2, 18, 5, 5)
    expected = torchvision.ops.deform_conv2d(
        x, offset, layer.weight, layer.bias, stride=2, padding=1
    )
    torch.testing.assert_close(layer(x, offset), expected, **tolerances(torch.float32))
    modulated = ModulatedDeformConv2d(4, 6, 3, stride=2, padding=1, groups=2, deform_groups=2)
    expected = torchvision.ops.deform_conv2d(
        x, offset, modulated.weight, modulated.bias, stride=2, padding=1, mask=mask
    )
    torch.testing.assert_close(modulated(x, offset, mask), expected, **tolerances(torch.float32))


@pytest.mark.parametrize("bias", [False, True])
def test_pack_modules_start_as_conv(bias):
    torch.manual_seed(0)
    x = torch.randn(2, 4, 10, 9)
    args = {"stride": 2, "padding": 2, "dilation": 2, "groups": 2}
    conv = torch.nn.Conv2d(4, 6, 3, bias=bias, **args)
    pack = DeformConv2dPack(4, 6, 3, deform_groups=2, bias=bias, **args)
    modulated = ModulatedDeformConv2dPack(4, 6, 3, deform_groups=2, bias=bias, **args)
    assert pack.conv_offset.out_channels == 36 and modulated.conv_offset.out_channels == 54
    for layer in (pack, modulated):
        layer.weight.data.copy_(conv.weight)
        if bias:
            layer.bias.data.copy_(conv.bias)
    torch.testing.assert_close(pack(x), conv(x), **tolerances(torch.float32))
    # Zero mask logits: every sample is scaled by sigmoid(0) = 0.5.
    half = 0.5 * torch.nn.functional.conv2d(x, conv.weight, None, **args)
    if bias:
        half = half + conv.bias.reshape(1, -1, 1, 1)
    torch.testing.assert_close(modulated(x), half, **tolerances(torch.float32))
    # The offset predictor learns: its gradient is not zero at the start.
    modulated(x).square().sum().backward()
    assert modulated.conv_offset.weight.grad.abs().sum() > 0


def test_module_rejects_indivisible_channels():
    with pytest.raises(ValueError, match="deform_groups"):
        DeformConv2d(4, 6, 3, deform_groups=3)
    with pytest.raises(ValueError, match=r"out_channels \(5\) must be divisible by groups"):
        DeformConv2d(4, 5, 3, groups=2)
    with pytest.raises(ValueError, match=r"in_channels \(6\) must be divisible by deform_groups"):
        DeformConv2d(6, 6, 3, groups=2, deform_groups=4)


def opcheck_cases():
    inputs, _params = make_inputs(
        2, 4, 6, 7, 3, 3, 1, 1, 1, 1, 2, modulated=True, bias=False, dtype=torch.float64
    )
    x, offset, mask = inputs["input"], inputs["offset"], inputs["mask"]
    kernel = (3, 3, 1, 1, 1, 1, 1, 1)
    grad_columns = torch.randn(2, 36, 42, dtype=torch.float64)
    yield "im2col", ops.deform_im2col, (x, offset, mask, *kernel)
    yield "im2col_v1", ops.deform_im2col, (x, offset, None, *kernel)
    detached = (offset.detach(), mask.detach())
    yield "col2im", ops.deform_col2im, (grad_columns, *detached, [2, 4, 6, 7], *kernel)
    yield (
        "col2im_coord",
        ops.deform_col2im_coord,
        (grad_columns, x.detach(), *detached, *kernel),
    )
    yield (
        "col2im_coord_v1",
        ops.deform_col2im_coord,
        (grad_columns, x.detach(), offset.detach(), None, *kernel),
    )


@pytest.mark.parametrize("name, op, args", list(opcheck_cases()), ids=lambda v: str(v)[:20])
def test_opcheck(name, op, args):
    torch.library.opcheck(op, args)


def bad_inputs():
    inputs, params = make_inputs(
        1, 4, 6, 6, 4, 3, 1, 1, 1, 2, 2, modulated=True, bias=True, dtype=torch.float32
    )
    base = {k: v.detach() for k, v in inputs.items()} | params

    def changed(**kwargs):
        return base | kwargs

    x, offset, weight = base["input"], base["offset"], base["weight"]
    yield changed(input=x[0]), ValueError, "input"
    yield changed(input=x.int()), TypeError, "input"
    yield changed(offset=offset[:, :-2]), ValueError, "offset"
    yield changed(offset=offset[:, :, :-1]), ValueError, "offset"
    yield changed(offset=torch.cat([offset, offset])), ValueError, "offset"
    yield changed(offset=offset.numpy()), TypeError, "offset"
    yield changed(offset=offset.long()), TypeError, "offset"
    yield changed(offset=torch.cat([offset] * 3, 1), mask=None), ValueError, "offset groups"
    yield changed(mask=base["mask"][:, :9]), ValueError, "mask"
    yield changed(weight=weight[0]), ValueError, "weight"
    yield changed(weight=torch.randn(4, 3, 3, 3)), ValueError, "weight.shape[1]"
    yield changed(weight=torch.randn(3, 2, 3, 3), bias=None), ValueError, "weight.shape[0]"
    yield changed(bias=torch.randn(5)), ValueError, "bias"
    yield changed(stride=0), ValueError, "stride"
    yield changed(padding=-1), ValueError, "padding"
    yield changed(dilation=(1, 2, 3)), ValueError, "dilation"
    yield changed(padding=0, input=x[:, :, :2]), ValueError, "input"
    yield changed(mask=base["mask"].to("meta")), ValueError, "mask on meta"


@pytest.mark.parametrize("kwargs, error, name", list(bad_inputs()))
def test_bad_inputs(kwargs, error, name):
    with pytest.raises(error, match=re.escape(name)):
        det_ops.deform_conv2d(**kwargs)


finite = st.floats(-1e3, 1e3, allow_nan=False, width=32)
any_float = st.one_of(finite, st.sampled_from([np.nan, np.inf, -np.inf, 1e30]))


@settings(max_examples=60, deadline=None)
@given(
    batch=st.integers(0, 2),
    channel_groups=st.integers(1, 2),
    group_channels=st.integers(1, 2),
    offset_groups=st.integers(1, 2),
    size=st.tuples(st.integers(0, 6), st.integers(0, 6)),
    kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    stride=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    padding=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    offset_channel_delta=st.sampled_from([0, 0, 0, 1, -2]),
    modulated=st.booleans(),
    value=any_float,
    offset_value=any_float,
    seed=st.integers(0, 2**16),
)
def test_fuzz(
    batch,
    channel_groups,
    group_channels,
    offset_groups,
    size,
    kernel,
    stride,
    padding,
    dilation,
    offset_channel_delta,
    modulated,
    value,
    offset_value,
    seed,
):
    g = torch.Generator().manual_seed(seed)
    channels = channel_groups * group_channels * offset_groups
    (height, width), (kh, kw) = size, kernel
    out_h = max((height + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1, 0)
    out_w = max((width + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1, 0)
    offset_channels = 2 * offset_groups * kh * kw + offset_channel_delta
    x = torch.randn(batch, channels, height, width, generator=g)
    offset = torch.randn(batch, max(offset_channels, 0), out_h, out_w, generator=g) * 4
    if x.numel():
        x.view(-1)[0] = value
    if offset.numel():
        offset.view(-1)[-1] = offset_value
    weight = torch.randn(3 * channel_groups, channels // channel_groups, kh, kw, generator=g)
    mask = torch.rand(batch, offset_groups * kh * kw, out_h, out_w, generator=g)
    kwargs = {
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
        "mask": mask if modulated else None,
    }
    try:
        out = det_ops.deform_conv2d(x, offset, weight, **kwargs)
    except (ValueError, TypeError):
        assert out_h < 1 or out_w < 1 or offset_channel_delta != 0
        return
    assert out.shape == (batch, 3 * channel_groups, out_h, out_w)
    if height and width and np.isfinite(value) and np.isfinite(offset_value):
        expected = torchvision.ops.deform_conv2d(x, offset, weight, **kwargs)
        torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-3)
