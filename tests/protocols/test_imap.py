"""IMAP dissector: tags, literals in both directions, FETCH/APPEND messages, states, COMPRESS, gaps."""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mt_popimap import (
    Script,
    analyze,
    feed,
    messages,
    mutated,
    normalized,
    of_type,
    resplit,
    split_at,
    stream_items,
)

from mailtrace.model import (
    CLIENT,
    SERVER,
    Anomaly,
    AuthAttempt,
    Command,
    GapEvent,
    MessageEnd,
    Note,
    Phase,
    Reply,
    TlsStart,
)
from mailtrace.protocols.base import DissectorLimits
from mailtrace.protocols.imap import COMMAND_STATES, TRANSITIONS, Imap, State

GREETING = b"* OK [CAPABILITY IMAP4rev1 LITERAL+ BINARY COMPRESS=DEFLATE] ready\r\n"
MESSAGE = b"From: a@example.org\r\nSubject: Hello\r\nMessage-ID: <m1@example.org>\r\n\r\nBody line\r\n"


def logged_in(script: Script | None = None) -> Script:
    return (script or Script()).s(GREETING).c(b"a1 LOGIN bob secret\r\n").s(b"a1 OK done\r\n")


def selected(script: Script | None = None) -> Script:
    return (
        logged_in(script)
        .c(b"a2 SELECT INBOX\r\n")
        .s(b"* 3 EXISTS\r\n* 0 RECENT\r\n* OK [UIDVALIDITY 42] x\r\na2 OK [READ-WRITE] done\r\n")
    )


def literal(data: bytes, prefix: bytes = b"") -> bytes:
    return prefix + b"{%d}\r\n" % len(data) + data


# --------------------------------------------------------------------------- literals, client side


def test_synchronizing_literals_wait_for_the_continuation() -> None:
    items = (
        Script()
        .s(GREETING)
        .c(b"a1 LOGIN {5}\r\n")
        .s(b"+ go on\r\n")
        .c(b"carol {6}\r\n")
        .s(b"+ ok\r\n")
        .c(b"secret\r\n")
        .s(b"a1 OK logged in\r\n")
        .end()
    )
    events, imap = feed(Imap, items)
    (command,) = of_type(events, Command)
    assert (command.verb, command.tag, command.argument, command.first_frame) == (
        "LOGIN",
        "a1",
        '"carol" [password]',
        2,
    )
    assert [(r.status, r.answers) for r in of_type(events, Reply)][1:] == [
        ("+", None),  # a '+' lets the literal come; it answers no command (the tagged OK does)
        ("+", None),
        ("OK", "LOGIN"),
    ]
    (auth,) = of_type(events, AuthAttempt)
    assert (auth.username, auth.secret, auth.success) == ("carol", "secret", True)
    assert imap.state is State.AUTHENTICATED


def test_literal_plus_does_not_wait() -> None:
    """RFC 7888: ``{n+}`` — the client sends the literal straight away (here all in one segment)."""
    items = (
        logged_in()
        .c(b"a2 APPEND Drafts (\\Draft) " + literal(MESSAGE).replace(b"}", b"+}", 1) + b"\r\n")
        .s(b"a2 OK [APPENDUID 7 9] done\r\n")
        .end()
    )
    events, imap = feed(Imap, items)
    ((end, data),) = messages(events)
    assert end.origin == "imap-append" and end.complete and data == MESSAGE
    assert end.detail == {"section": "APPEND", "tag": "a2", "mailbox": "Drafts", "flags": ["\\Draft"]}
    assert of_type(events, Command)[-1].argument == f"Drafts (\\Draft) {{{len(MESSAGE)}+}}"
    assert imap.appends[0]["appenduid"] == "7 9" and imap.appended == 1


def test_refused_literal_ends_the_command() -> None:
    items = (
        logged_in()
        .c(b"a2 APPEND INBOX {999999}\r\n")
        .s(b"a2 NO [TOOBIG] too big\r\n")
        .c(b"a3 NOOP\r\n")
        .s(b"a3 OK\r\n")
        .end()
    )
    events, _ = feed(Imap, items)
    assert [(c.verb, c.tag) for c in of_type(events, Command)] == [
        ("LOGIN", "a1"),
        ("APPEND", "a2"),
        ("NOOP", "a3"),
    ]
    assert not messages(events)
    # RFC 3501 7.5 lets a server answer NO instead of '+': said in a note, not an anomaly
    assert of_type(events, Anomaly) == []
    assert [n.text for n in of_type(events, Note)] == [
        "the server refused APPEND's synchronizing literal; the command ends here"]


