"""The rules giving each 2019 zoo row its schedule and data settings (types: det_models.config).

Sources: the zoo document (MODEL_ZOO_2019.md: 8 GPUs x 2 images, 1x = 12 epochs, 2x = 24,
20e with steps at 16 and 19, GN's 3x with steps at 28 and 34, Cascade Mask R-CNN X-101-64x4d
on 16 GPUs x 1 image) and the mmdetection v0.6 config files of that era for everything the
document does not state (learning rates, warmup, gradient clipping, normalisation, SSD's
schedule and augmentation). Values taken from the configs rather than the document say so
where they are defined.
"""

from __future__ import annotations

from det_models.config import DataConfig, Normalize, ScheduleConfig, SSDAugment

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
