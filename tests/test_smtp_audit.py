"""SMTP findings of the protocol audit: BDAT resynchronisation, SIZE, RCPT parameters, reply codes,
explanations of generic enhanced codes, AUTH 454, the frame each reply answers, a message cut by RST,
STARTTLS refused, SCRAM-SHA-1, and random input."""

from __future__ import annotations

import base64
import random
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mailtrace.model import (
    CLIENT,
    SERVER,
    Anomaly,
    AuthAttempt,
    Chunk,
    Command,
    Eof,
    Event,
    MessageEnd,
    Phase,
    Reply,
    StreamGap,
    StreamItem,
    TlsStart,
)
from mailtrace.protocols.base import DissectorLimits
from mailtrace.protocols.smtp import Smtp
from mailtrace.protocols.smtp_codes import explain_reply, is_defined_code
from mailtrace.render.explain import explain_smtp_reply
from tests.pcapgen import Capture, Tcp
from tests.support import report, run_cli, sample
from tests.test_smtp import run, smtp_items

GREETING = (("s", b"220 mx ESMTP\r\n"), ("c", b"EHLO a\r\n"), ("s", b"250-mx\r\n250-CHUNKING\r\n250 SIZE 1000\r\n"))
ENVELOPE = (("c", b"MAIL FROM:<a@b>\r\n"), ("s", b"250 ok\r\n"), ("c", b"RCPT TO:<c@d>\r\n"), ("s", b"250 ok\r\n"))


def verbs(events: list[Event]) -> list[str]:
    return [e.verb for e in events if isinstance(e, Command) and e.verb]


def anomalies(events: list[Event], kind: str | None = None) -> list[Anomaly]:
    return [e for e in events if isinstance(e, Anomaly) and (kind is None or e.kind == kind)]


def ends(events: list[Event]) -> list[MessageEnd]:
    return [e for e in events if isinstance(e, MessageEnd)]


def replies(events: list[Event]) -> list[Reply]:
    return [e for e in events if isinstance(e, Reply)]


# --------------------------------------------------------------------------- 1. BDAT chunk shorter than declared
def test_bdat_last_longer_than_sent_resyncs_on_the_servers_reply() -> None:
    body = b"Subject: short\r\n\r\n" + b"x" * 82  # 100 bytes, 500 announced
    events, record = run(smtp_items(*GREETING, *ENVELOPE, ("c", b"BDAT 500 LAST\r\n" + body),
                                    ("s", b"250 2.0.0 Ok: queued as Q9AB\r\n"), ("c", b"QUIT\r\n"),
                                    ("s", b"221 2.0.0 Bye\r\n")))
    assert verbs(events) == ["EHLO", "MAIL", "RCPT", "BDAT", "QUIT"]  # QUIT is a command, not chunk data
    (short,) = anomalies(events, "bdat-chunk-short")
    assert short.frame == 9  # the server's reply showed where the chunk ended
    assert short.detail == ("BDAT announced a chunk of 500 bytes, but the server answered it (250); the client had "
                            "sent it after 100 of them; 400 bytes never came (RFC 3030)")
    assert not anomalies(events, "unsolicited-reply")
    (end,) = ends(events)
    assert (end.origin, end.complete, end.missing_bytes, end.frame) == ("smtp-bdat", False, 400, 8)
    assert [r.answers for r in replies(events)][-2:] == ["BDAT", "QUIT"]
    tx = record["transactions"][0]
    assert (tx["bdat_chunks"], tx["data_reply"], tx["queue_id"], tx["sent_bytes"]) == ([500], 250, "Q9AB", 100)


def test_bdat_first_chunk_longer_than_sent_then_last_chunk() -> None:
    events, record = run(smtp_items(*GREETING, *ENVELOPE, ("c", b"BDAT 300\r\nSubject: two\r\n\r\n"),
                                    ("s", b"250 2.0.0 chunk ok\r\n"), ("c", b"BDAT 6 LAST\r\nhello\n"),
                                    ("s", b"250 2.0.0 queued as Q2X1\r\n")))
    assert verbs(events) == ["EHLO", "MAIL", "RCPT", "BDAT", "BDAT"]
    (short,) = anomalies(events, "bdat-chunk-short")
    assert "chunk of 300 bytes" in short.detail and "after 16 of them; 284 bytes never came" in short.detail
    (end,) = ends(events)
    assert (end.complete, end.missing_bytes, end.detail["chunks"]) == (False, 284, [300, 6])
    assert record["transactions"][0]["sent_bytes"] == 22
    assert record["transactions"][0]["queue_id"] == "Q2X1"


def test_bdat_exact_chunks_have_no_anomaly() -> None:
    events, _ = run(smtp_items(*GREETING, *ENVELOPE, ("c", b"BDAT 5\r\nab"), ("c", b"cde"), ("s", b"250 ok\r\n"),
                               ("c", b"BDAT 0 LAST\r\n"), ("s", b"250 queued\r\n")))
    assert anomalies(events) == []
    (end,) = ends(events)
    assert (end.complete, end.missing_bytes) == (True, 0)


