"""A hole in a pipelined group of SMTP commands: which reply answers which command.

RFC 2920 lets a client send MAIL, RCPT… and DATA without waiting; the server answers them in order.
When the capture loses one of the commands, the server's batch holds one reply more than the commands
the capture shows. Paired in order as they come, each reply would answer the command after its own,
DATA would take a RCPT's rejection and its 354 would answer nothing, and the message would be read as
commands. The replies are paired once the batch is over: the last ones answer the commands the capture
shows, the first ones the lost commands.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from mailtrace.model import CLIENT, SERVER, Chunk, Eof, Event, MessageEnd, Reply, StreamGap, StreamItem
from tests.pcapgen import Capture, Tcp
from tests.support import report, run_cli
from tests.test_smtp import run, smtp_items, split_bytes
from tests.test_smtp_audit import GREETING, anomalies, verbs

MAIL = (("c", b"MAIL FROM:<a@b>\r\n"),)


def replies(events: list[Event]) -> list[tuple[str, str | None, bool]]:
    return [(e.status, e.answers, e.answers_lost) for e in events if isinstance(e, Reply)][2:]  # after the EHLO's


def lost_rcpt(server_batch: bytes, after: list[StreamItem]) -> list[StreamItem]:
    """MAIL, a RCPT the capture lost, RCPT c@d and DATA pipelined, then the server's ``server_batch``."""
    items = smtp_items(*GREETING, *MAIL)
    items += [StreamGap(CLIENT, 15, 4.5, 5), Chunk(CLIENT, b"RCPT TO:<c@d>\r\nDATA\r\n", 5.0, 6),
              Chunk(SERVER, server_batch, 7.0, 7)]
    return items + after


BATCH = b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 no such user c\r\n354 go\r\n"
MESSAGE = [Chunk(CLIENT, b"Subject: s\r\n\r\nhi\r\n.\r\n", 8.0, 8), Chunk(SERVER, b"250 queued\r\n", 9.0, 9),
           Chunk(CLIENT, b"QUIT\r\n", 10.0, 10), Chunk(SERVER, b"221 bye\r\n", 11.0, 11)]


def test_the_extra_reply_answers_the_lost_command_and_354_starts_the_message() -> None:
    events, record = run(lost_rcpt(BATCH, MESSAGE))
    assert replies(events) == [("250", "MAIL", False), ("250", None, True), ("550", "RCPT", False),
                               ("354", "DATA", False), ("250", ".", False), ("221", "QUIT", False)]
    assert verbs(events) == ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]  # the message is no commands
    assert anomalies(events) == []
    (end,) = [e for e in events if isinstance(e, MessageEnd)]
    assert end.complete and end.missing_bytes == 0
    (tx,) = record["transactions"]
    assert (tx["rcpt_to"], tx["rcpt_replies"], tx["accepted"], tx["data_reply"]) == (["c@d"], [550], [], 250)


def test_pairing_does_not_depend_on_how_the_replies_are_split() -> None:
    whole, _ = run(lost_rcpt(BATCH, MESSAGE))
    assert run(split_bytes(lost_rcpt(BATCH, MESSAGE)))[0] == whole
    one_per_segment = lost_rcpt(b"", [])[:-1]  # without the batch's segment
    one_per_segment += [Chunk(SERVER, line + b"\r\n", 7.0, 7) for line in BATCH.split(b"\r\n")[:-1]]
    assert run(one_per_segment + MESSAGE)[0] == whole


def test_a_refused_data_is_paired_when_the_client_speaks_again() -> None:
    """No 354 ends the batch: the client's next command does (it waited for DATA's reply)."""
    batch = b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 no such user c\r\n554 5.5.1 no valid recipients\r\n"
    after = [Chunk(CLIENT, b"QUIT\r\n", 8.0, 8), Chunk(SERVER, b"221 bye\r\n", 9.0, 9)]
    events, record = run(lost_rcpt(batch, after))
    assert replies(events) == [("250", "MAIL", False), ("250", None, True), ("550", "RCPT", False),
                               ("554", "DATA", False), ("221", "QUIT", False)]
    (tx,) = record["transactions"]
    assert (tx["rcpt_replies"], tx["data_reply"]) == ([550], 554)


def test_replies_held_at_the_end_of_the_stream_are_still_reported() -> None:
    batch = b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 no such user c\r\n554 5.5.1 no valid recipients\r\n"
    events, _ = run(lost_rcpt(batch, [Eof(SERVER, 12.0, 12)]))
    assert [status for status, _, _ in replies(events)] == ["250", "250", "550", "554"]
    events, _ = run(lost_rcpt(batch, []))  # no EOF either: finish() reports them
    assert [(status, answers) for status, answers, _ in replies(events)][-1] == ("554", "DATA")


