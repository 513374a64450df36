"""Every CUDA launcher and kernel, forward and backward, against its CPU twin (which the
rest of the suite checks against torchvision and the references).

Each test runs on two devices (the `device` fixture, see cuda_devices.py):
* "cuda": a GPU and det_ops._C built with CUDA; marker gpu, run by `nox -s gpu_tests`;
* "emulated": the same csrc/cuda sources built for the CPU (det_ops._C_emulated), run by
  `nox -s tests` and so by CI. Every launch shuffles the order of its blocks and of the
  threads of a block, so a missing __syncthreads() gives a wrong result here too.
One file for both, so that the two cannot drift apart.

Sizes are chosen so that grids end in partial blocks (not multiples of 256 or 64), and the
`grid` fixture also runs the grid-stride kernels with a one-block grid, so that every
thread loops over several items, and with 64-bit indices (which the kernels take only for
tensors of more than 2**30 elements, too large for the tests otherwise).
"""

import pytest
import torch
import torchvision
from cuda_devices import Device
from ops_inputs import random_boxes, random_rois

import det_ops
import det_ops._torch  # registers torch.ops.det_ops

DTYPES = [torch.float32, torch.float64]


@pytest.fixture(params=[pytest.param("cuda", marks=pytest.mark.gpu), "emulated"])
def device(request):
    return Device(request.param)


@pytest.fixture(params=["full grid", "one block", "64-bit indices"])
def grid(request, device):
    """The grid-stride kernels with their usual grid and 32-bit indices, with one block of
    256 threads, or with their usual grid and 64-bit indices."""
    if request.param == "full grid":
        yield
    elif request.param == "one block":
        with device.max_grid_blocks(1):
            yield
    else:
        with device.max_index32_elements(0):
            yield