def test_literal_bytes_sent_before_the_continuation_are_held() -> None:
    """A client that does not wait (or a capture that shows its bytes first) is still read by count."""
    items = (
        logged_in()
        .c(b"a2 APPEND INBOX {%d}\r\n" % len(MESSAGE) + MESSAGE + b"\r\n")
        .s(b"+ OK\r\n")
        .s(b"a2 OK appended\r\n")
        .end()
    )
    events, _ = feed(Imap, items)
    ((end, data),) = messages(events)
    assert data == MESSAGE and end.complete
    assert [(r.status, r.answers) for r in of_type(events, Reply)][-2:] == [("+", None), ("OK", "APPEND")]


def test_multiappend_gives_two_messages() -> None:
    second = MESSAGE.replace(b"Hello", b"Again")
    items = (
        logged_in()
        .c(
            b"a2 APPEND INBOX "
            + literal(MESSAGE).replace(b"}", b"+}", 1)
            + b" (\\Seen) "
            + literal(second).replace(b"}", b"+}", 1)
            + b"\r\n"
        )
        .s(b"a2 OK\r\n")
        .end()
    )
    events, imap = feed(Imap, items)
    assert [data for _, data in messages(events)] == [MESSAGE, second]
    assert [e["flags"] for e in imap.appends] == [[], ["\\Seen"]]


# --------------------------------------------------------------------------- literals, server side


def test_fetch_body_literal_is_a_message_with_uid_and_flags() -> None:
    items = (
        selected()
        .c(b"a3 UID FETCH 17 (FLAGS BODY.PEEK[])\r\n")
        .s(b"* 2 FETCH (UID 17 FLAGS (\\Seen) BODY[] " + literal(MESSAGE) + b")\r\na3 OK done\r\n")
        .end()
    )
    events, imap = feed(Imap, items)
    command = of_type(events, Command)[-1]
    assert (command.verb, command.uid, command.argument) == ("FETCH", True, "17 (FLAGS BODY.PEEK[])")
    ((end, data),) = messages(events)
    assert data == MESSAGE and end.complete and end.origin == "imap-fetch"
    assert end.detail == {"section": "BODY[]", "msg": 2, "uid": 17, "flags": ["\\Seen"], "tag": "a3"}
    assert imap.fetched == 1


def test_literal8_binary_fetch() -> None:
    """RFC 3516: ``~{n}`` carries any octet, NUL and bare CR included."""
    binary = b"Subject: bin\r\n\r\n\x00\x01\r\x00\xff\r\n"
    part = bytes(range(256))
    items = (
        selected()
        .c(b"a3 FETCH 1 (BINARY.PEEK[] BINARY[2])\r\n")
        .s(
            b"* 1 FETCH (BINARY[] ~{%d}\r\n" % len(binary)
            + binary
            + b" BINARY[2] ~{256}\r\n"
            + part
            + b")\r\na3 OK\r\n"
        )
        .end()
    )
    events, imap = feed(Imap, items)
    ((end, data),) = messages(events)
    assert data == binary and end.detail["section"] == "BINARY[]" and end.complete
    (entry,) = imap.parts
    assert (entry["section"], entry["bytes"], entry["sha256"]) == (
        "BINARY[2]",
        256,
        hashlib.sha256(part).hexdigest(),
    )
    assert f"~{{{len(binary)}}}" in of_type(events, Reply)[-2].text


def test_header_only_fetches_are_incomplete_messages() -> None:
    header = b"Subject: Hi\r\nFrom: x@y\r\n\r\n"
    items = (
        selected()
        .c(b"a3 FETCH 1:2 (RFC822.HEADER)\r\n")
        .s(
            b"* 1 FETCH (RFC822.HEADER "
            + literal(header)
            + b")\r\n* 2 FETCH (BODY[HEADER.FIELDS (SUBJECT)] "
            + literal(b"Subject: Two\r\n\r\n")
            + b")\r\na3 OK\r\n"
        )
        .end()
    )
    events, _ = feed(Imap, items)
    found = messages(events)
    assert [(e.complete, e.detail["section"], e.detail["msg"]) for e, _ in found] == [
        (False, "RFC822.HEADER", 1),
        (False, "BODY[HEADER.FIELDS (SUBJECT)]", 2),
    ]


