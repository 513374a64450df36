import numpy as np
import pytest
import torch

from det_data.collate import collate
from det_data.masks import InstanceMasks
from det_data.transforms import (
    Compose,
    Normalize,
    Pad,
    RandomFlip,
    Resize,
    ToFloat,
    rescaled_size,
    zoo_test_transforms,
    zoo_train_transforms,
)

RECT = [[10.0, 5.0, 30.0, 5.0, 30.0, 35.0, 10.0, 35.0]]  # x 10..30, y 5..35


def _sample(h=48, w=64):
    image = torch.arange(3 * h * w, dtype=torch.float32).reshape(3, h, w) % 256
    bitmap = np.zeros((h, w), dtype=np.uint8)
    bitmap[2:6, 40:50] = 1  # rows 2..5, columns 40..49
    meta = {
        "image_id": 1,
        "ori_shape": (h, w, 3),
        "img_shape": (h, w, 3),
        "pad_shape": (h, w, 3),
        "scale_factor": (1.0, 1.0, 1.0, 1.0),
        "flip": False,
    }
    target = {
        "boxes": torch.tensor([[10.0, 5.0, 30.0, 35.0], [40.0, 2.0, 50.0, 6.0]]),
        "labels": torch.tensor([0, 1]),
        "ignore_boxes": torch.tensor([[0.0, 0.0, 8.0, 8.0]]),
        "masks": InstanceMasks([RECT, bitmap], h, w),
        "proposals": torch.tensor([[1.0, 2.0, 3.0, 4.0, 0.9]]),
    }
    return image, meta, target


def _rect_mask(h, w, x1, y1, x2, y2):
    m = np.zeros((h, w), dtype=np.uint8)
    m[y1:y2, x1:x2] = 1
    return m


def test_rescaled_size_keeps_ratio_within_bounds():
    assert rescaled_size(480, 640, 1333, 800) == (800, 1067)
    assert rescaled_size(640, 480, 1333, 800) == (1067, 800)
    assert rescaled_size(500, 2000, 1333, 800) == (333, 1333)  # long side binds


def test_resize_scales_image_boxes_masks_and_meta():
    image, meta, target = Resize((128, 96))(*_sample())
    assert image.shape == (3, 96, 128)
    assert meta["img_shape"] == (96, 128, 3) and meta["scale_factor"] == (2.0, 2.0, 2.0, 2.0)
    assert meta["ori_shape"] == (48, 64, 3)
    torch.testing.assert_close(
        target["boxes"], torch.tensor([[20.0, 10.0, 60.0, 70.0], [80.0, 4.0, 100.0, 12.0]])
    )
    torch.testing.assert_close(target["ignore_boxes"], torch.tensor([[0.0, 0.0, 16.0, 16.0]]))
    torch.testing.assert_close(target["proposals"], torch.tensor([[2.0, 4.0, 6.0, 8.0, 0.9]]))
    masks = target["masks"].to_tensor().numpy()
    np.testing.assert_array_equal(masks[0], _rect_mask(96, 128, 20, 10, 60, 70))
    np.testing.assert_array_equal(masks[1], _rect_mask(96, 128, 80, 4, 100, 12))
    # A constant image stays constant under bilinear resizing.
    flat, _, _ = Resize((128, 96))(torch.full((3, 48, 64), 7.0), meta, target)
    torch.testing.assert_close(flat, torch.full((3, 96, 128), 7.0))


def test_resize_range_draws_short_edge_between_bounds():
    torch.manual_seed(0)
    resize = Resize([(1333, 640), (1333, 800)], mode="range")
    shorts = set()
    for _ in range(20):
        image, _, _ = resize(torch.zeros(3, 48, 64), {}, {"boxes": torch.zeros(0, 4)})
        assert 640 <= image.shape[1] <= 800
        assert image.shape[2] == int(image.shape[1] * 64 / 48 + 0.5)  # ratio kept
        shorts.add(image.shape[1])
    assert len(shorts) > 5
    with pytest.raises(ValueError, match="mode 'range' needs at least two scales"):
        Resize((1333, 800), mode="range")


def test_flip_mirrors_boxes_masks_and_image():
    image0, _, target0 = _sample()
    image, meta, target = RandomFlip(1.0)(*_sample())
    assert meta["flip"] is True
    torch.testing.assert_close(image, image0.flip(-1))
    torch.testing.assert_close(
        target["boxes"], torch.tensor([[34.0, 5.0, 54.0, 35.0], [14.0, 2.0, 24.0, 6.0]])
    )
    torch.testing.assert_close(target["proposals"], torch.tensor([[61.0, 2.0, 63.0, 4.0, 0.9]]))
    got = target["masks"].to_tensor().numpy()
    np.testing.assert_array_equal(got, target0["masks"].to_tensor().numpy()[:, :, ::-1])
    np.testing.assert_array_equal(got[0], _rect_mask(48, 64, 34, 5, 54, 35))
    # the polygon stays a polygon: flipping does not rasterise it
    assert isinstance(target["masks"].segms[0], list)
    _, meta, target = RandomFlip(0.0)(*_sample())
    assert meta["flip"] is False
    torch.testing.assert_close(target["boxes"], target0["boxes"])


