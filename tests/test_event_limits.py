"""What a session keeps of a flood of commands, replies and anomalies is bounded — per session and for
all sessions at once — and what is not kept is counted, never silently attached elsewhere.

A segment of 64 KiB can carry thousands of ``* 5 EXISTS`` lines, so the row limit alone does not bound a
session; and eight such sessions at once took 690 MiB for a 35 MB capture before the run-wide budget."""

from __future__ import annotations

import base64
import io
from dataclasses import replace
from pathlib import Path
from typing import Any

from mailtrace.capture.reader import open_capture
from mailtrace.commands.common import build_config
from mailtrace.findings import FindingsCollector
from mailtrace.findings.rules import exchanges
from mailtrace.model import Anomaly, Reply
from mailtrace.pipeline import Analyzer, CaptureStats
from mailtrace.render.html import HtmlReport
from mailtrace.render.json import reply_json, session_json
from mailtrace.render.output import Output
from mailtrace.render.terminal import TerminalRenderer
from mailtrace.session import ROW_FLOOR, Session, SessionLimits
from tests.pcapgen import Capture, Tcp
from tests.support import report


def _imap_idling(cap: Capture, port: int) -> Tcp:
    """An IMAP session from ``port`` up to the server's ``+ idling``."""
    t = Tcp(cap, client=("10.0.0.1", port), server=("10.0.0.2", 143)).handshake()
    t.s(b"* OK ready\r\n")
    t.c(b"a1 LOGIN u p\r\n")
    t.s(b"a1 OK done\r\n")
    t.c(b"a2 IDLE\r\n")
    t.s(b"+ idling\r\n")
    return t


def _imap_flood(cap: Capture, port: int, lines: int, *, per_segment: int = 100) -> Tcp:
    """An IMAP session whose server sends ``lines`` untagged EXISTS responses, ``per_segment`` a segment."""
    t = _imap_idling(cap, port)
    for start in range(0, lines, per_segment):
        t.s(b"".join(b"* %d EXISTS\r\n" % n for n in range(start, min(lines, start + per_segment))))
    return t


def _smtp(cap: Capture, *, client: str = "10.0.0.1", port: int = 25) -> Tcp:
    """An SMTP conversation up to the client's EHLO (its reply is the test's)."""
    t = Tcp(cap, client=(client, 40000), server=("10.0.0.2", port)).handshake()
    t.s(b"220 mx ESMTP\r\n")
    t.c(b"EHLO x\r\n")
    return t


def _ehlo_flood(tmp_path: Path, keywords: int, last: bytes) -> Path:
    """A capture whose server answers EHLO with ``mx``, ``keywords`` times ``XEXT`` and ``last``."""
    cap = Capture()
    t = _smtp(cap)
    body = b"250-mx\r\n" + b"250-XEXT\r\n" * keywords + b"250 " + last + b"\r\n"
    for at in range(0, len(body), 1400):
        t.s(body[at : at + 1400])
    t.fin()
    return cap.write(tmp_path / "ehlo.pcap")


def _brute_force(tmp_path: Path) -> Path:
    """150 failed AUTH PLAIN logins from a public address, then an accepted one."""
    cap = Capture()
    t = _smtp(cap, client="198.51.100.7", port=587)
    t.s(b"250-mx\r\n250 AUTH PLAIN\r\n")
    for i in range(150):
        t.c(b"AUTH PLAIN " + base64.b64encode(b"\0user\0pass%d" % i) + b"\r\n")
        t.s(b"535 5.7.8 Authentication failed\r\n")
    t.c(b"AUTH PLAIN " + base64.b64encode(b"\0user\0right") + b"\r\n")
    t.s(b"235 2.7.0 Authentication successful\r\n")
    t.fin()
    return cap.write(tmp_path / "brute.pcap")


def _html(sessions: list[Session], limits: SessionLimits | None = None) -> str:
    page = io.StringIO()
    report = HtmlReport(page)
    if limits is not None:
        report.session_limits = limits
    for s in sessions:
        report.session(s)
    report.end(CaptureStats(), 1.0)
    return page.getvalue()


def _close(t: Tcp) -> None:
    t.c(b"DONE\r\n")
    t.s(b"a2 OK idle done\r\n")
    t.fin()


def _sessions(path: Path, **limits: int) -> list[Session]:
    config = build_config()
    config = replace(config, session=replace(config.session, **limits))
    return list(Analyzer(config).run([open_capture(str(path))]))


def _row_events(s: Session, kind: type[Any]) -> int:
    return sum(1 for e in s.row_events() if type(e) is kind)