def test_header_and_text_in_one_response_make_the_whole_message() -> None:
    head, text = MESSAGE.split(b"\r\n\r\n", 1)
    items = (
        selected()
        .c(b"a3 FETCH 1 (BODY.PEEK[HEADER] BODY.PEEK[TEXT])\r\n")
        .s(
            b"* 1 FETCH (BODY[HEADER] "
            + literal(head + b"\r\n\r\n")
            + b" BODY[TEXT] "
            + literal(text)
            + b")\r\na3 OK\r\n"
        )
        .end()
    )
    events, _ = feed(Imap, items)
    ((end, data),) = messages(events)
    assert data == MESSAGE and end.complete and end.detail["section"] == "BODY[HEADER]+BODY[TEXT]"


def test_text_or_part_alone_is_hashed_not_parsed() -> None:
    items = (
        selected()
        .c(b"a3 FETCH 1 (BODY[TEXT] BODY[1.MIME])\r\n")
        .s(b"* 1 FETCH (BODY[TEXT] " + literal(b"just text\r\n") + b" BODY[1.MIME] {0}\r\n)\r\na3 OK\r\n")
        .end()
    )
    events, imap = feed(Imap, items)
    assert not messages(events)
    assert [(p["section"], p["bytes"]) for p in imap.parts] == [("BODY[TEXT]", 11), ("BODY[1.MIME]", 0)]


def test_partial_fetches_in_chunks_are_joined() -> None:
    """Thunderbird-style chunked download: ``BODY.PEEK[]<0.32>``, ``<32.32>``... until a short chunk."""
    chunks = [MESSAGE[i : i + 32] for i in range(0, len(MESSAGE), 32)]
    script = selected()
    for n, chunk in enumerate(chunks):
        tag = b"c%d" % n
        script.c(tag + b" UID FETCH 9 (UID BODY.PEEK[]<%d.32>)\r\n" % (n * 32)).s(
            b"* 3 FETCH (UID 9 BODY[]<%d> " % (n * 32) + literal(chunk) + b")\r\n" + tag + b" OK\r\n"
        )
    events, _ = feed(Imap, script.c(b"z LOGOUT\r\n").s(b"* BYE\r\nz OK\r\n").end())
    ((end, data),) = messages(events)
    assert data == MESSAGE and end.complete
    assert end.detail["chunks"] == len(chunks) and end.detail["partial"] is False and end.detail["uid"] == 9


def test_single_partial_fetch_is_marked_partial() -> None:
    items = (
        selected()
        .c(b"a3 FETCH 1 (BODY[]<0.20>)\r\n")
        .s(b"* 1 FETCH (BODY[]<0> " + literal(MESSAGE[:20]) + b")\r\na3 OK\r\n")
        .c(b"a4 NOOP\r\n")
        .s(b"a4 OK\r\n")
        .end()
    )
    events, _ = feed(Imap, items)
    ((end, data),) = messages(events)
    assert data == MESSAGE[:20] and not end.complete and end.detail["partial"] is True
    items = (
        selected()
        .c(b"a3 FETCH 1 (BODY[]<100.20>)\r\n")
        .s(b"* 1 FETCH (BODY[]<100> " + literal(b"x" * 20) + b")\r\na3 OK\r\n")
        .end()
    )
    events, imap = feed(Imap, items)
    assert not messages(events) and imap.parts[0]["partial"] is True


def test_literal_split_across_many_segments() -> None:
    body = MESSAGE * 40
    response = b"* 1 FETCH (BODY[] " + literal(body) + b")\r\na3 OK\r\n"
    script = selected().c(b"a3 FETCH 1 BODY[]\r\n")
    for i in range(0, len(response), 7):
        script.s(response[i : i + 7])
    events, _ = feed(Imap, script.end())
    ((end, data),) = messages(events)
    assert data == body and end.complete and end.first_frame == 7
    assert of_type(events, Reply)[-1].answers == "FETCH"


