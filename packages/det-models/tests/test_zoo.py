"""The zoo table against figures read by hand from the 2019 zoo document."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from det_models import zoo

S3 = "https://s3.ap-northeast-2.amazonaws.com/open-mmlab/mmdetection/models/"
ALIYUN = "https://open-mmlab.oss-cn-beijing.aliyuncs.com/mmdetection/models/"


def test_issue_examples_resolve_with_the_documents_figures():
    row = zoo.entry("faster_rcnn", "r101", "2x")
    assert (row.reference.memory_gb, row.reference.train_s_per_iter) == (8.0, 0.698)
    assert (row.reference.inference_fps, row.reference.box_ap) == (8.3, 39.4)
    assert row.url == S3 + "faster_rcnn_r101_fpn_2x_20181129-73e7ade7.pth"

    row = zoo.entry("cascade_mask_rcnn", "x101-64x4d", "20e")
    assert (row.reference.box_ap, row.reference.mask_ap, row.reference.memory_gb) == (
        45.8,
        39.5,
        10.87,
    )
    assert row.url == S3 + "cascade_mask_rcnn_x101_64x4d_fpn_20e_20181218-630773a7.pth"
    # The document's note: 16 GPUs with 1 image each.
    assert (row.schedule_config.gpus, row.schedule_config.imgs_per_gpu) == (16, 1)
    assert row.schedule_config.batch_size == 16

    row = zoo.entry("ssd512", "vgg16", "240e", variant="voc")
    assert row.reference.box_ap == 80.4
    assert (row.reference.inference_fps, row.reference.inference_fps_batch8) == (28.1, 36.2)
    assert row.url == S3 + "ssd512_voc_vgg16_caffe_240e_20181221-7652ee18.pth"
    assert row.data.dataset == "voc0712"
    assert row.data.img_scale == (512, 512) and not row.data.keep_ratio
    assert row.backbone_arch == "vgg16-ssd512"

    row = zoo.entry("mask_rcnn", "r50", "3x", variant="gn")
    assert (row.reference.box_ap, row.reference.mask_ap) == (40.2, 36.5)
    assert row.url == S3 + "mask_rcnn_r50_fpn_gn_3x_20180113-8e82f48d.pth"
    assert row.schedule_config.epochs == 36 and row.schedule_config.lr_steps == (28, 34)
    assert row.reference.memory_metric == "max_memory_allocated"

    row = zoo.entry("faster_rcnn", "r50", "1x", variant="mdconv-c3-c5")
    assert (row.reference.memory_gb, row.reference.box_ap) == (3.7, 40.3)
    assert row.url == S3 + "dcn/faster_rcnn_mdconv_c3-c5_r50_fpn_1x_20190125-1b768045.pth"

    row = zoo.entry("fast_rcnn", "r50", "1x", variant="mask")
    assert (row.reference.box_ap, row.reference.mask_ap) == (36.8, 34.1)
    assert row.url == S3 + "fast_mask_rcnn_r50_fpn_1x_20181010-e030a38f.pth"
    assert row.data.with_mask
    assert row.data.train_proposals == "proposals/rpn_r50_fpn_1x_train2017.pkl"


def test_faster_rcnn_r50_1x_and_its_mirror():
    row = zoo.entry("faster_rcnn", "r50", "1x")
    assert row.reference == zoo.Reference(
        memory_gb=5.1, train_s_per_iter=0.554, inference_fps=9.9, box_ap=36.4
    )
    assert row.url == S3 + "faster_rcnn_r50_fpn_1x_20181010-3d1b3351.pth"
    assert row.mirror_url == ALIYUN + "faster_rcnn_r50_fpn_1x_20181010-3d1b3351.pth"
    assert (row.style, row.backbone_arch) == ("pytorch", "r50")


def test_mirror_rule():
    assert zoo.mirror_of(zoo.MAIN_SITE + "/a/b.pth") == zoo.MIRROR_SITE + "/a/b.pth"
    with pytest.raises(ValueError, match="url must start with"):
        zoo.mirror_of("https://example.com/open-mmlab/a.pth")
    for row in map(lambda key: zoo.entry(*key), zoo.names()):
        if row.url is None:
            assert row.mirror_url is None
        else:
            assert row.url.startswith(S3) and row.mirror_url.startswith(ALIYUN)
            assert row.url[len(S3) :] == row.mirror_url[len(ALIYUN) :]


def test_spot_checks_across_tables():
    rpn = zoo.entry("rpn", "x101-64x4d", "2x")
    assert (rpn.reference.ar1000, rpn.reference.memory_gb, rpn.reference.box_ap) == (
        60.0,
        14.6,
        None,
    )
    caffe = zoo.entry("rpn", "r50-caffe", "1x")
    assert (caffe.reference.ar1000, caffe.url, caffe.mirror_url) == (58.2, None, None)
    assert (caffe.style, caffe.backbone_arch) == ("caffe", "r50-caffe")
    assert caffe.data.normalize == zoo.Normalize(
        mean=(102.9801, 115.9465, 122.7717), std=(1.0, 1.0, 1.0), to_rgb=False
    )
    assert zoo.entry("retinanet", "x101-64x4d", "2x").reference.box_ap == 39.6
    assert zoo.entry("cascade_rcnn", "x101-64x4d", "1x").reference.train_s_per_iter == 1.251
    # Published with "2x" in the file name although the table says 20e.
    assert zoo.entry("cascade_rcnn", "x101-32x4d", "20e").url == (
        S3 + "cascade_rcnn_x101_32x4d_fpn_2x_20181218-28f73c4c.pth"
    )
    assert zoo.entry("mask_rcnn", "r101-caffe", "1x").reference.mask_ap == 36.1
    assert zoo.entry("fast_rcnn", "r101-caffe", "1x", "mask").reference.memory_gb == 8.6
    ssd = zoo.entry("ssd300", "vgg16", "120e")
    assert (ssd.reference.box_ap, ssd.reference.inference_fps_batch8) == (25.7, 29.2)
    assert ssd.url == S3 + "ssd300_coco_vgg16_caffe_120e_20181221-84d7110b.pth"
    contrib = zoo.entry("mask_rcnn", "r50", "2x", "gn-contrib")
    assert (contrib.reference.box_ap, contrib.reference.mask_ap) == (39.7, 35.9)
    assert contrib.data.normalize.to_rgb  # contributed weights use torchvision's statistics
    dcn = zoo.entry("cascade_mask_rcnn", "r101", "1x", "dconv-c3-c5")
    assert (dcn.reference.box_ap, dcn.reference.mask_ap, dcn.reference.memory_gb) == (
        45.8,
        39.5,
        8.5,
    )


def test_mask_rcnn_x101_rows_are_keyed_by_their_checkpoints():
    # The document swaps the backbone labels of the 8th and 9th Mask R-CNN rows.
    row = zoo.entry("mask_rcnn", "x101-32x4d", "2x")
    assert (row.reference.memory_gb, row.reference.box_ap, row.reference.mask_ap) == (
        10.9,
        41.4,
        37.1,
    )
    assert row.url == S3 + "mask_rcnn_x101_32x4d_fpn_2x_20181218-f023dffa.pth"
    row = zoo.entry("mask_rcnn", "x101-64x4d", "1x")
    assert (row.reference.memory_gb, row.reference.box_ap, row.reference.mask_ap) == (
        14.1,
        42.2,
        38.1,
    )
    assert row.url == S3 + "mask_rcnn_x101_64x4d_fpn_1x_20181218-cb159987.pth"


def test_counts_per_family_counted_by_hand():
    counts = Counter(key[0] for key in zoo.names())
    assert counts == {
        "rpn": 10,
        "faster_rcnn": 16,  # 10 baselines + 6 DCN
        "mask_rcnn": 19,  # 10 baselines + 6 GN + 3 DCN
        "fast_rcnn": 12,  # 6 box + 6 with masks
        "retinanet": 10,
        "cascade_rcnn": 12,  # 10 + 2 DCN
        "cascade_mask_rcnn": 12,  # 10 + 2 DCN
        "ssd300": 2,
        "ssd512": 2,
    }
    variants = Counter(key[3] for key in zoo.names())
    assert variants == {
        None: 68,
        "mask": 6,
        "voc": 2,
        "gn": 4,
        "gn-contrib": 2,
        "dconv-c3-c5": 9,
        "mdconv-c3-c5": 2,
        "dpool": 1,
        "mdpool": 1,
    }
    # 16 caffe-style rows (no download: 2 per table, 4 in Fast R-CNN) and 79 checkpoints.
    rows = [zoo.entry(*key) for key in zoo.names()]
    assert sum(row.url is None for row in rows) == 16
    assert all(row.backbone.endswith("-caffe") == (row.url is None) for row in rows)


def test_names_unique_and_in_document_order():
    keys = zoo.names()
    assert len(keys) == len(set(keys)) == 95
    assert keys[0] == ("rpn", "r50-caffe", "1x", None)
    assert keys[10] == ("faster_rcnn", "r50-caffe", "1x", None)
    assert keys[-1] == ("cascade_mask_rcnn", "r101", "1x", "dconv-c3-c5")
    for key in keys:
        assert zoo.entry(*key).key == key


_EPOCHS = {"1x": 12, "2x": 24, "20e": 20, "3x": 36, "120e": 120, "240e": 240}
_MASKED = {"mask_rcnn", "cascade_mask_rcnn"}


@pytest.mark.parametrize("key", zoo.names(), ids=lambda key: "-".join(map(str, key)))
def test_every_entry_is_consistent(key):
    row = zoo.entry(*key)
    ref = row.reference
    masked = row.model in _MASKED or (row.model == "fast_rcnn" and row.variant == "mask")
    assert (ref.mask_ap is not None) == masked == row.data.with_mask
    assert (ref.ar1000 is not None) == (row.model == "rpn") == (ref.box_ap is None)
    assert (ref.inference_fps_batch8 is not None) == row.model.startswith("ssd")
    assert all(v is not None and v > 0 for v in (ref.memory_gb, ref.train_s_per_iter))
    sched = row.schedule_config
    assert sched.total_epochs == _EPOCHS[row.schedule]
    assert all(0 < step < sched.epochs for step in sched.lr_steps)
    assert list(sched.lr_steps) == sorted(sched.lr_steps)
    # SSD: 8 GPUs x 8 images on COCO, x 4 on VOC (the v0.6.0 ssd*_coco / ssd*_voc configs).
    ssd_batch = 32 if row.variant == "voc" else 64
    assert sched.batch_size == (ssd_batch if row.model.startswith("ssd") else 16)
    assert (row.data.train_proposals is not None) == (row.model == "fast_rcnn")
    if row.url is not None:
        assert row.url.endswith(".pth")
        assert f"_{row.backbone.replace('-', '_')}_" in row.url
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.model = "other"  # type: ignore[misc]


def test_schedule_settings_follow_the_original_configs():
    faster = zoo.entry("faster_rcnn", "r50", "2x").schedule_config
    assert faster == zoo.ScheduleConfig(epochs=24, lr_steps=(16, 22))
    assert (faster.lr, faster.momentum, faster.weight_decay) == (0.02, 0.9, 1e-4)
    assert (faster.warmup, faster.warmup_iters, faster.warmup_ratio) == ("linear", 500, 1 / 3)
    assert faster.grad_clip_norm == 35.0
    cascade = zoo.entry("cascade_rcnn", "r50", "20e").schedule_config
    assert (cascade.epochs, cascade.lr_steps) == (20, (16, 19))
    assert zoo.entry("retinanet", "r50", "1x").schedule_config.lr == 0.01
    ssd = zoo.entry("ssd300", "vgg16", "120e").schedule_config
    assert (ssd.weight_decay, ssd.grad_clip_norm, ssd.imgs_per_gpu) == (5e-4, None, 8)
    assert ssd.epochs * ssd.dataset_repeat == 120
    voc = zoo.entry("ssd300", "vgg16", "240e", variant="voc").schedule_config
    # configs/pascal_voc/ssd300_voc.py: 4 images per GPU, lr 1e-3, steps 16 and 20, 10 repeats.
    assert (voc.imgs_per_gpu, voc.lr, voc.lr_steps, voc.dataset_repeat) == (4, 1e-3, (16, 20), 10)


def test_data_settings():
    faster = zoo.entry("faster_rcnn", "r50", "1x").data
    assert (faster.dataset, faster.img_scale, faster.keep_ratio) == ("coco", (1333, 800), True)
    assert (faster.flip_ratio, faster.size_divisor, faster.with_mask) == (0.5, 32, False)
    assert faster.normalize == zoo.Normalize(
        mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375), to_rgb=True
    )
    assert faster.train_proposals is None and faster.ssd_augment is None
    assert zoo.entry("mask_rcnn", "r50", "1x").data.with_mask
    ssd = zoo.entry("ssd300", "vgg16", "120e").data
    assert ssd.normalize == zoo.Normalize(
        mean=(123.675, 116.28, 103.53), std=(1.0, 1.0, 1.0), to_rgb=True
    )
    assert (ssd.img_scale, ssd.size_divisor, ssd.dataset) == ((300, 300), None, "coco")
    assert ssd.ssd_augment == zoo.SSDAugment()
    # Detectron-converted GN weights take BGR caffe normalisation.
    assert not zoo.entry("mask_rcnn", "r101", "2x", "gn").data.normalize.to_rgb


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (("faster_rcn", "r50", "1x"), r"model must be one of .*\(closest: faster_rcnn"),
        (("faster_rcnn", "r5", "1x"), r"backbone must be one of .* got 'r5' \(closest: r50"),
        (("ssd512", "vgg16-ssd512", "240e", "voc"), r"backbone must be one of vgg16 for"),
        (("faster_rcnn", "r101", "3x"), r"valid schedule/variant for faster_rcnn r101: 1x"),
        (("mask_rcnn", "r50", "3x"), r"3x \(variant='gn'\)"),
        (("mask_rcnn", "r50", "3x", "gm"), r"closest entries: \('mask_rcnn', 'r50', '3x', va"),
    ],
)
def test_unknown_keys_name_the_valid_choices(key, expected):
    with pytest.raises(ValueError, match=expected):
        zoo.entry(*key)


def test_wrong_argument_types():
    with pytest.raises(TypeError, match="schedule must be a str, got int"):
        zoo.entry("faster_rcnn", "r50", 1)
    with pytest.raises(TypeError, match="variant must be a str or None"):
        zoo.entry("faster_rcnn", "r50", "1x", variant=3)


def test_markdown_table():
    text = zoo.table("rpn")
    lines = text.splitlines()
    assert len(lines) == 2 + 10
    assert lines[0].startswith("| model | backbone | schedule | variant | mem (GB)")
    assert lines[2] == "| rpn | r50-caffe | 1x | - | 4.5 | 0.379 | 14.4 | - | - | 58.2 | - |"
    assert len(zoo.table().splitlines()) == 2 + 95
    assert "| ssd300 | vgg16 | 240e | voc | 1.2 | 0.189 | 40.1 / 58.0 | 77.8 |" in zoo.table()
    with pytest.raises(ValueError, match="model must be None or one of"):
        zoo.table("yolo")
