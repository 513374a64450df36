"""Training metric logger (console line + JSON lines) and a text progress bar."""

from __future__ import annotations

import datetime
import json
import os
import resource
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

import torch

from det_engine.atomic_write import append_durably
from det_engine.distributed import is_main_process
from det_engine.optional_deps import MissingPackageError, install_command, require


def memory_mb() -> int:
    """Peak memory in MiB: CUDA max allocated when CUDA is in use, else the process's peak RSS."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return int(torch.cuda.max_memory_allocated() / 2**20)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is KiB on Linux and bytes on macOS.
    return int(peak / 2**20) if sys.platform == "darwin" else int(peak / 2**10)


def _value(x: Any) -> Any:
    """A loss as it is summed over an interval: a detached float32 tensor where it is (no
    wait for the device at every step), or a float."""
    return x.detach().float() if isinstance(x, torch.Tensor) else float(x)


def _to_floats(values: Mapping[str, Any]) -> dict[str, float]:
    """values with every tensor read to the host in one copy."""
    tensors = [name for name, v in values.items() if isinstance(v, torch.Tensor)]
    read = torch.stack([values[n].reshape(()) for n in tensors]).tolist() if tensors else []
    floats = {name: float(v) for name, v in values.items() if name not in tensors}
    return {name: floats.get(name, 0.0) for name in values} | dict(zip(tensors, read, strict=True))


def tensorboard_writer_class():
    """``torch.utils.tensorboard.SummaryWriter``.

    Raises:
        MissingPackageError: the ``tensorboard`` package is missing; the message says how to
            install it.
    """
    purpose = "TensorBoard logging"
    require("tensorboard", purpose=purpose)
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:  # tensorboard is there but torch cannot use it
        raise MissingPackageError(
            f"{purpose} needs torch.utils.tensorboard ({e}): {install_command(['tensorboard'])}",
            ["tensorboard"],
        ) from e
    return SummaryWriter


class MetricLogger:
    """Averages losses and timings over ``interval`` iterations and reports them.

    Every ``interval`` iterations (and at the last one) it prints a line such as
    ``epoch 1 iter 50/1000 lr 0.006667 loss_cls 0.6931 loss 0.9 time 0.512 data_time
    0.021 memory 3210MB eta 0:08:06`` and appends the same fields as one JSON object to
    ``work_dir/log.jsonl`` (durably: a failed write keeps the lines written before and
    raises ``det_engine.atomic_write.WriteError``). Only rank 0 writes, unless ``enabled``
    says otherwise. With ``tensorboard`` the same numbers also go to TensorBoard event files in
    ``work_dir/tensorboard`` (``train/loss_cls``, ``train/lr``, ... and ``val/bbox_AP``, ...
    at the global iteration).

    Args:
        work_dir: directory of ``log.jsonl`` (created if missing).
        total_iters: iterations of the whole run, for the ETA.
        interval: iterations between reports.
        stream: where the console line goes (default stdout).
        enabled: write at all; default ``is_main_process()`` at construction.
        tensorboard: also write TensorBoard scalars (needs the ``tensorboard`` package).

    Raises:
        ImportError: ``tensorboard`` is True and the package is not installed.
    """

    def __init__(
        self,
        work_dir: str | os.PathLike,
        total_iters: int,
        *,
        interval: int = 50,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        tensorboard: bool = False,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be > 0, got {interval}")
        if total_iters <= 0:
            raise ValueError(f"total_iters must be > 0, got {total_iters}")
        self.enabled = is_main_process() if enabled is None else enabled
        self.path = Path(work_dir) / "log.jsonl"
        if self.enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.total_iters = total_iters
        self.interval = interval
        self.stream = stream if stream is not None else sys.stdout
        self._sums: dict[str, Any] = {}  # tensors stay on their device until a report
        self._count = 0
        self._last: tuple[int, int, float] = (0, 0, 0.0)  # epoch, iteration, lr last recorded
        self.counters: dict[str, int] = {}  # run totals (skipped_images), in every record
        self.writer = None
        if tensorboard:
            writer_class = tensorboard_writer_class()
            if self.enabled:
                self.writer = writer_class(log_dir=str(Path(work_dir) / "tensorboard"))

    def update(
        self,
        *,
        epoch: int,
        iteration: int,
        lr: float,
        losses: Mapping[str, Any],
        time: float,
        data_time: float,
    ) -> dict[str, Any] | None:
        """Records one iteration; reports when ``iteration`` closes an interval.

        Args:
            epoch: current epoch, 1-based as printed.
            iteration: global iterations done so far, 1-based (1 after the first step).
            lr: lr used in this iteration.
            losses: named losses (tensors or floats); their sum is logged as ``loss``
                unless a ``loss`` entry is given.
            time: seconds the whole iteration took.
            data_time: seconds spent waiting for data.

        Returns:
            The reported record, or None when nothing was reported.
        """
        values = {name: _value(v) for name, v in losses.items()}
        values.setdefault("loss", sum(values.values()))
        values["time"] = float(time)
        values["data_time"] = float(data_time)
        for name, v in values.items():
            self._sums[name] = self._sums.get(name, 0.0) + v
        self._count += 1
        self._last = (epoch, iteration, lr)
        if iteration % self.interval != 0 and iteration != self.total_iters:
            return None
        return self._report(epoch, iteration, lr)

    def flush(self) -> dict[str, Any] | None:
        """Reports the iterations recorded since the last report, if any (a run that ends
        between two intervals, e.g. when a time budget stops it early)."""
        if self._count == 0:
            return None
        return self._report(*self._last)

    def _report(self, epoch: int, iteration: int, lr: float) -> dict[str, Any]:
        # The interval's loss sums stayed on the device: read them once, here.
        means = {name: s / self._count for name, s in _to_floats(self._sums).items()}
        self._sums, self._count = {}, 0
        eta = datetime.timedelta(seconds=int(means["time"] * (self.total_iters - iteration)))
        record: dict[str, Any] = {
            "mode": "train",
            "epoch": epoch,
            "iter": iteration,
            "total_iters": self.total_iters,
            "lr": lr,
            **{k: v for k, v in means.items() if k not in ("time", "data_time")},
            "time": means["time"],
            "data_time": means["data_time"],
            "memory_mb": memory_mb(),
            "eta": str(eta),
            **self.counters,
        }
        self._emit(record, self._format_train(record))
        if self.writer is not None:
            skip = ("mode", "epoch", "iter", "total_iters", "eta")
            self._scalars("train", iteration, {k: v for k, v in record.items() if k not in skip})
        return record

    def log_eval(self, epoch: int, iteration: int, metrics: Mapping[str, float]) -> None:
        """Reports evaluation metrics (e.g. ``bbox_AP``) as one line and one JSON record."""
        record = {"mode": "val", "epoch": epoch, "iter": iteration, **dict(metrics)}
        text = ", ".join(f"{k}: {v:.4f}" for k, v in metrics.items())
        self._emit(record, f"epoch {epoch} iter {iteration} eval {text}")
        if self.writer is not None:
            self._scalars("val", iteration, metrics)

    def _scalars(self, prefix: str, step: int, values: Mapping[str, Any]) -> None:
        for name, value in values.items():
            self.writer.add_scalar(f"{prefix}/{name}", float(value), global_step=step)
        self.writer.flush()

    def close(self) -> None:
        """Closes the TensorBoard writer, if any (the JSON log needs no closing)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def count(self, name: str, n: int = 1) -> int:
        """Adds ``n`` to the run total ``name`` (e.g. ``skipped_images``), which every later
        record and console line carries; returns the new total."""
        self.counters[name] = self.counters.get(name, 0) + n
        return self.counters[name]

    def _format_train(self, r: dict[str, Any]) -> str:
        skip = {"mode", "epoch", "iter", "total_iters", "lr", "time", "data_time"}
        skip |= {"memory_mb", "eta", *self.counters}
        losses = " ".join(f"{k} {v:.4f}" for k, v in r.items() if k not in skip)
        counters = "".join(f" {k} {v}" for k, v in self.counters.items())
        return (
            f"epoch {r['epoch']} iter {r['iter']}/{r['total_iters']} lr {r['lr']:.6f} {losses} "
            f"time {r['time']:.3f} data_time {r['data_time']:.3f} "
            f"memory {r['memory_mb']}MB eta {r['eta']}{counters}"
        )

    def _emit(self, record: dict[str, Any], line: str) -> None:
        if not self.enabled:
            return
        print(line, file=self.stream, flush=True)
        # A full disk or a kill mid-write leaves the records written so far, never a torn
        # last line.
        append_durably(self.path, (json.dumps(record) + "\n").encode("utf-8"), what="metric log")


