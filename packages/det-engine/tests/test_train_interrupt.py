"""Ctrl-C (SIGINT) on ``python -m det_engine.train``, then ``--resume``: the same losses as an
uninterrupted run (data loading in the main process, --workers 0)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from det_engine import checkpoint as ckpt

MAX_ITERS = 4


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory):
    from det_data import shapes

    return shapes.prepare(tmp_path_factory.mktemp("data") / "shapes", {"train": 4, "val": 1})


def _command(shapes_root, work_dir, *extra):
    return [
        sys.executable, "-m", "det_engine.train", "faster_rcnn", "r50", "1x",
        "--data", "shapes", "--data-root", str(shapes_root), "--device", "cpu",
        "--workers", "0", "--img-scale", "128", "96", "--batch-size", "1",
        "--max-iters", str(MAX_ITERS), "--log-interval", "1", "--no-eval",
        "--work-dir", str(work_dir), "--backbone-weights", "none", *extra,
    ]  # fmt: skip


def _sigint_default():
    # A job started in the background by a non-interactive shell inherits SIGINT ignored, and
    # Python then leaves it so; a terminal's Ctrl-C reaches a process with the default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _env():
    # one thread: the same float sums in every run, and gentle on a shared machine
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _train_records(work_dir):
    lines = (work_dir / "log.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["mode"] == "train"]


def _losses(record):
    return {k: v for k, v in record.items() if k.startswith("loss") or k in ("iter", "lr")}


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigint_then_resume_continues_like_an_uninterrupted_run(shapes_root, tmp_path):
    full_dir, part_dir = tmp_path / "full", tmp_path / "part"
    subprocess.run(_command(shapes_root, full_dir), env=_env(), check=True, capture_output=True)
    full = _train_records(full_dir)
    assert [r["iter"] for r in full] == [1, 2, 3, 4]

    proc = subprocess.Popen(
        _command(shapes_root, part_dir),
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_sigint_default,
    )
    output = []
    for line in proc.stdout:
        output.append(line)
        if f"iter 2/{MAX_ITERS}" in line:
            time.sleep(0.3)  # into iteration 3: data loaded, samplers drawn
            proc.send_signal(signal.SIGINT)
            break
    output.append(proc.stdout.read())
    assert proc.wait(timeout=60) == 130, "".join(output)
    text = "".join(output)
    saved = ckpt.latest(part_dir)
    done = ckpt.load(saved)["iteration"]
    assert 2 <= done < MAX_ITERS, text
    assert f"interrupted: saved {saved}; continue with --resume" in text

    resumed = subprocess.run(
        _command(shapes_root, part_dir, "--resume"), env=_env(), capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resumed from {saved} at iteration {done}" in resumed.stdout
    part = _train_records(part_dir)
    assert [r["iter"] for r in part] == list(range(1, MAX_ITERS + 1))
    # every logged loss and lr, before and after the interrupt, is the uninterrupted run's
    assert [_losses(r) for r in part] == [_losses(r) for r in full]
    assert ckpt.latest(part_dir) == ckpt.checkpoint_path(part_dir, MAX_ITERS)
