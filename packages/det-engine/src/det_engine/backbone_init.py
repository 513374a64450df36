"""A zoo row's backbone set to its ImageNet weights as a training run starts: which weights
(:func:`backbone_weights_source`), found on every rank before any work
(:func:`find_weights_on_every_rank`), and loaded with a report of where they came from
(:func:`init_backbone_weights`)."""

from __future__ import annotations

import sys

from torch import nn

from det_engine.distributed import is_main_process, stop_on_errors
from det_models import WeightsNotFoundError, ZooConfig, find_backbone_weights, init_backbone


def backbone_weights_source(cfg: ZooConfig, given: str | None, *, whole_model: bool) -> str | None:
    """The weights the backbone starts from.

    Args:
        cfg: the zoo row (its ``model.backbone.pretrained``).
        given: a file or URI asked for, "none" (random initialisation) or None (the row's).
        whole_model: the run brings whole-model weights (a resume, a load), so none.
    """
    if whole_model:
        return None
    if given is not None:
        return None if given.lower() == "none" else given
    return cfg.model.backbone.pretrained


def find_weights_on_every_rank(weights: str | None, local_rank: int) -> bool:
    """Whether the run must stop because a rank cannot find the backbone's weights file.

    Each machine's first process looks (and downloads into torch.hub's cache) first, then the
    others find the file there. Every rank takes part, so one failing stops all of them
    together, before any training work; rank 0 prints the error (naming the file, its URL
    and where to put it).
    """
    first = local_rank == 0
    if stop_on_errors(_find_weights(weights, download=True) if first else None):
        return True
    return stop_on_errors(None if first else _find_weights(weights, download=False))


def _find_weights(weights: str | None, *, download: bool) -> str | None:
    """None when the backbone's weights file is found (or there are none to find), else the
    error message naming the file, its URL and where to put it."""
    if weights is None:
        return None
    try:
        find_backbone_weights(weights, download=download)
    except WeightsNotFoundError as e:
        return str(e)
    return None


def init_backbone_weights(
    model: nn.Module,
    cfg: ZooConfig,
    weights: str | None,
    *,
    whole_model_from: str | None = None,
    why_none: str = "the config names none",
) -> None:
    """Loads the backbone's weights (already found) and says where they came from; without,
    says why, warning that the row's recipe expects them.

    Args:
        model: the built detector.
        cfg: its zoo row.
        weights: from :func:`backbone_weights_source`.
        whole_model_from: what brings the whole model's weights instead (e.g. "--resume"),
            or None.
        why_none: why there are no weights, for the warning (the command may name its flag).

    Raises:
        FileNotFoundError, ValueError: the file is gone or does not fit the backbone.
    """
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
    if whole_model_from is not None:
        print(f"backbone weights: from the whole-model weights of {whole_model_from}", flush=True)
        return
    sched = cfg.schedule
    print(
        f"warning: the backbone starts from random weights ({why_none}); the "
        f"row's recipe (backbone norm {row.norm}{' with norm_eval' if row.norm_eval else ''}, "
        f"frozen_stages {row.frozen_stages}, lr {sched.lr:g} per {sched.batch_size} images for "
        f"{sched.total_epochs} epochs) expects ImageNet weights "
        f"({row.pretrained or 'a URI or file'}) and will not reach the zoo's figures",
        file=sys.stderr,
        flush=True,
    )