def test_normalize_pytorch_and_caffe_values():
    image = torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1).repeat(1, 2, 2)
    image[:, 0, 0] = torch.tensor([255.0, 0.0, 10.0])
    out, _, _ = Normalize.pytorch_style()(image, {}, {})
    torch.testing.assert_close(out[:, 1, 1], torch.zeros(3))
    expected = torch.tensor([(255 - 123.675) / 58.395, -116.28 / 57.12, (10 - 103.53) / 57.375])
    torch.testing.assert_close(out[:, 0, 0], expected)
    out, _, _ = Normalize.caffe_style()(image, {}, {})
    # BGR order: blue first
    expected = torch.tensor([10 - 102.9801, 0 - 115.9465, 255 - 122.7717])
    torch.testing.assert_close(out[:, 0, 0], expected)


def test_pad_to_multiple_of_32():
    image0, _, _ = _sample(48, 70)
    image, meta, target = Pad(32)(*_sample(48, 70))
    assert image.shape == (3, 64, 96)
    assert meta["pad_shape"] == (64, 96, 3) and meta["img_shape"] == (48, 70, 3)
    torch.testing.assert_close(image[:, :48, :70], image0)
    assert image[:, 48:].abs().sum() == 0 and image[:, :, 70:].abs().sum() == 0
    masks = target["masks"].to_tensor()
    assert masks.shape == (2, 64, 96) and masks[:, 48:].sum() == 0
    assert int(masks[0].sum()) == 20 * 30


def test_zoo_pipeline_output_contract():
    torch.manual_seed(0)
    pipeline = zoo_train_transforms((128, 96))
    assert isinstance(pipeline, Compose)
    image, meta, target = pipeline(*_sample(48, 60))
    assert image.shape == (3, 96, 120)  # 48 x 60 -> 96 x 120; padding is collate's job
    assert meta["img_shape"] == (96, 120, 3)
    assert target["labels"].tolist() == [0, 1]
    images, metas, _ = collate([(image, meta, target)])
    assert images.shape == (1, 3, 96, 128) and metas[0]["pad_shape"] == (96, 128, 3)
    assert torch.equal(images[0, :, :, :120], image) and not images[0, :, :, 120:].any()


def test_test_pipeline_resizes_in_float_with_antialiasing():
    # What det_models.predict does: float32, bilinear, antialiased, not rounded to 8 bits.
    image = torch.randint(0, 256, (3, 48, 64), dtype=torch.uint8, generator=torch.Generator())
    meta = {"scale_factor": (1.0, 1.0, 1.0, 1.0)}
    out, _, _ = zoo_test_transforms((40, 30))(image, meta, {})
    expected = torch.nn.functional.interpolate(
        image[None].float(), size=(30, 40), mode="bilinear", align_corners=False, antialias=True
    )[0]
    expected = (expected - torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1)).mul_(
        1.0 / torch.tensor([58.395, 57.12, 57.375]).view(3, 1, 1)
    )
    assert torch.equal(out, expected)
    same, _, _ = Compose([ToFloat(), Resize((64, 48))])(image, meta, {})
    assert same.dtype == torch.float32 and torch.equal(same, image.float())  # no resampling


def test_legacy_resize_rounds_to_8_bits_with_one_scale_factor():
    # 3 x 4 into (10, 5): factor min(10 / 4, 5 / 3) = 5 / 3, sides int(3 * 5/3 + 0.5) = 5 and
    # int(4 * 5/3 + 0.5) = 7; the 2019 pipeline keeps 5 / 3 for both axes (not 7 / 4 for x).
    image = torch.arange(12, dtype=torch.uint8).reshape(1, 3, 4).expand(3, 3, 4) * 20
    meta = {"scale_factor": (1.0, 1.0, 1.0, 1.0)}
    target = {"boxes": torch.tensor([[0.0, 0.0, 3.0, 3.0]])}
    out, meta, target = Resize((10, 5), legacy=True)(image, meta, target)
    assert out.dtype == torch.uint8 and out.shape == (3, 5, 7)
    assert meta["scale_factor"] == pytest.approx((5 / 3,) * 4)
    torch.testing.assert_close(target["boxes"], torch.tensor([[0.0, 0.0, 5.0, 5.0]]))
    # Bilinear without antialiasing, rounded: the same as the float resize rounded.
    exact = torch.nn.functional.interpolate(
        image[None].float(), size=(5, 7), mode="bilinear", align_corners=False
    )[0]
    assert torch.equal(out, exact.round().to(torch.uint8))
    floats, _, _ = Resize((10, 5), legacy=True)(image.float(), {}, {})
    assert torch.equal(floats, exact.round())
