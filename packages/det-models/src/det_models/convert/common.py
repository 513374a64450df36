"""What the converters share: their result and the label-order moves of classifier weights."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor

from det_heads.conventions import DET, Conventions


@dataclass
class Converted:
    """A converted checkpoint.

    Attributes:
        state_dict: our model's keys and tensors.
        unused: source keys that map to nothing in our model (reported, not loaded).
        conventions: the box arithmetic the weights were trained with; a model must be built
            with it (ModelConfig.conventions) to give the original code's detections.
    """

    state_dict: dict[str, Tensor]
    unused: list[str] = field(default_factory=list)
    conventions: Conventions = DET


def unwrap(checkpoint: Mapping) -> dict[str, Tensor]:
    """The state dict of a checkpoint saved as {"state_dict": ...} or as the dict itself.

    DataParallel's "module." prefix is removed.
    """
    if not isinstance(checkpoint, Mapping):
        raise TypeError(f"state_dict must be a mapping, got {type(checkpoint).__name__}")
    state = checkpoint.get("state_dict", checkpoint)
    return {k.removeprefix("module."): v for k, v in state.items()}


def background_last(weight: Tensor, groups: int = 1) -> Tensor:
    """Moves the background row (index 0 of each group of rows) to the end of its group.

    Args:
        weight: Tensor[groups * (C + 1), ...], each group ordered (background, class 1..C).
        groups: anchors per location for a conv classifier (SSD), else 1.

    Returns:
        Tensor of the same shape, each group ordered (class 1..C, background).
    """
    w = weight.reshape(groups, -1, *weight.shape[1:])
    return torch.cat([w[:, 1:], w[:, :1]], dim=1).reshape(weight.shape)


def drop_first(weight: Tensor, rows: int, groups: int = 1) -> Tensor:
    """Drops the first `rows` rows of each of `groups` groups (a background class's outputs)."""
    w = weight.reshape(groups, -1, *weight.shape[1:])
    return w[:, rows:].reshape(-1, *weight.shape[1:])


def rename(
    source: Mapping[str, Tensor], rule: Callable[[str, Tensor], tuple[str, Tensor] | None]
) -> Converted:
    """Applies rule(key, tensor) to every entry: (new key, new tensor), or None for unused.

    Step counters of batch norm (num_batches_tracked) are dropped without being reported:
    our frozen norms have none.
    """
    out: dict[str, Tensor] = {}
    unused: list[str] = []
    for key, value in source.items():
        if key.endswith("num_batches_tracked"):
            continue
        mapped = rule(key, value)
        if mapped is None:
            unused.append(key)
            continue
        out[mapped[0]] = mapped[1]
    return Converted(out, unused)


def check_fits(state_dict: Mapping[str, Tensor], model: torch.nn.Module, source: str) -> None:
    """Raises ValueError unless state_dict has exactly model's keys with model's shapes.

    The message names the first missing, unexpected and mis-shaped keys (with both shapes)
    and where the weights came from, e.g. a zoo row's converted 2019 checkpoint given for
    another row: a checkpoint of the wrong family or backbone.

    Args:
        state_dict: the (converted) weights.
        model: the model they should load into.
        source: what the weights are, for the message ("the 2019 checkpoint converted for
            ('mask_rcnn', 'r50', '1x', None)").
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [
        f"{k}: model {list(expected[k].shape)}, checkpoint {list(state_dict[k].shape)}"
        for k in expected
        if k in state_dict and tuple(expected[k].shape) != tuple(state_dict[k].shape)
    ]
    if not (missing or unexpected or shapes):
        return
    parts = []
    for what, keys in (("missing", missing), ("unexpected", unexpected), ("shapes", shapes)):
        if keys:
            more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
            parts.append(f"{what} ({len(keys)}): {'; '.join(keys[:3])}{more}")
    raise ValueError(
        f"{source} does not fit the model (a checkpoint of another family, backbone or "
        f"class count?): " + " | ".join(parts)
    )
