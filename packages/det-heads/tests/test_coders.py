import math

import pytest
import torch

from det_heads.coders import DeltaXYWHCoder


def test_encode_hand_computed():
    coder = DeltaXYWHCoder(means=(0, 0, 0, 0), stds=(0.1, 0.1, 0.2, 0.2))
    boxes = torch.tensor([[0.0, 0.0, 10.0, 20.0]])
    gt = torch.tensor([[5.0, 0.0, 25.0, 20.0]])
    # centres 5 -> 15 (dx = 10 / 10 = 1), width 10 -> 20 (dw = log 2), height unchanged
    expected = torch.tensor([[1 / 0.1, 0.0, math.log(2) / 0.2, 0.0]])
    torch.testing.assert_close(coder.encode(boxes, gt), expected)


def test_round_trip_random_boxes():
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(50, 2, generator=g) * 100
    boxes = torch.cat([xy, xy + 1 + torch.rand(50, 2, generator=g) * 50], 1)
    xy = torch.rand(50, 2, generator=g) * 100
    gt = torch.cat([xy, xy + 1 + torch.rand(50, 2, generator=g) * 50], 1)
    coder = DeltaXYWHCoder(means=(0.1, -0.1, 0.0, 0.05), stds=(0.1, 0.1, 0.2, 0.2))
    torch.testing.assert_close(coder.decode(boxes, coder.encode(boxes, gt)), gt, atol=1e-4, rtol=0)


def test_decode_clips_scale_and_image():
    coder = DeltaXYWHCoder(stds=(1, 1, 1, 1), clip_ratio=16 / 1000)
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    huge = torch.tensor([[0.0, 0.0, 50.0, -50.0]])
    out = coder.decode(boxes, huge)
    w, h = out[0, 2] - out[0, 0], out[0, 3] - out[0, 1]
    assert float(w) == pytest.approx(10 * 1000 / 16, rel=1e-5)
    assert float(h) == pytest.approx(10 * 16 / 1000, rel=1e-5)
    clipped = coder.decode(boxes, huge, max_shape=(30, 40))
    assert clipped.tolist() == [
        [0.0, pytest.approx(5 - 0.08, abs=1e-4), 40.0, pytest.approx(5.08, abs=1e-4)]
    ]


def test_decode_class_specific_deltas():
    coder = DeltaXYWHCoder(stds=(1, 1, 1, 1))
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    deltas = torch.tensor([[0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]])
    out = coder.decode(boxes, deltas)
    assert out.shape == (1, 8)
    assert out.tolist() == [[0.0, 0.0, 10.0, 10.0, 10.0, 0.0, 20.0, 10.0]]


def test_bad_arguments():
    with pytest.raises(ValueError, match="means and stds"):
        DeltaXYWHCoder(means=(0, 0))
    with pytest.raises(ValueError, match="clip_ratio"):
        DeltaXYWHCoder(clip_ratio=2.0)
