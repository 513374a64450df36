"""One training step of each family, pinned: the losses on fixed weights, a fixed picture and
four ground truths, in both box conventions.

The pinned values are our step's losses at the commit that was compared with mmdetection
v0.6.0's own `forward_train` on the same weights and inputs (every loss within 1e-3; the mask
loss 9e-4, as v0.6 makes mask targets by cropping the gt mask with the integer box and resizing
it with OpenCV), except the mask losses of the 2019 convention, re-derived when its mask
targets became v0.6's crop-and-resize (Conventions.mask_targets "mmdet": the target pixels of
OpenCV's resize but for 5 in 10,000, where OpenCV's fixed-point weights round a tie).

They guard the targets and normalisers of the step: a change to an assigner, a sampler, a
coder, a loss or its normaliser moves them. Nothing is random: the weights come from a seeded
generator, every sampler takes all candidates (as in that comparison), and the step runs in
float64 so that the values do not depend on the CPU's vector width.

When a change is meant to move them, re-derive the values with
``python packages/det-models/tests/test_training_step.py`` and say why in the commit.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence

import pytest
import torch

from det_heads import RandomSampler
from det_models import zoo
from det_models.builder import build_model
from det_models.config import apply_overrides

CLASSES = 3
# Small widths: the step's arithmetic is that of the zoo rows, at a fraction of the cost.
SMALL_FPN = {
    "backbone__arch": "r18",
    "backbone__base_channels": 16,
    "neck__out_channels": 32,
}
SMALL_RPN = {"rpn__feat_channels": 32}
SMALL_ROI = {"roi__fc_channels": 64, "roi__conv_channels": 32}
FAMILIES = {
    "rpn": (("rpn", "r50", "1x", None), {**SMALL_FPN, **SMALL_RPN}),
    "fast_rcnn": (("fast_rcnn", "r50", "1x", None), {**SMALL_FPN, **SMALL_ROI}),
    "faster_rcnn": (("faster_rcnn", "r50", "1x", None), {**SMALL_FPN, **SMALL_RPN, **SMALL_ROI}),
    "mask_rcnn": (("mask_rcnn", "r50", "1x", None), {**SMALL_FPN, **SMALL_RPN, **SMALL_ROI}),
    "cascade_mask_rcnn": (
        ("cascade_mask_rcnn", "r50", "1x", None),
        {**SMALL_FPN, **SMALL_RPN, **SMALL_ROI},
    ),
    "retinanet": (
        ("retinanet", "r50", "1x", None),
        {**SMALL_FPN, "dense__feat_channels": 32, "dense__stacked_convs": 2},
    ),
    "ssd300": (("ssd300", "vgg16", "120e", None), {"backbone__base_channels": 8}),
}
CONVENTIONS = ("det", "mmdet_v0.6")
HEIGHT, WIDTH = 192, 256
# Four ground truths (x1, y1, x2, y2 in input pixels): large, medium, small and one at the
# border, with labels 0..2.
GT_BOXES = [
    [12.0, 20.0, 150.0, 170.0],
    [140.0, 40.0, 230.0, 120.0],
    [60.0, 100.0, 92.0, 131.0],
    [200.0, 130.0, 255.0, 191.0],
]
GT_LABELS = [0, 2, 1, 2]
PROPOSALS = [
    [10.0, 18.0, 140.0, 160.0],
    [150.0, 50.0, 225.0, 118.0],
    [0.0, 0.0, 100.0, 90.0],
    [55.0, 95.0, 100.0, 140.0],
    [190.0, 120.0, 250.0, 185.0],
    [30.0, 30.0, 60.0, 60.0],
]


def _picture() -> torch.Tensor:
    """A fixed, smooth picture with edges at the objects (Tensor[1, 3, H, W], float64)."""
    y = torch.arange(HEIGHT, dtype=torch.float64)[:, None]
    x = torch.arange(WIDTH, dtype=torch.float64)[None, :]
    channels = [torch.sin(x / 17 + c) * torch.cos(y / 23 - c) for c in range(3)]
    image = torch.stack(channels)
    for (x1, y1, x2, y2), label in zip(GT_BOXES, GT_LABELS, strict=True):
        image[label, int(y1) : int(y2), int(x1) : int(x2)] += 1.5
    return image[None]


def _batch(with_masks: bool, ssd: bool):
    height, width = (300, 300) if ssd else (HEIGHT, WIDTH)
    image = _picture()
    if ssd:
        image = torch.nn.functional.interpolate(image, size=(300, 300), mode="bilinear")
    scale = (height / HEIGHT, width / WIDTH)
    boxes = torch.tensor(GT_BOXES, dtype=torch.float64)
    boxes[:, 0::2] *= scale[1]
    boxes[:, 1::2] *= scale[0]
    meta = {
        "image_id": 0,
        "img_shape": (height, width, 3),
        "pad_shape": (height, width, 3),
        "ori_shape": (HEIGHT, WIDTH, 3),
        "scale_factor": scale[1] if ssd else 1.0,
        "flip": False,
    }
    target = {"boxes": boxes, "labels": torch.tensor(GT_LABELS)}
    if with_masks:
        masks = torch.zeros(len(GT_BOXES), height, width, dtype=torch.uint8)
        for j, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
            # An ellipse inside each box: the mask target is not the box itself.
            yy = torch.arange(height, dtype=torch.float64)[:, None]
            xx = torch.arange(width, dtype=torch.float64)[None, :]
            cx, cy, rx, ry = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
            masks[j] = (((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1).to(torch.uint8)
        target["masks"] = masks
    return image, [meta], [target]


def _take_every_candidate(model: torch.nn.Module) -> None:
    """Every random sampler of the model keeps all of its candidates."""
    for module in model.modules():
        for name in ("sampler", "samplers"):
            current = getattr(module, name, None)
            if isinstance(current, RandomSampler):
                setattr(module, name, _all_of(current))
            elif isinstance(current, list) and all(isinstance(s, RandomSampler) for s in current):
                setattr(module, name, [_all_of(s) for s in current])


def _all_of(sampler: RandomSampler) -> RandomSampler:
    return RandomSampler(10**9, 1.0, add_gt_as_proposals=sampler.add_gt_as_proposals)


def step_losses(family: str, conventions: str, sets: Sequence[str] = ()) -> dict[str, float]:
    """The losses of one training step of a small model of the family, as floats.

    Args:
        family: a key of FAMILIES.
        conventions: "det" or "mmdet_v0.6".
        sets: ``--set`` items applied to the zoo row after the small widths.
    """
    key, overrides = FAMILIES[family]
    small = [f"model.{path.replace('__', '.')}={value}" for path, value in overrides.items()]
    if family != "rpn":
        small.append(f"model.num_classes={CLASSES}")
    config = apply_overrides(
        zoo.get(*key), [*small, f"model.conventions={conventions}", *sets]
    ).model
    torch.manual_seed(0)
    model = build_model(config)
    _take_every_candidate(model)
    model = model.double().train()
    images, metas, targets = _batch("mask" in family, family.startswith("ssd"))
    extra = {}
    if family == "fast_rcnn":
        extra["proposals"] = [torch.tensor(PROPOSALS, dtype=torch.float64)]
    losses = model(images, metas, targets, **extra)
    return {name: float(value.detach()) for name, value in sorted(losses.items())}


# Losses at the reference commit (see the module docstring), by family and convention.
PINNED: dict[tuple[str, str], dict[str, float]] = {
    ("cascade_mask_rcnn", "det"): {
        "loss_rpn_box": 0.0009727689450446761,
        "loss_rpn_cls": 0.6774396258027587,
        "s0_loss_box": 0.05256033892962074,
        "s0_loss_cls": 1.0388185559964929,
        "s0_loss_mask": 3.022362214211732,
        "s1_loss_box": 0.021647166196425673,
        "s1_loss_cls": 0.4584044945073296,
        "s1_loss_mask": 1.9577600811204259,
        "s2_loss_box": 0.000928987123009527,
        "s2_loss_cls": 0.45716468876279814,
        "s2_loss_mask": 0.7278496303085041,
    },
    ("cascade_mask_rcnn", "mmdet_v0.6"): {
        "loss_rpn_box": 0.0008289550450939796,
        "loss_rpn_cls": 0.6770229420876401,
        "s0_loss_box": 0.05282348963020943,
        "s0_loss_cls": 1.0371052844267243,
        "s0_loss_mask": 2.804792139690122,
        "s1_loss_box": 0.01785062933587482,
        "s1_loss_cls": 0.46132725341107295,
        "s1_loss_mask": 1.9282100239870439,
        "s2_loss_box": 0.0013861574561572902,
        "s2_loss_cls": 0.45750766614207267,
        "s2_loss_mask": 0.6963932998454672,
    },
    ("fast_rcnn", "det"): {"loss_box": 0.2942042348315417, "loss_cls": 1.2657328946448643},
    ("fast_rcnn", "mmdet_v0.6"): {"loss_box": 0.28684281552889385, "loss_cls": 1.2629005787920768},
    ("faster_rcnn", "det"): {
        "loss_box": 0.07959901742596044,
        "loss_cls": 1.204954814864304,
        "loss_rpn_box": 0.0010194349895664174,
        "loss_rpn_cls": 0.7070512233416352,
    },
    ("faster_rcnn", "mmdet_v0.6"): {
        "loss_box": 0.09264472015680365,
        "loss_cls": 1.2079756878695003,
        "loss_rpn_box": 0.0008892094568999366,
        "loss_rpn_cls": 0.7069044619780562,
    },
    ("mask_rcnn", "det"): {
        "loss_box": 0.0779301736125062,
        "loss_cls": 1.5515444574840664,
        "loss_mask": 3.031768826121207,
        "loss_rpn_box": 0.001273961721942542,
        "loss_rpn_cls": 0.6942052752839227,
    },
    ("mask_rcnn", "mmdet_v0.6"): {
        "loss_box": 0.07816032684279352,
        "loss_cls": 1.556035176623099,
        "loss_mask": 2.927978111532802,
        "loss_rpn_box": 0.0011158142413422232,
        "loss_rpn_cls": 0.694153510656679,
    },
    ("retinanet", "det"): {"loss_box": 0.4880177979467835, "loss_cls": 1.1296619801388645},
    ("retinanet", "mmdet_v0.6"): {"loss_box": 0.5206255195295069, "loss_cls": 1.1292629876540106},
    ("rpn", "det"): {"loss_rpn_box": 0.0011060141458954832, "loss_rpn_cls": 0.7314256348357213},
    ("rpn", "mmdet_v0.6"): {
        "loss_rpn_box": 0.0009548634530210754,
        "loss_rpn_cls": 0.731571063728732,
    },
    ("ssd300", "det"): {"loss_box": 4.243297908565609, "loss_cls": 40.09998549930391},
    ("ssd300", "mmdet_v0.6"): {"loss_box": 2.740138220784416, "loss_cls": 38.81372290358586},
}


@pytest.mark.parametrize("conventions", CONVENTIONS)
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_one_training_step_gives_the_pinned_losses(family, conventions):
    losses = step_losses(family, conventions)
    expected = PINNED[(family, conventions)]
    assert sorted(losses) == sorted(expected)
    for name, value in expected.items():
        assert math.isfinite(value) and value > 0, name
        assert losses[name] == pytest.approx(value, rel=1e-7, abs=1e-10), name


def test_the_two_conventions_give_different_steps():
    """The pins could not pass for both conventions if the convention were ignored."""
    for family in FAMILIES:
        assert PINNED[(family, "det")] != PINNED[(family, "mmdet_v0.6")], family


if __name__ == "__main__":
    # Prints the PINNED table for the current code.
    print("PINNED = {")
    for fam in sorted(FAMILIES):
        for conv in CONVENTIONS:
            values = step_losses(fam, conv)
            body = ", ".join(f"{k!r}: {v!r}" for k, v in values.items())
            print(f"    ({fam!r}, {conv!r}): {{{body}}},")
    print("}")
    sys.exit(0)
