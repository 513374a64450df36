import pytest
import torch
from mmdet_layout import to_mmdet

from det_models import zoo
from det_models.builder import build_model
from det_models.convert import from_mmdet, from_torchvision, torchvision_config

torchvision_detection = pytest.importorskip("torchvision.models.detection")


ROWS = [
    ("faster_rcnn", "r50", "1x", None),
    ("mask_rcnn", "r50", "2x", "gn"),
    ("cascade_mask_rcnn", "r50", "1x", "dconv-c3-c5"),
    ("faster_rcnn", "r50", "1x", "mdpool"),
    ("retinanet", "r50", "1x", None),
    ("ssd300", "vgg16", "240e", "voc"),
    ("rpn", "r50", "1x", None),
]


@pytest.mark.parametrize("key", ROWS, ids=lambda k: "-".join(str(p) for p in k))
def test_from_mmdet_round_trip_loads_strictly(key):
    torch.manual_seed(0)
    model = zoo.build(*key)
    ours = {k: v.clone() for k, v in model.state_dict().items() if "num_batches" not in k}
    # Make every tensor distinct so that a misplaced key cannot go unnoticed.
    ours = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in ours.items()}
    source = to_mmdet(ours, key)
    source["backbone.bn1.num_batches_tracked"] = torch.tensor(5)
    source["meta_only.step"] = torch.tensor(1.0)
    converted = from_mmdet({"state_dict": source, "meta": {}}, zoo.entry(*key))
    assert converted.unused == ["meta_only.step"]
    assert set(converted.state_dict) == set(ours)
    for k, v in ours.items():
        torch.testing.assert_close(converted.state_dict[k], v, rtol=0, atol=0, msg=k)
    fresh = zoo.build(*key)
    result = fresh.load_state_dict(converted.state_dict, strict=True)
    assert not result.missing_keys and not result.unexpected_keys


def test_from_mmdet_real_key_names():
    key = ("mask_rcnn", "r50", "1x", None)
    source = to_mmdet(zoo.build(*key).state_dict(), key)
    for name, shape in {
        "neck.lateral_convs.0.conv.weight": (256, 256, 1, 1),
        "neck.fpn_convs.3.conv.bias": (256,),
        "rpn_head.rpn_conv.weight": (256, 256, 3, 3),
        "rpn_head.rpn_cls.weight": (3, 256, 1, 1),
        "rpn_head.rpn_reg.weight": (12, 256, 1, 1),
        "bbox_head.shared_fcs.0.weight": (1024, 256 * 7 * 7),
        "bbox_head.fc_cls.weight": (81, 1024),
        "bbox_head.fc_reg.weight": (324, 1024),
        "mask_head.convs.3.conv.weight": (256, 256, 3, 3),
        "mask_head.upsample.weight": (256, 256, 2, 2),
        "mask_head.conv_logits.weight": (81, 256, 1, 1),
        "backbone.layer4.2.conv3.weight": (2048, 512, 1, 1),
    }.items():
        assert tuple(source[name].shape) == shape, name
    # mmdet's row 0 is background, ours is last; class 1 (mmdet row 1) is our row 0.
    cls = torch.arange(81.0)[:, None].expand(81, 1024).clone()
    source["bbox_head.fc_cls.weight"] = cls
    converted = from_mmdet(source, zoo.entry(*key)).state_dict
    assert converted["roi_head.bbox_head.cls.weight"][:, 0].tolist() == [*range(1, 81), 0]
    reg = torch.arange(324.0)[:, None].expand(324, 1024).clone()
    source["bbox_head.fc_reg.weight"] = reg
    converted = from_mmdet(source, zoo.entry(*key)).state_dict
    assert converted["roi_head.bbox_head.reg.weight"][:, 0].tolist() == list(range(4, 324))


def test_from_mmdet_cascade_and_gn_key_names():
    key = ("cascade_rcnn", "r50", "1x", None)
    names = set(to_mmdet(zoo.build(*key).state_dict(), key))
    assert {"bbox_head.0.fc_cls.weight", "bbox_head.2.fc_reg.bias"} <= names
    key = ("mask_rcnn", "r50", "2x", "gn")
    names = set(to_mmdet(zoo.build(*key).state_dict(), key))
    assert {
        "backbone.gn1.weight",
        "backbone.layer1.0.gn3.bias",
        "neck.lateral_convs.0.gn.weight",
        "bbox_head.shared_convs.3.conv.weight",
        "mask_head.convs.0.gn.weight",
    } <= names


def test_from_mmdet_needs_a_zoo_entry():
    with pytest.raises(TypeError, match="zoo_entry must be a ZooEntry"):
        from_mmdet({}, ("faster_rcnn", "r50", "1x"))


@pytest.mark.parametrize(
    "name", ["fasterrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn", "retinanet_resnet50_fpn"]
)
def test_from_torchvision_loads_strictly(name):
    tv = getattr(torchvision_detection, name)(weights=None, weights_backbone=None)
    converted = from_torchvision(tv.state_dict(), name)
    assert converted.unused == []
    model = build_model(torchvision_config(name))
    result = model.load_state_dict(converted.state_dict, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    if name == "retinanet_resnet50_fpn":
        # 9 anchors x 91 torchvision outputs -> 9 x 90: column 0 of each anchor dropped.
        source = tv.state_dict()["head.classification_head.cls_logits.bias"].reshape(9, 91)
        torch.testing.assert_close(model.head.cls.bias.reshape(9, 90), source[:, 1:])
    else:
        source = tv.state_dict()["roi_heads.box_predictor.cls_score.weight"]
        torch.testing.assert_close(model.roi_head.bbox_head.cls.weight[:90], source[1:])
        torch.testing.assert_close(model.roi_head.bbox_head.cls.weight[90], source[0])


@pytest.mark.parametrize("name", ["fasterrcnn_resnet50_fpn", "retinanet_resnet50_fpn"])
def test_torchvision_weights_give_torchvisions_features(name):
    torch.manual_seed(0)
    tv = getattr(torchvision_detection, name)(weights=None, weights_backbone=None).eval()
    # Random norm statistics, so that a norm layer loaded into the wrong place shows.
    for module in tv.backbone.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.1, 0.1)
    model = build_model(torchvision_config(name)).eval()
    model.load_state_dict(from_torchvision(tv.state_dict(), name).state_dict, strict=True)
    images = torch.randn(1, 3, 128, 160)
    with torch.no_grad():
        expected = list(tv.backbone(images).values())
        ours = model.neck(model.backbone(images))
    assert len(ours) == len(expected) == 5
    for a, b in zip(ours, expected, strict=True):
        # Random deep features reach thousands; float32 summation order differs.
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * float(b.abs().max()))


def test_from_torchvision_rejects_unknown_models():
    with pytest.raises(ValueError, match="fasterrcnn_resnet50_fpn"):
        from_torchvision({}, "ssd300_vgg16")
