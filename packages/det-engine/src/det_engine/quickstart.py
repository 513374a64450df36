"""``python -m det_engine.quickstart``: a detector trained, evaluated and shown in minutes on a CPU.

Trains a small detector from scratch on the built-in shapes dataset (generated on first
use, no download), evaluates it with the COCO metrics, and writes into the work dir:

    detections.png  validation images with the detections drawn on them
    curves.png      the losses, the learning rate and the AP
    eval.json       the COCO metrics
    log.jsonl       the training log
    iter_*.pth      the checkpoint (``python -m det_engine.demo IMAGE --ckpt ...`` reuses it)

The recipe is chosen for a 2-core CPU and no pretrained weights (see :func:`recipe`): a
slim ResNet-18 (half width) with trainable BatchNorm, a 64-channel FPN and RPN, a box head
of two 32-channel conv + GroupNorm layers and one FC, multi-scale training between 192 and
288 pixels (short side) and testing at 288, AdamW with warmup and cosine decay, and 128
sampled RoIs per image instead of the zoo's 512.
Where the CPU computes bfloat16 natively, training runs under bf16 autocast, and on the
CPU the weights are channels-last. ``--family`` trains the same recipe for every family
(SSD: a quarter-width VGG16 with BatchNorm at 300 pixels).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

FAMILIES = (
    "faster_rcnn",
    "fast_rcnn",
    "mask_rcnn",
    "cascade_rcnn",
    "cascade_mask_rcnn",
    "retinanet",
    "rpn",
    "ssd",
)


@dataclass(frozen=True)
class Recipe:
    """How the quickstart trains one family on the shapes dataset.

    Attributes:
        model: what to build (num_classes is set from the dataset).
        img_scale: (long, short) resize limits at test time (and in training when
            train_scales is None).
        train_scales: multi-scale training: two (long, short) scales between which each
            training image's scale is drawn uniformly (the zoo's "range" mode).
        batch_size: images per iteration.
        iters: training iterations.
        lr: AdamW peak learning rate.
        weight_decay: AdamW weight decay (weights only).
        warmup_iters: linear warmup iterations.
        grad_clip: gradient norm clipping.
    """

    model: Any
    # Shapes are 16..115 pixels in 160..256 pixel images: upscaled, the small ones reach the
    # anchors of P2. A range of scales in training; testing at its top scale gave box AP
    # 0.02-0.04 more than at its middle (240) for each of five trained models (MODEL_ZOO.md).
    img_scale: tuple[int, int] = (384, 288)
    train_scales: tuple[tuple[int, int], tuple[int, int]] | None = ((256, 192), (384, 288))
    batch_size: int = 4
    iters: int = 1850
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_iters: int = 50
    grad_clip: float = 10.0


def recipe(family: str = "faster_rcnn") -> Recipe:
    """The from-scratch CPU recipe of ``family`` (one of :data:`FAMILIES`)."""
    from det_heads import ProposalConfig
    from det_models.config import (
        BackboneConfig,
        DenseHeadConfig,
        ModelConfig,
        NeckConfig,
        RoIConfig,
        RPNConfig,
    )

    if family not in FAMILIES:
        raise ValueError(f"--family must be one of {', '.join(FAMILIES)}; got {family!r}")
    channels = 64
    # A half-width ResNet-18 with BatchNorm trained from the start: no pretrained weights
    # exist for it, and frozen statistics would be those of a random network.
    backbone = BackboneConfig(
        arch="r18", norm="BN", norm_eval=False, frozen_stages=-1, base_channels=32
    )
    # Shapes are 16..115 pixels: anchors of 16 px at stride 4 up to 256 px at stride 64.
    rpn = RPNConfig(
        feat_channels=channels,
        anchor_scales=(4.0,),
        train_proposals=ProposalConfig(nms_pre=1000, nms_post=256, max_num=256),
        test_proposals=ProposalConfig(nms_pre=500, nms_post=300, max_num=300),
    )
    # Two 3x3 conv + GroupNorm layers before one FC: from scratch, the plain 2-FC head is
    # slower to tell the three shapes apart (box AP 0.27 against 0.38 after 1000
    # iterations, MODEL_ZOO.md).
    roi = RoIConfig(
        num_convs=2, conv_channels=32, norm="GN", num_fcs=1, fc_channels=256, sample_num=128
    )
    if family == "ssd":
        # The zoo's VGG16 has no norm layers and trains only from ImageNet weights; at a
        # quarter of its width with BatchNorm after every conv it trains from scratch.
        model = ModelConfig(
            family="ssd",
            num_classes=3,
            backbone=BackboneConfig(arch="vgg16-ssd300", norm="BN", base_channels=16),
            neck=None,
            rpn=None,
            dense=DenseHeadConfig(kind="ssd", input_size=300),
        )
        return Recipe(model=model, img_scale=(300, 300), train_scales=None)
    neck = NeckConfig(out_channels=channels)
    if family == "retinanet":
        model = ModelConfig(
            family="retinanet",
            num_classes=3,
            backbone=backbone,
            neck=NeckConfig(
                out_channels=channels, num_outs=5, extra="conv_on_input", start_level=1
            ),
            rpn=None,
            # Anchors from 16 px on P3 (the zoo: 32 px), as the shapes start at 16 px.
            dense=DenseHeadConfig(
                kind="retina", stacked_convs=2, feat_channels=channels, octave_base_scale=2.0
            ),
        )
        return Recipe(model=model)
    if family == "rpn":
        model = ModelConfig(family="rpn", num_classes=1, backbone=backbone, neck=neck, rpn=rpn)
        return Recipe(model=model)
    if family == "fast_rcnn":  # the same second stage on an RPN run's proposals
        model = ModelConfig(
            family="fast_rcnn", num_classes=3, backbone=backbone, neck=neck, rpn=None, roi=roi
        )
        return Recipe(model=model)
    with_mask = family.endswith("mask_rcnn")
    stages = 3 if family.startswith("cascade") else 1
    roi = dataclasses.replace(roi, with_mask=with_mask, num_stages=stages)
    model = ModelConfig(
        family=family, num_classes=3, backbone=backbone, neck=neck, rpn=rpn, roi=roi
    )
    return Recipe(model=model)


def data_config(family: str = "faster_rcnn", rec: Recipe | None = None):
    """The DataConfig of the quickstart ``family``, for training and testing (det_engine.data)
    and for ``det_models.Detector``: the zoo's normalisation, flip and padding at the recipe's
    scales (multi-scale "range" training between its ``train_scales``); SSD keeps the
    photometric distortion of its augmentation but not the zoom-out and crop, which pay off
    over the zoo's 120 epochs rather than a run of minutes.

    Args:
        family: one of :data:`FAMILIES`.
        rec: the recipe (default ``recipe(family)``).
    """
    from det_models import zoo
    from det_models.zoo.settings import SSDAugment

    rec = rec or recipe(family)
    if family == "ssd":
        return dataclasses.replace(
            zoo.get("ssd300", "vgg16", "120e").data,
            img_scale=rec.img_scale,
            ssd_augment=SSDAugment(expand_ratio_range=None, min_ious=None),
        )
    return dataclasses.replace(
        zoo.get("faster_rcnn", "r50", "1x").data,
        img_scale=rec.img_scale,
        train_scales=rec.train_scales,
        multiscale_mode="range",
        with_mask=family.endswith("mask_rcnn"),
        train_proposals=None,
        test_proposals=None,
    )


def build_quickstart_model(family: str, num_classes: int | None):
    """The untrained model of the quickstart ``family`` for ``num_classes`` classes."""
    from det_models.builder import build_model
    from det_models.config import replace_path

    model_cfg = recipe(family).model
    if model_cfg.family != "rpn":
        model_cfg = replace_path(model_cfg, "num_classes", int(num_classes))
    return build_model(model_cfg)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m det_engine.quickstart",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--family", default="faster_rcnn", choices=FAMILIES)
    parser.add_argument("--work-dir", default=None, help="default work_dirs/quickstart_FAMILY")
    parser.add_argument(
        "--iters", type=int, default=None, help="training iterations (default: the recipe's)"
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
    return parser.parse_args(argv)


def shapes_datasets(
    rec: Recipe, root: str | None, family: str, proposals: tuple[Path, Path] | None = None
):
    """(train, val) shapes datasets of the recipe's data config (and proposal files)."""
    from det_engine.data import build_dataset

    data = data_config(family, rec)
    train_props, val_props = proposals if proposals is not None else (None, None)
    train = build_dataset(data, "shapes", root, "train", train=True, proposals=train_props)
    val = build_dataset(data, "shapes", root, "val", train=False, proposals=val_props)
    return train, val


