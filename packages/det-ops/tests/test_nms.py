import numpy as np
import pytest
import torch
import torchvision
from ops_inputs import random_boxes

import det_ops
from det_ops.reference import nms as reference


def clustered_boxes(n: int, dtype, generator) -> torch.Tensor:
    """Boxes jittered around a few centres, so that most are suppressed."""
    centres = random_boxes(8, torch.float64, generator=generator)
    picks = centres[torch.randint(0, 8, (n,), generator=generator)]
    jitter = torch.randn(n, 4, generator=generator, dtype=torch.float64) * 4
    return (picks + jitter).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n", [0, 1, 7, 300, 3000])
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_nms_matches_torchvision(dtype, n, threshold):
    g = torch.Generator().manual_seed(n)
    for boxes in (random_boxes(n, dtype, generator=g), clustered_boxes(n, dtype, g)):
        scores = torch.rand(n, generator=g, dtype=dtype)
        expected = torchvision.ops.nms(boxes, scores, threshold)
        assert torch.equal(det_ops.nms(boxes, scores, threshold), expected)
        assert np.array_equal(
            det_ops.nms(boxes.numpy(), scores.numpy(), threshold), expected.numpy()
        )


def test_nms_hand_computed():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 5.0]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    # IoU(0, 1) = 81/119 = 0.68, IoU(0, 3) = 50/100 = 0.5, IoU(1, 3) = 36/114 = 0.32
    assert det_ops.nms(boxes, scores, 0.6).tolist() == [3, 0, 2]
    assert det_ops.nms(boxes, scores, 0.45).tolist() == [3, 1, 2]
    assert det_ops.nms(boxes, scores, 0.3).tolist() == [3, 2]
    assert det_ops.nms(boxes, scores, 0.7).tolist() == [3, 0, 1, 2]


def test_nms_equal_scores_keep_lower_index_first():
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]], dtype=torch.float32)
    scores = torch.tensor([0.5, 0.5, 0.5])
    assert det_ops.nms(boxes, scores, 0.5).tolist() == [0, 2]


def test_nms_matches_reference_with_ties():
    g = torch.Generator().manual_seed(0)
    boxes = clustered_boxes(400, torch.float64, g)
    scores = torch.randint(0, 5, (400,), generator=g).to(torch.float64)
    assert torch.equal(det_ops.nms(boxes, scores, 0.5), reference.nms(boxes, scores, 0.5))


def test_nms_nan_box_neither_suppresses_nor_is_suppressed():
    boxes = torch.tensor([[0, 0, 10, 10], [float("nan"), 0, 10, 10], [0, 0, 10, 10.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert det_ops.nms(boxes, scores, 0.5).tolist() == [0, 1]
    assert torchvision.ops.nms(boxes, scores, 0.5).tolist() == [0, 1]


def test_nms_nan_score_is_an_error():
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10.0]])
    with pytest.raises(ValueError, match="scores contains NaN"):
        det_ops.nms(boxes, torch.tensor([0.5, float("nan")]), 0.5)


def test_nms_half_and_non_contiguous_inputs():
    g = torch.Generator().manual_seed(1)
    boxes = random_boxes(200, generator=g)
    scores = torch.rand(200, generator=g)
    expected = torchvision.ops.nms(boxes, scores, 0.5)
    wide = torch.zeros(200, 8)
    wide[:, ::2] = boxes
    assert not wide[:, ::2].is_contiguous()
    assert torch.equal(det_ops.nms(wide[:, ::2], scores, 0.5), expected)
    half_boxes, half_scores = boxes.half(), scores.half()
    expected_half = torchvision.ops.nms(half_boxes.float(), half_scores.float(), 0.5)
    assert torch.equal(det_ops.nms(half_boxes, half_scores, 0.5), expected_half)


@pytest.mark.parametrize(
    "boxes, scores, message",
    [
        (torch.zeros(3, 5), torch.zeros(3), r"boxes must have shape \[N, 4\], got \[3, 5\]"),
        (torch.zeros(4), torch.zeros(1), r"boxes must have shape \[N, 4\]"),
        (torch.zeros(3, 4), torch.zeros(2), "boxes and scores must have the same length"),
        (torch.zeros(3, 4), torch.zeros(3, 1), r"scores must have shape \[N\]"),
    ],
)
def test_nms_rejects_bad_shapes(boxes, scores, message):
    with pytest.raises(ValueError, match=message):
        det_ops.nms(boxes, scores, 0.5)


