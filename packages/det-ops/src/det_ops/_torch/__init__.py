"""torch.library registrations of the det-ops kernels (torch.ops.det_ops.*).

Imported the first time an op sees a torch tensor, never for numpy inputs.
Each op is a custom op with a fake (meta) implementation, so it works under
torch.compile and torch.export, and differentiable ops register their autograd.
"""

from det_ops._torch import (  # noqa: F401
    batched_nms_padded,
    bbox_overlaps,
    deform_conv,
    deform_roi_pool,
    focal_loss,
    multi_level_roi_align,
    nms,
    roi_align,
    roi_pool,
)
