import copy

import pytest
import torch
import torchvision
from backbone_inputs import assert_maps_close, image

from det_backbones import VGG16SSD, L2Norm, build_backbone, load_torchvision


@pytest.fixture(scope="module")
def loaded():
    theirs = torchvision.models.vgg16(weights=None).eval()
    with torch.no_grad():
        for module in theirs.features:
            if isinstance(module, torch.nn.Conv2d):
                module.bias.normal_(0, 0.1)
    ours = VGG16SSD(300).eval()
    missing, unexpected = load_torchvision(ours, theirs.state_dict())
    return ours, theirs, missing, unexpected


def test_torchvision_features_load_key_for_key(loaded):
    _, _, missing, unexpected = loaded
    assert unexpected == []
    new = {"features.31", "features.33", "l2_norm"} | {f"extra.{i}" for i in range(8)}
    assert {key.rsplit(".", 1)[0] for key in missing} == new


def test_conv_layers_match_torchvision(loaded):
    ours, theirs, _, _ = loaded
    x = image(seed=5)
    with torch.no_grad():
        # conv1_1 .. conv5_3 with its ReLU; even sizes, so ceil-mode pooling changes nothing.
        assert_maps_close([ours.features[:30](x)], [theirs.features[:30](x)])


def test_first_source_map_is_the_scaled_unit_norm_of_conv4_3(loaded):
    ours, theirs, _, _ = loaded
    reference = copy.deepcopy(theirs.features[:23])
    for module in reference:
        if isinstance(module, torch.nn.MaxPool2d):
            module.ceil_mode = True  # 75 -> 38, as SSD300 pools
    x = image((300, 300), seed=6)
    with torch.no_grad():
        outs = ours(x)
        conv4_3 = reference(x)
    assert conv4_3.shape[-1] == 38
    assert_maps_close([outs[0]], [conv4_3 / conv4_3.norm(dim=1, keepdim=True) * 20])


@pytest.mark.parametrize(
    ("input_size", "sizes"),
    [(300, [38, 19, 10, 5, 3, 1]), (512, [64, 32, 16, 8, 4, 2, 1])],
)
def test_source_map_sizes(input_size, sizes):
    with torch.device("meta"):
        model = build_backbone(f"vgg16-ssd{input_size}")
        outs = model(torch.empty(1, 3, input_size, input_size))
    assert [tuple(o.shape[1:]) for o in outs] == [
        (c, s, s) for c, s in zip(model.out_channels, sizes, strict=True)
    ]
    assert model.out_channels[:2] == [512, 1024] and set(model.out_channels[2:]) <= {256, 512}
    assert len(model.strides) == len(sizes) and model.strides[0] == 8


def test_ssd_layer_configuration():
    model = VGG16SSD(300)
    pool5, fc6, fc7 = model.features[30], model.features[31], model.features[33]
    assert (pool5.kernel_size, pool5.stride, pool5.padding) == (3, 1, 1)
    assert fc6.dilation == (6, 6) and fc6.padding == (6, 6) and fc6.out_channels == 1024
    assert fc7.kernel_size == (1, 1) and fc7.out_channels == 1024
    assert all(m.ceil_mode for m in model.features[:30] if isinstance(m, torch.nn.MaxPool2d))
    assert torch.equal(model.l2_norm.weight, torch.full((512,), 20.0))


def test_l2_norm_hand_case():
    layer = L2Norm(2, scale=10.0)
    x = torch.tensor([3.0, 4.0]).view(1, 2, 1, 1)
    torch.testing.assert_close(layer(x).flatten(), torch.tensor([6.0, 8.0]))


def test_bad_input_size():
    with pytest.raises(ValueError, match="input_size must be one of 300, 512"):
        VGG16SSD(400)


def test_base_channels_scales_every_layer():
    with torch.device("meta"):
        model = VGG16SSD(300, base_channels=16)
        outs = model(torch.empty(1, 3, 300, 300))
    # A quarter of (512, 1024, 512, 256, 256, 256).
    assert model.out_channels == [128, 256, 128, 64, 64, 64]
    assert [o.shape[1] for o in outs] == model.out_channels
    assert [o.shape[-1] for o in outs] == [38, 19, 10, 5, 3, 1]
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs[:3]] == [16, 16, 32]
    assert model.l2_norm.weight.shape == (128,)


def test_batchnorm_variant_has_torchvision_vgg16_bn_indices():
    theirs = torchvision.models.vgg16_bn(weights=None).eval()
    with torch.no_grad():
        for module in theirs.features:
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 2.0)
    ours = VGG16SSD(300, norm="BN").eval()
    missing, unexpected = load_torchvision(ours, theirs.state_dict())
    assert unexpected == []
    # fc6, fc7 (conv + BN each), the extra (conv, BN) pairs and the L2Norm are new.
    new = {"features.44", "features.45", "features.47", "features.48", "l2_norm"}
    new |= {f"extra.{i}.{j}" for i in range(8) for j in (0, 1)}
    assert {key.rsplit(".", 1)[0] for key in missing} == new
    x = image(seed=7)
    with torch.no_grad():
        # conv1_1 .. conv5_3 + BN + ReLU (43 layers); even sizes, ceil-mode pooling agrees.
        assert_maps_close([ours.features[:43](x)], [theirs.features[:43](x)])
    assert ours.conv4_3_relu == 32  # torchvision's vgg16_bn: conv4_3 is features.30
    with torch.no_grad():
        reference = copy.deepcopy(theirs.features[:33])
        for module in reference:
            if isinstance(module, torch.nn.MaxPool2d):
                module.ceil_mode = True
        x = image((300, 300), seed=8)
        conv4_3 = reference(x)
        assert_maps_close([ours(x)[0]], [conv4_3 / conv4_3.norm(dim=1, keepdim=True) * 20])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"base_channels": 20}, ValueError, "base_channels must be a multiple of 8"),
        ({"base_channels": 0}, ValueError, "base_channels must be a multiple of 8"),
        ({"base_channels": 16.0}, TypeError, "base_channels must be an int"),
        ({"norm": "GN"}, ValueError, "norm must be None or 'BN', got 'GN'"),
    ],
)
def test_bad_width_or_norm(kwargs, error, match):
    with pytest.raises(error, match=match):
        VGG16SSD(300, **kwargs)
