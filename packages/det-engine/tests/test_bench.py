"""The bench command line on tiny inputs: it prints the zoo's row and the measured row."""

from __future__ import annotations

import pytest

from det_engine.apps import bench

TINY = ["--img-size", "64", "96", "--img-scale", "96", "64", "--iters", "1", "--warmup", "0"]


def _rows(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("| ")]


class _Clock:
    """A perf_counter that advances by a fixed step at each reading: a timed step then takes
    exactly that step."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_infer_prints_the_zoo_row_and_ours(capsys, monkeypatch):
    monkeypatch.setattr(bench.time, "perf_counter", _Clock(0.25))
    assert bench.main(["infer", "retinanet", "r50", "1x", *TINY, "--batch-size", "2"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert rows[1].startswith("| zoo 2019") and "| 9.1 |" in rows[1]  # the zoo's fps
    assert rows[2].startswith("| ours (cpu") and "64x96, batch 2" in rows[2]
    assert float(rows[2].split(" | ")[7]) == pytest.approx(8.0)  # 2 images in 0.25 s


def test_train_reports_seconds_per_iteration(capsys, monkeypatch):
    monkeypatch.setattr(bench.time, "perf_counter", _Clock(0.5))
    argv = ["train", "faster_rcnn", "r50", "1x", *TINY, "--batch-size", "1", "--no-memory"]
    assert bench.main(argv) == 0
    row = _rows(capsys.readouterr().out)[2]
    assert float(row.split(" | ")[6]) == pytest.approx(0.5)  # train s/iter
    assert row.split(" | ")[5] == "-"  # memory skipped


def test_compare_needs_a_torchvision_model():
    with pytest.raises(SystemExit):
        bench.parse_args(["infer", "cascade_rcnn", "r50", "1x", "--compare", "torchvision"])


def test_samples_have_boxes_inside_the_image():
    (sample,) = bench.make_samples("random", 1, (64, 96), 80, seed=0)
    boxes = sample.target["boxes"]
    assert sample.image.shape == (3, 64, 96)
    assert (boxes[:, 2] <= 95).all() and (boxes[:, 3] <= 63).all()
    assert sample.target["masks"].shape[1:] == (64, 96)


def test_compare_torchvision_times_both_with_the_same_weights(capsys):
    argv = ["infer", "faster_rcnn", "r50", "1x", *TINY, "--compare", "torchvision", "--no-memory"]
    assert bench.main(argv) == 0
    out = capsys.readouterr().out
    rows = _rows(out)
    assert rows[2].startswith("| ours") and rows[3].startswith("| torchvision")
    assert all(int(row.split(" | ")[-1].rstrip(" |")) > 0 for row in rows[2:])  # detections
    assert "speed-up x" in out and "remaining difference in work" in out


def test_compare_reports_the_median_of_the_memory_runs(capsys, monkeypatch):
    peaks = {"ours": [1000.0, 3072.0, 2048.0], "torchvision": [1024.0, 1024.0, 9999.0]}
    calls = []

    def fake_memory_run(argv, side):
        calls.append(side)
        return peaks[side][len([c for c in calls if c == side]) - 1]

    monkeypatch.setattr(bench, "memory_in_subprocess", fake_memory_run)
    argv = ["infer", "faster_rcnn", "r50", "1x", *TINY, "--compare", "torchvision"]
    assert bench.main([*argv, "--memory-runs", "3"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert calls == ["ours", "torchvision"] * 3  # the sides in turn
    assert rows[2].split(" | ")[5] == "2.00" and rows[3].split(" | ")[5] == "1.00"
    with pytest.raises(SystemExit):
        bench.parse_args([*argv, "--memory-runs", "0"])


def test_runtime_onnxruntime_times_the_exported_model_beside_ours(capsys):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    argv = [
        "infer",
        "faster_rcnn",
        "r50",
        "1x",
        "--img-size",
        "64",
        "96",
        "--img-scale",
        "96",
        "64",
    ]
    assert (
        bench.main(
            [*argv, "--iters", "1", "--warmup", "0", "--no-memory", "--runtime", "onnxruntime"]
        )
        == 0
    )
    out = capsys.readouterr().out
    rows = _rows(out)
    assert rows[2].startswith("| ours (cpu") and rows[3].startswith("| onnxruntime (cpu")
    assert rows[2].split(" | ")[-1] == rows[3].split(" | ")[-1]  # the same detections
    assert "onnxruntime / ours x" in out


def test_runtime_onnxruntime_is_for_cpu_inference():
    with pytest.raises(SystemExit):
        bench.parse_args(["train", "rpn", "r50", "1x", "--runtime", "onnxruntime"])


def test_amp_runs_both_sides_training_step_under_autocast_and_the_table_says_so(
    capsys, monkeypatch
):
    """--amp bf16: each side's forward (ours and torchvision's) computes its convolutions in
    bfloat16, the parameters stay float32, and the table's rows name the precision."""
    import torch

    seen: dict[str, set] = {"ours": set(), "torchvision": set()}
    built = bench.build_sides

    def recording_sides(args, device, only=None):
        sides, samples = built(args, device, only)
        for side in sides:
            step = side.step

            def traced(batch, step=step, name=side.name):
                def hook(module, inputs, output):
                    if isinstance(module, torch.nn.Conv2d):
                        seen[name].add(output.dtype)

                handle = torch.nn.modules.module.register_module_forward_hook(hook)
                try:
                    return step(batch)
                finally:
                    handle.remove()

            side.step = traced
        return sides, samples

    monkeypatch.setattr(bench, "build_sides", recording_sides)
    argv = ["train", "faster_rcnn", "r50", "1x", *TINY, "--batch-size", "1", "--no-memory"]
    assert bench.main([*argv, "--compare", "torchvision", "--amp", "bf16"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert "bf16 autocast" in rows[2] and "bf16 autocast" in rows[3]
    assert seen == {"ours": {torch.bfloat16}, "torchvision": {torch.bfloat16}}


@pytest.mark.parametrize(
    "extra",
    [
        ["--amp", "fp16"],  # GradScaler and fp16 kernels: CUDA
        ["--tf32", "on"],  # a CUDA setting
        ["--amp", "bf16", "--runtime", "onnxruntime"],  # the exported model runs fp32
        ["--cuda-graph"],  # captured inference: CUDA
    ],
)
def test_precision_options_are_refused_where_they_do_not_apply(extra, capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(["infer", "faster_rcnn", "r50", "1x", *extra])
    assert extra[0] in capsys.readouterr().err


def test_busy_time_is_the_union_of_the_intervals():
    assert bench._busy_microseconds([(5.0, 6.0), (0.0, 2.0), (1.0, 3.0), (1.5, 2.5)]) == 4.0
    assert bench._busy_microseconds([]) == 0.0


def test_profile_prints_each_sides_work_per_step(capsys):
    import re

    argv = ["train", "faster_rcnn", "r50", "1x", *TINY, "--batch-size", "1", "--no-memory"]
    assert bench.main([*argv, "--profile", "2"]) == 0
    out = capsys.readouterr().out
    found = re.search(r"ours: (\d+) operators per step, ([\d.]+) ms .* none running (\d+)%", out)
    assert found and int(found[1]) > 100 and float(found[2]) > 0 and int(found[3]) < 100
    rows = [line for line in out.splitlines() if line.startswith("| aten::")]
    assert len(rows) == 8  # the busiest operators, slowest first
    times = [float(row.split(" | ")[2].rstrip(" |")) for row in rows]
    assert times == sorted(times, reverse=True)


def test_layout_contiguous_runs_ours_in_nchw_with_the_same_detections(capsys):
    argv = ["infer", "faster_rcnn", "r50", "1x", *TINY, "--no-memory", "--compare", "torchvision"]
    assert bench.main(argv) == 0
    channels_last = _rows(capsys.readouterr().out)
    assert bench.main([*argv, "--layout", "contiguous"]) == 0
    nchw = _rows(capsys.readouterr().out)
    assert nchw[2].startswith("| ours NCHW (cpu") and channels_last[2].startswith("| ours (cpu")
    assert nchw[2].split(" | ")[-1] == channels_last[2].split(" | ")[-1]  # detections


@pytest.mark.gpu
def test_cuda_graph_times_ours_captured(capsys):
    argv = ["infer", "faster_rcnn", "r50", "1x", *TINY, "--no-memory", "--device", "cuda"]
    argv[argv.index("--warmup") + 1] = "2"  # eager, then captured
    assert bench.main([*argv, "--cuda-graph"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert rows[2].startswith("| ours CUDA graph (")
