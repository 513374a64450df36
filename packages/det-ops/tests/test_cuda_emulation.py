"""The emulated CUDA build itself (csrc/emulated): it launches every kernel in csrc/cuda
through the tests of test_cuda_ops.py, and it exposes barrier faults."""

import numpy as np
import pytest
import torch
from cuda_devices import Device, emulated_module, kernels_in_sources
from ops_inputs import random_boxes, random_rois

import det_ops


@pytest.fixture
def emulated():
    return Device("emulated")


def every_op_forward_and_backward():
    """Small inputs through every op that has CUDA kernels, with every gradient."""
    g = torch.Generator().manual_seed(0)
    f64 = torch.float64
    x = torch.randn(2, 4, 9, 11, generator=g, dtype=f64, requires_grad=True)
    rois = random_rois(5, 2, 9, 11, 1.0, f64, generator=g)
    pool_offset = (torch.randn(5, 2, 3, 3, generator=g, dtype=f64) * 0.1).requires_grad_()
    pool_mask = torch.rand(5, 1, 3, 3, generator=g, dtype=f64, requires_grad=True)
    conv_offset = torch.randn(2, 18, 9, 11, generator=g, dtype=f64, requires_grad=True)
    conv_mask = torch.rand(2, 9, 9, 11, generator=g, dtype=f64, requires_grad=True)
    weight = torch.randn(3, 4, 3, 3, generator=g, dtype=f64, requires_grad=True)
    logits = torch.randn(7, 3, generator=g, dtype=f64, requires_grad=True)
    targets = torch.randint(0, 4, (7,), generator=g)
    outputs = [
        det_ops.roi_align(x, rois, 3, 1.0, 2, True),
        det_ops.roi_align(x.contiguous(memory_format=torch.channels_last), rois, 3, 1.0, 2, True),
        det_ops.roi_align(x.to(torch.bfloat16), rois.float(), 3, 1.0, 2, True).double(),
        det_ops.multi_level_roi_align(
            [x, x[:, :, ::2, ::2].contiguous(memory_format=torch.channels_last)],
            rois,
            torch.arange(5) % 2,
            3,
            [1.0, 0.5],
            2,
            True,
        ),
        det_ops.roi_pool(x, rois, 3),
        det_ops.roi_pool(x.contiguous(memory_format=torch.channels_last), rois, 3),
        det_ops.roi_pool(x.to(torch.float16), rois.float(), 3).double(),
        det_ops.modulated_deform_roi_pool(x, rois, pool_offset, pool_mask, 3, 1.0, 2),
        det_ops.modulated_deform_roi_pool(
            x.contiguous(memory_format=torch.channels_last), rois, pool_offset, pool_mask, 3, 1.0, 2
        ),
        det_ops.deform_conv2d(x, conv_offset, weight, None, 1, 1, 1, conv_mask),
        det_ops.sigmoid_focal_loss(logits, targets, reduction="none"),
    ]
    leaves = [x, pool_offset, pool_mask, conv_offset, conv_mask, weight, logits]
    torch.autograd.grad(sum(out.sum() for out in outputs), leaves)
    boxes = random_boxes(70, f64, generator=g)
    det_ops.nms(boxes, torch.rand(70, generator=g, dtype=f64), 0.5)
    det_ops.bbox_overlaps(boxes, boxes)
    groups = torch.randint(0, 3, (70,), generator=g)
    det_ops.batched_nms_padded(
        boxes, torch.rand(70, generator=g, dtype=f64), groups, 0.5, num_groups=3, max_per_group=9
    )


def test_every_kernel_in_csrc_cuda_is_launched(emulated):
    emulator = emulated.module.emulator
    before = emulator.launches()
    emulated.run(every_op_forward_and_backward)
    after = emulator.launches()
    launched = {name for name, count in after.items() if count > before.get(name, 0)}
    assert launched == kernels_in_sources()


def test_the_kernel_list_is_read_from_the_sources():
    assert {"nms_mask_kernel", "nms_reduce_kernel", "roi_align_backward_kernel"} <= (
        kernels_in_sources()
    )


def rotate(emulator, values, sync):
    out = np.zeros_like(values)
    emulator.rotate_through_shared_memory(
        values.ctypes.data, out.ctypes.data, len(values) // 64, sync
    )
    return out


def test_barrier_orders_shared_memory_writes_before_reads():
    emulator = emulated_module().emulator
    values = np.arange(4 * 64, dtype=np.int64)
    expected = np.roll(values.reshape(4, 64), -1, axis=1).ravel()
    for _ in range(5):
        assert np.array_equal(rotate(emulator, values, sync=True), expected)


def test_a_missing_barrier_gives_wrong_results():
    # Each launch shuffles which thread runs first: without the barrier, some threads
    # read their neighbour's slot before the neighbour wrote it.
    emulator = emulated_module().emulator
    values = np.arange(4 * 64, dtype=np.int64)
    expected = np.roll(values.reshape(4, 64), -1, axis=1).ravel()
    for _ in range(5):
        assert not np.array_equal(rotate(emulator, values, sync=False), expected)


def test_interleavings_follow_the_seed():
    emulator = emulated_module().emulator
    values = np.arange(4 * 64, dtype=np.int64)

    def launches():
        # The first launch leaves shared memory as the seed's block order leaves it.
        emulator.set_seed(7)
        return [rotate(emulator, values, sync) for sync in (True, False, False, False)]

    first, again = launches(), launches()
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[2], first[3])


def test_a_barrier_not_reached_by_every_thread_fails_the_launch():
    emulator = emulated_module().emulator
    out = np.zeros(64, dtype=np.int64)
    with pytest.raises(RuntimeError, match=r"__syncthreads\(\) not reached by every thread"):
        emulator.divergent_barrier(out.ctypes.data)


def test_bad_launch_configuration_is_a_launch_error(emulated):
    with pytest.raises(RuntimeError, match="invalid configuration argument"):
        emulated.module.emulator.rotate_through_shared_memory(0, 0, 0, True)


def test_grid_cap_is_checked(emulated):
    with pytest.raises(ValueError, match=r"blocks must be in \[1, 2\*\*31 - 1\], got 0"):
        emulated.module.set_max_grid_blocks(0)


def test_index_width_limit_is_checked(emulated):
    with pytest.raises(ValueError, match=r"elements must be in \[0, 2\*\*30\], got -1"):
        emulated.module.set_max_index32_elements(-1)
    with pytest.raises(ValueError, match=r"elements must be in \[0, 2\*\*30\], got 1073741825"):
        emulated.module.set_max_index32_elements(2**30 + 1)
