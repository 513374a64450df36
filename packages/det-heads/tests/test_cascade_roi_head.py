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

from det_heads.roi import BBoxHead, CascadeRoIHead, MaskHead, cascade_bbox_heads
from det_heads.roi_extractor import RoIExtractor

STRIDES = (4, 8, 16, 32)


def _head(masks=False):
    heads = cascade_bbox_heads(3, in_channels=8, roi_size=2)
    for h in heads:  # small FCs keep the test fast
        h.fcs = torch.nn.ModuleList([torch.nn.Linear(32, 16), torch.nn.Linear(16, 16)])
        h.cls, h.reg = torch.nn.Linear(16, 4), torch.nn.Linear(16, 4)
    extra = {}
    if masks:
        extra = dict(
            mask_extractors=[RoIExtractor(STRIDES, output_size=4) for _ in range(3)],
            mask_heads=[MaskHead(3, 8, 8, num_convs=1) for _ in range(3)],
        )
    return CascadeRoIHead([RoIExtractor(STRIDES, output_size=2) for _ in range(3)], heads, **extra)


def test_defaults_are_the_2019_config():
    head = _head()
    assert [a.pos_iou_thr for a in head.assigners] == [0.5, 0.6, 0.7]
    assert [a.neg_iou_thr for a in head.assigners] == [0.5, 0.6, 0.7]
    assert [a.min_pos_iou for a in head.assigners] == [0.5, 0.6, 0.7]
    assert head.stage_weights == (1.0, 0.5, 0.25)
    assert [h.coder.stds for h in head.bbox_heads] == [
        (0.1, 0.1, 0.2, 0.2),
        (0.05, 0.05, 0.1, 0.1),
        (0.033, 0.033, 0.067, 0.067),
    ]
    assert all(h.class_agnostic for h in head.bbox_heads)


@pytest.mark.parametrize("num_boxes", [(2, 1), (0, 0)])
def test_loss_finite_with_gradients(num_boxes):
    g = torch.Generator().manual_seed(0)
    head = _head(masks=True)
    feats = pyramid(2, 8, 64, STRIDES, g)
    targets = with_box_masks(random_targets(num_boxes, 3, 64, g))
    losses = head.loss(feats, proposals_near(targets, g), targets, metas(2, 64))
    assert set(losses) == {f"s{t}_loss_{n}" for t in range(3) for n in ("cls", "box", "mask")}
    assert_finite_with_grads(losses, [*head.parameters(), *feats])


def test_stage_weights_scale_the_losses():
    g = torch.Generator().manual_seed(0)
    head = _head()
    for h in head.bbox_heads:
        torch.nn.init.zeros_(h.cls.weight)
        torch.nn.init.zeros_(h.cls.bias)
    feats = pyramid(1, 8, 64, STRIDES, g)
    targets = random_targets((2,), 3, 64, g)
    losses = head.loss(feats, proposals_near(targets, g), targets, metas(1, 64))
    # zero logits over 4 classes: cross entropy log 4 at every stage, times its weight
    for t, w in enumerate((1.0, 0.5, 0.25)):
        assert losses[f"s{t}_loss_cls"].item() == pytest.approx(
            w * torch.log(torch.tensor(4.0)).item()
        )


def test_predict_averages_stage_logits():
    g = torch.Generator().manual_seed(1)
    head = _head(masks=True).eval()
    for t, h in enumerate(head.bbox_heads):
        torch.nn.init.zeros_(h.cls.weight)
        torch.nn.init.zeros_(h.reg.weight)
        torch.nn.init.zeros_(h.reg.bias)
        h.cls.bias.data = torch.tensor([3.0 * t, 0.0, 0.0, 0.0])
    feats = pyramid(1, 8, 64, STRIDES, g, requires_grad=False)
    proposals = [torch.tensor([[4.0, 4.0, 30.0, 30.0]])]
    (r,) = head.predict(feats, proposals, metas(1, 64))
    # class-0 biases 0, 3, 6 average to 3: softmax e^3 / (e^3 + 3) for class 0
    e3 = torch.exp(torch.tensor(3.0))
    assert r["labels"].tolist() == [0]
    assert r["scores"].item() == pytest.approx((e3 / (e3 + 3)).item())
    assert r["boxes"].tolist() == [[4.0, 4.0, 30.0, 30.0]]
    assert r["masks"].shape == (1, 64, 64)


def test_stage_count_checked():
    with pytest.raises(ValueError, match="lengths differ"):
        CascadeRoIHead([RoIExtractor()], [BBoxHead(3), BBoxHead(3)])
