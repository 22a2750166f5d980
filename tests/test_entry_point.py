"""``python -m mailtrace`` (and the console script) end through ``cli.run``, which skips the
interpreter's teardown: what it prints and the exit status must be what ``main`` says."""

from __future__ import annotations

import json
import subprocess
import sys

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
