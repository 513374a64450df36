"""``python -m det_engine.train MODEL BACKBONE SCHEDULE``: train a zoo row, then evaluate it.

Single process, or one process per GPU under ``torchrun`` (DistributedDataParallel). The
backbone starts from the ImageNet weights the row's 2019 config names (``--backbone-weights``
to change them), found in $DET_WEIGHTS_DIR or torch.hub's cache, else downloaded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from det_engine.apps.cli import (
    DataError,
    add_common_arguments,
    add_data_check_arguments,
    build_dataset,
    row_data_config,
    stop_on_errors,
)
from det_engine.atomic_write import WriteError
from det_engine.checkpoint import CheckpointError, checkpoint_path, latest, load_model_weights
from det_engine.distributed import get_rank, get_world_size, init_from_env, is_main_process
from det_engine.evaluation.loop import write_metrics
from det_engine.guard import NonFiniteLossError
from det_engine.metric_log import tensorboard_writer_class
from det_engine.preflight import check_run_data
from det_engine.runtime import pick_device, set_seed
from det_engine.trainer import UnreadableImagesError
from det_engine.training import evaluate_run, make_loader, make_trainer, run_lr


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m det_engine.train", description=__doc__)
    add_common_arguments(parser)
    parser.add_argument(
        "--work-dir", default=None, help="default work_dirs/MODEL_BACKBONE_SCHEDULE"
    )
    parser.add_argument(
        "--resume",
        nargs="?",
        const="",
        default=None,
        help="continue from CKPT, or without a value from the work dir's latest checkpoint",
    )
    parser.add_argument("--max-iters", type=int, default=None, help="stop after N iterations")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--batch-size", type=int, default=None, help="images per process (default the zoo's 2)"
    )
    parser.add_argument("--log-interval", type=int, default=50)
    parser.add_argument("--no-eval", action="store_true", help="skip the final evaluation")
    add_data_check_arguments(parser)
    parser.add_argument(
        "--load-from",
        default=None,
        metavar="CKPT",
        help="start from these model weights (one of our checkpoints or a plain state dict; "
        "strict); unlike --resume, optimizer, schedule and iteration start afresh",
    )
    parser.add_argument(
        "--backbone-weights",
        default=None,
        metavar="FILE|URI|none",
        help="ImageNet weights the backbone starts from: a file, a URI (e.g. "
        "open-mmlab://resnet50_caffe), or none (random initialisation, with a warning); "
        "default the row's (model.backbone.pretrained), looked for in $DET_WEIGHTS_DIR and "
        "torch.hub's cache, else downloaded. Not used with --resume or --load-from, which "
        "bring whole-model weights",
    )
    parser.add_argument(
        "--amp",
        choices=("bf16", "fp16"),
        default=None,
        help="mixed precision through torch.autocast; fp16 (with a GradScaler) needs CUDA",
    )
    parser.add_argument(
        "--tensorboard",
        action="store_true",
        help="also log scalars for TensorBoard into WORK_DIR/tensorboard (needs tensorboard)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a zoo config field by dotted path, e.g. schedule.lr=0.01 or "
        "model.rpn.test_proposals.nms_thr=0.6 (VALUE is a Python literal, else a string); "
        "repeatable",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from det_models import zoo
    from det_models.builder import build_model
    from det_models.config import OverrideError, RunConfig, apply_overrides, replace_path

    if args.tensorboard:
        try:
            tensorboard_writer_class()
        except ImportError as e:
            print(f"error: --tensorboard: {e}", file=sys.stderr)
            return 2
    device = pick_device(args.device)
    if args.amp == "fp16" and device.type != "cuda":
        print("error: --amp fp16 needs --device cuda; on the CPU use --amp bf16", file=sys.stderr)
        return 2
    dist_info = init_from_env(device=device)  # gloo for --device cpu, NCCL for cuda
    if dist_info.world_size > 1 and device.type == "cuda":
        device = dist_info.device
    set_seed(args.seed + get_rank())
    cfg = zoo.get(args.model, args.backbone, args.schedule, args.variant)
    try:
        cfg = apply_overrides(cfg, args.overrides)
    except OverrideError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    weights = backbone_weights_source(args, cfg)
    if find_weights_on_every_rank(weights, dist_info.local_rank):
        return 2
    family = cfg.model.family
    error = None
    try:
        source, data_cfg = row_data_config(args, cfg)
        splits = ("train",) if args.no_eval else ("train", "val")
        exclude = {split: set() for split in splits}
        if not args.skip_data_check:  # every image and annotation, before any work
            exclude = check_run_data(
                data_cfg,
                source,
                args.data_root,
                splits,
                workers=args.check_workers,
                skip_bad_images=args.skip_bad_images,
            )
        train_set = build_dataset(
            args, source, data_cfg, family, "train", train=True, exclude_ids=exclude["train"]
        )
        val_set = (
            None
            if args.no_eval
            else build_dataset(
                args, source, data_cfg, family, "val", train=False, exclude_ids=exclude["val"]
            )
        )
    except (DataError, ValueError) as e:
        error = str(e)
    # A rank that cannot see the data stops every rank, with one message on rank 0.
    if stop_on_errors(error):
        return 2
    name = "_".join(p for p in (args.model, args.backbone, args.schedule, args.variant) if p)
    work_dir = Path(args.work_dir) if args.work_dir else Path("work_dirs") / name
    model_cfg = cfg.model
    if args.resume is None and args.load_from is None:
        model_cfg = replace_path(model_cfg, "backbone.pretrained", weights)
    if family != "rpn":
        model_cfg = replace_path(model_cfg, "num_classes", len(train_set.classes))
    run = RunConfig(
        name=name,
        model=model_cfg,
        data=data_cfg,
        schedule=cfg.schedule,
        key=cfg.key,
        dataset=source,
        class_names=tuple(train_set.classes),
        overrides=tuple(args.overrides),
        batch_per_gpu=args.batch_size or cfg.schedule.imgs_per_gpu,
        world_size=get_world_size(),
        seed=args.seed,
        amp=args.amp,
    )
    model = build_model(run.model)
    error = None
    try:
        init_backbone_weights(args, cfg, model, weights)
    except (FileNotFoundError, ValueError) as e:
        error = str(e)
    if stop_on_errors(error):
        return 2
    if args.load_from is not None:
        error = None
        try:
            load_model_weights(model, args.load_from)
        except (CheckpointError, FileNotFoundError) as e:
            error = f"--load-from: {e}"
        if stop_on_errors(error):
            return 2
        if is_main_process():
            print(f"loaded model weights from {args.load_from}", flush=True)
    model = model.to(device)
    loader = make_loader(run, train_set, workers=args.workers)
    trainer = make_trainer(
        run,
        model,
        loader,
        work_dir,
        device=device,
        max_iters=args.max_iters,
        log_interval=args.log_interval,
        tensorboard=args.tensorboard,
        max_skipped_images=args.max_skipped_images,
    )
    if args.resume is not None:
        error = None
        try:
            path = trainer.resume(args.resume or None)
        except (CheckpointError, FileNotFoundError) as e:
            error = f"--resume: {e}"
        if stop_on_errors(error):
            return 2
        if is_main_process():
            print(f"resumed from {path} at iteration {trainer.iteration}", flush=True)
    if is_main_process():
        print(
            f"training {name} on {source} ({len(train_set)} images, {run.world_size} x "
            f"{run.batch_per_gpu} per iteration, lr {run_lr(run):g}) for {trainer.max_iters} "
            f"iterations on {device}",
            flush=True,
        )
    try:
        trainer.train()
    except NonFiniteLossError as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130
    except WriteError:  # the trainer said what failed and which checkpoint to resume from
        return 1
    except UnreadableImagesError as e:
        print(f"error: {e} (last checkpoint: {latest(work_dir)})", file=sys.stderr)
        return 1
    if val_set is not None:
        metrics = evaluate_run(run, trainer.model, val_set, device)
        if metrics is not None:
            trainer.logger.log_eval(trainer.epoch, trainer.iteration, metrics)
            checkpoint = checkpoint_path(work_dir, trainer.iteration)
            write_metrics(
                work_dir / "eval.json",
                metrics,
                {"run": run.name, "checkpoint": str(checkpoint), "data": source},
            )
    trainer.logger.close()
    return 0


def backbone_weights_source(args: argparse.Namespace, cfg) -> str | None:
    """The weights the backbone starts from: ``--backbone-weights`` (None for "none"), else
    the row's; None with --resume or --load-from (they bring the whole model's)."""
    if args.resume is not None or args.load_from is not None:
        return None
    if args.backbone_weights is not None:
        return None if args.backbone_weights.lower() == "none" else args.backbone_weights
    return cfg.model.backbone.pretrained


def find_weights_on_every_rank(weights: str | None, local_rank: int) -> bool:
    """Whether the run must stop because a rank cannot find the backbone's weights file.

    Each machine's first process looks (and downloads into torch.hub's cache) first, then the
    others find the file there. Every rank takes part, so one failing stops all of them
    together, before any training work; rank 0 prints the error (naming the file, its URL
    and where to put it).
    """
    first = local_rank == 0
    if stop_on_errors(find_weights(weights, download=True) if first else None):
        return True
    return stop_on_errors(None if first else find_weights(weights, download=False))


def find_weights(weights: str | None, *, download: bool) -> str | None:
    """None when the backbone's weights file is found (or there are none to find), else the
    error message naming the file, its URL and where to put it."""
    from det_models.backbone_weights import WeightsNotFoundError, find_backbone_weights

    if weights is None:
        return None
    try:
        find_backbone_weights(weights, download=download)
    except WeightsNotFoundError as e:
        return str(e)
    return None


def init_backbone_weights(args: argparse.Namespace, cfg, model, weights: str | None) -> None:
    """Loads the backbone's weights (already resolved) and says where they came from; with
    none, warns that the row's recipe expects them.

    Raises:
        FileNotFoundError, ValueError: the file is gone or does not fit the backbone.
    """
    from det_models import init_backbone

    row = cfg.model.backbone
    if weights is not None:
        report = init_backbone(model, weights, download=False)
        if is_main_process():
            origin = "" if str(report.path) == weights else f" from {report.path}"
            print(
                f"backbone weights: {weights}{origin} ({report.loaded} tensors loaded, "
                f"{len(report.missing)} left at their initialisation, {len(report.unexpected)} "
                "in the file unused)",
                flush=True,
            )
        return
    if not is_main_process():
        return
    if args.resume is not None or args.load_from is not None:
        given = "--resume" if args.resume is not None else "--load-from"
        print(f"backbone weights: from the whole-model weights of {given}", flush=True)
        return
    sched = cfg.schedule
    why = "--backbone-weights none" if args.backbone_weights else "the config names none"
    print(
        f"warning: the backbone starts from random weights ({why}); the "
        f"row's recipe (backbone norm {row.norm}{' with norm_eval' if row.norm_eval else ''}, "
        f"frozen_stages {row.frozen_stages}, lr {sched.lr:g} per {sched.batch_size} images for "
        f"{sched.total_epochs} epochs) expects ImageNet weights "
        f"({row.pretrained or 'a URI or file'}) and will not reach the zoo's figures",
        file=sys.stderr,
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