def test_nms_rejects_bad_types_and_devices():
    with pytest.raises(TypeError, match="boxes must have a floating dtype, got int64"):
        det_ops.nms(torch.zeros(3, 4, dtype=torch.int64), torch.zeros(3), 0.5)
    with pytest.raises(TypeError, match="scores is a torch tensor"):
        det_ops.nms(np.zeros((3, 4)), torch.zeros(3), 0.5)
    with pytest.raises(TypeError, match="iou_threshold must be a real number"):
        det_ops.nms(torch.zeros(3, 4), torch.zeros(3), "0.5")
    with pytest.raises(ValueError, match=r"same device.*boxes on cpu.*scores on meta"):
        det_ops.nms(torch.zeros(3, 4), torch.zeros(3, device="meta"), 0.5)
    with pytest.raises(TypeError, match="boxes must be a numpy array or a torch tensor"):
        det_ops.nms("boxes", np.zeros(3), 0.5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n", [0, 50, 2000])
def test_batched_nms_matches_torchvision(dtype, n):
    g = torch.Generator().manual_seed(n + 7)
    boxes = random_boxes(n, dtype, generator=g)
    scores = torch.rand(n, generator=g, dtype=dtype)
    idxs = torch.randint(0, 10, (n,), generator=g)
    expected = torchvision.ops.batched_nms(boxes, scores, idxs, 0.3)
    assert torch.equal(det_ops.batched_nms(boxes, scores, idxs, 0.3), expected)
    assert torch.equal(reference.batched_nms(boxes, scores, idxs, 0.3), expected)
    numpy_keep = det_ops.batched_nms(boxes.numpy(), scores.numpy(), idxs.int().numpy(), 0.3)
    assert np.array_equal(numpy_keep, expected.numpy())


def test_batched_nms_never_suppresses_across_categories():
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert det_ops.batched_nms(boxes, scores, torch.tensor([0, 1, 0]), 0.5).tolist() == [0, 1]


def test_batched_nms_rejects_float_idxs_and_length_mismatch():
    with pytest.raises(TypeError, match="idxs must have an integer dtype"):
        det_ops.batched_nms(torch.zeros(2, 4), torch.zeros(2), torch.zeros(2), 0.5)
    with pytest.raises(ValueError, match="boxes and idxs must have the same length"):
        det_ops.batched_nms(
            torch.zeros(2, 4), torch.zeros(2), torch.zeros(3, dtype=torch.int64), 0.5
        )


@pytest.mark.parametrize("method", ["linear", "gaussian"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_soft_nms_matches_reference(method, dtype):
    g = torch.Generator().manual_seed(3)
    boxes = clustered_boxes(300, dtype, g)
    scores = torch.rand(300, generator=g, dtype=dtype)
    keep, new_scores = det_ops.soft_nms(boxes, scores, 0.3, 0.5, 1e-3, method)
    expected_keep, expected_scores = reference.soft_nms(boxes, scores, 0.3, 0.5, 1e-3, method)
    assert torch.equal(keep, expected_keep)
    torch.testing.assert_close(new_scores, expected_scores)
    numpy_keep, numpy_scores = det_ops.soft_nms(boxes.numpy(), scores.numpy(), method=method)
    assert np.array_equal(numpy_keep, expected_keep.numpy())
    np.testing.assert_allclose(numpy_scores, expected_scores.numpy(), rtol=1e-6)


def test_soft_nms_hand_computed():
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 5], [20, 20, 30, 30.0]], dtype=torch.float64)
    scores = torch.tensor([0.9, 0.8, 0.3], dtype=torch.float64)
    keep, new_scores = det_ops.soft_nms(boxes, scores, iou_threshold=0.3, method="linear")
    # box 1 has IoU 0.5 with box 0: its score decays to 0.8 * (1 - 0.5) = 0.4
    assert keep.tolist() == [0, 1, 2]
    torch.testing.assert_close(new_scores, torch.tensor([0.9, 0.4, 0.3], dtype=torch.float64))
    keep, new_scores = det_ops.soft_nms(boxes, scores, sigma=0.5, method="gaussian")
    torch.testing.assert_close(
        new_scores, torch.tensor([0.9, 0.8 * np.exp(-0.25 / 0.5), 0.3], dtype=torch.float64)
    )
    keep, _ = det_ops.soft_nms(boxes, scores, min_score=0.5, method="linear")
    assert keep.tolist() == [0]


def test_soft_nms_rejects_bad_arguments():
    boxes, scores = torch.zeros(2, 4), torch.zeros(2)
    with pytest.raises(ValueError, match="method must be one of"):
        det_ops.soft_nms(boxes, scores, method="hard")
    with pytest.raises(ValueError, match="sigma must be > 0"):
        det_ops.soft_nms(boxes, scores, sigma=0.0)
