import pytest
import torch
from torch import nn

from det_heads import (
    MMDET_V06,
    CascadeRoIHead,
    ConvGN,
    NMSConfig,
    ProposalConfig,
    RoIExtractor,
    RoIGroupNorm,
)
from det_heads.conventions import DET
from det_models import zoo
from det_models.config import BackboneConfig, replace_path
from det_models.detectors import RPN, SSD, CascadeRCNN, FasterRCNN, FastRCNN, MaskRCNN, RetinaNet
from det_ops.modules import (
    DeformConv2dPack,
    DeformRoIPoolPack,
    ModulatedDeformConv2dPack,
    ModulatedDeformRoIPoolPack,
)

FAMILY_CLASS = {
    "rpn": RPN,
    "fast_rcnn": FastRCNN,
    "faster_rcnn": FasterRCNN,
    "mask_rcnn": MaskRCNN,
    "retinanet": RetinaNet,
    "cascade_rcnn": CascadeRCNN,
    "cascade_mask_rcnn": CascadeRCNN,
    "ssd300": SSD,
    "ssd512": SSD,
}


def _classes(model: nn.Module) -> int:
    if isinstance(model, RPN):
        return 1
    return model.num_classes


def _check_built(key, model):
    assert type(model) is FAMILY_CLASS[key[0]]
    row = zoo.entry(*key)
    if key[0] != "rpn":
        assert _classes(model) == (20 if row.data.dataset == "voc0712" else 80)
    with_mask = key[0] in ("mask_rcnn", "cascade_mask_rcnn") or key[3] == "mask"
    if isinstance(model, CascadeRCNN):
        assert model.with_masks == with_mask
    elif hasattr(model, "roi_head"):
        assert (model.roi_head.mask_head is not None) == with_mask


def test_every_entry_builds_on_meta():
    with torch.device("meta"):
        for key in zoo.names():
            _check_built(key, zoo.build(*key))


@pytest.mark.slow
def test_every_entry_builds_on_cpu():
    for key in zoo.names():
        _check_built(key, zoo.build(*key))


def test_get_returns_model_data_and_schedule_of_the_row():
    cfg = zoo.get("faster_rcnn", "r101", "2x")
    assert cfg.key == ("faster_rcnn", "r101", "2x", None)
    assert cfg.model.family == "faster_rcnn"
    assert cfg.model.backbone.arch == "r101"
    assert cfg.model.roi.num_stages == 1 and not cfg.model.roi.with_mask
    assert cfg.schedule.lr_steps == (16, 22) and cfg.schedule.lr == 0.02
    assert cfg.data.img_scale == (1333, 800) and cfg.data.size_divisor == 32

    cascade = zoo.get("cascade_mask_rcnn", "x101-64x4d", "20e")
    assert cascade.model.roi.num_stages == 3 and cascade.model.roi.with_mask
    assert cascade.model.backbone.arch == "x101-64x4d"
    assert cascade.schedule.epochs == 20 and cascade.schedule.lr_steps == (16, 19)


def test_get_variants():
    ssd = zoo.get("ssd512", "vgg16", "240e", variant="voc").model
    assert (ssd.family, ssd.num_classes, ssd.neck, ssd.rpn) == ("ssd", 20, None, None)
    assert ssd.dense.input_size == 512 and ssd.dense.basesize_ratio_range == (0.15, 0.9)
    assert zoo.get("ssd300", "vgg16", "120e").model.dense.basesize_ratio_range is None

    gn = zoo.get("mask_rcnn", "r50", "3x", variant="gn").model
    # Pytorch style (stride on the 3x3 conv), as the v0.6.0 config: the Detectron-converted
    # weights differ only in their caffe-normalised BGR input (the row's DataConfig).
    assert gn.backbone == BackboneConfig(
        arch="r50", norm="GN", pretrained="open-mmlab://detectron/resnet50_gn"
    )
    assert gn.neck.norm == "GN"
    assert (gn.roi.num_convs, gn.roi.num_fcs, gn.roi.norm) == (4, 1, "GN")
    assert zoo.get("mask_rcnn", "r50", "2x", variant="gn-contrib").model.backbone.style is None

    dcn = zoo.get("faster_rcnn", "r50", "1x", variant="mdconv-c3-c5").model.backbone
    assert (dcn.dcn, dcn.stage_with_dcn, dcn.deform_groups) == (
        "mdconv",
        (False, True, True, True),
        1,
    )
    assert zoo.get("faster_rcnn", "r50", "1x", variant="mdpool").model.roi.pool == "mdpool"

    fast = zoo.get("fast_rcnn", "r50", "1x", variant="mask")
    assert fast.model.rpn is None and fast.model.roi.with_mask
    assert fast.data.train_proposals.endswith("train2017.pkl")

    retina = zoo.get("retinanet", "r50", "1x").model
    assert (retina.neck.start_level, retina.neck.extra) == (1, "conv_on_input")
    assert retina.dense.kind == "retina"

    rpn = zoo.get("rpn", "r50", "1x").model
    assert rpn.rpn.test_proposals.max_num == 2000 and rpn.roi is None


