"""Same weights, same image: our models built from torchvision_config give torchvision's detections.

torchvision's models are drawn at random, with classifier biases spread so that well over 100
detections pass the score threshold, converted by from_torchvision and run beside ours on one
image that neither resizes (torchvision's transform is given the image's own size). A
torchvision detection is matched by one of ours with the same label, box IoU >= 0.99 and score
within 1e-3; masks are compared by IoU.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from det_models.builder import build_model
from det_models.convert import from_torchvision, torchvision_config
from det_ops import bbox_overlaps

detection = pytest.importorskip("torchvision.models.detection")
from torchvision.models.detection.image_list import ImageList  # noqa: E402

MEAN = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
STD = torch.tensor([0.229, 0.224, 0.225])[:, None, None]


def _image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """A smooth random RGB image in [0, 1]: coarse noise upsampled, so features have structure."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, h // 16, w // 16, generator=g)
    return F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)[0]


def _models(name: str, h: int, w: int):
    torch.manual_seed(0)
    tv = getattr(detection, name)(
        weights=None, weights_backbone=None, min_size=h, max_size=w
    ).eval()
    with torch.no_grad():
        if name == "retinanet_resnet50_fpn":
            bias = tv.head.classification_head.cls_logits.bias.view(9, 91)
            # Column 0 is torchvision's unused background index: kept out of the detections.
            bias[:, 0] = -20.0
            bias[:, 1:11] = torch.linspace(-2.5, -1.0, 10)
        else:
            bias = tv.roi_heads.box_predictor.cls_score.bias
            bias[1:11] = torch.linspace(1.5, 3.0, 10)
    ours = build_model(torchvision_config(name)).eval()
    ours.load_state_dict(from_torchvision(tv.state_dict(), name).state_dict, strict=True)
    return tv, ours


def _ours_input(image: torch.Tensor):
    h, w = image.shape[-2:]
    meta = {"img_shape": (h, w, 3), "ori_shape": (h, w, 3), "pad_shape": (h, w, 3)}
    meta["scale_factor"] = (1.0, 1.0, 1.0, 1.0)
    return ((image - MEAN) / STD)[None], [meta]


def _matched(ref: dict, got: dict, top: int = 100, labels_offset: int = 1) -> float:
    """Fraction of ref's top detections with a same-label match in got (IoU, score)."""
    order = ref["scores"].argsort(descending=True)[:top]
    ref_boxes, ref_scores = ref["boxes"][order], ref["scores"][order]
    ref_labels = ref["labels"][order] - labels_offset
    assert ref_boxes.shape[0] >= min(top, 50), "too few reference detections to compare"
    iou = bbox_overlaps(ref_boxes, got["boxes"])
    same = (ref_labels[:, None] == got["labels"][None]) & (iou >= 0.99)
    close = (ref_scores[:, None] - got["scores"][None]).abs() <= 1e-3
    return float((same & close).any(dim=1).float().mean())


@pytest.mark.parametrize(
    "name", ["fasterrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn", "retinanet_resnet50_fpn"]
)
def test_detections_match_torchvision(name):
    h, w = 256, 352
    tv, ours = _models(name, h, w)
    image = _image(h, w)
    with torch.no_grad():
        ref = tv([image])[0]
        got = ours(*_ours_input(image))[0]
    assert _matched(ref, got) >= 0.99
    if name == "maskrcnn_resnet50_fpn":
        order = ref["scores"].argsort(descending=True)[:100]
        ref_masks = ref["masks"][order, 0] > 0.5
        iou = bbox_overlaps(ref["boxes"][order], got["boxes"])
        same = (ref["labels"][order, None] - 1 == got["labels"][None]) & (iou >= 0.99)
        checked = 0
        for i, row in enumerate(same):
            if not row.any():
                continue
            j = int(row.float().argmax())
            a, b = ref_masks[i], got["masks"][j].bool()
            union = (a | b).sum()
            if union == 0:
                continue
            assert float((a & b).sum() / union) >= 0.99, f"mask {i}"
            checked += 1
        assert checked >= 50


@pytest.mark.parametrize("name", ["fasterrcnn_resnet50_fpn"])
def test_rpn_proposals_match_torchvision(name):
    h, w = 256, 352
    tv, ours = _models(name, h, w)
    image = _image(h, w, seed=1)
    with torch.no_grad():
        batch, metas = _ours_input(image)
        tv_feats = tv.backbone(batch)
        ref_boxes = tv.rpn(ImageList(batch, [(h, w)]), tv_feats)[0][0]
        got = ours.rpn.predict(ours.neck(ours.backbone(batch)), metas)[0]
    assert ref_boxes.shape[0] == got["boxes"].shape[0] > 100
    # Proposals are ranked by objectness in both: the same boxes in the same order.
    iou = bbox_overlaps(ref_boxes, got["boxes"], aligned=True)
    assert float((iou >= 0.99).float().mean()) >= 0.99


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["fasterrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn", "retinanet_resnet50_fpn"]
)
def test_detections_match_torchvision_at_800x1216(name):
    # The COCO test size: P6 of an 800-row image has 13 rows, torchvision's stride 800 // 13.
    h, w = 800, 1216
    tv, ours = _models(name, h, w)
    image = _image(h, w, seed=2)
    with torch.no_grad():
        ref = tv([image])[0]
        got = ours(*_ours_input(image))[0]
    assert _matched(ref, got) >= 0.99