def test_without_a_hole_a_pipelined_batch_pairs_as_it_comes() -> None:
    items = smtp_items(*GREETING, ("c", b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"),
                       ("s", b"250 ok\r\n550 no\r\n554 no valid recipients\r\n"))
    events, _ = run(items)
    assert replies(events) == [("250", "MAIL", False), ("550", "RCPT", False), ("554", "DATA", False)]


def _capture(tmp: Path) -> Path:
    cap = Capture()
    t = Tcp(cap, server=("10.0.0.2", 25)).handshake()
    t.s(b"220 mx ESMTP\r\n").c(b"EHLO a\r\n").s(b"250-mx\r\n250 PIPELINING\r\n").c(b"MAIL FROM:<a@b.example>\r\n")
    t.c(b"RCPT TO:<lost@d.example>\r\n", drop=True).c(b"RCPT TO:<c@d.example>\r\nDATA\r\n")
    t.s(b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 <c@d.example> no such user\r\n354 go\r\n")
    t.c(b"From: a@b.example\r\nSubject: kept\r\n\r\nhi\r\n.\r\n").s(b"250 2.0.0 queued\r\n")
    t.c(b"QUIT\r\n").s(b"221 bye\r\n").fin()
    return cap.write(tmp / "pipelined-hole.pcap")


def test_capture_with_a_lost_pipelined_command() -> None:
    """The gap is found when the server acknowledges past it (frame 9), after the client's next segment:
    the commands after the hole are known by when they came, not by frame number."""
    path = _capture(Path(tempfile.mkdtemp()))
    (session,) = report(path)["sessions"]
    answered = [(r["frame"], r["status"], r["answers"], r.get("answers_lost", False)) for r in session["replies"]]
    assert answered[2:6] == [(9, "250", "MAIL", False), (9, "250", None, True), (9, "550", "RCPT", False),
                             (9, "354", "DATA", False)]
    assert session["gaps"] == [{"direction": "client", "bytes": 26, "frame": 9}]
    assert [m["subject"] for m in session["messages"]] == ["kept"]
    assert session["anomalies"] == []
    text = run_cli("analyze", str(path)).output
    assert "250 2.1.5 ok (to a command the capture lost)" in text
    assert "the server answers a command the capture lost: 250 2.1.5 ok" in text
    assert "unknown command" not in text


# --------------------------------------------------------------------------- split invariance with holes
COMMANDS = [b"MAIL FROM:<a@b>\r\n", b"RCPT TO:<c@d>\r\n", b"DATA\r\n", b"RSET\r\n", b"NOOP\r\n", b"QUIT\r\n",
            b"BDAT 5 LAST\r\nhello", b"garbage\r\n", b"\r\n", b"Subject: x\r\n\r\nbody\r\n.\r\n"]
REPLIES = [b"250 2.1.0 ok\r\n", b"250 2.1.5 ok\r\n", b"550 5.1.1 no\r\n", b"354 go\r\n", b"554 no\r\n", b"221 bye\r\n",
           b"500 what\r\n", b"250-a\r\n250 b\r\n"]


@st.composite
def dialogues_with_holes(draw: st.DrawFn) -> list[StreamItem]:
    """Random SMTP dialogues after the greeting, with holes on either side: commands, message text
    and reply batches in any order (what lossy captures of pipelining clients look like)."""
    items = smtp_items(*GREETING)
    for frame in range(4, 4 + draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["gap", "client", "client", "server", "server"]))
        if kind == "gap":
            items.append(StreamGap(draw(st.sampled_from([CLIENT, SERVER])), draw(st.integers(1, 40)), frame, frame))
        else:
            pool = COMMANDS if kind == "client" else REPLIES
            data = b"".join(draw(st.lists(st.sampled_from(pool), min_size=1, max_size=4)))
            items.append(Chunk(CLIENT if kind == "client" else SERVER, data, float(frame), frame))
    return items


@settings(max_examples=300, deadline=None)
@given(dialogues_with_holes(), st.data())
def test_events_do_not_depend_on_segmentation_around_holes(items: list[StreamItem], data: st.DataObject) -> None:
    """Byte by byte, or each chunk cut in two, the events are those of the whole chunks: also where a
    hole in a message is followed by a command (before, decided on the first segment only) and where
    replies after a hole wait for their batch."""
    whole = run(items)
    assert run(split_bytes(items)) == whole
    cut: list[StreamItem] = []
    for item in items:
        if isinstance(item, Chunk) and len(item.data) > 1:
            point = data.draw(st.integers(1, len(item.data) - 1))
            cut += [Chunk(item.direction, item.data[:point], item.ts, item.frame),
                    Chunk(item.direction, item.data[point:], item.ts, item.frame)]
        else:
            cut.append(item)
    assert run(cut) == whole


def test_a_command_after_a_hole_in_the_message_is_found_when_it_comes_byte_by_byte() -> None:
    items = smtp_items(*GREETING, *MAIL, ("s", b"250 ok\r\n"), ("c", b"RCPT TO:<c@d>\r\n"), ("s", b"250 ok\r\n"),
                       ("c", b"DATA\r\n"), ("s", b"354 go\r\n"), ("c", b"Subject: s\r\n\r\nfirst"))
    items += [StreamGap(CLIENT, 100, 11.0, 11), Chunk(CLIENT, b"QUIT\r\n", 12.0, 12),
              Chunk(SERVER, b"221 bye\r\n", 13.0, 13)]
    events, _ = run(split_bytes(items))
    assert verbs(events)[-1] == "QUIT"
    assert [a.kind for a in anomalies(events)] == ["end-of-data-lost"]
    (end,) = [e for e in events if isinstance(e, MessageEnd)]
    assert (end.complete, end.missing_bytes) == (False, 100)
