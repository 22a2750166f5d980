"""Review 4, input side: a pipe hands over finished sessions at once (#7), an unreadable input keeps
its entry in ``capture.files`` (#5), ``--tls-keylog`` is repeatable (#2), a key log may start with a
UTF-8 BOM (#9)."""

from __future__ import annotations

import io
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from mailtrace.capture.reader import CaptureError, CaptureFile, open_capture
from mailtrace.tls import KeyLog
from tests.pcapgen import Capture, Tcp, smtp_capture
from tests.support import REPO, report, run_cli, sample

SMTP = [
    ("s", b"220 mx.example.com ESMTP\r\n"),
    ("c", b"EHLO client.example.com\r\n"),
    ("s", b"250 mx.example.com\r\n"),
    ("c", b"MAIL FROM:<a@example.com>\r\n"),
    ("s", b"250 ok\r\n"),
    ("c", b"RCPT TO:<b@example.com>\r\n"),
    ("s", b"250 ok\r\n"),
    ("c", b"DATA\r\n"),
    ("s", b"354 go\r\n"),
    ("c", b"Subject: one\r\n\r\nbody\r\n.\r\n"),
    ("s", b"250 queued\r\n"),
    ("c", b"QUIT\r\n"),
    ("s", b"221 bye\r\n"),
]


def _two_sessions() -> tuple[bytes, int]:
    """A pcap of two SMTP sessions one after the other, and the byte offset where the first ends."""
    cap = Capture()
    for n, start in ((1, 1_700_000_000.0), (2, 1_700_000_060.0)):
        conv = Tcp(cap, client=(f"10.0.0.{n}", 40000 + n), ts=start).handshake()
        for who, data in SMTP:
            (conv.c if who == "c" else conv.s)(data)
        conv.fin()
        if n == 1:
            first = len(cap.frames)
    raw = cap.pcap_bytes()
    cut = 24 + sum(16 + len(f.data) for f in cap.frames[:first])
    return raw, cut


# --------------------------------------------------------------------------- #7 pipes stream
def _line(fd: int, pending: bytearray, timeout: float) -> bytes | None:
    """The next line from ``fd`` within ``timeout`` seconds (None: none came)."""
    deadline = time.monotonic() + timeout
    while b"\n" not in pending:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        chunk = os.read(fd, 65536)
        if not chunk:
            return None
        pending += chunk
    line, _, rest = bytes(pending).partition(b"\n")
    pending[:] = rest
    return line


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_pipe_hands_over_a_finished_session_before_more_data_comes(jobs: str) -> None:
    raw, cut = _two_sessions()
    command = [sys.executable, "-m", "mailtrace", "analyze", "--jobs", jobs, "--format", "jsonl", "-"]
    pending = bytearray()
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            cwd=REPO)
    assert proc.stdin is not None and proc.stdout is not None
    fd = proc.stdout.fileno()
    try:
        proc.stdin.write(raw[:cut])
        proc.stdin.flush()
        first = _line(fd, pending, 8)  # the old reader waited for 1 MiB more, or the end
        assert first is not None, "no session printed while the pipe stayed open: the reader waits for more data"
        session = json.loads(first)
        assert (session["id"], session["client"], session["close"]) == (1, {"ip": "10.0.0.1", "port": 40001}, "fin")
        assert session["messages"][0]["subject"] == "one"
        proc.stdin.write(raw[cut:])
        proc.stdin.close()
        second = _line(fd, pending, 30)
        assert second is not None
        session = json.loads(second)
        assert (session["id"], session["client"], session["close"]) == (2, {"ip": "10.0.0.2", "port": 40002}, "fin")
        assert proc.wait(timeout=30) == 0
    finally:
        if not proc.stdin.closed:
            proc.stdin.close()  # a forked child (--jobs 2) ends at the end of its input
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()


