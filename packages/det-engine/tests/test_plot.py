import io
import json

import numpy as np
import pytest
from PIL import Image

from det_engine.apps import plot
from det_engine.curves import plot_work_dir, read_curves
from det_engine.metric_log import MetricLogger

pytest.importorskip("matplotlib", reason="the curves need matplotlib (det-engine[plot])")


def _write_log(work_dir, records, tail=""):
    work_dir.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r) + "\n" for r in records) + tail
    (work_dir / "log.jsonl").write_text(text)


def _train(it, cls, box, lr):
    return {"mode": "train", "epoch": 1, "iter": it, "lr": lr, "loss_cls": cls, "loss_box": box,
            "loss": cls + box, "time": 0.5, "data_time": 0.1, "memory_mb": 100}  # fmt: skip


def test_curves_from_a_metric_logger_log(tmp_path):
    logger = MetricLogger(tmp_path, 4, interval=2, enabled=True, stream=io.StringIO())
    for it in range(1, 5):
        logger.update(epoch=1, iteration=it, lr=0.01 * it, time=1.0, data_time=0.0,
                      losses={"loss_cls": float(it), "loss_box": 0.5})  # fmt: skip
    logger.log_eval(1, 4, {"bbox_AP": 0.25, "bbox_AP50": 0.5, "bbox_APs": 0.1, "bbox_AR1": 0.3})
    curves = read_curves(tmp_path)
    assert list(curves.losses) == ["loss_box", "loss_cls", "loss"]  # the total drawn last
    assert curves.losses["loss_cls"] == [(2, 1.5), (4, 3.5)]  # means over each interval
    assert curves.losses["loss"] == [(2, 2.0), (4, 4.0)]
    assert curves.lr == [(2, pytest.approx(0.02)), (4, pytest.approx(0.04))]
    assert curves.metrics == {"bbox_AP": [(4, 0.25)], "bbox_AP50": [(4, 0.5)]}

    out = plot_work_dir(tmp_path)
    assert out == tmp_path / "curves.png"
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size == (1500, 380)  # three panels
        pixels = np.asarray(img.convert("RGB"))
    assert (pixels < 128).any() and (pixels > 250).mean() > 0.5  # lines on a white page


def test_resumed_iterations_keep_the_later_record_and_eval_json_fills_in(tmp_path):
    records = [_train(1, 1.0, 0.5, 0.1), _train(2, 0.9, 0.4, 0.1), _train(2, 0.8, 0.3, 0.2)]
    _write_log(tmp_path, records, tail='{"mode": "train", "it')  # killed mid-line
    (tmp_path / "eval.json").write_text(
        json.dumps({"checkpoint": "w/iter_00000002.pth", "metrics": {"mAP": 0.7, "AP_cat": 0.6}})
    )
    curves = read_curves(tmp_path)
    assert curves.losses["loss_cls"] == [(1, 1.0), (2, 0.8)]
    assert curves.lr == [(1, 0.1), (2, 0.2)]
    assert curves.metrics == {"mAP": [(2, 0.7)]}

    out = tmp_path / "pictures" / "run.png"
    assert plot.main([str(tmp_path), "--out", str(out)]) == 0
    with Image.open(out) as img:
        assert img.size == (1500, 380)


def test_two_panels_without_evaluation(tmp_path, capsys):
    _write_log(tmp_path, [_train(1, 1.0, 0.5, 0.1)])
    assert plot.main([str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "curves.png")
    with Image.open(tmp_path / "curves.png") as img:
        assert img.size == (1000, 380)


def test_missing_empty_or_broken_logs_name_the_file(tmp_path, capsys):
    assert plot.main([str(tmp_path / "none")]) == 2
    assert f"no training log {tmp_path / 'none' / 'log.jsonl'}" in capsys.readouterr().err

    _write_log(tmp_path, [])
    assert plot.main([str(tmp_path)]) == 2
    assert f"{tmp_path / 'log.jsonl'} holds no training records" in capsys.readouterr().err

    _write_log(tmp_path, [_train(1, 1.0, 0.5, 0.1)], tail="oops\n" + json.dumps(_train(2, 1, 1, 1)))
    with pytest.raises(ValueError, match=r"log.jsonl:2 is not a JSON record"):
        read_curves(tmp_path)
    assert not (tmp_path / "curves.png").exists()


def test_missing_matplotlib_says_what_to_install(tmp_path, monkeypatch, capsys):
    _write_log(tmp_path, [_train(1, 1.0, 0.5, 0.1)])
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)
    assert plot.main([str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        "error: python -m det_engine.plot needs matplotlib, which is not installed: "
        'pip install matplotlib (or pip install "det-engine[plot]")\n'
    )
    assert not (tmp_path / "curves.png").exists()
