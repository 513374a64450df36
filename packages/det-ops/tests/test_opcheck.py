"""torch.library.opcheck of the custom ops: schema, fake kernels, autograd registration."""

import pytest
import torch
from ops_inputs import random_boxes, random_rois

import det_ops
import det_ops._torch  # registers torch.ops.det_ops

ops = torch.ops.det_ops


def cases():
    g = torch.Generator().manual_seed(0)
    boxes = random_boxes(50, generator=g)
    scores = torch.rand(50, generator=g)
    idxs = torch.randint(0, 3, (50,), generator=g)
    x = torch.randn(2, 3, 10, 12, generator=g, dtype=torch.float64, requires_grad=True)
    rois = random_rois(4, 2, 10, 12, 0.5, torch.float64, generator=g)
    logits = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    yield "nms", ops.nms, (boxes, scores, 0.5)
    yield "batched_nms", ops.batched_nms, (boxes, scores, idxs, 0.5)
    yield "soft_nms", ops.soft_nms, (boxes, scores, 0.3, 0.5, 0.001, "linear")
    yield "batched_nms_padded", ops.batched_nms_padded, (boxes, scores, idxs, 0.5, 4, 7)
    yield "bbox_overlaps", ops.bbox_overlaps, (boxes, boxes[:7], "iou", False)
    yield "roi_align", ops.roi_align, (x, rois, 0.5, 3, 3, 2, True)
    x_nhwc = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    yield "roi_align_nhwc", ops.roi_align, (x_nhwc, rois, 0.5, 3, 3, 2, True)
    yield "roi_pool", ops.roi_pool, (x, rois, 0.5, 3, 3)
    small = x.detach()[:, :, ::2, ::2].contiguous(memory_format=torch.channels_last)
    yield (
        "multi_level_roi_align",
        ops.multi_level_roi_align,
        (
            [x, small.requires_grad_()],
            rois,
            torch.tensor([0, 1, 1, 0]),
            [0.5, 0.25],
            3,
            3,
            2,
            1,
        ),
    )
    yield (
        "focal",
        ops.sigmoid_focal_loss,
        (logits, torch.rand(6, 4, dtype=torch.float64), 0.25, 2.0, True),
    )
    yield (
        "focal_labels",
        ops.sigmoid_focal_loss_labels,
        (logits, torch.tensor([0, 1, 2, 3, 4, 0]), 0.25, 2.0, True),
    )


DATA_DEPENDENT = {"nms", "batched_nms", "soft_nms"}


@pytest.mark.parametrize(
    "name, op, args", list(cases()), ids=lambda v: v if isinstance(v, str) else ""
)
def test_opcheck(name, op, args):
    tests = ("test_schema", "test_autograd_registration", "test_faketensor")
    if name not in DATA_DEPENDENT:
        tests += ("test_aot_dispatch_dynamic",)
    torch.library.opcheck(op, args, test_utils=tests)


def test_roi_align_and_focal_loss_compile_without_graph_breaks():
    x = torch.randn(1, 4, 20, 20, requires_grad=True)
    rois = torch.tensor([[0, 1.0, 1.0, 30.0, 30.0]])
    logits = torch.randn(5, 3, requires_grad=True)
    labels = torch.tensor([0, 1, 3, 2, 0])

    def step(x, rois, logits, labels):
        pooled = det_ops.roi_align(x, rois, 7, 0.5, 2)
        return pooled.sum() + det_ops.sigmoid_focal_loss(logits, labels, reduction="sum")

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    expected = step(x, rois, logits, labels)
    got = compiled(x, rois, logits, labels)
    torch.testing.assert_close(got, expected)
    grads = torch.autograd.grad(got, (x, logits))
    expected_grads = torch.autograd.grad(expected, (x, logits))
    for g, e in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(g, e)
