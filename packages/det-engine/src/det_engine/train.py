"""``python -m det_engine.train MODEL BACKBONE SCHEDULE``: train a zoo row, then evaluate it.

Single process, or one process per GPU under ``torchrun`` (DistributedDataParallel).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import sys
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader

from det_engine.checkpoint import CheckpointError, load_model_weights
from det_engine.data import collate_fn
from det_engine.distributed import get_rank, get_world_size, init_from_env, is_main_process
from det_engine.guard import NonFiniteLossError
from det_engine.logging import tensorboard_writer_class
from det_engine.runner import (
    DataError,
    add_common_arguments,
    build_dataset,
    eval_metrics,
    evaluate,
    pick_device,
    run_data_config,
    set_seed,
    write_metrics,
)
from det_engine.schedule import build_sgd, scaled_lr, zoo_step_schedule
from det_engine.trainer import Trainer
from det_models.config import CONVENTION_PRESETS, Conventions


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
    parser.add_argument(
        "--load-from",
        default=None,
        metavar="CKPT",
        help="start from these model weights (one of our checkpoints or a plain state dict; "
        "strict); unlike --resume, optimizer, schedule and iteration start afresh",
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


class OverrideError(ValueError):
    """A ``--set`` that is malformed or names no field of the zoo config."""


def parse_override(item: str) -> tuple[str, Any]:
    """``"a.b=VALUE"`` -> ``("a.b", value)``; VALUE by ``ast.literal_eval``, else the string.

    Raises:
        OverrideError: no ``=``, or an empty key.
    """
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise OverrideError(f"--set {item!r}: expected dotted.key=value")
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        value = text
    return key, value


def apply_overrides(config: Any, items: list[str]) -> Any:
    """A copy of the (frozen dataclass) zoo config with each ``--set KEY=VALUE`` applied.

    A list replaces a tuple field as a tuple; a section (a nested config) cannot be replaced
    as a whole, only its keys, except model.conventions, which also takes a preset's name
    (det, mmdet_v0.6, torchvision).

    Raises:
        OverrideError: naming the bad key and listing the valid keys at that level.
    """
    for item in items:
        key, value = parse_override(item)
        config = _replace(config, key.split("."), value, item, [])
    return config


def _replace(node: Any, parts: list[str], value: Any, item: str, done: list[str]) -> Any:
    where = ".".join(done) or "the config"
    if not dataclasses.is_dataclass(node):
        raise OverrideError(
            f"--set {item}: {where} is a value ({node!r}), it has no key {parts[0]!r}"
        )
    names = [f.name for f in dataclasses.fields(node)]
    head, rest = parts[0], parts[1:]
    if head not in names:
        raise OverrideError(
            f"--set {item}: {where} has no key {head!r}; valid keys: {', '.join(names)}"
        )
    current = getattr(node, head)
    path = [*done, head]
    if rest:
        if current is None:
            raise OverrideError(f"--set {item}: {'.'.join(path)} is None in this zoo row")
        value = _replace(current, rest, value, item, path)
    elif isinstance(current, Conventions) and isinstance(value, str):
        # A whole box convention by name: --set model.conventions=mmdet_v0.6
        if value not in CONVENTION_PRESETS:
            raise OverrideError(
                f"--set {item}: {'.'.join(path)} must be one of "
                f"{', '.join(CONVENTION_PRESETS)} (or set one of its keys)"
            )
        value = CONVENTION_PRESETS[value]
    elif dataclasses.is_dataclass(current):
        keys = ", ".join(f.name for f in dataclasses.fields(current))
        raise OverrideError(
            f"--set {item}: {'.'.join(path)} is a section; set one of its keys: {keys}"
        )
    elif isinstance(current, tuple) and isinstance(value, list):
        value = tuple(value)
    return dataclasses.replace(node, **{head: value})


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from det_data import DistributedGroupSampler, GroupSampler
    from det_models import zoo
    from det_models.builder import build_model
    from det_models.config import replace_path

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
    dist_info = init_from_env()
    if dist_info.world_size > 1 and device.type == "cuda":
        device = dist_info.device
    set_seed(args.seed + get_rank())
    cfg = zoo.get(args.model, args.backbone, args.schedule, args.variant)
    try:
        cfg = apply_overrides(cfg, args.overrides)
    except OverrideError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        source, data_cfg = run_data_config(args, cfg)
        train_set = build_dataset(args, cfg, "train", train=True)
        val_set = None if args.no_eval else build_dataset(args, cfg, "val", train=False)
    except (DataError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    name = "_".join(p for p in (args.model, args.backbone, args.schedule, args.variant) if p)
    work_dir = Path(args.work_dir) if args.work_dir else Path("work_dirs") / name

    num_classes = None if cfg.model.family == "rpn" else len(train_set.classes)
    model_cfg = cfg.model
    if num_classes is not None:
        model_cfg = replace_path(model_cfg, "num_classes", num_classes)
    model = build_model(model_cfg)
    if args.load_from is not None:
        try:
            load_model_weights(model, args.load_from)
        except (CheckpointError, FileNotFoundError) as e:
            print(f"error: --load-from: {e}", file=sys.stderr)
            return 2
        if is_main_process():
            print(f"loaded model weights from {args.load_from}", flush=True)
    model = model.to(device)

    sched = cfg.schedule
    per_gpu = args.batch_size or sched.imgs_per_gpu
    world = get_world_size()
    if world > 1:
        sampler = DistributedGroupSampler(
            train_set, per_gpu, num_replicas=world, rank=get_rank(), seed=args.seed
        )
    else:
        sampler = GroupSampler(train_set, per_gpu, seed=args.seed)
    loader = DataLoader(
        train_set,
        batch_size=per_gpu,
        sampler=sampler,
        collate_fn=collate_fn(data_cfg),
        num_workers=args.workers,
        persistent_workers=False,
    )
    lr = scaled_lr(sched.lr, sched.batch_size, per_gpu * world)
    optimizer = build_sgd(model, lr, momentum=sched.momentum, weight_decay=sched.weight_decay)
    scheduler = zoo_step_schedule(sched, lr, len(loader))
    config = {
        "model": args.model,
        "backbone": args.backbone,
        "schedule": args.schedule,
        "variant": args.variant,
        "data": source,
        "num_classes": num_classes,
        "class_names": list(train_set.classes),
        "img_scale": list(data_cfg.img_scale),
        "batch_size": per_gpu,
        "world_size": world,
        "lr": lr,
        "seed": args.seed,
        "amp": args.amp,
        "load_from": args.load_from,
        "overrides": list(args.overrides),
        "proposals_train": args.proposals_train,
        "proposals_test": args.proposals_test,
    }
    trainer = Trainer(
        model,
        loader,
        optimizer,
        scheduler,
        work_dir,
        epochs=sched.total_epochs,
        max_iters=args.max_iters,
        grad_clip=sched.grad_clip_norm,
        config=config,
        device=device,
        log_interval=args.log_interval,
        amp=args.amp,
        tensorboard=args.tensorboard,
    )
    if args.resume is not None:
        path = trainer.resume(args.resume or None)
        if is_main_process():
            print(f"resumed from {path} at iteration {trainer.iteration}", flush=True)
    if is_main_process():
        print(
            f"training {name} on {source} ({len(train_set)} images, {world} x {per_gpu} per "
            f"iteration, lr {lr:g}) for {trainer.max_iters} iterations on {device}",
            flush=True,
        )
    try:
        trainer.train()
    except NonFiniteLossError as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130
    if val_set is not None:
        metrics = evaluate(
            trainer.model,
            val_set,
            device,
            eval_metrics(cfg, None),
            collate_fn=collate_fn(data_cfg),
        )
        if metrics is not None:
            trainer.logger.log_eval(trainer.epoch, trainer.iteration, metrics)
            write_metrics(
                work_dir / "eval.json",
                metrics,
                {"checkpoint": str(work_dir / f"iter_{trainer.iteration:08d}.pth"), **config},
            )
    trainer.logger.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
