"""Schedule and data settings of the 2019 zoo's configs, as typed values.

Sources: the zoo document (MODEL_ZOO_2019.md: 8 GPUs x 2 images, 1x = 12 epochs, 2x = 24,
20e with steps at 16 and 19, GN's 3x with steps at 28 and 34, Cascade Mask R-CNN X-101-64x4d
on 16 GPUs x 1 image) and the mmdetection v0.6 config files of that era for everything the
document does not state (learning rates, warmup, gradient clipping, normalisation, SSD's
schedule and augmentation). Values taken from the configs rather than the document say so
where they are defined.
"""

from __future__ import annotations

from dataclasses import dataclass

# The momentum, weight decay and warmup below are those of every 2019 config.
_MOMENTUM = 0.9
_WARMUP_ITERS = 500
_WARMUP_RATIO = 1.0 / 3.0


@dataclass(frozen=True)
class ScheduleConfig:
    """Optimiser and learning-rate schedule of one zoo row (SGD, step decay, linear warmup).

    Attributes:
        epochs: passes over the (possibly repeated) training set.
        lr_steps: epochs after which the learning rate is multiplied by `lr_gamma`.
        lr: learning rate for the whole batch of `gpus * imgs_per_gpu` images.
        momentum: SGD momentum.
        weight_decay: L2 weight decay.
        warmup: warmup policy: "linear" (every 2019 config), "constant", "exp", or None for
            no warmup.
        warmup_iters: iterations of warmup.
        warmup_ratio: learning-rate factor at the first warmup iteration.
        lr_gamma: factor applied at each step.
        grad_clip_norm: max L2 norm of all gradients, or None for no clipping.
        gpus: GPUs the released model was trained on.
        imgs_per_gpu: images per GPU per iteration.
        dataset_repeat: times the training set is repeated inside one epoch (SSD); `epochs`
            and `lr_steps` count epochs of the repeated set.
    """

    epochs: int
    lr_steps: tuple[int, ...]
    lr: float = 0.02
    momentum: float = _MOMENTUM
    weight_decay: float = 1e-4
    warmup: str | None = "linear"
    warmup_iters: int = _WARMUP_ITERS
    warmup_ratio: float = _WARMUP_RATIO
    lr_gamma: float = 0.1
    grad_clip_norm: float | None = 35.0
    gpus: int = 8
    imgs_per_gpu: int = 2
    dataset_repeat: int = 1

    @property
    def batch_size(self) -> int:
        """Images per iteration over all GPUs."""
        return self.gpus * self.imgs_per_gpu

    @property
    def total_epochs(self) -> int:
        """Passes over the original training set (epochs times the dataset repeat)."""
        return self.epochs * self.dataset_repeat


@dataclass(frozen=True)
class Normalize:
    """Per-channel image normalisation: (image - mean) / std, in the channel order given.

    Attributes:
        mean: per-channel mean, in the order of `to_rgb` (RGB if True, else BGR), 0-255 scale.
        std: per-channel standard deviation, same order and scale.
        to_rgb: whether images are converted to RGB before normalising (else kept BGR).
    """

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    to_rgb: bool


# ImageNet statistics of torchvision's pretrained weights.
PYTORCH_NORMALIZE = Normalize(
    mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375), to_rgb=True
)
# Detectron's caffe2 weights expect BGR with the mean removed and no scaling; the configs give
# the mean to four decimals (102.98, 115.95, 122.77 rounded).
CAFFE_NORMALIZE = Normalize(mean=(102.9801, 115.9465, 122.7717), std=(1.0, 1.0, 1.0), to_rgb=False)
# SSD's VGG16 weights: RGB with the mean removed and no scaling (ssd300/512 configs).
SSD_NORMALIZE = Normalize(mean=(123.675, 116.28, 103.53), std=(1.0, 1.0, 1.0), to_rgb=True)