def test_replies_over_the_session_limit_are_counted_and_left_off_their_rows(tmp_path: Path) -> None:
    cap = Capture()
    _close(_imap_flood(cap, 40000, 1000))
    (s,) = _sessions(cap.write(tmp_path / "flood.pcap"), max_events=300)
    assert len(s.replies) == 300
    # the greeting, a1's OK and the '+' came first; then 297 of the 1,000 EXISTS; from there on nothing is
    # kept, DONE and a2's OK included: a command kept after a dropped reply would be paired with the wrong one
    assert [r.status for r in s.replies[:3]] == ["*", "OK", "+"]
    assert s.events_dropped == 1000 - 297 + 2
    assert _row_events(s, Reply) == 300  # rows hold only what the session kept
    assert [c.verb for c in s.commands] == ["LOGIN", "IDLE"]
    assert s.packets == len(s.rows) and not s.rows_elided


def test_the_json_report_and_the_views_say_how_many_were_not_kept(tmp_path: Path) -> None:
    cap = Capture()
    t = _imap_flood(cap, 40000, 1000)
    t.c(b"DONE\r\n")
    t.s(b"a2 OK idle done\r\n" + b"a9 BAD what\r\n" * 120)  # tags no command had: an anomaly each
    t.fin()
    limits = SessionLimits(max_events=300, max_anomalies=100)
    (s,) = _sessions(cap.write(tmp_path / "flood.pcap"), max_events=300, max_anomalies=100)
    assert (s.events_dropped, s.anomalies_dropped) == (1000 - 297 + 2 + 120, 20)
    entry = session_json(s)
    assert (entry["events_dropped"], entry["anomalies_dropped"]) == (825, 20)
    assert len(entry["replies"]) == 300 and len(entry["anomalies"]) == 100
    for lang, events, anomalies in (
        ("en", "825 more commands and replies of this session are not listed (limit: 300 of each per session, "
               "50,000 for all sessions at once)", "20 more anomalies of this session are not listed (limit 100"),
        ("de", "825 weitere Befehle und Antworten dieser Sitzung werden nicht aufgeführt (Limit: je 300 pro "
               "Sitzung, 50.000 für alle Sitzungen zugleich)", "20 weitere Auffälligkeiten dieser Sitzung"),
    ):
        stream = io.StringIO()
        view = TerminalRenderer(Output(stream, width=200, color=False), lang=lang)
        view.session_limits = limits
        view.session(s)
        shown = " ".join(stream.getvalue().split())
        assert events in shown and anomalies in shown
    html = " ".join(_html([s], limits).split())
    assert "825 commands and replies of this session were counted but not kept by the analyzer (limit: 300" in html
    assert "20 anomalies of this session were counted but not kept (limit 100 per session)" in html


def test_sessions_at_once_share_one_budget_and_give_it_back_when_reported(tmp_path: Path) -> None:
    cap = Capture()
    first = [_imap_flood(cap, 40000 + i, 400) for i in range(3)]  # three floods at the same time
    for t in first:
        _close(t)
    later = _imap_flood(cap, 41000, 200)  # after those were reported: the budget is whole again
    _close(later)
    sessions = _sessions(cap.write(tmp_path / "floods.pcap"), max_events=10_000, max_events_all=600)
    assert len(sessions) == 4
    at_once, alone = sessions[:3], sessions[3]
    # A session holds at most what the budget still has for the others: the first flood stops at 300 (300
    # left), the second at 150, the third at 75; none keeps anything after its first drop, so their closing
    # (DONE, a2 OK) is not kept either, though the first session's report gives 300 back before the others close.
    assert [len(s.commands) + len(s.replies) for s in at_once] == [300, 150, 75]
    for s in at_once:
        assert len(s.commands) + len(s.replies) + s.events_dropped == 3 + 404  # LOGIN, IDLE, DONE; 404 replies
        assert _row_events(s, Reply) == len(s.replies)
    assert alone.events_dropped == 0 and len(alone.replies) == 204 and len(alone.commands) == 3


def test_anomalies_over_the_limit_are_counted_and_left_off_their_rows(tmp_path: Path) -> None:
    cap = Capture()
    t = _smtp(cap)
    t.s(b"250 ok\r\n")
    for _ in range(5):
        t.c(b"XFOO\r\n" * 60)  # unknown commands: an anomaly each
    t.s(b"500 what\r\n" * 300)
    t.fin()
    (s,) = _sessions(cap.write(tmp_path / "x.pcap"), max_anomalies=50)
    unknown = [a for a in s.anomalies if a.kind == "unknown-command"]
    assert len(s.anomalies) == 50 and len(unknown) == 50
    assert s.anomalies_dropped == 300 - 50
    assert _row_events(s, Anomaly) == 50
    assert len(s.commands) == 301  # the commands themselves are within their limit
    (entry,) = report(cap.write(tmp_path / "y.pcap"))["sessions"]
    assert "anomalies_dropped" not in entry and len(entry["anomalies"]) == 300  # the default limit is 1,000


