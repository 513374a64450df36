def pytest_configure(config):
    config.addinivalue_line("markers", "slow: trains a detector on CPU for a few iterations")
