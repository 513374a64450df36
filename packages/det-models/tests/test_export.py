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
    with torch.no_grad():
        boxes, scores, labels, image_index = ExportableDetector(model)(images)
        expected = model(images, input_metas(images))
    for i, det in enumerate(expected):
        mine = image_index == i
        assert torch.equal(boxes[mine], det["boxes"]) and torch.equal(labels[mine], det["labels"])
        assert torch.equal(scores[mine], det["scores"])
    assert boxes[:, 2].max() <= 128 and boxes[:, 3].max() <= 96


def test_input_metas_make_the_padded_input_the_whole_image():
    (meta,) = input_metas(torch.zeros(1, 3, 64, 96))
    assert meta["img_shape"] == meta["pad_shape"] == meta["ori_shape"] == (64, 96, 3)
    assert meta["scale_factor"] == 1.0


@pytest.mark.parametrize("variant", ["dpool", "mdpool"])
def test_deformable_roi_pooling_is_refused_naming_the_op(variant):
    with pytest.raises(ExportError, match="det_ops::deform_roi_pool"):
        ExportableDetector(zoo.build("faster_rcnn", "r50", "1x", variant))


def test_fast_rcnn_is_refused():
    with pytest.raises(ExportError, match="proposals"):
        ExportableDetector(zoo.build("fast_rcnn", "r50", "1x"))