def test_build_gn_row_has_group_norm_everywhere():
    with torch.device("meta"):
        model = zoo.build("mask_rcnn", "r50", "2x", variant="gn")
    assert isinstance(model.backbone.bn1, nn.GroupNorm)
    assert model.backbone.style == "pytorch"  # as the v0.6.0 config (stride on the 3x3 conv)
    assert model.neck.norm == "GN"
    assert all(isinstance(c, ConvGN) for c in [*model.neck.lateral_convs, *model.neck.output_convs])
    head = model.roi_head.bbox_head
    assert len(head.convs) == 4 and len(head.fcs) == 1
    assert head.fcs[0].in_features == 256 * 7 * 7
    assert all(isinstance(c, ConvGN) for c in model.roi_head.mask_head.convs)
    # The heads' norms take RoI batches; the FPN's take whole maps (plain GroupNorm).
    assert all(type(c.gn) is RoIGroupNorm for c in [*head.convs, *model.roi_head.mask_head.convs])
    assert all(type(c.gn) is nn.GroupNorm for c in model.neck.output_convs)


def test_build_dcn_rows():
    with torch.device("meta"):
        dconv = zoo.build("cascade_rcnn", "r50", "1x", variant="dconv-c3-c5")
        mdconv = zoo.build("faster_rcnn", "r50", "1x", variant="mdconv-c3-c5")
        dpool = zoo.build("faster_rcnn", "r50", "1x", variant="dpool")
        mdpool = zoo.build("faster_rcnn", "r50", "1x", variant="mdpool")
    assert isinstance(dconv.backbone.layer1[0].conv2, nn.Conv2d)
    for stage in (dconv.backbone.layer2, dconv.backbone.layer3, dconv.backbone.layer4):
        assert all(type(block.conv2) is DeformConv2dPack for block in stage)
    assert type(mdconv.backbone.layer4[2].conv2) is ModulatedDeformConv2dPack
    assert dpool.roi_head.bbox_extractor.pool == "dpool"
    assert all(type(layer) is DeformRoIPoolPack for layer in dpool.roi_head.bbox_extractor.layers)
    assert all(
        type(layer) is ModulatedDeformRoIPoolPack for layer in mdpool.roi_head.bbox_extractor.layers
    )
    # Only the box branch pools deformably.
    assert type(dpool.rpn).__name__ == "RPNHead"
    assert isinstance(dconv.roi_head, CascadeRoIHead)


@pytest.mark.parametrize("variant", ["dpool", "mdpool"])
def test_conventions_choose_the_deformable_pooling(variant):
    with torch.device("meta"):
        legacy = zoo.build("faster_rcnn", "r50", "1x", variant, conventions=MMDET_V06)
        default = zoo.build("faster_rcnn", "r50", "1x", variant, conventions=DET)
    for layer in legacy.roi_head.bbox_extractor.layers:
        # mmdet v0.6 configs/dcn/faster_rcnn_*dpool_r50_fpn_1x.py: sample_per_part 4 (the
        # module's default), trans_std 0.1.
        assert (layer.aligned, layer.sampling_ratio, layer.gamma) == ("legacy", 4, 0.1)
    assert legacy.roi_head.bbox_extractor.box_offset == 1
    for layer in default.roi_head.bbox_extractor.layers:
        assert (layer.aligned, layer.sampling_ratio, layer.gamma) == (True, 2, 0.1)


