"""The quickstart's run: a recipe (det_engine.recipes) trained from scratch on the built-in
shapes dataset through det_engine.run (the train command's run), within a wall-clock budget
or for a fixed number of iterations, evaluated, and its detections and curves drawn.

``python -m det_engine.quickstart`` and ``python -m det_engine.shapes_zoo`` call
:func:`run_quickstart`.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import torch

from det_engine import checkpoint as ckpt
from det_engine.data import DataError, build_dataset, collate_fn
from det_engine.optional_deps import install_command, missing
from det_engine.recipes import quickstart_run
from det_engine.run import EXIT_OK, EXIT_USAGE, run_datasets, start_process, train_and_evaluate
from det_engine.runtime import DeviceError
from det_engine.visualize import draw_validation
from det_models import build_model, model_from_checkpoint

# Seconds kept after the evaluation: COCOeval, the pictures and the curves (about 10 s on
# 2 cores).
AFTER_EVALUATION_S = 15.0


def network_description(family: str) -> str:
    """The quickstart network of ``family``, in words."""
    return "quarter-width VGG16 with BN" if family == "ssd" else "slim ResNet-18 FPN"


@torch.no_grad()
def write_proposals(rpn_checkpoint: Path, root: str | None, out_dir: Path) -> tuple[Path, Path]:
    """Runs a quickstart RPN over both shapes splits; writes ``proposals_{train,val}.npz``.

    Each file maps image id -> float32 array[K, 5] (x1, y1, x2, y2, score) in original
    pixels, the format of ``python -m det_engine.test rpn ... --proposals-out``.
    """
    from det_data import save_proposals

    model, run = model_from_checkpoint(rpn_checkpoint)
    collate = collate_fn(run.data)
    paths = []
    for split in ("train", "val"):
        dataset = build_dataset(run.data, "shapes", root, split, train=False)
        found = {}
        for index in range(len(dataset)):
            images, metas, _ = collate([dataset[index]])
            out = model(images, metas)[0]
            found[dataset.records[index].image_id] = torch.cat(
                [out["boxes"], out["scores"][:, None]], 1
            )
        paths.append(save_proposals(out_dir / f"proposals_{split}.npz", found))
    return paths[0], paths[1]


def run_quickstart(
    family: str = "faster_rcnn",
    *,
    work_dir: str | Path | None = None,
    budget_s: float | None = 600.0,
    iters: int | None = None,
    data_root: str | None = None,
    proposals_from: str | Path = "work_dirs/quickstart_rpn",
    num_pictures: int = 6,
    device: str | None = None,
    workers: int = 0,
    threads: int | None = None,
    seed: int = 0,
    resume: str | None = None,
    amp: str | None = "auto",
    log_interval: int = 50,
    tensorboard: bool = False,
    check_data: bool = True,
    check_workers: int | None = None,
    skip_bad_images: bool = False,
    max_skipped_images: int = 10,
) -> int:
    """Trains, evaluates and draws the quickstart recipe of ``family``; returns the exit code
    (det_engine.run's; 2 also for a missing RPN run of fast_rcnn).

    Writes into ``work_dir`` (default work_dirs/quickstart_FAMILY): detections.png,
    curves.png (with matplotlib; without, the run says so at its start), eval.json (with
    the run's timings and budget), log.jsonl and the checkpoint.

    Args:
        family: one of det_engine.recipes.QUICKSTART_FAMILIES.
        work_dir: see above.
        budget_s: seconds for the whole run, training and evaluation; the iterations are
            planned from the measured step time (ignored with ``iters``).
        iters: a fixed number of training iterations instead.
        data_root: where the shapes dataset lives (generated on first use).
        proposals_from: fast_rcnn: the work dir of a ``rpn`` run whose proposals it learns
            from.
        num_pictures: validation images drawn.
        device, workers, threads, seed, resume, amp, log_interval, tensorboard: the run's
            (det_engine.run.start_process, det_engine.run.train_and_evaluate).
        check_data, check_workers, skip_bad_images, max_skipped_images: the data check and
            the images that may fail to load mid-run.

    Raises:
        ValueError: ``iters`` <= 0, or an unknown ``family``.
    """
    started = time.monotonic()
    if iters is not None and iters <= 0:
        raise ValueError(f"iters must be > 0, got {iters}")
    run = quickstart_run(family, seed=seed)
    # Checked before any work: nothing after training may stop on a missing package.
    draw_curves = not missing("matplotlib")
    if not draw_curves:
        print(
            "note: matplotlib is not installed: the run will skip curves.png (the metrics, "
            f"pictures and checkpoint are written); to draw them: "
            f"{install_command(['matplotlib'])}",
            flush=True,
        )
    try:
        picked, dtype = start_process(device, seed, amp, threads=threads)
    except (DeviceError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    work_dir = Path(work_dir or f"work_dirs/quickstart_{family}")
    print("preparing the shapes dataset (generated on first use)...", flush=True)
    proposals = None
    if family == "fast_rcnn":
        folder = Path(proposals_from)
        rpn_ckpt = ckpt.latest(folder) if folder.is_dir() else None
        if rpn_ckpt is None:
            print(
                f"error: fast_rcnn learns from an RPN's proposals: no checkpoint in {folder}; "
                "run `python -m det_engine.quickstart --family rpn` first or point "
                "--proposals-from at its work dir",
                file=sys.stderr,
            )
            return EXIT_USAGE
        print(f"computing proposals with {rpn_ckpt}...", flush=True)
        train_props, val_props = write_proposals(rpn_ckpt, data_root, work_dir)
        proposals = {"train": train_props, "val": val_props}
    try:
        train_set, val_set = run_datasets(
            run.data,
            "shapes",
            data_root,
            proposals=proposals,
            check=check_data,
            check_workers=check_workers,
            skip_bad_images=skip_bad_images,
        )
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    run = dataclasses.replace(
        run,
        class_names=tuple(train_set.classes),
        amp=dtype,
        schedule=dataclasses.replace(run.schedule, max_iters=iters or run.schedule.max_iters),
    )
    budget_s = None if iters is not None else budget_s
    print(
        f"{family}: {network_description(family)}, from scratch"
        + (f", within a budget of {budget_s / 60:g} min" if budget_s is not None else ""),
        flush=True,
    )
    pictures: dict[str, Path | str] = {}

    def draw(trainer, metrics) -> dict:
        pictures["detections"] = draw_validation(
            trainer.model,
            val_set,
            work_dir / "detections.png",
            num_pictures,
            picked,
            collate_fn(run.data),
        )
        if draw_curves:
            from det_engine.curves import plot_work_dir

            pictures["curves"] = plot_work_dir(work_dir)
        else:
            pictures["curves"] = (
                f"skipped (matplotlib is not installed: {install_command(['matplotlib'])})"
            )
        total_s = time.monotonic() - started
        return {"budget_seconds": budget_s, "total_seconds": round(total_s, 1)}

    result = train_and_evaluate(
        run,
        build_model(run.model),
        train_set,
        val_set,
        work_dir,
        device=picked,
        workers=workers,
        resume=resume,
        log_interval=log_interval,
        tensorboard=tensorboard,
        max_skipped_images=max_skipped_images,
        deadline=None if budget_s is None else started + budget_s,
        reserve_s=AFTER_EVALUATION_S,
        after_evaluation=draw,
    )
    if result.exit_code != EXIT_OK:
        return result.exit_code
    metrics, iterations = result.metrics, result.trainer.iteration
    key = "proposal_AR@300" if run.model.family == "rpn" else "bbox_AP"
    print(
        f"\n{family}: {key} {metrics.get(key, float('nan')):.3f} on shapes val after "
        f"{iterations} iterations (training {result.train_seconds / 60:.1f} min, evaluation "
        f"{result.eval_seconds:.0f} s, {result.extra['total_seconds'] / 60:.1f} min in all)\n"
        f"  detections: {pictures['detections']}\n  curves:     {pictures['curves']}\n"
        f"  metrics:    {work_dir / 'eval.json'}\n  checkpoint: {result.checkpoint}",
        flush=True,
    )
    return EXIT_OK


__all__ = ["AFTER_EVALUATION_S", "network_description", "run_quickstart", "write_proposals"]
