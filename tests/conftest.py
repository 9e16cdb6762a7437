def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA device; skipped where none is available")
