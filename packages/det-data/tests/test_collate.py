import numpy as np
import torch

from det_data.collate import collate
from det_data.masks import InstanceMasks

RECT = [[1.0, 1.0, 5.0, 1.0, 5.0, 5.0, 1.0, 5.0]]


def test_collate_pads_to_multiple_of_32_and_keeps_lists():
    a = torch.ones(3, 40, 50)
    b = torch.full((3, 70, 20), 2.0)
    bitmap = np.ones((70, 20), dtype=np.uint8)
    samples = [
        (a, {"image_id": 1}, {"boxes": torch.zeros(1, 4), "masks": InstanceMasks([RECT], 40, 50)}),
        (
            b,
            {"image_id": 2},
            {"boxes": torch.zeros(1, 4), "masks": InstanceMasks([bitmap], 70, 20)},
        ),
    ]
    images, metas, targets = collate(samples)
    assert images.shape == (2, 3, 96, 64)
    torch.testing.assert_close(images[0, :, :40, :50], a)
    torch.testing.assert_close(images[1, :, :70, :20], b)
    assert images[0, :, 40:].sum() == 0 and images[0, :, :, 50:].sum() == 0
    assert images[1, :, :, 20:].sum() == 0
    assert [m["image_id"] for m in metas] == [1, 2]
    # polygons stay polygons; a bitmap/RLE becomes a uint8 Tensor[N, H, W]
    assert targets[0]["masks"] == [RECT]  # one object, one polygon
    assert targets[1]["masks"].dtype == torch.uint8 and targets[1]["masks"].shape == (1, 70, 20)


def test_bitmap_masks_rasterise_polygons_in_the_loader():
    """bitmap_masks: the polygon [1, 5] x [1, 5] square becomes the uint8 bitmap pycocotools
    draws (pixels 1..4 on both axes); a uint8 image batch pads as uint8."""
    image = torch.full((3, 8, 10), 7, dtype=torch.uint8)
    target = {"boxes": torch.zeros(1, 4), "masks": InstanceMasks([RECT], 8, 10)}
    images, _, targets = collate([(image, {"image_id": 1}, target)], bitmap_masks=True)
    assert images.dtype == torch.uint8 and images.shape == (1, 3, 32, 32)
    assert images[0, :, 8:].sum() == 0 and images[0, :, :8, :10].eq(7).all()
    masks = targets[0]["masks"]
    expected = torch.zeros(1, 8, 10, dtype=torch.uint8)
    expected[0, 1:5, 1:5] = 1
    assert masks.dtype == torch.uint8 and torch.equal(masks, expected)
