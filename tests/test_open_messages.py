"""What each open message holds back is bounded for the whole run, not only per message.

A connection gathers up to 64 KiB of message content before its dissector reads it (``BULK_BYTES``), a
message summariser up to 64 KiB before it scans (``mime._BLOCK``), and reassembly remembers 64 KiB a
direction to compare retransmissions against (``Reassembler.RECENT_LIMIT``); a session's summariser also
copied the first 64 KiB of its message for a preview the session then dropped. With 2,048 connections
open at once that is hundreds of MiB: 2,000 SMTP sessions each in the middle of an 84 KB message took
393 MiB. The connections and summarisers of a run now share ``session.WAITING_BYTES_ALL``, its
reassemblers ``FlowLimits.max_recent_all``, and the session's summariser keeps no preview.

What the dissectors hold unread is bounded the same way (``session.UNREAD_BYTES_ALL``): lines still being
read past their first KiB (``base.LINE_FLOOR``; each up to 64 KiB, ``max_line``: 2,000 SMTP sessions at once
each in the middle of a 63 KB MAIL FROM held 126 MiB of them, 391 MiB with what was read from them), and
the bytes a client sent before the reply that says how to read them (``base.WaitCharge``; 256 KiB each,
``max_wait_bytes``: 2,000 IMAP APPENDs sent without waiting for the '+' held 360 MiB)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import mailtrace.tcp.flows
from mailtrace.capture.reader import open_capture
from mailtrace.config import Config
from mailtrace.mime import HEADER_FLOOR, HEADER_LINE_COST, MessageSummarizer, MimeLimits
from mailtrace.model import CLIENT, SERVER, ByteBudget, Chunk, Direction
from mailtrace.pipeline import Analyzer
from mailtrace.protocols.base import LINE_FLOOR, DissectorLimits, LineBuffer
from mailtrace.protocols.pop3 import Pop3
from mailtrace.protocols.smtp import Smtp
from mailtrace.render.json import session_json
from mailtrace.session import Session
from mailtrace.tcp.reassembly import PIECE_COST, RETRANSMISSION, Reassembler
from tests.pcapgen import Capture, Tcp

CONNECTIONS = 30
SEGMENTS = 40
LINE = (b"y" * 68 + b"\r\n") * 20  # 1,400 bytes a segment: 56 KB a message
BACK = 10
"""Each client sends again the segment it sent this many segments before (a retransmission of old bytes)."""


class Watched(ByteBudget):
    """A budget that remembers the most it held."""

    __slots__ = ("most",)

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.most = 0

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name == "held" and value > getattr(self, "most", 0):
            super().__setattr__("most", value)


def _open_at_once(tmp_path: Path) -> Path:
    """CONNECTIONS SMTP clients each sending a message of SEGMENTS segments, all at the same time."""
    cap = Capture()
    for i in range(CONNECTIONS):
        t = Tcp(cap, client=(f"10.0.1.{i + 1}", 40000 + i), server=("10.0.0.2", 25), step=0.001).handshake()
        t.s(b"220 mx ESMTP\r\n").c(b"EHLO x\r\n").s(b"250 mx\r\n")
        t.c(b"MAIL FROM:<a@example.net>\r\n").s(b"250 ok\r\n").c(b"RCPT TO:<u@example.org>\r\n").s(b"250 ok\r\n")
        t.c(b"DATA\r\n").s(b"354 go\r\n").c(b"Subject: open %d\r\n\r\n" % i)
        starts = []
        for _ in range(SEGMENTS):
            starts.append(t.seq["c"])
            t.c(LINE)
        t.c(LINE, seq=starts[-BACK])
        t.c(b".\r\n").s(b"250 queued\r\n").c(b"QUIT\r\n").s(b"221 bye\r\n").fin()
    cap.frames.sort(key=lambda f: f.ts)
    return cap.write(tmp_path / "open.pcap")


def _run(path: Path, *, recent_all: int, waiting: int) -> tuple[list[Session], Analyzer]:
    config = Config()
    analyzer = Analyzer(replace(config, flow=replace(config.flow, max_recent_all=recent_all)))
    analyzer.event_budget.waiting = Watched(waiting)
    sessions = list(analyzer.run([open_capture(str(path))]))
    assert analyzer.event_budget.waiting.held == 0  # every held byte went back
    return sessions, analyzer


def _report(s: Session) -> dict[str, Any]:
    return session_json(s, False)


def test_open_messages_hold_back_at_most_the_run_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _open_at_once(tmp_path)
    recent: list[Watched] = []

    def watched_budget(size: int) -> ByteBudget:
        budget = Watched(size)
        recent.append(budget)
        return budget

    monkeypatch.setattr(mailtrace.tcp.flows, "ByteBudget", watched_budget)
    free, free_run = _run(path, recent_all=1 << 40, waiting=1 << 40)
    free_recent = free_run.flows.recent_budget
    tight, tight_run = _run(path, recent_all=64 * 1024, waiting=64 * 1024)
    tight_recent = tight_run.flows.recent_budget
    assert isinstance(free_recent, Watched) and isinstance(tight_recent, Watched)

    # unbounded, every connection holds its last 64 KiB, and gathers a block, all at once
    assert free_recent.most >= CONNECTIONS * 56_000
    assert free_run.event_budget.waiting.most >= CONNECTIONS * 48_000
    # bounded: one segment past the limit, then each direction keeps its floor
    assert tight_recent.most <= 64 * 1024 + len(LINE) + CONNECTIONS * 2 * Reassembler.RECENT_FLOOR
    assert tight_run.event_budget.waiting.most <= 64 * 1024 + 2 * len(LINE)
    assert free_recent.held == tight_recent.held == 0  # connections let go gave theirs back

    # the same report, but for what the bytes no longer remembered can tell: a retransmission of old bytes
    # is still one, without the frame it repeats
    assert len(free) == len(tight) == CONNECTIONS
    for a, b in zip(free, tight, strict=True):
        assert list(a.retransmissions) == list(b.retransmissions) and len(a.retransmissions) == 1
        assert all(a.retransmissions.values()) and not any(b.retransmissions.values())
        a.retransmissions = b.retransmissions = {}
        assert _report(a) == _report(b)
        assert [(m.summary.complete, m.summary.bytes > SEGMENTS * len(LINE)) for m in b.messages] == [(True, True)]


def test_a_direction_past_the_run_limit_keeps_its_floor() -> None:
    shared = ByteBudget(10_000)
    first = Reassembler(Direction.CLIENT, recent_budget=shared)
    second = Reassembler(Direction.CLIENT, recent_budget=shared)
    for r in (first, second):
        r.segment(1000, b"", 0, True, False, 1, 0.0)
    for n in range(8):
        first.segment(1001 + n * 1000, b"a" * 1000, 1000, False, False, 10 + n, 0.1)
    assert (first._recent_bytes, shared.held) == (8000, 8000 + 8 * PIECE_COST)  # within the limit: all of it
    for n in range(3):  # past it: the second keeps what fits in its floor, here its last segment
        second.segment(1001 + n * 1400, b"b" * 1400, 1400, False, False, 20 + n, 0.2)
    assert (second._recent_bytes, first._recent_bytes, shared.held) == (1400, 8000, 9400 + 9 * PIECE_COST)
    assert 1400 + PIECE_COST <= Reassembler.RECENT_FLOOR < 2 * (1400 + PIECE_COST)
    # its last segment is still named; bytes before it are a retransmission of bytes no longer known
    second.segment(1001 + 2800, b"b" * 1400, 1400, False, False, 30, 0.3)
    second.segment(1001, b"b" * 1400, 1400, False, False, 31, 0.3)
    assert [(n.kind, n.detail, n.frame) for n in second.notes] == [(RETRANSMISSION, "22", 30),
                                                                   (RETRANSMISSION, "0", 31)]
    first.release()
    second.release()
    assert shared.held == 0 and not first._recent and not second._recent


def test_remembered_one_line_segments_are_charged_what_they_cost() -> None:
    """Counted by bytes alone, thousands of connections each remembering 256 one-line segments held many
    times the budget (each piece costs ~PIECE_COST besides its bytes); past the budget a direction keeps
    what fits in its floor, counted as charged."""
    shared = ByteBudget(10_000)
    busy = [Reassembler(Direction.CLIENT, recent_budget=shared) for _ in range(3)]
    for r in busy:
        r.segment(1000, b"", 0, True, False, 1, 0.0)
        for n in range(200):
            r.segment(1001 + n * 20, b"RCPT TO:<a@b.c>\r\n\r\n\r\n"[:20], 20, False, False, 2 + n, 0.1)
    kept = [len(r._recent) for r in busy]
    assert shared.held == sum(kept) * (20 + PIECE_COST)
    assert shared.held <= shared.size + Reassembler.RECENT_FLOOR + 20 + PIECE_COST
    assert kept[-1] == Reassembler.RECENT_FLOOR // (20 + PIECE_COST)  # the last one came past the budget
    for r in busy:
        r.release()
    assert shared.held == 0


def test_lines_being_read_take_from_the_run_budget_and_give_it_back() -> None:
    budget = ByteBudget(4000)
    a, b = LineBuffer(65536, budget), LineBuffer(65536, budget)
    a.push(b"x" * 3000, 1, 0.0)
    assert list(a.lines(1, 0.0)) == [] and budget.held == 3000 - LINE_FLOOR
    b.push(b"y" * 5000, 2, 0.0)  # past the budget: cut where it stands, the rest skipped
    assert list(b.lines(2, 0.0)) == [] and budget.held == budget.size
    b.push(b"y" * 1000 + b"\r\nNOOP\r\n", 3, 0.0)
    cut, noop = list(b.lines(3, 0.0))
    assert len(cut.text) == LINE_FLOOR + 4000 - (3000 - LINE_FLOOR) and cut.too_long == 6000 - len(cut.text)
    assert noop.text == b"NOOP" and budget.held == 3000 - LINE_FLOOR  # read: given back
    a.release()  # the connection ends in the middle of a line
    assert budget.held == 0 and len(a) == 0


def _long_lines(tmp_path: Path, size: int) -> Path:
    """CONNECTIONS SMTP clients at once, each sending a MAIL FROM of ``size`` bytes in 1,400-byte segments."""
    cap = Capture()
    for i in range(CONNECTIONS):
        t = Tcp(cap, client=(f"10.0.2.{i + 1}", 41000 + i), server=("10.0.0.2", 25), step=0.001).handshake()
        t.s(b"220 mx ESMTP\r\n").c(b"EHLO x\r\n").s(b"250 mx\r\n")
        line = b"MAIL FROM:<" + b"a" * (size - 14) + b">\r\n"
        for k in range(0, len(line), 1400):
            t.c(line[k : k + 1400])
        t.s(b"501 no\r\n").c(b"QUIT\r\n").s(b"221 bye\r\n").fin()
    cap.frames.sort(key=lambda f: f.ts)
    return cap.write(tmp_path / "long-lines.pcap")


def test_long_lines_of_many_sessions_at_once_are_cut_past_the_run_budget(tmp_path: Path) -> None:
    path = _long_lines(tmp_path, 20_000)
    analyzer = Analyzer(Config())
    budget = analyzer.config.dissector.unread_budget
    assert budget is analyzer.event_budget.unread
    watched = Watched(100_000)
    analyzer.event_budget.unread = watched
    analyzer.config = replace(analyzer.config, dissector=replace(analyzer.config.dissector, unread_budget=watched))
    sessions = list(analyzer.run([open_capture(str(path))]))
    assert watched.most <= watched.size and watched.held == 0
    mails = [c for s in sessions for c in s.commands if c.verb == "MAIL"]
    assert len(mails) == CONNECTIONS
    kept = sorted(len(c.argument) for c in mails)
    assert kept[-1] < 20_000 // 2 and sum(kept) <= watched.size + CONNECTIONS * (LINE_FLOOR + 1400)
    said = [a.detail for s in sessions for a in s.anomalies if a.kind == "line-too-long"]
    assert len(said) == CONNECTIONS
    assert all("what all connections hold unread together is limited to 100,000 bytes" in d for d in said)
    whole = list(Analyzer(Config()).run([open_capture(str(path))]))  # the default budget holds them all
    arguments = [len(c.argument) for s in whole for c in s.commands if c.verb == "MAIL"]
    assert arguments == [20_000 - len(b"MAIL \r\n")] * CONNECTIONS


def _appends(tmp_path: Path, size: int) -> Path:
    """CONNECTIONS IMAP clients at once, each sending an APPEND's literal without waiting for the '+'."""
    cap = Capture()
    body = b"Subject: a\r\n\r\n" + LINE * (size // len(LINE))
    for i in range(CONNECTIONS):
        t = Tcp(cap, client=(f"10.0.3.{i + 1}", 42000 + i), server=("10.0.0.2", 143), step=0.001).handshake()
        t.s(b"* OK ready\r\n").c(b"a1 LOGIN u p\r\n").s(b"a1 OK\r\n").c(b"a2 APPEND INBOX {%d}\r\n" % len(body))
        for k in range(0, len(body), 1400):
            t.c(body[k : k + 1400])
        t.c(b"\r\n").s(b"+ go\r\na2 OK done\r\n").c(b"a3 LOGOUT\r\n").s(b"* BYE\r\na3 OK\r\n").fin()
    cap.frames.sort(key=lambda f: f.ts)
    return cap.write(tmp_path / "appends.pcap")


def test_bytes_held_for_a_reply_stop_waiting_past_the_run_budget(tmp_path: Path) -> None:
    path = _appends(tmp_path, 40_000)
    analyzer = Analyzer(Config())
    watched = Watched(200_000)
    analyzer.event_budget.unread = watched
    analyzer.config = replace(analyzer.config, dissector=replace(analyzer.config.dissector, unread_budget=watched))
    sessions = list(analyzer.run([open_capture(str(path))]))
    assert watched.most <= watched.size + 1400 and watched.held == 0
    held_up = [a.detail for s in sessions for a in s.anomalies if a.kind == "no-continuation"]
    assert len(held_up) >= CONNECTIONS // 2  # the later ones stop waiting before their 256 KiB limit
    assert all("what all connections hold unread together is limited to 200,000 bytes" in d for d in held_up)
    # read as if the '+' had come: every message is still whole
    free = list(Analyzer(Config()).run([open_capture(str(path))]))
    assert [(m.summary.sha256, m.summary.complete) for s in sessions for m in s.messages] == \
        [(m.summary.sha256, m.summary.complete) for s in free for m in s.messages]
    assert len([m for s in free for m in s.messages]) == CONNECTIONS
    assert not [a for s in free for a in s.anomalies if a.kind == "no-continuation"]


def test_bytes_held_before_starttls_go_back_when_tls_begins() -> None:
    """After STARTTLS no client data may come to the dissector (TLS without keys) to clear the charge."""
    budget = ByteBudget(1 << 20)
    smtp = Smtp(DissectorLimits(unread_budget=budget))
    for who, data in ((SERVER, b"220 mx\r\n"), (CLIENT, b"EHLO x\r\n"), (SERVER, b"250-mx\r\n250 STARTTLS\r\n"),
                      (CLIENT, b"STARTTLS\r\n" + b"NOOP\r\n" * 500), (SERVER, b"220 go ahead\r\n")):
        smtp.feed(Chunk(who, data, 0.0, 1))
    assert budget.held == 0


def test_quiet_connections_forget_what_they_remember_when_the_budget_is_spent(tmp_path: Path) -> None:
    """Only the direction that adds is trimmed: without this, connections idling after a big fetch (an IMAP
    IDLE) kept 64 KiB each for good and left the busy ones their 4 KiB floor."""
    cap = Capture()
    idle = []
    for i in range(CONNECTIONS):
        t = Tcp(cap, client=(f"10.0.4.{i + 1}", 43000 + i), server=("10.0.0.2", 143), step=0.0001,
                ts=1_700_000_000.0 + i * 0.01).handshake()
        t.s(b"* OK ready\r\n").c(b"a1 FETCH 1 BODY[]\r\n").s(b"* 1 FETCH (BODY[] {%d}\r\n" % (40 * len(LINE)))
        for _ in range(40):
            t.s(LINE)
        t.s(b")\r\na1 OK\r\n").c(b"a2 IDLE\r\n").s(b"+ idling\r\n")
        idle.append(t)
    t = Tcp(cap, client=("10.0.5.1", 44000), server=("10.0.0.2", 25), step=0.001, ts=1_700_000_100.0).handshake()
    t.s(b"220 mx\r\n").c(b"EHLO x\r\n").s(b"250 mx\r\n").c(b"MAIL FROM:<a@b>\r\n").s(b"250 ok\r\n")
    t.c(b"RCPT TO:<c@d>\r\n").s(b"250 ok\r\n").c(b"DATA\r\n").s(b"354 go\r\n").c(b"Subject: x\r\n\r\n")
    start = t.seq["c"]
    for _ in range(10):
        t.c(LINE)
    t.c(b"X" * len(LINE), seq=start + len(LINE))  # 12 KB back, other bytes
    t.c(b".\r\n").s(b"250 ok\r\n").c(b"QUIT\r\n").s(b"221 bye\r\n").fin()
    for t in idle:
        t.ts = 1_700_000_200.0
        t.c(b"DONE\r\n").s(b"a2 OK\r\n").fin()
    cap.frames.sort(key=lambda f: f.ts)
    path = cap.write(tmp_path / "idle.pcap")
    config = Config()
    tight = replace(config, flow=replace(config.flow, max_recent_all=CONNECTIONS * 40_000))  # spent by the idle ones
    for cfg in (tight, replace(tight, flow=replace(tight.flow, recent_idle=1e9))):
        smtp = next(s for s in Analyzer(cfg).run([open_capture(str(path))]) if s.protocol == "smtp")
        mismatch = [a.kind for a in smtp.anomalies if a.kind == "overlap-mismatch"]
        if cfg is tight:  # the idle connections gave theirs up: the retransmission is compared
            assert mismatch and all(smtp.retransmissions.values())
        else:  # they kept theirs: the busy connection had only its floor
            assert not mismatch and not any(smtp.retransmissions.values())


def test_past_the_budget_a_long_header_line_is_not_read_again_for_every_segment(monkeypatch: pytest.MonkeyPatch) \
        -> None:
    scanned = 0
    scan = MessageSummarizer._scan

    def counted(self: MessageSummarizer, data: bytes, *, final: bool) -> None:
        nonlocal scanned
        scanned += len(data)
        scan(self, data, final=final)

    monkeypatch.setattr(MessageSummarizer, "_scan", counted)
    message = b"Subject: " + b"x" * 3_000_000 + b"\r\n\r\nbody\r\n"
    spent = ByteBudget(0)
    summarizer = MessageSummarizer(MimeLimits(), keep=False, waiting=spent)
    for i in range(0, len(message), 1448):
        summarizer.feed(message[i : i + 1448])
    summary = summarizer.close()
    assert spent.held == 0 and summary.bytes == len(message)
    # each scan waits for as much new as the last one left undecided (the line's first MiB, max_line): the
    # bytes read stay within a few times the message (read again at every segment: 380 MB, 127 times)
    assert scanned < 8 * len(message)


def test_a_pop3_listing_past_the_budget_loses_its_end_not_its_middle() -> None:
    budget = ByteBudget(1 << 20)
    pop3 = Pop3(DissectorLimits(unread_budget=budget))
    for who, data in ((SERVER, b"+OK pop\r\n"), (CLIENT, b"USER a\r\n"), (SERVER, b"+OK\r\n"), (CLIENT, b"PASS b\r\n"),
                      (SERVER, b"+OK\r\n"), (CLIENT, b"LIST\r\n"), (SERVER, b"+OK 3 messages\r\n1 100\r\n2 2")):
        pop3.feed(Chunk(who, data, 0.0, 1))
    budget.held += budget.size  # spent by others while the second chunk arrives
    pop3.feed(Chunk(SERVER, b"00\r\n3 3", 0.0, 2))
    budget.held -= budget.size
    pop3.feed(Chunk(SERVER, b"33\r\n.\r\n", 0.0, 3))
    assert [m["msg"] for m in pop3.record()["pop3"]["list"]] == [1]
    assert budget.held == 0


def test_past_the_budget_a_header_line_waits_for_its_end_only_up_to_the_floor() -> None:
    """A header line waits for its end up to ``max_line`` (1 MiB); while the run's summarisers hold more than
    their budget, only up to ``HEADER_FLOOR`` (then it is kept cut there). 1,000 messages at once each in the
    middle of a 300 KB header line held 290 MiB, and 168 MiB in one process at 64 KiB each."""
    message = b"Subject: " + b"x" * 300_000 + b"\r\nFrom: a@b.example\r\n\r\nbody\r\n"

    def summary(budget: ByteBudget) -> tuple[Any, int]:
        summarizer = MessageSummarizer(MimeLimits(), keep=False, waiting=budget)
        most = 0
        for i in range(0, len(message), 1448):
            summarizer.feed(message[i : i + 1448])
            most = max(most, summarizer._undecided)
        return summarizer.close(), most

    free, free_most = summary(ByteBudget(1 << 40))
    spent = ByteBudget(0)
    cut, cut_most = summary(spent)
    assert free_most >= 200_000 and cut_most <= HEADER_FLOOR + 1448
    assert spent.held == 0
    assert free.subject == "x" * len(free.subject) and len(free.subject) >= MimeLimits().max_field_bytes - 9
    assert cut.subject == "x" * (HEADER_FLOOR - len("Subject: "))  # kept cut at the floor
    assert cut.from_ == free.from_ == "a@b.example"  # the next field is read as before
    assert "line too long" in cut.defects and "line too long" not in free.defects


def test_past_the_budget_a_message_keeps_only_its_first_header_bytes() -> None:
    """Header fields are kept per message up to ``max_header_bytes`` (256 KiB); while the run's summarisers hold
    more than their budget, a message keeps its first ``HEADER_FLOOR`` bytes of fields (and the first of each
    RESERVED_FIELDS name): 2,000 messages at once each in the middle of a 200 KB header block held 641 MiB."""
    fields = b"".join(b"X-H%05d: " % k + b"v" * 88 + b"\r\n" for k in range(2000))
    message = fields + b"Subject: late\r\nX-Late: dropped\r\n\r\nbody\r\n"

    def summary(budget: ByteBudget) -> Any:
        summarizer = MessageSummarizer(MimeLimits(), keep=False, waiting=budget)
        for i in range(0, len(message), 1448):
            summarizer.feed(message[i : i + 1448])
        return summarizer.close()

    free = summary(ByteBudget(1 << 40))
    spent = ByteBudget(0)
    cut = summary(spent)
    assert spent.held == 0  # given back when the message ends
    assert len(free.headers) == 1000 and "header too long" not in free.defects  # max_headers lists 1,000
    assert cut.subject == free.subject == "late"  # a reserved field is still kept
    assert sum(len(name) + len(value) for name, value in cut.headers) <= HEADER_FLOOR + 200
    assert "header too long" in cut.defects


def test_past_the_budget_the_floor_counts_what_header_lines_cost() -> None:
    """Each kept line is charged ``HEADER_LINE_COST`` besides its bytes, on both paths: a whole block read at
    once (the fast path, whose gate counted bytes only) and field by field. 370 ten-byte fields are 3,700 bytes,
    under the floor as bytes, but 48 KB as kept."""
    subject, line = 12 + HEADER_LINE_COST, 10 + HEADER_LINE_COST  # what "Subject: s" and "X-001: v" cost
    for fields, kept in ((20, 21), (370, 1 + -(-(HEADER_FLOOR - subject) // line))):
        block = b"".join(b"X-%03d: v\r\n" % k for k in range(fields))
        message = b"Subject: s\r\n" + block + b"\r\nbody\r\n"
        watched = Watched(0)
        watched.held = 1  # the run's budget is spent
        summarizer = MessageSummarizer(MimeLimits(), keep=False, waiting=watched)
        summarizer.feed(message)  # one piece: the block is there whole
        summary = summarizer.close()
        assert len(summary.headers) == kept, fields
        # what it held at most: the kept lines as charged, and a moment's unread bytes (52 KB before)
        assert subject + (kept - 1) * line < watched.most < 2 * HEADER_FLOOR
        assert ("header too long" in summary.defects) == (fields == 370)
        assert watched.held == 1  # given back when the message ends


def test_past_the_budget_lines_that_decide_the_structure_wait_as_a_field_keeps() -> None:
    """Only a line whose first bytes show a header field waits for its end no longer than ``HEADER_FLOOR``: a
    boundary line longer than that (one with a colon reads like a field) and a field name longer than that
    (the block would end there) wait up to ``max_field_bytes``, so the MIME tree and the fields after them are
    what they are within the budget (review of the twentieth session)."""
    boundary = b"a:" + b"b" * 5000
    multipart = (b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"" + boundary + b"\"\r\n\r\n"
                 b"preamble\r\n--" + boundary + b"\r\nContent-Type: text/plain\r\n--" + boundary + b"\r\n"
                 b"Content-Type: text/plain\r\n\r\nsecond\r\n--" + boundary + b"--\r\n")
    long_name = (b"From: a@b.example\r\nX-" + b"n" * 30000 + b": v\r\nContent-Type: multipart/mixed; boundary=B\r\n"
                 b"Subject: hi\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nx\r\n--B--\r\n")

    def summary(message: bytes, budget: ByteBudget) -> Any:
        summarizer = MessageSummarizer(MimeLimits(), keep=False, waiting=budget)
        for i in range(0, len(message), 1448):
            summarizer.feed(message[i : i + 1448])
        return summarizer.close()

    for message, parts in ((multipart, ["1", "1.1", "1.2"]), (long_name, ["1", "1.1"])):
        free, spent = summary(message, ByteBudget(1 << 40)), summary(message, ByteBudget(0))
        shape = [(p.path, p.content_type, p.offset, p.header_bytes) for p in free.parts.walk()]
        assert [p[0] for p in shape] == parts
        assert [(p.path, p.content_type, p.offset, p.header_bytes) for p in spent.parts.walk()] == shape
        assert spent.subject == free.subject and spent.defects == free.defects
    assert summary(long_name, ByteBudget(0)).subject == "hi"
