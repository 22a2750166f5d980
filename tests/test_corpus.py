"""Ground truth from ~110 real captures (peers' outputs and lab facts), scored like check_corpus.py.

Runs the shared checker's own expectations and scoring in-process (no subprocess per capture), so a
regression in any field on any capture fails here with the capture's name and the field.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from mailtrace.capture.reader import open_capture
from mailtrace.config import Config
from mailtrace.pipeline import Analyzer
from mailtrace.render.json import capture_json, session_json
from tests.support import CORPUS, SAMPLES, SHARED, need_shared

KNOWN_DIFFERENCES: dict[str, set[str]] = {}
"""Case name → fields where the ground truth is wrong (with the evidence in a comment). Empty: all agree."""


def checker() -> ModuleType:
    need_shared()
    path = SHARED / "tools" / "check_corpus.py"
    spec = importlib.util.spec_from_file_location("check_corpus", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_corpus"] = module
    spec.loader.exec_module(module)
    return module


def analyse(path: Path) -> dict[str, Any]:
    analyzer = Analyzer(Config())
    sessions = [session_json(s) for s in analyzer.run([open_capture(str(path))])]
    return {"format": "mailtrace-report", "version": 1, "sessions": sessions,
            "capture": capture_json(analyzer.stats)}


def cases() -> list[Any]:
    if not CORPUS.is_dir():
        return []
    return checker().discover([CORPUS, SAMPLES], None)


@pytest.mark.parametrize("case", cases(), ids=lambda c: Path(c.name).name)
def test_ground_truth(case: Any) -> None:
    cc = sys.modules["check_corpus"]
    _agreed, found, false_sessions, misses, _fields = cc.score(case, analyse(case.capture))
    mail = [s for s in case.sessions if s.protocol != "none"]
    assert found == len(mail), misses
    assert false_sessions == 0, misses
    known = KNOWN_DIFFERENCES.get(Path(case.name).name, set())
    unexpected = [m for m in misses if not any(f" {field}:" in m for field in known)]
    assert not unexpected, "\n".join(unexpected)


def test_corpus_present() -> None:
    need_shared()
    assert len(cases()) >= 100
