"""A training step on a StaticBatch calls the same operators, at the same shapes and with the
same non-tensor arguments, for every batch of a size bucket (what one captured CUDA graph
replays), and gives the losses of the batch it was made from.

The operators are recorded at the torch dispatcher (det_heads.op_trace), on the CPU: the
proof does not need a GPU. The batches of a bucket differ in their images, their true sizes
within the padded size, their numbers of ground truths and their flips.
"""

from __future__ import annotations

import pytest
import torch
from test_host_sync import SMALL

from det_heads.op_trace import OpTrace, first_difference
from det_models import zoo
from det_models.builder import build_model
from det_models.config import apply_overrides
from det_models.static_batch import NotCapturableError, gt_bucket, static_batch

PADDED = (128, 160)


def _batch(seed: int, sizes, num_gts, flips, masks: bool = False):
    """Images padded to PADDED (each image's pad_shape its size rounded up to 32, as
    det-data's collate sets it), random boxes inside each image, labels in 0..2."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(len(sizes), 3, *PADDED, generator=g)
    metas, targets = [], []
    for i, ((h, w), n, flip) in enumerate(zip(sizes, num_gts, flips, strict=True)):
        pad = (-(-h // 32) * 32, -(-w // 32) * 32, 3)
        metas.append(
            {
                "image_id": seed * 10 + i,
                "img_shape": (h, w, 3),
                "pad_shape": pad,
                "ori_shape": (2 * h, 2 * w, 3),
                "scale_factor": 0.5,
                "flip": flip,
            }
        )
        xy = torch.rand(n, 2, generator=g) * torch.tensor([w - 40.0, h - 40.0])
        boxes = torch.cat([xy, xy + 8 + torch.rand(n, 2, generator=g) * 30], dim=1)
        target = {"boxes": boxes, "labels": torch.randint(0, 3, (n,), generator=g)}
        if masks:
            bitmap = torch.zeros(n, *PADDED, dtype=torch.uint8)
            for j, (x1, y1, x2, y2) in enumerate(boxes.long().tolist()):
                bitmap[j, y1 + 2 : y2 - 2, x1 + 2 : x2 - 2] = 1
            target["masks"] = bitmap
        targets.append(target)
    return images, metas, targets


def _model(family: str, overrides=()):
    config = apply_overrides(zoo.get(family, "r50", "1x"), [*SMALL, *overrides]).model
    torch.manual_seed(0)
    return build_model(config).train()


def _step(model, images, metas, targets) -> dict:
    model.zero_grad(set_to_none=True)
    losses = model(images, metas, targets)
    sum(losses.values()).backward()
    return losses


def _traced_step(model, batch) -> OpTrace:
    with OpTrace(where=True) as trace:
        _step(model, batch.images, batch.metas(), batch.targets())
    return trace


@pytest.mark.parametrize("family", ["faster_rcnn", "mask_rcnn"])
def test_every_batch_of_a_bucket_calls_the_same_operators(family):
    masks = family == "mask_rcnn"
    first = static_batch(
        *_batch(0, [(128, 160), (96, 128)], [2, 2], [False, False], masks), num_gts=8
    )
    second = static_batch(
        *_batch(1, [(120, 150), (101, 140)], [5, 1], [True, False], masks), num_gts=8
    )
    assert first.key == second.key
    model = _model(family)
    _step(model, first.images, first.metas(), first.targets())  # caches of shapes fill
    # The second batch's sizes were never seen: a value cached per image size would show
    # as the calls that made it.
    difference = first_difference(_traced_step(model, first), _traced_step(model, second))
    assert difference is None, difference


def test_the_default_path_differs_by_batch():
    """The check above can fail: the batches as they come (ground truths not padded, image
    sizes as numbers) make different calls."""
    model = _model("faster_rcnn")
    traces = []
    for batch in (
        _batch(0, [(128, 160), (96, 128)], [2, 2], [False, False]),
        _batch(1, [(120, 150), (101, 140)], [5, 1], [True, False]),
    ):
        with OpTrace() as trace:
            _step(model, *batch)
        traces.append(trace)
    assert first_difference(*traces) is not None


# Every candidate of the R-CNN stage sampled: its random keys, drawn for the padded gts
# too, choose nothing, so that the losses compare one to one.
TAKE_ALL = ["model.roi.stages.0.sampler.num=8192", "model.roi.stages.0.sampler.pos_fraction=1.0"]


@pytest.mark.parametrize("family", ["faster_rcnn", "mask_rcnn"])
def test_a_static_batch_gives_the_losses_and_gradients_of_its_batch(family):
    masks = family == "mask_rcnn"
    images, metas, targets = _batch(2, [(128, 150), (70, 100)], [3, 1], [False, True], masks)
    model = _model(family, TAKE_ALL)
    torch.manual_seed(1)
    expected = {k: v.detach() for k, v in _step(model, images, metas, targets).items()}
    expected_grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    # The same padded size: padding to a larger bucket is a change of the data (the maps
    # grow, the border's features change), as padding to a larger batch's images is.
    batch = static_batch(images, metas, targets, num_gts=gt_bucket(3))
    torch.manual_seed(1)
    losses = _step(model, batch.images, batch.metas(), batch.targets())
    assert losses.keys() == expected.keys()
    for name, value in expected.items():
        torch.testing.assert_close(losses[name].detach(), value, rtol=1e-5, atol=1e-7, msg=name)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert len(grads) == len(expected_grads)
    for got, want in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_static_batch_pads_images_ground_truth_and_sizes():
    images, metas, targets = _batch(3, [(96, 150), (64, 64)], [3, 0], [False, False])
    batch = static_batch(images, metas, targets, size=(160, 192))
    assert batch.images.shape == (2, 3, 160, 192)
    assert torch.equal(batch.images[:, :, :128, :160], images)
    assert batch.images[:, :, 128:].abs().sum() == 0
    assert batch.boxes.shape == (2, 8, 4) and batch.valid.sum(dim=1).tolist() == [3, 0]
    assert torch.equal(batch.boxes[0, :3], targets[0]["boxes"])
    assert batch.sizes.tolist() == [[96, 150, 96, 160], [64, 64, 64, 64]]
    meta = batch.metas()[0]
    assert meta["image_id"] == metas[0]["image_id"] and meta["img_size"].tolist() == [96, 150]
    other = static_batch(*_batch(4, [(128, 160), (90, 90)], [1, 2], [True, True]), size=(160, 192))
    batch.copy_(other)
    assert torch.equal(batch.boxes, other.boxes) and batch.host_metas[0]["flip"] is True


def test_gt_bucket():
    assert [gt_bucket(n) for n in (0, 1, 8, 9, 100)] == [8, 8, 8, 16, 128]


def test_what_cannot_be_captured_is_named():
    images, metas, targets = _batch(5, [(96, 96), (96, 96)], [2, 1], [False, False])
    polygons = [
        dict(t, masks=[[[0.0, 0.0, 5.0, 0.0, 5.0, 5.0]]] * len(t["boxes"])) for t in targets
    ]
    with pytest.raises(NotCapturableError, match=r"mask targets: .*rasterised on the host"):
        static_batch(images, metas, polygons)
    crowd = [dict(t, ignore_boxes=torch.tensor([[0.0, 0.0, 9.0, 9.0]])) for t in targets]
    with pytest.raises(NotCapturableError, match=r"ignore_boxes: .*ignore_iof_thr"):
        static_batch(images, metas, crowd)
    assert static_batch(images, metas, crowd, drop_ignore_boxes=True).boxes.shape == (2, 8, 4)
    with pytest.raises(ValueError, match="num_gts=1"):
        static_batch(images, metas, targets, num_gts=1)
