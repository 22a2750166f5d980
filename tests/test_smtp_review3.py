"""SMTP cases a user review found: credentials quoted in a note, replies to lines that are no command,
a capture that begins inside a message, and the latency of an AUTH exchange."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from mailtrace.protocols.smtp import redact_commands
from tests.pcapgen import Capture, Tcp
from tests.support import report, run_cli

SECRET = base64.b64encode(b"\0alice\0TopSecret99")


def one_session(tmp_path: Path, build: Any, *args: str) -> tuple[dict[str, Any], str]:
    cap = Capture()
    build(Tcp(cap, client=("10.0.0.1", 40000), server=("10.0.0.2", 25)))
    path = cap.write(tmp_path / "x.pcap")
    [session] = report(path, args=args)["sessions"]
    text = run_cli("analyze", "--no-explain", *args, str(path)).stdout
    return session, text


def injection(t: Tcp) -> None:
    t.handshake().s(b"220 mx ESMTP\r\n").c(b"EHLO a\r\n").s(b"250-mx\r\n250 STARTTLS\r\n") \
        .c(b"STARTTLS\r\nAUTH PLAIN " + SECRET + b"\r\n").s(b"220 go ahead\r\n")


def test_plaintext_injected_after_starttls_is_quoted_without_the_credentials(tmp_path: Path) -> None:
    session, text = one_session(tmp_path, injection)
    [anomaly] = [a for a in session["anomalies"] if a["kind"] == "starttls-injection"]
    assert "AUTH PLAIN [initial response]" in anomaly["detail"]
    assert SECRET.decode() not in anomaly["detail"] and SECRET.decode() not in text
    shown, _ = one_session(tmp_path, injection, "--show-secrets")
    [anomaly] = [a for a in shown["anomalies"] if a["kind"] == "starttls-injection"]
    assert SECRET.decode() in anomaly["detail"]


def test_redaction_knows_auth_login_lines_and_any_line_end() -> None:
    assert redact_commands(b"AUTH LOGIN\r\nYWxpY2U=\r\nc2VjcmV0\r\nMAIL FROM:<a@b>\r\n") == \
        b"AUTH LOGIN\r\n[SASL response]\r\n[SASL response]\r\nMAIL FROM:<a@b>\r\n"
    assert redact_commands(b"EHLO x\nAUTH PLAIN c2VjcmV0\n") == b"EHLO x\nAUTH PLAIN [initial response]\n"
    assert redact_commands(b"AUTH LOGIN\r\n*\r\n") == b"AUTH LOGIN\r\n*\r\n"  # a cancel shows as sent


def test_the_500_to_a_line_that_is_no_command_answers_it(tmp_path: Path) -> None:
    """RFC 5321 §4.2.4: the server answers an unrecognised line with 500. A scanner's TLS hello on port 25
    got a \"server speaks unasked\" anomaly and a finding against the server."""
    session, text = one_session(tmp_path, lambda t: t.handshake().s(b"220 mx ESMTP\r\n").c(b"EHLO a\r\n")
                                .s(b"250 mx\r\n").c(b"\x16\x03\x01\x00\xa5\x01\x00\r\n")
                                .s(b"500 5.5.2 Error: command not recognized\r\n").c(b"\r\n")
                                .s(b"500 5.5.2 Error: bad syntax\r\n").c(b"QUIT\r\n").s(b"221 bye\r\n").fin())
    assert [a["kind"] for a in session["anomalies"]] == ["garbage", "empty-command"]
    assert [r["answers"] for r in session["replies"]] == [None, "EHLO", "", "", "QUIT"]
    assert "the client sends a line that is no command; the server refuses: 500 5.5.2 syntax error" in text
    assert "speaks unasked" not in text
    titles = [f["title"] for f in report_findings(tmp_path)]
    assert any("binary data where commands belong" in t for t in titles)  # the client's junk stays a finding
    assert not any("answer no command" in t for t in titles)


def report_findings(tmp_path: Path) -> list[dict[str, Any]]:
    findings: list[dict[str, Any]] = report(tmp_path / "x.pcap")["findings"]
    return findings


def test_a_junk_line_the_server_lets_pass_does_not_shift_the_replies(tmp_path: Path) -> None:
    session, _ = one_session(tmp_path, lambda t: t.handshake().s(b"220 mx ESMTP\r\n")
                             .c(b"EHLO a\r\n\r\nMAIL FROM:<a@example.org>\r\n")
                             .s(b"250 mx\r\n250 2.1.0 ok\r\n").fin())
    assert [r["answers"] for r in session["replies"]] == [None, "EHLO", "MAIL"]
    assert session["transactions"][0]["reply"] == 250


