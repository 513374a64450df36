"""DeformRoIExtractor: the conventions choose its pooling (the 2019 kernel under MMDET_V06),
and the legacy extractor pools as the 2019 DeformRoIPoolingPack did, level by level."""

import pytest
import torch

from det_heads import MMDET_V06
from det_heads.conventions import DET
from det_models import zoo
from det_models.parts import DeformRoIExtractor
from det_ops import deform_roi_pool, modulated_deform_roi_pool


@pytest.mark.parametrize("variant", ["dpool", "mdpool"])
def test_conventions_choose_the_pooling(variant):
    with torch.device("meta"):
        legacy = zoo.build("faster_rcnn", "r50", "1x", variant, conventions=MMDET_V06)
        default = zoo.build("faster_rcnn", "r50", "1x", variant, conventions=DET)
    for layer in legacy.roi_head.bbox_extractor.layers:
        # mmdet v0.6 configs/dcn/faster_rcnn_*dpool_r50_fpn_1x.py: sample_per_part 4 (the
        # module's default), trans_std 0.1.
        assert (layer.aligned, layer.sampling_ratio, layer.gamma) == ("legacy", 4, 0.1)
    assert legacy.roi_head.bbox_extractor.box_offset == 1
    for layer in default.roi_head.bbox_extractor.layers:
        assert (layer.aligned, layer.sampling_ratio, layer.gamma) == (True, 2, 0.1)


@pytest.mark.parametrize("kind", ["dpool", "mdpool"])
def test_legacy_extractor_pools_each_level_as_the_2019_pack(kind):
    torch.manual_seed(0)
    extractor = DeformRoIExtractor.legacy(4, kind, strides=(4, 8), output_size=3)
    for p in extractor.parameters():  # trained-looking offsets and masks, not the zero start
        torch.nn.init.normal_(p, std=0.02)
    feats = [torch.randn(1, 4, 32, 32), torch.randn(1, 4, 16, 16)]
    rois = torch.tensor([[0, 10.0, 12.0, 40.0, 50.0], [0, 3.0, 5.0, 125.0, 120.0]])
    assert extractor.map_levels(rois).tolist() == [0, 1]
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
            if kind == "dpool":
                expected = deform_roi_pool(feat, roi, offset, *args)
            else:
                mask = torch.sigmoid(layer.mask_fc(plain)).view(1, 1, 3, 3)
                expected = modulated_deform_roi_pool(feat, roi, offset, mask, *args)
            assert float(offset.abs().max()) > 0.01
            torch.testing.assert_close(out[k : k + 1], expected)
