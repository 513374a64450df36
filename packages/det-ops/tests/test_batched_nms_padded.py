import math

import numpy as np
import pytest
import torch
import torchvision
from ops_inputs import random_boxes

import det_ops
from det_ops.reference import nms as reference


def grouped_boxes(n: int, num_groups: int, dtype=torch.float64, seed: int = 0):
    """n boxes clustered around a few centres (many overlaps), scores with many ties, a
    group each in [0, num_groups - 1) (the last group stays empty), and some boxes masked
    by a -inf or NaN score."""
    g = torch.Generator().manual_seed(seed)
    centres = random_boxes(max(n // 30, 1), torch.float64, generator=g)
    picks = centres[torch.randint(0, len(centres), (n,), generator=g)]
    boxes = (picks + torch.randn(n, 4, generator=g, dtype=torch.float64) * 4).to(dtype)
    scores = (torch.rand(n, generator=g, dtype=torch.float64) * 16).round().to(dtype) / 16
    invalid = torch.rand(n, generator=g) < 0.1
    scores[invalid] = -math.inf
    scores[torch.rand(n, generator=g) < 0.05] = math.nan
    groups = torch.randint(0, max(num_groups - 1, 1), (n,), generator=g)
    return boxes, scores, groups


def per_group_nms(boxes, scores, groups, threshold, num_groups, max_per_group, offset=0):
    """The definition: det_ops.nms on each group's valid boxes, truncated and padded."""
    keep = torch.full((num_groups, max_per_group), -1, dtype=torch.int64)
    counts = torch.zeros(num_groups, dtype=torch.int64)
    valid = ~scores.isnan() & (scores != -math.inf)
    for g in range(num_groups):
        members = torch.nonzero(valid & (groups == g)).flatten()
        kept = members[det_ops.nms(boxes[members], scores[members], threshold, offset=offset)]
        kept = kept[:max_per_group]
        keep[g, : len(kept)] = kept
        counts[g] = len(kept)
    return keep, counts


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n, num_groups", [(0, 3), (1, 1), (300, 4), (3000, 11)])
@pytest.mark.parametrize("max_per_group", [1, 7, 5000])
@pytest.mark.parametrize("offset", [0, 1])
def test_matches_nms_per_group(dtype, n, num_groups, max_per_group, offset):
    boxes, scores, groups = grouped_boxes(n, num_groups, dtype, seed=n + num_groups)
    if offset:
        boxes = boxes.round()  # whole pixels, where the +1 matters most
    expected = per_group_nms(boxes, scores, groups, 0.5, num_groups, max_per_group, offset)
    keep, counts = det_ops.batched_nms_padded(
        boxes,
        scores,
        groups,
        0.5,
        num_groups=num_groups,
        max_per_group=max_per_group,
        offset=offset,
    )
    assert keep.shape == (num_groups, max_per_group) and counts.shape == (num_groups,)
    assert keep.dtype == counts.dtype == torch.int64
    assert torch.equal(keep, expected[0]) and torch.equal(counts, expected[1])
    np_keep, np_counts = det_ops.batched_nms_padded(
        boxes.numpy(),
        scores.numpy(),
        groups.int().numpy(),
        0.5,
        num_groups=num_groups,
        max_per_group=max_per_group,
        offset=offset,
    )
    assert np.array_equal(np_keep, expected[0].numpy())
    assert np.array_equal(np_counts, expected[1].numpy())


@pytest.mark.parametrize("threshold", [0.3, 0.7])
def test_matches_reference(threshold):
    boxes, scores, groups = grouped_boxes(800, 6, seed=3)
    expected = reference.batched_nms_padded(boxes, scores, groups, threshold, 6, 40)
    got = det_ops.batched_nms_padded(
        boxes, scores, groups, threshold, num_groups=6, max_per_group=40
    )
    assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))


def test_all_kept_boxes_are_torchvision_batched_nms():
    # With room for every kept box, the union of the rows is torchvision's batched NMS of
    # the valid boxes (distinct scores: its order then is unambiguous).
    g = torch.Generator().manual_seed(4)
    boxes = random_boxes(2000, torch.float32, generator=g)
    scores = torch.rand(2000, generator=g)
    scores[::9] = -math.inf
    groups = torch.randint(0, 10, (2000,), generator=g)
    keep, counts = det_ops.batched_nms_padded(
        boxes, scores, groups, 0.5, num_groups=10, max_per_group=2000
    )
    kept = keep[keep >= 0]
    assert len(kept) == int(counts.sum())
    kept = kept[torch.sort(scores[kept], descending=True, stable=True).indices]
    valid = torch.nonzero(scores != -math.inf).flatten()
    theirs = valid[torchvision.ops.batched_nms(boxes[valid], scores[valid], groups[valid], 0.5)]
    assert torch.equal(kept, theirs)


def test_hand_computed():
    boxes = torch.tensor(
        [[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 5], [0, 0, 10, 10.0]]
    )
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95, 0.99])
    groups = torch.tensor([0, 0, 0, 0, 1])
    # Group 0: IoU(0, 1) = 0.68, IoU(0, 3) = 0.5, IoU(1, 3) = 0.32 -> [3, 0, 2] at 0.6.
    # Group 1: box 4 alone (it overlaps box 0 fully, but across groups nothing is dropped).
    keep, counts = det_ops.batched_nms_padded(
        boxes, scores, groups, 0.6, num_groups=3, max_per_group=4
    )
    assert keep.tolist() == [[3, 0, 2, -1], [4, -1, -1, -1], [-1, -1, -1, -1]]
    assert counts.tolist() == [3, 1, 0]
    keep, counts = det_ops.batched_nms_padded(
        boxes, scores, groups, 0.6, num_groups=2, max_per_group=2
    )
    assert keep.tolist() == [[3, 0], [4, -1]] and counts.tolist() == [2, 1]


