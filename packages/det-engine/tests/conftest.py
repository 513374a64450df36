import urllib.error

import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: trains a detector on CPU for a few iterations")
    config.addinivalue_line("markers", "gpu: needs a CUDA device and det-ops built with CUDA")


def pytest_collection_modifyitems(config, items):
    import det_ops

    if det_ops.has_cuda():
        return
    skip = pytest.mark.skip(reason="no CUDA device or det-ops built without CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _no_weight_downloads(monkeypatch):
    """The tests never fetch backbone weights from the network (in this process)."""
    from det_backbones import pretrained

    def refuse(url, dst, hash_prefix=None, progress=True):
        raise urllib.error.URLError(f"the tests download nothing ({url})")

    monkeypatch.setattr(pretrained, "download_url_to_file", refuse)
