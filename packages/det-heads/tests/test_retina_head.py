import math

import pytest
import torch
from heads_inputs import assert_finite_with_grads, metas, pyramid, random_targets

from det_heads.dense import RetinaHead

STRIDES = (8, 16, 32, 64, 128)


def test_defaults_are_the_2019_config():
    head = RetinaHead(80)
    assert head.num_anchors == 9 and len(head.cls_tower) == 8
    assert head.box_loss.beta == 0.11 and (head.cls_loss.gamma, head.cls_loss.alpha) == (2, 0.25)
    assert (head.assigner.pos_iou_thr, head.assigner.neg_iou_thr) == (0.5, 0.4)
    assert head.assigner.min_pos_iou == 0.0
    bias = head.cls.bias
    assert torch.sigmoid(bias).allclose(torch.full_like(bias, 0.01))
    assert head.cls.out_channels == 9 * 80


@pytest.mark.parametrize("num_boxes", [(2, 3), (0, 0)])
def test_loss_finite_with_gradients(num_boxes):
    g = torch.Generator().manual_seed(0)
    head = RetinaHead(3, 8, 8, stacked_convs=2)
    feats = pyramid(2, 8, 128, STRIDES, g)
    targets = random_targets(num_boxes, 3, 128, g)
    assert_finite_with_grads(head.loss(feats, targets, metas(2, 128)), [*head.parameters()])


def test_empty_image_loss_is_the_focal_loss_of_all_negatives():
    head = RetinaHead(2, 4, 4, stacked_convs=0, prior_prob=0.01)
    torch.nn.init.zeros_(head.cls.weight)
    feats = [torch.zeros(1, 4, 128 // s, 128 // s) for s in STRIDES]
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}]
    losses = head.loss(feats, empty, metas(1, 128))
    anchors = 9 * sum((128 // s) ** 2 for s in STRIDES)
    p = 0.01
    per_logit = 0.75 * p**2 * -math.log(1 - p)
    # normalised by max(num_pos, 1) = 1
    assert losses["loss_cls"].item() == pytest.approx(anchors * 2 * per_logit, rel=1e-4)
    assert losses["loss_box"].item() == 0.0


def test_predict_contract():
    g = torch.Generator().manual_seed(1)
    head = RetinaHead(3, 8, 8, stacked_convs=1).eval()
    torch.nn.init.normal_(head.cls.bias, std=2.0)
    feats = pyramid(2, 8, 128, STRIDES, g, requires_grad=False)
    out = head.predict(feats, metas(2, 128, scale=0.5))
    assert len(out) == 2
    for r in out:
        k = r["boxes"].shape[0]
        assert 0 < k <= 100 and r["boxes"].shape == (k, 4)
        assert r["scores"].shape == (k,) and r["labels"].dtype == torch.int64
        assert (r["labels"] < 3).all() and (r["scores"] > 0.05).all()
        assert (r["boxes"] <= 256).all() and (r["boxes"] >= 0).all()


def test_bad_labels():
    g = torch.Generator().manual_seed(0)
    head = RetinaHead(3, 8, 8, stacked_convs=1)
    feats = pyramid(1, 8, 128, STRIDES, g)
    t = random_targets((2,), 3, 128, g)
    t[0]["labels"][0] = 3
    with pytest.raises(ValueError, match="labels"):
        head.loss(feats, t, metas(1, 128))


def test_per_image_normalizer_is_the_mean_of_the_images_losses():
    g = torch.Generator().manual_seed(0)
    head = RetinaHead(3, 8, 8, stacked_convs=2, loss_normalizer="image")
    feats = pyramid(2, 8, 128, STRIDES, g)
    targets = random_targets([5, 1], 3, 128, g)
    both = head.loss(feats, targets, metas(2, 128))
    alone = [
        head.loss([f[i : i + 1] for f in feats], targets[i : i + 1], metas(1, 128))
        for i in range(2)
    ]
    for name in ("loss_cls", "loss_box"):
        mean = (alone[0][name] + alone[1][name]) / 2
        torch.testing.assert_close(both[name], mean)
    # The 2019 normaliser divides the batch's sums by its positives instead: not the mean.
    head.loss_normalizer = "batch"
    batch = head.loss(feats, targets, metas(2, 128))
    assert not torch.allclose(batch["loss_box"], both["loss_box"])
    with pytest.raises(ValueError, match="loss_normalizer"):
        RetinaHead(3, 8, 8, loss_normalizer="anchor")
