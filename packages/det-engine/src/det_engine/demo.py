"""``python -m det_engine.demo IMAGE... --ckpt CKPT --out DIR``: draw a checkpoint's detections.

The checkpoint (``iter_*.pth`` written by ``python -m det_engine.train``) names its zoo row,
number of classes, class names, image scale and ``--set`` overrides, so nothing else is
needed; ``--model MODEL BACKBONE SCHEDULE`` names the row for a checkpoint that does not.
One PNG per image is written into DIR (``<image stem>.png``) and its path printed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from det_engine import checkpoint as ckpt
from det_engine.visualize import draw_detections, read_rgb, save_image


class DemoError(RuntimeError):
    """A demo input (image, checkpoint, model row) that cannot be used; the message says why."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m det_engine.demo", description=__doc__)
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (jpg, png, ...)")
    parser.add_argument("--ckpt", required=True, help="a det_engine checkpoint (iter_*.pth)")
    parser.add_argument("--out", required=True, help="folder for the drawn images")
    parser.add_argument(
        "--model",
        nargs=3,
        metavar=("MODEL", "BACKBONE", "SCHEDULE"),
        default=None,
        help="the zoo row (default the one stored in the checkpoint)",
    )
    parser.add_argument("--variant", default=None, help="zoo variant (default the checkpoint's)")
    parser.add_argument("--score-thr", type=float, default=0.3, help="draw detections >= this")
    parser.add_argument(
        "--img-scale",
        type=int,
        nargs=2,
        metavar=("LONG", "SHORT"),
        default=None,
        help="test-time resize limits (default the scale the checkpoint was trained at)",
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None)
    return parser.parse_args(argv)


def load_detector(path: str | Path, row: list[str] | None = None, variant: str | None = None):
    """The ``det_models.Detector`` of a training checkpoint, and its class names.

    Args:
        path: the checkpoint.
        row: [model, backbone, schedule]; default the checkpoint config's.
        variant: default the checkpoint config's.

    Returns:
        ``(detector, class_names, config)``: the model in eval mode on the CPU with the
        checkpoint's weights; the stored names, else "class i"; the stored run config.

    Raises:
        FileNotFoundError, CheckpointError: the checkpoint is missing or unreadable.
        DemoError: the row is unknown or not stored, or the weights do not fit it.
    """
    from det_engine.data import data_config_for, data_source
    from det_engine.train import OverrideError, apply_overrides
    from det_models import Detector, zoo
    from det_models.builder import build_model
    from det_models.config import replace_path

    data = ckpt.load(path)
    config: dict[str, Any] = data.get("config") or {}
    if row is None and config.get("quickstart"):
        return _quickstart_detector(path, data, config)
    if row is None:
        row = [config.get(k) for k in ("model", "backbone", "schedule")]
        if not all(row):
            raise DemoError(
                f"checkpoint {path} does not name its zoo row; pass --model MODEL BACKBONE SCHEDULE"
            )
        variant = variant if variant is not None else config.get("variant")
    try:
        cfg = zoo.get(*row, variant)
        cfg = apply_overrides(cfg, list(config.get("overrides") or []))
    except (ValueError, OverrideError) as e:
        raise DemoError(f"checkpoint {path}: {e}") from e
    num_classes = config.get("num_classes")
    model_cfg = cfg.model
    if num_classes is not None:
        model_cfg = replace_path(model_cfg, "num_classes", int(num_classes))
    model = build_model(model_cfg)
    try:
        model.load_state_dict(data["model"], strict=True)
    except RuntimeError as e:
        name = " ".join(p for p in (*row, variant) if p)
        raise DemoError(f"the weights in {path} do not fit the zoo row {name}: {e}") from e
    # The test half of the data path the checkpoint was trained with (det_engine.data).
    source = data_source(cfg.data, config.get("data"))
    try:
        data_cfg = data_config_for(cfg.data, source, config.get("img_scale"))
    except ValueError as e:
        raise DemoError(f"checkpoint {path}: {e}") from e
    names = config.get("class_names")
    if not names:
        count = num_classes if num_classes is not None else getattr(model, "num_classes", 0)
        names = [f"class {i}" for i in range(int(count or 0))]
    return Detector(model, data_cfg), list(names), config


def _quickstart_detector(path: str | Path, data: dict[str, Any], config: dict[str, Any]):
    """load_detector for a checkpoint of ``python -m det_engine.quickstart``."""
    from det_engine.quickstart import FAMILIES, build_quickstart_model, data_config
    from det_models import Detector

    family = config["quickstart"]
    if family not in FAMILIES:
        raise DemoError(f"checkpoint {path}: unknown quickstart family {family!r}")
    if family == "fast_rcnn":
        raise DemoError(
            f"checkpoint {path} is a Fast R-CNN, which needs precomputed proposals per image; "
            "the demo draws detectors that find objects on their own"
        )
    model = build_quickstart_model(family, config.get("num_classes"))
    try:
        model.load_state_dict(data["model"], strict=True)
    except RuntimeError as e:
        raise DemoError(f"the weights in {path} do not fit the quickstart {family}: {e}") from e
    names = config.get("class_names") or [f"class {i}" for i in range(model.num_classes)]
    return Detector(model, data_config(family)), list(names), config


def output_paths(images: list[Path], out_dir: Path) -> list[Path]:
    """``out_dir/<stem>.png`` per image; a stem seen before gets ``_1``, ``_2``, ... appended."""
    seen: dict[str, int] = {}
    paths = []
    for image in images:
        count = seen.get(image.stem, 0)
        seen[image.stem] = count + 1
        suffix = f"_{count}" if count else ""
        paths.append(out_dir / f"{image.stem}{suffix}.png")
    return paths


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    images = [Path(p) for p in args.images]
    missing = [str(p) for p in images if not p.is_file()]
    if missing:
        print(f"error: no such image file: {', '.join(missing)}", file=sys.stderr)
        return 2
    from det_engine.runner import pick_device

    device = pick_device(args.device)
    try:
        detector, names, _ = load_detector(args.ckpt, args.model, args.variant)
    except (FileNotFoundError, ckpt.CheckpointError, DemoError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.img_scale is not None:
        from det_engine.data import data_config_for

        detector.data_config = data_config_for(detector.data_config, "", tuple(args.img_scale))
    detector.model.to(device)
    out_dir = Path(args.out)
    for image_path, out_path in zip(images, output_paths(images, out_dir), strict=True):
        try:
            pixels = read_rgb(image_path)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        result = detector.predict(pixels)
        drawn = draw_detections(pixels, result, names, args.score_thr)
        save_image(out_path, drawn)
        print(out_path, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
