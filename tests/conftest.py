import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import importlib.util
import os

import pytest


def pytest_collection_modifyitems(config, items):
    """In CI the oracle extra is installed, so an oracle test must never be skipped there."""
    if os.environ.get("CI") and importlib.util.find_spec("keras") is None:
        raise pytest.UsageError("CI=true but keras is missing: install the `oracle` extra")
