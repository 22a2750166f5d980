"""Project-wide test options and fixtures.

``pytest --update-golden`` rewrites the golden files under ``tests/golden/`` from the current output
instead of comparing against them (review the diff before committing it).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite tests/golden/* from the current output instead of comparing",
    )


@pytest.fixture(scope="session")
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


def shared_root() -> Path:
    """The shared data folder: $MAILTRACE_SHARED, else the sibling ``shared`` of the repository."""
    env = os.environ.get("MAILTRACE_SHARED")
    return Path(env) if env else REPO.parent / "shared"


@pytest.fixture(scope="session")
def captures() -> Path:
    """``shared/samples-src/captures`` (real lab captures with tshark output), or skip."""
    folder = shared_root() / "samples-src" / "captures"
    if not folder.is_dir():
        pytest.skip(f"shared sample captures not found at {folder} (set MAILTRACE_SHARED)")
    return folder
