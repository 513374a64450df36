import sys

import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA device and det-ops built with CUDA")


def pytest_collection_modifyitems(config, items):
    import det_ops

    if det_ops.has_cuda():
        return
    skip = pytest.mark.skip(reason="no CUDA device or det-ops built without CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    """Lists the CUDA kernels that the emulated build (det_ops._C_emulated) launched in this
    run, and those of csrc/cuda that it never launched."""
    emulated = sys.modules.get("det_ops._C_emulated")
    if emulated is None:
        return
    from cuda_devices import kernels_in_sources

    launches = emulated.emulator.launches()
    terminalreporter.section("CUDA kernels launched by the emulated build")
    for name, count in sorted(launches.items()):
        terminalreporter.write_line(f"{count:6d}  {name}")
    never = sorted(kernels_in_sources() - set(launches))
    if never:
        terminalreporter.write_line(f"never launched: {', '.join(never)}")
