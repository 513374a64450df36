"""The det-ops kernels as torch ops, for code that builds its own inputs and must be traced.

Importing this module registers ``torch.ops.det_ops.*`` (custom ops with fake kernels and
autograd: nms, batched_nms, roi_align, roi_pool, deform_conv2d, deform_roi_pool,
bbox_overlaps, sigmoid_focal_loss, ...). They take tensors as the kernels do, without the
public functions' argument checks, which read concrete sizes and values that torch.export
cannot trace. A graph exported with them needs only this import to run.
"""

import torch

import det_ops._torch  # noqa: F401  (the registrations)

ops = torch.ops.det_ops
"""The ``torch.ops.det_ops`` namespace."""
