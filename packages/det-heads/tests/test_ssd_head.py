import pytest
import torch
from heads_inputs import assert_finite_with_grads, metas, random_targets

from det_heads.anchors import SSDAnchorGenerator
from det_heads.dense import SSDHead

SIZES = (38, 19, 10, 5, 3, 1)
CHANNELS = (4, 6, 4, 4, 4, 4)


def _feats(batch, g):
    return [torch.randn(batch, c, s, s, generator=g) for c, s in zip(CHANNELS, SIZES, strict=True)]


def test_defaults_are_the_2019_config():
    head = SSDHead(80)
    assert [m.out_channels for m in head.cls] == [a * 81 for a in (4, 6, 6, 6, 4, 4)]
    assert head.coder.stds == (0.1, 0.1, 0.2, 0.2) and head.neg_pos_ratio == 3
    assert head.assigner.gt_max_assign_all is False
    assert (head.nms.score_thr, head.nms.iou_thr, head.nms.max_per_img) == (0.02, 0.45, 200)


@pytest.mark.parametrize("num_boxes", [(2, 1), (0, 0)])
def test_loss_finite_with_gradients(num_boxes):
    g = torch.Generator().manual_seed(0)
    head = SSDHead(3, CHANNELS)
    targets = random_targets(num_boxes, 3, 300, g)
    losses = head.loss(_feats(2, g), targets, metas(2, 300))
    assert_finite_with_grads(losses, list(head.parameters()))
    if sum(num_boxes):
        assert losses["loss_cls"].item() > 0


def test_predict_contract():
    g = torch.Generator().manual_seed(1)
    head = SSDHead(3, CHANNELS).eval()
    out = head.predict(_feats(1, g), metas(1, 300, scale=0.5))
    (r,) = out
    k = r["boxes"].shape[0]
    assert 0 < k <= 200 and r["scores"].shape == (k,) and (r["labels"] < 3).all()
    assert (r["boxes"] <= 600).all()


def test_level_count_checked():
    with pytest.raises(ValueError, match="levels"):
        SSDHead(3, (4, 4), anchor_generator=SSDAnchorGenerator(300))
