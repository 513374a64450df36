"""Same weights, images and ground truths: one training step of our models built from
torchvision_config gives torchvision's losses.

Both sides take every sampling candidate (samplers as large as the candidates, positive
fraction 1), so that nothing is random, and torchvision's BatchNorm layers keep their running
statistics (its detection models freeze them when trained from ImageNet weights; ours are
FrozenBN).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from test_torchvision_parity import _image, _ours_input

from det_models.builder import build_model
from det_models.config import SamplerConfig
from det_models.convert import from_torchvision, torchvision_config

detection = pytest.importorskip("torchvision.models.detection")

HEIGHT, WIDTH = 256, 352
# torchvision's loss names -> ours.
LOSS_NAMES = {
    "loss_objectness": "loss_rpn_cls",
    "loss_rpn_box_reg": "loss_rpn_box",
    "loss_classifier": "loss_cls",
    "loss_box_reg": "loss_box",
    "loss_mask": "loss_mask",
    "classification": "loss_cls",
    "bbox_regression": "loss_box",
}
EVERY_CANDIDATE = 10**9


def _targets():
    boxes = torch.tensor(
        [
            [20.0, 30.0, 180.0, 200.0],
            [150.0, 60.0, 330.0, 150.0],
            [60.0, 140.0, 95.0, 180.0],
            [250.0, 170.0, 340.0, 250.0],
        ]
    )
    labels = torch.tensor([1, 18, 3, 62])  # COCO category ids, torchvision's labels
    yy = torch.arange(HEIGHT, dtype=torch.float32)[:, None]
    xx = torch.arange(WIDTH, dtype=torch.float32)[None, :]
    masks = []
    for x1, y1, x2, y2 in boxes.tolist():
        cx, cy, rx, ry = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
        masks.append((((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1).to(torch.uint8))
    return boxes, labels, torch.stack(masks)


def _take_every_candidate(config):
    if config.rpn is not None:
        sampler = SamplerConfig(EVERY_CANDIDATE, 1.0)
        config = dataclasses.replace(config, rpn=dataclasses.replace(config.rpn, sampler=sampler))
    if config.roi is not None:
        sampler = SamplerConfig(EVERY_CANDIDATE, 1.0, add_gt_as_proposals=True)
        stages = tuple(dataclasses.replace(s, sampler=sampler) for s in config.roi.stages)
        config = dataclasses.replace(config, roi=dataclasses.replace(config.roi, stages=stages))
    return config


def _losses(name: str):
    torch.manual_seed(0)
    tv = getattr(detection, name)(
        weights=None, weights_backbone=None, min_size=HEIGHT, max_size=WIDTH
    )
    if name == "retinanet_resnet50_fpn":
        # torchvision's sigmoid column 0 (background, never a class) adds negatives' focal
        # terms to its loss; the conversion drops the column, so it is silenced here.
        with torch.no_grad():
            tv.head.classification_head.cls_logits.bias.view(9, 91)[:, 0] = -20.0
    for sampler in (getattr(tv, "rpn", None), getattr(tv, "roi_heads", None)):
        if sampler is not None:
            sampler.fg_bg_sampler.batch_size_per_image = EVERY_CANDIDATE
            sampler.fg_bg_sampler.positive_fraction = 1.0
    ours = build_model(_take_every_candidate(torchvision_config(name)))
    ours.load_state_dict(from_torchvision(tv.state_dict(), name).state_dict, strict=True)
    tv.train()
    for module in tv.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.eval()
    ours.train()

    # Two images, the second with two of the four objects: per-image sampling, proposals and
    # normalisers all take part.
    pictures = [_image(HEIGHT, WIDTH, seed=0), _image(HEIGHT, WIDTH, seed=1)]
    boxes, labels, masks = _targets()
    targets = []
    for keep in (slice(None), slice(1, 3)):
        target = {"boxes": boxes[keep], "labels": labels[keep]}
        if name.startswith("maskrcnn"):
            target["masks"] = masks[keep]
        targets.append(target)
    expected = tv(pictures, targets)
    inputs = [_ours_input(picture) for picture in pictures]
    images = torch.cat([images for images, _ in inputs])
    metas = [meta for _, (meta,) in inputs]
    got = ours(images, metas, [{**t, "labels": t["labels"] - 1} for t in targets])
    return {LOSS_NAMES[k]: float(v.detach()) for k, v in expected.items()}, {
        k: float(v.detach()) for k, v in got.items()
    }


@pytest.mark.parametrize(
    "name", ["fasterrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn", "retinanet_resnet50_fpn"]
)
def test_one_training_step_gives_torchvisions_losses(name):
    expected, got = _losses(name)
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
