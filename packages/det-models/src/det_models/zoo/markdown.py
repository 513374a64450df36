"""The zoo as a Markdown table, for tools that print reference figures."""

from __future__ import annotations

from det_models.zoo.entry import ZooEntry
from det_models.zoo.lookup import MODELS
from det_models.zoo.rows import ALL

_HEADER = (
    "| model | backbone | schedule | variant | mem (GB) | train (s/iter) | inf (fps) "
    "| box AP | mask AP | AR1000 | download |"
)


def _cell(value: float | str | None) -> str:
    return "-" if value is None else str(value)


def _line(row: ZooEntry) -> str:
    ref = row.reference
    fps = _cell(ref.inference_fps)
    if ref.inference_fps_batch8 is not None:
        fps += f" / {ref.inference_fps_batch8}"  # batch size 1 / 8, as in the SSD tables
    cells = [
        row.model,
        row.backbone,
        row.schedule,
        _cell(row.variant),
        _cell(ref.memory_gb),
        _cell(ref.train_s_per_iter),
        fps,
        _cell(ref.box_ap),
        _cell(ref.mask_ap),
        _cell(ref.ar1000),
        f"[model]({row.url})" if row.url else "-",
    ]
    return "| " + " | ".join(cells) + " |"


def table(model: str | None = None) -> str:
    """The zoo rows and their reference figures as a Markdown table.

    Args:
        model: only this detector family (e.g. "mask_rcnn"), or None for every row.

    Returns:
        The table, one line per row in the document's order, "-" where a figure is absent.
    """
    if model is not None and model not in MODELS:
        raise ValueError(f"model must be None or one of {', '.join(MODELS)}; got {model!r}")
    rows = [row for row in ALL if model is None or row.model == model]
    separator = "|" + "---|" * _HEADER.count(" | ") + "---|"
    return "\n".join([_HEADER, separator, *(_line(row) for row in rows)]) + "\n"
