"""Start-up cost is part of every run: a sub-command loads only what it uses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "pop3-session.pcap"
PROBE = """
import contextlib, io, sys
from mailtrace.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main(sys.argv[1:], standalone_mode=True)
    except SystemExit as exit:
        assert not exit.code, exit.code
print(" ".join(m for m in ("jinja2", "scapy", "mailtrace.commands.live", "mailtrace.render.html") if m in sys.modules))
"""


def loaded_by(*args: str) -> set[str]:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True)
    return set(done.stdout.split())


def test_version_loads_no_sub_command() -> None:
    assert loaded_by("--version") == set()


def test_analyze_loads_neither_the_html_report_nor_scapy() -> None:
    assert loaded_by("analyze", "--format", "json", str(SAMPLE)) == set()


def test_analyze_with_html_loads_the_report(tmp_path: Path) -> None:
    assert loaded_by("analyze", "--list", "--html", str(tmp_path / "r.html"), str(SAMPLE)) == {
        "jinja2", "mailtrace.render.html"}