@dataclass(frozen=True)
class SSDAugment:
    """SSD's extra training augmentation: photometric distortion, expand, IoU-constrained crop.

    Attributes:
        brightness_delta: max brightness shift, 0-255 scale.
        contrast_range: range of the contrast factor.
        saturation_range: range of the saturation factor.
        hue_delta: max hue shift, degrees.
        expand_ratio_range: range of the canvas-to-image size ratio when zooming out (the
            canvas is filled with the normalisation mean), or None for no zoom-out.
        min_ious: minimum IoU with a ground-truth box, one chosen per crop, or None for no
            crop.
        min_crop_size: smallest crop side as a fraction of the image side.
    """

    brightness_delta: int = 32
    contrast_range: tuple[float, float] = (0.5, 1.5)
    saturation_range: tuple[float, float] = (0.5, 1.5)
    hue_delta: int = 18
    expand_ratio_range: tuple[float, float] | None = (1.0, 4.0)
    min_ious: tuple[float, ...] | None = (0.1, 0.3, 0.5, 0.7, 0.9)
    min_crop_size: float = 0.3


@dataclass(frozen=True)
class DataConfig:
    """Dataset and transforms of one zoo row (det_engine.data builds the pipeline from it,
    det_models.Detector does its test half).

    Training: SSD augmentation (if any), resize to `img_scale` (or one drawn from
    `train_scales`), flip with `flip_ratio`, normalise; batches padded to `size_divisor`.
    Testing: resize to `img_scale`, normalise, pad.

    Attributes:
        dataset: "coco" or "voc0712".
        train_sets: splits trained on: COCO set names ("train2017" reads
            annotations/instances_train2017.json and the train2017/ images), or VOC ones as
            "VOC<year> <image set>".
        test_set: split the reference figures were measured on, named the same way.
        img_scale: (long side, short side) limits in pixels when `keep_ratio`, else (w, h).
        keep_ratio: resize keeping the aspect ratio (else to exactly `img_scale`).
        flip_ratio: probability of a horizontal flip in training.
        normalize: pixel normalisation.
        size_divisor: pad the image's height and width to a multiple of this, or None.
        with_mask: whether instance masks are loaded (mask models).
        train_proposals: precomputed proposal file for training (Fast R-CNN), relative to
            the dataset root, or None.
        test_proposals: precomputed proposal file for testing, or None.
        num_max_proposals: proposals per image kept from a proposal file (its first ones).
        ssd_augment: SSD's extra augmentation, or None.
        train_scales: multi-scale training: scales to draw from (see `multiscale_mode`)
            instead of `img_scale`, or None.
        multiscale_mode: "value" (one of `train_scales`) or "range" (long and short side
            drawn uniformly between the smallest and largest of `train_scales`).
        legacy_resize: resize as the 2019 pipeline did (mmcv imrescale / imresize: bilinear
            without antialiasing on the 8-bit image, rounded to 8 bits; a keep-ratio scale
            factor is one number for both axes). Set for the zoo's released checkpoints;
            otherwise images are resized in float, antialiased when shrinking.
    """

    dataset: str
    train_sets: tuple[str, ...]
    test_set: str
    img_scale: tuple[int, int]
    keep_ratio: bool
    normalize: Normalize
    size_divisor: int | None
    with_mask: bool = False
    flip_ratio: float = 0.5
    train_proposals: str | None = None
    test_proposals: str | None = None
    num_max_proposals: int = 1000
    ssd_augment: SSDAugment | None = None
    train_scales: tuple[tuple[int, int], ...] | None = None
    multiscale_mode: str = "value"
    legacy_resize: bool = False


# (epochs, lr steps) of the two-stage and RetinaNet schedules. 1x and 2x follow Detectron;
# 20e is stated in the Cascade notes and 3x (epochs 28, 34, 36) in the GN notes.
_EPOCH_SCHEDULES: dict[str, tuple[int, tuple[int, ...]]] = {
    "1x": (12, (8, 11)),
    "2x": (24, (16, 22)),
    "20e": (20, (16, 19)),
    "3x": (36, (28, 34)),
}

