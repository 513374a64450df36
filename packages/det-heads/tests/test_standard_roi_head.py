import pytest
import torch
from heads_inputs import (
    assert_finite_with_grads,
    metas,
    proposals_near,
    pyramid,
    random_targets,
    with_box_masks,
)

from det_heads.roi import BBoxHead, MaskHead, StandardRoIHead
from det_heads.roi_extractor import RoIExtractor
from det_heads.samplers import OHEMSampler

STRIDES = (4, 8, 16, 32)


def _head(masks=False, **kw):
    parts = {}
    if masks:
        parts = dict(
            mask_extractor=RoIExtractor(STRIDES, output_size=4),
            mask_head=MaskHead(3, 8, 8, num_convs=1),
        )
    return StandardRoIHead(
        RoIExtractor(STRIDES, output_size=2), BBoxHead(3, 8, 2, 16), **parts, **kw
    )


def test_defaults_are_the_2019_config():
    head = _head()
    assert (head.assigner.pos_iou_thr, head.assigner.neg_iou_thr, head.assigner.min_pos_iou) == (
        0.5,
        0.5,
        0.5,
    )
    s = head.sampler
    assert (s.num, s.pos_fraction, s.add_gt_as_proposals) == (512, 0.25, True)
    assert (head.nms.score_thr, head.nms.iou_thr, head.nms.max_per_img) == (0.05, 0.5, 100)


@pytest.mark.parametrize("num_boxes", [(2, 3), (0, 0), (0, 2)])
def test_loss_finite_with_gradients(num_boxes):
    g = torch.Generator().manual_seed(0)
    head = _head(masks=True)
    feats = pyramid(2, 8, 64, STRIDES, g)
    targets = with_box_masks(random_targets(num_boxes, 3, 64, g))
    losses = head.loss(feats, proposals_near(targets, g), targets, metas(2, 64))
    assert set(losses) == {"loss_cls", "loss_box", "loss_mask"}
    assert_finite_with_grads(losses, [*head.parameters(), *feats])


def test_empty_proposals_and_targets_still_train():
    g = torch.Generator().manual_seed(0)
    head = _head()
    feats = pyramid(1, 8, 64, STRIDES, g)
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}]
    losses = head.loss(feats, [torch.zeros(0, 4)], empty, metas(1, 64))
    assert_finite_with_grads(losses, [*feats])


def test_ohem_sampler():
    g = torch.Generator().manual_seed(0)
    head = _head(sampler=OHEMSampler(8, 0.25))
    feats = pyramid(1, 8, 64, STRIDES, g)
    targets = random_targets((2,), 3, 64, g)
    assert_finite_with_grads(
        head.loss(feats, proposals_near(targets, g), targets, metas(1, 64)), [*feats]
    )


def test_predict_contractwith_box_masks():
    g = torch.Generator().manual_seed(1)
    head = _head(masks=True).eval()
    torch.nn.init.normal_(head.bbox_head.cls.weight, std=1.0)
    feats = pyramid(2, 8, 64, STRIDES, g, requires_grad=False)
    targets = random_targets((3, 2), 3, 64, g)
    out = head.predict(feats, proposals_near(targets, g), metas(2, 64, scale=2.0))
    assert len(out) == 2
    for r in out:
        n = r["boxes"].shape[0]
        assert 0 < n <= 100
        assert r["scores"].shape == (n,) and r["labels"].dtype == torch.int64
        assert r["masks"].shape == (n, 32, 32) and r["masks"].dtype == torch.uint8
        assert (r["boxes"] <= 32).all()


def test_mismatched_inputs():
    g = torch.Generator().manual_seed(0)
    head = _head()
    feats = pyramid(1, 8, 64, STRIDES, g)
    targets = random_targets((1,), 3, 64, g)
    with pytest.raises(ValueError, match="proposal sets"):
        head.loss(feats, [], targets, metas(1, 64))
    with pytest.raises(ValueError, match="masks"):
        _head(masks=True).loss(feats, proposals_near(targets, g), targets, metas(1, 64))
