"""The CUDA side of the build (GPU machines only)."""

import pytest
import torch

import det_ops
from det_ops import _C


@pytest.mark.gpu
def test_cuda_build_sees_the_same_devices_as_torch():
    assert _C.cuda_compiled
    assert det_ops.has_cuda()
    assert _C.cuda_device_count() == torch.cuda.device_count()


def test_has_cuda_is_false_without_a_cuda_build_or_device():
    if not _C.cuda_compiled or _C.cuda_device_count() == 0:
        assert not det_ops.has_cuda()
    else:
        assert det_ops.has_cuda()
