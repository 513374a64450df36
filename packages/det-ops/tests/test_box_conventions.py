"""The 2019 mmdetection box conventions in the ops: widths x2 - x1 + 1 and RoIAlign's end + 1."""

import numpy as np
import pytest
import torch

import det_ops
from det_ops.reference.roi_align import roi_align as reference_roi_align


def test_bbox_overlaps_with_offset_one_by_hand():
    # 0..9 and 5..14 in 2019 pixels: widths 10, intersection 5 x 10 = 50, union 150.
    a = torch.tensor([[0.0, 0.0, 9.0, 9.0]])
    b = torch.tensor([[5.0, 0.0, 14.0, 9.0]])
    torch.testing.assert_close(det_ops.bbox_overlaps(a, b, offset=1), torch.tensor([[1 / 3]]))
    # Without the offset: widths 9, intersection 4 x 9 = 36, union 126.
    torch.testing.assert_close(det_ops.bbox_overlaps(a, b), torch.tensor([[36 / 126]]))
    iof = det_ops.bbox_overlaps(a.numpy(), b.numpy(), mode="iof", offset=1)
    np.testing.assert_allclose(iof, [[0.5]], rtol=1e-6)


def test_nms_with_offset_one_by_hand():
    # IoU 1/3 with +1 widths, 0.2857 without: a threshold of 0.3 tells the two apart.
    boxes = torch.tensor([[0.0, 0.0, 9.0, 9.0], [5.0, 0.0, 14.0, 9.0]])
    scores = torch.tensor([0.9, 0.8])
    assert det_ops.nms(boxes, scores, 0.3).tolist() == [0, 1]
    assert det_ops.nms(boxes, scores, 0.3, offset=1).tolist() == [0]
    idxs = torch.tensor([0, 0])
    assert det_ops.batched_nms(boxes, scores, idxs, 0.3, offset=1).tolist() == [0]
    keep = det_ops.nms(boxes.numpy(), scores.numpy(), 0.3, offset=1)
    assert keep.tolist() == [0]
    # The caller's boxes are not shifted in place.
    assert boxes[0, 2] == 9.0


def test_soft_nms_with_offset_one_by_hand():
    # Linear decay above 0.3: IoU 1/3 with +1 widths decays the second score to 0.8 * 2/3;
    # without the offset (IoU 0.2857, under the threshold) it is kept at 0.8.
    boxes = torch.tensor([[0.0, 0.0, 9.0, 9.0], [5.0, 0.0, 14.0, 9.0]])
    scores = torch.tensor([0.9, 0.8])
    _, plain = det_ops.soft_nms(boxes, scores, 0.3)
    _, legacy = det_ops.soft_nms(boxes, scores, 0.3, offset=1)
    torch.testing.assert_close(plain, torch.tensor([0.9, 0.8]))
    torch.testing.assert_close(legacy, torch.tensor([0.9, 0.8 * 2 / 3]))


@pytest.mark.parametrize("offset", [2, -1, True, 0.5])
def test_box_offset_choices(offset):
    boxes = torch.zeros(1, 4)
    with pytest.raises(ValueError, match=r"nms: offset must be 0 .* or 1"):
        det_ops.nms(boxes, torch.zeros(1), 0.5, offset=offset)
    with pytest.raises(ValueError, match="bbox_overlaps: offset"):
        det_ops.bbox_overlaps(boxes, boxes, offset=offset)


def test_roi_align_legacy_by_hand():
    # A 1x1 pool of the RoI (0, 0, 1, 1) at scale 1: the 2019 kernel ends it at 2, so its
    # 2 x 2 samples sit at 0.5 and 1.5 on each axis; on the map v = x + 10 y their mean is 11.
    y, x = torch.meshgrid(torch.arange(4.0), torch.arange(4.0), indexing="ij")
    feat = (x + 10 * y)[None, None]
    rois = torch.tensor([[0.0, 0.0, 0.0, 1.0, 1.0]])
    out = det_ops.roi_align(feat, rois, 1, 1.0, 2, aligned="legacy")
    torch.testing.assert_close(out.flatten(), torch.tensor([11.0]))
    # torchvision's aligned=False ends it at 1: samples 0.25, 0.75, mean 0.5 + 10 * 0.5.
    out = det_ops.roi_align(feat, rois, 1, 1.0, 2, aligned=False)
    torch.testing.assert_close(out.flatten(), torch.tensor([5.5]))


def test_roi_align_legacy_keeps_degenerate_rois_small():
    # A point RoI at scale 1/16 is (x2 + 1 - x1) / 16 = 1/16 wide on the map, not widened to
    # 1 as with aligned=False: its first bin's samples sit at 1 + 1/128 and 1 + 3/128 on each
    # axis, whose mean on the map v = x + 4 y is 5 (1 + 1/64).
    feat = torch.arange(16.0).reshape(1, 1, 4, 4)
    rois = torch.tensor([[0.0, 16.0, 16.0, 16.0, 16.0]])
    out = det_ops.roi_align(feat, rois, 2, 1 / 16, 2, aligned="legacy")
    expected = reference_roi_align(feat, rois, (2, 2), 1 / 16, 2, aligned="legacy")
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(out[0, 0, 0, 0], torch.tensor(5 * (1 + 1 / 64)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_roi_align_legacy_matches_the_reference_with_gradients(dtype):
    g = torch.Generator().manual_seed(0)
    feat = torch.randn(2, 3, 12, 15, generator=g, dtype=dtype, requires_grad=True)
    boxes = torch.rand(7, 4, generator=g, dtype=dtype) * 40
    boxes[:, 2:] += boxes[:, :2]
    rois = torch.cat([torch.tensor([0, 1, 0, 1, 1, 0, 1], dtype=dtype)[:, None], boxes], 1)
    out = det_ops.roi_align(feat, rois, (3, 4), 0.25, 2, aligned="legacy")
    ref_feat = feat.detach().clone().requires_grad_(True)
    ref = reference_roi_align(ref_feat, rois, (3, 4), 0.25, 2, aligned="legacy")
    torch.testing.assert_close(out, ref)
    out.sum().backward()
    ref.sum().backward()
    torch.testing.assert_close(feat.grad, ref_feat.grad)
    numpy_out = det_ops.roi_align(
        feat.detach().numpy(), rois.numpy(), (3, 4), 0.25, 2, aligned="legacy"
    )
    np.testing.assert_allclose(numpy_out, ref.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_roi_align_aligned_choices():
    feat = torch.zeros(1, 1, 4, 4)
    rois = torch.zeros(1, 5)
    with pytest.raises(ValueError, match=r"roi_align: aligned must be True, False or 'legacy'"):
        det_ops.roi_align(feat, rois, 2, aligned="mmdet")
