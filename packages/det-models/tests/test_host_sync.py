"""A training step of Faster and Mask R-CNN (forward and backward) waits on the host only
where it is allowed to.

The step runs on the CPU under det_heads.sync_audit.SyncAudit, which records the operators
that make the host wait for the device (their sizes or values read on the host), the same
on every device. Every one left is listed below with its reason; a new one fails the test.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
import torch
from detector_batches import make_batch

from det_heads.sync_audit import SyncAudit
from det_models import zoo
from det_models.builder import build_model
from det_models.config import apply_overrides

SMALL = [
    "model.backbone.arch=r18",
    "model.backbone.base_channels=16",
    "model.neck.out_channels=32",
    "model.rpn.feat_channels=32",
    "model.roi.fc_channels=64",
    "model.roi.conv_channels=32",
    "model.num_classes=3",
]

# (event, file, function) -> (calls per step, why it is still there).
ALLOWED = {
    ("aten::_local_scalar_dense", "inputs.py", "check_targets"): (
        1,
        "the detector's check of the batch's targets (box corners, label range), read "
        "once per batch on the CPU only, where the tensors are on the host already; on an "
        "accelerator the same check is an asynchronous device assertion (no wait)",
    ),
}


def _step_events(family: str) -> Counter:
    config = apply_overrides(zoo.get(family, "r50", "1x"), SMALL).model
    torch.manual_seed(0)
    model = build_model(config).train()
    images, metas, targets = make_batch(masks=family == "mask_rcnn")
    with SyncAudit(where=True) as audit:
        losses = model(images, metas, targets)
        sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())
    sites = []
    for event, where in zip(audit.events, audit.where, strict=True):
        location, function = where.rsplit(" ", 1)
        sites.append((event, os.path.basename(location.rsplit(":", 1)[0]), function))
    return Counter(sites)


@pytest.mark.parametrize("family", ["faster_rcnn", "mask_rcnn"])
def test_training_step_waits_on_the_host_only_where_allowed(family):
    expected = {site: calls for site, (calls, _) in ALLOWED.items()}
    assert dict(_step_events(family)) == expected


@pytest.mark.gpu
@pytest.mark.parametrize("family", ["faster_rcnn", "mask_rcnn"])
def test_training_step_on_cuda_never_waits_for_the_device(family):
    """Forward, backward and an SGD step on CUDA with torch's sync debug mode raising on any
    synchronisation (a warm-up step first: caches of anchors and coder constants fill)."""
    config = apply_overrides(zoo.get(family, "r50", "1x"), SMALL).model
    torch.manual_seed(0)
    device = torch.device("cuda")
    model = build_model(config).train().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, foreach=True)
    images, metas, targets = make_batch(masks=family == "mask_rcnn")
    images = images.to(device)
    targets = [{k: v.to(device) for k, v in t.items()} for t in targets]

    def step() -> dict:
        losses = model(images, metas, targets)
        optimizer.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        optimizer.step()
        return losses

    step()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        losses = step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(torch.isfinite(v).item() for v in losses.values())


@pytest.mark.parametrize("family", ["faster_rcnn", "mask_rcnn", "cascade_mask_rcnn"])
def test_inference_waits_on_the_host_only_for_the_final_detections(family):
    """Eval forward of a batch: proposals, boxes, NMS and masks stay at fixed sizes on the
    device; the one read, of the detections' counts, is a copy of CPU tensors here and does
    not reach the dispatcher (on an accelerator masks are pasted after it without a read)."""
    config = apply_overrides(zoo.get(family, "r50", "1x"), SMALL).model
    torch.manual_seed(0)
    model = build_model(config).eval()
    images, metas, _ = make_batch(masks=False)
    with torch.no_grad(), SyncAudit(where=True) as audit:
        detections = model(images, metas)
    assert len(detections) == len(metas)
    assert audit.counts() == {}


@pytest.mark.gpu
@pytest.mark.parametrize("family", ["faster_rcnn", "mask_rcnn"])
def test_inference_on_cuda_waits_once_per_batch(family):
    import warnings

    config = apply_overrides(zoo.get(family, "r50", "1x"), SMALL).model
    torch.manual_seed(0)
    model = build_model(config).eval().cuda()
    images, metas, _ = make_batch(masks=False)
    images = images.cuda()
    with torch.no_grad():
        model(images, metas)  # warm-up: caches fill
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                model(images, metas)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    assert len(syncs) <= 1, [str(w.message) for w in syncs]
