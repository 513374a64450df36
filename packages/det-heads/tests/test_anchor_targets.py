import pytest
import torch
from heads_inputs import metas, random_targets

from det_heads.anchors import AnchorGenerator
from det_heads.assigners import MaxIoUAssigner
from det_heads.coders import DeltaXYWHCoder
from det_heads.dense.anchor_targets import anchor_targets, level_anchors
from det_heads.samplers import PseudoSampler, RandomSampler
from det_heads.sync_audit import SyncAudit

STRIDES = (8, 16, 32)


def _targets(sampler, border=0.0, num_boxes=(3, 0)):
    g = torch.Generator().manual_seed(0)
    gen = AnchorGenerator(STRIDES, scales=(4.0,))
    feats = [torch.zeros(2, 1, 64 // s, 64 // s) for s in STRIDES]
    targets = random_targets(num_boxes, 1, 64, g)
    with SyncAudit(where=True) as audit:
        anchors, valid = level_anchors(gen, feats, metas(2, 64), border)
        t = anchor_targets(
            torch.cat(anchors),
            valid,
            targets,
            assigner=MaxIoUAssigner(0.5, 0.3, 0.3),
            sampler=sampler,
            coder=DeltaXYWHCoder(stds=(1.0, 1.0, 1.0, 1.0)),
            num_classes=1,
        )
    return t, torch.stack(valid), audit


@pytest.mark.parametrize(
    "sampler", [RandomSampler(32, 0.5, add_gt_as_proposals=False), PseudoSampler()]
)
def test_anchor_targets_never_wait_on_the_host(sampler):
    t, valid, audit = _targets(sampler)
    assert audit.counts() == {}, audit.where
    assert t.num_pos.tolist()[1] == 0 and t.num_pos.tolist()[0] > 0
    # Anchors crossing the border are never trained on.
    assert not (t.label_weights[~valid] != 0).any()
    assert (t.label_weights > 0).sum(dim=1).tolist() == (t.num_pos + t.num_neg).tolist()
    assert torch.isfinite(t.box_targets).all()


def test_random_sampling_of_anchors_respects_num():
    t, _, _ = _targets(RandomSampler(32, 0.5, add_gt_as_proposals=False), border=-1)
    assert (t.num_pos + t.num_neg).tolist() == [32, 32]
    assert t.num_pos.tolist()[0] <= 16


def test_outside_anchors_take_no_low_quality_match():
    # A gt whose best anchor overall lies outside the image: with border 0 its
    # low-quality match is its best anchor inside.
    t, valid, _ = _targets(PseudoSampler(), border=0.0)
    positive = t.labels == 0
    assert not (positive & ~valid).any()
