import math

import pytest
import torch
from heads_inputs import assert_finite_with_grads, metas, pyramid, random_targets

from det_heads.anchors import AnchorGenerator
from det_heads.dense import ProposalConfig, RPNHead
from det_heads.samplers import RandomSampler

STRIDES = (4, 8, 16, 32, 64)


def _head(**kw):
    return RPNHead(8, 8, **kw)


def test_defaults_are_the_2019_config():
    head = RPNHead()
    assert head.anchor_generator.strides == STRIDES and head.num_anchors == 3
    assert head.coder.stds == (1.0, 1.0, 1.0, 1.0)
    assert (head.assigner.pos_iou_thr, head.assigner.neg_iou_thr, head.assigner.min_pos_iou) == (
        0.7,
        0.3,
        0.3,
    )
    assert (head.sampler.num, head.sampler.pos_fraction, head.sampler.add_gt_as_proposals) == (
        256,
        0.5,
        False,
    )
    assert head.train_proposals == ProposalConfig(2000, 2000, 2000, 0.7, 0.0)
    assert head.test_proposals == ProposalConfig(1000, 1000, 1000, 0.7, 0.0)


@pytest.mark.parametrize("num_boxes", [(3, 1), (0, 0), (2, 0)])
def test_loss_finite_with_gradients(num_boxes):
    g = torch.Generator().manual_seed(0)
    head = _head()
    feats = pyramid(2, 8, 64, STRIDES, g)
    targets = random_targets(num_boxes, 1, 64, g)
    losses = assert_finite_with_grads(
        head.loss(feats, targets, metas(2, 64)), [*head.parameters(), *feats]
    )
    assert losses > 0
    if sum(num_boxes) == 0:
        assert head.loss(feats, targets, metas(2, 64))["loss_rpn_box"].item() == 0.0


def test_objectness_target_is_one_for_a_perfect_anchor():
    # One level, one square 16 px anchor per 8 px cell; the gt coincides with anchor (1, 1).
    gen = AnchorGenerator(strides=(8,), scales=(2,), ratios=(1,), center_offset=0.5)
    head = RPNHead(4, 4, anchor_generator=gen)
    torch.nn.init.zeros_(head.cls.weight)
    torch.nn.init.zeros_(head.reg.weight)
    feats = [torch.zeros(1, 4, 4, 4)]
    target = [{"boxes": torch.tensor([[4.0, 4.0, 20.0, 20.0]]), "labels": torch.tensor([0])}]
    losses = head.loss(feats, target, metas(1, 32))
    # logits 0 everywhere: BCE = log 2 for each sampled anchor, box loss 0 (perfect match)
    assert losses["loss_rpn_cls"].item() == pytest.approx(torch.log(torch.tensor(2.0)).item())
    assert losses["loss_rpn_box"].item() == 0.0
    # A positive weighted 3: (3 + N) log 2 over the 1 + N sampled anchors, N negatives.
    weighted = RPNHead(4, 4, anchor_generator=gen, pos_weight=3.0)
    weighted.load_state_dict(head.state_dict())
    # Of the 2 x 2 anchors inside the 32 x 32 image, two overlap the gt by IoU 1/3 (ignored)
    # and one by 1/7 (negative): one positive and one negative are sampled.
    num_sampled = 2
    expected = (3 + num_sampled - 1) / num_sampled * math.log(2)
    assert weighted.loss(feats, target, metas(1, 32))["loss_rpn_cls"].item() == pytest.approx(
        expected
    )


def test_predict_contract():
    g = torch.Generator().manual_seed(1)
    head = _head(test_proposals=ProposalConfig(nms_pre=50, nms_post=30, max_num=40))
    head.eval()
    feats = pyramid(2, 8, 64, STRIDES, g, requires_grad=False)
    out = head.predict(feats, metas(2, 64, scale=2.0))
    assert len(out) == 2
    for r in out:
        assert set(r) == {"boxes", "scores"}
        assert r["boxes"].shape[1] == 4 and 0 < r["boxes"].shape[0] <= 40
        assert r["scores"].tolist() == sorted(r["scores"].tolist(), reverse=True)
        assert (r["boxes"] >= 0).all() and (r["boxes"] <= 64).all()
    rescaled = head.predict(feats, metas(2, 64, scale=2.0), rescale=True)
    torch.testing.assert_close(rescaled[0]["boxes"], out[0]["boxes"] / 2)


def test_sampler_adding_gt_is_refused():
    g = torch.Generator().manual_seed(0)
    head = _head(sampler=RandomSampler(256, 0.5, add_gt_as_proposals=True))
    feats = pyramid(1, 8, 64, STRIDES, g)
    with pytest.raises(ValueError, match="add_gt_as_proposals"):
        head.loss(feats, random_targets((1,), 1, 64, g), metas(1, 64))


def test_bad_inputs():
    g = torch.Generator().manual_seed(0)
    head = _head()
    feats = pyramid(1, 8, 64, STRIDES, g)
    with pytest.raises(ValueError, match="feature levels"):
        head.loss(feats[:3], random_targets((1,), 1, 64, g), metas(1, 64))
    bad = [{"boxes": torch.zeros(2, 4), "labels": torch.zeros(3, dtype=torch.long)}]
    with pytest.raises(ValueError, match="same length"):
        head.loss(feats, bad, metas(1, 64))
    flipped = [{"boxes": torch.tensor([[10.0, 0.0, 5.0, 5.0]]), "labels": torch.zeros(1).long()}]
    with pytest.raises(ValueError, match="x2 < x1"):
        head.loss(feats, flipped, metas(1, 64))
