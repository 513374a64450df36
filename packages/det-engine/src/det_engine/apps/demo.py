"""``python -m det_engine.demo IMAGE... --ckpt CKPT --out DIR``: draw a checkpoint's detections.

The checkpoint (``iter_*.pth`` written by ``python -m det_engine.train`` or
``det_engine.quickstart``) holds its run record: the model with its ``--set`` overrides and
classes, the class names and the test pipeline it was trained with, so nothing else is
needed.
One PNG per image is written into DIR (``<image stem>.png``) and its path printed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from det_engine.checkpoint import CheckpointError, resolve
from det_engine.visualize import draw_detections, read_rgb, save_image


class DemoError(RuntimeError):
    """A demo input (image, checkpoint, model row) that cannot be used; the message says why."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m det_engine.demo", description=__doc__)
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (jpg, png, ...)")
    parser.add_argument(
        "--ckpt",
        required=True,
        help="a det_engine checkpoint (iter_*.pth), or a work dir: its latest",
    )
    parser.add_argument("--out", required=True, help="folder for the drawn images")
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


def load_detector(path: str | Path):
    """The ``det_models.Detector`` of a training checkpoint, and its class names.

    Returns:
        ``(detector, class_names, run)``: the model in eval mode on the CPU with the
        checkpoint's weights and its run's test pipeline; the stored names, else "class i";
        the run record.

    Raises:
        FileNotFoundError, CheckpointError: the checkpoint is missing, unreadable, or has no
            run record or weights that fit it.
        DemoError: a Fast R-CNN (it needs proposals per image).
    """
    from det_models import Detector, model_from_checkpoint

    model, run = model_from_checkpoint(path)
    if run.model.family == "fast_rcnn":
        raise DemoError(
            f"checkpoint {path} is a Fast R-CNN, which needs precomputed proposals per image; "
            "the demo draws detectors that find objects on their own"
        )
    names = run.class_names or [f"class {i}" for i in range(run.model.num_classes)]
    return Detector(model, run.data), list(names), run


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
    from det_engine.runtime import DeviceError, pick_device

    try:
        device = pick_device(args.device)
    except DeviceError as e:
        print(f"error: --device {args.device}: {e}", file=sys.stderr)
        return 2
    try:
        detector, names, _ = load_detector(resolve(args.ckpt))
    except (FileNotFoundError, CheckpointError, DemoError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.img_scale is not None:
        from det_engine.data import data_config_for

        detector.data_config = data_config_for(detector.data_config, "", tuple(args.img_scale))
    detector.model.to(device)
    out_dir = Path(args.out)
    for image_path, out_path in zip(images, output_paths(images, out_dir), strict=True):
        try:
            pixels = read_rgb(image_path)  # the pixels evaluation sees (det_data.read_image)
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