def test_bdat_chunk_cut_by_the_end_of_the_stream() -> None:
    items = smtp_items(*GREETING, *ENVELOPE, ("c", b"BDAT 50 LAST\r\n" + b"y" * 20))
    items.append(Eof(CLIENT, 20.0, 20))
    events, _ = run(items)
    (short,) = anomalies(events, "bdat-chunk-short")
    assert short.detail.startswith("BDAT announced a chunk of 50 bytes, but the client's stream ended after 20")
    assert short.frame == 20
    (end,) = ends(events)
    assert (end.complete, end.missing_bytes, end.frame) == (False, 30, 8)


def test_bdat_resync_in_a_real_capture(tmp_path: Path) -> None:
    cap = Capture()
    t = Tcp(cap).handshake()
    t.s(b"220 mx ESMTP\r\n").c(b"EHLO a\r\n").s(b"250-mx\r\n250 CHUNKING\r\n")
    t.c(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT 4000 LAST\r\n").c(b"Subject: s\r\n\r\nbody\r\n")
    t.s(b"250 ok\r\n250 ok\r\n250 2.0.0 queued as Q77AA\r\n").c(b"QUIT\r\n").s(b"221 bye\r\n").fin()
    (s,) = report(cap.write(tmp_path / "bdat.pcap"))["sessions"]
    assert [c["verb"] for c in s["commands"]] == ["EHLO", "MAIL", "RCPT", "BDAT", "QUIT"]
    assert [a["kind"] for a in s["anomalies"]] == ["bdat-chunk-short"]
    (m,) = s["messages"]
    assert (m["bytes"], m["complete"], m["missing_bytes"], m["subject"]) == (20, False, 3980, "s")
    assert s["transactions"][0]["queue_id"] == "Q77AA"


# --------------------------------------------------------------------------- 2. SIZE
def _data_session(mail: bytes, body: bytes, limit: bytes = b"1000") -> tuple[list[Event], dict[str, Any]]:
    ehlo = ("s", b"250-mx\r\n250-CHUNKING\r\n250 SIZE " + limit + b"\r\n")
    return run(smtp_items(*GREETING[:2], ehlo, ("c", mail), ("s", b"250 ok\r\n"), ("c", b"RCPT TO:<c@d>\r\n"),
                          ("s", b"250 ok\r\n"), ("c", b"DATA\r\n"), ("s", b"354 go\r\n"), ("c", body + b".\r\n"),
                          ("s", b"250 queued\r\n")))


def test_more_than_the_declared_estimate_is_normal() -> None:
    """SIZE= in MAIL FROM is the client's estimate (RFC 1870 §1): sending more is not an anomaly, but the
    JSON keeps both numbers for whoever wants to compare them."""
    body = b"Subject: big\r\n\r\n" + b"z" * 40 + b"\r\n"  # 58 bytes
    events, record = _data_session(b"MAIL FROM:<a@b> SIZE=30\r\n", body)
    assert anomalies(events) == []
    tx = record["transactions"][0]
    assert (tx["declared_size"], tx["sent_bytes"]) == (30, 58)


def test_more_than_the_servers_fixed_maximum_is_an_anomaly() -> None:
    body = b"Subject: big\r\n\r\n" + b"z" * 40 + b"\r\n"  # 58 bytes
    events, _ = _data_session(b"MAIL FROM:<a@b> SIZE=30\r\n", body, limit=b"50")
    (big,) = anomalies(events, "size-exceeded")
    assert big.detail == ("the message is 58 bytes, more than the fixed maximum of 50 bytes the server announced "
                          "in its EHLO reply (SIZE=30 declared in MAIL FROM) (RFC 1870 §6.2)")
    assert big.frame == 10
    events, _ = _data_session(b"MAIL FROM:<a@b>\r\n", body, limit=b"0")  # SIZE 0: no fixed maximum
    assert anomalies(events) == []


def test_size_counts_the_message_without_stuffing_dots() -> None:
    body = b"Subject: d\r\n\r\n..dot\r\n"  # 21 bytes on the wire, 20 in the message (RFC 1870)
    events, record = _data_session(b"MAIL FROM:<a@b>\r\n", body, limit=b"20")
    assert anomalies(events) == []
    assert record["transactions"][0]["sent_bytes"] == 21
    events, _ = _data_session(b"MAIL FROM:<a@b>\r\n", body, limit=b"19")
    assert [a.detail for a in anomalies(events, "size-exceeded")] == [
        "the message is 20 bytes, more than the fixed maximum of 19 bytes the server announced in its EHLO reply "
        "(RFC 1870 §6.2)"]


def test_size_exceeded_with_bdat() -> None:
    events, _ = run(smtp_items(*GREETING[:2], ("s", b"250-mx\r\n250-CHUNKING\r\n250 SIZE 4\r\n"),
                               ("c", b"MAIL FROM:<a@b>\r\n"), ("s", b"250 ok\r\n"),
                               ("c", b"RCPT TO:<c@d>\r\n"), ("s", b"250 ok\r\n"), ("c", b"BDAT 9 LAST\r\n123456789"),
                               ("s", b"250 queued\r\n")))
    assert [a.kind for a in anomalies(events)] == ["size-exceeded"]
    assert "the message is 9 bytes, more than the fixed maximum of 4 bytes" in anomalies(events)[0].detail


# --------------------------------------------------------------------------- 3. RCPT parameters
def test_rcpt_parameters_kept_in_json(tmp_path: Path) -> None:
    cap = Capture()
    t = Tcp(cap).handshake()
    t.s(b"220 mx ESMTP\r\n").c(b"EHLO a\r\n").s(b"250-mx\r\n250 DSN\r\n")
    t.c(b"MAIL FROM:<a@b> RET=HDRS ENVID=QQ314159\r\n").s(b"250 ok\r\n")
    t.c(b"RCPT TO:<c@d> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;c@d\r\n").s(b"250 ok\r\n")
    t.c(b"RCPT TO:<e@f>\r\n").s(b"550 no\r\n").c(b"RCPT TO:<g@h> notify=never\r\n").s(b"250 ok\r\n")
    t.c(b"QUIT\r\n").s(b"221 bye\r\n").fin()
    (s,) = report(cap.write(tmp_path / "dsn.pcap"))["sessions"]
    tx = s["transactions"][0]
    assert tx["params"] == {"RET": "HDRS", "ENVID": "QQ314159"}
    assert tx["rcpt_to"] == ["c@d", "e@f", "g@h"]
    assert tx["rcpt_params"] == [{"NOTIFY": "SUCCESS,FAILURE", "ORCPT": "rfc822;c@d"}, {}, {"NOTIFY": "never"}]
    assert tx["rcpt_replies"] == [250, 550, 250]


# --------------------------------------------------------------------------- 3b. message before the 354
def test_message_pipelined_with_data_pairs_the_354_and_the_queue_reply() -> None:
    """A client that sends MAIL, RCPT, DATA and the message in one segment (RFC 2920 §3.1 forbids it):
    the 354 still pairs with DATA and the 250 with the end of the message."""
    body = b"Subject: eager\r\n\r\nhi\r\n.\r\n"
    events, record = run(smtp_items(*GREETING, ("c", b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n" + body),
                                    ("s", b"250 ok\r\n250 ok\r\n354 go\r\n250 2.0.0 queued as EAGER1\r\n"),
                                    ("c", b"QUIT\r\n"), ("s", b"221 bye\r\n")))
    assert [(r.status, r.answers) for r in replies(events)] == [
        ("220", None), ("250", "EHLO"), ("250", "MAIL"), ("250", "RCPT"), ("354", "DATA"), ("250", "."),
        ("221", "QUIT")]
    (early,) = anomalies(events, "data-before-354")
    assert early.frame == 4 and "RFC 2920" in early.detail
    assert not anomalies(events, "reply-not-seen") and not anomalies(events, "unsolicited-reply")
    (end,) = ends(events)
    assert end.complete
    tx = record["transactions"][0]
    assert (tx["data_reply"], tx["queue_id"]) == (250, "EAGER1")


def test_message_without_a_354_in_the_capture_infers_it() -> None:
    """The capture lost the 354: the reply after the message is the end-of-data reply, not DATA's."""
    events, record = run(smtp_items(*GREETING, *ENVELOPE, ("c", b"DATA\r\n"),
                                    ("c", b"Subject: lost\r\n\r\nhi\r\n.\r\n"),
                                    ("s", b"250 2.0.0 queued as LOST354\r\n"), ("c", b"QUIT\r\n"),
                                    ("s", b"221 bye\r\n")))
    (lost,) = anomalies(events, "reply-not-seen")
    assert lost.frame == 8
    assert not anomalies(events, "data-before-354")
    assert [r.answers for r in replies(events)][-2:] == [".", "QUIT"]
    assert record["transactions"][0]["queue_id"] == "LOST354"


# --------------------------------------------------------------------------- 3c. RFC 5321 line limits
def test_lines_over_rfc_5321_limits_are_flagged_with_the_rule() -> None:
    long_rcpt = b"RCPT TO:<" + b"r" * 600 + b"@d>\r\n"  # 614 octets with the CRLF
    token = base64.b64encode(b"\0bob\0" + b"p" * 1500)  # an AUTH line over 512 is fine up to 12288
    events, _ = run(smtp_items(*GREETING, ("c", b"AUTH PLAIN " + token + b"\r\n"), ("s", b"235 ok\r\n"),
                               ("c", b"MAIL FROM:<a@b>\r\n"), ("s", b"250 ok\r\n"), ("c", long_rcpt),
                               ("s", b"550 " + b"x" * 520 + b"\r\n")))
    found = [(a.direction, a.frame, a.detail) for a in anomalies(events, "line-over-rfc-limit")]
    assert found == [
        (CLIENT, 8, "command line of 614 octets with its CRLF; RFC 5321 §4.5.3.1.4 allows 512"),
        (SERVER, 9, "reply line of 526 octets with its CRLF; RFC 5321 §4.5.3.1.5 allows 512"),
    ]


# --------------------------------------------------------------------------- 4. reply codes
def _noop(*server: bytes) -> list[Event]:
    parts: list[tuple[str, bytes]] = [("s", b"220 mx\r\n")]
    for reply in server:
        parts += [("c", b"NOOP\r\n"), ("s", reply)]
    return run(smtp_items(*parts))[0]


def test_undefined_reply_codes_flagged() -> None:
    events = _noop(b"299 odd\r\n", b"270 odder\r\n", b"250 fine\r\n", b"253 ETRN started\r\n", b"199 x\r\n")
    found = [(a.kind, a.detail, a.frame) for a in anomalies(events)]
    assert found == [
        ("undefined-reply-code", "reply code 299 is not defined by RFC 5321 or an SMTP extension", 3),
        ("undefined-reply-code", "reply code 270 is not defined by RFC 5321 or an SMTP extension", 5),
        ("undefined-reply-code", "reply code 199 is not defined by RFC 5321 or an SMTP extension", 11),
    ]
    assert [r.answers for r in replies(events)] == [None, "NOOP", "NOOP", "NOOP", "NOOP", "NOOP"]
    assert is_defined_code("555") and is_defined_code("334") and not is_defined_code("251 ")


def test_invalid_reply_codes_flagged() -> None:
    events = _noop(b"600 six hundred\r\n", b"099 low\r\n")
    found = [(a.kind, a.detail) for a in anomalies(events)]
    assert found == [("invalid-reply-code", "reply code 600 is outside RFC 5321"),
                     ("invalid-reply-code", "reply code 99 is outside RFC 5321")]
    events, _ = run(smtp_items(("s", b"220 mx\r\n"), ("c", b"NOOP\r\n"), ("s", b"25O ok\r\n"), ("s", b"250 ok\r\n")))
    assert [(a.kind, a.detail) for a in anomalies(events)] == [
        ("invalid-reply", "server line without a reply code: 25O ok")]
    assert [r.status for r in replies(events)] == ["220", "250"]


def test_unsolicited_replies() -> None:
    events, _ = run(smtp_items(("s", b"220 mx\r\n"), ("c", b"NOOP\r\n"), ("s", b"250 ok\r\n"),
                               ("s", b"250 again\r\n"), ("s", b"421 4.4.2 timeout\r\n")))
    (unsolicited,) = anomalies(events)
    assert (unsolicited.kind, unsolicited.detail, unsolicited.frame) == (
        "unsolicited-reply", "reply 250 answers no command", 4)  # a 421 may come at any time
    assert [(r.status, r.answers) for r in replies(events)] == [("220", None), ("250", "NOOP"), ("250", None),
                                                                 ("421", None)]


# --------------------------------------------------------------------------- 5. explanations
def _reply(status: str, text: str, answers: str | None = "MAIL") -> Reply:
    return Reply(direction=SERVER, ts=0.0, frame=1, first_frame=1, phase=Phase.TRANSFER, status=status,
                 lines=(text,), answers=answers)


def test_generic_enhanced_code_yields_to_the_reply_code() -> None:
    m = explain_reply("503", "5.0.0 Bad sequence of commands")
    assert m is not None and m.generic and m.short == "bad sequence of commands"
    m = explain_reply("454", "4.7.0 TLS not available due to local problem")
    assert m is not None and m.generic and m.short == "temporary authentication failure / TLS not available"
    m = explain_reply("550", "5.1.1 no such user")
    assert m is not None and not m.generic and m.short == "bad destination mailbox address"
    m = explain_reply("554", "5.7.10 encryption needed")
    assert m is not None and not m.generic and m.short == "encryption needed"
    m = explain_reply("299", "5.0.0 odd")  # no meaning for the code: the enhanced one is all there is
    assert m is not None and m.short == "other undefined status"
    found = explain_smtp_reply(_reply("503", "5.0.0 Bad sequence of commands"))
    assert found is not None and found.kind == "failure"
    assert found.lines == ("↳ 503: permanent failure · syntax — bad sequence of commands",
                           "↳ 5.0.0: other undefined status")


def test_caption_names_a_generic_failure_by_its_reply_code() -> None:
    from mailtrace.render.captions import reply_text

    assert reply_text(_reply("503", "5.0.0 Bad sequence of commands")) == "503 5.0.0 bad sequence of commands"
    assert reply_text(_reply("550", "5.1.1 no")) == "550 5.1.1 bad destination mailbox address"


def test_positive_replies_explained_on_request() -> None:
    rcpt = _reply("250", "2.1.5 Ok", "RCPT")
    assert explain_smtp_reply(rcpt) is None  # the table views keep positive replies to one row
    found = explain_smtp_reply(rcpt, positive=True)
    assert found is not None and found.kind == "positive"
    assert found.lines == ("↳ 250: positive completion · mail system — requested action okay",
                           "↳ 2.1.5: destination address valid")
    found = explain_smtp_reply(_reply("250", "2.0.0 Ok: queued as X", "."), positive=True)
    assert found is not None and found.lines == ("↳ 250: positive completion · mail system — requested action okay",)
    found = explain_smtp_reply(_reply("354", "End data with <CR><LF>.<CR><LF>", "DATA"), positive=True)
    assert found is not None and found.lines == (
        "↳ 354: positive intermediate reply: the server waits for more · mail system — "
        "start mail input; end with <CRLF>.<CRLF>",)
    found = explain_smtp_reply(_reply("334", "VXNlcm5hbWU6", "AUTH"), positive=True)
    assert found is not None and found.lines == (
        "↳ 334: positive intermediate reply: the server waits for more · unspecified — "
        "authentication: continue with the next step", "↳ the challenge is base64 for “Username:”")
    # a challenge that is not text (binary, or not base64) is not decoded
    for token in ("", "AAEC/w==", "not base64!"):
        found = explain_smtp_reply(_reply("334", token, "AUTH"), positive=True)
        assert found is not None and len(found.lines) == 1
    found = explain_smtp_reply(_reply("250", "mx.example.org", "EHLO"), positive=True)  # EHLO without extensions
    assert found is not None and found.kind == "positive"
    assert explain_smtp_reply(_reply("299", "odd", "NOOP"), positive=True) is None  # not in the tables
    ehlo = Reply(direction=SERVER, ts=0.0, frame=1, first_frame=1, phase=Phase.NEGOTIATION, status="250",
                 lines=("mx", "PIPELINING"), answers="EHLO")
    found = explain_smtp_reply(ehlo, positive=True)
    assert found is not None and found.kind == "extensions"
    assert found.lines == ("↳ PIPELINING: commands may be sent in batches without waiting for each reply (RFC 2920)",)


def test_generic_failure_explained_in_the_table(tmp_path: Path) -> None:
    cap = Capture()
    t = Tcp(cap).handshake()
    t.s(b"220 mx ESMTP\r\n").c(b"HELO a\r\n").s(b"250 mx\r\n").c(b"RCPT TO:<a@b>\r\n")
    t.s(b"503 5.0.0 Need MAIL before RCPT\r\n").c(b"QUIT\r\n").s(b"221 2.0.0 Bye\r\n").fin()
    text = run_cli("analyze", "--width", "200", str(cap.write(tmp_path / "x.pcap"))).stdout
    assert "↳ 503: permanent failure · syntax — bad sequence of commands" in text
    assert "↳ 5.0.0: other undefined status" in text
    assert "↳ 221" not in text and "↳ 220" not in text


# --------------------------------------------------------------------------- 6. AUTH 454, answers_frame
def test_auth_454_is_a_failure(tmp_path: Path) -> None:
    events, _ = run(smtp_items(*GREETING, ("c", b"AUTH PLAIN " + base64.b64encode(b"\0bob\0pw") + b"\r\n"),
                               ("s", b"454 4.7.0 Temporary authentication failure\r\n")))
    (attempt,) = [e for e in events if isinstance(e, AuthAttempt)]
    assert (attempt.username, attempt.success, attempt.extra["code"]) == ("bob", False, "454")
    cap = Capture()
    t = Tcp(cap).handshake()
    t.s(b"220 mx\r\n").c(b"EHLO a\r\n").s(b"250 AUTH LOGIN\r\n").c(b"AUTH LOGIN\r\n").s(b"334 VXNlcm5hbWU6\r\n")
    t.c(base64.b64encode(b"eve") + b"\r\n").s(b"334 UGFzc3dvcmQ6\r\n").c(base64.b64encode(b"pw") + b"\r\n")
    t.s(b"454 4.7.0 try later\r\n").c(b"QUIT\r\n").s(b"221 bye\r\n").fin()
    (s,) = report(cap.write(tmp_path / "auth.pcap"))["sessions"]
    (auth,) = s["auth"]
    assert (auth["mechanism"], auth["username"], auth["success"], auth["code"]) == ("LOGIN", "eve", False, "454")


def test_replies_name_the_frame_of_the_command_they_answer(tmp_path: Path) -> None:
    cap = Capture()
    t = Tcp(cap).handshake()  # frames 1-3
    t.s(b"220 mx ESMTP\r\n")  # 4
    t.c(b"EHLO a\r\n")  # 5
    t.s(b"250-mx\r\n250 PIPELINING\r\n")  # 6
    t.c(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")  # 7
    t.s(b"250 ok\r\n250 ok\r\n354 go\r\n")  # 8
    t.c(b"Subject: x\r\n\r\nhi\r\n.\r\n")  # 9
    t.s(b"250 queued\r\n")  # 10
    t.c(b"QUIT\r\n").s(b"221 bye\r\n").fin()  # 11, 12
    (s,) = report(cap.write(tmp_path / "pairs.pcap"))["sessions"]
    got = [(r["frame"], r["answers"], r["answers_frame"]) for r in s["replies"]]
    assert got == [(4, None, None), (6, "EHLO", 5), (8, "MAIL", 7), (8, "RCPT", 7), (8, "DATA", 7), (10, ".", 9),
                   (12, "QUIT", 11)]


def test_answers_frame_on_a_lab_capture() -> None:
    data = report(sample("smtp-relay-seed-story.pcap"))
    for s in data["sessions"]:
        commands: dict[int, list[str]] = {}
        for c in s["commands"]:
            commands.setdefault(c["frame"], []).append(c["verb"])
        for r in s["replies"]:
            if r["answers"] is None:
                assert r["answers_frame"] is None
                continue
            if r["answers"] == ".":  # the end of the message: the frame of its end marker
                assert r["answers_frame"] in [m["last_frame"] for m in s["messages"]], r
                continue
            assert r["answers"] in commands[r["answers_frame"]], r


# --------------------------------------------------------------------------- 7. RST in DATA
def test_message_cut_by_rst_is_shown_once() -> None:
    data = report(sample("smtp-errors.pcap"))
    reset = data["sessions"][2]
    (m,) = reset["messages"]
    assert (m["first_frame"], m["last_frame"], m["complete"], m["bytes"]) == (145, 145, False, 130)
    assert [(a["kind"], a["frame"]) for a in reset["anomalies"]] == [("incomplete-message", 147)]
    table = run_cli("analyze", "--width", "200", str(sample("smtp-errors.pcap"))).stdout
    assert table.count("this one never arrives") == 1
    rst_row = next(line for line in table.splitlines() if line.startswith("147 "))
    assert "[RST, ACK]" in rst_row and "IMF" not in rst_row and "130 bytes" not in rst_row


def test_data_cut_by_eof_ends_where_its_last_bytes_came() -> None:
    items = smtp_items(*GREETING, *ENVELOPE, ("c", b"DATA\r\n"), ("s", b"354 go\r\n"), ("c", b"Subject: a\r\n"),
                       ("c", b"\r\nbody\r\n"))
    items += [Chunk(SERVER, b"", 12.0, 12), Eof(CLIENT, 30.0, 30)]
    events, _ = run(items)
    (end,) = ends(events)
    assert (end.frame, end.complete) == (11, False)  # not the frame of the FIN/RST (30)
    assert [(a.kind, a.frame) for a in anomalies(events)] == [("incomplete-message", 30)]


# --------------------------------------------------------------------------- 8. documented behaviour
def test_client_gap_inside_data_reads_on_to_the_end_marker() -> None:
    items = smtp_items(*GREETING, *ENVELOPE, ("c", b"DATA\r\n"), ("s", b"354 go\r\n"), ("c", b"Subject: g\r\n\r\nab"))
    items += [StreamGap(CLIENT, 500, 11.0, 11), Chunk(CLIENT, b"cd\r\nMAIL FROM:<not@a.command>\r\n.\r\n", 12.0, 12),
              Chunk(SERVER, b"250 queued\r\n", 13.0, 13), Chunk(CLIENT, b"QUIT\r\n", 14.0, 14)]
    events, record = run(items)
    assert verbs(events) == ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]  # the MAIL line was message text
    (end,) = ends(events)
    assert (end.frame, end.complete, end.missing_bytes) == (12, False, 500)
    assert record["transactions"][0]["data_reply"] == 250


def test_client_gap_that_swallowed_the_end_marker_resyncs_on_the_next_command() -> None:
    """The hole took the message's end; the next client segment starts with MAIL FROM: it is the next
    transaction, not message text (before, it was swallowed and its 250 answered nothing)."""
    items = smtp_items(*GREETING, *ENVELOPE, ("c", b"DATA\r\n"), ("s", b"354 go\r\n"), ("c", b"Subject: g\r\n\r\nab"))
    items += [StreamGap(CLIENT, 500, 11.0, 11), Chunk(CLIENT, b"MAIL FROM:<next@b>\r\nRCPT TO:<e@f>\r\n", 12.0, 12),
              Chunk(SERVER, b"250 2.0.0 queued as GAP1\r\n250 2.1.0 ok\r\n250 2.1.5 ok\r\n", 13.0, 13),
              Chunk(CLIENT, b"QUIT\r\n", 14.0, 14), Chunk(SERVER, b"221 bye\r\n", 15.0, 15)]
    events, record = run(items)
    assert verbs(events) == ["EHLO", "MAIL", "RCPT", "DATA", "MAIL", "RCPT", "QUIT"]
    (end,) = ends(events)
    assert (end.frame, end.complete, end.missing_bytes) == (10, False, 500)
    assert [(a.kind, a.frame) for a in anomalies(events)] == [("end-of-data-lost", 12)]
    assert [r.answers for r in replies(events)][-4:] == [".", "MAIL", "RCPT", "QUIT"]
    first, second = record["transactions"]
    assert (first["queue_id"], second["mail_from"], second["accepted"]) == ("GAP1", "next@b", ["e@f"])


def test_lost_mail_command_is_not_a_protocol_violation() -> None:
    """The hole took MAIL FROM: its 250 answers a command the capture lost (not unsolicited), and RCPT
    opens a transaction whose sender is unknown (not 'RCPT before MAIL', not the null sender)."""
    items = smtp_items(*GREETING)
    items += [StreamGap(CLIENT, 17, 4.0, 4), Chunk(SERVER, b"250 2.1.0 ok\r\n", 5.0, 5),
              Chunk(CLIENT, b"RCPT TO:<c@d>\r\n", 6.0, 6), Chunk(SERVER, b"250 2.1.5 ok\r\n", 7.0, 7),
              Chunk(CLIENT, b"DATA\r\n", 8.0, 8), Chunk(SERVER, b"354 go\r\n", 9.0, 9),
              Chunk(CLIENT, b"Subject: s\r\n\r\nhi\r\n.\r\n", 10.0, 10),
              Chunk(SERVER, b"250 2.0.0 queued as LOSTMAIL\r\n", 11.0, 11)]
    events, record = run(items)
    assert anomalies(events) == []
    (tx,) = record["transactions"]
    assert (tx["mail_lost"], tx["mail_from"], tx["accepted"], tx["queue_id"]) == (True, "", ["c@d"], "LOSTMAIL")
    assert [r.answers for r in replies(events)][-4:] == [None, "RCPT", "DATA", "."]


def test_lost_data_command_the_354_starts_the_message() -> None:
    """The hole took DATA: the unasked 354 proves it, so the message that follows is read as one."""
    items = smtp_items(*GREETING, *ENVELOPE)
    items += [StreamGap(CLIENT, 6, 8.0, 8), Chunk(SERVER, b"354 go\r\n", 9.0, 9),
              Chunk(CLIENT, b"Subject: after\r\n\r\nDATA is text here\r\n.\r\n", 10.0, 10),
              Chunk(SERVER, b"250 2.0.0 queued as LOSTDATA\r\n", 11.0, 11)]
    events, record = run(items)
    assert anomalies(events) == []
    (end,) = ends(events)
    assert end.complete
    assert b"".join(e.data for e in events if type(e).__name__ == "MessageData").startswith(b"Subject: after")
    assert record["transactions"][0]["queue_id"] == "LOSTDATA"


def test_secrets_shown_as_placeholders() -> None:
    events, _ = run(smtp_items(*GREETING, ("c", b"AUTH PLAIN " + base64.b64encode(b"\0bob\0pw") + b"\r\n"),
                               ("s", b"235 ok\r\n"), ("c", b"AUTH LOGIN\r\n"), ("s", b"334 VXNlcm5hbWU6\r\n"),
                               ("c", base64.b64encode(b"bob") + b"\r\n"), ("s", b"334 UGFzc3dvcmQ6\r\n"),
                               ("c", base64.b64encode(b"pw") + b"\r\n"), ("s", b"235 ok\r\n")))
    shown = [(e.verb, e.argument) for e in events if isinstance(e, Command)][1:]
    assert shown == [("AUTH", "PLAIN [initial response]"), ("AUTH", "LOGIN"), ("", "[SASL response]"),
                     ("", "[SASL response]")]


# --------------------------------------------------------------------------- 9. STARTTLS 454, SCRAM-SHA-1, random
def test_starttls_refused_then_cleartext_continues() -> None:
    events, record = run(smtp_items(*GREETING, ("c", b"STARTTLS\r\n"),
                                    ("s", b"454 4.7.0 TLS not available due to local problem\r\n"),
                                    ("c", b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"),
                                    ("s", b"250 ok\r\n250 ok\r\n354 go\r\n"),
                                    ("c", b"Subject: clear\r\n\r\nx\r\n.\r\n"),
                                    ("s", b"250 queued\r\n")))
    assert not [e for e in events if isinstance(e, TlsStart)]
    assert verbs(events) == ["EHLO", "STARTTLS", "MAIL", "RCPT", "DATA"]
    assert [(r.status, r.answers) for r in replies(events)][2:] == [("454", "STARTTLS"), ("250", "MAIL"),
                                                                    ("250", "RCPT"), ("354", "DATA"), ("250", ".")]
    assert anomalies(events) == []
    (end,) = ends(events)
    assert end.complete
    assert record["transactions"][0]["data_reply"] == 250


def test_starttls_454_with_pipelined_commands_held_then_released() -> None:
    events, _ = run(smtp_items(*GREETING, ("c", b"STARTTLS\r\nMAIL FROM:<a@b>\r\n"),
                               ("s", b"454 4.7.0 TLS not available\r\n250 ok\r\n")))
    assert verbs(events) == ["EHLO", "STARTTLS", "MAIL"]
    assert [r.answers for r in replies(events)][-2:] == ["STARTTLS", "MAIL"]
    assert not anomalies(events, "starttls-injection")


def test_scram_sha_1() -> None:
    client_first = b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"
    server_first = b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"
    client_final = b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
    server_final = b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ="
    events, _ = run(smtp_items(*GREETING, ("c", b"AUTH SCRAM-SHA-1 " + base64.b64encode(client_first) + b"\r\n"),
                               ("s", b"334 " + base64.b64encode(server_first) + b"\r\n"),
                               ("c", base64.b64encode(client_final) + b"\r\n"),
                               ("s", b"334 " + base64.b64encode(server_final) + b"\r\n"), ("c", b"\r\n"),
                               ("s", b"235 2.7.0 Authentication successful\r\n"), ("c", b"QUIT\r\n")))
    (attempt,) = [e for e in events if isinstance(e, AuthAttempt)]
    assert (attempt.mechanism, attempt.username, attempt.success) == ("SCRAM-SHA-1", "user", True)
    assert [r.answers for r in replies(events)][-3:] == ["AUTH", "AUTH", "AUTH"]
    assert verbs(events) == ["EHLO", "AUTH", "QUIT"]
    assert [e.argument for e in events if isinstance(e, Command)][1] == "SCRAM-SHA-1 [initial response]"
    assert anomalies(events) == []


TOKENS = [b"EHLO a\r\n", b"MAIL FROM:<a@b> SIZE=3\r\n", b"RCPT TO:<c@d> NOTIFY=NEVER\r\n", b"DATA\r\n", b".\r\n",
          b"BDAT 7\r\n", b"BDAT 300 LAST\r\n", b"BDAT x\r\n", b"AUTH LOGIN\r\n", b"AUTH PLAIN =\r\n", b"STARTTLS\r\n",
          b"QUIT\r\n", b"RSET\r\n", b"\r\n", b"\n.\n", b"\x16\x03\x01\x00\x05", b"dGVzdA==\r\n", b"*\r\n"]
REPLIES = [b"220 hi\r\n", b"250 ok\r\n", b"250-a\r\n", b"354 go\r\n", b"334 VXNlcm5hbWU6\r\n", b"235 ok\r\n",
           b"454 4.7.0 no\r\n", b"299 odd\r\n", b"421 bye\r\n", b"500 what\r\n", b"x\r\n", b"999 z\r\n"]


def _feed_random(rng: random.Random, steps: int) -> tuple[list[Event], int]:
    limits = DissectorLimits(max_line=300, max_wait_bytes=2000)
    d = Smtp(limits)
    events: list[Event] = []
    fed = 0
    for i in range(steps):
        roll = rng.random()
        direction = CLIENT if rng.random() < 0.6 else SERVER
        if roll < 0.08:
            item: StreamItem = StreamGap(direction, rng.randint(1, 5000), float(i), i + 1)
        elif roll < 0.1:
            item = Eof(direction, float(i), i + 1)
        else:
            if roll < 0.45:
                data = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 80)))
            elif direction is CLIENT:
                data = b"".join(rng.choice(TOKENS) for _ in range(rng.randint(1, 4)))
            else:
                data = b"".join(rng.choice(REPLIES) for _ in range(rng.randint(1, 3)))
            cut = rng.randint(0, len(data))
            data = data[:cut] if rng.random() < 0.2 else data
            fed += len(data)
            item = Chunk(direction, data, float(i), i + 1)
        events += d.feed(item)
        d.record()
    events += d.finish()
    d.record()
    return events, fed


