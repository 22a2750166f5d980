"""IMAP after lost bytes inside literals: an APPEND literal (client) and a FETCH literal (server).

The literal's byte count keeps the framing across a gap; where the framing is lost (the gap runs
past the literal, or swallows the line that announced it) the direction resynchronises on the next
line that can only be a command or response, never on a line of the message.
"""

from __future__ import annotations

import hashlib
from typing import Any

from mailtrace.model import (
    CLIENT,
    SERVER,
    Anomaly,
    Chunk,
    Command,
    Eof,
    Event,
    MessageData,
    MessageEnd,
    Reply,
    StreamGap,
    StreamItem,
)
from mailtrace.protocols.imap import Imap
from tests.protocols.mt_popimap import feed
from tests.test_smtp import split_bytes as bytewise

MESSAGE = (
    b"From: alice@example.org\r\nSubject: patch\r\n\r\n"
    + b"".join(b"to fetch the file %02d, then LIST it\r\n" % i for i in range(12))
    + b"+ added line\r\nI CHECK twice\r\n"
)
SIZE = len(MESSAGE)
PRELUDE: list[tuple[str, Any]] = [
    ("s", b"* OK ready\r\n"),
    ("c", b"a1 LOGIN bob secret\r\n"),
    ("s", b"a1 OK in\r\n"),
    ("c", b"a2 SELECT INBOX\r\n"),
    ("s", b"* 1 EXISTS\r\na2 OK done\r\n"),
]


def conversation(*steps: tuple[str, Any]) -> list[StreamItem]:
    """One frame per step: ``c``/``s`` bytes, ``c-gap``/``s-gap`` a number of lost bytes."""
    items: list[StreamItem] = []
    for n, (who, data) in enumerate(steps, start=1):
        direction = CLIENT if who.startswith("c") else SERVER
        ts = 1000.0 + n / 100
        items.append(StreamGap(direction, data, ts, n) if who.endswith("gap") else Chunk(direction, data, ts, n))
    end = len(steps) + 1
    return [*items, Eof(CLIENT, 1000.0 + end / 100, end), Eof(SERVER, 1000.0 + end / 100, end)]


def run(items: list[StreamItem]) -> tuple[list[Event], Imap]:
    events, imap = feed(Imap, items)
    return events, imap


def commands(events: list[Event]) -> list[tuple[int, str | None, str]]:
    return [(e.frame, e.tag, e.verb) for e in events if isinstance(e, Command)]


def tagged(events: list[Event]) -> list[tuple[int, str | None, str, str | None]]:
    return [(e.frame, e.tag, e.status, e.answers) for e in events if isinstance(e, Reply) and e.tag]


def kinds(events: list[Event]) -> list[str]:
    return [e.kind for e in events if isinstance(e, Anomaly)]


def message_bytes(events: list[Event]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, MessageData))


def ends(events: list[Event]) -> list[tuple[str, bool, int]]:
    return [(e.origin, e.complete, e.missing_bytes) for e in events if isinstance(e, MessageEnd)]


# --------------------------------------------------------------------------- client: APPEND


def test_client_gap_inside_an_append_literal_keeps_the_framing() -> None:
    items = conversation(
        *PRELUDE,
        ("c", b"a3 APPEND INBOX (\\Seen) {%d}\r\n" % SIZE),
        ("s", b"+ go ahead\r\n"),
        ("c", MESSAGE[:60]),
        ("c-gap", 100),
        ("c", MESSAGE[160:] + b"\r\n"),
        ("s", b"a3 OK [APPENDUID 7 9] appended\r\n"),
        ("c", b"a4 NOOP\r\n"),
        ("s", b"a4 OK done\r\n"),
    )
    for variant in (items, bytewise(items)):
        events, imap = run(variant)
        assert commands(events) == [(2, "a1", "LOGIN"), (4, "a2", "SELECT"), (6, "a3", "APPEND"), (12, "a4", "NOOP")]
        assert tagged(events)[2:] == [(11, "a3", "OK", "APPEND"), (13, "a4", "OK", "NOOP")]
        assert message_bytes(events) == MESSAGE[:60] + MESSAGE[160:]
        assert ends(events) == [("imap-append", False, 100)]
        assert kinds(events) == []
        assert imap.appends[0]["appenduid"] == "7 9" and imap.appends[0]["flags"] == ["\\Seen"]


