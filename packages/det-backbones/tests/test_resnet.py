import pytest
import torch
import torchvision
from backbone_inputs import assert_maps_close, image, randomize_batch_norm, torchvision_stages
from torch import nn

from det_backbones import FrozenBatchNorm2d, ResNet, build_backbone, load_torchvision
from det_ops.modules import DeformConv2dPack, ModulatedDeformConv2dPack


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("r18", torchvision.models.resnet18),
        ("r50", torchvision.models.resnet50),
        ("r101", torchvision.models.resnet101),
        ("x101-64x4d", torchvision.models.resnext101_64x4d),
    ],
)
def test_matches_torchvision_with_the_same_weights(name, reference):
    theirs = randomize_batch_norm(reference(weights=None)).eval()
    ours = build_backbone(name).eval()
    assert load_torchvision(ours, theirs.state_dict()) == ([], [])
    x = image()
    with torch.no_grad():
        assert_maps_close(ours(x), torchvision_stages(theirs, x))


def test_resnext_width_and_channels_follow_torchvision():
    ours = build_backbone("x101-32x4d")
    # floor(planes * 4 / 64) * 32 for planes 64, 128, 256, 512
    assert [getattr(ours, f"layer{i}")[0].conv2.out_channels for i in (1, 2, 3, 4)] == [
        128, 256, 512, 1024,
    ]  # fmt: skip
    assert ours.layer3[0].conv2.groups == 32
    assert ours.out_channels == [256, 512, 1024, 2048]
    assert ours.strides == [4, 8, 16, 32]


def test_trainable_batch_norm_matches_torchvision_in_eval_mode():
    theirs = randomize_batch_norm(torchvision.models.resnet50(weights=None)).eval()
    ours = ResNet(50, norm="BN").eval()
    assert load_torchvision(ours, theirs.state_dict()) == ([], [])
    x = image(seed=1)
    with torch.no_grad():
        assert_maps_close(ours(x), torchvision_stages(theirs, x))


def test_group_norm_matches_torchvision_resnet_built_with_group_norm():
    theirs = torchvision.models.resnet50(weights=None, norm_layer=lambda c: nn.GroupNorm(32, c))
    with torch.no_grad():
        for module in theirs.modules():
            if isinstance(module, nn.GroupNorm):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.1)
    ours = ResNet(50, norm="GN")
    assert all(m.num_groups == 32 for m in ours.modules() if isinstance(m, nn.GroupNorm))
    assert load_torchvision(ours, theirs.state_dict()) == ([], [])
    x = image(seed=2)
    with torch.no_grad():
        assert_maps_close(ours.eval()(x), torchvision_stages(theirs.eval(), x))


def test_group_norm_trains():
    model = ResNet(50, norm="GN", frozen_stages=1).train()
    outs = model(image((32, 32), batch=2))
    sum(o.square().mean() for o in outs).backward()
    assert model.layer4[2].bn3.weight.grad.abs().sum() > 0
    assert model.layer1[0].bn1.weight.grad is None  # frozen stage
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)


def test_stride_placement_of_the_two_styles():
    pytorch, caffe = ResNet(50), ResNet(50, style="caffe")
    assert pytorch.layer2[0].conv1.stride == (1, 1) and pytorch.layer2[0].conv2.stride == (2, 2)
    assert caffe.layer2[0].conv1.stride == (2, 2) and caffe.layer2[0].conv2.stride == (1, 1)
    assert caffe.layer2[0].downsample[0].stride == (2, 2)
    assert caffe.layer1[0].conv1.stride == (1, 1)
    with torch.no_grad():
        shapes = [o.shape for o in caffe.eval()(image())]
    assert shapes == [o.shape for o in pytorch.eval()(image())]


def test_output_sizes_round_up_and_out_indices_select_stages():
    model = ResNet(18).eval()
    x = image((65, 97))
    with torch.no_grad():
        full = model(x)
        assert [tuple(o.shape[2:]) for o in full] == [(17, 25), (9, 13), (5, 7), (3, 4)]
        model.out_indices = (1, 3)
        part = ResNet(18, out_indices=(1, 3))
        part.load_state_dict(model.state_dict())
        picked = part.eval()(x)
    assert part.out_channels == [128, 512] and part.strides == [8, 32]
    torch.testing.assert_close(picked, [full[1], full[3]])


