import numpy as np
import pytest
import torch
import torchvision
from ops_inputs import random_rois
from torchvision.ops.poolers import LevelMapper

import det_ops
from det_ops.reference import roi_align as reference

SCALES = [1 / 4, 1 / 8, 1 / 16]


def pyramid(dtype=torch.float64, channels=5, seed=0, layouts=("nchw", "nchw", "nchw")):
    """Three maps of a 2-image batch at strides 4, 8 and 16 of a 92 x 124 image, in the
    given layouts."""
    g = torch.Generator().manual_seed(seed)
    maps = []
    for scale, layout in zip(SCALES, layouts, strict=True):
        x = torch.randn(2, channels, round(92 * scale), round(124 * scale), generator=g)
        x = x.to(dtype)
        maps.append(x.contiguous(memory_format=torch.channels_last) if layout == "nhwc" else x)
    return maps


def rois_and_levels(k, dtype=torch.float64, seed=1, levels=3):
    g = torch.Generator().manual_seed(seed)
    rois = random_rois(k, 2, 92, 124, 1.0, dtype, generator=g)
    return rois, torch.randint(0, levels, (k,), generator=g)


def per_level(features, rois, levels, output_size, scales, sampling_ratio, aligned):
    """The definition: det_ops.roi_align of each level's RoIs on its map."""
    out = features[0].new_zeros((len(rois), features[0].shape[1], *output_size))
    for level, (x, scale) in enumerate(zip(features, scales, strict=True)):
        members = torch.nonzero(levels == level).flatten()
        pooled = det_ops.roi_align(x, rois[members], output_size, scale, sampling_ratio, aligned)
        out = out.index_put((members,), pooled)
    return out


def with_grads(fn, features, *args):
    features = [f.detach().requires_grad_() for f in features]
    out = fn(features, *args)
    weight = torch.randn(out.shape, generator=torch.Generator().manual_seed(9), dtype=out.dtype)
    return out, *torch.autograd.grad((out * weight).sum(), features)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("aligned", [False, True, "legacy"])
@pytest.mark.parametrize("sampling_ratio", [0, 2])
@pytest.mark.parametrize("layouts", [("nchw",) * 3, ("nhwc", "nchw", "nhwc")])
def test_equals_roi_align_per_level(dtype, aligned, sampling_ratio, layouts):
    features = pyramid(dtype, layouts=layouts)
    rois, levels = rois_and_levels(41, dtype)
    rois[7, 3] = float("nan")  # pools to zeros, as in roi_align
    args = (rois, levels, (7, 6), SCALES, sampling_ratio, aligned)
    got = with_grads(det_ops.multi_level_roi_align, features, *args)
    expected = with_grads(per_level, features, *args)
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-6, atol=1e-6)
    for grad, layout in zip(got[1:], layouts, strict=True):
        assert grad.is_contiguous(
            memory_format=torch.channels_last if layout == "nhwc" else torch.contiguous_format
        )
    finite = torch.arange(len(rois)) != 7  # the reference takes finite RoIs only
    ours = reference.multi_level_roi_align(
        features, rois[finite], levels[finite], (7, 6), SCALES, sampling_ratio, aligned
    )
    torch.testing.assert_close(got[0][finite], ours, rtol=1e-5, atol=1e-5)


def test_matches_torchvision_multi_scale_roi_align():
    # torchvision's pooler maps the boxes to levels itself (FPN's k0 = 4, canonical 224);
    # given the same levels, the op is its pooling.
    g = torch.Generator().manual_seed(2)
    names = ["p2", "p3", "p4", "p5"]
    features = {
        n: torch.randn(2, 8, 800 // 2**i, 1024 // 2**i, generator=g) for i, n in enumerate(names, 2)
    }
    boxes = [
        random_rois(60, 1, 800, 1024, 1.0, torch.float32, generator=g)[:, 1:] * 3 for _ in range(2)
    ]
    pooler = torchvision.ops.MultiScaleRoIAlign(names, 7, 2)
    image_shapes = [(800, 1024)] * 2
    expected = pooler(features, boxes, image_shapes)
    levels = LevelMapper(2, 5)(boxes)
    rois = torch.cat(
        [torch.cat([torch.full((len(b), 1), float(i)), b], 1) for i, b in enumerate(boxes)]
    )
    got = det_ops.multi_level_roi_align(
        list(features.values()), rois, levels, 7, [1 / 4, 1 / 8, 1 / 16, 1 / 32], 2, False
    )
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_gradcheck():
    features = [f[:, :2, :9, :11] for f in pyramid(torch.float64, seed=3)]
    features[1] = features[1].contiguous(memory_format=torch.channels_last)
    features = [f.detach().requires_grad_() for f in features]
    g = torch.Generator().manual_seed(4)
    rois = random_rois(6, 2, 9, 11, 1 / 8, torch.float64, generator=g)
    levels = torch.tensor([0, 1, 2, 0, 1, 2])

    def fn(*maps):
        return det_ops.multi_level_roi_align(list(maps), rois, levels, 3, SCALES, 2, True)

    assert torch.autograd.gradcheck(fn, features)


def test_hand_computed():
    # A constant map per level: every RoI inside its map pools to its level's constant.
    features = [torch.full((1, 1, 8, 8), 1.0), torch.full((1, 1, 4, 4), 2.0)]
    rois = torch.tensor([[0, 4.0, 4, 20, 20], [0, 4.0, 4, 20, 20], [0, 8.0, 8, 24, 24]])
    out = det_ops.multi_level_roi_align(
        features, rois, torch.tensor([1, 0, 1]), 2, [1 / 4, 1 / 8], 2, True
    )
    assert out.flatten().tolist() == [2.0] * 4 + [1.0] * 4 + [2.0] * 4


def test_empty_rois_and_numpy_inputs():
    features = pyramid(torch.float32)
    rois, levels = rois_and_levels(0, torch.float32)
    out, *grads = with_grads(det_ops.multi_level_roi_align, features, rois, levels, 7, SCALES)
    assert out.shape == (0, 5, 7, 7)
    assert all(torch.equal(g, torch.zeros_like(f)) for g, f in zip(grads, features, strict=True))
    rois, levels = rois_and_levels(30, torch.float32)
    expected = det_ops.multi_level_roi_align(features, rois, levels, 7, SCALES, 2)
    got = det_ops.multi_level_roi_align(
        [f.numpy() for f in features], rois.numpy(), levels.int().numpy(), 7, SCALES, 2
    )
    assert isinstance(got, np.ndarray)
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-6, atol=1e-6)