def test_gap_inside_a_literal_keeps_the_framing() -> None:
    body = MESSAGE * 10
    response = b"* 1 FETCH (BODY[] " + literal(body) + b")\r\na3 OK fetched\r\n"
    start = response.index(body)
    items = (
        selected()
        .c(b"a3 FETCH 1 BODY[]\r\n")
        .s(response[: start + 100])
        .gap(SERVER, 200)
        .s(response[start + 300 :])
        .c(b"a4 NOOP\r\n")
        .s(b"a4 OK\r\n")
        .end()
    )
    events, _ = feed(Imap, items)
    ((end, data),) = messages(events)
    assert not end.complete and end.missing_bytes == 200 and len(data) == len(body) - 200
    assert [r.text for r in of_type(events, Reply)][-2:] == ["fetched", ""]
    assert "keeps the framing" in of_type(events, GapEvent)[0].detail
    assert not of_type(events, Anomaly)


def test_gap_past_the_literal_resyncs() -> None:
    body = MESSAGE * 4
    response = b"* 1 FETCH (BODY[] " + literal(body) + b")\r\na3 OK fetched\r\n"
    start = response.index(body)
    items = (
        selected()
        .c(b"a3 FETCH 1 BODY[]\r\n")
        .s(response[: start + 10])
        .gap(SERVER, len(body) + 5)
        .s(b"ed\r\n")
        .c(b"a4 NOOP\r\n")
        .s(b"a4 OK\r\n")
        .end()
    )
    events, _ = feed(Imap, items)
    ((end, _),) = messages(events)
    assert not end.complete
    assert of_type(events, Reply)[-1].tag == "a4"


def test_gap_before_a_literal_skips_its_bytes() -> None:
    """After lost bytes, a message literal whose lines look like responses must not be read as responses."""
    evil = b"* 9 EXPUNGE\r\n* BYE fake\r\n"
    items = (
        selected()
        .c(b"a3 FETCH 1:2 BODY[]\r\n")
        .s(b"* 1 FETCH (BODY[] {5}\r\n")
        .gap(SERVER, 10)
        .s(b"FETCH (BODY[] " + literal(evil) + b")\r\na3 OK\r\n")
        .end()
    )
    events, imap = feed(Imap, items)
    assert imap.expunged == [] and imap.state is State.SELECTED
    assert of_type(events, Reply)[-1].tag == "a3"


# --------------------------------------------------------------------------- commands, states, untagged


def test_untagged_data_goes_to_the_command_that_asked() -> None:
    items = (
        selected()
        .c(b'a3 SEARCH UNSEEN\r\na4 LIST "" *\r\n')
        .s(b'* SEARCH 2 3\r\n* LIST (\\HasNoChildren) "/" "&ZeVnLIqe-"\r\na3 OK\r\na4 OK\r\n')
        .end()
    )
    events, imap = feed(Imap, items)
    assert [(r.text, r.answers) for r in of_type(events, Reply)][-4:-2] == [
        ("SEARCH 2 3", "SEARCH"),
        ('LIST (\\HasNoChildren) "/" "&ZeVnLIqe-"', "LIST"),
    ]
    assert imap.folders == ["日本語"] and imap.searches[0]["count"] == 2


def test_idle_wake_ups() -> None:
    items = (
        selected()
        .c(b"a3 IDLE\r\n")
        .s(b"+ idling\r\n")
        .s(b"* 4 EXISTS\r\n")
        .s(b"* 2 EXPUNGE\r\n")
        .s(b"* 1 FETCH (FLAGS (\\Seen))\r\n")
        .c(b"DONE\r\n")
        .s(b"a3 OK IDLE terminated\r\n")
        .end()
    )
    events, imap = feed(Imap, items)
    assert imap.idle_updates == ["4 EXISTS", "2 EXPUNGE", "1 FETCH"]
    assert [n.text for n in of_type(events, Note)][-3:] == [
        "IDLE woken: * 4 EXISTS",
        "IDLE woken: * 2 EXPUNGE",
        "IDLE woken: * 1 FETCH",
    ]
    assert [c.verb for c in of_type(events, Command)][-2:] == ["IDLE", "DONE"]
    assert [e["event"] for e in imap.timeline][-5:] == ["idle", "exists", "expunge", "flags", "idle-done"]
    assert imap.current_box is not None and imap.current_box["exists"] == 3


