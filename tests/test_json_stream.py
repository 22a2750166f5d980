"""A long session's JSON entry is written a piece at a time, with exactly the text of the whole entry.

One SMTP session of 300,000 RCPT commands kept 150,000 commands and replies (the run's budget then);
writing its entry built 32 MiB of dicts and two copies of 31 MiB of JSON text at once, and the run peaked at
193 MiB."""

from __future__ import annotations

import io
import tracemalloc
from pathlib import Path

import pytest

from mailtrace.capture.reader import open_capture
from mailtrace.config import Config
from mailtrace.pipeline import Analyzer
from mailtrace.render import json as json_mod
from mailtrace.render.json import JsonReportWriter, dumps, jsonl_writer, long_session, session_json, write_session
from mailtrace.session import Session
from tests.pcapgen import Capture, Tcp
from tests.support import sample


def _sessions(path: Path) -> list[Session]:
    return list(Analyzer(Config()).run([open_capture(str(path))]))


def _rcpt_flood(tmp_path: Path, rcpts: int, command: bytes = b"RCPT TO:<u%d@example.org>\r\n") -> Path:
    """One SMTP session: EHLO, MAIL and ``rcpts`` RCPT commands (or ``command``), each answered, 100 a
    segment."""
    cap = Capture()
    t = Tcp(cap, client=("10.0.0.1", 40000), server=("10.0.0.2", 25)).handshake()
    t.s(b"220 mx ESMTP\r\n")
    t.c(b"EHLO x\r\n")
    t.s(b"250 mx\r\n")
    t.c(b"MAIL FROM:<a@example.net>\r\n")
    t.s(b"250 ok\r\n")
    for start in range(0, rcpts, 100):
        numbers = range(start, min(rcpts, start + 100))
        t.c(b"".join(command % n for n in numbers))
        t.s(b"".join(b"250 2.1.5 ok %d\r\n" % n for n in numbers))
    t.c(b"QUIT\r\n")
    t.s(b"221 bye\r\n")
    t.fin()
    path = tmp_path / "rcpt.pcap"
    cap.write(path)
    return path


@pytest.mark.parametrize("name", ["smtp-submission-auth.pcap", "pop3-session.pcap", "imap-session.pcap"])
def test_an_entry_written_in_pieces_is_the_entry(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every session of real captures, with pieces of one entry each (all arrays, empty ones too)."""
    monkeypatch.setattr(json_mod, "STREAM_ENTRIES", 1)
    sessions = _sessions(sample(name))
    assert sessions
    for s in sessions:
        assert long_session(s)
        for secrets in (False, True):
            out = io.StringIO()
            write_session(out.write, s, secrets)
            assert out.getvalue() == dumps(session_json(s, secrets))


def test_a_long_session_is_written_in_pieces_with_the_same_text(tmp_path: Path) -> None:
    [s] = _sessions(_rcpt_flood(tmp_path, 3_000))
    assert len(s.commands) == 3_003 and len(s.replies) == 3_004  # EHLO, MAIL, QUIT; and the greeting
    assert long_session(s)
    pieces: list[str] = []
    write_session(pieces.append, s)
    whole = dumps(session_json(s))
    assert "".join(pieces) == whole
    # the 3,003 commands came in two pieces of 2,000 and 1,003 entries, the replies likewise
    assert max(len(p) for p in pieces) < len(whole) // 2
    assert sum(p.count('"verb":"RCPT"') for p in pieces) == 3_000


def test_the_report_writers_write_the_pieces(tmp_path: Path) -> None:
    """--format json and --format jsonl: the same document as entries encoded whole."""
    sessions = _sessions(_rcpt_flood(tmp_path, 2_500))
    out = io.StringIO()
    writer = JsonReportWriter(out)
    writer.begin()
    for s in sessions:
        writer.session(s)
    assert out.getvalue() == '{"format":"mailtrace-report","version":1,"sessions":[\n' + dumps(
        session_json(sessions[0]))
    lines = io.StringIO()
    jsonl_writer(lines)(sessions[0])
    assert lines.getvalue() == dumps(session_json(sessions[0])) + "\n"


def test_writing_a_long_entry_holds_a_piece_not_the_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pieces of 250 entries of a 24,000-entry session: what is held at once is a piece's dicts and text
    (NOOPs: the recipients of a RCPT flood are in its transaction, an entry of their own)."""
    monkeypatch.setattr(json_mod, "STREAM_ENTRIES", 250)
    [s] = _sessions(_rcpt_flood(tmp_path, 12_000, b"NOOP %d\r\n"))
    assert len(s.commands) + len(s.replies) == 24_007 and not s.events_dropped
    whole = len(dumps(session_json(s)))

    def peak(write: object) -> int:
        tracemalloc.start()
        try:
            write()  # type: ignore[operator]
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    sink: list[int] = []
    streamed = peak(lambda: write_session(lambda text: sink.append(len(text)), s))
    assert sum(sink) == whole
    built = peak(lambda: dumps(session_json(s)))
    assert built > 3 * whole  # the dicts and the text (the case this guards against)
    assert streamed < whole // 3
