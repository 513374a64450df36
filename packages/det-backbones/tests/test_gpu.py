"""The backbones on a CUDA device (deformable convs through det-ops' CUDA kernels)."""

import pytest
import torch
from backbone_inputs import assert_maps_close, image

from det_backbones import ResNet, fuse


@pytest.mark.gpu
@pytest.mark.parametrize("dcn", [None, "dconv", "mdconv"])
def test_cuda_maps_match_cpu(dcn):
    model = ResNet(50, dcn=dcn, stage_with_dcn=(False, True, True, True)).eval()
    with torch.no_grad():
        for name, module in model.named_modules():
            if name.endswith("conv_offset"):
                module.weight.normal_(0, 0.01)
    # In float64: a 50-layer random network amplifies the last-bit differences of float32
    # sums (cuDNN's TF32 convolutions even more) through the deformable stages' offsets
    # (an H200 in float32 without TF32 was 4e-4 off at C5, 1e-6 at C2); float64 leaves the
    # kernels' own differences.
    model.double()
    x = image((96, 128), batch=2, seed=12).double()
    with torch.no_grad():
        expected = model(x)
        got = [m.cpu() for m in model.cuda()(x.cuda())]
    assert_maps_close(got, expected, rtol=1e-9)


@pytest.mark.gpu
def test_cuda_training_step_with_deformable_stages():
    model = ResNet(50, dcn="mdconv", stage_with_dcn=(False, True, True, True)).cuda().train()
    outs = model(image((64, 64), batch=2).cuda())
    sum(o.square().mean() for o in outs).backward()
    assert model.layer3[0].conv2.conv_offset.weight.grad.abs().sum() > 0
    with torch.no_grad():
        assert len(fuse(model.eval())(image((64, 64)).cuda())) == 4
