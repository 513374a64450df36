"""Loader throughput: det-data against torchvision's CocoDetection + transforms.v2.

    python -m det_data.bench [--workers 2] [--batches 30] [--write BENCHMARKS.md]

Both loaders do the same work per image: decode the JPEG, resize keeping the ratio to
(1333, 800), flip with probability 0.5, normalise, and pad the batch to a multiple of 32;
targets are boxes and labels (no masks).
Two datasets: the built-in shapes set, and generated real-size (640x480) JPEGs in COCO format.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from det_data import shapes
from det_data.coco import CocoDataset
from det_data.collate import collate
from det_data.transforms import zoo_train_transforms

MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]


def make_jpeg_coco(root: Path, count: int = 200, size: tuple[int, int] = (640, 480)) -> Path:
    """count noisy JPEGs of size (w, h) with 3 boxes each, as a COCO annotation file."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    w, h = size
    for i in range(count):
        pixels = rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)
        Image.fromarray(pixels).resize((w, h)).save(root / "images" / f"{i}.jpg", quality=90)
        images.append({"id": i, "file_name": f"{i}.jpg", "width": w, "height": h})
        for j in range(3):
            x, y = float(rng.uniform(0, w - 100)), float(rng.uniform(0, h - 100))
            annotations.append(
                {
                    "id": 3 * i + j,
                    "image_id": i,
                    "category_id": 1 + j,
                    "bbox": [x, y, 80.0, 60.0],
                    "area": 4800.0,
                    "iscrowd": 0,
                }
            )
    categories = [{"id": k, "name": f"c{k}"} for k in (1, 2, 3)]
    ann_file = root / "annotations.json"
    ann_file.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
    return ann_file


def torchvision_collate(samples):
    """Pads like det_data.collate so that both loaders hand over the same batch tensor."""
    images = [s[0] for s in samples]
    h = math.ceil(max(i.shape[-2] for i in images) / 32) * 32
    w = math.ceil(max(i.shape[-1] for i in images) / 32) * 32
    batch = images[0].new_zeros(len(images), 3, h, w)
    for k, image in enumerate(images):
        batch[k, :, : image.shape[-2], : image.shape[-1]] = image
    return batch, [s[1] for s in samples]


def torchvision_dataset(ann_file: Path, img_dir: Path):
    transforms = v2.Compose(
        [
            v2.ToImage(),
            v2.Resize(800, max_size=1333),
            v2.RandomHorizontalFlip(0.5),
            v2.ToDtype(torch.float32),
            v2.Normalize(MEAN, STD),
            v2.SanitizeBoundingBoxes(),
        ]
    )
    dataset = torchvision.datasets.CocoDetection(str(img_dir), str(ann_file), transforms=transforms)
    return torchvision.datasets.wrap_dataset_for_transforms_v2(
        dataset, target_keys=["boxes", "labels"]
    )


def images_per_second(loader: DataLoader, batches: int) -> float:
    iterator = iter(loader)
    next(iterator)  # start-up: workers and the first batch
    count, start = 0, time.perf_counter()
    for _ in range(batches):
        try:
            images = next(iterator)[0]
        except StopIteration:
            iterator = iter(loader)
            images = next(iterator)[0]
        count += images.shape[0]
    return count / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        shapes_root = shapes.prepare()
        jpeg_ann = make_jpeg_coco(Path(tmp) / "jpeg")
        sets = {
            "shapes (160-256 px)": (
                shapes_root / "annotations" / "instances_train.json",
                shapes_root / "train",
            ),
            "640x480 JPEG, COCO format": (jpeg_ann, Path(tmp) / "jpeg" / "images"),
        }
        rows = []
        for name, (ann_file, img_dir) in sets.items():
            ours = DataLoader(
                CocoDataset(ann_file, img_dir, transforms=zoo_train_transforms()),
                batch_size=args.batch_size,
                shuffle=True,
                num_workers=args.workers,
                collate_fn=collate,
            )
            theirs = DataLoader(
                torchvision_dataset(ann_file, img_dir),
                batch_size=args.batch_size,
                shuffle=True,
                num_workers=args.workers,
                collate_fn=torchvision_collate,
            )
            # Alternating rounds, medians: load from elsewhere on the machine hits both alike.
            ours_runs, theirs_runs = [], []
            for _ in range(args.rounds):
                ours_runs.append(images_per_second(ours, args.batches))
                theirs_runs.append(images_per_second(theirs, args.batches))
            ours_ips, theirs_ips = statistics.median(ours_runs), statistics.median(theirs_runs)
            rows.append((name, ours_ips, theirs_ips))
            print(
                f"{name}: det-data {ours_ips:.1f} img/s, torchvision {theirs_ips:.1f} img/s",
                file=sys.stderr,
            )
    command = "python -m det_data.bench " + " ".join(argv if argv is not None else sys.argv[1:])
    table = "\n".join(
        [
            "| dataset | det-data (img/s) | torchvision CocoDetection + v2 (img/s) | ratio |",
            "|---|---:|---:|---:|",
        ]
        + [f"| {n} | {a:.1f} | {b:.1f} | {a / b:.2f}x |" for n, a, b in rows]
    )
    report = (
        "# det-data benchmarks\n\n"
        f"Loader throughput on the CPU, {args.workers} workers, batch {args.batch_size}: decode, "
        "resize keeping the ratio to (1333, 800), flip 0.5, normalise, pad to 32; median of "
        f"{args.rounds} alternating rounds of {args.batches} batches.\n"
        f"torch {torch.__version__}, torchvision {torchvision.__version__}. "
        f"Command: `{command.strip()}`\n\n{table}\n"
    )
    print(report)
    if args.write:
        args.write.write_text(report)


if __name__ == "__main__":
    main()
