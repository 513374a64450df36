"""OpTrace records what a captured graph fixes; the device-size paths of the heads agree
with the host-size ones."""

from __future__ import annotations

import torch

from det_heads.anchors import AnchorGenerator
from det_heads.assigners import MaxIoUAssigner
from det_heads.coders import clip_boxes
from det_heads.op_trace import OpTrace, first_difference


def test_op_trace_records_shapes_and_scalars_not_values():
    x, y, z = torch.ones(2, 3), torch.zeros(2, 3), torch.ones(2, 4)
    with OpTrace() as a:
        x.clamp(0, 5)
    with OpTrace() as b:
        y.clamp(0, 5)
    with OpTrace() as c:
        x.clamp(0, 6)
    assert a.calls and first_difference(a, b) is None
    assert "differs" in first_difference(a, c)
    with OpTrace() as d:
        z.clamp(0, 5)
    assert "(2, 4)" in first_difference(a, d)


def test_valid_flags_of_device_sizes_are_the_host_ones():
    generator = AnchorGenerator()
    feats = [(32, 40), (16, 20), (8, 10), (4, 5), (2, 3)]
    for pad, img in [((128, 160), (128, 150)), ((96, 128), (70, 100)), ((128, 96), (101, 77))]:
        for border in (0, -1, 3.0):
            want = generator.valid_flags(feats, pad, img, border)
            got = generator.valid_flags_of_sizes(
                feats,
                torch.tensor(pad, dtype=torch.float32),
                torch.tensor(img, dtype=torch.float32),
                border,
            )
            for w, g in zip(want, got, strict=True):
                assert torch.equal(w, g)


def test_clip_boxes_to_device_sizes():
    boxes = torch.tensor([[-5.0, 3.0, 200.0, 90.5], [10.0, -1.0, 20.0, 300.0]])
    for offset in (0, 1):
        want = clip_boxes(boxes, (80, 150), offset)
        got = clip_boxes(boxes, (torch.tensor(80.0), torch.tensor(150.0)), offset)
        assert torch.equal(want, got)


def test_padding_gts_match_nothing():
    assigner = MaxIoUAssigner(0.5, 0.5, 0.5, offset=1)
    boxes = torch.tensor([[0.0, 0.0, 0.0, 0.0], [10.0, 10.0, 30.0, 30.0], [50.0, 50.0, 60.0, 60.0]])
    gts = torch.tensor([[10.0, 10.0, 30.0, 30.0]])
    labels = torch.tensor([1])
    want = assigner(boxes, gts, labels, num_classes=3)
    padded = torch.cat([gts, torch.zeros(3, 4)])  # a zero box overlaps the first candidate
    got = assigner(
        boxes,
        padded,
        torch.cat([labels, torch.zeros(3, dtype=torch.int64)]),
        num_classes=3,
        gt_valid=torch.tensor([True, False, False, False]),
    )
    assert torch.equal(want.gt_inds, got.gt_inds) and torch.equal(want.labels, got.labels)
    added = got.add_gt(None, torch.tensor([True, False, False, False]))
    assert added.gt_inds[:4].tolist() == [1, -1, -1, -1]
