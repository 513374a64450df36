"""A training step of Faster and Mask R-CNN waits on the host only where it is allowed to.

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
RPN_LEVELS, ROI_LEVELS, IMAGES = 5, 4, 2

# (event, file, function) -> (calls per step, why it is still there).
ALLOWED = {
    ("det_ops::nms", "kernels.py", "nms"): (
        RPN_LEVELS * IMAGES,
        "the RPN's proposals, per image and level: NMS keeps a number of boxes known only "
        "when it has run (a fixed-size batched NMS in det-ops will replace it)",
    ),
    ("aten::nonzero", "roi_extractor.py", "forward"): (
        ROI_LEVELS,
        "RoIExtractor: the RoIs of each FPN level, per extractor call (a one-launch "
        "multi-level RoIAlign in det-ops will replace it)",
    ),
    ("aten::_local_scalar_dense", "inputs.py", "check_targets"): (
        1,
        "the detector's check of the batch's targets (box corners, label range): one "
        "reduction read once per batch at the public boundary, by design",
    ),
}


def _step_events(family: str) -> Counter:
    config = apply_overrides(zoo.get(family, "r50", "1x"), SMALL).model
    torch.manual_seed(0)
    model = build_model(config).train()
    images, metas, targets = make_batch(masks=family == "mask_rcnn")
    with SyncAudit(where=True) as audit:
        losses = model(images, metas, targets)
    assert all(torch.isfinite(v) for v in losses.values())
    sites = []
    for event, where in zip(audit.events, audit.where, strict=True):
        location, function = where.rsplit(" ", 1)
        sites.append((event, os.path.basename(location.rsplit(":", 1)[0]), function))
    return Counter(sites)


@pytest.mark.parametrize(("family", "extractor_calls"), [("faster_rcnn", 1), ("mask_rcnn", 2)])
def test_training_step_waits_on_the_host_only_where_allowed(family, extractor_calls):
    expected = {site: calls for site, (calls, _) in ALLOWED.items()}
    expected[("aten::nonzero", "roi_extractor.py", "forward")] *= extractor_calls
    assert dict(_step_events(family)) == expected
