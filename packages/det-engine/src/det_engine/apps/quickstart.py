"""``python -m det_engine.quickstart``: a detector trained, evaluated and shown in minutes on a CPU.

Trains a small detector from scratch on the built-in shapes dataset (generated on first
use, no download) within a wall-clock budget (``--budget``, default 10 minutes: the number of
iterations is planned from the measured step time and revised as the run goes), evaluates it
with the COCO metrics, and writes into the work dir:

    detections.png  validation images with the detections drawn on them
    curves.png      the losses, the learning rate and the AP (needs matplotlib; without
                    it the run says so at its start and skips the picture)
    eval.json       the COCO metrics
    log.jsonl       the training log
    iter_*.pth      the checkpoint (``python -m det_engine.demo IMAGE --ckpt ...`` and
                    ``python -m det_engine.test --ckpt ...`` reuse it)

``--iters N`` fixes the length instead (a reproducible run). The recipe (det_engine.recipes)
is the train command's path with a from-scratch model for a 2-core CPU. Where the CPU
computes bfloat16 natively, training runs under bf16 autocast, and on the CPU the weights
are channels-last. ``--family`` trains the same recipe for every family.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch

from det_engine import checkpoint as ckpt
from det_engine.apps.cli import add_data_check_arguments
from det_engine.atomic_write import WriteError
from det_engine.budget import TimeBudget, parse_duration
from det_engine.data import DataError, build_dataset, collate_fn
from det_engine.evaluation.loop import write_metrics
from det_engine.guard import NonFiniteLossError
from det_engine.optional_deps import install_command, missing
from det_engine.preflight import check_run_data
from det_engine.recipes import QUICKSTART_FAMILIES, quickstart_run
from det_engine.runtime import pick_device, set_seed
from det_engine.trainer import UnreadableImagesError
from det_engine.training import evaluate_run, make_loader, make_trainer
from det_models.builder import build_model
from det_models.checkpoint import model_from_checkpoint

FAMILIES = QUICKSTART_FAMILIES
# Seconds kept after training besides the evaluation itself: COCOeval, the pictures and the
# curves (about 10 s on 2 cores).
_AFTER_TRAINING_S = 15.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m det_engine.quickstart",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--family", default="faster_rcnn", choices=FAMILIES)
    parser.add_argument("--work-dir", default=None, help="default work_dirs/quickstart_FAMILY")
    parser.add_argument(
        "--budget",
        default="10min",
        help="wall-clock time for the whole run, training and evaluation (e.g. 10min, 600s, "
        "1.5h); ignored with --iters",
    )
    parser.add_argument(
        "--iters", type=int, default=None, help="a fixed number of training iterations"
    )
    parser.add_argument(
        "--data-root",
        default=None,
        help="where the shapes dataset lives (default $DET_DATA_HOME/shapes/v1)",
    )
    parser.add_argument("--workers", type=int, default=1, help="data loader processes")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--resume", action="store_true", help="continue from the work dir's latest checkpoint"
    )
    parser.add_argument("--log-interval", type=int, default=50)
    parser.add_argument("--num-pictures", type=int, default=6, help="validation images drawn")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--amp",
        choices=("auto", "bf16", "off"),
        default="auto",
        help="bfloat16 autocast in training; auto: on where the CPU computes bf16 natively "
        "(AVX512-BF16 or AMX) or on a CUDA device with bf16",
    )
    parser.add_argument(
        "--proposals-from",
        default="work_dirs/quickstart_rpn",
        metavar="DIR",
        help="fast_rcnn: the work dir of a `--family rpn` run whose proposals it learns from",
    )
    add_data_check_arguments(parser)
    return parser.parse_args(argv)


def shapes_datasets(
    run,
    root: str | None,
    proposals: tuple[Path, Path] | None = None,
    exclude: dict[str, set[int]] | None = None,
):
    """(train, val) shapes datasets of a quickstart run (its proposal files, and the image
    ids a data check left out per split)."""
    train_props, val_props = proposals if proposals is not None else (None, None)
    exclude = exclude or {}
    train = build_dataset(
        run.data,
        "shapes",
        root,
        "train",
        train=True,
        proposals=train_props,
        exclude_ids=exclude.get("train", ()),
    )
    val = build_dataset(
        run.data,
        "shapes",
        root,
        "val",
        train=False,
        proposals=val_props,
        exclude_ids=exclude.get("val", ()),
    )
    return train, val


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


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    args = parse_args(argv)
    if args.iters is not None and args.iters <= 0:
        print(f"error: --iters must be > 0, got {args.iters}", file=sys.stderr)
        return 2
    try:
        budget_s = None if args.iters is not None else parse_duration(args.budget)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    # Checked before any work: nothing after training may stop on a missing package.
    draw_curves = not missing("matplotlib")
    if not draw_curves:
        print(
            "note: matplotlib is not installed: the run will skip curves.png (the metrics, "
            f"pictures and checkpoint are written); to draw them: "
            f"{install_command(['matplotlib'])}",
            flush=True,
        )
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    set_seed(args.seed)
    run = quickstart_run(args.family, seed=args.seed)
    work_dir = Path(args.work_dir or f"work_dirs/quickstart_{args.family}")
    print("preparing the shapes dataset (generated on first use)...", flush=True)
    proposals = None
    if args.family == "fast_rcnn":
        rpn_ckpt = ckpt.latest(args.proposals_from) if Path(args.proposals_from).is_dir() else None
        if rpn_ckpt is None:
            print(
                f"error: --family fast_rcnn learns from an RPN's proposals: no checkpoint in "
                f"{args.proposals_from}; run `python -m det_engine.quickstart --family rpn` "
                "first or point --proposals-from at its work dir",
                file=sys.stderr,
            )
            return 2
        print(f"computing proposals with {rpn_ckpt}...", flush=True)
        proposals = write_proposals(rpn_ckpt, args.data_root, work_dir)
    exclude = None
    if not args.skip_data_check:
        try:
            exclude = check_run_data(
                run.data,
                "shapes",
                args.data_root,
                ("train", "val"),
                workers=args.check_workers,
                skip_bad_images=args.skip_bad_images,
            )
        except DataError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    train_set, val_set = shapes_datasets(run, args.data_root, proposals, exclude)
    amp = _amp(args.amp, device)
    run = dataclasses.replace(
        run,
        class_names=tuple(train_set.classes),
        amp=amp,
        schedule=dataclasses.replace(run.schedule, max_iters=args.iters or run.schedule.max_iters),
    )
    model = build_model(run.model).to(device)
    if device.type == "cpu":
        # oneDNN's convolutions run faster on channels-last weights; every conv output
        # (and its gradient) follows the weights' layout.
        model.to(memory_format=torch.channels_last)
    loader = make_loader(run, train_set, workers=args.workers)
    budget = None
    if budget_s is not None:
        budget = TimeBudget(
            deadline=started + budget_s,
            reserve_s=_evaluation_seconds(model, val_set, run, device) + _AFTER_TRAINING_S,
        )
    trainer = make_trainer(
        run,
        model,
        loader,
        work_dir,
        device=device,
        log_interval=args.log_interval,
        on_step=budget,
        max_skipped_images=args.max_skipped_images,
    )
    if args.resume:
        path = trainer.resume()
        print(f"resumed from {path} at iteration {trainer.iteration}", flush=True)
    length = (
        f"{run.schedule.max_iters} iterations"
        if budget is None
        else f"a budget of {budget_s / 60:g} min (iterations planned from the step time)"
    )
    print(
        f"training {args.family} ({_network(args.family)}, from scratch) on shapes: "
        f"{len(train_set)} images, batch {run.batch_per_gpu}, {length} on {device}"
        f"{' (bf16 autocast)' if amp else ' (fp32)'}",
        flush=True,
    )
    start = time.perf_counter()
    try:
        trainer.train()
    except NonFiniteLossError as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:  # the trainer saved a checkpoint: --resume continues
        return 130
    except WriteError:  # the trainer said what failed and which checkpoint to resume from
        return 1
    except UnreadableImagesError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    metrics = evaluate_run(run, trainer.model, val_set, device)
    eval_s = time.perf_counter() - start
    checkpoint = ckpt.checkpoint_path(work_dir, trainer.iteration)
    trainer.logger.log_eval(trainer.epoch, trainer.iteration, metrics)
    pictures = draw_validation(
        trainer.model,
        val_set,
        work_dir / "detections.png",
        args.num_pictures,
        device,
        collate_fn(run.data),
    )
    if draw_curves:
        from det_engine.apps.plot import plot_work_dir

        curves = plot_work_dir(work_dir)
    else:
        curves = f"skipped (matplotlib is not installed: {install_command(['matplotlib'])})"
    total_s = time.monotonic() - started
    write_metrics(
        work_dir / "eval.json",
        metrics,
        {
            "run": run.name,
            "checkpoint": str(checkpoint),
            "iterations": trainer.iteration,
            "budget_seconds": budget_s,
            "seconds_per_iteration": round(train_s / max(trainer.iteration, 1), 3),
            "train_seconds": round(train_s, 1),
            "eval_seconds": round(eval_s, 1),
            "total_seconds": round(total_s, 1),
            "amp": amp,
            "seed": args.seed,
        },
    )
    key = "proposal_AR@300" if run.model.family == "rpn" else "bbox_AP"
    print(
        f"\n{args.family}: {key} {metrics.get(key, float('nan')):.3f} on shapes val after "
        f"{trainer.iteration} iterations (training {train_s / 60:.1f} min, evaluation "
        f"{eval_s:.0f} s, {total_s / 60:.1f} min in all)\n"
        f"  detections: {pictures}\n  curves:     {curves}\n"
        f"  metrics:    {work_dir / 'eval.json'}\n  checkpoint: {checkpoint}",
        flush=True,
    )
    return 0


@torch.no_grad()
def _evaluation_seconds(model, val_set, run, device: torch.device, samples: int = 4) -> float:
    """The evaluation's expected time: a few validation images timed, times the set's size."""
    from det_engine.evaluation.loop import detect

    collate = collate_fn(run.data)
    model.eval()
    count = min(samples, len(val_set))
    detect(model, *collate([val_set[0]]), device)  # the first call warms caches up
    start = time.perf_counter()
    for index in range(count):
        detect(model, *collate([val_set[index]]), device)
    per_image = (time.perf_counter() - start) / max(count, 1)
    model.train()
    return per_image * len(val_set)


def _network(family: str) -> str:
    return "quarter-width VGG16 with BN" if family == "ssd" else "slim ResNet-18 FPN"


def has_fast_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively (CPU: AVX512-BF16 or AMX tiles), so that
    autocast to bf16 speeds training up instead of emulating it."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def _amp(choice: str, device: torch.device) -> str | None:
    if choice == "auto":
        return "bf16" if has_fast_bf16(device) else None
    return None if choice == "off" else choice


@torch.no_grad()
def draw_validation(
    model, val_set, out: Path, count: int, device: torch.device, collate=None
) -> Path:
    """Draws the detections on the first ``count`` validation images, 3 per row, into a PNG.

    ``collate`` batches one sample (default det_data.collate).
    """
    from det_engine.evaluation.loop import detect

    if collate is None:
        from det_data import collate
    from det_engine.visualize import draw_detections, read_rgb, save_image, tile_images

    module = model.module if hasattr(model, "module") else model
    module.eval()
    tiles = []
    for index in range(min(count, len(val_set))):
        (result,) = detect(module, *collate([val_set[index]]), device)
        names = val_set.classes
        if "labels" not in result:  # RPN proposals: one class, the best 10 drawn
            result = {
                "boxes": result["boxes"][:10],
                "scores": result["scores"][:10],
                "labels": torch.zeros(min(10, len(result["boxes"])), dtype=torch.int64),
            }
            names = ("proposal",)
        image = read_rgb(val_set.records[index].file)
        tiles.append(draw_detections(image, result, names))
    return save_image(out, tile_images(tiles, columns=3))


if __name__ == "__main__":
    sys.exit(main())
