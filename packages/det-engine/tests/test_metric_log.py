import errno
import io
import json
import os

import pytest
import torch

from det_engine import atomic_write, metric_log
from det_engine.atomic_write import WriteError
from det_engine.evaluation.loop import write_metrics
from det_engine.metric_log import MetricLogger, ProgressBar, memory_mb


def test_json_lines_and_console(tmp_path):
    out = io.StringIO()
    logger = MetricLogger(tmp_path / "work", total_iters=10, interval=4, stream=out, enabled=True)
    reported = []
    for it in range(1, 11):
        losses = {"loss_cls": torch.tensor(float(it)), "loss_bbox": 0.5}
        r = logger.update(epoch=1, iteration=it, lr=0.01, losses=losses, time=0.2, data_time=0.05)
        reported.append(r is not None)
    assert reported == [False, False, False, True, False, False, False, True, False, True]
    logger.log_eval(1, 10, {"bbox_AP": 0.375})

    records = [
        json.loads(line) for line in (tmp_path / "work" / "log.jsonl").read_text().splitlines()
    ]
    assert len(records) == 4
    first = records[0]
    for key in ("epoch", "iter", "total_iters", "lr", "loss_cls", "loss_bbox", "loss", "time"):
        assert key in first
    assert {"data_time", "memory_mb", "eta", "mode"} <= set(first)
    assert first["iter"] == 4 and first["mode"] == "train"
    assert first["loss_cls"] == pytest.approx(2.5)  # mean of 1..4
    assert first["loss"] == pytest.approx(3.0)
    assert first["time"] == pytest.approx(0.2) and first["data_time"] == pytest.approx(0.05)
    assert first["eta"] == "0:00:01"  # 6 iterations left at 0.2 s
    assert records[2]["iter"] == 10 and records[2]["loss_cls"] == pytest.approx(9.5)
    assert records[3] == {"mode": "val", "epoch": 1, "iter": 10, "bbox_AP": 0.375}
    assert first["memory_mb"] > 0

    lines = out.getvalue().splitlines()
    assert lines[0].startswith("epoch 1 iter 4/10 lr 0.010000 loss_cls 2.5000 loss_bbox 0.5000")
    assert "memory" in lines[0] and "eta 0:00:01" in lines[0]
    assert "bbox_AP: 0.3750" in lines[3]


def test_a_failed_log_write_keeps_the_records_written_before(tmp_path, monkeypatch):
    logger = MetricLogger(tmp_path, total_iters=3, interval=1, stream=io.StringIO(), enabled=True)
    step = {"epoch": 1, "lr": 0.1, "losses": {"loss": 1.0}, "time": 0.1, "data_time": 0.0}
    logger.update(iteration=1, **step)
    logger.update(iteration=2, **step)
    before = (tmp_path / "log.jsonl").read_bytes()
    real_fsync = os.fsync

    def full_disk(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic_write.os, "fsync", full_disk)
    with pytest.raises(WriteError, match=r"writing the metric log .*log\.jsonl failed") as info:
        logger.update(iteration=3, **step)
    assert info.value.errno == errno.ENOSPC
    monkeypatch.setattr(atomic_write.os, "fsync", real_fsync)
    assert (tmp_path / "log.jsonl").read_bytes() == before
    assert [json.loads(line)["iter"] for line in before.decode().splitlines()] == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.jsonl"]  # no temp debris
    # The next report appends after the kept lines.
    logger.update(iteration=3, **step)
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["iter"] for line in lines] == [1, 2, 3]


def test_a_line_torn_by_a_kill_is_dropped_before_the_next_record(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"iter": 1}\n{"iter": 2}\n{"it')  # the run died mid-append
    logger = MetricLogger(tmp_path, total_iters=3, interval=1, stream=io.StringIO(), enabled=True)
    step = {"epoch": 1, "lr": 0.1, "losses": {"loss": 1.0}, "time": 0.1, "data_time": 0.0}
    logger.update(iteration=3, **step)
    assert [json.loads(line)["iter"] for line in path.read_text().splitlines()] == [1, 2, 3]


def test_a_failed_metrics_file_write_keeps_the_previous_one(tmp_path, monkeypatch, capsys):
    path = tmp_path / "eval.json"
    write_metrics(path, {"bbox_AP": 0.5}, {"iteration": 1})

    def broken_replace(src, dst):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(atomic_write.os, "replace", broken_replace)
    with pytest.raises(WriteError, match=r"writing the metrics file .*eval\.json failed"):
        write_metrics(path, {"bbox_AP": 0.7}, {"iteration": 2})
    assert json.loads(path.read_text()) == {"iteration": 1, "metrics": {"bbox_AP": 0.5}}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval.json"]


def test_flush_reports_what_a_run_ended_early_left(tmp_path):
    out = io.StringIO()
    logger = MetricLogger(tmp_path, total_iters=100, interval=50, stream=out, enabled=True)
    for it in (1, 2, 3):  # stopped after 3 of the planned 100 (a time budget ran out)
        losses = {"loss_cls": torch.tensor(float(it))}
        record = logger.update(epoch=1, iteration=it, lr=0.5, losses=losses, time=0.1, data_time=0)
        assert record is None
    record = logger.flush()
    assert record["iter"] == 3 and record["lr"] == 0.5
    assert record["loss_cls"] == pytest.approx(2.0)  # mean of 1..3
    assert logger.flush() is None  # nothing left
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["iter"] for line in lines] == [3]


