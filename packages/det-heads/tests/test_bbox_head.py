import math

import pytest
import torch

from det_heads import ConvGN, RoIGroupNorm
from det_heads.assigners import Assignment
from det_heads.roi import BBoxHead
from det_heads.samplers import RandomSampler, SamplingResult
from det_heads.sync_audit import SyncAudit


def _sample():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 20.0, 10.0], [50.0, 50, 60, 60]])
    gt = torch.tensor([[0.0, 0.0, 20.0, 10.0]])
    a = Assignment(1, torch.tensor([1, 1, 0]), torch.zeros(3), torch.tensor([2, 2, 3]))
    return SamplingResult.from_indices(boxes, a, gt, torch.tensor([0, 1]), torch.tensor([2]))


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
    targets = head.targets([_sample()])
    labels, box_targets, box_weights = targets.labels, targets.box_targets, targets.box_weights
    assert labels.tolist() == [2, 2, 3] and int(targets.num_samples) == 3
    # box 0 -> gt: centre 5 -> 10 over width 10 (dx 0.5 / 0.1), width doubles (log 2 / 0.2)
    torch.testing.assert_close(box_targets[0], torch.tensor([5.0, 0.0, math.log(2) / 0.2, 0.0]))
    assert box_targets[1].abs().max() == 0 and box_weights[:, 0].tolist() == [1, 1, 0]
    logits = torch.zeros(3, 4)
    deltas = torch.zeros(3, 12)
    deltas[0, 8:12] = box_targets[0]  # class 2's deltas of RoI 0 are exact
    deltas[0, 0:4] = 100.0  # other classes' deltas are not trained
    losses = head.loss(logits, deltas, targets)
    assert math.isclose(losses["loss_cls"].item(), math.log(4), rel_tol=1e-6)
    assert losses["loss_box"].item() == 0.0


def test_pos_weight_weighs_the_positives_classification():
    # Two positives and one negative, uniform logits: each term is log 4. With the positives
    # weighted 3, the sum 3 + 3 + 1 terms is still averaged over the 3 sampled RoIs.
    head = BBoxHead(3, 4, 2, 8, pos_weight=3.0)
    targets = head.targets([_sample()])
    losses = head.loss(torch.zeros(3, 4), torch.zeros(3, 12), targets)
    assert math.isclose(losses["loss_cls"].item(), 7 * math.log(4) / 3, rel_tol=1e-6)
    plain = BBoxHead(3, 4, 2, 8, pos_weight=-1.0)
    losses = plain.loss(torch.zeros(3, 4), torch.zeros(3, 12), plain.targets([_sample()]))
    assert math.isclose(losses["loss_cls"].item(), math.log(4), rel_tol=1e-6)


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


def test_shared_convs_with_group_norm_4conv1fc():
    head = BBoxHead(3, 8, 2, 16, 1, num_convs=4, conv_channels=32, norm="GN")
    assert len(head.convs) == 4 and head.convs[0].conv.in_channels == 8
    assert all(isinstance(c, ConvGN) and type(c.gn) is RoIGroupNorm for c in head.convs)
    assert head.fcs[0].in_features == 32 * 2 * 2
    # The 2019 "4conv1fc" head's layout, which the checkpoint converters map onto.
    assert [k for k in head.state_dict() if k.startswith("convs.0.")] == [
        "convs.0.conv.weight",
        "convs.0.gn.weight",
        "convs.0.gn.bias",
    ]
    x = torch.randn(5, 8, 2, 2)
    logits, deltas = head(x)
    assert logits.shape == (5, 4) and deltas.shape == (5, 12)
    features = x
    for conv in head.convs:
        features = torch.relu(conv(features))
    torch.testing.assert_close(logits, head.cls(torch.relu(head.fcs[0](features.flatten(1)))))


def test_shared_convs_without_norm_have_biases():
    head = BBoxHead(3, 8, 2, 16, 1, num_convs=2, conv_channels=8)
    assert all(isinstance(c, torch.nn.Conv2d) and c.bias is not None for c in head.convs)
    assert head(torch.randn(5, 8, 2, 2))[0].shape == (5, 4)
    with pytest.raises(ValueError, match="norm must be None or 'GN'"):
        BBoxHead(3, 8, 2, 16, num_convs=2, norm="BN")


def test_padding_slots_weigh_nothing_and_never_make_nans():
    # A degenerate gt (zero width) would give inf deltas to the slots that are not its
    # positives; the targets select zeros there, so no NaN can leak through a 0 weight.
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 20.0, 10.0], [50.0, 50, 60, 60]])
    gt = torch.tensor([[5.0, 5.0, 5.0, 9.0]])
    a = Assignment(1, torch.tensor([0, 0, -1]), torch.zeros(3), torch.tensor([3, 3, 3]))
    sampler = RandomSampler(4, 0.25, add_gt_as_proposals=False)
    head = BBoxHead(3, 4, 2, 8)
    with SyncAudit(where=True) as audit:
        sample = sampler(a, boxes, gt)
        targets = head.targets([sample])
        losses = head.loss(torch.zeros(3, 4), torch.zeros(3, 12), targets)
    assert audit.counts() == {}, audit.where
    assert sample.valid.tolist() == [True, True, False]
    assert targets.label_weights.tolist() == [1.0, 1.0, 0.0] and int(targets.num_samples) == 2
    assert torch.isfinite(targets.box_targets).all()
    assert math.isclose(losses["loss_cls"].item(), math.log(4), rel_tol=1e-6)
    assert losses["loss_box"].item() == 0.0
