"""Inference captured as CUDA graphs per size bucket (det_models.graphed_detector).

On the CPU, the proof that a captured inference may serve every batch of a bucket: the
forward up to the padded detections (FasterRCNN.padded_detections on an InferenceBatch)
calls the same operators, at the same shapes and with the same non-tensor arguments, for
two batches of a bucket whose images differ in true size and content (det_heads.op_trace);
and the bucketed path gives the detections of the default path (Detector.predict, or the
model's eval forward) run at the same padded size. Padding to a larger bucket changes the
features near the border, as padding to a larger batch's size does, so the comparison is
at the bucket's size. On a GPU (``-m gpu``): captured against eager detections over several
batches of two buckets.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from test_host_sync import SMALL

from det_heads.op_trace import OpTrace, first_difference
from det_models import Detector, GraphedDetector, NotCapturableError, zoo
from det_models.builder import build_model
from det_models.config import apply_overrides
from det_models.graphed_detector import (
    bucket_groups,
    check_inference_capturable,
    finish,
    inference_batch,
    padded_detections,
)
from det_models.inference import is_channels_last

# Test-time resize within 160 x 128: buckets (128, 160) landscape and (160, 128) portrait.
SCALE = (160, 128)
LANDSCAPE, PORTRAIT = (128, 160), (160, 128)
# Original (h, w) -> resized: (256, 320) -> 128 x 160; (200, 320) -> 100 x 160;
# (300, 352) -> 128 x 150; (180, 360) -> 80 x 160; (320, 200) -> 160 x 100;
# (352, 300) -> 150 x 128. Each pair of a bucket pads to exactly the bucket.
FIRST = [(256, 320), (200, 320)]
SECOND = [(300, 352), (180, 360)]
TALL = [(320, 200), (352, 300)]


def _data():
    data = zoo.get("faster_rcnn", "r50", "1x").data
    return dataclasses.replace(data, img_scale=SCALE)


def _detector(family: str, overrides=(), **kwargs) -> Detector:
    config = apply_overrides(zoo.get(family, "r50", "1x"), [*SMALL, *overrides]).model
    torch.manual_seed(0)
    return Detector(build_model(config), _data(), **kwargs)


def _images(seed: int, sizes) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8) for h, w in sizes]


def _bucketed(detector: Detector, images, size):
    batch, metas = detector.preprocess(images)
    return inference_batch(batch, metas, size, channels_last=is_channels_last(detector.model))


def _assert_same(got: list[dict], want: list[dict]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.keys() == w.keys()
        assert g["scores"].numel() > 0  # random weights: every class above 0.05
        for key in w:
            torch.testing.assert_close(g[key], w[key], rtol=0, atol=0, msg=key)


@pytest.mark.parametrize(
    ("family", "overrides"),
    [
        ("faster_rcnn", []),
        ("mask_rcnn", []),
        # torchvision's box conventions (the bench's --compare torchvision model)
        pytest.param("mask_rcnn", ["model.conventions=torchvision"], id="mask_rcnn-tv"),
    ],
)
def test_every_batch_of_a_bucket_calls_the_same_operators(family, overrides):
    detector = _detector(family, overrides)
    first = _bucketed(detector, _images(0, FIRST), LANDSCAPE)
    second = _bucketed(detector, _images(1, SECOND), LANDSCAPE)
    assert first.key == second.key
    assert first.sizes.tolist() != second.sizes.tolist()
    traces = []
    with torch.inference_mode():
        padded_detections(detector.model, first)  # caches of shapes fill
        # The second batch's sizes were never seen: a value cached per image size would
        # show as the calls that made it.
        for batch in (first, second):
            with OpTrace(where=True) as trace:
                padded_detections(detector.model, batch)
            traces.append(trace)
    assert len(traces[0]) > 300  # the whole forward was recorded
    difference = first_difference(*traces)
    assert difference is None, difference
    # Nothing in it reads the device on the host: the counts are read after it.
    assert not any(c[0] == "aten::_local_scalar_dense" for c in traces[0].calls)


def test_the_default_path_differs_by_batch():
    """The check above can fail: the eval forward as it comes (image sizes as numbers in
    the metas) makes different calls for the same two batches."""
    detector = _detector("faster_rcnn")
    traces = []
    with torch.inference_mode():
        for seed, sizes in ((0, FIRST), (1, SECOND)):
            batch, metas = detector.preprocess(_images(seed, sizes))
            with OpTrace() as trace:
                detector.model.padded_detections(batch, metas)
            traces.append(trace)
    assert first_difference(*traces) is not None


@pytest.mark.parametrize(
    ("family", "overrides"),
    [
        ("faster_rcnn", []),
        ("mask_rcnn", []),
        pytest.param("mask_rcnn", ["model.conventions=torchvision"], id="mask_rcnn-tv"),
    ],
)
def test_the_bucketed_path_gives_the_detections_of_the_default_path(family, overrides):
    detector = _detector(family, overrides)
    for seed, sizes, bucket in ((2, FIRST, LANDSCAPE), (3, SECOND, LANDSCAPE), (4, TALL, PORTRAIT)):
        images = _images(seed, sizes)
        batch = _bucketed(detector, images, bucket)
        with torch.inference_mode():
            outputs = padded_detections(detector.model, batch)
            got = finish(detector.model, *outputs, batch.host_metas)
        # Each pair pads to exactly its bucket: Detector.predict runs at the same size.
        want = detector.predict(images)
        _assert_same(got, want)
        if family == "mask_rcnn":
            assert got[0]["masks"].shape[-2:] == sizes[0]


def test_an_image_padded_to_a_larger_bucket_gives_the_default_path_at_that_size():
    """One 80 x 160 image (padded to 96 x 160 by Detector.predict) in the 128 x 160 bucket:
    the same detections as the eval forward on it padded to 128 x 160."""
    detector = _detector("mask_rcnn")
    images = _images(5, [(180, 360)])
    batch, metas = detector.preprocess(images)
    assert batch.shape[-2:] == (96, 160)
    bucketed = inference_batch(batch, metas, LANDSCAPE, channels_last=True)
    with torch.inference_mode():
        got = finish(detector.model, *padded_detections(detector.model, bucketed), metas)
        padded = F.pad(batch, (0, 0, 0, 32)).contiguous(memory_format=torch.channels_last)
        want = detector.model(padded, metas)
    _assert_same(got, want)


def test_images_are_grouped_by_bucket():
    detector = _detector("faster_rcnn")
    images = _images(6, [FIRST[0], TALL[0], FIRST[1]])
    batch, metas = detector.preprocess(images)
    assert batch.shape[-2:] == (160, 160)  # fits no bucket as one batch
    groups = bucket_groups(metas, [LANDSCAPE, PORTRAIT])
    assert groups == {LANDSCAPE: [0, 2], PORTRAIT: [1]}
    landscape = inference_batch(batch[[0, 2]], [metas[0], metas[2]], LANDSCAPE)
    assert landscape.images.shape == (2, 3, *LANDSCAPE)
    assert torch.equal(landscape.images, batch[[0, 2], :, :128, :])
    assert landscape.sizes.tolist() == [[128, 160, 128, 160], [100, 160, 128, 160]]
    meta = landscape.metas()[1]
    assert meta["img_shape"] == (128, 160, 3) and meta["img_size"].tolist() == [100, 160]
    with pytest.raises(ValueError, match="does not fit the bucket"):
        inference_batch(batch, metas, LANDSCAPE)


def test_what_cannot_be_captured_is_named():
    with pytest.raises(NotCapturableError, match="device: CUDA graphs need the model on a CUDA"):
        _detector("faster_rcnn", cuda_graph=True)
    with pytest.raises(NotCapturableError, match="device: CUDA"):
        GraphedDetector(_detector("mask_rcnn").model, _data())
    cascade = _detector("cascade_mask_rcnn").model
    with pytest.raises(NotCapturableError, match="model: CascadeRCNN is not covered"):
        check_inference_capturable(cascade)
    model = _detector("faster_rcnn").model
    model.roi_head.nms = dataclasses.replace(model.roi_head.nms, soft=True)
    with pytest.raises(NotCapturableError, match="nms: soft-NMS"):
        check_inference_capturable(model)
    model = _detector("faster_rcnn").model
    model.roi_head.conventions = dataclasses.replace(
        model.roi_head.conventions, nms_space="original"
    )
    with pytest.raises(NotCapturableError, match="nms_space 'original'"):
        check_inference_capturable(model)
    model = _detector("faster_rcnn").model
    model.roi_head.bbox_extractor.pool = "pool"
    with pytest.raises(NotCapturableError, match="bbox_extractor: RoI pooling 'pool'"):
        check_inference_capturable(model)


# ----------------------------------------------------------------------------- GPU


def _cuda_pair(family: str):
    """A Detector (eager) and a GraphedDetector over the same model on CUDA."""
    detector = _detector(family)
    detector.model.cuda()
    return detector, GraphedDetector(detector.model, _data(), warmup=1)


@pytest.mark.gpu
@pytest.mark.parametrize("family", ["faster_rcnn", "mask_rcnn"])
def test_captured_inference_gives_the_eager_detections(family):
    """Several batches of two buckets (different true sizes and contents): the captured
    graphs' detections equal the eager forward's on the same bucket-padded batch."""
    detector, graphed = _cuda_pair(family)
    model = detector.model
    batches = [
        (0, FIRST, LANDSCAPE),
        (1, SECOND, LANDSCAPE),
        (2, TALL, PORTRAIT),
        (3, FIRST, LANDSCAPE),
        (4, SECOND, LANDSCAPE),
        (5, TALL, PORTRAIT),
        (6, TALL, PORTRAIT),
        (7, [SECOND[1], FIRST[0]], LANDSCAPE),
    ]
    for seed, sizes, bucket in batches:
        images, metas = detector.preprocess(_images(seed, sizes), "cuda")
        with torch.inference_mode():
            got = graphed(images, metas)
            padded = inference_batch(images, metas, bucket, channels_last=True).images
            want = model(padded, metas)
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert g.keys() == w.keys()
            assert torch.equal(g["labels"], w["labels"])
            for key in w:
                torch.testing.assert_close(g[key], w[key], rtol=1e-5, atol=1e-4, msg=key)
    assert graphed.num_graphs == 2  # (128 x 160, 2 images) and (160 x 128, 2 images)


@pytest.mark.gpu
def test_detector_with_cuda_graph_predicts_as_without():
    eager = _detector("mask_rcnn")
    eager.model.cuda()
    graphed = _detector("mask_rcnn")
    graphed.model.cuda()
    graphed = Detector(graphed.model, _data(), fast=False, cuda_graph=True)
    assert graphed.graphed is not None
    # A mixed batch: landscape and portrait images go to their own graphs; each pair pads
    # to exactly its bucket when predicted alone.
    landscape, portrait = _images(8, FIRST), _images(9, TALL)
    images = [landscape[0], portrait[0], landscape[1], portrait[1]]
    for _ in range(3):  # eager, captured, replayed
        got = graphed.predict(images)
        alone = eager.predict(landscape), eager.predict(portrait)
        want = [alone[0][0], alone[1][0], alone[0][1], alone[1][1]]
        for g, w in zip(got, want, strict=True):
            assert g["boxes"].device.type == "cpu" and g.keys() == w.keys()
            assert torch.equal(g["labels"], w["labels"])
            for key in w:
                torch.testing.assert_close(g[key], w[key], rtol=1e-5, atol=1e-4, msg=key)
    assert graphed.graphed.num_graphs == 2