class ProgressBar:
    """A one-line text progress bar: ``[#####.....] 50/100, 12.3 img/s, elapsed 4s, eta 4s``.

    Args:
        total: number of steps expected.
        stream: where to draw (default stderr); nothing is drawn when ``enabled`` is False.
        width: characters of the bar itself.
        enabled: draw at all; default ``is_main_process()``.
        min_interval: seconds between two redraws (the first and the last step are always
            drawn), so that a fast loop over many items (a data check of 118k images) does
            not write a line per item.
    """

    def __init__(
        self,
        total: int,
        *,
        stream: TextIO | None = None,
        width: int = 30,
        enabled: bool | None = None,
        min_interval: float = 0.1,
    ) -> None:
        if total < 0:
            raise ValueError(f"total must be >= 0, got {total}")
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.enabled = is_main_process() if enabled is None else enabled
        self.done = 0
        self.min_interval = min_interval
        self._start = time.perf_counter()
        self._drawn_at: float | None = None

    def update(self, n: int = 1) -> str:
        """Advances by ``n`` steps, redraws, and returns the drawn line."""
        self.done += n
        elapsed = time.perf_counter() - self._start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        filled = int(self.width * self.done / self.total) if self.total else self.width
        filled = min(filled, self.width)
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        line = (
            f"[{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total}, "
            f"{rate:.1f} img/s, elapsed {elapsed:.0f}s, eta {max(eta, 0):.0f}s"
        )
        last = self.done >= self.total
        due = self._drawn_at is None or elapsed - self._drawn_at >= self.min_interval
        if self.enabled and (last or due):
            self.stream.write("\r" + line + ("\n" if last else ""))
            self.stream.flush()
            self._drawn_at = elapsed
        return line
