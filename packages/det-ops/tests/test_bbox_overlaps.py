import numpy as np
import pytest
import torch
import torchvision
from ops_inputs import random_boxes

import det_ops
from det_ops.reference import bbox_overlaps as reference


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n, m", [(0, 5), (5, 0), (1, 1), (37, 300), (1000, 20)])
def test_iou_matches_torchvision(dtype, n, m):
    g = torch.Generator().manual_seed(n + m)
    a, b = random_boxes(n, dtype, generator=g), random_boxes(m, dtype, generator=g)
    ours = det_ops.bbox_overlaps(a, b)
    torch.testing.assert_close(ours, torchvision.ops.box_iou(a, b))
    np.testing.assert_array_equal(det_ops.bbox_overlaps(a.numpy(), b.numpy()), ours.numpy())


@pytest.mark.parametrize("mode", ["iou", "iof"])
@pytest.mark.parametrize("aligned", [False, True])
def test_overlaps_match_reference(mode, aligned):
    g = torch.Generator().manual_seed(1)
    a, b = (
        random_boxes(64, torch.float64, generator=g),
        random_boxes(64, torch.float64, generator=g),
    )
    a[0] = torch.tensor([3.0, 3.0, 3.0, 3.0])  # zero area: overlaps are 0, not NaN
    expected = reference.bbox_overlaps(a, b, mode, aligned)
    torch.testing.assert_close(det_ops.bbox_overlaps(a, b, mode, aligned), expected)
    assert torch.equal(expected[0], torch.zeros_like(expected[0]))


def test_overlaps_hand_computed():
    a = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    b = torch.tensor([[5.0, 5.0, 15.0, 15.0], [0.0, 0.0, 5.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    torch.testing.assert_close(det_ops.bbox_overlaps(a, b), torch.tensor([[25 / 175, 0.5, 0.0]]))
    torch.testing.assert_close(det_ops.bbox_overlaps(a, b, "iof"), torch.tensor([[0.25, 0.5, 0.0]]))
    torch.testing.assert_close(
        det_ops.bbox_overlaps(b[:1], a, aligned=True), torch.tensor([25 / 175])
    )


def test_overlaps_reject_bad_inputs():
    with pytest.raises(ValueError, match="mode must be 'iou' or 'iof'"):
        det_ops.bbox_overlaps(torch.zeros(1, 4), torch.zeros(1, 4), mode="giou")
    with pytest.raises(ValueError, match="boxes1 and boxes2 must have the same length"):
        det_ops.bbox_overlaps(torch.zeros(2, 4), torch.zeros(3, 4), aligned=True)
    with pytest.raises(ValueError, match=r"boxes2 must have shape \[M, 4\]"):
        det_ops.bbox_overlaps(torch.zeros(2, 4), torch.zeros(3, 2))
