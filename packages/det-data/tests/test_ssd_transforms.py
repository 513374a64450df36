import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from det_data import InstanceMasks
from det_data.ssd_transforms import (
    SSD_MEAN,
    Expand,
    MinIoURandomCrop,
    PhotoMetricDistortion,
    ssd_test_transforms,
    ssd_train_transforms,
)


def sample(h=60, w=80):
    # distinct random values, so that a crop's position can be found again by its pixels
    image = torch.rand(3, h, w, generator=torch.Generator().manual_seed(0)) * 250
    boxes = torch.tensor([[10.0, 5.0, 30.0, 25.0], [40.0, 30.0, 70.0, 55.0]])
    bitmaps = np.zeros((2, h, w), np.uint8)
    bitmaps[0, 5:25, 10:30] = 1
    bitmaps[1, 30:55, 40:70] = 1
    target = {
        "boxes": boxes,
        "labels": torch.tensor([0, 2]),
        "ignore_boxes": torch.zeros(0, 4),
        "masks": InstanceMasks(list(bitmaps), h, w),
    }
    meta = {"img_shape": (h, w, 3), "pad_shape": (h, w, 3), "flip": False}
    return image, meta, target


def test_expand_places_image_and_boxes_on_a_mean_canvas():
    torch.manual_seed(0)
    image, meta, target = sample()
    out, meta2, t2 = Expand(ratio_range=(2, 2), p=1.0)(image, meta, target)
    assert out.shape == (3, 120, 160)
    left, top = (t2["boxes"][0, :2] - target["boxes"][0, :2]).long().tolist()
    torch.testing.assert_close(out[:, top : top + 60, left : left + 80], image)
    assert torch.equal(
        out[:, 0, 0] if top > 0 or left > 0 else out[:, -1, -1],
        torch.tensor(SSD_MEAN, dtype=torch.float32),
    )
    masks = t2["masks"].to_tensor()
    assert masks.shape == (2, 120, 160)
    assert masks[1].sum() == 25 * 30
    assert masks[0, top + 5, left + 10] == 1 and masks[0, top + 4, left + 10] == 0
    assert meta2["img_shape"] == (120, 160, 3)


@pytest.mark.parametrize("seed", range(8))
def test_min_iou_crop_keeps_centred_objects_with_enough_overlap(seed):
    torch.manual_seed(seed)
    image, meta, target = sample()
    crop = MinIoURandomCrop(min_ious=(0.3,), min_crop_size=0.3)
    assert crop.modes == (1.0, 0.3, 0.0)  # keep the image, IoU >= 0.3, any patch
    crop.modes = (0.3,)  # force the IoU constraint under test
    out, meta2, t2 = crop(image, meta, target)
    h, w = out.shape[-2:]
    assert meta2["img_shape"] == (h, w, 3)
    boxes = t2["boxes"]
    assert len(boxes) == len(t2["labels"]) == len(t2["masks"]) >= 1
    assert (boxes[:, [0, 2]] >= 0).all() and (boxes[:, [0, 2]] <= w).all()
    assert (boxes[:, [1, 3]] >= 0).all() and (boxes[:, [1, 3]] <= h).all()
    if (h, w) != (60, 80):
        # the patch is found in the original image by matching the pixels
        flat = image[0]
        for y in range(60 - h + 1):
            for x in range(80 - w + 1):
                if torch.equal(flat[y : y + h, x : x + w], out[0]):
                    patch = torch.tensor([[x, y, x + w, y + h]], dtype=torch.float32)
                    assert box_iou(patch, target["boxes"]).min() >= 0.3
                    kept = boxes + torch.tensor([x, y, x, y])
                    assert torch.equal(
                        t2["masks"].to_tensor(),
                        target["masks"]
                        .select(t2["labels"] // 2)
                        .crop(x, y, x + w, y + h)
                        .to_tensor(),
                    )
                    assert (kept[:, 0] >= target["boxes"][t2["labels"] // 2, 0] - 1e-4).all()
                    return
        pytest.fail("cropped image not found in the original")


def test_min_iou_crop_without_boxes_is_identity():
    image, meta, target = sample()
    target = {**target, "boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    out, _, _ = MinIoURandomCrop()(image, meta, target)
    assert out is image


def test_photometric_distortion_brightness_only_shifts_values():
    torch.manual_seed(1)
    image, meta, target = sample()
    distort = PhotoMetricDistortion(
        brightness_delta=32, contrast_range=(1, 1), saturation_range=(1, 1), hue_delta=0
    )
    shifts = set()
    for _ in range(10):
        out, _, t2 = distort(image, meta, target)
        assert t2 is target
        # channels may be permuted; the sorted per-pixel values shift by one constant
        delta = out.sort(0).values - image.sort(0).values
        assert torch.allclose(delta, delta.flatten()[0].expand_as(delta), atol=1e-3)
        assert abs(float(delta.flatten()[0])) <= 32
        shifts.add(round(float(delta.flatten()[0]), 3))
    assert len(shifts) > 1


def test_ssd_pipelines_give_square_images():
    torch.manual_seed(2)
    for size in (300, 512):
        out, meta, target = ssd_train_transforms(size)(*sample())
        assert out.shape == (3, size, size)
        assert (target["boxes"] <= size).all()
        out, meta, _ = ssd_test_transforms(size)(*sample())
        assert out.shape == (3, size, size)
        assert meta["scale_factor"] == (size / 80, size / 60, size / 80, size / 60)


def test_bad_arguments():
    with pytest.raises(ValueError, match="ratio_range"):
        Expand(ratio_range=(0.5, 2))
    with pytest.raises(ValueError, match="min_crop_size"):
        MinIoURandomCrop(min_crop_size=0)