def test_a_capture_that_begins_inside_a_message(tmp_path: Path) -> None:
    """No SYN, first bytes the tail of a message: skipped like the bytes after a hole (no \"unknown
    command SECOND\"), its end of data answered by the 250, and the next transaction paired right."""
    session, text = one_session(tmp_path, lambda t: t.c(b"second half of body line\r\nmore body\r\n.\r\n")
                                .s(b"250 2.0.0 queued as 4Xb7Yz\r\n").c(b"MAIL FROM:<x@y.example>\r\n")
                                .s(b"250 ok\r\n").c(b"RCPT TO:<z@w.example>\r\n").s(b"250 ok\r\n")
                                .c(b"QUIT\r\n").s(b"221 bye\r\n").fin())
    assert session["anomalies"] == []
    assert [(r["status"], r["answers"]) for r in session["replies"]] == \
        [("250", "."), ("250", "MAIL"), ("250", "RCPT"), ("221", "QUIT")]
    assert [c["verb"] for c in session["commands"]] == ["MAIL", "RCPT", "QUIT"]
    assert "SECOND" not in text
    assert "the capture begins inside a message: this is its end of data" in text
    late, new = session["transactions"]
    assert late["mail_lost"] is True and late["data_reply"] == 250 and late["queue_id"] == "4Xb7Yz"
    assert new["mail_from"] == "x@y.example" and new["mail_lost"] is False


def test_a_capture_begun_inside_a_message_with_the_end_pipelined_with_quit(tmp_path: Path) -> None:
    """The end of data waits for its reply like a command: the 250 is its, the 221 QUIT's."""
    session, _ = one_session(tmp_path, lambda t: t.c(b"tail of the body\r\n.\r\nQUIT\r\n")
                             .s(b"250 2.0.0 queued as XYZ\r\n221 bye\r\n").fin())
    assert session["anomalies"] == []
    assert [(r["status"], r["answers"]) for r in session["replies"]] == [("250", "."), ("221", "QUIT")]


def test_message_lines_that_start_with_a_command_word_are_not_commands(tmp_path: Path) -> None:
    """Skipping the tail of a message, "Data follows", "help me" or "send it tomorrow" are text."""
    session, _ = one_session(tmp_path, lambda t: t.c(b"send it tomorrow\r\nData follows\r\nhelp me\r\n"
                                                     b"Quit smoking\r\n.\r\n")
                             .s(b"250 2.0.0 ok\r\n").c(b"QUIT\r\n").s(b"221 bye\r\n").fin())
    assert [c["verb"] for c in session["commands"]] == ["QUIT"]
    assert [(r["status"], r["answers"]) for r in session["replies"]] == [("250", "."), ("221", "QUIT")]
    assert session["anomalies"] == []


def test_a_junk_line_the_server_ignores_does_not_take_the_next_commands_5xx(tmp_path: Path) -> None:
    """Only a 500 answers a line that is no command; a 502 answers the VRFY after it."""
    session, _ = one_session(tmp_path, lambda t: t.handshake().s(b"220 mx\r\n").c(b"EHLO a\r\n")
                             .s(b"250 mx\r\n").c(b"\r\n").c(b"VRFY bob\r\n").s(b"502 5.5.1 VRFY disabled\r\n")
                             .c(b"MAIL FROM:<a@example.org>\r\n").s(b"250 ok\r\n").c(b"QUIT\r\n")
                             .s(b"221 bye\r\n").fin())
    assert [(r["status"], r["answers"]) for r in session["replies"]] == \
        [("220", None), ("250", "EHLO"), ("502", "VRFY"), ("250", "MAIL"), ("221", "QUIT")]


def test_a_password_without_its_line_end_is_not_quoted(tmp_path: Path) -> None:
    secret = base64.b64encode(b"TopSecret99")
    session, text = one_session(tmp_path, lambda t: t.handshake().s(b"220 mx\r\n").c(b"AUTH LOGIN\r\n")
                                .s(b"334 VXNlcm5hbWU6\r\n").c(b"YWxpY2U=\r\n").s(b"334 UGFzc3dvcmQ6\r\n")
                                .c(secret).fin())
    [anomaly] = [a for a in session["anomalies"] if a["kind"] == "unterminated-line"]
    assert "[SASL response]" in anomaly["detail"]
    assert secret.decode() not in anomaly["detail"] and secret.decode() not in text


def test_a_capture_that_begins_between_data_and_354_keeps_the_message(tmp_path: Path) -> None:
    session, _ = one_session(tmp_path, lambda t: t.s(b"354 go ahead\r\n").c(b"Subject: kept\r\n\r\nhi\r\n.\r\n")
                             .s(b"250 2.0.0 queued\r\n").fin())
    assert session["anomalies"] == []
    [message] = session["messages"]
    assert message["subject"] == "kept" and message["complete"] is True
    assert session["transactions"][0]["mail_lost"] is True and session["transactions"][0]["data_reply"] == 250


def test_auth_latency_counts_from_the_client_s_last_line(tmp_path: Path) -> None:
    """A user typing the password is no slow server: the 235 answers the last SASL line."""
    def auth(t: Tcp) -> None:
        t.handshake().s(b"220 mx\r\n").c(b"EHLO a\r\n").s(b"250-mx\r\n250 AUTH LOGIN\r\n").c(b"AUTH LOGIN\r\n") \
            .s(b"334 VXNlcm5hbWU6\r\n")
        t.ts += 5.0
        t.c(b"YWxpY2U=\r\n").s(b"334 UGFzc3dvcmQ6\r\n")
        t.ts += 5.0
        t.c(b"c2VjcmV0\r\n").s(b"235 2.7.0 ok\r\n").fin()

    session, text = one_session(tmp_path, auth)
    latencies = [r["latency"] for r in session["replies"] if r["answers"] == "AUTH"]
    assert len(latencies) == 3 and max(latencies) < 0.01, latencies
    assert "(after" not in text