def _table(path: Path, lang: str = "en") -> str:
    stream = io.StringIO()
    view = TerminalRenderer(Output(stream, width=None, color=False), lang=lang)
    for s in _sessions(path):
        view.session(s)
    return stream.getvalue()


def test_a_reply_of_200000_lines_is_one_bounded_row(tmp_path: Path) -> None:
    """A hostile EHLO reply: the session keeps 1,000 of its lines; the table shows 256 and counts the rest,
    and explains 32 of its keywords (it printed 14 MB, a line per keyword, before)."""
    path = _ehlo_flood(tmp_path, 20_000, b"OK")
    (s,) = _sessions(path)
    assert len(s.replies[1].lines) == 1000 and s.replies[1].lines_dropped == 19_002
    table = _table(path)
    assert len(table) < 20_000
    (row,) = [line for line in table.splitlines() if "S: 250 mx" in line]
    assert row.count(" | ") == 256 and "XEXT | … (+19,746 more lines) (after " in row  # 255 keywords after "mx"
    assert table.count("XEXT: private extension") == 32
    assert "… and 19,969 more like it" in table
    assert "… (+19.746 weitere Zeilen)" in _table(path, "de")
    assert "what the 20,001 extensions offered mean" in _html(_sessions(path))


def test_an_ehlo_reply_of_up_to_64_keywords_is_explained_whole(tmp_path: Path) -> None:
    cap = Capture()
    t = _smtp(cap)
    t.s(b"250-mx\r\n" + b"250-XEXT\r\n" * 63 + b"250 PIPELINING\r\n")
    t.fin()
    table = _table(cap.write(tmp_path / "ehlo.pcap"))
    assert table.count("XEXT: private extension") == 63 and "PIPELINING:" in table
    assert "more like it" not in table


def test_a_packet_of_300_responses_shows_256_and_a_step_lists_ten(tmp_path: Path) -> None:
    cap = Capture()
    _close(_imap_flood(cap, 40000, 1500, per_segment=300))
    path = cap.write(tmp_path / "flood.pcap")
    table = _table(path)
    rows = [line for line in table.splitlines() if "S: * " in line and "EXISTS" in line]
    assert len(rows) == 5 and all(r.endswith("… (+44 more in this packet)") for r in rows)
    assert rows[0].count("EXISTS") == 256
    # the first thousand are IDLE news (the dissector's notes), listed ten at a time in the caption
    assert "while the client idles, the server reports news: 0 EXISTS, 1 EXISTS," in table
    assert "9 EXISTS … and 990 more like it" in table
    # past the dissector's thousand notes they are unasked responses: ten sentences a step, the rest counted
    unasked = [line for line in table.splitlines() if "the server speaks unasked" in line]
    assert unasked and all(line.count("the server speaks unasked") <= 10 for line in unasked)
    assert all(line.endswith("… and 290 more like it") for line in unasked)


def test_a_few_more_than_ten_of_a_kind_are_all_listed(tmp_path: Path) -> None:
    """Zeek's tcp-truncated-header: eleven gaps in one step are named, not "… and 1 more like it"."""
    cap = Capture()
    t = _imap_flood(cap, 40000, 18)  # 18 IDLE updates: all of them in the caption
    _close(t)
    table = _table(cap.write(tmp_path / "few.pcap"))
    assert "the server reports news: 0 EXISTS, 1 EXISTS," in table and "17 EXISTS" in table
    assert "more like it" not in table


def test_a_refusal_repeated_by_pipelined_replies_is_explained_once(tmp_path: Path) -> None:
    """Fifty AUTH attempts in one segment, fifty 535 replies in the next: one explanation (×50), not a
    hundred lines (Suricata's smtp-data-rejected has two 503s in one segment: ×2)."""
    cap = Capture()
    t = _smtp(cap, port=587)
    t.s(b"250-mx\r\n250 AUTH PLAIN\r\n")
    t.c(b"AUTH PLAIN AHVzZXIAcGFzcw==\r\n" * 50)
    t.s(b"535 5.7.8 Authentication failed\r\n" * 50)
    t.fin()
    path = cap.write(tmp_path / "spray.pcap")
    table = _table(path)
    assert table.count("↳ 535: permanent failure") == 1
    assert "↳ 535: permanent failure · unspecified — authentication credentials invalid (×50)" in table
    assert table.count("↳ 5.7.8: authentication credentials invalid") == 1
    rows = _html(_sessions(path))  # (each arrow of the ladder keeps its own tooltip)
    assert rows.count('<div class="xl">↳ 535: permanent failure') == 1 and "invalid (×50)</div>" in rows


