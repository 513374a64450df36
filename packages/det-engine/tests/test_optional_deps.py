"""Commands check their optional packages when they start, with the pip command to run.

Packages are made missing by putting None in sys.modules (what an absent package does to
``import``), not by uninstalling them.
"""

import sys

import pytest

from det_engine import optional_deps
from det_engine.apps import bench, deploy, export
from det_engine.optional_deps import MissingPackageError, install_command, missing, require


def _absent(monkeypatch, *modules):
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)


def test_missing_lists_what_cannot_be_imported(monkeypatch):
    assert missing("onnx", "matplotlib") == []  # the test environment has both
    _absent(monkeypatch, "onnx", "matplotlib")
    assert missing("tensorboard", "onnx", "matplotlib") == ["onnx", "matplotlib"]
    with pytest.raises(ValueError, match="unknown optional package 'numpy'"):
        missing("numpy")


def test_install_command_names_packages_and_extras():
    assert (
        install_command(["matplotlib"])
        == 'pip install matplotlib (or pip install "det-engine[plot]")'
    )
    assert install_command(["onnx", "onnxruntime"]) == (
        'pip install onnx onnxruntime (or pip install "det-engine[export]")'
    )
    assert install_command(["tensorboard", "matplotlib"]) == (
        'pip install tensorboard matplotlib (or pip install "det-engine[plot,tensorboard]")'
    )


def test_require_says_what_needs_which_packages(monkeypatch):
    require("onnx", purpose="--format onnx")  # installed: no error
    _absent(monkeypatch, "onnx", "onnxscript")
    with pytest.raises(MissingPackageError) as info:
        require("onnx", "onnxscript", purpose="--format onnx")
    assert info.value.missing == ["onnx", "onnxscript"]
    assert str(info.value) == (
        "--format onnx needs onnx and onnxscript, which are not installed: "
        'pip install onnx onnxscript (or pip install "det-engine[export]")'
    )
    assert isinstance(info.value, ImportError)


def test_onnx_export_checks_onnx_before_loading_anything(tmp_path, monkeypatch, capsys):
    _absent(monkeypatch, "onnxscript")
    loaded = []
    monkeypatch.setattr(export, "_model_and_data", lambda args: loaded.append(args))
    argv = ["--ckpt", str(tmp_path / "missing.pth"), "--format", "onnx"]
    assert export.main([*argv, "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert err == (
        "error: --format onnx needs onnxscript, which is not installed: "
        'pip install onnxscript (or pip install "det-engine[export]")\n'
    )
    assert loaded == [] and not (tmp_path / "m.onnx").exists()


def test_deploy_checks_onnxruntime_first(tmp_path, monkeypatch, capsys):
    _absent(monkeypatch, "onnxruntime")
    image = tmp_path / "a.jpg"
    assert deploy.main([str(tmp_path / "model.onnx"), str(image)]) == 2
    err = capsys.readouterr().err
    assert "python -m det_engine.deploy needs onnxruntime, which is not installed" in err
    assert "pip install onnxruntime" in err
    with pytest.raises(MissingPackageError, match="running an ONNX detector needs onnxruntime"):
        deploy.OnnxDetector(tmp_path / "model.onnx")


def test_bench_onnxruntime_checks_before_building_models(monkeypatch, capsys):
    _absent(monkeypatch, "onnxruntime")
    with pytest.raises(SystemExit) as info:
        bench.parse_args(["infer", "faster_rcnn", "r50", "1x", "--runtime", "onnxruntime"])
    assert info.value.code == 2
    assert "--runtime onnxruntime needs onnxruntime: pip install onnxruntime" in (
        capsys.readouterr().err
    )


def test_every_package_has_an_extra_of_det_engine():
    from pathlib import Path

    import tomllib

    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    extras = pyproject["project"]["optional-dependencies"]
    for package in optional_deps.PACKAGES.values():
        names = [spec.split(">")[0].split("=")[0] for spec in extras[package.extra]]
        assert package.pip_name in names, package
