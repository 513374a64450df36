"""The data check before training: every bad image, box, category and mask of the run's
COCO-format data found before the first step, not when the loader reaches it.

``python -m det_engine.train`` and ``det_engine.quickstart`` run :func:`check_run_data`
first (``--skip-data-check`` leaves it out): with problems, training stops with the whole
report, or with ``--skip-bad-images`` goes on without those images and says how many.
``python -m det_engine.data check ANN.json`` runs the same check alone.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from det_data import CheckReport, check_coco
from det_engine.data import DataError, annotation_files
from det_engine.distributed import is_main_process, share_from_main
from det_engine.metric_log import ProgressBar
from det_models import DataConfig


class DataCheckError(DataError):
    """The data check found problems; the message is the report and what to do."""


def default_workers() -> int:
    """Processes decoding images for the check: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def check_files(
    ann_file: Path, img_dir: Path, *, workers: int, show_progress: bool = True
) -> CheckReport:
    """:func:`det_data.check_coco` with a progress bar on stderr (rank 0)."""
    bar: ProgressBar | None = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = ProgressBar(total, enabled=show_progress and is_main_process())
        bar.update(done - bar.done)

    if show_progress and is_main_process():
        print(f"checking {ann_file} and its images in {img_dir}...", flush=True)
    return check_coco(ann_file, img_dir, workers=workers, progress=progress)


def check_run_data(
    data: DataConfig,
    source: str,
    root: str | None,
    splits: tuple[str, ...],
    *,
    workers: int | None = None,
    skip_bad_images: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, set[int]]:
    """Checks the files of ``splits`` of a run's data on rank 0; every rank gets the outcome.

    Args:
        data: the run's DataConfig.
        source: coco, shapes or an annotation JSON (VOC is not checked: ``log`` says so).
        root: the data root (``--data-root``).
        splits: "train", and "val" when the run evaluates.
        workers: processes decoding the images (0: this process; None: one per CPU at
            hand). The built-in shapes set (500 small images) is checked in this process.
        skip_bad_images: go on without the bad images instead of stopping.
        log: where the outcome is reported (rank 0).

    Returns:
        split -> image ids to leave out (empty sets when the data is clean).

    Raises:
        DataCheckError: problems were found and ``skip_bad_images`` is off; the message
            holds every report.
        DataError: a file of the data is missing.
    """
    if workers is None:
        workers = default_workers()
    if source == "shapes":  # a second's work: starting processes would cost more
        workers = 0
    outcome: tuple[str | None, dict[str, set[int]]] | None = None
    if is_main_process():
        outcome = _check(data, source, root, splits, workers, skip_bad_images, log)
    error, exclude = share_from_main(outcome)
    if error is not None:
        raise DataCheckError(error)
    return exclude


def _check(
    data: DataConfig,
    source: str,
    root: str | None,
    splits: tuple[str, ...],
    workers: int,
    skip_bad_images: bool,
    log: Callable[[str], None],
) -> tuple[str | None, dict[str, set[int]]]:
    """(the error to raise on every rank or None, split -> image ids to leave out)."""
    exclude: dict[str, set[int]] = {split: set() for split in splits}
    reports: dict[str, list[CheckReport]] = {}
    try:
        for split in splits:
            files = annotation_files(data, source, root, split)
            if files is None:
                log("data check: Pascal VOC is not checked (the check reads COCO-format files)")
                return None, exclude
            reports[split] = [check_files(ann, img_dir, workers=workers) for ann, img_dir in files]
    except (DataError, FileNotFoundError, ValueError) as err:
        return str(err), exclude
    bad = [report for split in splits for report in reports[split] if not report.ok]
    if not bad:
        images = sum(r.num_images for split in splits for r in reports[split])
        log(f"data check: {images} images and their annotations are fine")
        return None, exclude
    text = "\n".join(report.format() for report in bad)
    if not skip_bad_images:
        return (
            f"the data check found problems; training has not started:\n{text}\n"
            "Fix them, or train without the images concerned (--skip-bad-images), or leave "
            "the check out (--skip-data-check)",
            exclude,
        )
    for split in splits:
        for report in reports[split]:
            exclude[split] |= report.bad_image_ids()
    dropped = ", ".join(f"{len(ids)} of the {split} images" for split, ids in exclude.items())
    log(f"data check:\n{text}\n--skip-bad-images: training without them ({dropped} left out)")
    return None, exclude