def test_follow_transcripts_of_sessions_at_once_share_one_budget(tmp_path: Path) -> None:
    """``--follow`` keeps 16 MiB of each stream, but up to 2,048 connections are open at once: the sessions
    not yet reported share ``max_transcript_bytes_all``, given back as each is reported."""
    cap = Capture()
    convs = [Tcp(cap, client=("10.0.0.1", 40000 + i), server=("10.0.0.2", 25)).handshake() for i in range(3)]
    for t in convs:
        t.s(b"220 mx ESMTP\r\n")  # 14 bytes each
    for t in convs:
        t.c(b"NOOP " + b"x" * 995 + b"\r\n")  # 1,002 bytes each
    for t in convs:
        t.fin()
    later = Tcp(cap, client=("10.0.0.1", 41000), server=("10.0.0.2", 25)).handshake()
    later.s(b"220 mx ESMTP\r\n")
    later.c(b"QUIT\r\n")
    later.fin()
    config = build_config()
    config = replace(config, session=replace(config.session, keep_transcript=True, max_transcript_bytes_all=1500))
    sessions = list(Analyzer(config).run([open_capture(str(cap.write(tmp_path / "x.pcap")))]))
    kept = [sum(len(p.data) for p in s.transcript) for s in sessions]
    # greetings 3 × 14 = 42; then the first NOOP line whole (1,002), the second the 456 left, the third none
    assert kept == [14 + 1002, 14 + 456, 14, 14 + 6]
    assert [s.transcript_truncated for s in sessions] == [0, 1002 - 456, 1002, 0]


def test_whatever_the_budget_a_dropped_refusal_never_pairs_a_command_with_the_next_reply(tmp_path: Path) -> None:
    """An IMAP flood beside an SMTP relay attempt (a reviewer's case): when the budget ran out on the 550
    and came back after the flood was reported, the RCPT to the outside was paired with the next RCPT's 250
    and reported as an open relay. A session keeps an unbroken start of itself, whatever the budget."""
    cap = Capture()
    a = _imap_idling(cap, 40000)
    b = Tcp(cap, client=("93.184.216.34", 40001), server=("192.0.2.25", 25)).handshake()
    b.s(b"220 mx.example.com ESMTP\r\n")
    b.c(b"EHLO x\r\n")
    b.s(b"250 mx.example.com\r\n")
    b.c(b"MAIL FROM:<a@x.org>\r\n")
    b.s(b"250 ok\r\n")
    a.s(b"".join(b"* %d EXISTS\r\n" % n for n in range(100)))
    b.c(b"RCPT TO:<victim@external.org>\r\n")
    b.s(b"550 5.7.1 Relaying denied\r\n")
    a.c(b"DONE\r\n")
    a.s(b"a2 OK idle done\r\n")
    a.fin()
    b.c(b"RCPT TO:<postmaster@example.com>\r\n")
    b.s(b"250 ok\r\n")
    b.c(b"QUIT\r\n")
    b.s(b"221 bye\r\n")
    b.fin()
    path = cap.write(tmp_path / "relay.pcap")
    for budget in (*range(2, 40), 111, 10**6):
        sessions = _sessions(path, max_events_all=budget)
        findings = FindingsCollector()
        for s in sessions:
            findings.session(s)
        findings.end()
        assert "open-relay-attempt" not in {f.id for f in findings.findings()}, budget
        smtp = next(s for s in sessions if s.protocol == "smtp")
        for x in exchanges(smtp):
            if x.command.argument == "TO:<victim@external.org>" and x.reply is not None:
                assert x.reply.status == "550", budget
    # the flood keeps at most what the budget leaves for the others: the SMTP session is whole at 111
    smtp = next(s for s in _sessions(path, max_events_all=111) if s.protocol == "smtp")
    assert smtp.events_dropped == 0


def test_a_session_past_its_limit_says_nothing_of_what_it_waits_for() -> None:
    """The DNS context layer reads a session's last command and reply to tell whether it waits (a lookup
    then belongs to it); once the session stopped keeping them, its last kept command is not the last sent."""
    from mailtrace.context.tracker import _Subject
    from mailtrace.model import Command, Direction, Phase
    from mailtrace.session import Endpoint, SessionBuilder

    builder = SessionBuilder(protocol="smtp", client=Endpoint("10.0.0.1", 40000), server=Endpoint("10.0.0.2", 25),
                             stream=1, file="x", tunnel=None, limits=SessionLimits(max_events=2))

    def event(kind: type[Any], frame: int, **values: Any) -> Any:
        direction = Direction.CLIENT if kind is Command else Direction.SERVER
        return kind(direction=direction, ts=float(frame), frame=frame, first_frame=frame, phase=Phase.TRANSFER,
                    **values)

    builder.packet(1, 1.0, Direction.SERVER, 0x18, 10)
    builder.events([event(Reply, 1, status="220", lines=("mx",))])
    builder.packet(2, 2.0, Direction.CLIENT, 0x18, 30)
    builder.events([event(Command, 2, verb="EHLO", argument="x")])
    builder.packet(3, 3.0, Direction.SERVER, 0x18, 10)
    builder.events([event(Reply, 3, status="250", lines=("ok",))])
    builder.packet(4, 4.0, Direction.CLIENT, 0x18, 30)
    builder.events([event(Command, 4, verb="RCPT", argument="TO:<a@example.org>")])
    subject = _Subject(stream=1, conn=None, source=lambda: builder, start=0.0)  # type: ignore[arg-type]
    assert subject.waiting() and subject.pending() == {"example.org": "recipient-domain"}
    builder.packet(5, 5.0, Direction.SERVER, 0x18, 10)
    builder.events([event(Reply, 5, status="250", lines=("ok",))])  # the third reply: over the limit
    assert builder.events_dropped == 1 and len(builder.replies) == 2
    # the RCPT got its answer, which the session did not keep: it does not wait for one any more
    assert not subject.waiting() and subject.pending() == {}


