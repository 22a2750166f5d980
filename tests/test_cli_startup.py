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
print(" ".join(m for m in ("jinja2", "scapy", "mailtrace.commands.live", "mailtrace.render.html", "cryptography",
                           "rich", "mailtrace.tls.session") if m in sys.modules))
"""


def loaded_by(*args: str) -> set[str]:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True)
    return set(done.stdout.split())


def test_version_loads_no_sub_command() -> None:
    assert loaded_by("--version") == set()


def test_analyze_loads_neither_the_html_report_nor_scapy() -> None:
    """Nor ``cryptography`` (a capture without certificates in the clear or a key log does not need
    it), nor ``rich`` (JSON is not terminal text)."""
    assert loaded_by("analyze", "--format", "json", str(SAMPLE)) == set()


def test_the_text_view_loads_rich() -> None:
    assert loaded_by("analyze", str(SAMPLE)) == {"rich"}


def test_a_key_log_loads_cryptography_for_the_ciphers() -> None:
    """The TLS layer itself loads with the first TLS session (the sample above has none)."""
    tls = SAMPLE.parent / "tls-implicit.pcap"
    session = "mailtrace.tls.session"
    assert loaded_by("analyze", "--format", "json", str(tls)) == {session}  # TLS 1.3: certificates encrypted
    keylog = SAMPLE.parent / "tls-implicit.keylog"
    assert loaded_by("analyze", "--format", "json", "--tls-keylog", str(keylog), str(tls)) == {"cryptography", session}


def test_analyze_with_html_loads_the_report(tmp_path: Path) -> None:
    assert loaded_by("analyze", "--list", "--html", str(tmp_path / "r.html"), str(SAMPLE)) == {
        "jinja2", "mailtrace.render.html", "rich"}


def test_a_run_collects_garbage_in_larger_generations() -> None:
    """The youngest generation holds GC_YOUNG_THRESHOLD allocations, not CPython's 700 (the collector
    traversed the sessions' long-lived rows over and over); the older generations keep their settings."""
    import gc

    from mailtrace.cli import GC_YOUNG_THRESHOLD
    from tests.support import run_cli

    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    try:
        assert run_cli("analyze", "--format", "json", str(SAMPLE)).exit_code == 0
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, 10, 10)
    finally:
        gc.set_threshold(*before)