def test_build_num_classes_and_heads():
    with torch.device("meta"):
        faster = zoo.build("faster_rcnn", "r50", "1x")
        voc = zoo.build("ssd300", "vgg16", "240e", variant="voc")
        retina = zoo.build("retinanet", "r50", "1x", num_classes=7)
        cascade = zoo.build("cascade_rcnn", "r50", "1x", num_classes=5)
    assert faster.roi_head.bbox_head.cls.out_features == 81
    assert faster.roi_head.bbox_head.reg.out_features == 320
    assert type(faster.roi_head.bbox_extractor) is RoIExtractor
    anchors = voc.head.anchor_generator.num_anchors
    assert [c.out_channels for c in voc.head.cls] == [a * 21 for a in anchors]
    assert retina.head.cls.out_channels == 9 * 7
    assert [h.reg.out_features for h in cascade.roi_head.bbox_heads] == [4, 4, 4]
    assert [h.coder.stds[0] for h in cascade.roi_head.bbox_heads] == [0.1, 0.05, 0.033]


def test_build_overrides_by_dotted_path():
    with torch.device("meta"):
        model = zoo.build(
            "faster_rcnn",
            "r50",
            "1x",
            rpn__test_proposals=ProposalConfig(max_num=10),
            roi__nms=NMSConfig(max_per_img=7),
            backbone__frozen_stages=-1,
        )
    assert model.rpn.test_proposals.max_num == 10
    assert model.roi_head.nms.max_per_img == 7
    assert model.backbone.frozen_stages == -1
    with pytest.raises(ValueError, match="rpn has no key 'nms_thresh'; valid keys: feat_channels"):
        zoo.build("faster_rcnn", "r50", "1x", rpn__nms_thresh=0.5)
    with pytest.raises(ValueError, match="RPN has no classes"):
        zoo.build("rpn", "r50", "1x", num_classes=3)


def test_replace_path_copies():
    cfg = zoo.get("faster_rcnn", "r50", "1x")
    new = replace_path(cfg, "model.rpn.test_proposals.nms_thr", 0.6)
    assert new.model.rpn.test_proposals.nms_thr == 0.6
    assert cfg.model.rpn.test_proposals.nms_thr == 0.7
    with pytest.raises(ValueError, match=r"ModelConfig.neck is None"):
        replace_path(zoo.get("ssd300", "vgg16", "120e"), "model.neck.norm", "GN")


def test_get_unknown_key_lists_choices():
    with pytest.raises(ValueError, match="model must be one of"):
        zoo.get("yolo", "r50", "1x")


def test_ssd_backbone_width_and_batchnorm_from_the_config():
    from det_models.builder import build_model

    row = zoo.get("ssd300", "vgg16", "120e").model
    slim = build_model(
        replace_path(replace_path(row, "backbone.base_channels", 16), "backbone.norm", "BN")
    )
    assert slim.backbone.out_channels == [128, 256, 128, 64, 64, 64]
    assert any(isinstance(m, nn.BatchNorm2d) for m in slim.backbone.features)
    # The head's convs read the slim maps.
    x = torch.zeros(1, 3, 300, 300)
    slim.eval()
    assert [f.shape[1] for f in slim.backbone(x)] == slim.backbone.out_channels
    with pytest.raises(ValueError, match=r"norm of vgg16-ssd300 must be 'FrozenBN'.*got 'GN'"):
        build_model(replace_path(row, "backbone.norm", "GN"))


def test_retinanet_octave_base_scale_sets_the_smallest_anchor():
    from det_models.builder import build_model

    def smallest_square(model):
        base = model.head.anchor_generator.base_anchors[0]  # P3, stride 8
        widths = base[:, 2] - base[:, 0]
        heights = base[:, 3] - base[:, 1]
        return float(widths[torch.isclose(widths, heights)].min())

    row = zoo.get("retinanet", "r50", "1x").model
    assert smallest_square(build_model(row)) == pytest.approx(32.0)  # 4 x stride 8
    small = build_model(replace_path(row, "dense.octave_base_scale", 2.0))
    assert smallest_square(small) == pytest.approx(16.0)
