"""det_ops as a drop-in for torchvision.ops: code written against torchvision's names,
arguments and defaults runs unchanged with det_ops and gives the same numbers."""

from __future__ import annotations

import inspect
import types

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.feature_extraction import get_graph_node_names

import det_ops

# (det_ops callable, torchvision callable) for every op and module both have.
SHARED = [
    ("nms", det_ops.nms, torchvision.ops.nms),
    ("batched_nms", det_ops.batched_nms, torchvision.ops.batched_nms),
    ("box_iou", det_ops.box_iou, torchvision.ops.box_iou),
    ("roi_align", det_ops.roi_align, torchvision.ops.roi_align),
    ("roi_pool", det_ops.roi_pool, torchvision.ops.roi_pool),
    ("deform_conv2d", det_ops.deform_conv2d, torchvision.ops.deform_conv2d),
    ("sigmoid_focal_loss", det_ops.sigmoid_focal_loss, torchvision.ops.sigmoid_focal_loss),
    ("RoIAlign", det_ops.RoIAlign.__init__, torchvision.ops.RoIAlign.__init__),
    ("RoIAlign.forward", det_ops.RoIAlign.forward, torchvision.ops.RoIAlign.forward),
    ("RoIPool", det_ops.RoIPool.__init__, torchvision.ops.RoIPool.__init__),
    ("RoIPool.forward", det_ops.RoIPool.forward, torchvision.ops.RoIPool.forward),
    ("DeformConv2d", det_ops.DeformConv2d.__init__, torchvision.ops.DeformConv2d.__init__),
    (
        "DeformConv2d.forward",
        det_ops.DeformConv2d.forward,
        torchvision.ops.DeformConv2d.forward,
    ),
]


@pytest.mark.parametrize("name, ours, theirs", SHARED, ids=[s[0] for s in SHARED])
def test_signature_accepts_every_torchvision_call(name, ours, theirs):
    """Each of torchvision's parameters is ours too, in the same position and of the same
    kind, with the same default where torchvision has one; ours may add keyword-only ones
    and give defaults to parameters torchvision requires."""
    our_params = list(inspect.signature(ours).parameters.values())
    for i, their in enumerate(inspect.signature(theirs).parameters.values()):
        mine = our_params[i]
        assert mine.name == their.name, f"{name}: parameter {i} is {mine.name}, not {their.name}"
        assert mine.kind == their.kind, f"{name}: {mine.name} is {mine.kind}, not {their.kind}"
        if their.default is not inspect.Parameter.empty:
            assert mine.default == their.default, f"{name}: default of {mine.name}"
    extra = our_params[len(inspect.signature(theirs).parameters) :]
    assert all(
        p.kind is inspect.Parameter.KEYWORD_ONLY or p.default is not inspect.Parameter.empty
        for p in extra
    ), f"{name}: extra parameters must be optional"


class TwoStageHead(nn.Module):
    """A toy detector head written against an ops namespace laid out like torchvision.ops:
    DCN v2 on a feature map, RoIAlign of per-image boxes, a linear classifier, focal loss."""

    def __init__(self, ops: types.ModuleType, channels: int = 8, classes: int = 3) -> None:
        super().__init__()
        self.ops = ops
        self.offsets = nn.Conv2d(channels, 27, 3, padding=1)
        self.dcn = ops.DeformConv2d(channels, channels, 3, 1, 1, 1, 1, False)
        self.pool = ops.RoIAlign(4, spatial_scale=0.5, sampling_ratio=2)
        self.cls = nn.Linear(channels * 16, classes)

    def forward(self, feature, boxes, targets):
        offset, mask = self.offsets(feature).split([18, 9], dim=1)
        feature = self.dcn(feature, offset, mask.sigmoid())
        pooled = self.pool(feature, boxes)
        logits = self.cls(pooled.flatten(1))
        loss = self.ops.sigmoid_focal_loss(logits, targets, reduction="mean")
        return logits, loss


def _head_inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    feature = torch.randn(2, 8, 20, 24, generator=g)
    boxes = []
    for count in (3, 2):
        xy = torch.rand(count, 2, generator=g) * 30
        wh = torch.rand(count, 2, generator=g) * 15 + 2
        boxes.append(torch.cat([xy, xy + wh], dim=1))
    targets = (torch.rand(5, 3, generator=g) > 0.6).float()
    return feature, boxes, targets