def test_states_and_phases() -> None:
    items = (
        selected()
        .c(b"a3 CLOSE\r\n")
        .s(b"a3 OK\r\n")
        .c(b"a4 FETCH 1 FLAGS\r\n")
        .s(b"a4 BAD no mailbox\r\n")
        .c(b"a5 LOGOUT\r\n")
        .s(b"* BYE bye\r\na5 OK\r\n")
        .end()
    )
    events, imap = feed(Imap, items)
    assert [s["state"] for s in imap.states] == [
        "not authenticated",
        "authenticated",
        "selected",
        "authenticated",
        "logout",
    ]
    assert [a.kind for a in of_type(events, Anomaly)] == ["command-out-of-state"]
    assert [c.phase for c in of_type(events, Command)] == [
        Phase.AUTH,
        Phase.TRANSFER,
        Phase.TRANSFER,
        Phase.TRANSFER,
        Phase.TEARDOWN,
    ]
    assert TRANSITIONS[State.SELECTED]["SELECT NO"] is State.AUTHENTICATED
    assert COMMAND_STATES["FETCH"] == {State.SELECTED}


def test_preauth_greeting_and_capture_without_greeting() -> None:
    _, imap = feed(Imap, Script().s(b"* PREAUTH hi\r\n").c(b"a SELECT x\r\n").s(b"a OK\r\n").end())
    assert imap.state is State.SELECTED
    events, imap = feed(Imap, Script().c(b"a7 UID FETCH 1 FLAGS\r\n").s(b"* 1 FETCH (FLAGS ())\r\na7 OK\r\n").end())
    assert imap.state is State.SELECTED and not of_type(events, Anomaly)


def test_authenticate_with_sasl_ir_and_challenges() -> None:
    items = (
        Script()
        .s(GREETING)
        .c(b"a1 AUTHENTICATE PLAIN AGJvYgBzZWNyZXQ=\r\n")
        .s(b"a1 NO [AUTHENTICATIONFAILED] no\r\n")
        .c(b"a2 AUTHENTICATE LOGIN\r\n")
        .s(b"+ VXNlcm5hbWU6\r\n")
        .c(b"Ym9i\r\n")
        .s(b"+ UGFzc3dvcmQ6\r\n")
        .c(b"c2VjcmV0\r\n")
        .s(b"a2 OK [CAPABILITY IMAP4rev1 IDLE] in\r\n")
        .end()
    )
    events, imap = feed(Imap, items)
    first, second = of_type(events, AuthAttempt)
    assert (first.mechanism, first.username, first.success) == ("PLAIN", "bob", False)
    assert first.extra["reason"] == "[AUTHENTICATIONFAILED] no"
    assert (second.mechanism, second.username, second.secret, second.success) == (
        "LOGIN",
        "bob",
        "secret",
        True,
    )
    assert [c.argument for c in of_type(events, Command)] == [
        "PLAIN [initial response]",
        "LOGIN",
        "[SASL response]",
        "[SASL response]",
    ]
    assert imap.capabilities == ["IMAP4rev1", "IDLE"]


def test_cram_md5_hashcat_line_only_with_secrets() -> None:
    items = (
        Script()
        .s(GREETING)
        .c(b"a1 AUTHENTICATE CRAM-MD5\r\n")
        .s(b"+ PDEyMzRAaG9zdD4=\r\n")
        .c(b"Ym9iIDAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVm\r\n")
        .s(b"a1 OK\r\n")
        .end()
    )
    (auth,) = of_type(feed(Imap, items)[0], AuthAttempt)
    assert auth.username == "bob" and "hashcat" not in auth.extra
    (auth,) = of_type(feed(Imap, items, DissectorLimits(show_secrets=True))[0], AuthAttempt)
    assert auth.extra["hashcat"].startswith("$cram_md5$")


