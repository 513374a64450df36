"""python -m det_heads.bench: RoIGroupNorm against nn.GroupNorm (a tiny run, not a timing)."""

import itertools

from det_heads import bench


def test_group_norm_bench_prints_a_row_per_shape_and_dtype(capsys, monkeypatch):
    # A clock that advances 0.5 ms per reading: every call measures 0.5 ms.
    ticks = itertools.count()
    monkeypatch.setattr(bench.time, "perf_counter", lambda: next(ticks) * 5e-4)
    bench.main(["--threads", "1", "--rois", "2", "--repeat", "1"])
    rows = [r for r in capsys.readouterr().out.splitlines() if r.startswith("| ") and "x" in r]
    assert len(rows) == 2 * 4 * 2  # (7, 14) x (32, 64, 128, 256) x (float32, bfloat16)
    assert rows[0].startswith("| 32 x 7 x 7 | float32 |")
    assert all(r.strip("| ").split(" | ")[2:] == ["0.5"] * 4 for r in rows)  # ms, as timed