def test_random_bytes_and_gaps_seeded_loop() -> None:
    for seed in range(60):
        rng = random.Random(seed)
        events, fed = _feed_random(rng, 80)
        assert len(events) <= 4 * (fed + 80) + 10, seed  # bounded: a few events per byte or item at most
        message_bytes = sum(len(getattr(e, "data", b"")) for e in events)
        assert message_bytes <= fed, seed


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 60))
def test_random_bytes_and_gaps_property(seed: int, steps: int) -> None:
    events, fed = _feed_random(random.Random(seed), steps)
    assert len(events) <= 4 * (fed + steps) + 10
    assert sum(len(getattr(e, "data", b"")) for e in events) <= fed


def test_command_before_the_greeting_is_named_like_in_pop3_and_imap() -> None:
    """An early talker (a spam bot's tell): the greeting still pairs with nothing, EHLO with its 250."""
    events, _ = run(smtp_items(("c", b"EHLO bot\r\n"), ("s", b"220 mx ESMTP\r\n"), ("s", b"250 mx\r\n"),
                               ("c", b"QUIT\r\n"), ("s", b"221 bye\r\n")))
    (early,) = anomalies(events, "command-before-greeting")
    assert early.frame == 1 and early.detail.startswith("EHLO was sent at frame 1, before the server's greeting")
    assert [r.answers for r in replies(events)] == [None, "EHLO", "QUIT"]
    one_sided, _ = run(smtp_items(("c", b"EHLO a\r\n"), ("c", b"QUIT\r\n")))
    assert anomalies(one_sided, "command-before-greeting") == []  # no greeting in the capture: nothing to say


