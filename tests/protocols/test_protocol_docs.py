"""docs/protocols/{pop3,imap}.md: their state-machine sections are generated from the code's tables."""

from __future__ import annotations

import importlib.util
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_generated_sections_are_up_to_date() -> None:
    spec = importlib.util.spec_from_file_location("make_protocol_docs", DOCS / "make_protocol_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--check"]) == 0, "run: python docs/make_protocol_docs.py"
    for name in ("pop3.md", "imap.md"):
        text = (DOCS / "protocols" / name).read_text(encoding="utf-8")
        assert "stateDiagram-v2" in text and "| command |" in text