def test_a_stream_of_tls_alerts_is_bounded_in_the_report_and_on_the_rows(tmp_path: Path) -> None:
    """100,000 seven-byte alert records on an implicit-TLS port made 9 MB of JSON from a 0.7 MB capture."""
    cap = Capture()
    t = Tcp(cap, client=("10.0.0.1", 40000), server=("10.0.0.2", 993)).handshake()
    data = b"\x15\x03\x03\x00\x02\x01\x00" * 5000
    for at in range(0, len(data), 1400):
        t.s(data[at : at + 1400])
    t.fin()
    (s,) = _sessions(cap.write(tmp_path / "alerts.pcap"), max_notes=300)
    assert s.tls_info is not None
    assert len(s.tls_info["alerts"]) == 64 and s.tls_info["alerts_dropped"] == 5000 - 64
    notes = sum(1 for e in s.row_events() if type(e).__name__ == "Note")
    assert notes == 300 and s.notes_dropped == 5000 - 300
    entry = session_json(s)
    assert entry["notes_dropped"] == 4700 and entry["tls_info"]["alerts_dropped"] == 4936
    stream = io.StringIO()
    TerminalRenderer(Output(stream, width=200, color=False)).session(s)
    assert "4,700 more notes of this session (IDLE news, TLS messages and alerts) are not listed" in stream.getvalue()


def test_logins_past_the_limit_are_tallied_and_still_counted(tmp_path: Path) -> None:
    """60,000 AUTH attempts in one session kept 60,000 login objects (236 MiB for a 12 MB capture): past
    ``max_logins`` they are tallied by outcome, and the statistics and the brute-force finding count them."""
    from mailtrace.stats import StatsCollector

    (s,) = _sessions(_brute_force(tmp_path), max_logins=100)
    assert len(s.auth) == 100 and s.logins_dropped == {"failed": 50, "succeeded": 1}
    assert s.logins_dropped_total == 51
    assert sum(1 for e in s.row_events() if type(e).__name__ == "AuthAttempt") == 100
    assert session_json(s)["logins_dropped"] == {"failed": 50, "succeeded": 1}
    stats = StatsCollector()
    stats.session(s)
    stats.end()
    auth = stats.result().to_json()["auth"]
    assert auth["attempts"] == 151 and auth["outcomes"] == {"failed": 150, "succeeded": 1}
    assert auth["cleartext"] == 151
    findings = FindingsCollector()
    findings.session(s)
    findings.end()
    (brute,) = [f for f in findings.findings() if f.id == "auth-bruteforce"]
    assert "150 failed logins" in brute.title + brute.detail
    stream = io.StringIO()
    TerminalRenderer(Output(stream, width=250, color=False)).session(s)
    assert "51 more login attempts of this session are not listed (limit 10,000 per session; the statistics and " \
           "findings count them): 50 failed, 1 succeeded" in " ".join(stream.getvalue().split())


def test_pipelined_recipients_are_answered_in_order_in_one_pass(tmp_path: Path) -> None:
    """Each RCPT reply used to look for the first unanswered recipient from the start of the list: 300,000
    pipelined RCPTs took 11 minutes. The replies still pair in order, a refusal in the middle included."""
    cap = Capture()
    t = _smtp(cap)
    t.s(b"250-mx\r\n250 PIPELINING\r\n")
    t.c(b"MAIL FROM:<a@b.example>\r\n")
    t.s(b"250 ok\r\n")
    n = 3000
    for batch in range(0, n, 50):  # fifty a segment, as a relay pipelines them
        t.c(b"".join(b"RCPT TO:<u%d@example.org>\r\n" % i for i in range(batch, batch + 50)))
        t.s(b"".join(b"550 no such user\r\n" if i % 1000 == 7 else b"250 ok\r\n" for i in range(batch, batch + 50)))
    t.fin()
    (s,) = _sessions(cap.write(tmp_path / "rcpts.pcap"))
    (tx,) = s.record["transactions"]
    assert tx["rcpt_replies"] == [550 if i % 1000 == 7 else 250 for i in range(n)]
    assert len(tx["accepted"]) == n - 3 and "u7@example.org" not in tx["accepted"]
    assert tx["accepted"][7] == "u8@example.org"