def _twin_heads():
    theirs = TwoStageHead(torchvision.ops)
    ours = TwoStageHead(det_ops)
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def test_model_swaps_ops_and_gives_torchvisions_outputs_and_gradients():
    ours, theirs = _twin_heads()
    feature, boxes, targets = _head_inputs()
    our_logits, our_loss = ours(feature, boxes, targets)
    their_logits, their_loss = theirs(feature, boxes, targets)
    torch.testing.assert_close(our_logits, their_logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(our_loss, their_loss, rtol=1e-5, atol=1e-6)
    our_loss.backward()
    their_loss.backward()
    for (name, mine), other in zip(ours.named_parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(mine.grad, other.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_model_compiles_with_det_ops_and_matches_eager():
    ours, _ = _twin_heads()
    feature, boxes, targets = _head_inputs(seed=1)
    expected_logits, expected_loss = ours(feature, boxes, targets)
    compiled = torch.compile(ours, backend="aot_eager", fullgraph=True)
    logits, loss = compiled(feature, boxes, targets)
    torch.testing.assert_close(logits, expected_logits)
    torch.testing.assert_close(loss, expected_loss)


def test_model_traces_with_fx_and_names_its_nodes():
    ours, _ = _twin_heads()
    feature, boxes, targets = _head_inputs(seed=2)
    traced = torch.fx.symbolic_trace(ours)
    targets_called = {n.target for n in traced.graph.nodes if n.op == "call_function"}
    assert {det_ops.deform_conv2d, det_ops.roi_align, det_ops.sigmoid_focal_loss} <= (
        targets_called
    )
    got, expected = traced(feature, boxes, targets), ours(feature, boxes, targets)
    torch.testing.assert_close(got, expected)
    train_nodes, eval_nodes = get_graph_node_names(ours)
    assert "pool.roi_align" in train_nodes and "dcn.deform_conv2d" in eval_nodes


@pytest.mark.parametrize(
    "module, inputs",
    [
        (det_ops.RoIAlign((2, 3), 0.5, 2), "rois"),
        (det_ops.RoIPool(3, 0.5), "rois"),
        (det_ops.DeformConv2d(4, 6, 3, padding=1), "offset"),
    ],
    ids=["RoIAlign", "RoIPool", "DeformConv2d"],
)
def test_each_module_traces_alone(module, inputs):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 4, 9, 9, generator=g)
    if inputs == "rois":
        second = torch.tensor([[0, 1.0, 1.0, 12.0, 10.0], [1, 3.0, 0.0, 9.0, 16.0]])
    else:
        second = torch.randn(2, 18, 9, 9, generator=g)
    traced = torch.fx.symbolic_trace(module)
    torch.testing.assert_close(traced(x, second), module(x, second))


def test_functions_trace_with_fx():
    def postprocess(boxes, scores, labels):
        keep = det_ops.batched_nms(boxes, scores, labels, 0.5)
        overlaps = det_ops.box_iou(boxes[keep], boxes)
        return keep, overlaps, det_ops.nms(boxes, scores, iou_threshold=0.3)

    traced = torch.fx.symbolic_trace(postprocess)
    g = torch.Generator().manual_seed(4)
    corner = torch.rand(40, 2, generator=g) * 50
    boxes = torch.cat([corner, corner + 5 + torch.rand(40, 2, generator=g) * 20], dim=1)
    scores, labels = torch.rand(40, generator=g), torch.randint(0, 3, (40,), generator=g)
    got, expected = traced(boxes, scores, labels), postprocess(boxes, scores, labels)
    torch.testing.assert_close(got, expected)


def test_roi_align_defaults_are_torchvisions():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(1, 3, 16, 16, generator=g)
    rois = torch.tensor([[0, 1.3, 2.2, 11.7, 9.1], [0, 0.0, 0.0, 3.0, 3.0]])
    expected = torchvision.ops.roi_align(x, rois, 3)
    torch.testing.assert_close(det_ops.roi_align(x, rois, 3), expected)
    torch.testing.assert_close(det_ops.RoIAlign(3)(x, rois), expected)
    torch.testing.assert_close(det_ops.roi_align(input=x, boxes=rois, output_size=3), expected)
    torch.testing.assert_close(
        det_ops.roi_pool(x, boxes=rois, output_size=2), torchvision.ops.roi_pool(x, rois, 2)
    )


def test_nms_takes_a_tensor_threshold_and_batched_nms_empty_nones():
    g = torch.Generator().manual_seed(6)
    corner = torch.rand(30, 2, generator=g) * 20
    boxes = torch.cat([corner, corner + 8], dim=1)
    scores = torch.rand(30, generator=g)
    threshold = torch.tensor(0.4)
    torch.testing.assert_close(
        det_ops.nms(boxes, scores, threshold), torchvision.ops.nms(boxes, scores, threshold)
    )
    empty = torch.empty(0)
    torch.testing.assert_close(
        det_ops.batched_nms(empty, None, None, None),
        torchvision.ops.batched_nms(empty, None, None, None),
    )


@pytest.mark.parametrize("dtype", [torch.int16, torch.int32, torch.int64, torch.float16])
@pytest.mark.parametrize("fmt", ["xyxy", "xywh", "cxcywh"])
def test_box_iou_like_torchvision(dtype, fmt):
    boxes1 = torch.tensor([[0, 0, 100, 100], [10, 20, 60, 50], [200, 200, 300, 300]], dtype=dtype)
    boxes2 = torch.tensor([[0, 0, 50, 50], [20, 10, 120, 110]], dtype=dtype)
    ours = det_ops.box_iou(boxes1, boxes2, fmt)
    theirs = torchvision.ops.box_iou(boxes1, boxes2, fmt=fmt)
    assert ours.dtype == theirs.dtype
    torch.testing.assert_close(ours, theirs, atol=2e-3 if dtype == torch.float16 else 1e-6, rtol=0)
    batched = det_ops.box_iou(torch.stack([boxes1, boxes1]), torch.stack([boxes2, boxes2]), fmt)
    torch.testing.assert_close(batched, torch.stack([ours, ours]))


def _deform_inputs(dtype=torch.float32, seed=7):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 16, 14, 14, generator=g)
    offset = torch.randn(2, 18, 14, 14, generator=g) * 2
    mask = torch.rand(2, 9, 14, 14, generator=g)
    weight = torch.randn(12, 16, 3, 3, generator=g) / 12
    bias = torch.randn(12, generator=g)
    return [t.to(dtype) for t in (x, offset, weight, bias, mask)]


def _deform_float64_reference():
    x, offset, weight, bias, mask = _deform_inputs(torch.float64)
    return torchvision.ops.deform_conv2d(x, offset, weight, bias, padding=1, mask=mask)


def test_deform_conv2d_under_cpu_bf16_autocast_keeps_float32():
    expected = _deform_float64_reference()
    x, offset, weight, bias, mask = _deform_inputs()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = det_ops.deform_conv2d(x, offset, weight, bias, padding=1, mask=mask)
        theirs = torchvision.ops.deform_conv2d(x, offset, weight, bias, padding=1, mask=mask)
        low_precision_matmul = weight.reshape(12, -1) @ x.reshape(2, 16, -1)[:, :1].expand(
            2, 144, 196
        )
    assert low_precision_matmul.dtype == torch.bfloat16  # autocast is on
    assert out.dtype == theirs.dtype == torch.float32
    assert (out.double() - expected).abs().max() < 1e-5
    # bfloat16 inputs come back bfloat16, computed in float32: only the rounding of the output.
    with torch.autocast("cpu", dtype=torch.bfloat16):
        layer = det_ops.DeformConv2d(16, 12, 3, padding=1).to(torch.bfloat16)
        with torch.no_grad():
            layer.weight.copy_(weight)
            layer.bias.copy_(bias)
        half_out = layer(x.bfloat16(), offset.bfloat16(), mask.bfloat16())
    assert half_out.dtype == torch.bfloat16
    rounded_inputs = _deform_inputs()
    rounded_inputs = [t.bfloat16().double() for t in rounded_inputs]
    rounded_expected = torchvision.ops.deform_conv2d(
        *rounded_inputs[:4], padding=1, mask=rounded_inputs[4]
    )
    scale = rounded_expected.abs().max()
    assert (half_out.double() - rounded_expected).abs().max() <= scale * 2**-8


def test_deform_conv2d_autocast_gradients_stay_float32():
    x, offset, weight, bias, mask = (t.requires_grad_() for t in _deform_inputs())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = det_ops.deform_conv2d(x, offset, weight, bias, padding=1, mask=mask)
    out.square().sum().backward()
    reference = [t.detach().double().requires_grad_() for t in (x, offset, weight, bias, mask)]
    torchvision.ops.deform_conv2d(
        *reference[:4], padding=1, mask=reference[4]
    ).square().sum().backward()
    for ours, theirs in zip((x, offset, weight, bias, mask), reference, strict=True):
        assert ours.grad.dtype == torch.float32
        torch.testing.assert_close(ours.grad.double(), theirs.grad, rtol=1e-4, atol=1e-4)


@pytest.mark.gpu
@pytest.mark.skipif(not det_ops.has_cuda(), reason="needs a CUDA build and device")
def test_deform_conv2d_under_cuda_fp16_autocast_keeps_float32():
    expected = _deform_float64_reference().cuda()
    x, offset, weight, bias, mask = (t.cuda() for t in _deform_inputs())
    with torch.autocast("cuda", dtype=torch.float16):
        out = det_ops.deform_conv2d(x, offset, weight, bias, padding=1, mask=mask)
        theirs = torchvision.ops.deform_conv2d(x, offset, weight, bias, padding=1, mask=mask)
    assert out.dtype == theirs.dtype
    assert (out.double() - expected).abs().max() < 1e-4


def test_deform_conv2d_module_takes_torchvisions_positional_arguments_and_mask():
    theirs = torchvision.ops.DeformConv2d(16, 12, 3, 1, 1, 1, 2, False)
    ours = det_ops.DeformConv2d(16, 12, 3, 1, 1, 1, 2, False)
    assert ours.bias is None and ours.groups == 2
    ours.load_state_dict(theirs.state_dict())
    x, offset, _, _, mask = _deform_inputs()
    torch.testing.assert_close(ours(x, offset, mask), theirs(x, offset, mask))
    torch.testing.assert_close(ours(x, offset), theirs(x, offset))
    torch.testing.assert_close(ours(x, offset, mask=None), theirs(x, offset, mask=None))
