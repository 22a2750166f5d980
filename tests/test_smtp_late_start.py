"""A capture that begins in the middle of an SMTP session (no SYN, no greeting).

Captures on a busy relay start wherever tcpdump was started: the first thing seen may be an RCPT, a
DATA or a reply to a command sent before the first packet. None of that is the client breaking RFC
5321 §4.1.4 ("RCPT before MAIL"), and a 250 is no greeting. POP3 and IMAP infer their state from the
first command in the same way (tests/protocols)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.pcapgen import Capture, Tcp
from tests.support import report, run_cli


def one_session(tmp_path: Path, build: Any) -> tuple[dict[str, Any], str]:
    cap = Capture()
    build(Tcp(cap, client=("10.0.0.1", 40000), server=("10.0.0.2", 25)))  # no handshake: mid-session
    path = cap.write(tmp_path / "late.pcap")
    [session] = report(path)["sessions"]
    text = run_cli("analyze", str(path)).stdout
    return session, text


def test_a_capture_that_begins_with_rcpt_joins_the_transaction(tmp_path: Path) -> None:
    session, text = one_session(tmp_path, lambda t: t.c(b"RCPT TO:<bob@example.org>\r\n")
                                .s(b"421 4.3.2 Service shutting down\r\n").fin())
    assert session["anomalies"] == []
    [tx] = session["transactions"]
    assert tx["mail_lost"] is True and tx["mail_from"] == "" and tx["rcpt_to"] == ["bob@example.org"]
    [reply] = session["replies"]
    assert reply["status"] == "421" and reply["answers"] == "RCPT"  # not taken for a refusing greeting
    assert session["smtp"]["greeting"] is None
    assert "RCPT continues a transaction whose MAIL command came before the first packet" in text
    assert "no reply in the capture" not in text


def test_a_capture_that_begins_with_a_reply_has_no_greeting(tmp_path: Path) -> None:
    session, text = one_session(tmp_path, lambda t: t.s(b"250 2.1.5 Ok\r\n").c(b"DATA\r\n").s(b"354 go\r\n")
                                .c(b"Subject: x\r\n\r\nhi\r\n.\r\n").s(b"250 2.0.0 queued as 4Xb\r\n")
                                .c(b"QUIT\r\n").s(b"221 bye\r\n").fin())
    assert session["anomalies"] == []
    assert "greeting" not in [p["name"] for p in session["phases"]]
    assert session["replies"][0]["answers"] is None and session["smtp"]["greeting"] is None
    [tx] = session["transactions"]
    assert tx["mail_lost"] is True and tx["data_reply"] == 250 and tx["message"] == 0
    assert session["messages"][0]["subject"] == "x"
    assert "the server is ready" not in text
    assert "reply 250 answers no command the capture shows and is no greeting" in text


def test_a_multiline_first_reply_is_the_negotiation(tmp_path: Path) -> None:
    session, _ = one_session(tmp_path, lambda t: t.s(b"250-mx.example\r\n250 PIPELINING\r\n")
                             .c(b"MAIL FROM:<a@example.org>\r\n").s(b"250 ok\r\n").fin())
    assert [p["name"] for p in session["phases"]][:2] == ["negotiation", "transfer"]
    assert session["transactions"][0]["mail_lost"] is False and session["anomalies"] == []


def test_rcpt_before_mail_in_a_session_seen_from_its_start_is_still_a_violation(tmp_path: Path) -> None:
    session, _ = one_session(tmp_path, lambda t: t.handshake().s(b"220 mx ESMTP\r\n").c(b"EHLO a\r\n")
                             .s(b"250 mx\r\n").c(b"RCPT TO:<bob@example.org>\r\n")
                             .s(b"503 5.5.1 need MAIL\r\n").fin())
    assert [a["kind"] for a in session["anomalies"]] == ["rcpt-without-mail"]
    assert session["transactions"] == []


def test_a_session_whose_first_packet_is_rcpt_but_starts_with_a_syn_is_still_a_violation(tmp_path: Path) -> None:
    """Seen from its SYN, a client that sends RCPT before the greeting broke two rules; the greeting
    comes, so the capture did not begin late."""
    session, _ = one_session(tmp_path, lambda t: t.handshake().c(b"RCPT TO:<bob@example.org>\r\n")
                             .s(b"220 mx ESMTP\r\n").s(b"503 5.5.1 need MAIL\r\n").fin())
    assert sorted(a["kind"] for a in session["anomalies"]) == ["command-before-greeting", "rcpt-without-mail"]
    assert session["smtp"]["greeting"] == "mx ESMTP" and session["transactions"] == []


def test_a_capture_that_begins_with_bdat_joins_the_transaction(tmp_path: Path) -> None:
    session, _ = one_session(tmp_path, lambda t: t.c(b"BDAT 20 LAST\r\nSubject: y\r\n\r\nbody\r\n")
                             .s(b"250 2.0.0 ok\r\n").fin())
    assert session["anomalies"] == []
    [tx] = session["transactions"]
    assert tx["mail_lost"] is True and tx["bdat_chunks"] == [20]
    assert session["messages"][0]["subject"] == "y" and session["messages"][0]["complete"] is True


def test_the_dissector_fed_directly_knows_nothing_of_the_capture_start() -> None:
    """Sans-I/O: without the stack's ``began_mid_session`` the dissector keeps the strict reading."""
    from mailtrace.model import CLIENT, Anomaly, Chunk
    from mailtrace.protocols.smtp import Smtp

    strict, late = Smtp(), Smtp()
    late.began_mid_session()
    line = Chunk(CLIENT, b"RCPT TO:<bob@example.org>\r\n", 1.0, 1)
    assert [e.kind for e in strict.feed(line) if isinstance(e, Anomaly)] == ["rcpt-without-mail"]
    assert [e for e in late.feed(line) if isinstance(e, Anomaly)] == []
