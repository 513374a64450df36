"""The numpy path without torch, and the build's CUDA switch."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import det_ops

PACKAGE = Path(__file__).resolve().parents[1]


def test_numpy_ops_do_not_import_torch():
    code = """
import sys
import numpy as np
import det_ops
boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=np.float32)
keep = det_ops.nms(boxes, np.array([0.9, 0.8, 0.7], dtype=np.float32), 0.5)
assert keep.tolist() == [0, 2], keep
x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
out = det_ops.roi_align(
    x, np.array([[0, 0, 0, 4, 4]], dtype=np.float32), 1, sampling_ratio=2, aligned=True
)
assert abs(float(out[0, 0, 0, 0]) - 7.5) < 1e-6, out
assert "torch" not in sys.modules, "det_ops imported torch"
print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_version_and_runtime_queries():
    assert det_ops.__version__.count(".") >= 2
    threads = det_ops.num_threads()
    det_ops.set_num_threads(1)
    assert det_ops.num_threads() == 1
    det_ops.set_num_threads(threads)
    with pytest.raises(ValueError, match="n must be a positive int"):
        det_ops.set_num_threads(0)


def _configure(tmp_path, *defines, cuda_compiler=None):
    cmake = shutil.which("cmake")
    if cmake is None or not (PACKAGE / "CMakeLists.txt").exists():
        pytest.skip("needs cmake and the det-ops source tree")
    env = {k: v for k, v in os.environ.items() if k not in ("CUDACXX", "DET_OPS_CUDA")}
    if cuda_compiler is not None:
        env["CUDACXX"] = cuda_compiler  # CMake then looks nowhere else for nvcc
    return subprocess.run(
        [cmake, "-S", str(PACKAGE), "-B", str(tmp_path / "build"), *defines],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def test_forcing_cuda_without_a_compiler_fails_loudly(tmp_path):
    result = _configure(tmp_path, "-DDET_OPS_CUDA=ON", cuda_compiler="/nonexistent/nvcc")
    assert result.returncode != 0
    assert "DET_OPS_CUDA=ON but no CUDA compiler was found" in result.stdout + result.stderr


def test_unknown_cuda_switch_value_is_rejected(tmp_path):
    result = _configure(tmp_path, "-DDET_OPS_CUDA=maybe")
    assert result.returncode != 0
    assert "DET_OPS_CUDA must be AUTO, ON, OFF or EMULATE" in result.stdout + result.stderr


def test_only_the_emulate_switch_builds_the_emulated_module(tmp_path):
    # det_ops._C_emulated is for the tests: a default install (AUTO, here without nvcc) and
    # OFF never build it, so wheels and `pip install ./packages/det-ops` never hold it.
    note = "det_ops._C_emulated"
    emulate = _configure(tmp_path / "emulate", "-DDET_OPS_CUDA=EMULATE")
    assert note in emulate.stdout
    assert "Looking for a CUDA compiler" not in emulate.stdout  # no nvcc needed
    assert note not in _configure(tmp_path / "off", "-DDET_OPS_CUDA=OFF").stdout
    default = _configure(tmp_path / "auto", cuda_compiler="/nonexistent/nvcc")
    assert note not in default.stdout
