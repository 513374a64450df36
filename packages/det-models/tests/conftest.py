import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: heavier cases, deselected by nox's default run")
    config.addinivalue_line("markers", "gpu: needs a CUDA device and det-ops built with CUDA")


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    import det_ops

    if det_ops.has_cuda():
        return
    skip = pytest.mark.skip(reason="no CUDA device or det-ops built without CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
