"""det_engine.data: a zoo row's DataConfig made into datasets, transforms and batches."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from det_data import (
    Expand,
    MinIoURandomCrop,
    Normalize,
    PhotoMetricDistortion,
    RandomFlip,
    Resize,
)
from det_engine import data as data_path
from det_engine.data import DataError
from det_models import Detector, zoo


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory):
    from det_data import shapes

    return shapes.prepare(tmp_path_factory.mktemp("data") / "shapes", {"train": 3, "val": 2})


def _row(*key):
    return zoo.get(*key).data


@pytest.mark.parametrize("legacy", [False, True], ids=["float", "legacy"])
@pytest.mark.parametrize(
    "key, img_scale",
    [
        (("faster_rcnn", "r50", "1x"), (160, 96)),  # keep ratio, pytorch style, pad to 32
        (("faster_rcnn", "r50-caffe", "1x"), (120, 100)),  # caffe style: BGR, std 1
        (("ssd300", "vgg16", "120e"), None),  # square 300 x 300, std 1, no padding
        (("ssd512", "vgg16", "120e"), (200, 150)),  # a non-square (width, height) resize
    ],
)
def test_detector_preprocesses_as_the_test_pipeline(shapes_root, key, img_scale, legacy):
    data = data_path.data_config_for(_row(*key), "shapes", img_scale)
    data = dataclasses.replace(data, legacy_resize=legacy)
    dataset = data_path.build_dataset(data, "shapes", str(shapes_root), "val", train=False)
    samples = [dataset[0], dataset[1]]
    images, metas, _ = data_path.collate_fn(data)(samples)
    files = [r.file for r in dataset.records[:2]]
    got, got_metas = Detector(torch.nn.Identity(), data, fast=False).preprocess(files)
    # The same tensor, bit for bit, from both paths.
    assert got.shape == images.shape
    assert torch.equal(got, images)
    for ours, theirs in zip(got_metas, metas, strict=True):
        for name in ("ori_shape", "img_shape", "pad_shape", "flip"):
            assert ours[name] == theirs[name], name
        assert ours["scale_factor"] == pytest.approx(theirs["scale_factor"])
    if not data.keep_ratio:
        width, height = data.img_scale
        assert images.shape[-2:] == (height, width)  # SSD: no padding to 32
    elif legacy:
        # The 2019 resize: one scale factor for both axes, the one the sides came from.
        factor = got_metas[0]["scale_factor"]
        assert factor[0] == factor[1] == factor[2] == factor[3]


def test_ssd_rows_train_with_their_augmentation_and_normalisation():
    data = _row("ssd300", "vgg16", "120e")
    steps = data_path.train_transforms(data).transforms
    assert [type(t) for t in steps] == [
        PhotoMetricDistortion,
        Expand,
        MinIoURandomCrop,
        Resize,
        RandomFlip,
        Normalize,
    ]
    _, expand, crop, resize, flip, norm = steps
    assert expand.ratio_range == (1.0, 4.0)
    assert expand.mean.flatten().tolist() == pytest.approx([123.675, 116.28, 103.53])
    assert crop.modes == (1.0, 0.1, 0.3, 0.5, 0.7, 0.9, 0.0) and crop.min_crop_size == 0.3
    assert resize.scales == [(300, 300)] and not resize.keep_ratio
    assert flip.p == 0.5
    assert norm.std.flatten().tolist() == [1.0, 1.0, 1.0] and not norm.to_bgr
    # A sample comes out as the 300 x 300 square, and the batch is not padded.
    torch.manual_seed(0)
    image = torch.randint(0, 256, (3, 60, 90), dtype=torch.uint8)
    meta = {"scale_factor": (1.0,) * 4, "flip": False}
    target = {"boxes": torch.tensor([[10.0, 10.0, 50.0, 40.0]]), "labels": torch.tensor([0])}
    for _ in range(5):
        out, out_meta, out_target = data_path.train_transforms(data)(image, meta, target)
        assert out.shape == (3, 300, 300) and out_meta["img_shape"] == (300, 300, 3)
        assert (out_target["boxes"] >= 0).all() and (out_target["boxes"] <= 300).all()
    batch, _, _ = data_path.collate_fn(data)([(out, out_meta, out_target)])
    assert batch.shape == (1, 3, 300, 300)


def test_keep_ratio_rows_train_with_resize_flip_and_normalise_on_the_device():
    data = _row("mask_rcnn", "r50-caffe", "1x")
    steps = data_path.train_transforms(data).transforms
    assert [type(t) for t in steps] == [Resize, RandomFlip]
    assert steps[0].scales == [(1333, 800)] and steps[0].keep_ratio
    assert data_path.batch_normalizer(data) is not None
    assert data_path.batch_normalizer(_row("ssd300", "vgg16", "120e")) is None
    # flip_ratio is read: 0 drops the flip, 1 flips every image
    assert RandomFlip not in {type(t) for t in data_path.train_transforms(
        dataclasses.replace(data, flip_ratio=0.0)).transforms}  # fmt: skip
    multi = dataclasses.replace(data, train_scales=((1333, 640), (1333, 800)))
    multi = dataclasses.replace(multi, multiscale_mode="range")
    resize = data_path.train_transforms(multi).transforms[0]
    assert resize.mode == "range" and resize.scales == [(1333, 640), (1333, 800)]


@pytest.mark.parametrize("key", [("faster_rcnn", "r50", "1x"), ("faster_rcnn", "r50-caffe", "1x")])
def test_training_batches_normalised_on_the_device_equal_those_normalised_per_image(
    shapes_root, key
):
    """uint8 batches normalised by the Trainer's batch_normalizer are, bit for bit, the
    batches of the per-image pipeline (resize, flip, det_data.Normalize, then padding)."""
    data = data_path.data_config_for(_row(*key), "shapes", (96, 64))
    dataset = data_path.build_dataset(data, "shapes", str(shapes_root), "train", train=True)
    torch.manual_seed(0)
    samples = [dataset[i] for i in range(3)]
    assert all(s[0].dtype == torch.uint8 for s in samples)
    assert len({s[0].shape for s in samples}) > 1  # padding differs per image
    images, metas, _ = data_path.collate_fn(data)(samples)
    assert images.dtype == torch.uint8
    got = data_path.batch_normalizer(data)(images, metas)

    per_image = [(data_path.normalize(data)(*s)[0], s[1], s[2]) for s in samples]
    expected, _, _ = data_path.collate_fn(data)(per_image)
    assert got.dtype == torch.float32 and torch.equal(got, expected)
    # float images on the 0..255 scale normalise to the same values
    assert torch.equal(data_path.batch_normalizer(data)(images.float(), metas), expected)


def test_normalize_batch_names_what_does_not_fit():
    from det_models import normalize_batch

    data = _row("faster_rcnn", "r50", "1x")
    images = torch.zeros(2, 3, 64, 96, dtype=torch.uint8)
    metas = [{"img_shape": (64, 90, 3)}, {"img_shape": (60, 96, 3)}]
    with pytest.raises(ValueError, match=r"metas: expected 2 \(one per image\), got 1"):
        normalize_batch(images, metas[:1], data)
    with pytest.raises(ValueError, match=r"metas\[1\]\['img_shape'\] \(70, 96, 3\) does not fit"):
        normalize_batch(images, [metas[0], {"img_shape": (70, 96, 3)}], data)
    with pytest.raises(ValueError, match=r"Tensor\[B, 3, H, W\], got \(3, 64, 96\)"):
        normalize_batch(images[0], metas, data)
    with pytest.raises(ValueError, match="uint8 or floating point"):
        normalize_batch(images.long(), metas, data)


def test_flip_ratio_reaches_the_training_samples(shapes_root):
    data = data_path.data_config_for(_row("retinanet", "r50", "1x"), "shapes", (96, 64))
    for ratio, flipped in ((1.0, {True}), (0.0, {False})):
        row = dataclasses.replace(data, flip_ratio=ratio)
        dataset = data_path.build_dataset(row, "shapes", str(shapes_root), "train", train=True)
        assert {dataset[i][1]["flip"] for i in range(len(dataset))} == flipped


def test_masks_are_loaded_for_mask_rows_only(shapes_root):
    for key, with_masks in ((("mask_rcnn", "r50", "1x"), True), (("rpn", "r50", "1x"), False)):
        data = data_path.data_config_for(_row(*key), "shapes", (96, 64))
        dataset = data_path.build_dataset(data, "shapes", str(shapes_root), "train", train=True)
        assert ("masks" in dataset[0][2]) == with_masks


def test_scale_of_each_source():
    faster, ssd = _row("faster_rcnn", "r50", "1x"), _row("ssd512", "vgg16", "120e")
    assert data_path.data_config_for(faster, "coco").img_scale == (1333, 800)
    assert data_path.data_config_for(faster, "shapes").img_scale == data_path.SHAPES_SCALE
    assert data_path.data_config_for(faster, "voc").img_scale == (1000, 600)
    assert data_path.data_config_for(ssd, "shapes").img_scale == (512, 512)  # SSD's own input
    assert data_path.data_config_for(ssd, "voc", (320, 320)).img_scale == (320, 320)
    assert data_path.data_source(_row("ssd300", "vgg16", "240e", "voc"), None) == "voc"
    assert data_path.data_source(faster, None) == "coco"
    with pytest.raises(ValueError, match="img_scale"):
        data_path.data_config_for(faster, "coco", (0, 5))


def test_fast_rcnn_without_proposals_says_what_to_pass_and_how_to_make_them(tmp_path):
    data = _row("fast_rcnn", "r50", "1x")
    common = {"model": "fast_rcnn", "source": "coco", "root": str(tmp_path)}
    with pytest.raises(DataError) as e:
        data_path.proposal_file(data, needs_proposals=True, split="train", given=None, **common)
    message = str(e.value)
    assert str(tmp_path / "proposals" / "rpn_r50_fpn_1x_train2017.pkl") in message
    assert "--proposals-train FILE and --proposals-test FILE" in message
    assert "python -m det_engine.test rpn r50 1x" in message and "--proposals-out" in message
    # The row's own file under the data root is found.
    own = tmp_path / "proposals" / "rpn_r50_fpn_1x_val2017.pkl"
    own.parent.mkdir()
    own.write_bytes(b"")
    kwargs = {"needs_proposals": True, "split": "val", **common}
    assert data_path.proposal_file(data, given=None, **kwargs) == own
    with pytest.raises(DataError, match=r"--proposals-test .*nope\.pkl: no such file"):
        data_path.proposal_file(data, given=str(tmp_path / "nope.pkl"), **kwargs)
    with pytest.raises(DataError, match="retinanet takes no precomputed proposals"):
        data_path.proposal_file(
            data,
            needs_proposals=False,
            model="retinanet",
            source="coco",
            root=None,
            split="train",
            given=str(own),
        )


def test_the_test_pipeline_takes_targets_to_the_resized_image():
    # Fast R-CNN tests on proposals in input pixels: they are scaled as the image is.
    data = data_path.data_config_for(_row("fast_rcnn", "r50", "1x"), "shapes", (160, 96))
    image = torch.randint(0, 256, (3, 48, 120), dtype=torch.uint8)
    meta = {"image_id": 7, "ori_shape": (48, 120, 3), "scale_factor": (1.0,) * 4, "flip": False}
    proposals = torch.tensor([[10.0, 4.0, 60.0, 40.0, 0.9], [100.0, 0.0, 120.0, 48.0, 0.5]])
    target = {"boxes": proposals[:1, :4].clone(), "labels": torch.tensor([0])}
    target["proposals"] = proposals
    out, out_meta, out_target = data_path.inference_transforms(data)(image, meta, target)
    # 48 x 120 -> 64 x 160: the long side reaches 160 first
    assert out.shape == (3, 64, 160) and out.dtype == torch.float32
    assert out_meta["img_shape"] == out_meta["pad_shape"] == (64, 160, 3)
    assert out_meta["image_id"] == 7 and out_meta["scale_factor"] == (4 / 3,) * 4
    scale = torch.tensor([4 / 3] * 4 + [1.0])
    torch.testing.assert_close(out_target["proposals"], proposals * scale)
    torch.testing.assert_close(out_target["boxes"], proposals[:1, :4] * scale[:4])
    assert torch.equal(out_target["labels"], target["labels"])
    assert torch.equal(target["proposals"], proposals)  # the given target is left as it was


@pytest.mark.parametrize("device, polygons", [("cpu", True), ("cuda", False)])
def test_a_cuda_runs_loader_rasterises_polygon_masks(shapes_root, device, polygons):
    """The training loader of a run on CUDA hands the mask targets bitmaps (cut on the
    device); on the CPU the polygons go to the heads as they are."""
    from det_engine.run import make_loader
    from det_models.config import RunConfig

    row = zoo.get("mask_rcnn", "r50", "1x")
    data = data_path.data_config_for(row.data, "shapes", (96, 64))
    dataset = data_path.build_dataset(data, "shapes", str(shapes_root), "train", train=True)
    run = RunConfig(name="mask", model=row.model, data=data, schedule=row.schedule)
    images, metas, targets = next(iter(make_loader(run, dataset, device=device)))
    assert images.dtype == torch.uint8
    for target, meta in zip(targets, metas, strict=True):
        masks = target["masks"]
        if polygons:
            assert isinstance(masks, list) and isinstance(masks[0][0], list)
        else:
            h, w = meta["img_shape"][:2]
            assert masks.dtype == torch.uint8 and masks.shape == (len(target["boxes"]), h, w)
            assert masks.flatten(1).amax(1).eq(1).all()  # every object has pixels
