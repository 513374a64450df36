import pytest
import torch
from torch import nn

from det_heads import ConvGN
from det_heads.fpn import FPN


def _inputs(channels=(8, 16, 32, 64), size=32):
    return [torch.randn(1, c, size >> i, size >> i) for i, c in enumerate(channels)]


def test_maxpool_extra_level():
    fpn = FPN((8, 16, 32, 64), out_channels=4, num_outs=5)
    outs = fpn(_inputs())
    assert [tuple(o.shape) for o in outs] == [(1, 4, s, s) for s in (32, 16, 8, 4, 2)]
    torch.testing.assert_close(outs[4], outs[3][:, :, ::2, ::2])


def test_retina_extra_convs_start_at_c3():
    fpn = FPN((8, 16, 32, 64), out_channels=4, num_outs=5, extra="conv_on_input", start_level=1)
    assert fpn.extra_convs[0].in_channels == 64 and fpn.extra_convs[1].in_channels == 4
    outs = fpn(_inputs())
    assert [o.shape[-1] for o in outs] == [16, 8, 4, 2, 1]


def test_top_down_path_sums_upsampled_laterals():
    fpn = FPN((2, 2), out_channels=2, num_outs=2)
    for conv in (*fpn.lateral_convs, *fpn.output_convs):
        torch.nn.init.dirac_(conv.weight)
        torch.nn.init.zeros_(conv.bias)
    c2, c3 = torch.randn(1, 2, 4, 4), torch.randn(1, 2, 2, 2)
    p2, p3 = fpn([c2, c3])
    torch.testing.assert_close(p3, c3)
    up = c3.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    torch.testing.assert_close(p2, c2 + up)


def test_group_norm_fpn_of_the_gn_rows():
    fpn = FPN((32, 64), out_channels=32, num_outs=3, norm="GN")
    for conv in (*fpn.lateral_convs, *fpn.output_convs):
        assert isinstance(conv, ConvGN) and conv.conv.bias is None
        assert type(conv.gn) is nn.GroupNorm  # whole maps, not RoI batches
    # The 2019 GN FPN's layout, which the checkpoint converters map onto.
    assert sorted(k for k in fpn.state_dict() if k.startswith("lateral_convs.0.")) == [
        "lateral_convs.0.conv.weight",
        "lateral_convs.0.gn.bias",
        "lateral_convs.0.gn.weight",
    ]
    inputs = _inputs((32, 64), size=16)
    outs = fpn(inputs)
    assert [tuple(o.shape) for o in outs] == [(1, 32, 16, 16), (1, 32, 8, 8), (1, 32, 4, 4)]
    # The top level has nothing added from above: output conv (with GN) of the lateral.
    torch.testing.assert_close(outs[1], fpn.output_convs[1](fpn.lateral_convs[1](inputs[1])))


def test_bad_arguments():
    with pytest.raises(ValueError, match="extra"):
        FPN((8,), extra="pool")
    with pytest.raises(ValueError, match="norm must be None or 'GN', got 'BN'"):
        FPN((8,), norm="BN")
    with pytest.raises(ValueError, match="extra 'maxpool' only"):
        FPN((8, 16), num_outs=3, extra="conv_on_input", norm="GN")
    with pytest.raises(ValueError, match="feature levels"):
        FPN((8, 16))([torch.zeros(1, 8, 4, 4)])
