"""Detector.predict: inputs, test-time preprocessing and metas, errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from det_heads import NMSConfig
from det_models import Detector, zoo
from det_models.predict import rescaled_size

torchvision_io = pytest.importorskip("torchvision.io")
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding:DeprecationWarning")


def _image(height: int = 64, width: int = 80) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (3, height, width), generator=g, dtype=torch.uint8)


@pytest.fixture(scope="module")
def detector() -> Detector:
    torch.manual_seed(0)
    # score_thr 0 keeps detections of the freshly initialised head (scores near its 0.01 prior)
    model = zoo.build(
        "retinanet", "r50", "1x", num_classes=3, dense__nms=NMSConfig(score_thr=0.0, max_per_img=50)
    )
    data = dataclasses.replace(zoo.get("retinanet", "r50", "1x").data, img_scale=(160, 96))
    return Detector(model, data)


def test_path_array_and_tensor_give_identical_detections(detector, tmp_path):
    image = _image()
    path = tmp_path / "image.png"
    torchvision_io.write_png(image, str(path))
    array = image.permute(1, 2, 0).numpy()

    # one image per call: the same pixels give bit-identical outputs
    from_path = detector.predict(path)
    assert set(from_path) == {"boxes", "scores", "labels"}
    assert from_path["boxes"].shape == (50, 4)
    for other in (str(path), array, image, image.float()):
        result = detector.predict(other)
        for key in ("boxes", "scores", "labels"):
            torch.testing.assert_close(result[key], from_path[key], rtol=0, atol=0)
    # in one batch (float rounding of batched convolutions only)
    batched = detector.predict([path, array, image])
    assert len(batched) == 3
    for result in batched:
        torch.testing.assert_close(result["boxes"], from_path["boxes"], rtol=0, atol=1e-3)
        torch.testing.assert_close(result["scores"], from_path["scores"], rtol=0, atol=1e-5)
    assert from_path["labels"].min() >= 0 and from_path["labels"].max() < 3


def test_boxes_inside_original_image(detector):
    # 64 x 80 -> 77 x 96 by (160, 96): the short side reaches 96 first; padded to 96 x 96
    results = detector.predict([_image(64, 80), _image(40, 120)])
    for result, (height, width) in zip(results, [(64, 80), (40, 120)], strict=True):
        boxes = result["boxes"]
        assert len(boxes) > 0
        assert boxes.min() >= 0
        assert (boxes[:, [0, 2]] <= width + 1e-3).all()
        assert (boxes[:, [1, 3]] <= height + 1e-3).all()
        assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()


def test_metas_for_the_zoo_scale():
    data = zoo.get("faster_rcnn", "r50", "1x").data
    det = Detector(torch.nn.Conv2d(3, 3, 1), data)
    assert rescaled_size(480, 640, data) == (800, 1067)
    batch, metas = det.preprocess([np.zeros((480, 640, 3), np.uint8), _image(100, 50)])
    first, second = metas
    assert first["ori_shape"] == (480, 640, 3)
    assert first["img_shape"] == (800, 1067, 3)
    assert first["pad_shape"] == (800, 1088, 3)
    assert first["scale_factor"] == pytest.approx((1067 / 640, 800 / 480, 1067 / 640, 800 / 480))
    assert first["flip"] is False and first["image_id"] == 0
    # 100 x 50 (h x w): long side 100 -> 1333 caps it (scale 13.33), short 50 -> 667
    assert second["img_shape"] == (1333, 667, 3)
    assert second["pad_shape"] == (1344, 672, 3)
    assert batch.shape == (2, 3, 1344, 1088)
    # pytorch-style normalisation of black pixels, zero padding past img_shape
    torch.testing.assert_close(
        batch[0, :, 0, 0], torch.tensor([-2.1179, -2.0357, -1.8044]), atol=1e-4, rtol=0
    )
    assert batch[0, :, 800:, :].abs().max() == 0 and batch[0, :, :, 1067:].abs().max() == 0


def test_caffe_normalisation_is_bgr_and_ssd_is_square():
    caffe = Detector(torch.nn.Identity(), zoo.get("faster_rcnn", "r50-caffe", "1x").data)
    image = torch.zeros(3, 800, 800)
    image[0] = 200.0  # red
    batch, _ = caffe.preprocess(image)
    # channel 0 is blue after the flip: 0 - 102.9801
    assert batch[0, :, 0, 0].tolist() == pytest.approx([-102.9801, -115.9465, 200 - 122.7717])

    ssd = Detector(torch.nn.Identity(), zoo.get("ssd300", "vgg16", "120e").data)
    batch, (meta,) = ssd.preprocess(_image(64, 80))
    assert batch.shape == (1, 3, 300, 300)
    assert meta["img_shape"] == meta["pad_shape"] == (300, 300, 3)
    assert meta["scale_factor"] == pytest.approx((300 / 80, 300 / 64, 300 / 80, 300 / 64))
    # SSD's VGG16 weights: RGB with the mean removed, std 1
    batch, _ = ssd.preprocess(torch.full((3, 300, 300), 200, dtype=torch.uint8))
    assert batch[0, :, 0, 0].tolist() == pytest.approx([200 - 123.675, 200 - 116.28, 200 - 103.53])


def test_from_zoo_loads_a_state_dict_file(tmp_path):
    torch.manual_seed(0)
    model = zoo.build("retinanet", "r50", "1x", num_classes=3)
    path = tmp_path / "weights.pth"
    torch.save(model.state_dict(), path)
    loaded = Detector.from_zoo("retinanet", "r50", "1x", num_classes=3, checkpoint=path, fast=False)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.model.state_dict()[key], value, rtol=0, atol=0)
    assert loaded.data_config.img_scale == (1333, 800)
    assert not loaded.model.training


def test_from_zoo_converts_a_2019_checkpoint_with_the_2019_conventions(tmp_path):
    from mmdet_layout import to_mmdet

    from det_heads import MMDET_V06

    key = ("retinanet", "r50", "1x", None)
    torch.manual_seed(0)
    source = zoo.build(*key)
    path = tmp_path / "retinanet_r50_fpn_1x.pth"
    torch.save({"state_dict": to_mmdet(source.state_dict(), key), "meta": {}}, path)
    loaded = Detector.from_zoo("retinanet", "r50", "1x", checkpoint=path, fast=False)
    assert loaded.model.model_config.conventions == MMDET_V06
    assert loaded.data_config.legacy_resize
    torch.testing.assert_close(loaded.model.head.cls.weight, source.head.cls.weight)


def test_from_zoo_names_the_keys_of_a_checkpoint_of_another_row(tmp_path):
    from mmdet_layout import to_mmdet

    torch.manual_seed(0)
    key = ("faster_rcnn", "r50", "1x", None)
    path = tmp_path / "faster.pth"
    torch.save(to_mmdet(zoo.build(*key).state_dict(), key), path)
    # A Faster R-CNN checkpoint given for the Mask R-CNN row: the mask head is missing.
    with pytest.raises(ValueError, match=r"zoo row \('mask_rcnn'.*missing \(\d+\): roi_head\.mask"):
        Detector.from_zoo("mask_rcnn", "r50", "1x", checkpoint=path)
    # Our own keys of a 3-class model for an 80-class row: the classifier's shapes.
    model = zoo.build("retinanet", "r50", "1x", num_classes=3)
    torch.save(model.state_dict(), path)
    with pytest.raises(
        ValueError, match=r"head\.cls\.weight: model \[720, 256, 3, 3\], checkpoint"
    ):
        Detector.from_zoo("retinanet", "r50", "1x", checkpoint=path)


def test_fast_path_gives_the_same_detections():
    torch.manual_seed(0)
    nms = NMSConfig(score_thr=0.0, max_per_img=50)
    model = zoo.build("mask_rcnn", "r50", "1x", num_classes=3, roi__nms=nms)
    model.roi_head.bbox_head.cls.bias.data.normal_(0.0, 2.0)  # detections above the threshold
    data = dataclasses.replace(zoo.get("mask_rcnn", "r50", "1x").data, img_scale=(160, 96))
    plain = Detector(model, data, fast=False).predict(_image())
    fast_detector = Detector(model, data)
    assert fast_detector.model.backbone.conv1.weight.is_contiguous(
        memory_format=torch.channels_last
    )
    fast = fast_detector.predict(_image())
    assert plain["scores"].numel() > 0
    torch.testing.assert_close(fast["boxes"], plain["boxes"], rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(fast["scores"], plain["scores"], rtol=1e-4, atol=1e-5)
    assert torch.equal(fast["labels"], plain["labels"])
    assert (fast["masks"] != plain["masks"]).float().mean() < 1e-3


def test_bad_inputs_name_the_input(detector, tmp_path):
    missing = tmp_path / "nope.jpg"
    with pytest.raises(FileNotFoundError, match=r"nope\.jpg"):
        detector.predict(missing)
    with pytest.raises(ValueError, match=r"images\[1\].*\(64, 80\)"):
        detector.predict([_image(), np.zeros((64, 80), np.uint8)])
    with pytest.raises(ValueError, match="dtype uint8"):
        detector.predict(np.zeros((64, 80, 3), np.float32))
    with pytest.raises(ValueError, match=r"\[3, H, W\]"):
        detector.predict(torch.zeros(64, 80, 3, dtype=torch.uint8))
    with pytest.raises(TypeError, match="file path"):
        detector.predict(42)
    with pytest.raises(FileNotFoundError, match=r"missing\.pth"):
        Detector.from_zoo("retinanet", "r50", "1x", checkpoint=tmp_path / "missing.pth")
