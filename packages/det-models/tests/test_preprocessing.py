"""det_models.preprocessing: the per-image test-time step on the image's device, and the
batch preprocess builds from it."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from det_models import Detector, pad_batch, preprocess, preprocess_image, zoo

# (row key, img_scale, legacy_resize): pytorch-style mean/std, caffe BGR, SSD's square, and
# the 2019 resize.
ROWS = {
    "pytorch": (("retinanet", "r50", "1x"), (160, 96), False),
    "caffe": (("faster_rcnn", "r50-caffe", "1x"), (120, 100), False),
    "ssd": (("ssd300", "vgg16", "120e"), None, False),
    "legacy": (("faster_rcnn", "r50", "1x"), (160, 96), True),
}


def _data(name: str):
    key, img_scale, legacy = ROWS[name]
    data = zoo.get(*key).data
    if img_scale is not None:
        data = dataclasses.replace(data, img_scale=img_scale)
    return dataclasses.replace(data, legacy_resize=legacy)


def _images() -> list[torch.Tensor]:
    """uint8 RGB images that the scales above enlarge (64 x 80) and shrink (300 x 180)."""
    g = torch.Generator().manual_seed(0)
    return [
        torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8)
        for h, w in ((64, 80), (300, 180))
    ]


class _Recorder(nn.Module):
    """A stand-in detector: keeps the batch it is given, detects nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.seen: list[tuple[torch.Tensor, list[dict]]] = []

    def forward(self, images, metas):
        self.seen.append((images.clone(), metas))
        return [{"boxes": images.new_zeros(0, 4), "scores": images.new_zeros(0)} for _ in metas]


@pytest.mark.parametrize("row", list(ROWS))
def test_uint8_and_float_inputs_give_the_same_batch(row):
    data = _data(row)
    images = _images()
    from_uint8, metas = preprocess(images, data)
    from_float, float_metas = preprocess([im.float() for im in images], data)
    assert from_uint8.dtype == torch.float32
    assert torch.equal(from_uint8, from_float)
    assert metas == float_metas


@pytest.mark.parametrize("row", list(ROWS))
def test_device_cpu_is_the_default_path(row):
    data = _data(row)
    images = _images()
    default, metas = preprocess(images, data)
    for device in ("cpu", torch.device("cpu")):
        batch, device_metas = preprocess(images, data, device)
        assert batch.device.type == "cpu"
        assert torch.equal(batch, default)
        assert device_metas == metas


@pytest.mark.parametrize("row", list(ROWS))
def test_preprocess_is_preprocess_image_then_pad_batch(row):
    data = _data(row)
    images = _images()
    kept = [im.clone() for im in images]
    batch, metas = preprocess(images, data)
    steps = [preprocess_image(im, data) for im in images]
    assert torch.equal(pad_batch([img for img, _ in steps], data.size_divisor), batch)
    for (img, meta), batch_meta, image in zip(steps, metas, images, strict=True):
        assert batch_meta == {"image_id": batch_meta["image_id"], **meta}
        assert img.shape[1:] == meta["img_shape"][:2]
        assert meta["ori_shape"] == (*image.shape[1:], 3)
    # the inputs are left as they were (float inputs too: nothing is done to them in place)
    assert all(torch.equal(a, b) for a, b in zip(images, kept, strict=True))
    floats = [im.float() for im in images]
    preprocess_image(floats[0], data)
    assert torch.equal(floats[0], kept[0].float())


def test_preprocess_image_checks_its_argument():
    data = _data("pytorch")
    with pytest.raises(ValueError, match=r"Tensor\[3, H, W\]"):
        preprocess_image(torch.zeros(1, 8, 8), data)
    with pytest.raises(ValueError, match="uint8 or floating point"):
        preprocess_image(torch.zeros(3, 8, 8, dtype=torch.int32), data)
    with pytest.raises(TypeError, match="Tensor"):
        preprocess_image([[0]], data)


def test_predict_hands_the_model_the_preprocessed_batch():
    data = _data("pytorch")
    images = _images()
    recorder = _Recorder()
    Detector(recorder, data, fast=False).predict(images)
    [(seen, metas)] = recorder.seen
    expected, expected_metas = preprocess(images, data)
    assert torch.equal(seen, expected)
    assert metas == expected_metas


@pytest.mark.gpu
@pytest.mark.parametrize("row", list(ROWS))
def test_cuda_preprocessing_equals_the_cpu_within_float_rounding(row):
    data = _data(row)
    images = _images()
    on_cpu, cpu_metas = preprocess(images, data)
    on_cuda, cuda_metas = preprocess(images, data, "cuda")
    assert on_cuda.device.type == "cuda"
    assert cuda_metas == cpu_metas
    # atol: normalised values near 0 (a pixel at the mean) have no useful relative error
    torch.testing.assert_close(on_cuda.cpu(), on_cpu, rtol=1e-4, atol=1e-4)
    # uint8 images already on the device are preprocessed there, as floats are
    from_float, _ = preprocess([im.cuda().float() for im in images], data, "cuda")
    torch.testing.assert_close(from_float, on_cuda, rtol=0, atol=0)
    # Detector.predict uploads the uint8 images to the model's device and works there
    recorder = _Recorder().cuda()
    Detector(recorder, data, fast=False).predict(images)
    [(seen, _)] = recorder.seen
    assert seen.device.type == "cuda"
    torch.testing.assert_close(seen.cpu(), on_cpu, rtol=1e-4, atol=1e-4)
