"""det-ops: detection kernels for numpy arrays and torch tensors.

Functions take numpy arrays (computed on the CPU, without importing torch) or
torch tensors (through ``torch.ops.det_ops``, with autograd). The nn.Module
wrappers (RoIAlign, DeformConv2dPack, ...) need torch and load on first use.
"""

from importlib import metadata as _metadata

from det_ops import _C
from det_ops.batched_nms_padded import batched_nms_padded
from det_ops.bbox_overlaps import bbox_overlaps, box_iou
from det_ops.deform_conv import deform_conv2d
from det_ops.deform_roi_pool import deform_roi_pool, modulated_deform_roi_pool
from det_ops.focal_loss import sigmoid_focal_loss
from det_ops.multi_level_roi_align import multi_level_roi_align
from det_ops.nms import batched_nms, nms, soft_nms
from det_ops.roi_align import roi_align
from det_ops.roi_pool import roi_pool

try:
    __version__ = _metadata.version("det-ops")
except _metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+unknown"


def has_cuda() -> bool:
    """Whether this build has CUDA kernels and a CUDA device is usable."""
    return bool(_C.cuda_compiled) and _C.cuda_device_count() > 0


def num_threads() -> int:
    """Threads the CPU kernels use (default: the cores this process may use,
    or the DET_OPS_NUM_THREADS environment variable)."""
    return _C.num_threads()


def set_num_threads(n: int) -> None:
    """Sets the threads the CPU kernels use."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: n must be a positive int, got {n!r}")
    _C.set_num_threads(n)


_MODULES = (
    "DeformConv2d",
    "DeformConv2dPack",
    "ModulatedDeformConv2d",
    "ModulatedDeformConv2dPack",
    "DeformRoIPool",
    "DeformRoIPoolPack",
    "ModulatedDeformRoIPoolPack",
    "RoIAlign",
    "RoIPool",
)


def __getattr__(name: str):
    if name in _MODULES:
        from det_ops import modules

        return getattr(modules, name)
    raise AttributeError(f"module 'det_ops' has no attribute {name!r}")


__all__ = [
    "__version__",
    "batched_nms",
    "batched_nms_padded",
    "bbox_overlaps",
    "box_iou",
    "deform_conv2d",
    "deform_roi_pool",
    "has_cuda",
    "modulated_deform_roi_pool",
    "multi_level_roi_align",
    "nms",
    "num_threads",
    "roi_align",
    "roi_pool",
    "set_num_threads",
    "sigmoid_focal_loss",
    "soft_nms",
    *_MODULES,
]
