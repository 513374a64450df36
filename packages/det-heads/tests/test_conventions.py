"""Each box convention's arithmetic, by hand: anchors, coder, level mapping, mask paste."""

import dataclasses
import math

import pytest
import torch

from det_heads import (
    MMDET_V06,
    AnchorGenerator,
    Conventions,
    DeltaXYWHCoder,
    RetinaAnchorGenerator,
    RoIExtractor,
    SSDAnchorGenerator,
    paste_masks,
)
from det_heads.postprocess import NMSConfig, candidate_nms


def test_mmdet_rpn_anchors_by_hand():
    # Stride 4, scale 8: centre 1.5; ratio 0.5 gives w = 4 * 8 * sqrt(2) = 45.25, h = 22.63,
    # corners 1.5 -+ 0.5 (w - 1) = -20.6, 23.6 -> -21, 24 (and -9.3, 12.3 -> -9, 12).
    gen = AnchorGenerator((4, 8), style="mmdet")
    expected = torch.tensor(
        [[-21.0, -9.0, 24.0, 12.0], [-14.0, -14.0, 17.0, 17.0], [-9.0, -21.0, 12.0, 24.0]]
    )
    torch.testing.assert_close(gen.base_anchors[0], expected)
    level = gen.grid_anchors([(2, 3), (1, 2)])[0]
    # Location (row 1, column 2) is shifted by (8, 4) pixels, no centre offset.
    torch.testing.assert_close(level[5 * 3 + 1], expected[1] + torch.tensor([8.0, 4, 8, 4]))


def test_torchvision_anchors_by_hand():
    # Size 32, ratio 0.5: w = 45.25, h = 22.63; corners -+ w / 2 rounded: -23, -11, 23, 11.
    gen = AnchorGenerator((4, 8, 16, 32, 64), style="torchvision")
    expected = torch.tensor(
        [[-23.0, -11.0, 23.0, 11.0], [-16.0, -16.0, 16.0, 16.0], [-11.0, -23.0, 11.0, 23.0]]
    )
    torch.testing.assert_close(gen.base_anchors[0], expected)
    # An 800 x 1216 padded image: P6 has 13 x 19 cells, strides 800 // 13 = 61 and 64.
    sizes = [(200, 304), (100, 152), (50, 76), (25, 38), (13, 19)]
    assert gen.level_strides(sizes)[4] == (61, 64)
    # P6's square anchor is 512 wide; at row 1, column 1 it is shifted by (64, 61).
    last = gen.grid_anchors(sizes)[4]
    torch.testing.assert_close(last[(19 + 1) * 3 + 1], torch.tensor([-192.0, -195.0, 320.0, 317.0]))


def test_torchvision_retina_sizes_are_integers():
    # torchvision's octave sizes: int(32 * 2 ** (1 / 3)) = 40, int(32 * 2 ** (2 / 3)) = 50.
    gen = RetinaAnchorGenerator(style="torchvision")
    widths = gen.base_anchors[0][:, 2] - gen.base_anchors[0][:, 0]
    assert widths[3:6].tolist() == [32.0, 40.0, 50.0]  # ratio 1


def test_mmdet_ssd_anchors_by_hand():
    # SSD300 COCO level 0: min 21, max 45, stride 8, centre 3.5; the min square's corners
    # 3.5 -+ 10 = -6.5, 13.5 round half to even: -6, 14.
    gen = SSDAnchorGenerator(300, style="mmdet")
    torch.testing.assert_close(gen.base_anchors[0][0], torch.tensor([-6.0, -6.0, 14.0, 14.0]))
    assert gen.center_offset == 0.0
    det = SSDAnchorGenerator(300)
    torch.testing.assert_close(det.base_anchors[0][0], torch.tensor([-10.5, -10.5, 10.5, 10.5]))


def test_anchor_style_choices():
    with pytest.raises(ValueError, match="style must be one of det, mmdet, torchvision"):
        AnchorGenerator(style="detectron")
    with pytest.raises(ValueError, match="SSDAnchorGenerator: style"):
        SSDAnchorGenerator(300, style="torchvision")


def test_coder_offset_one_by_hand():
    coder = DeltaXYWHCoder(stds=(1.0, 1.0, 1.0, 1.0), offset=1)
    box = torch.tensor([[10.0, 10.0, 19.0, 29.0]])  # 10 x 20 in 2019 pixels
    # Zero deltas give the box back; dw = log 2 doubles the width about the centre 14.5.
    torch.testing.assert_close(coder.decode(box, torch.zeros(1, 4)), box)
    wide = coder.decode(box, torch.tensor([[0.0, 0.0, float(torch.log(torch.tensor(2.0))), 0]]))
    torch.testing.assert_close(wide, torch.tensor([[5.0, 10.0, 24.0, 29.0]]))
    # Clipped to [0, W - 1]: the image is 20 wide.
    torch.testing.assert_close(
        coder.decode(box, torch.tensor([[1.0, 0, 0, 0]]), (40, 20)),
        torch.tensor([[19.0, 10.0, 19.0, 29.0]]),
    )
    target = torch.tensor([[12.0, 8.0, 25.0, 33.0]])
    torch.testing.assert_close(coder.decode(box, coder.encode(box, target)), target)


