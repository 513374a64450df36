import math
import sys

import pytest
import torch
from detector_batches import make_batch

from det_heads import NMSConfig, inputs
from det_models import zoo

CLASSES = 3
FEW = {"roi__nms": NMSConfig(max_per_img=8)}
PROPOSALS = [
    torch.tensor([[5.0, 5.0, 60.0, 70.0], [30.0, 20.0, 100.0, 95.0], [0.0, 0.0, 50.0, 50.0]])
] * 2

# (zoo key, build overrides, expected loss names, image size, with masks)
CASES = {
    "faster_rcnn": (
        ("faster_rcnn", "r50", "1x", None),
        FEW,
        {"loss_rpn_cls", "loss_rpn_box", "loss_cls", "loss_box"},
    ),
    "mask_rcnn": (
        ("mask_rcnn", "r50", "1x", None),
        FEW,
        {"loss_rpn_cls", "loss_rpn_box", "loss_cls", "loss_box", "loss_mask"},
    ),
    "fast_rcnn_mask": (
        ("fast_rcnn", "r50", "1x", "mask"),
        FEW,
        {"loss_cls", "loss_box", "loss_mask"},
    ),
    "retinanet": (
        ("retinanet", "r50", "1x", None),
        {"dense__nms": NMSConfig(score_thr=0.0, max_per_img=8)},
        {"loss_cls", "loss_box"},
    ),
    "cascade_mask_rcnn": (
        ("cascade_mask_rcnn", "r50", "1x", None),
        FEW,
        {"loss_rpn_cls", "loss_rpn_box"}
        | {f"s{t}_loss_{n}" for t in range(3) for n in ("cls", "box", "mask")},
    ),
    "ssd300": (
        ("ssd300", "vgg16", "120e", None),
        {"dense__nms": NMSConfig(score_thr=0.0, max_per_img=8)},
        {"loss_cls", "loss_box"},
    ),
}
SLOW_CASES = {
    "cascade_rcnn": (("cascade_rcnn", "r50", "1x", None), FEW, None),
    "mask_rcnn_gn": (("mask_rcnn", "r50", "2x", "gn"), FEW, None),
    "faster_mdconv": (("faster_rcnn", "r50", "1x", "mdconv-c3-c5"), FEW, None),
    "faster_dconv": (("faster_rcnn", "r50", "1x", "dconv-c3-c5"), FEW, None),
    "faster_dpool": (("faster_rcnn", "r50", "1x", "dpool"), FEW, None),
    "faster_mdpool": (("faster_rcnn", "r50", "1x", "mdpool"), FEW, None),
    "ssd512_voc": (("ssd512", "vgg16", "240e", "voc"), {}, None),
}


def _run(key, overrides, loss_names):
    torch.manual_seed(0)
    model = zoo.build(*key, num_classes=CLASSES, **overrides)
    ssd_size = {"ssd300": 300, "ssd512": 512}.get(key[0])
    size = (ssd_size, ssd_size) if ssd_size else (128, 160)
    with_mask = "mask" in key[0] or key[3] == "mask"
    images, metas, targets = make_batch(*size, num_classes=CLASSES, masks=with_mask)
    extra = {"proposals": PROPOSALS} if key[0] == "fast_rcnn" else {}

    model.train()
    losses = model(images, metas, targets, **extra)
    if loss_names is not None:
        assert set(losses) == loss_names
    for name, value in losses.items():
        assert value.dim() == 0 and math.isfinite(float(value.detach())), name
    sum(losses.values()).backward()
    # Parameters of RoI levels no RoI reached (deformable pooling's per-level MLPs) get none.
    grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
    assert all(torch.isfinite(g).all() for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads)

    model.eval()
    with torch.no_grad():
        results = model(images, metas, **extra)
    assert len(results) == 2
    for result, meta in zip(results, metas, strict=True):
        n = result["boxes"].shape[0]
        assert result["boxes"].shape == (n, 4) and result["scores"].shape == (n,)
        assert result["labels"].dtype == torch.int64 and result["labels"].shape == (n,)
        assert n <= 8 or key[0] == "ssd512"
        if n:
            assert int(result["labels"].max()) < CLASSES
            h, w = meta["ori_shape"][:2]
            boxes = result["boxes"]
            assert float(boxes.min()) >= 0
            assert float(boxes[:, 2].max()) <= w and float(boxes[:, 3].max()) <= h
        if with_mask:
            h, w = meta["ori_shape"][:2]
            assert result["masks"].dtype == torch.uint8
            assert result["masks"].shape == (n, h, w)
        else:
            assert "masks" not in result


