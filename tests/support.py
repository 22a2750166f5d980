"""Helpers shared by the tests: where the shared data is, and running the analyzer in-process."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mailtrace.cli import main

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MAILTRACE_SHARED", REPO.parent / "shared"))
SAMPLES = SHARED / "samples-src" / "captures"
CORPUS = SHARED / "corpus"


def need_shared() -> None:
    if not SAMPLES.is_dir():
        pytest.skip(f"shared test data not found at {SHARED} (set MAILTRACE_SHARED)")


def sample(name: str) -> Path:
    need_shared()
    return SAMPLES / name


def corpus(rel: str) -> Path:
    """A corpus capture by its folder, e.g. ``zeek/smtp``."""
    need_shared()
    folder = CORPUS / rel
    for p in sorted(folder.iterdir()):
        if p.is_file() and not p.name.endswith(".json"):
            return p
    raise FileNotFoundError(folder)


def run_cli(*args: str, input: bytes | None = None) -> Any:
    """Invoke the CLI in-process; returns click's Result (stdout, stderr, exit_code)."""
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def report(*paths: Path | str, args: tuple[str, ...] = ()) -> dict[str, Any]:
    """The JSON report for captures (asserts a clean exit)."""
    result = run_cli("analyze", "--format", "json", *args, *(str(p) for p in paths))
    assert result.exit_code == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def facts(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(sample(name).read_text())
    return data


class CollectingWriter:
    """A ``PartWriter`` for tests: keeps what the MIME summariser writes and whether it was closed."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.data += data

    def close(self) -> None:
        self.closed = True