def test_starttls_and_injected_commands() -> None:
    items = (
        Script()
        .s(GREETING)
        .c(b"a1 STARTTLS\r\na2 LOGIN evil pw\r\n")
        .s(b"a1 OK begin\r\n")
        .c(b"\x16\x03\x01\x00\x10")
        .end()
    )
    events, imap = feed(Imap, items)
    assert [c.verb for c in of_type(events, Command)] == ["STARTTLS"]
    assert [a.kind for a in of_type(events, Anomaly)] == ["starttls-injection"]
    assert of_type(events, TlsStart)[0].frame == 3
    imap.tls_started()
    assert imap.capabilities == [] and imap.capabilities_before_tls == [
        "IMAP4rev1",
        "LITERAL+",
        "BINARY",
        "COMPRESS=DEFLATE",
    ]


def test_decrypted_starttls_session(captures: Path) -> None:
    from mailtrace.capture.reader import open_capture
    from mailtrace.config import Config
    from mailtrace.pipeline import Analyzer
    from mailtrace.tls import KeyLog

    analyzer = Analyzer(Config(), keylog=KeyLog.from_file(str(captures / "tls-implicit.keylog")))
    found = [s for s in analyzer.run([open_capture(str(captures / "tls-implicit.pcap"))]) if s.protocol == "imap"]
    starttls = next(s for s in found if s.tls == "starttls")
    assert [c.verb for c in starttls.commands] == ["CAPABILITY", "STARTTLS", "CAPABILITY", "LOGIN", "LOGOUT"]
    assert "STARTTLS" in starttls.record["imap"]["capabilities_before_tls"]
    assert "STARTTLS" not in starttls.record["imap"]["capabilities"]
    implicit = next(s for s in found if s.tls == "implicit")
    assert implicit.record["imap"]["selected"][0]["exists"] is not None


def test_unknown_tag_duplicate_tag_and_garbage() -> None:
    items = (
        logged_in()
        .c(b"x NOOP\r\nx NOOP\r\n")
        .s(b"y OK\r\nx OK\r\n")
        .c(b"\x00\x01\x02\x03\r\n")
        .s(b"what is this\r\n")
        .end()
    )
    events, _ = feed(Imap, items)
    assert [a.kind for a in of_type(events, Anomaly)] == [
        "duplicate-tag",
        "unknown-tag",
        "garbage",
        "invalid-response",
    ]


def test_store_copy_move_expunge_timeline() -> None:
    items = (
        selected()
        .c(b"a3 UID STORE 5 +FLAGS.SILENT (\\Deleted)\r\n")
        .s(b"a3 OK\r\n")
        .c(b"a4 UID MOVE 6 Archive\r\n")
        .s(b"* OK [COPYUID 42 6 1] moved\r\n* 2 EXPUNGE\r\na4 OK\r\n")
        .c(b"a5 EXPUNGE\r\n")
        .s(b"* 1 EXPUNGE\r\na5 OK\r\n")
        .end()
    )
    _, imap = feed(Imap, items)
    events = [(e["event"], e.get("uid"), e.get("during")) for e in imap.timeline[1:]]
    assert events == [
        ("store", True, None),
        ("expunge", None, "MOVE"),
        ("move", True, None),
        ("expunge", None, "EXPUNGE"),
        ("expunge-done", None, None),
    ]
    assert imap.expunged == [2, 1] and imap.stored == ["5 +FLAGS.SILENT (\\Deleted)"]


def test_id_enable_namespace() -> None:
    items = (
        logged_in()
        .c(b'a2 ID ("name" "Thunderbird" "version" "115.0")\r\n')
        .s(b'* ID ("name" "Dovecot")\r\na2 OK\r\n')
        .c(b"a3 ENABLE QRESYNC\r\n")
        .s(b"* ENABLED QRESYNC\r\na3 OK\r\n")
        .c(b"a4 NAMESPACE\r\n")
        .s(b'* NAMESPACE (("" "/")) NIL (("#shared/" "/"))\r\na4 OK\r\n')
        .end()
    )
    events, imap = feed(Imap, items)
    assert imap.client_id == {"name": "Thunderbird", "version": "115.0"}
    assert imap.server_id == {"name": "Dovecot"} and imap.enabled == ["QRESYNC"]
    assert imap.namespace == {
        "personal": [{"prefix": "", "delimiter": "/"}],
        "other": [],
        "shared": [{"prefix": "#shared/", "delimiter": "/"}],
    }
    assert [r.answers for r in of_type(events, Reply)][-2:] == ["NAMESPACE", "NAMESPACE"]


