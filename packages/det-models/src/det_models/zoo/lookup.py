"""Finding zoo rows by key: `names()` and `entry()`, with errors that list the valid keys."""

from __future__ import annotations

import difflib

from det_models.zoo.entry import ZooEntry
from det_models.zoo.rows import ALL

Key = tuple[str, str, str, str | None]

_BY_KEY: dict[Key, ZooEntry] = {row.key: row for row in ALL}
if len(_BY_KEY) != len(ALL):  # a typo in rows.py would silently hide a row
    raise RuntimeError("det_models.zoo.rows has two rows with the same key")

MODELS: tuple[str, ...] = tuple(dict.fromkeys(row.model for row in ALL))


def names() -> list[Key]:
    """Every zoo key, in the order of the 2019 zoo document's tables.

    Returns:
        (model, backbone, schedule, variant) tuples; variant is None for plain rows.
    """
    return [row.key for row in ALL]


def entry(model: str, backbone: str, schedule: str, variant: str | None = None) -> ZooEntry:
    """The zoo row with this key.

    Args:
        model: detector family, e.g. "faster_rcnn" (see `names()` for every key).
        backbone: backbone name, e.g. "r101", "r50-caffe", "x101-64x4d", "vgg16".
        schedule: schedule name, e.g. "1x", "2x", "20e", "3x", "120e", "240e".
        variant: None, or e.g. "mask", "voc", "gn", "gn-contrib", "dconv-c3-c5", "mdpool".

    Returns:
        The ZooEntry of that row.

    Raises:
        TypeError: an argument is not a string (variant: not a string or None).
        ValueError: no row has this key; the message lists the valid choices.
    """
    for arg, value in (("model", model), ("backbone", backbone), ("schedule", schedule)):
        if not isinstance(value, str):
            raise TypeError(f"{arg} must be a str, got {type(value).__name__}")
    if variant is not None and not isinstance(variant, str):
        raise TypeError(f"variant must be a str or None, got {type(variant).__name__}")
    key = (model, backbone, schedule, variant)
    found = _BY_KEY.get(key)
    if found is None:
        raise ValueError(_unknown_key_message(key))
    return found


def _format_key(key: Key) -> str:
    model, backbone, schedule, variant = key
    args = f"{model!r}, {backbone!r}, {schedule!r}"
    return args + (f", variant={variant!r}" if variant is not None else "")


def _closest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=3, cutoff=0.5)
    return f" (closest: {', '.join(close)})" if close else ""


def _unknown_key_message(key: Key) -> str:
    model, backbone, _, _ = key
    if model not in MODELS:
        return f"model must be one of {', '.join(MODELS)}; got {model!r}" + _closest(
            model, list(MODELS)
        )
    backbones = list(dict.fromkeys(k[1] for k in _BY_KEY if k[0] == model))
    if backbone not in backbones:
        return (
            f"backbone must be one of {', '.join(backbones)} for model {model!r}; "
            f"got {backbone!r}" + _closest(backbone, backbones)
        )
    pairs = [f"{k[2]} (variant={k[3]!r})" for k in _BY_KEY if k[:2] == (model, backbone)]
    as_text = {_format_key(k): k for k in _BY_KEY}
    close = difflib.get_close_matches(_format_key(key), list(as_text), n=3, cutoff=0.6)
    hint = "; closest entries: " + " | ".join(f"({c})" for c in close) if close else ""
    return (
        f"no zoo entry ({_format_key(key)}); valid schedule/variant for {model} {backbone}: "
        + ", ".join(pairs)
        + hint
    )