def test_channels_last_gives_the_same_maps():
    theirs = randomize_batch_norm(torchvision.models.resnet50(weights=None))
    model = build_backbone("r50").eval()
    load_torchvision(model, theirs.state_dict())
    x = image(seed=3)
    with torch.no_grad():
        expected = model(x)
        model.to(memory_format=torch.channels_last)
        got = model(x.to(memory_format=torch.channels_last))
    assert got[0].is_contiguous(memory_format=torch.channels_last)
    assert_maps_close(got, expected, rtol=1e-5)


def frozen_names(model):
    return {name for name, p in model.named_parameters() if not p.requires_grad}


@pytest.mark.parametrize(
    ("frozen_stages", "frozen_prefixes"),
    [(-1, ()), (0, ("conv1", "bn1")), (1, ("conv1", "bn1", "layer1.")),
     (3, ("conv1", "bn1", "layer1.", "layer2.", "layer3."))],
)  # fmt: skip
def test_frozen_stages_freeze_the_stem_and_the_first_stages(frozen_stages, frozen_prefixes):
    model = ResNet(18, norm="BN", frozen_stages=frozen_stages, norm_eval=False)
    expected = {n for n, _ in model.named_parameters() if n.startswith(frozen_prefixes)}
    assert frozen_names(model) == expected
    model.train()
    for name, module in model.named_modules():
        if isinstance(module, nn.BatchNorm2d):
            assert module.training == (not name.startswith(frozen_prefixes)), name


def batch_norm_stats(model):
    return {
        name: (m.running_mean.clone(), m.running_var.clone())
        for name, m in model.named_modules()
        if isinstance(m, nn.BatchNorm2d)
    }


def changed_stats(model, x):
    before = batch_norm_stats(model)
    outs = model(x)
    sum(o.mean() for o in outs).backward()
    after = batch_norm_stats(model)
    return {n for n in before if not torch.equal(before[n][0], after[n][0])}


def test_norm_eval_keeps_batch_norm_statistics_in_train_mode():
    model = ResNet(18, norm="BN", frozen_stages=-1, norm_eval=True).train()
    assert model.training and model.conv1.training
    assert changed_stats(model, image(batch=2)) == set()
    assert all(p.grad is not None for p in model.parameters())


def test_without_norm_eval_only_frozen_stages_keep_their_statistics():
    model = ResNet(18, norm="BN", frozen_stages=1, norm_eval=False).train()
    changed = changed_stats(model, image(batch=2))
    all_bn = set(batch_norm_stats(model))
    frozen = {n for n in all_bn if n == "bn1" or n.startswith("layer1.")}
    assert changed == all_bn - frozen
    assert all(model.get_parameter(n).grad is None for n in frozen_names(model))


def test_frozen_batch_norm_has_no_parameters():
    model = ResNet(50)
    assert isinstance(model.layer3[2].bn2, FrozenBatchNorm2d)
    assert not any("bn" in name or "downsample.1" in name for name, _ in model.named_parameters())


@pytest.mark.parametrize(
    ("dcn", "layer"), [("dconv", DeformConv2dPack), ("mdconv", ModulatedDeformConv2dPack)]
)
def test_deformable_stages_start_as_plain_convolutions(dcn, layer):
    plain = randomize_batch_norm(torchvision.models.resnet50(weights=None)).eval()
    model = ResNet(50, dcn=dcn, stage_with_dcn=(False, True, False, True)).eval()
    missing, unexpected = load_torchvision(model, plain.state_dict())
    assert unexpected == [] and missing and all("conv_offset" in k for k in missing)
    assert isinstance(model.layer2[0].conv2, layer) and isinstance(model.layer3[0].conv2, nn.Conv2d)
    assert model.layer2[0].conv2.stride == (2, 2)
    for name, module in model.named_modules():
        if name.endswith("conv_offset"):
            assert not module.weight.any() and not module.bias.any()
    if dcn == "mdconv":
        # DCN v2 starts with every sample scaled by sigmoid(0) = 0.5.
        with torch.no_grad():
            for stage in (plain.layer2, plain.layer4):
                for block in stage:
                    block.conv2.weight.mul_(0.5)
    x = image(seed=4)
    with torch.no_grad():
        assert_maps_close(model(x), torchvision_stages(plain, x))