def test_client_gap_past_the_end_of_an_append_literal_resyncs_on_the_next_command() -> None:
    # lost: the rest of the literal, its CRLF and the start of "a4 NOOP"
    events, _ = run(conversation(
        *PRELUDE,
        ("c", b"a3 APPEND INBOX {%d}\r\n" % SIZE),
        ("s", b"+ go ahead\r\n"),
        ("c", MESSAGE[:60]),
        ("c-gap", SIZE - 60 + 2 + 4),
        ("c", b"NOOP\r\na5 NOOP\r\n"),
        ("s", b"a3 OK appended\r\na4 OK\r\na5 OK\r\n"),
    ))
    assert commands(events)[2:] == [(6, "a3", "APPEND"), (10, "a5", "NOOP")]
    assert ends(events) == [("imap-append", False, SIZE - 60)]
    assert tagged(events)[2:] == [(11, "a3", "OK", "APPEND"), (11, "a4", "OK", None), (11, "a5", "OK", "NOOP")]
    assert kinds(events) == ["unknown-tag"]  # a4's command was in the gap


def test_client_gap_while_waiting_for_the_continuation_is_inside_the_literal() -> None:
    # the client did not wait for '+': the bytes it sent, and the lost ones, are the literal
    items = conversation(
        *PRELUDE,
        ("c", b"a3 APPEND INBOX {%d}\r\n" % SIZE),
        ("c", MESSAGE[:60]),
        ("c-gap", 100),
        ("c", MESSAGE[160:] + b"\r\n"),
        ("s", b"+ go ahead\r\n"),
        ("s", b"a3 OK appended\r\n"),
        ("c", b"a4 NOOP\r\n"),
        ("s", b"a4 OK\r\n"),
    )
    for variant in (items, bytewise(items)):
        events, _ = run(variant)
        assert commands(events)[2:] == [(6, "a3", "APPEND"), (12, "a4", "NOOP")]
        assert message_bytes(events) == MESSAGE[:60] + MESSAGE[160:]
        assert ends(events) == [("imap-append", False, 100)]
        assert tagged(events)[2:] == [(11, "a3", "OK", "APPEND"), (13, "a4", "OK", "NOOP")]
        assert kinds(events) == ["literal-without-continuation"]  # RFC 3501 4.3: it must wait for '+'


def test_client_gap_that_loses_the_append_line_does_not_read_the_message_as_commands() -> None:
    line = b"a3 APPEND INBOX {%d}\r\n" % SIZE
    events, _ = run(conversation(
        *PRELUDE,
        ("c", line[:4]),
        ("c-gap", len(line) - 4 + 30),
        ("s", b"+ go ahead\r\n"),
        ("c", MESSAGE[30:] + b"\r\n"),
        ("s", b"a3 OK appended\r\n"),
        ("c", b"a4 NOOP\r\n"),
        ("s", b"a4 OK\r\n"),
    ))
    # "to fetch the file 01, ..." (tag "to", FETCH) and "I CHECK twice" are message lines, not commands
    assert commands(events)[2:] == [(11, "a4", "NOOP")]
    assert "duplicate-tag" not in kinds(events) and "unknown-command" not in kinds(events)
    assert tagged(events)[2:] == [(10, "a3", "OK", None), (12, "a4", "OK", "NOOP")]


# --------------------------------------------------------------------------- server: FETCH


