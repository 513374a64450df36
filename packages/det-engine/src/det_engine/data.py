"""The data pipeline of a zoo row: its DataConfig made into det-data datasets and transforms.

One path for every command: train, test, quickstart, bench and demo build their data here.
The test half's per-image work is det_models' (``det_models.preprocess_image``, the step
``det_models.Detector`` runs on its inputs), wrapped as a det-data transform; only the
padding of a batch is det-data's collate.

Training: SSD augmentation when the row has it (photometric distortion, zoom-out filled with
the mean colour, min-IoU crop), resize to the row's scale (keeping the ratio, or SSD's
square), horizontal flip with the row's ratio; the batch is padded to the row's size divisor and
normalised (mean/std, RGB or BGR) where training runs: batches leave the loader as 0..255
images (uint8 as decoded; SSD rows, whose augmentation works in float, normalise in the
loader) and the Trainer calls :func:`batch_normalizer`'s ``det_models.normalize_batch`` on
the device. Testing: det_models' resize and normalise, pad.
Fast R-CNN rows read precomputed proposal files, for training and for testing.

Data sources: ``coco`` (COCO 2017 layout), ``voc`` (a VOCdevkit), ``shapes`` (the built-in
set) or the path of a COCO-format annotation JSON.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from torch import Tensor

from det_data import (
    CocoDataset,
    Compose,
    Expand,
    MinIoURandomCrop,
    Normalize,
    PhotoMetricDistortion,
    RandomFlip,
    Resize,
    VOCDataset,
    collate,
    resize_target,
    shapes,
)
from det_models import DataConfig, normalize_batch, preprocess_image

SHAPES_SCALE = (256, 192)  # the shapes dataset's own scale: its images are 256 x 256 at most
VOC_SCALE = (1000, 600)  # the 2019 zoo's Pascal VOC configs (for keep-ratio rows)
COCO_SETS = {"train": ("train2017",), "val": ("val2017",)}
VOC_SETS = {"train": ("VOC2007 trainval", "VOC2012 trainval"), "val": ("VOC2007 test",)}
SPLITS = ("train", "val")


class DataError(RuntimeError):
    """The requested data cannot be found or used; the message says where it looked."""


# ----------------------------------------------------------------------------- config


def data_source(data: DataConfig, requested: str | None) -> str:
    """The data source: ``requested`` (``--data``), else the row's dataset (coco or voc)."""
    if requested:
        return requested
    return "voc" if data.dataset.startswith("voc") else "coco"


def data_config_for(
    data: DataConfig, source: str, img_scale: tuple[int, int] | None = None
) -> DataConfig:
    """The row's DataConfig as a run on ``source`` uses it.

    The scale is ``img_scale`` when given (``--img-scale``: (long, short) for keep-ratio
    rows, (width, height) for SSD's square), else for keep-ratio rows the source's own:
    ``SHAPES_SCALE`` on shapes and the zoo's VOC scale (1000, 600) for a COCO row on VOC;
    else the row's. Multi-scale training scales (``train_scales``), if any, are kept.
    """
    scale = None
    if img_scale is not None:
        scale = tuple(int(v) for v in img_scale)
        if len(scale) != 2 or min(scale) <= 0:
            raise ValueError(f"img_scale must be two positive sizes, got {img_scale}")
    elif data.keep_ratio and source == "shapes":
        scale = SHAPES_SCALE
    elif data.keep_ratio and source == "voc" and not data.dataset.startswith("voc"):
        scale = VOC_SCALE
    if scale is None:
        return data
    return dataclasses.replace(data, img_scale=scale)


def normalize(data: DataConfig) -> Normalize:
    """The row's normalisation as a det-data transform (images are decoded RGB)."""
    norm = data.normalize
    return Normalize(norm.mean, norm.std, to_bgr=not norm.to_rgb)


def normalizes_on_device(data: DataConfig) -> bool:
    """Whether the row's training batches are normalised on the training device (by
    :func:`batch_normalizer`) rather than in the loader: all but SSD rows, whose
    augmentation works on float images."""
    return data.ssd_augment is None


def batch_normalizer(data: DataConfig) -> Callable[[Tensor, list[dict[str, Any]]], Tensor] | None:
    """What the Trainer applies to each training batch on its device: the row's
    ``det_models.normalize_batch``; None for rows normalised in the loader (SSD)."""
    if not normalizes_on_device(data):
        return None
    return functools.partial(normalize_batch, data=data)