# --------------------------------------------------------------------------- review regressions (2026-11-27)
def test_early_body_without_354_and_a_lookalike_end_resyncs_on_the_next_command() -> None:
    events, record = run(smtp_items(*GREETING, *ENVELOPE, ("c", b"DATA\r\n"), ("c", b"Subject: x\r\n\r\nhi\n.\n"),
                                    ("s", b"250 queued as A\r\n"), ("c", b"MAIL FROM:<evil@x>\r\n"),
                                    ("s", b"250 ok\r\n")))
    assert [(a.kind, a.frame) for a in anomalies(events)] == [
        ("reply-not-seen", 8), ("smtp-smuggling", 10), ("smuggling-accepted", 10)]
    assert [r.answers for r in replies(events)][-2:] == [".", "MAIL"]
    assert [t["mail_from"] for t in record["transactions"]] == ["a@b", "evil@x"]


def test_reply_to_a_lost_command_after_a_harmless_lookalike_is_not_smuggling() -> None:
    items = smtp_items(*GREETING, *ENVELOPE, ("c", b"DATA\r\n"), ("s", b"354 go\r\n"),
                       ("c", b"Subject: x\r\n\r\nline\n.\nmore\r\n.\r\n"), ("s", b"250 queued\r\n"))
    items += [StreamGap(CLIENT, 6, 11.0, 11), Chunk(SERVER, b"221 bye\r\n", 12.0, 12)]
    events, _ = run(items)
    assert [a.kind for a in anomalies(events)] == ["smtp-smuggling"]


