"""det_heads.kernels: the heads' direct kernel calls give det_ops' public functions' results."""

import pytest
import torch

import det_ops
from det_heads import kernels


def _boxes(n, generator):
    xy = torch.rand(n, 2, generator=generator) * 40
    wh = torch.rand(n, 2, generator=generator) * 20 + 1
    return torch.cat([xy, xy + wh], dim=1)


@pytest.mark.parametrize("offset", [0, 1])
def test_nms_and_batched_nms_match_det_ops_with_the_box_offset(offset):
    g = torch.Generator().manual_seed(0)
    boxes, scores = _boxes(60, g), torch.rand(60, generator=g)
    idxs = torch.randint(0, 3, (60,), generator=g)
    expected = det_ops.nms(boxes, scores, 0.3, offset=offset)
    assert torch.equal(kernels.nms(boxes, scores, 0.3, offset), expected)
    expected = det_ops.batched_nms(boxes, scores, idxs, 0.3, offset=offset)
    assert torch.equal(kernels.batched_nms(boxes, scores, idxs, 0.3, offset), expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("aligned", [False, True, "legacy"])
def test_roi_align_matches_det_ops_also_in_bfloat16(dtype, aligned):
    # bfloat16 is what the maps are under CPU autocast (the quickstart's training).
    g = torch.Generator().manual_seed(0)
    feat = torch.randn(2, 4, 16, 16, generator=g).to(dtype)
    rois = torch.cat([torch.randint(0, 2, (8, 1), generator=g).float(), _boxes(8, g) / 3], 1)
    got = kernels.roi_align(feat, rois, 7, 0.5, 2, aligned)
    expected = det_ops.roi_align(feat, rois, 7, 0.5, 2, aligned)
    assert got.dtype == dtype
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
