import pytest
import torch
import torchvision
from backbone_inputs import assert_maps_close, image, randomize_batch_norm
from torch import nn

from det_backbones import VGG16SSD, FrozenBatchNorm2d, ResNet, fuse, load_torchvision


def loaded_resnet(**kwargs):
    theirs = randomize_batch_norm(torchvision.models.resnet50(weights=None), seed=3)
    model = ResNet(50, **kwargs)
    load_torchvision(model, theirs.state_dict())
    return model.eval()


def fused_and_unfused(model, x, channels_last=False):
    with torch.no_grad():
        expected = model(x)
        fuse(model)
        if channels_last:
            model.to(memory_format=torch.channels_last)
            x = x.to(memory_format=torch.channels_last)
        return model(x), expected


@pytest.mark.parametrize("channels_last", [False, True])
def test_fused_frozen_batch_norm_gives_the_same_maps(channels_last):
    model = loaded_resnet()
    got, expected = fused_and_unfused(model, image(seed=9), channels_last)
    assert_maps_close(got, expected)
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in model.modules())
    assert isinstance(model.layer1[0].bn3, nn.Identity)
    assert isinstance(model.layer1[0].downsample[1], nn.Identity)
    assert model.layer1[0].conv3.bias is not None


def test_fused_eval_batch_norm_and_deformable_convs():
    model = loaded_resnet(norm="BN", dcn="mdconv", stage_with_dcn=(False, True, True, True))
    with torch.no_grad():
        for name, module in model.named_modules():
            if name.endswith("conv_offset"):
                module.weight.normal_(0, 0.01)  # offsets and masks away from their start
    got, expected = fused_and_unfused(model, image(seed=10))
    assert_maps_close(got, expected)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert model.layer3[0].conv2.bias is not None
    assert "layer3.0.conv2.bias" in dict(model.named_parameters())


def test_group_norm_is_left_in_place():
    model = ResNet(50, norm="GN").eval()
    got, expected = fused_and_unfused(model, image(seed=11))
    torch.testing.assert_close(got, expected)
    assert isinstance(model.layer2[0].bn2, nn.GroupNorm)


def test_batch_norm_in_train_mode_is_refused():
    model = ResNet(18, norm="BN", norm_eval=False).train()
    with pytest.raises(ValueError, match=r"call model.eval\(\)"):
        fuse(model)


def test_vgg_has_nothing_to_fold():
    model = VGG16SSD(300)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fuse(model)
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