def test_disabled_logger_writes_nothing(tmp_path):
    out = io.StringIO()
    logger = MetricLogger(tmp_path, total_iters=2, interval=1, stream=out, enabled=False)
    logger.update(epoch=1, iteration=1, lr=0.1, losses={"l": 1.0}, time=0.1, data_time=0.0)
    assert out.getvalue() == "" and not (tmp_path / "log.jsonl").exists()


def test_progress_bar():
    out = io.StringIO()
    bar = ProgressBar(4, stream=out, width=8, enabled=True)
    assert bar.update().startswith("[##......] 1/4")
    bar.update(3)
    assert out.getvalue().endswith("\n")
    assert "[########] 4/4" in out.getvalue().split("\r")[-1]


def test_progress_bar_redraws_at_most_every_min_interval(monkeypatch):
    ticks = iter(range(10_000))  # the clock moves 1/64 s per reading (exact in binary)
    monkeypatch.setattr(metric_log.time, "perf_counter", lambda: next(ticks) / 64)
    out = io.StringIO()
    bar = ProgressBar(1000, stream=out, enabled=True, min_interval=8 / 64)
    for _ in range(1000):
        bar.update()
    draws = out.getvalue().split("\r")[1:]
    # Drawn at steps 1, 9, 17, ..., 993 (every 8 steps: 125 of them), then the last, 1000.
    assert len(draws) == 126
    assert " 1/1000" in draws[0] and " 9/1000" in draws[1] and " 993/1000" in draws[-2]
    assert " 1000/1000" in draws[-1] and draws[-1].endswith("\n")


def test_memory_is_positive():
    assert memory_mb() > 10


def test_tensorboard_scalars_match_the_json_log(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is an optional dependency")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = MetricLogger(tmp_path, 4, interval=2, stream=io.StringIO(), enabled=True,
                          tensorboard=True)  # fmt: skip
    for it in range(1, 5):
        losses = {"loss_cls": float(it), "loss_box": 0.25}
        logger.update(epoch=1, iteration=it, lr=0.01 * it, losses=losses, time=0.5, data_time=0.0)
    logger.log_eval(1, 4, {"bbox_AP": 0.375})
    logger.close()

    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss_cls", "train/loss_box", "train/loss", "train/lr", "val/bbox_AP"} <= tags

    def series(tag):
        return [(e.step, pytest.approx(e.value)) for e in events.Scalars(tag)]

    assert series("train/loss_cls") == [(2, 1.5), (4, 3.5)]
    assert series("train/loss") == [(2, 1.75), (4, 3.75)]
    assert series("train/lr") == [(2, 0.02), (4, 0.04)]
    assert series("val/bbox_AP") == [(4, 0.375)]


def test_tensorboard_without_the_package_names_it(tmp_path, monkeypatch, capsys):
    import sys

    from det_engine.apps import train

    monkeypatch.setitem(sys.modules, "tensorboard", None)
    with pytest.raises(ImportError, match=r"pip install tensorboard"):
        MetricLogger(tmp_path, 4, enabled=True, tensorboard=True)
    rc = train.main(["retinanet", "r50", "1x", "--data", "shapes", "--tensorboard"])
    assert rc == 2
    assert capsys.readouterr().err == (
        "error: --tensorboard: TensorBoard logging needs tensorboard, which is not installed: "
        'pip install tensorboard (or pip install "det-engine[tensorboard]")\n'
    )
    assert not (tmp_path / "tensorboard").exists()
    # a tensorboard that torch cannot use is reported the same way
    monkeypatch.setitem(sys.modules, "tensorboard", sys.modules["det_engine"])
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError, match=r"needs torch.utils.tensorboard .*pip install tensorb"):
        MetricLogger(tmp_path, 4, enabled=True, tensorboard=True)


def test_trainer_passes_tensorboard_to_its_logger(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is an optional dependency")
    from torch.utils.data import DataLoader

    from det_engine.schedule import WarmupStepSchedule
    from det_engine.trainer import Trainer

    class Linear(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(2, 1)

        def forward(self, images, metas, targets):
            return {"loss_reg": self.fc(images).pow(2).mean()}

    data = [(torch.ones(2), {}, {}) for _ in range(2)]
    loader = DataLoader(data, batch_size=1, collate_fn=lambda b: (torch.stack([x[0] for x in b]),
                        [x[1] for x in b], [x[2] for x in b]))  # fmt: skip
    model = Linear()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    trainer = Trainer(model, loader, optimizer, WarmupStepSchedule(0.1, [], 2, warmup_iters=0),
                      tmp_path, epochs=1, log_interval=1, tensorboard=True)  # fmt: skip
    trainer.train()
    trainer.logger.close()
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