def train_transforms(data: DataConfig) -> Compose:
    """The training transforms of a row: SSD augmentation (if any), resize, flip; SSD rows
    normalise here too, the others on the device (:func:`batch_normalizer`).

    Padding is done per batch by :func:`collate_fn`.
    """
    steps: list[Any] = []
    aug = data.ssd_augment
    if aug is not None:
        steps.append(
            PhotoMetricDistortion(
                aug.brightness_delta, aug.contrast_range, aug.saturation_range, aug.hue_delta
            )
        )
        if aug.expand_ratio_range is not None:
            mean = data.normalize.mean if data.normalize.to_rgb else data.normalize.mean[::-1]
            steps.append(Expand(mean, tuple(aug.expand_ratio_range)))
        if aug.min_ious is not None:
            steps.append(MinIoURandomCrop(aug.min_ious, aug.min_crop_size))
    if data.train_scales:
        resize = Resize(
            list(data.train_scales),
            data.multiscale_mode,
            data.keep_ratio,
            legacy=data.legacy_resize,
        )
    else:
        resize = Resize(
            tuple(data.img_scale), keep_ratio=data.keep_ratio, legacy=data.legacy_resize
        )
    steps.append(resize)
    if data.flip_ratio > 0:
        steps.append(RandomFlip(data.flip_ratio))
    if not normalizes_on_device(data):
        steps.append(normalize(data))
    return Compose(steps)


class InferencePreprocess:
    """The row's test-time preprocessing as a det-data transform ``(image, meta, target)``.

    The image is resized and normalised by ``det_models.preprocess_image`` (what
    ``det_models.Detector`` does to its inputs); the target's boxes, proposals and masks are
    taken to the resized image by ``det_data.resize_target``. Padding: :func:`collate_fn`.

    Args:
        data: the row's DataConfig.
    """

    def __init__(self, data: DataConfig) -> None:
        self.data = data

    def __call__(
        self, image: Tensor, meta: dict[str, Any], target: dict[str, Any]
    ) -> tuple[Tensor, dict[str, Any], dict[str, Any]]:
        image, own = preprocess_image(image, self.data)
        height, width = own["img_shape"][:2]
        sx, sy = own["scale_factor"][:2]
        old = meta.get("scale_factor", (1.0, 1.0, 1.0, 1.0))
        meta = {
            **meta,
            "img_shape": own["img_shape"],
            "pad_shape": own["img_shape"],  # not padded yet: collate_fn pads the batch
            "scale_factor": (old[0] * sx, old[1] * sy, old[2] * sx, old[3] * sy),
        }
        return image, meta, resize_target(target, sx, sy, height, width)

    def __repr__(self) -> str:
        return f"InferencePreprocess(img_scale={tuple(self.data.img_scale)})"


def inference_transforms(data: DataConfig) -> Compose:
    """The test transforms of a row: det_models' resize and normalise (padding: in
    :func:`collate_fn`)."""
    return Compose([InferencePreprocess(data)])


def collate_fn(data: DataConfig, *, bitmap_masks: bool = False) -> Callable:
    """det_data.collate padding each batch to the row's size divisor (none for SSD);
    ``bitmap_masks``: polygon masks rasterised in the loader (for training on a GPU, where
    the mask targets are then cut on the device)."""
    return functools.partial(
        collate, size_divisor=data.size_divisor or 1, bitmap_masks=bitmap_masks
    )


# ----------------------------------------------------------------------------- datasets


def default_root(source: str, root: str | None) -> Path:
    """The data root: ``root``, else data/coco, data/VOCdevkit, the shapes cache, or the
    folder of an annotation JSON."""
    if root is not None:
        return Path(root)
    if source == "coco":
        return Path("data/coco")
    if source == "voc":
        return Path("data/VOCdevkit")
    if source == "shapes":
        return shapes.default_root()
    return Path(source).parent


def _sets(data: DataConfig, source: str, split: str) -> tuple[str, ...]:
    """The row's own sets of ``split`` on its own kind of data, else the source's usual."""
    row_is_voc = data.dataset.startswith("voc")
    if (source == "voc") == row_is_voc:
        return tuple(data.train_sets) if split == "train" else (data.test_set,)
    return (VOC_SETS if source == "voc" else COCO_SETS)[split]