def test_half_maps_compute_in_float32():
    features = [f.half() for f in pyramid(torch.float32)]
    rois, levels = rois_and_levels(20, torch.float32)
    got = det_ops.multi_level_roi_align(features, rois, levels, 7, SCALES, 2, True)
    assert got.dtype == torch.float16
    expected = per_level([f.float() for f in features], rois, levels, (7, 7), SCALES, 2, True)
    torch.testing.assert_close(got.float(), expected, rtol=1e-3, atol=1e-3)


def test_compiles_without_graph_breaks():
    features = [f.float().requires_grad_() for f in pyramid(seed=5)]
    rois, levels = rois_and_levels(12, torch.float32, seed=6)

    def step(features, rois, levels):
        return det_ops.multi_level_roi_align(features, rois, levels, 7, SCALES, 2, True).sum()

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    got, expected = compiled(features, rois, levels), step(features, rois, levels)
    torch.testing.assert_close(got, expected)
    for a, b in zip(
        torch.autograd.grad(got, features), torch.autograd.grad(expected, features), strict=True
    ):
        torch.testing.assert_close(a, b)


def call(features=None, rois=None, levels=None, output_size=7, spatial_scales=SCALES):
    default_rois, default_levels = rois_and_levels(4)
    return det_ops.multi_level_roi_align(
        pyramid() if features is None else features,
        default_rois if rois is None else rois,
        default_levels if levels is None else levels,
        output_size,
        spatial_scales,
    )


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (
            {"levels": torch.tensor([0, 1, 3, 0])},
            ValueError,
            r"levels must be in \[0, 3\) \(the levels of features\), got values in \[0, 3\]",
        ),
        ({"levels": torch.tensor([0, -1, 2, 0])}, ValueError, r"levels must be in \[0, 3\)"),
        ({"levels": torch.zeros(4)}, TypeError, "levels must have an integer dtype"),
        (
            {"levels": torch.zeros(5, dtype=torch.int64)},
            ValueError,
            "rois and levels must have the same length",
        ),
        (
            {"rois": torch.tensor([[2, 0, 0, 5, 5.0]] * 4, dtype=torch.float64)},
            ValueError,
            r"rois\[:, 0\] must be batch indices in \[0, 2\)",
        ),
        ({"features": torch.zeros(2, 5, 8, 8)}, TypeError, "features must be a list"),
        ({"features": []}, ValueError, "features must hold 1 to 8 levels, got 0"),
        (
            {"features": [torch.zeros(2, 5, 8, 8, dtype=torch.float64)] * 9},
            ValueError,
            "features must hold 1 to 8 levels, got 9",
        ),
        (
            {
                "features": [
                    torch.zeros(2, 5, 8, 8),
                    torch.zeros(2, 4, 4, 4),
                    torch.zeros(2, 5, 2, 2),
                ]
            },
            ValueError,
            r"share batch size and channels.*features\[1\] \[2, 4\]",
        ),
        (
            {
                "features": [
                    torch.zeros(2, 5, 8, 8),
                    torch.zeros(2, 5, 4, 4, dtype=torch.float64),
                    torch.zeros(2, 5, 2, 2),
                ]
            },
            TypeError,
            "features must share one dtype",
        ),
        (
            {"features": [torch.zeros(2, 5, 8)] * 3},
            ValueError,
            r"features\[0\] must have shape \[B, C, H, W\]",
        ),
        ({"spatial_scales": [0.25, 0.125]}, ValueError, "spatial_scales must be a list of 3"),
        ({"spatial_scales": [0.25, 0.125, 0.0]}, ValueError, r"spatial_scales\[2\] must be > 0"),
        ({"output_size": 0}, ValueError, "output_size must be an int >= 1"),
    ],
)
def test_rejects_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        call(**kwargs)
