"""A training run's loss, lr and AP curves: read from its work dir (:func:`read_curves`) and
drawn into one PNG (:func:`plot_work_dir`, what ``python -m det_engine.plot`` runs).

Reads ``WORK_DIR/log.jsonl`` (written by the trainer's MetricLogger): the train records give
the losses (each ``loss_*`` and the total ``loss``) and the lr per logged iteration, the eval
records (``"mode": "val"``) the AP metrics; without eval records, ``WORK_DIR/eval.json`` (the
final evaluation) is used when present. Drawing needs matplotlib (``det-engine[plot]``).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from det_engine.optional_deps import MissingPackageError, install_command, require

# AP-like metrics drawn in the AP panel: COCO's AP, AP50, AP75 of each kind (bbox_AP, ...),
# VOC's mAP, and the proposal recalls of an RPN (proposal_AR@100, ...).
_AP_KEY = re.compile(r"^(?:\w+_)?(?:AP|AP50|AP75|mAP)$|^proposal_AR@\d+$")
_CHECKPOINT_ITER = re.compile(r"iter_(\d+)\.pth")


@dataclass
class Curves:
    """The series of one run, each a list of (iteration, value) sorted by iteration."""

    losses: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    lr: list[tuple[int, float]] = field(default_factory=list)
    metrics: dict[str, list[tuple[int, float]]] = field(default_factory=dict)


def _read_jsonl(path: Path) -> list[dict]:
    records = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            if number == len(lines):
                break  # a run killed while writing its last line
            raise ValueError(f"{path}:{number} is not a JSON record: {e}") from e
        if isinstance(record, dict):
            records.append(record)
    return records


def read_curves(work_dir: str | os.PathLike) -> Curves:
    """The loss, lr and metric series of ``work_dir``'s log.jsonl (and eval.json).

    After a resume the log can hold an iteration twice (logged, interrupted before the next
    checkpoint, logged again); the later record wins.

    Raises:
        FileNotFoundError: there is no ``work_dir/log.jsonl``.
        ValueError: the log holds no train record, or a line that is not JSON.
    """
    path = Path(work_dir) / "log.jsonl"
    if not path.is_file():
        raise FileNotFoundError(
            f"no training log {path}; pass the --work-dir of a run of python -m det_engine.train"
        )
    records = _read_jsonl(path)
    train = [r for r in records if r.get("mode") == "train" and "iter" in r]
    if not train:
        raise ValueError(f"{path} holds no training records (is the run's first log line due?)")
    losses: dict[str, dict[int, float]] = {}
    lr: dict[int, float] = {}
    for r in train:
        it = int(r["iter"])
        if "lr" in r:
            lr[it] = float(r["lr"])
        for key, value in r.items():
            if key == "loss" or key.startswith("loss_"):
                losses.setdefault(key, {})[it] = float(value)
    metrics: dict[str, dict[int, float]] = {}
    evals = [r for r in records if r.get("mode") == "val" and "iter" in r]
    if not evals:
        evals = _eval_json(Path(work_dir) / "eval.json")
    for r in evals:
        for key, value in r.items():
            if _AP_KEY.match(key) and isinstance(value, (int, float)):
                metrics.setdefault(key, {})[int(r["iter"])] = float(value)
    # the total last, drawn over its parts
    names = sorted(losses, key=lambda k: (k == "loss", k))
    return Curves(
        losses={k: sorted(losses[k].items()) for k in names},
        lr=sorted(lr.items()),
        metrics={k: sorted(v.items()) for k, v in sorted(metrics.items())},
    )


def _eval_json(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from e
    if "iteration" in data:
        iteration = int(data["iteration"])
    else:
        match = _CHECKPOINT_ITER.search(str(data.get("checkpoint", "")))
        if match is None:
            return []
        iteration = int(match.group(1))
    return [{"iter": iteration, **data.get("metrics", {})}]


def _figure(panels: int):
    require("matplotlib", purpose="drawing the curves")
    try:
        from matplotlib.figure import Figure
    except ImportError as e:  # an incomplete matplotlib
        raise MissingPackageError(
            f"drawing the curves needs matplotlib.figure ({e}): {install_command(['matplotlib'])}",
            ["matplotlib"],
        ) from e
    fig = Figure(figsize=(5.0 * panels, 3.8), layout="constrained")
    return fig, fig.subplots(1, panels, squeeze=False)[0]


def plot_work_dir(work_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Draws the run's curves side by side into one PNG: losses, lr, and AP when evaluated.

    Args:
        work_dir: the training run's folder (holding log.jsonl).
        out: the PNG to write; default ``work_dir/curves.png``.

    Returns:
        The path written.

    Raises:
        FileNotFoundError / ValueError: see :func:`read_curves`.
        ImportError: matplotlib is not installed (the message says what to install).
    """
    curves = read_curves(work_dir)
    out = Path(out) if out is not None else Path(work_dir) / "curves.png"
    fig, axes = _figure(3 if curves.metrics else 2)
    ax = axes[0]
    for name, points in curves.losses.items():
        xs, ys = zip(*points, strict=True)
        style = {"color": "black", "linewidth": 2.0} if name == "loss" else {"linewidth": 1.2}
        ax.plot(xs, ys, label=name, **style)
    ax.set(title="losses", xlabel="iteration", ylabel="loss")
    ax.legend(fontsize="small")
    ax = axes[1]
    if curves.lr:
        xs, ys = zip(*curves.lr, strict=True)
        ax.plot(xs, ys, color="tab:blue")
    ax.set(title="learning rate", xlabel="iteration", ylabel="lr")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    if curves.metrics:
        ax = axes[2]
        for name, points in curves.metrics.items():
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker="o", label=name)
        ax.set(title="evaluation", xlabel="iteration", ylabel="AP", ylim=(0.0, 1.0))
        ax.legend(fontsize="small")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle(str(Path(work_dir).name or work_dir))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    return out


__all__ = ["Curves", "plot_work_dir", "read_curves"]
