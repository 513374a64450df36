import pytest
import torch

import det_ops
from det_heads.roi_extractor import RoIExtractor, boxes_to_rois


def test_level_mapping_finest_scale_56():
    ext = RoIExtractor(strides=(4, 8, 16, 32))
    sides = [10.0, 111.0, 113.0, 223.0, 225.0, 447.0, 449.0, 2000.0]
    rois = torch.tensor([[0, 0, 0, s, s] for s in sides])
    assert ext.map_levels(rois).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]


def test_pooled_features_come_from_the_mapped_level():
    ext = RoIExtractor(strides=(4, 8), output_size=7, sampling_ratio=2)
    g = torch.Generator().manual_seed(0)
    feats = [torch.randn(2, 3, 32, 32, generator=g), torch.randn(2, 3, 16, 16, generator=g)]
    rois = torch.tensor([[0, 4.0, 4.0, 60.0, 60.0], [1, 0.0, 0.0, 120.0, 120.0]])
    out = ext(feats, rois)
    assert out.shape == (2, 3, 7, 7)
    small = det_ops.roi_align(feats[0], rois[:1], 7, 1 / 4, 2, aligned=False)
    large = det_ops.roi_align(feats[1], rois[1:], 7, 1 / 8, 2, aligned=False)
    torch.testing.assert_close(out[0:1], small)
    torch.testing.assert_close(out[1:2], large)


def test_roi_pool_and_empty_rois_keep_gradients():
    ext = RoIExtractor(strides=(4, 8), output_size=2, pool="pool")
    feats = [
        torch.randn(1, 2, 8, 8, requires_grad=True),
        torch.randn(1, 2, 4, 4, requires_grad=True),
    ]
    out = ext(feats, torch.zeros(0, 5))
    assert out.shape == (0, 2, 2, 2)
    out.sum().backward()
    assert feats[0].grad is not None


def test_boxes_to_rois_and_errors():
    rois = boxes_to_rois([torch.ones(2, 4), torch.zeros(1, 4)])
    assert rois[:, 0].tolist() == [0, 0, 1]
    with pytest.raises(ValueError, match="feature levels"):
        RoIExtractor()([torch.zeros(1, 1, 4, 4)], rois)
