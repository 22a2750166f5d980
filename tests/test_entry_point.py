"""``python -m mailtrace`` (and the console script) end through ``cli.run``, which skips the
interpreter's teardown: what it prints and the exit status must be what ``main`` says."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support import REPO

SAMPLE = str(REPO / "samples" / "smtp-errors.pcap")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mailtrace", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, check=False)


def test_the_whole_report_is_written_and_the_status_is_zero() -> None:
    done = _run("analyze", "--format", "json", "--jobs", "2", SAMPLE)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)  # flushed to the last byte
    assert report["sessions"] and report["findings"]


def test_errors_and_findings_keep_their_status() -> None:
    missing = _run("analyze", "no-such-capture.pcap")
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == ["mailtrace: no-such-capture.pcap: no such file"]
    assert _run("analyze", "--format", "json", "--fail-on", "low", SAMPLE).returncode == 3
    assert _run("--version").stdout.startswith("mailtrace, version")


def test_files_written_by_a_command_are_complete(tmp_path: Path) -> None:
    """``extract`` and ``report`` write files: the exit without teardown must find them closed and
    whole, as the in-process run leaves them."""
    from tests.support import run_cli

    capture = str(REPO / "samples" / "smtp-submission-auth.pcap")
    assert _run("extract", capture, "-o", str(tmp_path / "sub")).returncode == 0
    assert run_cli("extract", capture, "-o", str(tmp_path / "inproc")).exit_code == 0
    written = {p.relative_to(tmp_path / "sub"): p.read_bytes() for p in (tmp_path / "sub").rglob("*") if p.is_file()}
    expected = {p.relative_to(tmp_path / "inproc"): p.read_bytes()
                for p in (tmp_path / "inproc").rglob("*") if p.is_file()}
    assert written.keys() == expected.keys() and len(written) > 2
    assert {k: v for k, v in written.items() if k.name != "index.json"} == \
        {k: v for k, v in expected.items() if k.name != "index.json"}
    assert json.loads(written[Path("index.json")])
    assert _run("report", capture, "-o", str(tmp_path / "r.html")).returncode == 0
    assert (tmp_path / "r.html").read_text(encoding="utf-8").rstrip().endswith("</html>")
