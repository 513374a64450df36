"""det_models.export: what an exported detector takes and returns, and what it refuses."""

import pytest
import torch

from det_models import zoo
from det_models.export import (
    DETECTION_OUTPUTS,
    MASK_OUTPUTS,
    PROPOSAL_OUTPUTS,
    ExportableDetector,
    ExportError,
    input_metas,
)


@pytest.mark.parametrize(
    ("row", "names"),
    [
        (("rpn", "r50", "1x"), PROPOSAL_OUTPUTS),
        (("faster_rcnn", "r50", "1x"), DETECTION_OUTPUTS),
        (("mask_rcnn", "r50", "1x"), MASK_OUTPUTS),
        (("cascade_mask_rcnn", "r50", "1x"), MASK_OUTPUTS),
        (("retinanet", "r50", "1x"), DETECTION_OUTPUTS),
    ],
)
def test_output_names_follow_the_family(row, names):
    assert ExportableDetector(zoo.build(*row)).output_names == names


def test_outputs_are_the_eager_detections_in_input_pixels():
    torch.manual_seed(0)
    model = zoo.build("faster_rcnn", "r50", "1x", num_classes=3).eval()
    images = torch.randn(2, 3, 96, 128)
    sizes = torch.tensor([[96, 128], [80, 100]])  # the second image padded
    with torch.no_grad():
        boxes, scores, labels, image_index = ExportableDetector(model)(images, sizes)
        expected = model(images, input_metas(images, sizes))
    for i, det in enumerate(expected):
        mine = image_index == i
        assert torch.equal(boxes[mine], det["boxes"]) and torch.equal(labels[mine], det["labels"])
        assert torch.equal(scores[mine], det["scores"])
    second = image_index == 1
    assert boxes[second, 2].max() <= 100 and boxes[second, 3].max() <= 80


def test_input_metas_keep_the_image_sizes_in_input_pixels():
    (meta,) = input_metas(torch.zeros(1, 3, 64, 96), torch.tensor([[50, 90]]))
    assert meta["img_shape"] == meta["ori_shape"] == (50, 90, 3)
    assert meta["pad_shape"] == (64, 96, 3) and meta["scale_factor"] == 1.0


@pytest.mark.parametrize("variant", ["dpool", "mdpool"])
def test_deformable_roi_pooling_is_refused_naming_the_op(variant):
    with pytest.raises(ExportError, match="det_ops::deform_roi_pool"):
        ExportableDetector(zoo.build("faster_rcnn", "r50", "1x", variant))


def test_fast_rcnn_is_refused():
    with pytest.raises(ExportError, match="proposals"):
        ExportableDetector(zoo.build("fast_rcnn", "r50", "1x"))
