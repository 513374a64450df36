import math

import torch

from det_heads.assigners import Assignment
from det_heads.roi import BBoxHead
from det_heads.samplers import SamplingResult


def _sample():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 20.0, 10.0], [50.0, 50, 60, 60]])
    gt = torch.tensor([[0.0, 0.0, 20.0, 10.0]])
    a = Assignment(1, torch.tensor([1, 1, 0]), torch.zeros(3), torch.tensor([2, 2, 3]))
    return SamplingResult(boxes, a, gt, torch.tensor([0, 1]), torch.tensor([2]))


def test_defaults_and_shapes():
    head = BBoxHead(3, in_channels=4, roi_size=2, fc_channels=8)
    assert [fc.out_features for fc in head.fcs] == [8, 8] and head.coder.stds == (
        0.1,
        0.1,
        0.2,
        0.2,
    )
    logits, deltas = head(torch.randn(5, 4, 2, 2))
    assert logits.shape == (5, 4) and deltas.shape == (5, 12)
    agnostic = BBoxHead(3, 4, 2, 8, class_agnostic=True)
    assert agnostic(torch.randn(5, 4, 2, 2))[1].shape == (5, 4)


def test_targets_and_loss_hand_computed():
    head = BBoxHead(3, 4, 2, 8)
    labels, box_targets, box_weights = head.targets([_sample()])
    assert labels.tolist() == [2, 2, 3]
    # box 0 -> gt: centre 5 -> 10 over width 10 (dx 0.5 / 0.1), width doubles (log 2 / 0.2)
    torch.testing.assert_close(box_targets[0], torch.tensor([5.0, 0.0, math.log(2) / 0.2, 0.0]))
    assert box_targets[1].abs().max() == 0 and box_weights[:, 0].tolist() == [1, 1, 0]
    logits = torch.zeros(3, 4)
    deltas = torch.zeros(3, 12)
    deltas[0, 8:12] = box_targets[0]  # class 2's deltas of RoI 0 are exact
    deltas[0, 0:4] = 100.0  # other classes' deltas are not trained
    losses = head.loss(logits, deltas, labels, box_targets, box_weights)
    assert math.isclose(losses["loss_cls"].item(), math.log(4), rel_tol=1e-6)
    assert losses["loss_box"].item() == 0.0


def test_detections_rescue_the_right_class():
    head = BBoxHead(2, 4, 2, 8)
    boxes = torch.tensor([[10.0, 10.0, 30.0, 30.0]])
    logits = torch.tensor([[0.0, 5.0, 0.0]])
    deltas = torch.zeros(1, 8)
    det = head.detections(boxes, logits, deltas, {"img_shape": (100, 100)})
    assert det["labels"].tolist() == [1]
    assert det["boxes"].tolist() == [[10.0, 10.0, 30.0, 30.0]]
    p = math.exp(5) / (math.exp(5) + 2)
    assert math.isclose(det["scores"].item(), p, rel_tol=1e-6)
