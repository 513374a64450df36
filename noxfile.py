"""Project tasks: nox -s quickstart | tests | lint | cuda_build | gpu_tests | build | bench |
bench_models | shapes_zoo."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox

ROOT = Path(__file__).parent
# The pinned torch stack (CUDA builds, installed from the local wheel store or PyPI).
TORCH = ("torch==2.14.1", "torchvision==0.29.1")
# Packages in dependency order: each may only depend on those before it. They are not on
# PyPI, so the sessions that install them do so in one pip command: a dependency named by
# a package (det-backbones -> det-ops) then resolves to the local directory given beside it.
PACKAGES = (
    "det-io",
    "det-ops",
    "det-backbones",
    "det-heads",
    "det-data",
    "det-models",
    "det-engine",
)
# The packages with GPU-marked tests, which gpu_tests runs.
GPU_PACKAGES = ("det-ops", "det-backbones", "det-heads", "det-models")
# What the GPU packages need installed beside them (pure Python, no GPU tests of its own).
GPU_DEPENDENCIES = ("det-io",)

nox.options.sessions = ("lint", "tests")
# Reuse an environment when it exists: installing torch is the slow part of setup.
nox.options.reuse_venv = "yes"
nox.options.envdir = os.environ.get("DET_NOX_ENVDIR", str(ROOT / ".nox"))


def _package_dirs() -> list[str]:
    return [f"./packages/{name}" for name in PACKAGES]


def _install_cpu(session: nox.Session) -> None:
    """torch and every package, det-ops with its CPU kernels only, det-engine with plots."""
    session.install(*TORCH)
    packages = [path for path in _package_dirs() if not path.endswith("det-engine")]
    session.install(*packages, "./packages/det-engine[plot]", env={"DET_OPS_CUDA": "OFF"})


@nox.session(python="3.11")
def quickstart(session: nox.Session) -> None:
    """The first run: trains a detector on the built-in shapes dataset on the CPU, evaluates
    it with the COCO metrics and draws its detections and curves (work_dirs/quickstart_*)."""
    _install_cpu(session)
    session.run("python", "-m", "det_engine.quickstart", *session.posargs)


@nox.session(python="3.11")
def shapes_zoo(session: nox.Session) -> None:
    """Every family trained on the shapes dataset; writes the table in MODEL_ZOO.md (slow)."""
    _install_cpu(session)
    session.run("python", "-m", "det_engine.shapes_zoo", *session.posargs)


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """The CPU test suite in its own environment (GPU and slow tests deselected)."""
    session.install(*TORCH)
    # EMULATE: the CPU kernels, and beside them det_ops._C_emulated, the CUDA sources built
    # for the CPU, which det-ops' tests run against the CPU kernels (no nvcc or GPU needed;
    # never in wheels). The same variable tells those tests that the module must be there.
    emulate = {"DET_OPS_CUDA": "EMULATE"}
    session.install(*(f"{path}[test]" for path in _package_dirs()), env=emulate)
    # The import boundaries of every package against docs/design.md's table, once.
    session.run("pytest", "tests", "-p", "no:cacheprovider", *session.posargs)
    # One pytest run per package: test modules of different packages may share a name.
    for path in _package_dirs():
        session.run(
            "pytest",
            f"{path}/tests",
            "-m",
            "not gpu and not slow",
            "-p",
            "no:cacheprovider",
            *session.posargs,
            env=emulate,
        )


@nox.session(venv_backend="none")
def gpu_tests(session: nox.Session) -> None:
    """GPU-marked tests, offline, with this interpreter's own torch (no downloads).

    Only the packages that have GPU tests are installed and run: the others may need
    what a GPU machine lacks (pycocotools).
    """
    gpu_dirs = [f"./packages/{name}" for name in GPU_PACKAGES]
    session.run(
        *("python", "-m", "pip", "install", "--no-build-isolation", "--no-deps", "--no-index"),
        *(f"./packages/{name}" for name in GPU_DEPENDENCIES),
        *gpu_dirs,
        # Only the architecture of the GPU at hand: a quicker build.
        env={"DET_OPS_CUDA": "ON", "DET_OPS_CUDA_ARCHS": "native"},
    )
    for path in gpu_dirs:
        session.run(
            *("python", "-m", "pytest", f"{path}/tests", "-m", "gpu", "-p", "no:cacheprovider"),
            *session.posargs,
        )


@nox.session(python="3.11")
def cuda_build(session: nox.Session) -> None:
    """Compiles det-ops with its CUDA kernels (one architecture) and imports it; no GPU needed."""
    if shutil.which("nvcc") is None and not os.environ.get("CUDACXX"):
        session.error("cuda_build needs nvcc on PATH (or CUDACXX)")
    session.install("numpy")
    session.install(
        "--force-reinstall",
        "--no-deps",
        "./packages/det-ops",
        env={"DET_OPS_CUDA": "ON", "DET_OPS_CUDA_ARCHS": "80"},
    )
    session.run(
        "python",
        "-c",
        "import det_ops; from det_ops import _C; assert _C.cuda_compiled; "
        "print('CUDA kernels:', sorted(n for n in dir(_C.cuda) if not n.startswith('_')))",
    )


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff lint and format check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python="3.11")
def build(session: nox.Session) -> None:
    """Wheels of every package into dist/."""
    session.install("build")
    for path in _package_dirs():
        session.run("python", "-m", "build", "--wheel", "--outdir", "dist", path)


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """The op benchmark against torchvision; writes packages/det-ops/BENCHMARKS.md."""
    session.install(*TORCH)
    session.install("./packages/det-ops[torch]")
    session.run(
        "python",
        "-m",
        "det_ops.bench",
        "--write",
        "packages/det-ops/BENCHMARKS.md",
        *session.posargs,
    )


# Detector benchmarks against torchvision (BENCHMARKS.md): (mode, zoo model) pairs.
BENCH_MODELS = (
    ("infer", "faster_rcnn"),
    ("infer", "mask_rcnn"),
    ("infer", "retinanet"),
    ("train", "faster_rcnn"),
)


@nox.session(python="3.11")
def bench_models(session: nox.Session) -> None:
    """Our R-50-FPN detectors against torchvision's on 2 CPU threads (BENCHMARKS.md rows).

    Extra arguments go to every det_engine.bench call, e.g. `nox -s bench_models -- --iters 5`.
    """
    session.install(*TORCH)
    session.install(*_package_dirs(), env={"DET_OPS_CUDA": "OFF"})
    for mode, model in BENCH_MODELS:
        session.run(
            *("python", "-m", "det_engine.bench", mode, model, "r50", "1x"),
            *("--compare", "torchvision", "--threads", "2", "--iters", "3"),
            *session.posargs,
        )
