"""Fixtures of the TLS layer tests: where the shared captures are, and a skip when they are not."""

from __future__ import annotations

from pathlib import Path

import pytest
from mt_tls_streams import shared_dir


@pytest.fixture(scope="session")
def shared() -> Path:
    root = shared_dir()
    if not (root / "samples-src" / "captures").is_dir():
        pytest.skip(f"shared test data not found at {root} (set MAILTRACE_SHARED)")
    return root
