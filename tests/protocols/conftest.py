"""Fixtures of the POP3/IMAP dissector tests: the shared captures, skipped with a reason when absent."""

from __future__ import annotations

from pathlib import Path

import pytest
from mt_popimap import captures_dir


@pytest.fixture(scope="session")
def captures() -> Path:
    root = captures_dir()
    if not root.is_dir():
        pytest.skip(f"shared sample captures not found at {root} (set MAILTRACE_SHARED to the shared folder)")
    return root