def clustered(n, dtype, seed):
    """n boxes around n / 40 centres (so that many overlap) and their scores."""
    g = torch.Generator().manual_seed(seed)
    centres = random_boxes(max(n // 40, 1), torch.float64, generator=g)
    picks = centres[torch.randint(0, len(centres), (n,), generator=g)]
    boxes = (picks + torch.randn(n, 4, generator=g, dtype=torch.float64) * 3).to(dtype)
    return boxes, torch.rand(n, generator=g, dtype=torch.float64).to(dtype)


def grads(fn, *inputs):
    """fn(*inputs) and the gradients of a random weighting of it with respect to inputs."""
    inputs = [x.detach().clone().requires_grad_() for x in inputs]
    out = fn(*inputs)
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(out.shape, generator=g, dtype=out.dtype).to(out.device)
    return (out, *torch.autograd.grad((out * weight).sum(), inputs))


# float32 on a GPU: nvcc contracts multiply-adds into FMAs (the CPU build does not:
# -ffp-contract=off) and atomics add in any order, so results differ in the last bits; an
# H200 was 2-4e-5 off on deformable RoI pooling's gradients and on RoIAlign over 10000 RoIs.
FLOAT32_ON_A_GPU = {"rtol": 1e-4, "atol": 1e-4}


def tolerance(device, dtype):
    """The tolerance of a result of ``device`` against the CPU kernels': float32 on a GPU as
    above; the emulated build rounds as the CPU build does, and float64 takes torch's
    default."""
    if dtype == torch.float32:
        return FLOAT32_ON_A_GPU if device.name == "cuda" else {"rtol": 1e-5, "atol": 1e-5}
    return {}


def assert_close(got, expected, **tol):
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, **tol)


def feature_map_and_rois(dtype, seed):
    """Two images [2, 5, 23, 37] and 37 RoIs over both (spatial scale 0.5), a few of them
    beyond the map, one with a NaN corner (pooled to zeros)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 5, 23, 37, generator=g, dtype=dtype)
    rois = random_rois(37, 2, 23, 37, 0.5, dtype, generator=g)
    rois[11, 3] = float("nan")
    return x, rois


# ---- NMS ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [0, 1, 63, 64, 65, 300, 1000])
def test_nms(device, dtype, n):
    # 64 boxes fill one mask word; 65 start a second; 300 make a 5 x 5 grid of words.
    boxes, scores = clustered(n, dtype, n)
    expected = det_ops.nms(boxes, scores, 0.5)
    assert torch.equal(device.run(det_ops.nms, boxes, scores, 0.5), expected)
    if 0 < n <= 300:
        assert torch.equal(torchvision.ops.nms(boxes, scores, 0.5), expected)


def test_nms_with_more_mask_words_than_reduction_threads(device):
    # 16500 boxes: 258 mask words, more than the 256 threads of the reduction, whose
    # strided loops then wrap.
    boxes, scores = clustered(16500, torch.float32, 5)
    expected = det_ops.nms(boxes, scores, 0.5)
    assert torch.equal(device.run(det_ops.nms, boxes, scores, 0.5), expected)


def test_nms_in_many_interleavings(device):
    # Heavy suppression across mask words; each run shuffles blocks and threads anew.
    boxes, scores = clustered(700, torch.float64, 6)
    expected = det_ops.nms(boxes, scores, 0.3)
    for _ in range(8):
        assert torch.equal(device.run(det_ops.nms, boxes, scores, 0.3), expected)


def test_nms_ties_and_nan_boxes(device):
    boxes, scores = clustered(200, torch.float64, 7)
    scores = (scores * 4).round() / 4  # many equal scores: lower index first
    boxes[[3, 70, 150], 1] = float("nan")
    expected = det_ops.nms(boxes, scores, 0.5)
    assert torch.equal(device.run(det_ops.nms, boxes, scores, 0.5), expected)


def test_nms_nan_score_is_an_error(device):
    boxes, scores = clustered(10, torch.float32, 0)
    scores[3] = float("nan")
    with pytest.raises(ValueError, match="scores contains NaN"):
        device.run(det_ops.nms, boxes, scores, 0.5)


@pytest.mark.parametrize("offset", [0, 1])
def test_nms_offset(device, offset):
    boxes, scores = clustered(400, torch.float64, 8)
    boxes = boxes.round()  # whole pixels, where the +1 of offset=1 matters most
    expected = det_ops.nms(boxes, scores, 0.4, offset=offset)
    got = device.run(lambda b, s: det_ops.nms(b, s, 0.4, offset=offset), boxes, scores)
    assert torch.equal(got, expected)


@pytest.mark.parametrize("offset", [0, 1])
def test_batched_nms(device, offset):
    boxes, scores = clustered(2000, torch.float64, 1)
    idxs = torch.randint(0, 20, (2000,), generator=torch.Generator().manual_seed(2))
    expected = det_ops.batched_nms(boxes, scores, idxs, 0.5, offset=offset)
    got = device.run(
        lambda b, s, i: det_ops.batched_nms(b, s, i, 0.5, offset=offset), boxes, scores, idxs
    )
    assert torch.equal(got, expected)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_batched_nms_with_a_non_finite_box(device, bad):
    # The CUDA path moves categories apart by the span of the coordinates; one non-finite
    # coordinate once made every moved box non-finite, and nothing was suppressed.
    boxes, scores = clustered(500, torch.float32, 9)
    idxs = torch.randint(0, 5, (500,), generator=torch.Generator().manual_seed(3))
    boxes[7, 2] = bad

    def suppress(boxes, scores, idxs):
        return det_ops.batched_nms(boxes, scores, idxs, 0.5)

    expected = suppress(boxes, scores, idxs)
    assert len(expected) < 400
    assert torch.equal(device.run(suppress, boxes, scores, idxs), expected)
    boxes[:] = bad  # no finite coordinate: nothing overlaps, every box is kept
    assert len(device.run(suppress, boxes, scores, idxs)) == 500


def padded_nms_inputs(n, num_groups, dtype, seed):
    """Clustered boxes with tied scores over num_groups - 1 groups (the last stays empty), a
    tenth masked by a -inf score and a twentieth by a NaN one."""
    boxes, scores = clustered(n, dtype, seed)
    g = torch.Generator().manual_seed(seed)
    scores = (scores * 8).round() / 8
    scores[torch.rand(n, generator=g) < 0.1] = -float("inf")
    scores[torch.rand(n, generator=g) < 0.05] = float("nan")
    groups = torch.randint(0, max(num_groups - 1, 1), (n,), generator=g)
    return boxes, scores, groups


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, num_groups", [(0, 2), (1, 1), (65, 3), (700, 5), (3000, 300)])
@pytest.mark.parametrize("max_per_group", [1, 50, 1000])
def test_batched_nms_padded(device, grid, dtype, n, num_groups, max_per_group):
    # 65 boxes: a group's second word of candidates; 300 groups: more than a one-block grid,
    # whose block then takes group after group.
    boxes, scores, groups = padded_nms_inputs(n, num_groups, dtype, n + max_per_group)

    def fn(boxes, scores, groups):
        return det_ops.batched_nms_padded(
            boxes, scores, groups, 0.5, num_groups=num_groups, max_per_group=max_per_group
        )

    assert_close(device.run(fn, boxes, scores, groups), fn(boxes, scores, groups), rtol=0, atol=0)


@pytest.mark.parametrize("offset", [0, 1])
def test_batched_nms_padded_offset_and_interleavings(device, offset):
    boxes, scores, groups = padded_nms_inputs(1500, 4, torch.float64, 21)
    boxes = boxes.round()

    def fn(boxes, scores, groups):
        return det_ops.batched_nms_padded(
            boxes, scores, groups, 0.3, num_groups=4, max_per_group=200, offset=offset
        )

    expected = fn(boxes, scores, groups)
    for _ in range(4):  # each run shuffles blocks and threads anew
        assert_close(device.run(fn, boxes, scores, groups), expected, rtol=0, atol=0)


@pytest.mark.gpu
def test_batched_nms_padded_never_waits_for_the_device():
    boxes, scores, groups = padded_nms_inputs(20000, 10, torch.float32, 22)
    boxes, scores, groups = boxes.cuda(), scores.cuda(), groups.cuda()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        keep, counts = det_ops.batched_nms_padded(
            boxes, scores, groups, 0.7, num_groups=10, max_per_group=1000
        )
    finally:
        torch.cuda.set_sync_debug_mode("default")
    expected = det_ops.batched_nms_padded(
        boxes.cpu(), scores.cpu(), groups.cpu(), 0.7, num_groups=10, max_per_group=1000
    )
    assert torch.equal(keep.cpu(), expected[0]) and torch.equal(counts.cpu(), expected[1])


# ---- Box overlaps ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("offset", [0, 1])
def test_bbox_overlaps(device, grid, dtype, offset):
    a, _ = clustered(301, dtype, 3)
    b, _ = clustered(203, dtype, 4)
    b[5] = b[5, [2, 3, 0, 1]]  # a degenerate box: overlaps of 0, not NaN
    for mode in ("iou", "iof"):
        for aligned, first in ((False, a), (True, a[:203])):

            def overlaps(a, b, mode=mode, aligned=aligned):
                return det_ops.bbox_overlaps(a, b, mode, aligned, offset=offset)

            expected = overlaps(first, b)
            torch.testing.assert_close(device.run(overlaps, first, b), expected)


# ---- RoIAlign and RoIPool -------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("aligned", [False, True, "legacy"])
@pytest.mark.parametrize("sampling_ratio", [0, 2])
def test_roi_align(device, grid, dtype, aligned, sampling_ratio):
    x, rois = feature_map_and_rois(dtype, 5)

    def fn(x, rois):
        return grads(lambda x: det_ops.roi_align(x, rois, (7, 6), 0.5, sampling_ratio, aligned), x)

    assert_close(device.run(fn, x, rois), fn(x, rois), **tolerance(device, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("aligned", [False, True, "legacy"])
@pytest.mark.parametrize("sampling_ratio", [0, 2])
def test_roi_align_channels_last(device, grid, dtype, aligned, sampling_ratio):
    # The channels-last kernels read the map in place, threads over channels; 67 channels
    # end each RoI's run of outputs inside a block.
    g = torch.Generator().manual_seed(14)
    x = torch.randn(2, 67, 23, 37, generator=g, dtype=dtype)
    rois = random_rois(37, 2, 23, 37, 0.5, dtype, generator=g)
    rois[11, 3] = float("nan")
    x = x.contiguous(memory_format=torch.channels_last)

    def fn(x, rois):
        out, grad = grads(
            lambda x: det_ops.roi_align(x, rois, (7, 6), 0.5, sampling_ratio, aligned), x
        )
        assert grad.is_contiguous(memory_format=torch.channels_last)
        return out, grad

    expected = fn(x, rois)
    assert_close(device.run(fn, x, rois), expected, **tolerance(device, dtype))
    nchw = grads(
        lambda x: det_ops.roi_align(x, rois, (7, 6), 0.5, sampling_ratio, aligned),
        x.contiguous(),
    )
    assert_close(expected, nchw, **tolerance(device, dtype))


# One rounding of the format (2**-11 float16, 2**-8 bfloat16) on values of size ~3, and the
# float32 sums of the gradient rounded once.
HALF_TOLERANCE = {
    torch.float16: {"rtol": 2e-3, "atol": 4e-3},
    torch.bfloat16: {"rtol": 1e-2, "atol": 3e-2},
}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("layout", ["nchw", "channels-last"])
def test_roi_align_half(device, grid, dtype, layout):
    # 16-bit maps are read natively and computed in float32 (RoIs float32, the gradient
    # summed in a float32 buffer): the result is the float32 one within the format's
    # rounding. The CPU computes on a float32 copy.
    g = torch.Generator().manual_seed(18)
    x = torch.randn(2, 67, 23, 37, generator=g).to(dtype)
    rois = random_rois(37, 2, 23, 37, 0.5, torch.float32, generator=g)
    if layout == "channels-last":
        x = x.contiguous(memory_format=torch.channels_last)

    # The same output gradient in both (a float16 or bfloat16 one, as autograd passes).
    weight = torch.randn(37, 67, 7, 6, generator=g).to(dtype).float()

    def fn(x, rois, weight):
        x = x.detach().requires_grad_()
        out = det_ops.roi_align(x, rois, (7, 6), 0.5, 2, True)
        return out, torch.autograd.grad((out.float() * weight).sum(), x)[0]

    out, grad = device.run(fn, x, rois, weight)
    assert out.dtype == dtype and grad.dtype == dtype
    assert grad.is_contiguous(
        memory_format=torch.channels_last if layout == "channels-last" else torch.contiguous_format
    )
    expected_out, expected_grad = fn(x.float(), rois, weight)
    tol = HALF_TOLERANCE[dtype]
    torch.testing.assert_close(out.float(), expected_out, **tol)
    torch.testing.assert_close(grad.float(), expected_grad, **tol)


def test_roi_align_with_more_taps_than_shared_memory_holds(device, grid):
    # Adaptive sampling of RoIs much larger than the output: a 7 x 7 output of a 300-pixel
    # RoI takes 43 points per bin and axis, more row taps than a block keeps in shared
    # memory, so its taps are computed per output element.
    g = torch.Generator().manual_seed(15)
    x = torch.randn(1, 3, 40, 330, generator=g, dtype=torch.float64)
    rois = torch.tensor([[0, 2.0, 1.0, 310.0, 38.0], [0, 5.0, 3.0, 60.0, 20.0]], dtype=x.dtype)

    def fn(x, rois):
        return grads(lambda x: det_ops.roi_align(x, rois, 7, 1.0, 0, True), x)

    assert_close(device.run(fn, x, rois), fn(x, rois))
    nhwc = x.contiguous(memory_format=torch.channels_last)
    assert_close(device.run(fn, nhwc, rois), fn(x, rois))


@pytest.mark.parametrize("dtype", DTYPES)
def test_roi_pool(device, grid, dtype):
    x, rois = feature_map_and_rois(dtype, 7)

    def fn(x, rois):
        return grads(lambda x: det_ops.roi_pool(x, rois, (3, 4), 0.5), x)

    assert_close(device.run(fn, x, rois), fn(x, rois))


@pytest.mark.parametrize("dtype", DTYPES)
def test_roi_pool_channels_last(device, grid, dtype):
    # The CUDA kernels read a channels-last map in place; the CPU ones read its NCHW copy.
    g = torch.Generator().manual_seed(16)
    x = torch.randn(2, 67, 23, 37, generator=g, dtype=dtype)
    rois = random_rois(37, 2, 23, 37, 0.5, dtype, generator=g)
    rois[11, 3] = float("nan")
    x = x.contiguous(memory_format=torch.channels_last)

    def fn(x, rois):
        return grads(lambda x: det_ops.roi_pool(x, rois, (3, 4), 0.5), x)

    got = device.run(fn, x, rois)
    assert got[1].is_contiguous(memory_format=torch.channels_last)
    assert_close(got, fn(x, rois))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("layout", ["nchw", "channels-last"])
def test_roi_pool_half(device, grid, dtype, layout):
    # 16-bit maps are read natively: the maxima are the float32 ones exactly; the gradient
    # is summed in a float32 buffer and rounded once.
    g = torch.Generator().manual_seed(19)
    x = torch.randn(2, 67, 23, 37, generator=g).to(dtype)
    rois = random_rois(37, 2, 23, 37, 0.5, torch.float32, generator=g)
    if layout == "channels-last":
        x = x.contiguous(memory_format=torch.channels_last)
    weight = torch.randn(37, 67, 3, 4, generator=g).to(dtype).float()

    def fn(x, rois, weight):
        x = x.detach().requires_grad_()
        out = det_ops.roi_pool(x, rois, (3, 4), 0.5)
        return out, torch.autograd.grad((out.float() * weight).sum(), x)[0]

    out, grad = device.run(fn, x, rois, weight)
    assert out.dtype == dtype and grad.dtype == dtype
    expected_out, expected_grad = fn(x.float(), rois, weight)
    assert torch.equal(out.float(), expected_out)
    torch.testing.assert_close(grad.float(), expected_grad, **HALF_TOLERANCE[dtype])


def test_roi_align_non_contiguous_input(device):
    g = torch.Generator().manual_seed(6)
    x = torch.randn(1, 16, 21, 30, generator=g).permute(0, 1, 3, 2)
    rois = random_rois(40, 1, 30, 21, 1 / 16, torch.float32, generator=g)

    def fn(x, rois):
        return det_ops.roi_align(x, rois, 7, 1 / 16, 2, True)

    torch.testing.assert_close(device.run(fn, x, rois), fn(x, rois), rtol=1e-5, atol=1e-5)


def feature_pyramid(dtype, channels, seed, layouts):
    """Maps of two images at strides 4, 8, 16 and 32 of a 92 x 148 image, in the given
    layouts ("nchw" or "nhwc"), and 61 RoIs over them with their levels (one RoI with a NaN
    corner, pooled to zeros)."""
    g = torch.Generator().manual_seed(seed)
    maps = []
    for stride, layout in zip((4, 8, 16, 32), layouts, strict=True):
        x = torch.randn(2, channels, -(-92 // stride), -(-148 // stride), generator=g)
        x = x.to(dtype)
        maps.append(x.contiguous(memory_format=torch.channels_last) if layout == "nhwc" else x)
    rois = random_rois(61, 2, 92, 148, 1.0, dtype, generator=g)
    rois[11, 3] = float("nan")
    return maps, rois, torch.randint(0, 4, (61,), generator=g)


PYRAMID_SCALES = [1 / 4, 1 / 8, 1 / 16, 1 / 32]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("aligned", [False, True, "legacy"])
@pytest.mark.parametrize("layouts", [("nchw",) * 4, ("nhwc", "nchw", "nhwc", "nhwc")])
def test_multi_level_roi_align(device, grid, dtype, aligned, layouts):
    # 67 channels end each RoI's run of outputs inside a block; the levels mix layouts.
    maps, rois, levels = feature_pyramid(dtype, 67, 23, layouts)

    def fn(rois, levels, *maps):
        return grads(
            lambda *maps: det_ops.multi_level_roi_align(
                list(maps), rois, levels, (7, 6), PYRAMID_SCALES, 0, aligned
            ),
            *maps,
        )

    got = device.run(fn, rois, levels, *maps)
    for grad, layout in zip(got[1:], layouts, strict=True):
        assert grad.is_contiguous(
            memory_format=torch.channels_last if layout == "nhwc" else torch.contiguous_format
        )
    assert_close(got, fn(rois, levels, *maps), **tolerance(device, dtype))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_multi_level_roi_align_half(device, grid, dtype):
    # 16-bit maps are read natively on CUDA (float32 RoIs and gradient buffers), as roi_align.
    maps, rois, levels = feature_pyramid(torch.float32, 19, 24, ("nchw", "nhwc", "nchw", "nhwc"))
    maps = [m.to(dtype) for m in maps]
    weight = torch.randn(61, 19, 7, 7, generator=torch.Generator().manual_seed(25))
    weight = weight.to(dtype).float()

    def fn(rois, levels, weight, *maps):
        maps = [m.detach().requires_grad_() for m in maps]
        out = det_ops.multi_level_roi_align(maps, rois, levels, 7, PYRAMID_SCALES, 2, True)
        return out, *torch.autograd.grad((out.float() * weight).sum(), maps)

    out, *grads_ = device.run(fn, rois, levels, weight, *maps)
    assert out.dtype == dtype and all(g.dtype == dtype for g in grads_)
    expected = fn(rois, levels, weight, *(m.float() for m in maps))
    tol = HALF_TOLERANCE[dtype]
    for g, e in zip((out, *grads_), expected, strict=True):
        torch.testing.assert_close(g.float(), e, **tol)


def test_multi_level_roi_align_out_of_range_levels_pool_to_zeros(device):
    # The unchecked torch op (what the public function reaches on CUDA): RoIs of no level,
    # and those of a level whose map is empty, pool to zeros and get no gradient.
    maps, rois, levels = feature_pyramid(torch.float64, 5, 26, ("nchw",) * 4)
    maps[2] = maps[2][:, :, :0]
    levels[:8] = torch.tensor([-1, 4, 9, -5, 2, 2, 2, 2])

    def fn(rois, levels, *maps):
        return grads(
            lambda *maps: torch.ops.det_ops.multi_level_roi_align(
                list(maps), rois, levels, PYRAMID_SCALES, 3, 3, 2, 1
            ),
            *maps,
        )

    got, expected = device.run(fn, rois, levels, *maps), fn(rois, levels, *maps)
    assert torch.equal(expected[0][:8], torch.zeros_like(expected[0][:8]))
    assert_close(got, expected)


# ---- Sigmoid focal loss ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("labels", [False, True])
def test_sigmoid_focal_loss(device, grid, dtype, labels):
    g = torch.Generator().manual_seed(8)
    logits = torch.randn(97, 11, generator=g, dtype=dtype) * 3
    targets = (
        torch.randint(0, 12, (97,), generator=g)  # 11: background
        if labels
        else (torch.rand(97, 11, generator=g, dtype=dtype) > 0.9).to(dtype)
    )

    def fn(logits, targets):
        return grads(lambda x: det_ops.sigmoid_focal_loss(x, targets, reduction="none"), logits)

    assert_close(device.run(fn, logits, targets), fn(logits, targets), **tolerance(device, dtype))


# ---- Deformable convolution and RoI pooling -------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_mask", [False, True])
def test_deform_conv2d(device, grid, dtype, with_mask):
    g = torch.Generator().manual_seed(9)
    x = torch.randn(2, 8, 12, 14, generator=g, dtype=dtype)
    offset = torch.randn(2, 2 * 2 * 9, 6, 7, generator=g, dtype=dtype) * 2  # 2 offset groups
    weight = torch.randn(6, 4, 3, 3, generator=g, dtype=dtype)  # 2 weight groups
    bias = torch.randn(6, generator=g, dtype=dtype)
    mask = torch.rand(2, 2 * 9, 6, 7, generator=g, dtype=dtype)
    inputs = [x, offset, weight, bias] + ([mask] if with_mask else [])

    def conv(x, offset, weight, bias, mask=None):
        return det_ops.deform_conv2d(x, offset, weight, bias, 2, 1, 1, mask)

    def fn(*inputs):
        return grads(conv, *inputs)

    tol = {"rtol": 1e-4, "atol": 1e-4} if dtype == torch.float32 else {}
    assert_close(device.run(fn, *inputs), fn(*inputs), **tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("aligned", [True, "legacy"])
@pytest.mark.parametrize("modulated", [False, True])
def test_deform_roi_pool(device, grid, dtype, aligned, modulated):
    x, rois = feature_map_and_rois(dtype, 12)
    g = torch.Generator().manual_seed(13)
    offset = torch.randn(37, 2, 7, 7, generator=g, dtype=dtype) * 0.1
    mask = torch.rand(37, 1, 7, 7, generator=g, dtype=dtype)
    # "legacy" takes the 2019 kernel's sample_per_part (4); True adapts to the RoI (0).
    args = (7, 0.5, 4 if aligned == "legacy" else 0, 0.1, aligned)

    def pool(x, rois, offset, mask=None):
        if mask is None:
            return det_ops.deform_roi_pool(x, rois, offset, *args)
        return det_ops.modulated_deform_roi_pool(x, rois, offset, mask, *args)

    def fn(x, rois, offset, *mask):
        return grads(lambda x, offset, *mask: pool(x, rois, offset, *mask), x, offset, *mask)

    inputs = [x, rois, offset] + ([mask] if modulated else [])
    assert_close(device.run(fn, *inputs), fn(*inputs), **tolerance(device, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("aligned", [True, "legacy"])
def test_deform_roi_pool_channels_last(device, grid, dtype, aligned):
    # The CUDA kernels read a channels-last map in place (threads, and the offset
    # gradient's lanes, over channels) and return a channels-last input gradient; the CPU
    # ones read an NCHW copy. 67 channels: a lane group's last round is partial.
    g = torch.Generator().manual_seed(20)
    x = torch.randn(2, 67, 23, 37, generator=g, dtype=dtype)
    rois = random_rois(37, 2, 23, 37, 0.5, dtype, generator=g)
    rois[11, 3] = float("nan")
    x = x.contiguous(memory_format=torch.channels_last)
    offset = torch.randn(37, 2, 7, 7, generator=g, dtype=dtype) * 0.1
    mask = torch.rand(37, 1, 7, 7, generator=g, dtype=dtype)
    args = (7, 0.5, 4 if aligned == "legacy" else 0, 0.1, aligned)

    def fn(x, rois, offset, mask):
        return grads(
            lambda x, offset, mask: det_ops.modulated_deform_roi_pool(x, rois, offset, mask, *args),
            x,
            offset,
            mask,
        )

    got = device.run(fn, x, rois, offset, mask)
    assert got[1].is_contiguous(memory_format=torch.channels_last)
    assert_close(got, fn(x, rois, offset, mask), **tolerance(device, dtype))


@pytest.mark.parametrize("aligned", [True, "legacy"])
def test_deform_roi_pool_with_more_bins_than_shared_memory_holds(device, aligned):
    # 17 x 17 = 289 bins, more than a block keeps shifts and divisors of in shared memory,
    # so they are computed per output element.
    g = torch.Generator().manual_seed(17)
    x = torch.randn(1, 3, 30, 31, generator=g, dtype=torch.float64)
    rois = random_rois(3, 1, 30, 31, 1.0, torch.float64, generator=g)
    offset = torch.randn(3, 2, 17, 17, generator=g, dtype=torch.float64) * 0.1
    mask = torch.rand(3, 1, 17, 17, generator=g, dtype=torch.float64)
    args = (17, 1.0, 2, 0.1, aligned)

    def fn(x, rois, offset, mask):
        return grads(
            lambda x, offset, mask: det_ops.modulated_deform_roi_pool(x, rois, offset, mask, *args),
            x,
            offset,
            mask,
        )

    assert_close(device.run(fn, x, rois, offset, mask), fn(x, rois, offset, mask))


# ---- Empty inputs ---------------------------------------------------------------------


def test_empty_inputs(device):
    f64 = torch.float64
    inputs = {
        "x": torch.randn(2, 4, 8, 8, dtype=f64),
        "empty map": torch.zeros(1, 4, 0, 8, dtype=f64),
        "no rois": torch.zeros(0, 5, dtype=f64),
        "one roi": torch.tensor([[0, 1.0, 1, 6, 6]], dtype=f64),
        "no offsets": torch.zeros(0, 2, 3, 3, dtype=f64),
        "offsets": torch.full((1, 2, 3, 3), 0.1, dtype=f64),
        "conv offsets": torch.full((1, 18, 2, 10), 0.3, dtype=f64),  # padding 2: 2 x 10 out
        "weight": torch.randn(3, 4, 3, 3, dtype=f64),
        "no logits": torch.zeros(0, 80, dtype=f64),
        "no boxes": torch.zeros(0, 4, dtype=f64),
        "boxes": torch.ones(3, 4, dtype=f64),
    }

    def empty_ops(t):
        differentiable = {  # name: (inputs to differentiate, op)
            "roi_align": ([t["x"]], lambda x: det_ops.roi_align(x, t["no rois"], 3)),
            "roi_align, empty map": (
                [t["empty map"]],
                lambda x: det_ops.roi_align(x, t["one roi"], 3),
            ),
            "roi_pool": ([t["x"]], lambda x: det_ops.roi_pool(x, t["no rois"], 3)),
            "multi_level_roi_align": (
                [t["x"], t["empty map"][:, :, :, :4].expand(2, 4, 0, 4)],
                lambda x, y: det_ops.multi_level_roi_align(
                    [x, y], t["no rois"], t["no rois"][:, 0].long(), 3, [1.0, 0.5]
                ),
            ),
            "deform_roi_pool": (
                [t["x"], t["no offsets"]],
                lambda x, offset: det_ops.deform_roi_pool(x, t["no rois"], offset, 3),
            ),
            "deform_roi_pool, empty map": (
                [t["empty map"], t["offsets"]],
                lambda x, offset: det_ops.deform_roi_pool(x, t["one roi"], offset, 3),
            ),
            "deform_conv2d, empty map": (
                [t["empty map"], t["conv offsets"], t["weight"]],
                lambda x, offset, weight: det_ops.deform_conv2d(x, offset, weight, None, 1, 2),
            ),
            "focal loss": (
                [t["no logits"]],
                lambda x: det_ops.sigmoid_focal_loss(x, t["no logits"], reduction="none"),
            ),
        }
        results = {name: grads(op, *leaves) for name, (leaves, op) in differentiable.items()}
        results["nms"] = (det_ops.nms(t["no boxes"], t["no boxes"][:, 0], 0.5),)
        results["batched_nms_padded"] = det_ops.batched_nms_padded(
            t["no boxes"],
            t["no boxes"][:, 0],
            t["no boxes"][:, 0].long(),
            0.5,
            num_groups=2,
            max_per_group=3,
        )
        results["bbox_overlaps"] = (det_ops.bbox_overlaps(t["no boxes"], t["boxes"]),)
        return results

    got, expected = device.run(empty_ops, inputs), empty_ops(inputs)
    assert got.keys() == expected.keys()
    for name, values in expected.items():
        for g, e in zip(got[name], values, strict=True):
            assert g.shape == e.shape, name
            assert torch.equal(g, e), name


# ---- torch integration ----------------------------------------------------------------


def test_opcheck(device):
    g = torch.Generator().manual_seed(11)
    x = torch.randn(2, 3, 10, 12, generator=g, dtype=torch.float64)
    rois = random_rois(4, 2, 10, 12, 0.5, torch.float64, generator=g)
    logits = torch.randn(6, 4, generator=g, dtype=torch.float64)
    targets = torch.rand(6, 4, generator=g, dtype=torch.float64)
    ops = torch.ops.det_ops

    def check(x, rois, logits, targets):
        x, logits = x.requires_grad_(), logits.requires_grad_()
        torch.library.opcheck(ops.roi_align, (x, rois, 0.5, 3, 3, 2, True))
        torch.library.opcheck(ops.roi_pool, (x, rois, 0.5, 3, 3))
        torch.library.opcheck(ops.sigmoid_focal_loss, (logits, targets, 0.25, 2.0, True))

    device.run(check, x, rois, logits, targets)


@pytest.mark.gpu
def test_kernels_run_on_the_current_stream():
    g = torch.Generator().manual_seed(10)
    x = torch.randn(1, 32, 64, 64, generator=g)
    rois = random_rois(2000, 1, 64, 64, 1.0, torch.float32, generator=g)
    expected = det_ops.roi_align(x, rois, 7, 1.0, 2)
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        got = det_ops.roi_align(x.to("cuda", non_blocking=True), rois.to("cuda"), 7, 1.0, 2)
    stream.synchronize()
    torch.testing.assert_close(got.cpu(), expected, **FLOAT32_ON_A_GPU)


@pytest.mark.gpu
def test_large_inputs_match_torchvision_on_a_gpu():
    g = torch.Generator().manual_seed(6)
    x = torch.randn(1, 256, 50, 76, generator=g).permute(0, 1, 3, 2)
    rois = random_rois(10000, 1, 76, 50, 1 / 16, torch.float32, generator=g)
    expected = det_ops.roi_align(x, rois, 7, 1 / 16, 2, True)
    got = det_ops.roi_align(x.to("cuda"), rois.to("cuda"), 7, 1 / 16, 2, True)
    torch.testing.assert_close(got.cpu(), expected, **FLOAT32_ON_A_GPU)
    theirs = torchvision.ops.roi_align(x.to("cuda"), rois.to("cuda"), 7, 1 / 16, 2, True)
    torch.testing.assert_close(got, theirs, **FLOAT32_ON_A_GPU)
    boxes, scores = clustered(100000, torch.float32, 100000)
    keep = det_ops.nms(boxes.to("cuda"), scores.to("cuda"), 0.5)
    assert torch.equal(keep.cpu(), det_ops.nms(boxes, scores, 0.5))
