import pytest
import torch

import det_ops
from det_heads.roi_extractor import RoIExtractor, boxes_to_rois
from det_ops import deform_roi_pool, modulated_deform_roi_pool
from det_ops.modules import DeformRoIPoolPack, ModulatedDeformRoIPoolPack


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
    with pytest.raises(ValueError, match="pool must be one of align, pool, dpool, mdpool"):
        RoIExtractor(pool="avg")
    with pytest.raises(ValueError, match="pool 'dpool' needs channels"):
        RoIExtractor(pool="dpool", aligned=True)


@pytest.mark.parametrize(
    ("pool", "pack"), [("dpool", DeformRoIPoolPack), ("mdpool", ModulatedDeformRoIPoolPack)]
)
def test_deformable_pooling_has_one_pack_per_level(pool, pack):
    ext = RoIExtractor((4, 8), 3, 2, pool, aligned=True, channels=4, deform_fc_channels=16)
    assert all(type(layer) is pack for layer in ext.layers)
    assert [layer.spatial_scale for layer in ext.layers] == [1 / 4, 1 / 8]
    assert (ext.layers[0].sampling_ratio, ext.layers[0].gamma) == (2, 0.1)
    feats = [torch.randn(1, 4, 16, 16), torch.randn(1, 4, 8, 8)]
    rois = torch.tensor([[0, 4.0, 4.0, 60.0, 60.0], [0, 0.0, 0.0, 120.0, 120.0]])
    # The offset MLPs start at zero: a fresh extractor pools as RoIAlign(aligned=True) (dpool)
    # times the starting mask 0.5 (mdpool).
    scale = 1.0 if pool == "dpool" else 0.5
    expected = [
        det_ops.roi_align(feats[0], rois[:1], 3, 1 / 4, 2, aligned=True),
        det_ops.roi_align(feats[1], rois[1:], 3, 1 / 8, 2, aligned=True),
    ]
    with torch.no_grad():
        out = ext(feats, rois)
    torch.testing.assert_close(out, torch.cat(expected) * scale)


@pytest.mark.parametrize("pool", ["dpool", "mdpool"])
def test_legacy_deformable_pools_each_level_as_the_2019_pack(pool):
    torch.manual_seed(0)
    extractor = RoIExtractor.legacy_deformable(4, pool, strides=(4, 8), output_size=3)
    for p in extractor.parameters():  # trained-looking offsets and masks, not the zero start
        torch.nn.init.normal_(p, std=0.02)
    feats = [torch.randn(1, 4, 32, 32), torch.randn(1, 4, 16, 16)]
    rois = torch.tensor([[0, 10.0, 12.0, 40.0, 50.0], [0, 3.0, 5.0, 125.0, 120.0]])
    assert extractor.map_levels(rois).tolist() == [0, 1]
    assert extractor.box_offset == 1
    with torch.no_grad():
        out = extractor(feats, rois)
        for k, (feat, layer, stride) in enumerate(
            zip(feats, extractor.layers, (4, 8), strict=True)
        ):
            args = (3, 1 / stride, 4, 0.1, "legacy")
            roi = rois[k : k + 1]
            # The MLPs read the legacy pooling without offsets.
            plain = deform_roi_pool(feat, roi, None, *args).flatten(1)
            offset = layer.offset_fc(plain).view(1, 2, 3, 3)
            if pool == "dpool":
                expected = deform_roi_pool(feat, roi, offset, *args)
            else:
                mask = torch.sigmoid(layer.mask_fc(plain)).view(1, 1, 3, 3)
                expected = modulated_deform_roi_pool(feat, roi, offset, mask, *args)
            assert float(offset.abs().max()) > 0.01
            torch.testing.assert_close(out[k : k + 1], expected)
