"""``python -m det_engine.train MODEL BACKBONE SCHEDULE``: train a zoo row, then evaluate it.

Single process, or one process per GPU under ``torchrun`` (DistributedDataParallel). The
backbone starts from the ImageNet weights the row's 2019 config names (``--backbone-weights``
to change them), found in $DET_WEIGHTS_DIR or torch.hub's cache, else downloaded. The run
itself is det_engine.run's, as the quickstart's; exit codes: 0 done, 1 a write failed or too
many unreadable images, 2 the run could not start, 3 a non-finite loss stopped it, 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from det_engine import data
from det_engine.apps.cli import (
    DataError,
    add_common_arguments,
    add_run_arguments,
    row_data_config,
)
from det_engine.backbone_init import (
    backbone_weights_source,
    find_weights_on_every_rank,
    init_backbone_weights,
)
from det_engine.checkpoint import CheckpointError, load_model_weights
from det_engine.distributed import (
    get_local_rank,
    get_world_size,
    is_main_process,
    shutdown,
    stop_on_errors,
)
from det_engine.metric_log import tensorboard_writer_class
from det_engine.run import EXIT_USAGE, run_datasets, start_process, train_and_evaluate
from det_engine.runtime import DeviceError
from det_models import (
    NotCapturableError,
    OverrideError,
    RunConfig,
    apply_overrides,
    build_model,
    replace_path,
    zoo,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m det_engine.train", description=__doc__)
    add_common_arguments(parser)
    add_run_arguments(
        parser, work_dir="work_dirs/MODEL_BACKBONE_SCHEDULE[_VARIANT]", workers=2, amp="off"
    )
    parser.add_argument("--max-iters", type=int, default=None, help="stop after N iterations")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="images per process (default the zoo's 2)"
    )
    parser.add_argument("--no-eval", action="store_true", help="skip the final evaluation")
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
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a zoo config field by dotted path, e.g. schedule.lr=0.01 or "
        "model.rpn.test_proposals.nms_thr=0.6 (VALUE is a Python literal, else a string); "
        "repeatable",
    )
    parser.add_argument(
        "--cuda-graph",
        action="store_true",
        help="capture the training step (forward, backward, clipping, SGD) as a CUDA graph "
        "per padded size bucket and replay it (CUDA, one GPU, SGD, bf16 or no amp; "
        "Faster / Mask R-CNN with bitmap masks); what cannot be captured is named",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.tensorboard:
        try:
            tensorboard_writer_class()
        except ImportError as e:
            print(f"error: --tensorboard: {e}", file=sys.stderr)
            return EXIT_USAGE
    try:
        device, amp = start_process(args.device, args.seed, args.amp, threads=args.threads)
    except DeviceError as e:
        print(f"error: --device {args.device}: {e}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as e:
        print(f"error: --amp {args.amp}: {e}", file=sys.stderr)
        return EXIT_USAGE
    if args.cuda_graph and device.type != "cuda":
        print(
            f"error: --cuda-graph needs a CUDA device (--device cuda), got {device}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    cfg = zoo.get(args.model, args.backbone, args.schedule, args.variant)
    try:
        cfg = apply_overrides(cfg, args.overrides)
    except OverrideError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    # What brings the whole model's weights, if anything: the backbone's are then not read.
    whole_model = "--resume" if args.resume is not None else None
    if args.load_from is not None:
        whole_model = whole_model or "--load-from"
    weights = backbone_weights_source(
        cfg, args.backbone_weights, whole_model=whole_model is not None
    )
    if find_weights_on_every_rank(weights, get_local_rank()):
        return EXIT_USAGE
    family = cfg.model.family
    error = None
    try:
        source, data_cfg = row_data_config(args, cfg)
        proposals = {
            split: data.proposal_file(
                data_cfg,
                needs_proposals=family == "fast_rcnn",
                model=family,
                source=source,
                root=args.data_root,
                split=split,
                given=args.proposals_train if split == "train" else args.proposals_test,
            )
            for split in (("train",) if args.no_eval else ("train", "val"))
        }
        train_set, val_set = run_datasets(
            data_cfg,
            source,
            args.data_root,
            evaluate=not args.no_eval,
            proposals=proposals,
            check=not args.skip_data_check,
            check_workers=args.check_workers,
            skip_bad_images=args.skip_bad_images,
        )
    except (DataError, ValueError) as e:
        error = str(e)
    # A rank that cannot see the data stops every rank, with one message on rank 0.
    if stop_on_errors(error):
        return EXIT_USAGE
    name = "_".join(p for p in (args.model, args.backbone, args.schedule, args.variant) if p)
    work_dir = Path(args.work_dir) if args.work_dir else Path("work_dirs") / name
    model_cfg = cfg.model
    if whole_model is None:
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
        amp=amp,
    )
    model = build_model(run.model)
    error = None
    try:
        init_backbone_weights(
            model,
            cfg,
            weights,
            whole_model_from=whole_model,
            why_none="--backbone-weights none"
            if args.backbone_weights
            else "the config names none",
        )
    except (FileNotFoundError, ValueError) as e:
        error = str(e)
    if stop_on_errors(error):
        return EXIT_USAGE
    if args.load_from is not None:
        error = None
        try:
            load_model_weights(model, args.load_from)
        except (CheckpointError, FileNotFoundError) as e:
            error = f"--load-from: {e}"
        if stop_on_errors(error):
            return EXIT_USAGE
        if is_main_process():
            print(f"loaded model weights from {args.load_from}", flush=True)
    try:
        result = train_and_evaluate(
            run,
            model,
            train_set,
            val_set,
            work_dir,
            device=device,
            workers=args.workers,
            resume=args.resume,
            max_iters=args.max_iters,
            log_interval=args.log_interval,
            tensorboard=args.tensorboard,
            max_skipped_images=args.max_skipped_images,
            cuda_graph=args.cuda_graph,
        )
    except NotCapturableError as e:
        print(f"error: --cuda-graph: {e}", file=sys.stderr)
        return EXIT_USAGE
    shutdown()
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