def build_dataset(
    data: DataConfig,
    source: str,
    root: str | None,
    split: str,
    *,
    train: bool,
    proposals: str | Path | None = None,
    exclude_ids: Collection[int] = (),
):
    """The dataset of ``split`` with the row's transforms.

    Args:
        data: the row's DataConfig (see :func:`data_config_for`).
        source: "coco", "voc", "shapes" or a COCO-format annotation JSON.
        root: the data root (see :func:`default_root`).
        split: "train" (the row's training sets) or "val" (its test set).
        train: training transforms and filters (images without objects are left out),
            else test transforms and every image.
        proposals: a proposals file for the split (Fast R-CNN), see det_data.proposals.
        exclude_ids: image ids left out of COCO-format data (a data check's bad images).

    Returns:
        A det-data dataset (CocoDataset; VOCDataset for voc) with ``classes``. A training
        set of a row normalised on the device (:func:`normalizes_on_device`) yields its
        images as uint8 (``float_images`` off).

    Raises:
        DataError: a file or folder is missing, or proposals asked of VOC data.
    """
    dataset = _dataset(
        data, source, root, split, train=train, proposals=proposals, exclude_ids=exclude_ids
    )
    dataset.float_images = not (train and normalizes_on_device(data))
    return dataset


def _dataset(
    data: DataConfig,
    source: str,
    root: str | None,
    split: str,
    *,
    train: bool,
    proposals: str | Path | None,
    exclude_ids: Collection[int],
):
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    transforms = train_transforms(data) if train else inference_transforms(data)
    extra: dict[str, Any] = {"with_masks": data.with_mask}
    if exclude_ids:
        extra["exclude_ids"] = exclude_ids
    if proposals is not None:
        extra |= {"proposals": proposals, "max_proposals": data.num_max_proposals}
    try:
        if source == "shapes":
            path = Path(root) if root is not None else None
            return shapes.dataset(split, train=train, transforms=transforms, root=path, **extra)
        if source == "voc":
            if proposals is not None:
                raise DataError(
                    "proposal files are read for COCO-format data, not for the voc source"
                )
            if exclude_ids:
                raise DataError("images are left out of COCO-format data, not of voc")
            return build_voc(root, _sets(data, source, split), train, transforms)
        if source == "coco":
            datasets = [
                CocoDataset(*coco_files(root, name), train=train, transforms=transforms, **extra)
                for name in _sets(data, source, split)
            ]
            return _joined(datasets)
        ann = _annotation_json(source)
        img_dir = Path(root) if root is not None else ann.parent
        return CocoDataset(ann, img_dir, train=train, transforms=transforms, **extra)
    except FileNotFoundError as e:
        raise DataError(str(e)) from e


def annotation_files(
    data: DataConfig, source: str, root: str | None, split: str
) -> list[tuple[Path, Path]] | None:
    """The (annotation JSON, image folder) pairs :func:`build_dataset` reads for ``split`` of
    a COCO-format source (what the pre-flight data check reads); None for VOC.

    Raises:
        DataError: a file or folder is missing (as :func:`build_dataset` would say).
    """
    if source == "voc":
        return None
    if source == "shapes":
        base = shapes.prepare(Path(root) if root is not None else None)
        return [(base / "annotations" / f"instances_{split}.json", base / split)]
    if source == "coco":
        return [coco_files(root, name) for name in _sets(data, source, split)]
    ann = _annotation_json(source)
    return [(ann, Path(root) if root is not None else ann.parent)]


def _annotation_json(source: str) -> Path:
    """The annotation file a data source names (a COCO-format JSON).

    Raises:
        DataError: it does not exist (or names no known source).
    """
    ann = Path(source)
    if not ann.is_file():
        raise DataError(
            f"data source {source!r}: expected coco, voc, shapes or an existing COCO-format JSON "
            f"file (looked for {ann.resolve()})"
        )
    return ann


def coco_files(root: str | None, name: str) -> tuple[Path, Path]:
    """(annotation JSON, image folder) of the COCO set ``name`` (e.g. "train2017").

    Raises:
        DataError: a file or folder is missing; the message names where it looked.
    """
    base = default_root("coco", root)
    ann = base / "annotations" / f"instances_{name}.json"
    img_dir = base / name
    missing = [str(p) for p in (ann, img_dir) if not p.exists()]
    if missing:
        raise DataError(
            f"COCO not found: looked for {ann} and {img_dir} under {base.resolve()} "
            f"(missing: {', '.join(missing)}). Put COCO 2017 there, point --data-root at "
            "it, or try the small built-in dataset with --data shapes"
        )
    return ann, img_dir