class _Trickle(io.RawIOBase):
    """A pipe that hands over ``first`` bytes (the file header), then at most 5 bytes per read."""

    def __init__(self, data: bytes, first: int = 24) -> None:
        super().__init__()
        self.data = data
        self.pos = 0
        self.first = first

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.first if self.pos == 0 else 5, len(self.data) - self.pos)
        buffer[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n


def test_short_reads_from_a_pipe_give_every_frame_and_no_problem(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    raw, _ = _two_sessions()
    path = tmp_path / "two.pcap"
    path.write_bytes(raw)
    expected = list(open_capture(str(path)).frames())
    monkeypatch.setattr(sys, "stdin", type("Stdin", (), {"buffer": _Trickle(raw)})())
    capture = open_capture("-")
    assert list(capture.frames()) == expected and len(expected) == 2 * (3 + len(SMTP) + 3)
    assert (capture.problems, capture.truncated, capture.bytes_read) == ([], False, len(raw) - 24)


@pytest.mark.parametrize("compress", [False, True])
def test_a_file_header_that_arrives_in_pieces_is_read_whole(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                            compress: bool) -> None:
    """A pipe may bring the first bytes one at a time: the magic was judged on the first read alone
    ("not a pcap or pcapng capture (starts with d4)", and gzip's 1f 8b missed the same way)."""
    import gzip

    raw, _ = _two_sessions()
    path = tmp_path / "two.pcap"
    path.write_bytes(raw)
    expected = list(open_capture(str(path)).frames())
    piped = gzip.compress(raw) if compress else raw
    monkeypatch.setattr(sys, "stdin", type("Stdin", (), {"buffer": _Trickle(piped, first=1)})())
    capture = open_capture("-")
    assert list(capture.frames()) == expected
    assert capture.problems == [] and capture.filetype == ("pcap+gzip" if compress else "pcap")


def test_short_reads_still_find_a_record_cut_short(monkeypatch: pytest.MonkeyPatch) -> None:
    raw, _ = _two_sessions()
    monkeypatch.setattr(sys, "stdin", type("Stdin", (), {"buffer": _Trickle(raw[:-7])})())
    capture = open_capture("-")
    frames = list(capture.frames())
    assert len(frames) == 2 * (3 + len(SMTP) + 3) - 1
    assert capture.truncated and capture.problems[0].startswith("last record cut short (")


# --------------------------------------------------------------------------- #5 unreadable inputs
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_unreadable_input_keeps_its_entry_in_capture_files(tmp_path: Path, jobs: str) -> None:
    good = smtp_capture().write(tmp_path / "good.pcap")
    text = tmp_path / "text.pcap"
    text.write_bytes(b"hello world, this is not a capture\n")
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    result = run_cli("analyze", "--jobs", jobs, "--format", "json", str(text), str(good), str(empty))
    assert result.exit_code == 0
    assert result.stderr.count("\n") == 2 and "text.pcap: not a pcap or pcapng capture" in result.stderr
    files = json.loads(result.stdout)["capture"]["files"]
    assert [f["name"] for f in files] == [str(text), str(good), str(empty)]
    assert files[0] == {"name": str(text), "format": None, "packets": 0, "bytes": 0, "start": None, "end": None,
                        "truncated": False, "problems": [], "snapped": 0,
                        "error": "not a pcap or pcapng capture (starts with 68656c6c); "
                                 "save it from Wireshark/tcpdump as pcap or pcapng"}
    assert files[2]["error"] == "empty file, not a capture"
    assert files[1]["error"] is None and files[1]["format"] == "pcap"
    assert files[1]["packets"] == len(smtp_capture().frames)


def test_missing_input_is_listed_and_the_summary_names_it(tmp_path: Path) -> None:
    good = smtp_capture().write(tmp_path / "good.pcap")
    missing = tmp_path / "missing.pcap"
    data = json.loads(run_cli("analyze", "--format", "json", str(good), str(missing)).stdout)
    assert data["capture"]["files"][1]["error"] == "no such file"
    assert len(data["sessions"]) == 1
    text = run_cli("analyze", "--list", "--no-color", str(good), str(missing))
    assert text.exit_code == 0
    summary = text.stdout[text.stdout.index("Summary"):]
    assert str(good) in summary and str(missing) in summary


def test_all_inputs_unreadable_is_still_exit_2(tmp_path: Path) -> None:
    text = tmp_path / "text.pcap"
    text.write_bytes(b"not a capture at all")
    result = run_cli("analyze", "--format", "json", str(text), str(tmp_path / "missing.pcap"))
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"mailtrace: {text}: not a pcap or pcapng capture (starts with 6e6f7420); "
        "save it from Wireshark/tcpdump as pcap or pcapng",
        f"mailtrace: {tmp_path / 'missing.pcap'}: no such file",
    ]


def test_capture_error_keeps_name_and_reason(tmp_path: Path) -> None:
    with pytest.raises(CaptureError) as info:
        open_capture(str(tmp_path / "nope.pcap"))
    assert (info.value.name, info.value.reason, str(info.value)) == (
        str(tmp_path / "nope.pcap"), "no such file", f"{tmp_path / 'nope.pcap'}: no such file")
    stand_in = CaptureFile.unreadable(info.value)
    assert (stand_in.name, stand_in.error, list(stand_in.frames())) == (str(tmp_path / "nope.pcap"), "no such file", [])


# --------------------------------------------------------------------------- #2 several key logs
def test_two_key_logs_are_merged() -> None:
    args = ("--tls-keylog", str(sample("smtp-starttls.keylog")), "--tls-keylog", str(sample("tls-implicit.keylog")))
    data = report(sample("smtp-starttls.pcap"), sample("tls-implicit.pcap"), args=args)
    first = data["sessions"][0]
    assert (first["decrypted"], first["user"], len(first["messages"])) == (True, "bob", 1)
    users = [s["user"] for s in data["sessions"]]
    assert users == ["bob", None, "bob", "carol", "bob", "carol", "bob"]
    alone = report(sample("smtp-starttls.pcap"), args=args[2:])["sessions"][0]
    assert (alone["decrypted"], alone["user"]) == (False, None)  # what the last key log alone gave


def test_two_key_logs_in_stats_and_extract(tmp_path: Path) -> None:
    args = ["--tls-keylog", str(sample("smtp-starttls.keylog")), "--tls-keylog", str(sample("tls-implicit.keylog"))]
    captures = [str(sample("smtp-starttls.pcap")), str(sample("tls-implicit.pcap"))]
    stats = json.loads(run_cli("stats", "--format", "json", *args, *captures).stdout)
    assert stats["auth"]["users"] == [["bob", 4], ["carol", 2]]
    out = run_cli("extract", *args, *captures, "-o", str(tmp_path / "x"))
    assert out.stdout.startswith("Extracted 2 messages from 2 sessions")


@pytest.mark.parametrize("command", ["analyze", "stats", "extract", "report", "flows", "live"])
def test_tls_keylog_help_says_repeatable(command: str) -> None:
    assert "Repeatable: the secrets of all key logs" in " ".join(run_cli(command, "--help").stdout.split())


def test_an_empty_key_log_among_several_is_named_and_the_others_decrypt(tmp_path: Path) -> None:
    empty = tmp_path / "empty.keylog"
    empty.write_text("")
    result = run_cli("analyze", "--format", "json", "--tls-keylog", str(empty),
                     "--tls-keylog", str(sample("smtp-starttls.keylog")), str(sample("smtp-starttls.pcap")))
    assert result.exit_code == 0
    assert result.stderr.startswith(f"mailtrace: --tls-keylog {empty}: no TLS secrets found (it holds no lines")
    assert json.loads(result.stdout)["sessions"][0]["user"] == "bob"


# --------------------------------------------------------------------------- #9 BOM
def test_key_log_with_a_utf8_bom_keeps_its_first_line(tmp_path: Path) -> None:
    lines = [line for line in sample("smtp-starttls.keylog").read_text().splitlines() if not line.startswith("#")]
    plain = KeyLog.from_text("\n".join(lines))
    for text in ("\ufeff" + "\n".join(lines[:1]), b"\xef\xbb\xbf" + lines[0].encode()):
        one = KeyLog.from_text(text)
        assert (len(one), one.skipped_lines) == (1, 0)
    bom = tmp_path / "bom.keylog"
    bom.write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode() + b"\n")
    from_file = KeyLog.from_file(bom)
    assert (len(from_file), from_file.skipped_lines) == (len(plain), 0)
    session = report(sample("smtp-starttls.pcap"), args=("--tls-keylog", str(bom), "--session", "1"))["sessions"][0]
    assert (session["decrypted"], session["user"], len(session["messages"])) == (True, "bob", 1)


