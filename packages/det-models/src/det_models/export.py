"""A detector as a graph for deployment: torch.export of its inference, tensors in and out.

A detector's forward takes image metas (Python dicts) and returns a list of dicts; a
deployed graph takes tensors and returns a fixed tuple of tensors. `ExportableDetector`
is that adapter; `export_detector` runs ``torch.export.export`` on it and refuses, naming
the op, the parts that no deployment runtime can run.

The graph takes the padded batch and each image's (height, width) before padding
(image_sizes), as the metas' img_shape: the boxes are clipped to the image, as in eager
inference, and come out in input pixels (scale_factor 1, ori_shape = img_shape). Moving them
to the original image (divide by the scale factor) is the caller's step, as
``det_engine.deploy`` does.

>>> model = zoo.build("faster_rcnn", "r50", "1x", num_classes=3).eval()  # doctest: +SKIP
>>> program = export_detector(model, torch.zeros(1, 3, 320, 320), dynamic=True)  # doctest: +SKIP
>>> boxes, scores, labels, image_index = program.module()(images, image_sizes)  # doctest: +SKIP

The det_ops ops stay ``det_ops::<op>`` nodes in the program; det_engine.export translates
them for ONNX.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from det_heads import RoIExtractor
from det_heads.roi.mask_paste import paste_masks
from det_models.detectors import RPN, FasterRCNN
from det_models.detectors.single_stage import SingleStageDetector

# Names of the exported graph's outputs: proposals, detections, detections with masks.
PROPOSAL_OUTPUTS = ("boxes", "scores", "image_index")
DETECTION_OUTPUTS = ("boxes", "scores", "labels", "image_index")
MASK_OUTPUTS = ("boxes", "scores", "labels", "mask_probs", "image_index")

# The smallest input a graph for any image size is traced on: every map of a stride-128
# level is then at least 4 x 4.
DYNAMIC_TRACE_SIZE = 512


class ExportError(ValueError):
    """A detector (or a part of it) that cannot be exported; the message names the op."""


def input_metas(images: Tensor, image_sizes: Tensor) -> list[dict]:
    """The metas of a padded batch whose images are image_sizes int64[B, 2] (height, width)
    before padding, left in input pixels (see the module docstring)."""
    pad_shape = (images.shape[-2], images.shape[-1], 3)
    metas = []
    for height, width in image_sizes.tolist():
        # In a graph these are sizes it reads when it runs; say what they can be.
        torch._check(height >= 1)
        torch._check(height <= images.shape[-2])
        torch._check(width >= 1)
        torch._check(width <= images.shape[-1])
        shape = (height, width, 3)
        metas.append(
            {
                "img_shape": shape,
                "pad_shape": pad_shape,
                "ori_shape": shape,
                "scale_factor": 1.0,
                "flip": False,
            }
        )
    return metas


class ExportableDetector(nn.Module):
    """A detector in eval mode with one tensor in and a fixed tuple of tensors out.

    Args:
        detector: RPN, FasterRCNN (also Mask / Cascade R-CNN: their masks are not among the
            outputs) or a single-stage detector (RetinaNet, SSD).

    forward(images Tensor[B, 3, H, W], normalised and padded; image_sizes int64[B, 2], each
    image's (height, width) before padding) returns the detections of all images
    concatenated: boxes Tensor[N, 4] (x1, y1, x2, y2, input pixels), scores
    Tensor[N], labels int64[N] (not for an RPN) and image_index int64[N] (the image of each
    detection, 0..B-1); `output_names` names them in that order. Mask models also return
    mask_probs Tensor[N, M, M] (M = 28 in the zoo), each box's mask probabilities for its
    label, before pasting (paste with det_heads' paste_masks, or the deploy helper).
    """

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        if not isinstance(detector, (RPN, FasterRCNN, SingleStageDetector)):
            raise ExportError(
                f"ExportableDetector: cannot export a {type(detector).__name__}; expected an "
                "RPN, Faster / Mask / Cascade R-CNN, RetinaNet or SSD (Fast R-CNN needs "
                "proposals from outside the graph)"
            )
        check_exportable(detector)
        self.detector = detector.eval()

    @property
    def with_masks(self) -> bool:
        roi_head = getattr(self.detector, "roi_head", None)
        return any(
            getattr(roi_head, name, None) is not None for name in ("mask_head", "mask_heads")
        )

    @property
    def output_names(self) -> tuple[str, ...]:
        if isinstance(self.detector, RPN):
            return PROPOSAL_OUTPUTS
        return MASK_OUTPUTS if self.with_masks else DETECTION_OUTPUTS

    def forward(self, images: Tensor, image_sizes: Tensor) -> tuple[Tensor, ...]:
        metas = input_metas(images, image_sizes)
        if self.with_masks:
            # The detector's eval forward, with masks left unpasted: pasting loops over the
            # boxes in Python, which a graph cannot hold.
            feats = self.detector.neck(self.detector.backbone(images))
            proposals = self.detector.rpn.predict(feats, metas, padded=True)
            detections = self.detector.roi_head.predict(
                feats, proposals, metas, mask_probs_only=True
            )
        else:
            detections = self.detector(images, metas)
        image_index = torch.cat(
            [torch.full_like(d["scores"], i, dtype=torch.int64) for i, d in enumerate(detections)]
        )
        outputs = [torch.cat([d[name] for d in detections]) for name in self.output_names[:-1]]
        return (*outputs, image_index)


def check_exportable(detector: nn.Module) -> None:
    """Raises ExportError naming the op when a part of detector has no export.

    Deformable RoI pooling (the dpool and mdpool variants) is a det_ops kernel with no
    ONNX operator and no decomposition into standard ones.
    """
    for name, module in detector.named_modules():
        if isinstance(module, RoIExtractor) and module.pool in ("dpool", "mdpool"):
            raise ExportError(
                f"cannot export {type(detector).__name__}: {name} pools RoIs with "
                "det_ops::deform_roi_pool (deformable RoI pooling), which has no ONNX operator; "
                "export a variant without dpool / mdpool"
            )


# det_ops' deformable convolutions (the dconv / mdconv backbones), by class name: det-models
# does not import det_ops.
DEFORM_CONVS = frozenset(
    {"DeformConv2d", "DeformConv2dPack", "ModulatedDeformConv2d", "ModulatedDeformConv2dPack"}
)


def check_onnx_exportable(detector: nn.Module) -> None:
    """Raises ExportError naming the op when a part of detector has no ONNX translation yet:
    the deformable convolutions of the dconv / mdconv backbones (the .pt2 keeps them as
    det_ops kernels)."""
    for name, module in detector.named_modules():
        if type(module).__name__ in DEFORM_CONVS:
            raise ExportError(
                f"cannot export {type(detector).__name__} to ONNX: {name} is a deformable "
                "convolution (det_ops::deform_conv2d), which has no ONNX translation here yet; "
                "export it as .pt2 (--format pt2) or a variant without dconv / mdconv"
            )


def export_detector(
    detector: nn.Module,
    example_images: Tensor,
    example_sizes: Tensor | None = None,
    *,
    dynamic: bool = False,
) -> torch.export.ExportedProgram:
    """The detector's inference as a torch.export program (see ExportableDetector).

    Args:
        detector: the detector (put in eval mode).
        example_images: Tensor[B, 3, H, W], the input the graph is traced on; its batch
            size is fixed in the graph. With dynamic, a smaller input than
            DYNAMIC_TRACE_SIZE is traced at that size instead (zeros): torch.export fixes
            any size of 1, such as that of RetinaNet's P7 (stride 128) on a small image.
        example_sizes: int64[B, 2], the images' sizes before padding (default: unpadded).
        dynamic: whether the graph takes any image height and width (multiples of 32 up to
            4096); else it takes exactly example_images' size.

    Returns:
        The ExportedProgram; ``program.module()(images, image_sizes)`` runs it,
        ``torch.export.save``
        writes it as a .pt2 file.

    Raises:
        ExportError: a part of the detector cannot be exported (the message names the op).
    """
    if not isinstance(example_images, Tensor) or example_images.dim() != 4:
        got = getattr(example_images, "shape", type(example_images))
        raise ValueError(f"example_images must be a Tensor[B, 3, H, W], got {got}")
    wrapper = ExportableDetector(detector)
    dynamic_shapes = None
    if dynamic:
        batch, channels, height, width = example_images.shape
        if min(height, width) < DYNAMIC_TRACE_SIZE:
            height, width = max(height, DYNAMIC_TRACE_SIZE), max(width, DYNAMIC_TRACE_SIZE)
            example_images = example_images.new_zeros(batch, channels, height, width)
            example_sizes = None
        # H = 32 * h: the padded inputs the data pipeline makes, and the strides of the maps.
        h, w = torch.export.Dim("h", min=2, max=128), torch.export.Dim("w", min=2, max=128)
        dynamic_shapes = {"images": {2: 32 * h, 3: 32 * w}, "image_sizes": None}
    if example_sizes is None:
        full = torch.tensor(example_images.shape[-2:], dtype=torch.int64)
        example_sizes = full.repeat(example_images.shape[0], 1)
    with torch.no_grad():
        return torch.export.export(
            wrapper, (example_images, example_sizes), dynamic_shapes=dynamic_shapes
        )


def paste_mask_probs(
    mask_probs: Tensor, boxes: Tensor, image_size: tuple[int, int], style: str = "det"
) -> Tensor:
    """uint8 Tensor[N, H, W] masks in an image from a graph's mask_probs Tensor[N, M, M] and
    boxes Tensor[N, 4] (x1, y1, x2, y2) in that image's pixels; style as the model's
    conventions.mask_paste ("det", "mmdet" or "torchvision")."""
    return paste_masks(mask_probs, boxes, image_size, style=style)


def mask_paste_style(detector: nn.Module) -> str | None:
    """The detector's mask paste style (its conventions.mask_paste), None without masks."""
    roi_head = getattr(detector, "roi_head", None)
    if not ExportableDetector(detector).with_masks:
        return None
    return roi_head.conventions.mask_paste