# --------------------------------------------------------------------------- COMPRESS=DEFLATE


def _deflate() -> zlib._Compress:
    return zlib.compressobj(6, zlib.DEFLATED, -15)


def test_compress_deflate_both_directions() -> None:
    client, server = _deflate(), _deflate()

    def c(data: bytes) -> bytes:
        return client.compress(data) + client.flush(zlib.Z_SYNC_FLUSH)

    def s(data: bytes) -> bytes:
        return server.compress(data) + server.flush(zlib.Z_SYNC_FLUSH)

    exists = s(b"* 4 EXISTS\r\n")
    fetched = s(b"* 1 FETCH (BODY[] " + literal(MESSAGE) + b")\r\na4 OK\r\n")
    items = (
        selected()
        .c(b"a3 COMPRESS DEFLATE\r\n")
        .s(b"a3 OK DEFLATE active\r\n" + exists)
        .c(c(b"a4 FETCH 1 BODY[]\r\n"))
        .s(fetched[:10])
        .s(fetched[10:])
        .c(c(b"a5 APPEND INBOX {%d+}\r\n" % len(MESSAGE) + MESSAGE + b"\r\n"))
        .s(s(b"a5 OK\r\n"))
        .end()
    )
    events, imap = feed(Imap, items)
    assert imap.compressed
    assert [c.verb for c in of_type(events, Command)][-3:] == ["COMPRESS", "FETCH", "APPEND"]
    assert [(e.origin, data) for e, data in messages(events)] == [
        ("imap-fetch", MESSAGE),
        ("imap-append", MESSAGE),
    ]
    assert imap.timeline[-1]["event"] == "append" and {"event": "exists", "count": 4, "frame": 7} in imap.timeline
    assert not of_type(events, Anomaly)
    assert normalized(feed(Imap, resplit(items, [1]))[0]) == normalized(events)


def test_compressed_stream_after_a_gap_is_opaque() -> None:
    server = _deflate()
    items = (
        selected()
        .c(b"a3 COMPRESS DEFLATE\r\n")
        .s(b"a3 OK\r\n")
        .gap(SERVER, 30)
        .s(server.compress(b"* 1 EXISTS\r\n") + server.flush(zlib.Z_SYNC_FLUSH))
        .end()
    )
    events, _ = feed(Imap, items)
    assert "cannot be inflated" in of_type(events, GapEvent)[0].detail


def test_corrupt_compressed_stream_is_an_anomaly() -> None:
    items = selected().c(b"a3 COMPRESS DEFLATE\r\n").s(b"a3 OK\r\n").s(b"\xff\xff\xff\xff not deflate").end()
    events, _ = feed(Imap, items)
    assert [a.kind for a in of_type(events, Anomaly)] == ["compress-error"]


# --------------------------------------------------------------------------- hostile input, split invariance

PIECES = [
    b"a1 LOGIN {3}\r\n",
    b"+ \r\n",
    b"abc",
    b"* 1 FETCH (BODY[] {4}\r\n",
    b"~{3}\r\n",
    b"{99999999}\r\n",
    b"a2 OK\r\n",
    b"DONE\r\n",
    b"a3 IDLE\r\n",
    b"* BYE\r\n",
    b"a4 COMPRESS DEFLATE\r\n",
    b"a4 OK\r\n",
    b"a5 AUTHENTICATE PLAIN\r\n",
    b"*\r\n",
    b"a6 STARTTLS\r\n",
    b"a6 OK\r\n",
    b")\r\n",
    b"{0}\r\n",
    b"a7 APPEND x {5+}\r\nhello\r\n",
    b"* 3 EXPUNGE\r\n",
    b"* OK [CAPABILITY X]\r\n",
    b"\r\n",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.booleans(), st.binary(max_size=48) | st.sampled_from(PIECES)), max_size=30),
    st.lists(st.integers(1, 5000), max_size=3),
)
def test_hostile_input_never_raises(steps: list[tuple[bool, bytes]], gaps: list[int]) -> None:
    script = Script()
    for i, (client, data) in enumerate(steps):
        if gaps and i % 5 == 2:
            script.gap(CLIENT if client else SERVER, gaps[i % len(gaps)])
        if client:
            script.c(data)
        else:
            script.s(data)
    feed(Imap, script.end())