def test_an_empty_file_name_is_named_as_such() -> None:
    from tests.support import run_cli as cli

    result = cli("analyze", "")
    assert result.exit_code == 2
    assert result.stderr == "mailtrace: '': an empty file name (give a pcap/pcapng path, or - for stdin)\n"


def test_the_summary_names_an_unreadable_input_with_its_reason(tmp_path: Path) -> None:
    from tests.support import run_cli as cli
    from tests.support import sample

    text = tmp_path / "text.pcap"
    text.write_text("not a capture")
    out = cli("analyze", "--list", str(sample("pop3-session.pcap")), str(text)).stdout
    assert f"{text}: not read: not a pcap or pcapng capture" in out
    german = cli("analyze", "--list", "--lang", "de", str(sample("pop3-session.pcap")), str(text)).stdout
    assert f"{text}: nicht gelesen: not a pcap or pcapng capture" in german


def test_an_unreadable_input_is_named_in_stats_html_and_the_extract_index(tmp_path: Path) -> None:
    from tests.support import run_cli as cli
    from tests.support import sample

    text = tmp_path / "text.pcap"
    text.write_text("not a capture")
    good = str(sample("pop3-session.pcap"))
    stats = cli("stats", "--format", "json", good, str(text)).stdout
    document = json.loads(stats)
    assert document["capture"]["files"] == [good, str(text)]
    assert document["capture"]["unreadable"][0]["name"] == str(text)
    assert document["capture"]["unreadable"][0]["error"].startswith("not a pcap or pcapng capture")
    assert f"{text}: not read: not a pcap" in cli("stats", good, str(text)).stdout
    page = tmp_path / "r.html"
    assert cli("report", good, str(text), "-o", str(page)).exit_code == 0
    assert 'not read</span> not a pcap or pcapng capture' in page.read_text()
    out = tmp_path / "x"
    assert cli("extract", good, str(text), "-o", str(out)).exit_code == 0
    index = json.loads((out / "index.json").read_text())
    unread = [c for c in index["captures"] if c["name"] == str(text)]
    assert unread[0]["format"] is None and unread[0]["error"].startswith("not a pcap")