def test_recipients_and_transactions_past_their_limits_are_counted(tmp_path: Path, monkeypatch: Any) -> None:
    """300,000 RCPTs in one transaction kept 300 MiB of lists; 100,000 transactions in one session too."""
    from mailtrace.protocols import smtp

    monkeypatch.setattr(smtp, "MAX_RECIPIENTS", 5)
    monkeypatch.setattr(smtp, "MAX_TRANSACTIONS", 3)
    cap = Capture()
    t = _smtp(cap)
    t.s(b"250-mx\r\n250 PIPELINING\r\n")
    t.c(b"MAIL FROM:<a@b.example>\r\n")
    t.s(b"250 ok\r\n")
    t.c(b"".join(b"RCPT TO:<u%d@example.org>\r\n" % i for i in range(8)))
    t.s(b"250 ok\r\n" * 6 + b"550 no\r\n250 ok\r\n")  # the 7th is refused: past the list
    for i in range(4):
        t.c(b"RSET\r\nMAIL FROM:<x%d@b.example>\r\n" % i)
        t.s(b"250 reset\r\n250 ok\r\n")
    t.fin()
    (s,) = _sessions(cap.write(tmp_path / "many.pcap"))
    entry = session_json(s)
    first = entry["transactions"][0]
    assert first["rcpt_to"] == [f"u{i}@example.org" for i in range(5)] and first["rcpt_replies"] == [250] * 5
    assert (first["rcpt_dropped"], first["accepted_dropped"]) == (3, 2)
    assert len(entry["transactions"]) == 3 and entry["transactions_dropped"] == 2
    assert "rcpt_dropped" not in entry["transactions"][1]


def test_a_reply_of_two_million_lines_keeps_a_thousand(tmp_path: Path) -> None:
    """An EHLO reply of 2,000,000 lines (15 MB) took 418 MiB: a reply keeps its first 999 lines and its last,
    and counts the others (``lines_dropped``), which the table and the explanations count too."""
    path = _ehlo_flood(tmp_path, 5_000, b"LAST")
    (s,) = _sessions(path)
    ehlo = s.replies[1]
    assert len(ehlo.lines) == 1000 and ehlo.lines[0] == "mx" and ehlo.lines[-1] == "LAST"
    assert ehlo.lines_dropped == 5_002 - 1000
    entry = reply_json(ehlo)
    assert entry["lines_dropped"] == 4002 and len(entry["lines"]) == 1000
    table = _table(path)
    assert "… (+4,746 more lines)" in table  # 5,002 lines, 256 shown
    assert "… and 4,969 more like it" in table  # 5,001 keywords, 32 explained


def test_an_accepted_login_past_the_limit_still_counts_as_a_success(tmp_path: Path) -> None:
    """A reviewer's case: 150 failures then a success, with a limit of 100 logins: the brute force is
    still 'followed by a success', the session's login 'ok' and not refused."""
    from mailtrace.filters import _refused
    from mailtrace.render.terminal import login_outcome

    path = _brute_force(tmp_path)
    verdicts = []
    for limit in (10_000, 100):
        (s,) = _sessions(path, max_logins=limit)
        findings = FindingsCollector()
        findings.session(s)
        findings.end()
        (brute,) = [f for f in findings.findings() if f.id == "auth-bruteforce"]
        verdicts.append((brute.severity.value, login_outcome(s), _refused(s)))
    assert verdicts[0] == verdicts[1] == ("high", "ok", False)


def test_a_lost_end_of_a_long_reply_leaves_no_count_on_the_next(tmp_path: Path) -> None:
    """The end of a 1,500-line reply lost in a gap: the next reply has no lines dropped."""
    cap = Capture()
    t = _smtp(cap)
    body = b"250-mx\r\n" + b"250-XEXT\r\n" * 1500
    for at in range(0, len(body), 1400):
        t.s(body[at : at + 1400])
    t.s(b"250 LAST\r\n", drop=True)  # lost
    t.c(b"MAIL FROM:<a@b.example>\r\n")
    t.s(b"250 2.1.0 Ok\r\n")
    t.fin()
    (s,) = _sessions(cap.write(tmp_path / "gap.pcap"))
    last = s.replies[-1]
    assert last.lines == ("2.1.0 Ok",) and last.lines_dropped == 0