def test_coder_clamp_max_only():
    both = DeltaXYWHCoder(stds=(1.0, 1.0, 1.0, 1.0))
    upper = DeltaXYWHCoder(stds=(1.0, 1.0, 1.0, 1.0), clamp="max")
    box = torch.tensor([[0.0, 0.0, 100.0, 100.0]])
    shrink = torch.tensor([[0.0, 0.0, -6.0, -6.0]])
    # exp(-6) * 100 = 0.248 wide with the upper clamp only; 100 * 16 / 1000 = 1.6 with both.
    torch.testing.assert_close(
        upper.decode(box, shrink)[0, 2] - upper.decode(box, shrink)[0, 0],
        torch.tensor(100 * math.exp(-6.0)),
    )
    torch.testing.assert_close(
        both.decode(box, shrink)[0, 2] - both.decode(box, shrink)[0, 0], torch.tensor(1.6)
    )


def test_level_mapping_with_offset():
    # A RoI 111 px wide and high: scale 111 -> level 0; 112 with the 2019 +1 -> level 1.
    rois = torch.tensor([[0.0, 0.0, 0.0, 111.0, 111.0]])
    assert RoIExtractor().map_levels(rois).tolist() == [0]
    assert RoIExtractor(box_offset=1).map_levels(rois).tolist() == [1]


def test_paste_mmdet_by_hand():
    # Box (2.7, 3.2, 5.9, 6.1) truncates to (2, 3, 5, 6): a 4 x 4 block at rows 3-6, cols 2-5.
    masks = torch.ones(1, 28, 28)
    out = paste_masks(masks, torch.tensor([[2.7, 3.2, 5.9, 6.1]]), (10, 10), style="mmdet")
    expected = torch.zeros(10, 10, dtype=torch.uint8)
    expected[3:7, 2:6] = 1
    assert torch.equal(out[0], expected)


def test_paste_torchvision_by_hand():
    # A 2 x 2 map, padded to 4 x 4 and the box (4, 4, 8, 8) grown by 4 / 2 about its centre:
    # (2, 2, 10, 10), a 9 x 9 window; the map's one-pixel zero border fades below 0.5 at the
    # window's outer ring.
    masks = torch.ones(1, 2, 2)
    out = paste_masks(masks, torch.tensor([[4.0, 4.0, 8.0, 8.0]]), (12, 12), style="torchvision")
    padded = torch.nn.functional.pad(masks, (1, 1, 1, 1))[None]
    window = torch.nn.functional.interpolate(padded, size=(9, 9), mode="bilinear")[0, 0]
    expected = torch.zeros(12, 12, dtype=torch.uint8)
    expected[2:11, 2:11] = (window > 0.5).to(torch.uint8)
    assert torch.equal(out[0], expected)
    assert out[0, 6, 6] == 1 and out[0, 2, 2] == 0


def test_candidate_nms_min_size_and_offset():
    boxes = torch.tensor([[0.0, 0.0, 9.0, 9.0], [5.0, 0.0, 14.0, 9.0], [0.0, 0.0, 0.005, 5.0]])
    scores = torch.tensor([0.9, 0.8, 0.95])
    labels = torch.zeros(3, dtype=torch.int64)
    config = NMSConfig(iou_thr=0.3, min_size=0.01)
    kept, _, _ = candidate_nms(boxes, scores, labels, config)
    assert kept.tolist() == boxes[:2].tolist()
    kept, _, _ = candidate_nms(boxes, scores, labels, config, offset=1)
    assert kept.tolist() == boxes[:1].tolist()


def test_conventions_choices():
    assert MMDET_V06.roi_align_aligned == "legacy"
    with pytest.raises(ValueError, match="box_offset must be 0 or 1"):
        Conventions(box_offset=2)
    with pytest.raises(ValueError, match=r"Conventions\.mask_paste must be one of"):
        dataclasses.replace(MMDET_V06, mask_paste="detectron")


def test_proposals_may_end_one_pixel_early_with_offset_one():
    # The 2019 decoding gives x2 = x1 - 0.5 for a predicted width of half a pixel
    # (x2 - x1 + 1 = 0.5 > 0); the 2019 code kept such proposals, and so must its heads.
    from det_heads.inputs import check_boxes

    box = torch.tensor([[10.0, 10.0, 9.5, 12.0]])
    check_boxes("op", "proposals[0]", box, offset=1)
    with pytest.raises(ValueError, match="x2 < x1"):
        check_boxes("op", "proposals[0]", box)
    with pytest.raises(ValueError, match=r"x2 \+ 1 < x1"):
        check_boxes("op", "proposals[0]", torch.tensor([[10.0, 10.0, 8.5, 12.0]]), offset=1)
