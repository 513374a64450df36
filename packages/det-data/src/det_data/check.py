"""A COCO-format dataset checked before training: every problem found at once, with counts.

Training meets a bad file only when the loader reaches it (hours into a COCO run, and only
the first one). :func:`check_coco` reads the annotation file and every image up front:

- images: the file exists and decodes to the end (JPEGs at 1/8 scale through PIL's draft
  mode, which still reads the whole stream, so a truncated file is found), and the size in
  its header is the annotation's width x height;
- boxes: four finite numbers, positive width and height, inside the image within a
  tolerance (pixels);
- categories: every annotation's ``category_id`` is among ``categories``, every
  ``image_id`` among ``images``;
- masks: polygons of 6+ finite coordinates in x, y pairs; RLE whose ``size`` is the
  image's [height, width] (and whose uncompressed counts add up to it).

The image files are decoded in worker processes (``workers``), reporting progress.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Problem kinds, in the order a report lists them.
KINDS = (
    "missing image",
    "unreadable image",
    "size mismatch",
    "bad image entry",
    "bad box",
    "box outside image",
    "unknown category",
    "unknown image id",
    "bad mask",
    "bad annotation",
)
# Kinds that make the image itself unusable (the rest concern one of its objects).
IMAGE_KINDS = frozenset(KINDS[:4])


@dataclass(frozen=True)
class Problem:
    """One problem: its kind (one of :data:`KINDS`), the image id (None when the problem is
    not tied to a known image) and what is wrong."""

    kind: str
    image_id: Any
    message: str


@dataclass
class CheckReport:
    """What :func:`check_coco` found in one annotation file and its image folder."""

    ann_file: Path
    img_dir: Path
    num_images: int = 0
    num_annotations: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def counts(self) -> dict[str, int]:
        """Problems per kind, in :data:`KINDS` order, kinds with none left out."""
        found = Counter(p.kind for p in self.problems)
        return {kind: found[kind] for kind in KINDS if found[kind]}

    def bad_image_ids(self) -> set[Any]:
        """The ids of the images with any problem (the ones ``--skip-bad-images`` drops)."""
        return {p.image_id for p in self.problems if p.image_id is not None}

    def format(self, limit: int = 10) -> str:
        """The report as text: a summary line, the counts per kind, then up to ``limit``
        problems of each kind."""
        head = (
            f"{self.ann_file} (images in {self.img_dir}): {self.num_images} images, "
            f"{self.num_annotations} annotations: "
        )
        if self.ok:
            return head + "no problems found"
        bad = len(self.bad_image_ids())
        lines = [head + f"{len(self.problems)} problems in {bad} images"]
        lines += [f"  {kind}: {count}" for kind, count in self.counts().items()]
        for kind in self.counts():
            of_kind = [p for p in self.problems if p.kind == kind]
            lines += [f"  - {kind}: {p.message}" for p in of_kind[:limit]]
            if len(of_kind) > limit:
                lines.append(f"  - {kind}: ... and {len(of_kind) - limit} more")
        return "\n".join(lines)


def check_image(path: str, width: int, height: int) -> tuple[str, str] | None:
    """``(kind, message)`` for an image file that is missing, does not decode to the end, or
    whose header size is not ``width x height``; None when it is fine."""
    from PIL import Image, UnidentifiedImageError

    if not os.path.isfile(path):
        return "missing image", f"{path} does not exist"
    try:
        with Image.open(path) as image:
            size = image.size
            if image.format == "JPEG":  # decode at 1/8 scale: the whole stream is still read
                image.draft("RGB", (max(size[0] // 8, 1), max(size[1] // 8, 1)))
            image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        return "unreadable image", f"{path} cannot be decoded ({err})"
    if size != (width, height):
        return (
            "size mismatch",
            f"{path} is {size[0]}x{size[1]} but the annotation file says {width}x{height}",
        )
    return None


def _check_image_job(job: tuple[Any, str, int, int]) -> tuple[Any, tuple[str, str] | None]:
    image_id, path, width, height = job
    return image_id, check_image(path, width, height)


def _finite(values: Iterable[Any]) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def _box_problem(bbox: Any, width: int, height: int, tolerance: float) -> tuple[str, str] | None:
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4 or not _finite(bbox):
        return "bad box", f"bbox {bbox!r} is not four finite numbers [x, y, w, h]"
    x, y, w, h = bbox
    if w <= 0 or h <= 0:
        return "bad box", f"bbox {list(bbox)} has width or height <= 0"
    if x < -tolerance or y < -tolerance or x + w > width + tolerance:
        return "box outside image", f"bbox {list(bbox)} leaves the {width}x{height} image"
    if y + h > height + tolerance:
        return "box outside image", f"bbox {list(bbox)} leaves the {width}x{height} image"
    return None


def _mask_problem(segm: Any, width: int, height: int) -> str | None:
    if segm is None or segm == []:
        return None
    if isinstance(segm, list):
        for polygon in segm:
            if not isinstance(polygon, list) or not _finite(polygon):
                return f"polygon {str(polygon)[:40]} is not a list of finite numbers"
            if len(polygon) < 6 or len(polygon) % 2:
                return f"a polygon has {len(polygon)} coordinates (needs x, y pairs, 3+ points)"
        return None
    if isinstance(segm, dict):
        size = segm.get("size")
        if list(size or ()) != [height, width]:
            return f"RLE size {size} is not the image's [height, width] [{height}, {width}]"
        counts = segm.get("counts")
        if isinstance(counts, list) and sum(counts) != height * width:
            return f"RLE counts add up to {sum(counts)}, not {height} x {width} pixels"
        if not isinstance(counts, (list, str, bytes)):
            return f"RLE counts of type {type(counts).__name__}"
        return None
    return f"segmentation of type {type(segm).__name__} (expected polygons or RLE)"


def _check_annotations(data: dict[str, Any], report: CheckReport, tolerance: float) -> None:
    """Adds the problems of the image entries, boxes, categories and masks to ``report``."""
    sizes: dict[Any, tuple[int, int]] = {}
    for entry in data["images"]:
        image_id = entry.get("id")
        w, h = entry.get("width"), entry.get("height")
        if image_id is None or "file_name" not in entry:
            report.problems.append(
                Problem("bad image entry", None, f"image entry {entry} lacks 'id' or 'file_name'")
            )
        elif not (isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0):
            report.problems.append(
                Problem("bad image entry", image_id, f"image id {image_id}: width {w}, height {h}")
            )
        elif image_id in sizes:
            report.problems.append(
                Problem("bad image entry", image_id, f"image id {image_id} appears twice")
            )
        else:
            sizes[image_id] = (w, h)
    categories = {c.get("id") for c in data["categories"] if isinstance(c, dict)}
    for index, ann in enumerate(data.get("annotations", [])):
        if not isinstance(ann, dict) or not {"image_id", "category_id", "bbox"} <= set(ann):
            message = f"annotation #{index} lacks image_id, category_id or bbox"
            report.problems.append(Problem("bad annotation", None, message))
            continue
        image_id, where = ann["image_id"], f"annotation id {ann.get('id')}"
        if image_id not in sizes:
            message = f"{where} refers to image id {image_id}, which is not under 'images'"
            report.problems.append(Problem("unknown image id", None, message))
            continue
        width, height = sizes[image_id]
        if ann["category_id"] not in categories:
            message = (
                f"{where} (image id {image_id}) has category_id {ann['category_id']}, not "
                f"among the categories {sorted(categories, key=str)}"
            )
            report.problems.append(Problem("unknown category", image_id, message))
        found = _box_problem(ann["bbox"], width, height, tolerance)
        if found is not None:
            kind, message = found
            report.problems.append(
                Problem(kind, image_id, f"{where} (image id {image_id}): {message}")
            )
        mask = _mask_problem(ann.get("segmentation"), width, height)
        if mask is not None:
            report.problems.append(
                Problem("bad mask", image_id, f"{where} (image id {image_id}): {mask}")
            )


def check_coco(
    ann_file: str | os.PathLike,
    img_dir: str | os.PathLike,
    *,
    workers: int = 0,
    tolerance: float = 1.0,
    progress: Callable[[int, int], None] | None = None,
) -> CheckReport:
    """Checks a COCO-format annotation file and every image it names (see the module).

    Args:
        ann_file: the COCO JSON file.
        img_dir: the folder of the images' ``file_name``.
        workers: processes decoding the images (0: in this process).
        tolerance: how far (pixels) a box may reach outside its image.
        progress: called after each image with (images checked, images in all).

    Returns:
        A :class:`CheckReport` holding every problem found.

    Raises:
        FileNotFoundError: no annotation file.
        ValueError: it is not JSON, or lacks the ``images`` / ``categories`` lists (nothing
            else can be checked then).
    """
    ann_file, img_dir = Path(ann_file), Path(img_dir)
    if not ann_file.is_file():
        raise FileNotFoundError(f"annotation file {ann_file} does not exist")
    try:
        data = json.loads(ann_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"annotation file {ann_file} is not valid JSON: {err}") from err
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), list) for k in ("images", "categories")
    ):
        raise ValueError(
            f"annotation file {ann_file}: expected lists under 'images' and 'categories'"
        )
    report = CheckReport(ann_file, img_dir, len(data["images"]), len(data.get("annotations", [])))
    _check_annotations(data, report, tolerance)
    jobs = [
        (entry["id"], str(img_dir / entry["file_name"]), entry["width"], entry["height"])
        for entry in data["images"]
        if isinstance(entry.get("width"), int)
        and isinstance(entry.get("height"), int)
        and "file_name" in entry
        and "id" in entry
    ]
    found = dict(_run(jobs, workers, progress))
    for image_id, *_ in jobs:  # in the file's order, whatever order the workers finished in
        if found[image_id] is not None:
            kind, message = found[image_id]
            report.problems.append(Problem(kind, image_id, f"image id {image_id}: {message}"))
    return report


def _run(jobs: list, workers: int, progress: Callable[[int, int], None] | None) -> Iterable:
    """The image checks of ``jobs``, in worker processes when ``workers`` > 0."""
    if workers <= 0 or len(jobs) < 2 * workers:
        for done, job in enumerate(jobs, start=1):
            yield _check_image_job(job)
            if progress is not None:
                progress(done, len(jobs))
        return
    # fork where the platform has it: the workers need nothing but this module
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    chunk = max(1, min(64, len(jobs) // (workers * 8)))
    with context.Pool(workers) as pool:
        results = pool.imap_unordered(_check_image_job, jobs, chunksize=chunk)
        for done, result in enumerate(results, start=1):
            yield result
            if progress is not None:
                progress(done, len(jobs))