@pytest.fixture(scope="module")
def sample_streams(captures: Path) -> list[list[object]]:
    return [stream_items(s) for s in analyze(captures / "imap-session.pcap")]


def test_same_events_fed_whole_or_byte_by_byte(sample_streams: list[list[object]]) -> None:
    for items in sample_streams:
        assert normalized(feed(Imap, resplit(items, [1]))[0]) == normalized(feed(Imap, items)[0])  # type: ignore[arg-type]


def test_same_events_split_at_every_offset(sample_streams: list[list[object]]) -> None:
    for items in sample_streams[1:]:  # the AUTHENTICATE/APPEND session and the failed login
        whole = normalized(feed(Imap, items)[0])
        for index, item in enumerate(items):
            for offset in range(1, len(getattr(item, "data", b""))):
                assert normalized(feed(Imap, split_at(items, index, offset))[0]) == whole, (index, offset)  # type: ignore[arg-type]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(1, 400), min_size=1, max_size=12))
def test_same_events_split_anywhere(sample_streams: list[list[object]], sizes: list[int]) -> None:
    for items in sample_streams:
        assert normalized(feed(Imap, resplit(items, sizes))[0]) == normalized(feed(Imap, items)[0])  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=8))
def test_synthetic_literals_split_anywhere(sizes: list[int]) -> None:
    head, text = MESSAGE.split(b"\r\n\r\n", 1)
    items = (
        Script()
        .s(GREETING)
        .c(b"a1 LOGIN {3+}\r\nbob {6}\r\n")
        .s(b"+ more\r\n")
        .c(b"secret\r\n")
        .s(b"a1 OK\r\n")
        .c(b"a2 SELECT INBOX\r\na3 FETCH 1 (BODY[HEADER] BODY[TEXT] BINARY[1])\r\n")
        .s(
            b"* 1 EXISTS\r\na2 OK\r\n* 1 FETCH (BODY[HEADER] "
            + literal(head + b"\r\n\r\n")
            + b" BODY[TEXT] "
            + literal(text)
            + b" BINARY[1] ~{2}\r\n\x00\x01)\r\na3 OK\r\n"
        )
        .c(b"a4 APPEND INBOX {%d}\r\n" % len(MESSAGE))
        .s(b"+ go\r\n")
        .c(MESSAGE + b"\r\n")
        .s(b"a4 OK\r\n")
        .end()
    )
    whole = normalized(feed(Imap, items)[0])
    assert normalized(feed(Imap, resplit(items, sizes))[0]) == whole


def test_sample_stream_events_match_the_pipeline(captures: Path) -> None:
    for session in analyze(captures / "imap-session.pcap"):
        events, _ = feed(Imap, stream_items(session))
        assert [(c.verb, c.frame) for c in of_type(events, Command)] == [(c.verb, c.frame) for c in session.commands]
        assert len(of_type(events, MessageEnd)) == len(session.messages)


def test_state_change_lost_in_a_gap_is_inferred() -> None:
    items = (
        logged_in()
        .c(b"a2 SELECT INBOX\r\n")
        .gap(SERVER, 200)
        .c(b"a3 FETCH 1 FLAGS\r\n")
        .s(b"* 1 FETCH (FLAGS ())\r\na3 OK\r\n")
        .end()
    )
    events, imap = feed(Imap, items)
    assert imap.state is State.SELECTED and not of_type(events, Anomaly)
    assert imap.states[-1]["trigger"] == "inferred from FETCH OK: the change was lost in a gap"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.randoms(use_true_random=False), st.sampled_from([64, 1024, 65536]), st.booleans())
def test_damaged_sample_streams_never_raise(
    sample_streams: list[list[object]], rng: object, max_line: int, secrets: bool
) -> None:
    limits = DissectorLimits(max_line=max_line, show_secrets=secrets)
    for items in sample_streams:
        feed(Imap, mutated(items, rng), limits)  # type: ignore[arg-type]