def test_masked_scores_are_never_kept_and_never_suppress():
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10.0]])
    scores = torch.tensor([math.inf, -math.inf, math.nan, 0.5])
    keep, counts = det_ops.batched_nms_padded(
        boxes, scores, torch.tensor([0, 1, 1, 1]), 0.5, num_groups=2, max_per_group=2
    )
    assert keep.tolist() == [[0, -1], [3, -1]] and counts.tolist() == [1, 1]


def test_equal_scores_keep_lower_index_first():
    boxes = torch.tensor([[0, 0, 10, 10], [50, 50, 60, 60], [0, 0, 10, 10], [50, 50, 60, 60.0]])
    keep, counts = det_ops.batched_nms_padded(
        boxes,
        torch.full((4,), 0.5),
        torch.zeros(4, dtype=torch.int64),
        0.5,
        num_groups=1,
        max_per_group=4,
    )
    assert keep.tolist() == [[0, 1, -1, -1]] and counts.tolist() == [2]


def test_rpn_batch_in_one_call_equals_batched_nms_per_image():
    # The RPN's use: a group per (image, level); per image, batched_nms over its levels.
    g = torch.Generator().manual_seed(5)
    images, levels, per_level = 2, 3, 400
    n = images * levels * per_level
    boxes = random_boxes(n, torch.float32, generator=g)
    scores = torch.rand(n, generator=g)
    groups = torch.arange(images * levels).repeat_interleave(per_level)
    keep, counts = det_ops.batched_nms_padded(
        boxes, scores, groups, 0.7, num_groups=images * levels, max_per_group=per_level
    )
    for image in range(images):
        rows = slice(image * levels, (image + 1) * levels)
        members = torch.nonzero(groups // levels == image).flatten()
        theirs = members[det_ops.batched_nms(boxes[members], scores[members], groups[members], 0.7)]
        ours = keep[rows][keep[rows] >= 0]
        ours = ours[torch.sort(scores[ours], descending=True, stable=True).indices]
        assert torch.equal(ours, theirs)
        assert int(counts[rows].sum()) == len(theirs)


def test_half_and_non_contiguous_inputs():
    boxes, scores, groups = grouped_boxes(300, 3, torch.float32, seed=6)
    wide = torch.zeros(300, 8)
    wide[:, ::2] = boxes
    expected = det_ops.batched_nms_padded(
        boxes, scores, groups, 0.5, num_groups=3, max_per_group=50
    )
    got = det_ops.batched_nms_padded(
        wide[:, ::2], scores, groups.int(), 0.5, num_groups=3, max_per_group=50
    )
    assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))
    half = det_ops.batched_nms_padded(
        boxes.half(), scores.half(), groups, 0.5, num_groups=3, max_per_group=50
    )
    expected = per_group_nms(boxes.half().float(), scores.half().float(), groups, 0.5, 3, 50)
    assert all(torch.equal(a, b) for a, b in zip(half, expected, strict=True))


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"groups": torch.tensor([0, 3])}, ValueError, r"groups must be in \[0, 3\).*\[0, 3\]"),
        ({"groups": torch.tensor([-1, 0])}, ValueError, r"groups must be in \[0, 3\)"),
        ({"groups": torch.zeros(2)}, TypeError, "groups must have an integer dtype"),
        (
            {"groups": torch.zeros(3, dtype=torch.int64)},
            ValueError,
            "boxes and groups must have the same length",
        ),
        ({"num_groups": 0}, ValueError, "num_groups must be >= 1, got 0"),
        ({"num_groups": 2.0}, TypeError, "num_groups must be an int"),
        ({"max_per_group": 0}, ValueError, "max_per_group must be >= 1, got 0"),
        ({"offset": 2}, ValueError, "offset must be 0"),
        ({"iou_threshold": "0.5"}, TypeError, "iou_threshold must be a real number"),
        ({"boxes": torch.zeros(2, 5)}, ValueError, r"boxes must have shape \[N, 4\]"),
    ],
)
def test_rejects_bad_arguments(kwargs, error, message):
    args = {
        "boxes": torch.zeros(2, 4),
        "scores": torch.zeros(2),
        "groups": torch.zeros(2, dtype=torch.int64),
        "iou_threshold": 0.5,
        "num_groups": 3,
        "max_per_group": 4,
    } | kwargs
    with pytest.raises(error, match=message):
        det_ops.batched_nms_padded(
            args.pop("boxes"),
            args.pop("scores"),
            args.pop("groups"),
            args.pop("iou_threshold"),
            **args,
        )


def test_compiles_with_fixed_shapes():
    boxes, scores, groups = grouped_boxes(200, 4, torch.float32, seed=7)

    def step(boxes, scores, groups):
        keep, counts = det_ops.batched_nms_padded(
            boxes, scores, groups, 0.5, num_groups=4, max_per_group=30
        )
        return keep.clamp(min=0).sum() + counts.sum()

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    assert torch.equal(compiled(boxes, scores, groups), step(boxes, scores, groups))
    fake = torch._subclasses.fake_tensor.FakeTensorMode()
    with fake:
        keep, counts = torch.ops.det_ops.batched_nms_padded(
            fake.from_tensor(boxes),
            fake.from_tensor(scores),
            fake.from_tensor(groups),
            0.5,
            4,
            30,
        )
    assert keep.shape == (4, 30) and counts.shape == (4,)
