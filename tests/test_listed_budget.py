"""What the dissectors' records list is bounded for the whole run, not only per list.

Each list of a record has its own limit per session (10,000 recipients a transaction and 10,000 transactions a
session, 10,000 POP3 LIST lines, 2,000 IMAP timeline steps...), but 2,048 sessions may be open at once: 2,000
SMTP sessions each sending 100 RCPTs held 55 MiB of recipients. The dissectors of a run share
``SessionLimits.max_listed_bytes_all`` (``protocols.base.ListCharge``); past it an entry is counted as its list's limit
counts it, the session says how many (``listed_dropped``), and the charge goes back when the session is
reported. The same captures also check what a kept command and reply cost (verbs and repeated one-line
replies are shared)."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import pytest

from mailtrace.capture.reader import open_capture
from mailtrace.config import Config
from mailtrace.model import CLIENT, SERVER, Anomaly, ByteBudget, Chunk, Command, Event, Reply
from mailtrace.pipeline import Analyzer
from mailtrace.protocols.base import DICT_ENTRY_COST, LISTED_ENTRY_COST, DissectorLimits
from mailtrace.protocols.imap import Imap
from mailtrace.protocols.pop3 import Pop3
from mailtrace.protocols.smtp import TRANSACTION_COST, Smtp
from mailtrace.render.json import session_json
from mailtrace.render.output import Output
from mailtrace.render.terminal import TerminalRenderer
from mailtrace.session import Session
from tests.pcapgen import Capture, Tcp


def _smtp(budget: ByteBudget) -> Smtp:
    d = Smtp(DissectorLimits(listed_budget=budget))
    for frame, (direction, data) in enumerate(((SERVER, b"220 mx ESMTP\r\n"), (CLIENT, b"EHLO x\r\n"),
                                               (SERVER, b"250 mx\r\n"), (CLIENT, b"MAIL FROM:<a@b.c>\r\n"),
                                               (SERVER, b"250 ok\r\n")), 1):
        d.feed(Chunk(direction, data, 1.0, frame))
    return d


def _rcpts(d: Smtp, first: int, n: int, frame: int) -> list[Reply]:
    d.feed(Chunk(CLIENT, b"".join(b"RCPT TO:<u%d@example.org>\r\n" % k for k in range(first, first + n)), 2.0, frame))
    events = d.feed(Chunk(SERVER, b"250 ok\r\n" * n, 2.0, frame + 1))
    return [e for e in events if isinstance(e, Reply)]


ADDRESS = len("u10@example.org")
RCPT = LISTED_ENTRY_COST + ADDRESS
TX = LISTED_ENTRY_COST + TRANSACTION_COST + len("a@b.c")


def test_recipients_past_the_run_budget_are_counted_and_the_kept_ones_stay_a_prefix() -> None:
    budget = ByteBudget(10_000)
    first, second = _smtp(budget), _smtp(budget)
    assert budget.held == 2 * TX
    _rcpts(first, 10, 10, 10)
    assert budget.held == 2 * TX + 10 * RCPT
    # a session holds at most what is left for the others: the second's 14th RCPT would pass that
    replies = _rcpts(second, 10, 10, 10) + _rcpts(second, 20, 10, 20)
    assert len(replies) == 20  # every RCPT is still answered, in order
    tx = second.transactions[0]
    assert tx.rcpt_to == [f"u{k}@example.org" for k in range(10, 23)] and tx.accepted == tx.rcpt_to
    assert (tx.rcpt_dropped, tx.accepted_dropped) == (7, 7)
    assert budget.size - budget.held - RCPT < TX + 13 * RCPT  # now: the 14th is refused
    assert budget.size - budget.held >= TX + 12 * RCPT  # (when the 13th came, it fitted)
    record = second.record()
    assert (record["_listed_refused"], record["_listed_bytes"]) == (7, TX + 13 * RCPT)
    assert record["transactions"][0]["rcpt_dropped"] == 7
    # the first session is not affected by the second's refusals: its list is whole
    assert len(first.transactions[0].rcpt_to) == 10 and "_listed_refused" not in first.record()


def test_transactions_past_the_run_budget_are_counted_and_their_recipients_cost_nothing() -> None:
    budget = ByteBudget(3 * TX)
    d = _smtp(budget)  # its first transaction takes a third; alone it may hold half
    frame = 10
    for _ in range(5):
        d.feed(Chunk(CLIENT, b"RSET\r\nMAIL FROM:<a@b.c>\r\n", 3.0, frame))
        d.feed(Chunk(SERVER, b"250 reset\r\n250 ok\r\n", 3.0, frame + 1))
        frame += 2
    held = budget.held
    _rcpts(d, 0, 5, frame)  # RCPTs of a transaction not listed: counted with it, not charged
    record = d.record()
    assert len(record["transactions"]) == 2 and record["transactions_dropped"] == 4
    assert record["_listed_refused"] == 4 and budget.held == held == 2 * TX
    assert d.current is not None and d.current.rcpt_dropped == 5


def test_what_the_dissector_decides_by_does_not_depend_on_the_budget() -> None:
    """A MAIL refused a place in the list is still a MAIL: one mail-without-helo, not one per MAIL."""
    for budget in (ByteBudget(1 << 30), ByteBudget(0)):
        d = Smtp(DissectorLimits(listed_budget=budget))
        d.feed(Chunk(SERVER, b"220 mx ESMTP\r\n", 1.0, 1))
        events = []
        for n in range(3):
            events += d.feed(Chunk(CLIENT, b"MAIL FROM:<a@b.c>\r\n", 1.0, 2 + 2 * n))
            events += d.feed(Chunk(SERVER, b"250 ok\r\n", 1.0, 3 + 2 * n))
        kinds = [e.kind for e in events if isinstance(e, Anomaly)]
        assert kinds.count("mail-without-helo") == 1, budget.size
        assert (len(d.record()["transactions"]), d.record().get("transactions_dropped", 0)) == (
            (3, 0) if budget.size else (0, 3))


def _pop3(budget: ByteBudget) -> Pop3:
    pop = Pop3(DissectorLimits(listed_budget=budget))
    pop.feed(Chunk(SERVER, b"+OK POP3 ready\r\n", 1.0, 1))
    pop.feed(Chunk(CLIENT, b"CAPA\r\n", 1.0, 2))
    pop.feed(Chunk(SERVER, b"+OK\r\nTOP\r\nUSER\r\nPIPELINING\r\nUIDL\r\n.\r\n", 1.0, 3))
    pop.feed(Chunk(CLIENT, b"USER u\r\nPASS p\r\n", 1.0, 4))
    pop.feed(Chunk(SERVER, b"+OK\r\n+OK logged in\r\n", 1.0, 5))
    return pop


def test_pop3_listings_share_the_budget_and_give_back_what_they_empty() -> None:
    budget = ByteBudget(10 * LISTED_ENTRY_COST)
    pop = _pop3(budget)
    assert pop.capabilities == ["TOP", "USER", "PIPELINING", "UIDL"]  # read by the dissector: not charged
    pop.feed(Chunk(CLIENT, b"LIST\r\n", 1.0, 6))
    pop.feed(Chunk(SERVER, b"+OK 25 messages\r\n" + b"".join(b"%d 1000\r\n" % n for n in range(1, 26)) + b".\r\n",
                   1.0, 7))
    block = pop.record()["pop3"]
    assert len(block["list"]) == 5 and block["dropped"] == {"list": 20}  # alone: half the budget
    assert pop.record()["_listed_refused"] == 20 and budget.held == 5 * LISTED_ENTRY_COST
    other = _pop3(budget)
    for n in range(3):  # DELE then RSET: the marks go; once undeleted, a number keeps its charge
        other.feed(Chunk(CLIENT, b"DELE 1\r\n", 1.0, 10 + 4 * n))
        other.feed(Chunk(SERVER, b"+OK marked\r\n", 1.0, 11 + 4 * n))
        other.feed(Chunk(CLIENT, b"RSET\r\n", 1.0, 12 + 4 * n))
        other.feed(Chunk(SERVER, b"+OK\r\n", 1.0, 13 + 4 * n))
    assert other.record()["pop3"]["undeleted"] == [1] and other.record()["pop3"]["marked_deleted"] == []
    assert budget.held == 6 * LISTED_ENTRY_COST


def test_imap_steps_share_the_budget() -> None:
    budget = ByteBudget(4 * (LISTED_ENTRY_COST + DICT_ENTRY_COST))
    imap = Imap(DissectorLimits(listed_budget=budget))
    imap.feed(Chunk(SERVER, b"* OK IMAP ready\r\n", 1.0, 1))
    for n in range(10):
        imap.feed(Chunk(CLIENT, b"a%d SELECT INBOX\r\n" % n, 1.0, 2 + 2 * n))
        imap.feed(Chunk(SERVER, b"* 3 EXISTS\r\na%d OK [READ-WRITE] done\r\n" % n, 1.0, 3 + 2 * n))
    record = imap.record()
    block = record["imap"]
    kept = len(block["timeline"]) + len(block["selected"])
    assert kept == 2 and record["_listed_bytes"] == 2 * (LISTED_ENTRY_COST + DICT_ENTRY_COST)
    assert record["_listed_refused"] == sum(block["dropped"].values()) > 0


def test_a_failed_dissectors_charge_goes_back_with_its_session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _rcpt_sessions(tmp_path / "rcpts.pcap", 3, 10)
    feed, record = Smtp.feed, Smtp.record
    calls = {"n": 0}
    broken: list[Smtp] = []

    def fails(self: Smtp, item: object) -> list[Event]:
        calls["n"] += 1
        if calls["n"] == 40:
            broken.append(self)
            raise KeyError("boom")
        return feed(self, item)  # type: ignore[arg-type]

    def no_record(self: Smtp) -> dict[str, object]:
        if self in broken:
            raise ValueError("its state is what failed: no record either")
        return record(self)

    monkeypatch.setattr(Smtp, "feed", fails)
    monkeypatch.setattr(Smtp, "record", no_record)
    analyzer = Analyzer(Config())
    sessions = list(analyzer.run([open_capture(str(path))]))
    failed = [s for s in sessions if any(a.kind == "dissector-error" for a in s.anomalies)]
    assert len(failed) == 1 and failed[0].listed_bytes > 0
    assert analyzer.event_budget.listed.held == 0


def _rcpt_sessions(path: Path, sessions: int, rcpts: int) -> Path:
    """``sessions`` SMTP sessions at once, each sending ``rcpts`` RCPTs (one a segment, each answered)."""
    cap = Capture()
    for i in range(sessions):
        t = Tcp(cap, client=(f"10.1.0.{i + 1}", 40000 + i), server=("10.0.0.2", 25), step=0.001).handshake()
        t.s(b"220 mx ESMTP\r\n")
        t.c(b"EHLO x\r\n")
        t.s(b"250 mx\r\n")
        t.c(b"MAIL FROM:<a@b.c>\r\n")
        t.s(b"250 ok\r\n")
        for k in range(rcpts):
            t.c(b"RCPT TO:<u%d@example.org>\r\n" % k)
            t.s(b"250 2.1.5 Ok\r\n")
        t.c(b"QUIT\r\n")
        t.s(b"221 bye\r\n")
        t.fin()
    cap.frames.sort(key=lambda f: f.ts)
    return cap.write(path)


def test_sessions_open_at_once_list_within_the_run_budget(tmp_path: Path) -> None:
    path = _rcpt_sessions(tmp_path / "rcpts.pcap", 8, 50)
    whole = list(Analyzer(Config()).run([open_capture(str(path))]))
    assert [len(s.record["transactions"][0]["rcpt_to"]) for s in whole] == [50] * 8
    assert not any(s.listed_dropped for s in whole)
    size = 100 * (LISTED_ENTRY_COST + 15)
    config = Config()
    config = replace(config, session=replace(config.session, max_listed_bytes_all=size))
    analyzer = Analyzer(config)
    bounded = list(analyzer.run([open_capture(str(path))]))
    listed = [len(s.record["transactions"][0]["rcpt_to"]) for s in bounded]
    dropped = [s.record["transactions"][0].get("rcpt_dropped", 0) for s in bounded]
    assert [a + b for a, b in zip(listed, dropped, strict=True)] == [50] * 8
    assert sum(listed) < 100 and min(listed) < 50  # all of them open at once: they shared the budget
    assert [s.listed_dropped for s in bounded] == dropped
    assert analyzer.event_budget.listed.held == 0  # every session reported gave its charge back
    s = next(s for s in bounded if s.listed_dropped)
    entry = session_json(s)
    assert entry["listed_dropped"] == s.listed_dropped and "_listed_bytes" not in entry
    assert "_listed_refused" not in entry and "listed_bytes" not in entry
    # the replies still pair with their RCPTs: the accepted ones are the listed ones
    assert entry["transactions"][0]["accepted"] == entry["transactions"][0]["rcpt_to"]
    out = io.StringIO()
    view = TerminalRenderer(Output(out, width=200, color=False))
    view.session_limits = config.session
    view.session(s)
    shown = " ".join(out.getvalue().split())
    assert (f"{s.listed_dropped} more entries of this session's protocol record (recipients, LIST lines, IMAP "
            f"steps…) are counted but not listed (all sessions at once list at most {size:,} bytes of them)") in shown


def test_kept_commands_and_replies_share_their_verb_and_repeated_text(tmp_path: Path) -> None:
    [s] = Analyzer(Config()).run([open_capture(str(_rcpt_sessions(tmp_path / "one.pcap", 1, 5)))])
    rcpts = [c for c in s.commands if c.verb == "RCPT"]
    oks = [r for r in s.replies if r.answers == "RCPT"]
    assert len(rcpts) == len(oks) == 5
    assert all(c.verb is rcpts[0].verb for c in rcpts)
    assert all(r.lines is oks[0].lines and r.status is oks[0].status for r in oks)
    assert oks[0].lines == ("2.1.5 Ok",) and oks[0].status == "250"
    assert isinstance(rcpts[0], Command) and rcpts[0].argument == "TO:<u0@example.org>"


def test_the_dissectors_keep_their_attributes_in_slots() -> None:
    """SessionBuilder, MailConnection and the three dissectors have 33 to 56 attributes each: in a dict that
    was ~1.6 KB a connection each (5 MiB for 2,048 connections), and slower to read per packet."""
    limits = DissectorLimits()
    for d in (Smtp(limits), Pop3(limits), Imap(limits)):
        assert not hasattr(d, "__dict__")
    replace(limits)  # (DissectorLimits stays a plain frozen dataclass)
    assert Session.__dataclass_fields__["listed_dropped"].default == 0