def test_server_gap_inside_a_fetch_literal_keeps_the_framing() -> None:
    items = conversation(
        *PRELUDE,
        ("c", b"a3 FETCH 1 (BODY[])\r\n"),
        ("s", b"* 1 FETCH (BODY[] {%d}\r\n" % SIZE + MESSAGE[:60]),
        ("s-gap", 100),
        ("s", MESSAGE[160:] + b" FLAGS (\\Seen))\r\na3 OK done\r\n"),
        ("c", b"a4 NOOP\r\n"),
        ("s", b"a4 OK\r\n"),
    )
    for variant in (items, bytewise(items)):
        events, imap = run(variant)
        assert commands(events)[2:] == [(6, "a3", "FETCH"), (10, "a4", "NOOP")]
        untagged = [(e.frame, e.first_frame, e.lines[0]) for e in events if isinstance(e, Reply) and e.status == "*"]
        assert untagged[-1] == (9, 7, f"1 FETCH (BODY[] {{{SIZE}}} FLAGS (\\Seen))")
        assert tagged(events)[2:] == [(9, "a3", "OK", "FETCH"), (11, "a4", "OK", "NOOP")]
        assert message_bytes(events) == MESSAGE[:60] + MESSAGE[160:]
        assert ends(events) == [("imap-fetch", False, 100)]
        assert kinds(events) == []
        assert imap.fetches[-1]["flags"] == ["\\Seen"]


def test_server_gap_past_the_end_of_a_fetch_literal_resyncs_on_the_next_response() -> None:
    events, _ = run(conversation(
        *PRELUDE,
        ("c", b"a3 FETCH 1 (BODY[])\r\n"),
        ("s", b"* 1 FETCH (BODY[] {%d}\r\n" % SIZE + MESSAGE[:60]),
        ("s-gap", SIZE - 60 + 3),  # the rest of the literal and ")\r\n"
        ("s", b"a3 OK done\r\n"),
        ("c", b"a4 NOOP\r\n"),
        ("s", b"a4 OK\r\n"),
    ))
    assert ends(events) == [("imap-fetch", False, SIZE - 60)]
    assert tagged(events)[2:] == [(9, "a3", "OK", "FETCH"), (11, "a4", "OK", "NOOP")]
    assert kinds(events) == []


def test_server_gap_that_loses_the_fetch_line_skips_the_message_lines() -> None:
    head = b"* 1 FETCH (BODY[] {%d}\r\n" % SIZE
    events, _ = run(conversation(
        *PRELUDE,
        ("c", b"a3 FETCH 1 (BODY[])\r\n"),
        ("s", head[:5]),
        ("s-gap", len(head) - 5 + 30),
        ("s", MESSAGE[30:] + b")\r\na3 OK done\r\n"),
        ("c", b"a4 NOOP\r\n"),
        ("s", b"a4 OK\r\n"),
    ))
    # "+ added line" is message text, not a continuation: no command waits for one
    assert not [e for e in events if isinstance(e, Reply) and e.status == "+"]
    assert "unexpected-continuation" not in kinds(events)
    assert tagged(events)[2:] == [(9, "a3", "OK", "FETCH"), (11, "a4", "OK", "NOOP")]


# --------------------------------------------------------------------------- wire order of a part literal


def test_body_text_literal_reply_names_the_frame_its_line_began_in() -> None:
    # the response line begins in frame 7 with the literal's first bytes; the literal's bytes arrive in
    # frames 7-9 and the response completes in frame 9: the Reply carries first_frame 7, so a view can
    # put the line before its literal (see the report: render/terminal.py inserts the body label first)
    text = b"".join(b"line %03d of the text\r\n" % i for i in range(100))
    events, imap = run(conversation(
        *PRELUDE,
        ("c", b"a3 FETCH 1 (BODY[TEXT])\r\n"),
        ("s", b"* 1 FETCH (BODY[TEXT] {%d}\r\n" % len(text) + text[:1000]),
        ("s", text[1000:2000]),
        ("s", text[2000:] + b")\r\na3 OK done\r\n"),
    ))
    order = [(type(e).__name__, e.frame, e.first_frame) for e in events
             if type(e).__name__ in ("BodyData", "Reply") and e.frame >= 7]
    assert order == [("BodyData", 7, 7), ("BodyData", 8, 8), ("BodyData", 9, 9), ("Reply", 9, 7), ("Reply", 9, 9)]
    assert sum(e.nbytes for e in events if type(e).__name__ == "BodyData") == len(text)
    assert imap.parts == [{"frame": 9, "msg": 1, "section": "BODY[TEXT]", "bytes": len(text),
                           "sha256": hashlib.sha256(text).hexdigest(), "partial": False,
                           "missing_bytes": 0}]