def test_deformable_resnext_with_offset_groups_trains():
    model = ResNet(
        50, groups=32, base_width=4, dcn="mdconv", stage_with_dcn=(False, False, True, True),
        deform_groups=2, frozen_stages=-1,
    ).train()  # fmt: skip
    conv = model.layer3[0].conv2
    assert conv.groups == 32 and conv.deform_groups == 2
    assert conv.conv_offset.out_channels == 3 * 2 * 9
    outs = model(image((32, 32), batch=2))
    sum(o.square().mean() for o in outs).backward()
    assert conv.conv_offset.weight.grad.abs().sum() > 0
    assert conv.weight.grad.abs().sum() > 0
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"depth": 42}, "depth must be one of 18, 34, 50, 101, 152"),
        ({"depth": 50, "style": "tf"}, "style must be one of pytorch, caffe"),
        ({"depth": 50, "norm": "LN"}, "norm must be one of FrozenBN, BN, SyncBN, GN"),
        ({"depth": 50, "out_indices": (0, 4)}, "out_indices must be .* 0, 1, 2, 3"),
        ({"depth": 50, "out_indices": ()}, "out_indices"),
        ({"depth": 50, "out_indices": (2, 1)}, "out_indices must be increasing"),
        ({"depth": 50, "frozen_stages": 5}, "frozen_stages must be in -1..4"),
        ({"depth": 50, "dcn": "dcn3"}, "dcn must be one of None, 'dconv', 'mdconv'"),
        (
            {"depth": 50, "dcn": "dconv", "stage_with_dcn": (True,) * 3},
            "stage_with_dcn must have 4",
        ),
        ({"depth": 18, "dcn": "dconv", "stage_with_dcn": (False, True, True, True)}, "Bottleneck"),
        ({"depth": 34, "groups": 32, "base_width": 4}, "groups/base_width need Bottleneck"),
        ({"depth": 50, "deform_groups": 0}, "deform_groups"),
    ],
)
def test_bad_arguments_name_the_choices(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ResNet(**kwargs)


def test_sync_batch_norm_with_norm_eval_trains_without_a_process_group():
    reference = ResNet(18, norm="BN").eval()
    randomize_batch_norm(reference, seed=5)
    model = ResNet(18, norm="SyncBN", frozen_stages=-1)
    assert load_torchvision(model, reference.state_dict()) == ([], [])
    x = image((32, 32), batch=2, seed=13)
    # norm_eval keeps SyncBN in eval mode, where it needs no process group.
    outs = model.train()(x)
    with torch.no_grad():
        assert_maps_close([o.detach() for o in outs], reference(x))
    sum(o.mean() for o in outs).backward()
    assert model.layer4[1].bn2.weight.grad is not None


def test_slim_resnet_widths_and_bad_base_channels():
    slim = ResNet(18, base_channels=32, norm="BN", frozen_stages=-1)
    assert slim.out_channels == [32, 64, 128, 256]
    assert slim.conv1.out_channels == 32
    outs = slim(torch.zeros(1, 3, 64, 64))
    assert [tuple(o.shape[1:]) for o in outs] == [
        (32, 16, 16),
        (64, 8, 8),
        (128, 4, 4),
        (256, 2, 2),
    ]
    assert ResNet(50, base_channels=16).out_channels == [64, 128, 256, 512]
    for bad in (0, 12, 64.0):
        with pytest.raises(ValueError, match="base_channels"):
            ResNet(18, base_channels=bad)
