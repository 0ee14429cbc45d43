"""Shared pytest configuration (append-only: several engineers add to this file)."""
import pytest


# -- slow tests: marked @pytest.mark.slow, skipped unless asked for (--runslow or -m slow) --------
def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="also run tests marked slow")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long end-to-end runs (e.g. the book's MNIST); use --runslow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow") or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow test: run with --runslow (or -m slow)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