def test_a_flood_of_unanswered_mails_keeps_no_chain_of_transactions(tmp_path: Path) -> None:
    """Each MAIL remembered the transaction open before it (to go back to it if refused): 20,000 MAILs
    without replies kept all 20,000 alive through that chain, past the list's limit."""
    from mailtrace.protocols.base import DissectorLimits
    from mailtrace.protocols.smtp import Smtp

    smtp = Smtp(DissectorLimits())
    from mailtrace.model import Chunk, Direction

    smtp.feed(Chunk(Direction.SERVER, b"220 mx ESMTP\r\n", 1.0, 1))
    smtp.feed(Chunk(Direction.CLIENT, b"EHLO x\r\n", 2.0, 2))
    smtp.feed(Chunk(Direction.SERVER, b"250-mx\r\n250 PIPELINING\r\n", 3.0, 3))
    for i in range(20):
        smtp.feed(Chunk(Direction.CLIENT, b"".join(b"MAIL FROM:<a%d@b.example>\r\n" % j for j in range(1000)),
                        4.0 + i, 4 + i))
    chain, tx = 0, smtp.current
    while tx is not None:
        chain, tx = chain + 1, tx.previous
    assert chain <= DissectorLimits().max_pending_commands + 1
    # answered MAILs let go of theirs at once
    smtp.feed(Chunk(Direction.SERVER, b"250 ok\r\n" * 1000, 30.0, 30))
    assert all(t.previous is None for t in smtp.transactions if t.reply is not None)


def test_messages_past_the_limit_are_counted_and_still_extracted(tmp_path: Path) -> None:
    """A POP3 session of 50,000 tiny RETRs took 389 MiB: a session keeps 10,000 message records and
    counts the rest; ``extract`` still writes every message, and both ways of running agree."""
    import json

    from tests.support import run_cli

    cap = Capture()
    t = Tcp(cap, client=("10.0.0.1", 40000), server=("10.0.0.2", 110)).handshake()
    t.s(b"+OK ready\r\n")
    t.c(b"CAPA\r\n")
    t.s(b"+OK\r\nSTLS\r\nUSER\r\n.\r\n")
    t.c(b"USER a\r\n")
    t.s(b"+OK\r\n")
    t.c(b"PASS b\r\n")
    t.s(b"+OK\r\n")
    total = 10_005
    for first in range(1, total + 1, 25):
        numbers = range(first, min(total, first + 24) + 1)
        t.c(b"".join(b"RETR %d\r\n" % n for n in numbers))
        t.s(b"".join(b"+OK 31 octets\r\nSubject: m%05d\r\n\r\nbody\r\n.\r\n" % n for n in numbers))
    t.c(b"QUIT\r\n")
    t.s(b"+OK bye\r\n")
    t.fin()
    path = str(cap.write(tmp_path / "pop3.pcap"))
    reports = [json.loads(run_cli("analyze", "--format", "json", "--jobs", jobs, path).stdout) for jobs in ("1", "2")]
    for one in reports:
        (entry,) = one["sessions"]
        assert len(entry["messages"]) == 10_000 and entry["messages_dropped"] == 5
        assert entry["messages_dropped_by_origin"] == {"pop3-retr": 5} and entry["messages_dropped_complete"] == 5
        assert entry["messages"][-1]["subject"] == "m10000"
        # the statistics and the findings count every message, listed or not
        messages = one["stats"]["messages"]
        assert (messages["count"], messages["complete"], messages["by_origin"]) == (total, total, {"pop3-retr": total})
        (unused,) = [f for f in one["findings"] if f["id"] == "starttls-not-used"]
        assert "carried 1 login and 10005 messages in cleartext" in unused["detail"]
    assert reports[0]["sessions"] == reports[1]["sessions"]
    assert reports[0]["stats"]["messages"] == reports[1]["stats"]["messages"]
    listing = run_cli("analyze", "--list", "--width", "200", path).stdout
    assert " completed  10005 " in listing and "messages      10,005" in listing
    page = tmp_path / "r.html"
    assert run_cli("analyze", "--html", str(page), path).exit_code == 0
    html = page.read_text("utf-8")
    assert "5 messages of this session were counted but not kept" in html
    assert "<caption>messages_dropped" not in html  # not a protocol's record
    out = tmp_path / "out"
    assert run_cli("extract", path, "-o", str(out)).exit_code == 0
    assert len(list(out.rglob("*.eml"))) == total


def _smtp_lines(cap: Capture, client: str, lines: int) -> Tcp:
    """An SMTP session (begun, not closed) whose client sends ``lines`` body lines, one a segment."""
    t = _smtp(cap, client=client)
    t.s(b"250-mx\r\n250 PIPELINING\r\n")
    for client_says, server_says in ((b"MAIL FROM:<a@b.example>\r\n", b"250 ok\r\n"),
                                     (b"RCPT TO:<c@d.example>\r\n", b"250 ok\r\n"), (b"DATA\r\n", b"354 go\r\n")):
        t.c(client_says)
        t.s(server_says)
    for _ in range(lines):
        t.c(b"x" * 60 + b"\r\n")
    t.c(b".\r\n")
    t.s(b"250 queued\r\n")
    return t


