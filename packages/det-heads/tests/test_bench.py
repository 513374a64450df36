"""python -m det_heads.bench: RoIGroupNorm against nn.GroupNorm (a tiny run, not a timing)."""

from det_heads import bench


def test_group_norm_bench_prints_a_row_per_shape_and_dtype(capsys):
    bench.main(["--threads", "1", "--rois", "2", "--repeat", "1"])
    rows = [r for r in capsys.readouterr().out.splitlines() if r.startswith("| ") and "x" in r]
    assert len(rows) == 2 * 4 * 2  # (7, 14) x (32, 64, 128, 256) x (float32, bfloat16)
    assert rows[0].startswith("| 32 x 7 x 7 | float32 |")
    assert all(float(c) >= 0 for r in rows for c in r.strip("| ").split(" | ")[2:])  # ms
