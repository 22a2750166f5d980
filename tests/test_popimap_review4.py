"""POP3/IMAP cases a code review of the mid-session work found: a capture that begins inside an
authentication exchange, message text that reads like a tagged completion, AUTH latency."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from tests.pcapgen import Capture, Tcp
from tests.support import report, run_cli

SECRET = base64.b64encode(b"\0alice\0TopSecret99")


def one_session(tmp_path: Path, port: int, build: Any) -> tuple[dict[str, Any], str]:
    cap = Capture()
    build(Tcp(cap, client=("10.0.0.1", 40000), server=("10.0.0.2", port)))
    path = cap.write(tmp_path / "x.pcap")
    [session] = report(path)["sessions"]
    return session, run_cli("analyze", "--no-explain", str(path)).stdout


def test_pop3_capture_begun_inside_an_auth_exchange_hides_the_response(tmp_path: Path) -> None:
    session, text = one_session(tmp_path, 110, lambda t: t.c(SECRET + b"\r\n").s(b"+OK Logged in.\r\n")
                                .c(b"STAT\r\n").s(b"+OK 1 100\r\n").c(b"QUIT\r\n").s(b"+OK bye\r\n").fin())
    assert SECRET.decode() not in str(session) and SECRET.decode() not in text
    assert session["anomalies"] == [] and session["pop3"]["greeting"] is None
    assert [c["verb"] for c in session["commands"]] == ["STAT", "QUIT"]
    assert "+OK answers client lines the capture begins inside" in text
    assert "ready to talk" not in text


def test_imap_capture_begun_inside_an_auth_exchange_hides_the_response(tmp_path: Path) -> None:
    session, text = one_session(tmp_path, 143, lambda t: t.c(SECRET + b"\r\n").s(b"a1 OK Logged in\r\n")
                                .c(b"a2 SELECT INBOX\r\n").s(b"* 1 EXISTS\r\na2 OK done\r\n")
                                .c(b"a3 LOGOUT\r\n").s(b"* BYE\r\na3 OK bye\r\n").fin())
    assert SECRET.decode() not in str(session) and SECRET.decode() not in text
    assert session["anomalies"] == []
    assert "refuses to talk" not in text and "speaks unasked" not in text
    assert "tagged OK for a1: it answers a command sent before the capture began" in text


def test_imap_message_text_that_reads_like_a_completion_does_not_end_the_skipped_tail(tmp_path: Path) -> None:
    session, _ = one_session(tmp_path, 143, lambda t: t.s(b"Sounds OK to me.\r\nsee you\r\n)\r\na4 OK Fetch done\r\n")
                             .c(b"a5 LOGOUT\r\n").s(b"* BYE\r\na5 OK bye\r\n").fin())
    assert session["anomalies"] == []
    assert [(r["status"], r.get("tag")) for r in session["replies"]][-1] == ("OK", "a5")


def auth_with_pauses(t: Tcp, command: bytes, challenge: bytes, ok: bytes) -> None:
    t.handshake().s(b"+OK ready\r\n" if challenge == b"+ \r\n" and ok.startswith(b"+OK") else b"* OK ready\r\n")
    t.c(command).s(challenge)
    t.ts += 5.0
    t.c(SECRET + b"\r\n").s(ok).fin()


def test_auth_latency_counts_from_the_client_s_sasl_line(tmp_path: Path) -> None:
    pop, _ = one_session(tmp_path, 110, lambda t: auth_with_pauses(t, b"AUTH PLAIN\r\n", b"+ \r\n",
                                                                   b"+OK logged in\r\n"))
    [ok] = [r for r in pop["replies"] if r["answers"] == "AUTH" and r["status"] == "+OK"]
    assert ok["latency"] < 0.01
    imap, _ = one_session(tmp_path, 143, lambda t: auth_with_pauses(t, b"a1 AUTHENTICATE PLAIN\r\n", b"+ \r\n",
                                                                    b"a1 OK logged in\r\n"))
    [done] = [r for r in imap["replies"] if r.get("tag") == "a1"]
    assert done["latency"] < 0.01