def _voc_set(name: str) -> tuple[str, str]:
    year, _, image_set = name.removeprefix("VOC").partition(" ")
    if not year or not image_set:
        raise ValueError(f"VOC sets are named 'VOC<year> <image set>', got {name!r}")
    return year, image_set


def voc_lists(root: Path, sets: tuple[str, ...], train: bool) -> list[tuple[str, str]]:
    """The (year, image set) pairs of ``sets`` whose list files exist under ``root``.

    In training a set whose list is missing is left out (VOC2007 alone is fine); at least
    one must be there, and every test set.

    Raises:
        DataError: a needed list is missing; the message names where it looked.
    """
    pairs = [_voc_set(name) for name in sets]
    lists = {p: root / f"VOC{p[0]}" / "ImageSets" / "Main" / f"{p[1]}.txt" for p in pairs}
    found = [p for p, path in lists.items() if path.is_file()]
    if not found or (not train and len(found) < len(pairs)):
        looked = " and ".join(str(path) for path in lists.values())
        raise DataError(
            f"Pascal VOC not found: looked for {looked} (under {root.resolve()}). Put the "
            "VOCdevkit there (VOC2007/ with its test set, optionally VOC2012/), point "
            "--data-root at it, or try the small built-in dataset with --data shapes"
        )
    return found


def build_voc(root: str | None, sets: tuple[str, ...], train: bool, transforms: Any):
    """One VOCDataset holding the images of ``sets`` (e.g. VOC2007 + VOC2012 trainval)."""
    base = default_root("voc", root)
    datasets = [
        VOCDataset(base, image_set, year, train=train, transforms=transforms)
        for year, image_set in voc_lists(base, sets, train)
    ]
    return _joined(datasets)


def _joined(datasets: list):
    # Records carry their own file paths: one dataset can hold several sets' images.
    dataset = datasets[0]
    for other in datasets[1:]:
        dataset.records.extend(other.records)
    return dataset


# ----------------------------------------------------------------------------- proposals


def proposals_help(model: str, source: str, root: str | None) -> str:
    """How to pass and how to make proposal files, for the error messages."""
    data = f"--data {source}" + (f" --data-root {root}" if root is not None else "")
    return (
        "pass --proposals-train FILE and --proposals-test FILE (.npz, .json or .pt: per "
        "image id an array of [x1, y1, x2, y2, score] in original-image pixels; the 2019 "
        "zoo's proposal .pkl files, a list in dataset order, are read too, data only). Make "
        "them with a trained RPN: python -m det_engine.test rpn r50 1x --ckpt RPN_CKPT "
        f"{data} --split train --proposals-out proposals_train.npz, and again with "
        f"--split val --proposals-out proposals_val.npz (an RPN is trained with "
        f"python -m det_engine.train rpn r50 1x {data}); {model} then reads them"
    )


def proposal_file(
    data: DataConfig,
    *,
    needs_proposals: bool,
    model: str,
    source: str,
    root: str | None,
    split: str,
    given: str | None,
) -> Path | None:
    """The proposals file of ``split`` for a row: ``given``, else the row's own under the
    data root (``data.train_proposals`` / ``data.test_proposals``); None for rows that take
    none.

    Raises:
        DataError: proposals given to a model that takes none, a given file missing, or
            none found for a model that needs them; the message says what to pass and how
            to make the files.
    """
    flag = "--proposals-train" if split == "train" else "--proposals-test"
    if not needs_proposals:
        if given is not None:
            raise DataError(f"{flag}: {model} takes no precomputed proposals (Fast R-CNN does)")
        return None
    if given is not None:
        path = Path(given)
        if not path.is_file():
            raise DataError(f"{flag} {given}: no such file")
        return path
    own = data.train_proposals if split == "train" else data.test_proposals
    candidate = default_root(source, root) / own if own else None
    if candidate is not None and candidate.is_file():
        return candidate
    where = f"the row's file {candidate} does not exist" if candidate else "the row names none"
    raise DataError(
        f"{model} trains and tests on precomputed proposals, and for the {split} split no "
        f"{flag} was given and {where}: {proposals_help(model, source, root)}"
    )


if __name__ == "__main__":
    # ``python -m det_engine.data check ANN.json``: the command lives in
    # det_engine.apps.data_check; this module stays the library it is when imported.
    import sys

    from det_engine.apps.data_check import main

    sys.exit(main())