def test_lookalike_ending_in_cr_at_the_end_of_the_body_is_named() -> None:
    events, _ = run(smtp_items(*GREETING, *ENVELOPE, ("c", b"DATA\r\n"), ("s", b"354 go\r\n"),
                               ("c", b"Subject: x\r\n\r\nhi\r\n.\r"), ("s", b"250 queued\r\n")))
    assert [(a.kind, a.frame) for a in anomalies(events)] == [("smtp-smuggling", 11), ("smuggling-accepted", 11)]
    assert "<CR><LF>.<CR>" in anomalies(events, "smtp-smuggling")[0].detail


def test_capture_begun_mid_session_is_not_a_client_speaking_early() -> None:
    """A 554 may answer a command the capture saw without the greeting: no claim about the client."""
    events, _ = run(smtp_items(("c", b"RCPT TO:<x@y>\r\n"), ("s", b"554 5.7.1 relay access denied\r\n")))
    assert anomalies(events, "command-before-greeting") == []


def test_long_message_line_after_lost_data_is_not_a_command_line() -> None:
    items = smtp_items(*GREETING, *ENVELOPE)
    items += [StreamGap(CLIENT, 6, 8.0, 8), StreamGap(SERVER, 8, 9.0, 9),
              Chunk(CLIENT, b"Subject: s\r\n\r\n" + b"x" * 700 + b"\r\n.\r\n", 10.0, 10),
              Chunk(SERVER, b"250 queued\r\n", 11.0, 11)]
    events, _ = run(items)
    assert anomalies(events) == []