def _quit(t: Tcp) -> None:
    t.c(b"QUIT\r\n")
    t.s(b"221 bye\r\n")
    t.fin()


def test_sessions_at_once_share_one_row_budget_and_keep_an_unbroken_start(tmp_path: Path) -> None:
    """Rows were bounded per session only (20,000): 200 SMTP sessions at once each sending 10,000
    segments took 520 MiB. Open sessions now share ``max_rows_all``, taken in growing grants past the
    ROW_FLOOR rows each keeps anyway; a session past it counts its packets and keeps its first rows;
    the budget comes back as sessions are reported, and a session alone takes at most half of it."""
    cap = Capture()
    first = [_smtp_lines(cap, f"10.0.0.{i + 1}", 300) for i in range(3)]
    cap.frames.sort(key=lambda f: f.ts)  # the three at once
    end = cap.frames[-1].ts
    for t in first:
        t.ts = end
        _quit(t)
    later = _smtp_lines(cap, "10.0.0.9", 300)
    later.ts = cap.frames[-1].ts
    _quit(later)
    path = cap.write(tmp_path / "rows.pcap")
    sessions = _sessions(path, max_rows_all=400)
    assert len(sessions) == 4
    together = sessions[:3]
    assert sum(s.row_count - ROW_FLOOR for s in together) <= 400
    for s in sessions:
        assert s.row_count + s.rows_elided == s.packets > 300
        kept = [r.frame for r in s.rows]
        assert kept == sorted(kept) and kept[0] == s.first_frame  # the start of the session, no hole
        assert len(s.commands) == 5 and s.messages[0].summary.complete  # only rows are left out
    assert all(s.rows_elided for s in together)
    # the three were reported before the fourth began: it has the budget to itself again, and takes half
    assert ROW_FLOOR + 150 <= sessions[3].row_count <= ROW_FLOOR + 200 and sessions[3].rows_elided
    stream = io.StringIO()
    view = TerminalRenderer(Output(stream, width=None, color=False), lang="en")
    view.session_limits = replace(SessionLimits(), max_rows_all=400)
    view.session(sessions[3])
    assert f"{sessions[3].rows_elided} more packets of this session are not listed (row limit: 20,000 per " \
           "session, 400 for all sessions at once)" in stream.getvalue()


def test_the_row_budget_is_given_back_whole(tmp_path: Path) -> None:
    """What a builder was granted and did not use goes back when it finishes: many short sessions one
    after another never run the budget dry."""
    cap = Capture()
    for i in range(30):
        _quit(_smtp_lines(cap, f"10.0.1.{i + 1}", 5))
    sessions = _sessions(cap.write(tmp_path / "short.pcap"), max_rows_all=100, max_rows=10)
    assert len(sessions) == 30 and all(s.row_count == 10 for s in sessions)  # the floor is the session's limit
    sessions = _sessions(cap.write(tmp_path / "short.pcap"), max_rows_all=100)
    assert len(sessions) == 30 and not any(s.rows_elided for s in sessions)


def test_a_session_begun_with_the_budget_spent_keeps_its_first_rows(tmp_path: Path) -> None:
    """Refusals are for good and each session may take half of what is left, so a few long sessions open
    all day could leave none to the later ones: their tables were empty, a setup caption said 'no
    answer', and connection-scan counted RST refusals as unanswered SYNs. Every session keeps its
    first ROW_FLOOR rows whatever the budget has left."""
    cap = Capture()
    opened: list[Tcp] = []
    for i in range(5):  # one after another, each long before the next begins, all open to the end
        t = Tcp(cap, client=(f"10.0.0.{i + 1}", 40000), server=("10.0.0.2", 25),
                ts=cap.frames[-1].ts if cap.frames else 1_700_000_000.0).handshake()
        t.s(b"220 mx ESMTP\r\n").c(b"EHLO x\r\n").s(b"250-mx\r\n250 PIPELINING\r\n")
        t.c(b"MAIL FROM:<a@b.example>\r\n").s(b"250 ok\r\n").c(b"RCPT TO:<c@d.example>\r\n").s(b"250 ok\r\n")
        t.c(b"DATA\r\n").s(b"354 go\r\n")
        for _ in range(300):
            t.c(b"x" * 60 + b"\r\n")
        opened.append(t)
    for t in opened:
        t.ts = cap.frames[-1].ts
        t.c(b".\r\n").s(b"250 queued\r\n")
        _quit(t)
    sessions = _sessions(cap.write(tmp_path / "late.pcap"), max_rows_all=200)
    assert len(sessions) == 5 and all(s.rows_elided for s in sessions)
    kept = [r.frame for r in sessions[-1].rows]
    assert len(kept) >= ROW_FLOOR and kept[0] == sessions[-1].first_frame
    assert [b.phase.value for b in sessions[-1].phases][:4] == ["setup", "greeting", "negotiation", "transfer"]
