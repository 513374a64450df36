"""det_engine.export: the exported graphs (.pt2, and ONNX in onnxruntime) give the eager
model's detections on the same input.

Fresh zoo models on small random images: their detections are arbitrary, but many, and
each graph must reproduce them (same labels, boxes within 1e-3 relative, scores within 1e-4,
mask probabilities within 5e-3, binary masks IoU >= 0.99).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("onnxscript")
ort = pytest.importorskip("onnxruntime")

from det_engine.apps.export import main  # noqa: E402
from det_engine.onnx_export import write_onnx  # noqa: E402
from det_models import (  # noqa: E402
    ExportableDetector,
    export_detector,
    zoo,
)

SIZES = ((128, 192), (192, 160))  # (H, W): two sizes for the graphs exported --dynamic


def fresh_model(model: str, backbone: str, schedule: str) -> nn.Module:
    torch.manual_seed(0)
    detector = zoo.build(model, backbone, schedule, num_classes=None if model == "rpn" else 3)
    if model == "retinanet":
        # Its classifier starts at a prior of 0.01, under the 0.05 score threshold: at 0.5
        # there are detections to compare.
        nn.init.zeros_(detector.head.cls.bias)
    return detector.eval()


def images(size: tuple[int, int], seed: int = 1) -> torch.Tensor:
    return torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(seed))


def unpadded_sizes(x: torch.Tensor) -> torch.Tensor:
    """int64[1, 2]: sizes as if the images had been padded by 20 rows and 12 columns, so
    that the graphs clip the boxes inside the input."""
    return torch.tensor([[x.shape[2] - 20, x.shape[3] - 12]])


def eager_outputs(model: nn.Module, x: torch.Tensor) -> list[np.ndarray]:
    with torch.no_grad():
        return [t.numpy() for t in ExportableDetector(model)(x, unpadded_sizes(x))]


def onnxruntime_outputs(path, x: torch.Tensor) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"images": x.numpy(), "image_sizes": unpadded_sizes(x).numpy()})


def assert_same_detections(got, expected, names) -> None:
    """Same detections, in the same order up to swaps of detections whose scores differ by
    under 1e-4 (a fresh model has near-ties, which float rounding may order either way)."""
    assert len(got) == len(expected) == len(names)
    got = dict(zip(names, map(np.asarray, got), strict=True))
    expected = dict(zip(names, expected, strict=True))
    assert expected["scores"].shape[0] > 0, "the eager model detected nothing: nothing compared"
    for name in names:
        assert got[name].shape == expected[name].shape, (
            f"{name}: {got[name].shape}, eager {expected[name].shape}"
        )
    order = _matching(got, expected)
    for name in names:
        g, e = got[name][order], expected[name]
        if name == "boxes":
            np.testing.assert_allclose(g, e, rtol=1e-3, atol=1e-3, err_msg=name)
        elif name == "scores":
            np.testing.assert_allclose(g, e, rtol=0, atol=1e-4, err_msg=name)
        elif name == "mask_probs":
            # RoiAlign sums its samples in another order, and the mask head's four convs
            # carry the difference: probabilities within 5e-3, and the 28 x 28 masks
            # (probability > 0.5) of the same pixels (IoU >= 0.99).
            np.testing.assert_allclose(g, e, rtol=0, atol=5e-3, err_msg=name)
            g_mask, e_mask = g > 0.5, e > 0.5
            assert (g_mask & e_mask).sum() >= 0.99 * (g_mask | e_mask).sum()
        else:
            np.testing.assert_array_equal(g, e, err_msg=name)


def _matching(got: dict, expected: dict) -> np.ndarray:
    """For each expected detection, the got detection at (nearly) its score and rank with
    the closest box: the identity unless near-tied detections came out swapped."""
    n = expected["scores"].shape[0]
    order, used = np.arange(n), np.zeros(n, dtype=bool)
    for i in range(n):
        near = np.flatnonzero(~used & (np.abs(got["scores"] - expected["scores"][i]) <= 1e-4))
        if near.size == 0:
            return np.arange(n)  # no candidate: compare in order, and fail there
        distance = np.abs(got["boxes"][near] - expected["boxes"][i]).max(axis=1)
        order[i] = near[np.argmin(distance)]
        used[order[i]] = True
    return order


def check_family(tmp_path, model: nn.Module, sizes, dynamic: bool) -> None:
    """pt2 (saved and loaded) and ONNX in onnxruntime against eager, on every size."""
    names = ExportableDetector(model).output_names
    program = export_detector(model, images(sizes[0]), dynamic=dynamic)
    torch.export.save(program, tmp_path / "model.pt2")
    loaded = torch.export.load(tmp_path / "model.pt2").module()
    write_onnx(program, tmp_path / "model.onnx", names)
    for size in sizes:
        x = images(size)
        expected = eager_outputs(model, x)
        with torch.no_grad():
            pt2 = [t.numpy() for t in loaded(x, unpadded_sizes(x))]
        assert_same_detections(pt2, expected, names)
        assert_same_detections(onnxruntime_outputs(tmp_path / "model.onnx", x), expected, names)


def test_faster_rcnn_dynamic_pt2_and_onnxruntime_match_eager_on_two_sizes(tmp_path):
    check_family(tmp_path, fresh_model("faster_rcnn", "r50", "1x"), SIZES, dynamic=True)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("row", "sizes", "dynamic"),
    [
        (("rpn", "r50", "1x"), SIZES, True),
        (("faster_rcnn", "r50-caffe", "1x"), SIZES[:1], False),
        # Sizes over 2 x 128: a graph traced where P7 (stride 128) is one pixel would keep 1.
        (("retinanet", "r50", "1x"), ((288, 320), (352, 288)), True),
        (("ssd300", "vgg16", "120e"), ((300, 300),), False),
        (("mask_rcnn", "r50", "1x"), SIZES, True),
        (("cascade_rcnn", "r50", "1x"), SIZES, True),
        (("cascade_mask_rcnn", "r50", "1x"), SIZES, True),
    ],
    ids=lambda v: "-".join(v) if isinstance(v, tuple) and isinstance(v[0], str) else None,
)
def test_family_pt2_and_onnxruntime_match_eager(tmp_path, row, sizes, dynamic):
    check_family(tmp_path, fresh_model(*row), sizes, dynamic)


def test_export_refuses_deformable_roi_pool_naming_the_op(tmp_path, capsys):
    out = tmp_path / "dpool.onnx"
    argv = ["faster_rcnn", "r50", "1x", "--variant", "dpool", "--format", "onnx"]
    code = main([*argv, "--img-size", "224", "320", "--out", str(out)])
    assert code == 2
    assert "det_ops::deform_roi_pool" in capsys.readouterr().err
    assert not out.exists()


def test_onnx_export_refuses_deformable_convolutions_naming_the_op(tmp_path, capsys):
    out = tmp_path / "dconv.onnx"
    argv = ["faster_rcnn", "r50", "1x", "--variant", "dconv-c3-c5", "--format", "onnx"]
    assert main([*argv, "--img-size", "224", "320", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "det_ops::deform_conv2d" in err and "--format pt2" in err
    assert not out.exists()


def test_export_rejects_a_size_that_is_not_a_multiple_of_32(tmp_path, capsys):
    argv = ["rpn", "r50", "1x", "--format", "pt2", "--img-size", "100", "320"]
    assert main([*argv, "--out", str(tmp_path / "x.pt2")]) == 2
    assert "multiples of 32" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_writes_a_pt2_that_runs_without_the_model_code(tmp_path):
    out = tmp_path / "rpn.pt2"
    argv = ["rpn", "r50", "1x", "--format", "pt2", "--img-size", "128", "160"]
    assert main([*argv, "--out", str(out)]) == 0
    # In a fresh interpreter with the det_ops kernels only: no det_models, no det_heads.
    code = (
        "import sys, torch, det_ops.torch_ops\n"
        f"graph = torch.export.load({str(out)!r}).module()\n"
        "sizes = torch.tensor([[120, 150]])\n"
        "boxes, scores, image_index = graph(torch.randn(1, 3, 128, 160), sizes)\n"
        "assert boxes.shape[1] == 4 and scores.shape == image_index.shape\n"
        "assert not {'det_models', 'det_heads'} & set(sys.modules), 'model code imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["faster_rcnn", "mask_rcnn"])
def test_deploy_runs_the_onnx_of_a_checkpoint_like_the_eager_detector(tmp_path, family):
    import dataclasses

    from PIL import Image

    from det_engine import checkpoint as ckpt
    from det_engine.deploy import OnnxDetector
    from det_models import Detector, RunConfig

    model = fresh_model(family, "r50", "1x")
    row = zoo.get(family, "r50", "1x")
    run = RunConfig(
        name=f"{family}_r50_1x",
        model=dataclasses.replace(row.model, num_classes=3),
        data=dataclasses.replace(row.data, img_scale=(160, 128)),
        schedule=row.schedule,
        key=row.key,
        dataset="shapes",
        class_names=("circle", "square", "triangle"),
    )
    path = ckpt.save(tmp_path / "iter_00000001.pth", model=model, epoch=0, iteration=1, run=run)
    out = tmp_path / "model.onnx"
    argv = ["--ckpt", str(path), "--format", "onnx", "--dynamic", "--out", str(out)]
    assert main(argv) == 0
    pixels = np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "image.png")  # x2: 120 x 160, padded to 128 x 160

    detector = OnnxDetector(out, threads=2)
    assert detector.class_names == ["circle", "square", "triangle"]
    got = detector(tmp_path / "image.png")
    expected = Detector(model, run.data, fast=False).predict(tmp_path / "image.png")
    names = ("boxes", "scores", "labels")
    assert_same_detections([got[n] for n in names], [expected[n].numpy() for n in names], names)
    if family == "mask_rcnn":
        # Pasted into the 60 x 80 image; pixels at probability ~0.5 may differ.
        order = _matching(got, {n: expected[n].numpy() for n in names})
        got_masks, expected_masks = got["masks"][order] > 0, expected["masks"].numpy() > 0
        assert got_masks.shape == expected_masks.shape == (len(got["scores"]), 60, 80)
        both, either = (got_masks & expected_masks).sum(), (got_masks | expected_masks).sum()
        assert both >= 0.99 * either