@pytest.mark.parametrize("case", sorted(CASES))
def test_train_and_eval(case):
    _run(*CASES[case])


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(SLOW_CASES))
def test_train_and_eval_slow(case):
    _run(*SLOW_CASES[case])


def test_rpn_proposals_are_rescaled_to_the_original_image():
    torch.manual_seed(0)
    model = zoo.build("rpn", "r50", "1x").eval()
    images, metas, targets = make_batch()
    with torch.no_grad():
        proposals = model(images, metas)
        feats = model.neck(model.backbone(images))
        in_input_pixels = model.rpn.predict(feats, metas)
    assert [p["boxes"].shape[0] for p in proposals] == [
        p["boxes"].shape[0] for p in in_input_pixels
    ]
    assert set(proposals[0]) == {"boxes", "scores"}
    # scale_factor 0.5: original pixels are twice the input pixels.
    torch.testing.assert_close(proposals[1]["boxes"], in_input_pixels[1]["boxes"] * 2)
    model.train()
    losses = model(images, metas, targets)
    assert set(losses) == {"loss_rpn_cls", "loss_rpn_box"}


def test_train_mode_needs_targets():
    model = zoo.build("faster_rcnn", "r50", "1x", num_classes=CLASSES)
    images, metas, _ = make_batch()
    with pytest.raises(ValueError, match="targets are required"):
        model(images, metas)
    with pytest.raises(ValueError, match="expected 2 metas"):
        model.eval()(images, metas[:1])
    with pytest.raises(ValueError, match=r"Tensor\[B, 3, H, W\]"):
        model(images[0], metas)


def test_fast_rcnn_takes_proposals_from_targets():
    torch.manual_seed(0)
    model = zoo.build("fast_rcnn", "r50", "1x", num_classes=CLASSES, **FEW)
    images, metas, targets = make_batch(128, 160, num_classes=CLASSES)
    with_props = [{**t, "proposals": p} for t, p in zip(targets, PROPOSALS, strict=True)]
    model.train()
    torch.manual_seed(1)
    explicit = model(images, metas, targets, proposals=PROPOSALS)
    torch.manual_seed(1)
    implicit = model(images, metas, with_props)
    assert explicit.keys() == implicit.keys()
    for name in explicit:
        torch.testing.assert_close(implicit[name], explicit[name])
    with pytest.raises(ValueError, match="no proposals"):
        model(images, metas, targets)


@pytest.fixture
def input_checks(monkeypatch):
    """Records (check, op) of every call of det_heads.inputs' batch checks, wherever imported."""
    calls = []
    for name in ("check_targets", "check_metas", "check_proposals"):
        original = getattr(inputs, name)

        def recorded(op, *args, _name=name, _original=original, **kwargs):
            calls.append((_name, op))
            return _original(op, *args, **kwargs)

        for module in list(sys.modules.values()):
            if module.__name__.startswith("det_") and getattr(module, name, None) is original:
                monkeypatch.setattr(module, name, recorded)
    return calls


@pytest.mark.parametrize("family", ["faster_rcnn", "retinanet"])
def test_the_batch_is_checked_once_at_the_detector(family, input_checks):
    torch.manual_seed(0)
    model = zoo.build(family, "r50", "1x", num_classes=CLASSES)
    images, metas, targets = make_batch(num_classes=CLASSES)
    name = type(model).__name__
    model.train()(images, metas, targets)
    assert input_checks == [("check_metas", name), ("check_targets", name)]
    input_checks.clear()
    with torch.no_grad():
        model.eval()(images, metas)
    assert input_checks == [("check_metas", name)]


def test_bad_targets_are_named_by_the_detector():
    model = zoo.build("faster_rcnn", "r50", "1x", num_classes=CLASSES).train()
    images, metas, targets = make_batch(num_classes=CLASSES)
    targets[1]["boxes"][0] = torch.tensor([50.0, 10.0, 20.0, 40.0])
    with pytest.raises(ValueError, match=r"FasterRCNN: targets\[1\]\['boxes'\]\[0\]"):
        model(images, metas, targets)
    targets = make_batch(num_classes=CLASSES)[2]
    targets[0]["labels"][0] = CLASSES
    with pytest.raises(ValueError, match=r"FasterRCNN: targets\[0\]\['labels'\] must be in 0..2"):
        model(images, metas, targets)
    fast = zoo.build("fast_rcnn", "r50", "1x", num_classes=CLASSES).train()
    flipped = [PROPOSALS[0], torch.tensor([[30.0, 20.0, 10.0, 95.0]])]
    with pytest.raises(ValueError, match=r"FastRCNN: proposals\[1\]\[0\]"):
        fast(images, metas, make_batch(num_classes=CLASSES)[2], proposals=flipped)
