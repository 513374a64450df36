"""ConvGN and RoIGroupNorm, the layers of the zoo's GN FPN and heads."""

import pytest
import torch
from torch import nn

from det_heads.conv_norm import ConvGN, RoIGroupNorm, conv_with_norm


def test_conv_gn_is_a_bias_free_conv_then_group_norm():
    block = ConvGN(8, 64, 3)
    assert block.conv.bias is None and block.conv.padding == (1, 1)
    assert type(block.gn) is nn.GroupNorm and block.gn.num_groups == 32
    assert type(ConvGN(8, 64, 1, roi_features=True).gn) is RoIGroupNorm
    x = torch.randn(2, 8, 5, 5)
    torch.testing.assert_close(block(x), block.gn(block.conv(x)))
    assert list(block.state_dict()) == ["conv.weight", "gn.weight", "gn.bias"]


def test_conv_with_norm_chooses_the_layer():
    plain = conv_with_norm(8, 16, 3, None)
    assert type(plain) is nn.Conv2d and plain.bias is not None and plain.padding == (1, 1)
    assert type(conv_with_norm(8, 32, 1, "GN")) is ConvGN


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("channels", [32, 256])
def test_roi_group_norm_matches_group_norm_on_channels_last_input(dtype, channels):
    torch.manual_seed(0)
    plain = nn.GroupNorm(32, channels)
    nn.init.uniform_(plain.weight, 0.5, 2.0)
    nn.init.normal_(plain.bias)
    ours = RoIGroupNorm(32, channels)
    ours.load_state_dict(plain.state_dict())
    plain, ours = plain.to(dtype), ours.to(dtype)
    x = torch.randn(6, channels, 7, 7, dtype=dtype) * 3 + 1
    x = x.contiguous(memory_format=torch.channels_last)
    grad = torch.randn(6, channels, 7, 7, dtype=dtype)
    outs = []
    for layer in (plain, ours):
        xi = x.detach().requires_grad_()
        y = layer(xi)
        y.backward(grad)
        outs.append((y, xi.grad, layer.weight.grad, layer.bias.grad))
    tol = {"atol": 2e-2, "rtol": 2e-2} if dtype == torch.bfloat16 else {"atol": 1e-5, "rtol": 1e-5}
    for expected, got in zip(*outs, strict=True):
        assert got.dtype == expected.dtype
        torch.testing.assert_close(got.float(), expected.float(), **tol)
    # The values are GroupNorm's own: per sample and group, zero mean and unit variance
    # before the affine map.
    y = outs[1][0].float()
    w, b = ours.weight.float()[:, None, None], ours.bias.float()[:, None, None]
    z = ((y - b) / w).reshape(6, 32, -1)
    torch.testing.assert_close(z.mean(-1), torch.zeros(6, 32), atol=0.05, rtol=0)
    torch.testing.assert_close(z.var(-1, unbiased=False), torch.ones(6, 32), atol=0.1, rtol=0)