# SSD from the v0.6.0 configs (configs/ssd300_coco.py, ssd512_coco.py, pascal_voc/ssd*_voc.py;
# not stated in the zoo document): 24 epochs over a repeated training set, no gradient
# clipping, weight decay 5e-4, linear warmup of 500 iterations from 1/3. COCO: 8 images per
# GPU, repeated 5 times (24 x 5 = "120e"), lr 2e-3, steps 16 and 22; VOC07+12: 4 images per
# GPU, repeated 10 times ("240e"), lr 1e-3, steps 16 and 20.
_SSD_SCHEDULES: dict[str, ScheduleConfig] = {
    "120e": ScheduleConfig(
        epochs=24,
        lr_steps=(16, 22),
        lr=2e-3,
        weight_decay=5e-4,
        grad_clip_norm=None,
        imgs_per_gpu=8,
        dataset_repeat=5,
    ),
    "240e": ScheduleConfig(
        epochs=24,
        lr_steps=(16, 20),
        lr=1e-3,
        weight_decay=5e-4,
        grad_clip_norm=None,
        imgs_per_gpu=4,
        dataset_repeat=10,
    ),
}

# Fast R-CNN trains and tests on proposals precomputed by the R-50-FPN RPN (the configs use the
# same files for every backbone).
_TRAIN_PROPOSALS = "proposals/rpn_r50_fpn_1x_train2017.pkl"
_TEST_PROPOSALS = "proposals/rpn_r50_fpn_1x_val2017.pkl"

SSD_SIZES = {"ssd300": 300, "ssd512": 512}
MASK_MODELS = frozenset({"mask_rcnn", "cascade_mask_rcnn"})


def schedule_config(
    model: str, schedule: str, *, gpus: int = 8, imgs_per_gpu: int = 2
) -> ScheduleConfig:
    """The optimiser and schedule of a zoo row from its model and schedule name.

    Args:
        model: zoo model name, e.g. "faster_rcnn", "ssd300".
        schedule: schedule name: "1x", "2x", "20e", "3x" (two-stage, RetinaNet) or
            "120e", "240e" (SSD).
        gpus: GPUs of the released run (16 for Cascade Mask R-CNN X-101-64x4d).
        imgs_per_gpu: images per GPU of the released run.

    Returns:
        The ScheduleConfig of that row.
    """
    if model in SSD_SIZES:
        if schedule not in _SSD_SCHEDULES:
            raise ValueError(
                f"schedule must be one of {sorted(_SSD_SCHEDULES)} for {model}, got {schedule!r}"
            )
        return _SSD_SCHEDULES[schedule]
    if schedule not in _EPOCH_SCHEDULES:
        raise ValueError(
            f"schedule must be one of {sorted(_EPOCH_SCHEDULES)} for {model}, got {schedule!r}"
        )
    epochs, steps = _EPOCH_SCHEDULES[schedule]
    # RetinaNet's configs halve the learning rate: the dense focal-loss head diverges at 0.02.
    lr = 0.01 if model == "retinanet" else 0.02
    return ScheduleConfig(
        epochs=epochs, lr_steps=steps, lr=lr, gpus=gpus, imgs_per_gpu=imgs_per_gpu
    )


def data_config(model: str, variant: str | None, normalize: Normalize) -> DataConfig:
    """The dataset and transforms of a zoo row.

    Args:
        model: zoo model name.
        variant: the row's variant (None, "mask", "voc", "gn", ...).
        normalize: pixel normalisation matching the row's pretrained backbone.

    Returns:
        The DataConfig of that row.
    """
    if model in SSD_SIZES:
        size = SSD_SIZES[model]
        voc = variant == "voc"
        return DataConfig(
            dataset="voc0712" if voc else "coco",
            train_sets=("VOC2007 trainval", "VOC2012 trainval") if voc else ("train2017",),
            test_set="VOC2007 test" if voc else "val2017",
            img_scale=(size, size),
            keep_ratio=False,
            normalize=normalize,
            # SSD resizes to a fixed square, so no padding is needed.
            size_divisor=None,
            ssd_augment=SSDAugment(),
        )
    fast = model == "fast_rcnn"
    return DataConfig(
        dataset="coco",
        train_sets=("train2017",),
        test_set="val2017",
        img_scale=(1333, 800),
        keep_ratio=True,
        normalize=normalize,
        size_divisor=32,
        with_mask=model in MASK_MODELS or (fast and variant == "mask"),
        train_proposals=_TRAIN_PROPOSALS if fast else None,
        test_proposals=_TEST_PROPOSALS if fast else None,
    )
