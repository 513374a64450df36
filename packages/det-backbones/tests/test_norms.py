import pytest
import torch
from torch import nn

from det_backbones import NORMS, FrozenBatchNorm2d, make_norm


def random_batch_norm(channels=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    bn = nn.BatchNorm2d(channels).eval()
    with torch.no_grad():
        bn.weight.copy_(torch.rand(channels, generator=g) + 0.5)
        bn.bias.copy_(torch.randn(channels, generator=g))
        bn.running_mean.copy_(torch.randn(channels, generator=g))
        bn.running_var.copy_(torch.rand(channels, generator=g) + 0.1)
    return bn


def test_frozen_batch_norm_matches_batch_norm_in_eval_mode():
    bn = random_batch_norm()
    frozen = FrozenBatchNorm2d(8)
    # nn.BatchNorm2d's state dict, num_batches_tracked included, loads strictly.
    frozen.load_state_dict(bn.state_dict())
    x = torch.randn(2, 8, 5, 7)
    torch.testing.assert_close(frozen(x), bn(x))
    assert list(frozen.parameters()) == []


def test_frozen_batch_norm_hand_case_and_memory_format():
    frozen = FrozenBatchNorm2d(2, eps=0.0)
    frozen.weight.copy_(torch.tensor([2.0, 1.0]))
    frozen.bias.copy_(torch.tensor([1.0, 0.0]))
    frozen.running_mean.copy_(torch.tensor([1.0, -1.0]))
    frozen.running_var.copy_(torch.tensor([4.0, 1.0]))
    x = torch.tensor([3.0, 3.0]).view(1, 2, 1, 1).expand(1, 2, 2, 2)
    x = x.contiguous(memory_format=torch.channels_last)
    y = frozen(x)
    # (3 - 1) / 2 * 2 + 1 = 3 and (3 + 1) / 1 * 1 + 0 = 4
    assert y[0, :, 0, 0].tolist() == [3.0, 4.0]
    assert y.is_contiguous(memory_format=torch.channels_last)


def test_make_norm_kinds():
    assert isinstance(make_norm("FrozenBN", 64), FrozenBatchNorm2d)
    assert type(make_norm("BN", 64)) is nn.BatchNorm2d
    assert type(make_norm("SyncBN", 64)) is nn.SyncBatchNorm
    gn = make_norm("GN", 64)
    assert isinstance(gn, nn.GroupNorm) and gn.num_groups == 32 and gn.num_channels == 64
    assert NORMS == ("FrozenBN", "BN", "SyncBN", "GN")


def test_make_norm_bad_name():
    with pytest.raises(ValueError, match="norm must be one of FrozenBN, BN, SyncBN, GN; got 'IN'"):
        make_norm("IN", 64)


def test_conv_norm_folds_frozen_bn_with_the_same_values_and_gradients():
    from det_backbones.norms import conv_norm

    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, padding=1, bias=False)
    norm = FrozenBatchNorm2d(6)
    norm.weight.uniform_(0.5, 2)
    norm.bias.normal_()
    norm.running_mean.normal_()
    norm.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 4, 9, 11)
    folded = conv_norm(conv, norm, x)
    folded.square().sum().backward()
    grad = conv.weight.grad.clone()
    conv.weight.grad = None
    plain = norm(conv(x))
    plain.square().sum().backward()
    torch.testing.assert_close(folded, plain, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad, conv.weight.grad, rtol=1e-4, atol=1e-4)
    gn = nn.GroupNorm(2, 6)  # any other norm is applied after the conv as it is
    torch.testing.assert_close(conv_norm(conv, gn, x), gn(conv(x)))