@torch.no_grad()
def write_proposals(rpn_checkpoint: Path, root: str | None, out_dir: Path) -> tuple[Path, Path]:
    """Runs a quickstart RPN over both shapes splits; writes ``proposals_{train,val}.pkl``.

    Each file maps image id -> float32 array[K, 5] (x1, y1, x2, y2, score) in original
    pixels, the format of ``python -m det_engine.test rpn ... --proposals-out``.
    """
    from det_data import save_proposals
    from det_engine import checkpoint as ckpt
    from det_engine.data import build_dataset, collate_fn

    model = build_quickstart_model("rpn", None)
    ckpt.load_model_weights(model, rpn_checkpoint)
    model.eval()
    data = data_config("rpn")
    collate = collate_fn(data)
    paths = []
    for split in ("train", "val"):
        dataset = build_dataset(data, "shapes", root, split, train=False)
        found = {}
        for index in range(len(dataset)):
            images, metas, _ = collate([dataset[index]])
            out = model(images, metas)[0]
            found[dataset.records[index].image_id] = torch.cat(
                [out["boxes"], out["scores"][:, None]], 1
            )
        paths.append(save_proposals(out_dir / f"proposals_{split}.pkl", found))
    return paths[0], paths[1]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from det_data import GroupSampler
    from det_engine.checkpoint import checkpoint_path
    from det_engine.data import collate_fn
    from det_engine.guard import NonFiniteLossError
    from det_engine.runner import evaluate, pick_device, set_seed, write_metrics
    from det_engine.schedule import WarmupCosineSchedule, build_adamw
    from det_engine.trainer import Trainer

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    set_seed(args.seed)
    rec = recipe(args.family)
    if args.iters is not None:
        if args.iters <= 0:
            print(f"error: --iters must be > 0, got {args.iters}", file=sys.stderr)
            return 2
        rec = dataclasses.replace(rec, iters=args.iters)
    work_dir = Path(args.work_dir or f"work_dirs/quickstart_{args.family}")
    print("preparing the shapes dataset (generated on first use)...", flush=True)
    proposals = None
    if args.family == "fast_rcnn":
        from det_engine import checkpoint as ckpt

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
    train_set, val_set = shapes_datasets(rec, args.data_root, args.family, proposals)
    model_cfg = rec.model
    model = build_quickstart_model(args.family, len(train_set.classes)).to(device)
    amp = _amp(args.amp, device)
    if device.type == "cpu":
        # oneDNN's convolutions run faster on channels-last weights; every conv output
        # (and its gradient) follows the weights' layout.
        model.to(memory_format=torch.channels_last)
    loader = DataLoader(
        train_set,
        batch_size=rec.batch_size,
        sampler=GroupSampler(train_set, rec.batch_size, seed=args.seed),
        collate_fn=collate_fn(data_config(args.family, rec)),
        num_workers=args.workers,
    )
    optimizer = build_adamw(model, rec.lr, weight_decay=rec.weight_decay)
    scheduler = WarmupCosineSchedule(
        rec.lr, rec.iters, warmup_iters=rec.warmup_iters, final_ratio=0.01
    )
    config = {
        "quickstart": args.family,
        "class_names": list(train_set.classes),
        "num_classes": None if model_cfg.family == "rpn" else len(train_set.classes),
        "img_scale": list(rec.img_scale),
        "batch_size": rec.batch_size,
        "iters": rec.iters,
        "lr": rec.lr,
        "seed": args.seed,
        "amp": amp,
    }
    trainer = Trainer(
        model,
        loader,
        optimizer,
        scheduler,
        work_dir,
        epochs=math.ceil(rec.iters / len(loader)),
        max_iters=rec.iters,
        grad_clip=rec.grad_clip,
        config=config,
        device=device,
        log_interval=args.log_interval,
        amp=amp,
    )
    if args.resume:
        path = trainer.resume()
        print(f"resumed from {path} at iteration {trainer.iteration}", flush=True)
    print(
        f"training {args.family} ({_network(args.family)}, from scratch) on shapes: "
        f"{len(train_set)} images, batch {rec.batch_size}, {rec.iters} iterations on {device}"
        f"{' (bf16 autocast)' if amp else ''}",
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
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    collate = collate_fn(data_config(args.family, rec))
    metrics = evaluate(trainer.model, val_set, device, _metrics(model_cfg), collate_fn=collate)
    eval_s = time.perf_counter() - start
    checkpoint = checkpoint_path(work_dir, trainer.iteration)
    trainer.logger.log_eval(trainer.epoch, trainer.iteration, metrics)
    write_metrics(
        work_dir / "eval.json",
        metrics,
        {
            **config,
            "checkpoint": str(checkpoint),
            "train_seconds": round(train_s, 1),
            "eval_seconds": round(eval_s, 1),
        },
    )
    pictures = draw_validation(
        trainer.model, val_set, work_dir / "detections.png", args.num_pictures, device, collate
    )
    from det_engine.plot import plot_work_dir

    curves = plot_work_dir(work_dir)
    key = "proposal_AR@300" if model_cfg.family == "rpn" else "bbox_AP"
    print(
        f"\n{args.family}: {key} {metrics.get(key, float('nan')):.3f} on shapes val "
        f"(training {train_s / 60:.1f} min, evaluation {eval_s:.0f} s)\n"
        f"  detections: {pictures}\n  curves:     {curves}\n"
        f"  metrics:    {work_dir / 'eval.json'}\n  checkpoint: {checkpoint}",
        flush=True,
    )
    return 0


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


def _metrics(model_cfg: Any) -> list[str]:
    if model_cfg.family == "rpn":
        return ["proposal"]
    with_mask = model_cfg.roi is not None and model_cfg.roi.with_mask
    return ["bbox", "segm"] if with_mask else ["bbox"]


@torch.no_grad()
def draw_validation(
    model, val_set, out: Path, count: int, device: torch.device, collate=None
) -> Path:
    """Draws the detections on the first ``count`` validation images, 3 per row, into a PNG.

    ``collate`` batches one sample (default det_data.collate).
    """
    from det_engine.runner import detect

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
