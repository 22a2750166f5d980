"""Review 3: cancelled AUTH is no failed login, IMAP LOGIN with literals, STARTTLS masked on the path
(``XXXXXXXA``), the once-per-pair wording of starttls-not-used, and short live idle timeouts."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from live_helpers import Conversation, smtp_session
from pcapgen import Capture, Tcp
from support import report

from mailtrace.commands.common import build_config
from mailtrace.commands.live import live_config
from mailtrace.findings.facts import masked_starttls
from mailtrace.pipeline import Analyzer
from mailtrace.render.json import session_json
from mailtrace.tcp.flows import FlowLimits

T0 = 1_700_000_000.0
GREETING = b"220 mx.example.org ESMTP\r\n"
EHLO = b"EHLO client.example.com\r\n"


def conversation(cap: Capture, n: int, lines: list[tuple[str, bytes]], *, client: str = "10.5.0.2",
                 server: tuple[str, int] = ("10.5.0.9", 25)) -> None:
    conv = Tcp(cap, client=(client, 40000 + n), server=server, ts=T0 + 10 * n).handshake()
    for who, data in lines:
        (conv.c if who == "c" else conv.s)(data)
    conv.fin()


def findings(doc: dict[str, Any], id_: str) -> list[dict[str, Any]]:
    return [f for f in doc["findings"] if f["id"] == id_]


def cancelled_plain(ehlo_reply: bytes = b"250-mx.example.org\r\n250 AUTH PLAIN LOGIN\r\n") -> list[tuple[str, bytes]]:
    return [("s", GREETING), ("c", EHLO), ("s", ehlo_reply), ("c", b"AUTH PLAIN\r\n"), ("s", b"334 \r\n"),
            ("c", b"*\r\n"), ("s", b"501 5.7.0 Authentication aborted\r\n"), ("c", b"QUIT\r\n"),
            ("s", b"221 bye\r\n")]


def failed_plain(user: bytes, password: bytes) -> list[tuple[str, bytes]]:
    token = base64.b64encode(b"\0" + user + b"\0" + password)
    return [("s", GREETING), ("c", EHLO), ("s", b"250-mx.example.org\r\n250 AUTH PLAIN LOGIN\r\n"),
            ("c", b"AUTH PLAIN " + token + b"\r\n"), ("s", b"535 5.7.8 Authentication failed\r\n"),
            ("c", b"QUIT\r\n"), ("s", b"221 bye\r\n")]


# --------------------------------------------------------------------------- 1. AUTH cancelled with "*"


def test_cancelled_auth_exchanges_are_no_failed_logins(tmp_path: Path) -> None:
    cap = Capture()
    for n in range(6):
        conversation(cap, n, cancelled_plain())
    doc = report(cap.write(tmp_path / "cancel.pcap"))
    auth = [a for s in doc["sessions"] for a in s["auth"]]
    assert len(auth) == 6 and all(a["cancelled"] == "yes" and a["success"] is False for a in auth)
    assert findings(doc, "auth-bruteforce") == []  # was: MEDIUM "6 failed logins for ?"
    assert findings(doc, "cleartext-credentials") == []


def test_cancelled_exchanges_do_not_fill_up_the_failed_login_threshold(tmp_path: Path) -> None:
    cap = Capture()
    for n in range(4):
        conversation(cap, n, failed_plain(b"alice", b"guess%d" % n))
    for n in range(4, 6):
        conversation(cap, n, cancelled_plain())
    path = cap.write(tmp_path / "mixed.pcap")
    assert findings(report(path), "auth-bruteforce") == []  # 4 failures < 5; the 2 cancelled do not count
    conversation(cap, 6, failed_plain(b"alice", b"guess6"))
    [brute] = findings(report(cap.write(tmp_path / "five.pcap")), "auth-bruteforce")
    assert brute["title"] == "Brute force from 10.5.0.2: 5 failed logins"
    assert brute["detail"].startswith("5 failed logins for alice in 60 s (sessions 1, 2, 3, 4, 7).")


def test_auth_login_cancelled_after_the_user_name_is_no_cleartext_password(tmp_path: Path) -> None:
    cap = Capture()
    conversation(cap, 0, [
        ("s", GREETING), ("c", EHLO), ("s", b"250-mx.example.org\r\n250-STARTTLS\r\n250 AUTH LOGIN\r\n"),
        ("c", b"AUTH LOGIN\r\n"), ("s", b"334 VXNlcm5hbWU6\r\n"), ("c", base64.b64encode(b"alice") + b"\r\n"),
        ("s", b"334 UGFzc3dvcmQ6\r\n"), ("c", b"*\r\n"), ("s", b"501 5.7.0 Authentication aborted\r\n"),
        ("c", b"VRFY alice\r\n"), ("s", b"252 maybe\r\n"), ("c", b"QUIT\r\n"), ("s", b"221 bye\r\n"),
    ])
    doc = report(cap.write(tmp_path / "login.pcap"))
    [attempt] = doc["sessions"][0]["auth"]
    assert (attempt["username"], attempt["cancelled"]) == ("alice", "yes")
    assert findings(doc, "cleartext-credentials") == []  # no password crossed the wire
    [not_used] = findings(doc, "starttls-not-used")  # no login was carried: low, and it says none
    assert not_used["severity"] == "low"
    assert "carried" not in not_used["detail"].split(";")[0]


# --------------------------------------------------------------------------- 2. IMAP LOGIN with literals


def imap_login(cap: Capture, n: int, login: list[tuple[str, bytes]]) -> None:
    conversation(cap, n, [("s", b"* OK IMAP4rev1 ready\r\n"), *login, ("c", b"a2 LOGOUT\r\n"),
                          ("s", b"* BYE\r\na2 OK bye\r\n")], client="10.6.0.1", server=("10.6.0.9", 143))


def test_imap_login_with_literals_is_named_login(tmp_path: Path) -> None:
    cap = Capture()
    imap_login(cap, 0, [("c", b"a1 LOGIN {4}\r\n"), ("s", b"+ go ahead\r\n"), ("c", b"user {4}\r\n"),
                        ("s", b"+ go ahead\r\n"), ("c", b"pass\r\n"), ("s", b"a1 OK logged in\r\n")])
    imap_login(cap, 1, [("c", b"a1 LOGIN user pass\r\n"), ("s", b"a1 OK logged in\r\n")])
    doc = report(cap.write(tmp_path / "imap.pcap"))
    [literal, plain] = [s["auth"][0] for s in doc["sessions"]]
    # the dissector records the literal LOGIN at the frame of its last line; the attempt at its first
    [command] = [c for c in doc["sessions"][0]["commands"] if c["verb"] == "LOGIN"]
    assert literal["first_frame"] < command["frame"]
    assert literal["mechanism"] == plain["mechanism"] == "LOGIN"
    details = [f["detail"] for f in findings(doc, "cleartext-credentials")]
    assert [d.split(" over ")[0] for d in details] == ["Login with LOGIN", "Login with LOGIN"]


def test_imap_authenticate_is_named_authenticate(tmp_path: Path) -> None:
    cap = Capture()
    token = base64.b64encode(b"\0user\0pass")
    imap_login(cap, 0, [("c", b"a1 AUTHENTICATE PLAIN\r\n"), ("s", b"+ \r\n"), ("c", token + b"\r\n"),
                        ("s", b"a1 OK logged in\r\n")])
    imap_login(cap, 1, [("c", b"a1 AUTHENTICATE LOGIN\r\n"), ("s", b"+ VXNlcm5hbWU6\r\n"),
                        ("c", base64.b64encode(b"user") + b"\r\n"), ("s", b"+ UGFzc3dvcmQ6\r\n"),
                        ("c", base64.b64encode(b"pass") + b"\r\n"), ("s", b"a1 OK logged in\r\n")])
    doc = report(cap.write(tmp_path / "imap-sasl.pcap"))
    details = [f["detail"] for f in findings(doc, "cleartext-credentials")]
    assert [d.split(" over ")[0] for d in details] == ["Login with AUTHENTICATE PLAIN",
                                                        "Login with AUTHENTICATE LOGIN"]


# --------------------------------------------------------------------------- 3. STARTTLS masked on the path


@pytest.mark.parametrize("keyword", ["XXXXXXXA", "XXXXA", "STARTTLX", "XXXRTTLS", "starttlz"])
def test_masked_starttls_keywords(keyword: str) -> None:
    assert masked_starttls(keyword)


@pytest.mark.parametrize("keyword", ["STARTTLS", "XXXXXXXB", "CHUNKING", "8BITMIME", "SMTPUTF8", "XFORWARD",
                                     "PIPELINING", "XXXX", "AUTH", "SIZE",
                                     "XXXXXXXX"])  # all masked: could be CHUNKING, SMTPUTF8, 8BITMIME
def test_other_keywords_are_not_masked_starttls(keyword: str) -> None:
    assert not masked_starttls(keyword)


def test_starttls_masked_before_a_cleartext_login_is_high(tmp_path: Path) -> None:
    cap = Capture()
    token = base64.b64encode(b"\0alice\0secret")
    conversation(cap, 0, [
        ("s", GREETING), ("c", EHLO), ("s", b"250-mx.example.org\r\n250-XXXXXXXA\r\n250 AUTH PLAIN\r\n"),
        ("c", b"AUTH PLAIN " + token + b"\r\n"), ("s", b"235 2.7.0 ok\r\n"), ("c", b"QUIT\r\n"),
        ("s", b"221 bye\r\n"),
    ], client="10.4.0.2", server=("10.4.0.9", 25))
    doc = report(cap.write(tmp_path / "stripped.pcap"))
    [stripped] = findings(doc, "starttls-stripped")
    ehlo_reply, auth = doc["sessions"][0]["replies"][1], doc["sessions"][0]["commands"][1]
    assert (stripped["severity"], stripped["session"]) == ("high", 1)
    assert stripped["frames"] == [ehlo_reply["frame"], auth["frame"]]
    assert stripped["title"] == "STARTTLS of 10.4.0.9:25 masked on the path to 10.4.0.2; a login followed in cleartext"
    assert '"XXXXXXXA" where the STARTTLS keyword belongs' in stripped["detail"]
    assert "Cisco ASA" in stripped["detail"] and "STRIPTLS" in stripped["detail"]
    assert stripped["reference"] == "RFC 3207 §6; RFC 8461; RFC 7672"
    [before] = findings(doc, "auth-before-tls")
    assert "does not offer STARTTLS at all" not in before["detail"]
    assert "its STARTTLS arrived masked as XXXXXXXA" in before["detail"]
    assert findings(doc, "starttls-not-used") == []


def test_starttls_masked_without_a_login_is_medium(tmp_path: Path) -> None:
    cap = Capture()
    conversation(cap, 0, [
        ("s", GREETING), ("c", EHLO), ("s", b"250-mx.example.org\r\n250-STARTTLX\r\n250 8BITMIME\r\n"),
        ("c", b"MAIL FROM:<a@example.com>\r\n"), ("s", b"250 ok\r\n"), ("c", b"RCPT TO:<b@example.org>\r\n"),
        ("s", b"250 ok\r\n"), ("c", b"DATA\r\n"), ("s", b"354 go\r\n"),
        ("c", b"Subject: hi\r\n\r\nbody\r\n.\r\n"), ("s", b"250 queued\r\n"), ("c", b"QUIT\r\n"),
        ("s", b"221 bye\r\n"),
    ])
    doc = report(cap.write(tmp_path / "stripped2.pcap"))
    [stripped] = findings(doc, "starttls-stripped")
    assert stripped["severity"] == "medium"
    assert stripped["title"] == "STARTTLS of 10.5.0.9:25 masked on the path to 10.5.0.2"
    assert "stayed in cleartext and sent 1 message" in stripped["detail"]


def test_a_real_starttls_next_to_a_masked_keyword_is_not_stripping(tmp_path: Path) -> None:
    cap = Capture()
    conversation(cap, 0, [
        ("s", GREETING), ("c", EHLO), ("s", b"250-mx.example.org\r\n250-XXXXXXXB\r\n250 STARTTLS\r\n"),
        ("c", b"QUIT\r\n"), ("s", b"221 bye\r\n"),
    ])
    assert findings(report(cap.write(tmp_path / "chunking.pcap")), "starttls-stripped") == []


# --------------------------------------------------------------------------- 4. starttls-not-used wording


def test_starttls_not_used_says_it_is_reported_once_per_severity(tmp_path: Path) -> None:
    offer = b"250-mx.example.org\r\n250 STARTTLS\r\n"
    cap = Capture()
    conversation(cap, 0, [("s", GREETING), ("c", EHLO), ("s", offer), ("c", b"VRFY bob\r\n"),
                          ("s", b"252 maybe\r\n"), ("c", b"QUIT\r\n"), ("s", b"221 bye\r\n")])
    conversation(cap, 1, [("s", GREETING), ("c", EHLO), ("s", offer), ("c", b"MAIL FROM:<a@example.com>\r\n"),
                          ("s", b"250 ok\r\n"), ("c", b"RCPT TO:<b@example.org>\r\n"), ("s", b"250 ok\r\n"),
                          ("c", b"DATA\r\n"), ("s", b"354 go\r\n"), ("c", b"Subject: x\r\n\r\nbody\r\n.\r\n"),
                          ("s", b"250 queued\r\n"), ("c", b"QUIT\r\n"), ("s", b"221 bye\r\n")])
    conversation(cap, 2, [("s", GREETING), ("c", EHLO), ("s", offer), ("c", b"VRFY carol\r\n"),
                          ("s", b"252 maybe\r\n"), ("c", b"QUIT\r\n"), ("s", b"221 bye\r\n")])
    doc = report(cap.write(tmp_path / "notused.pcap"))
    found = {f["severity"]: f for f in findings(doc, "starttls-not-used")}
    assert sorted(found) == ["low", "medium"] and (found["low"]["session"], found["medium"]["session"]) == (1, 2)
    assert found["low"]["detail"].endswith(
        "(reported once per client and server for sessions without logins or messages; a session that carries "
        "them gets its own finding, as medium).")
    assert found["medium"]["detail"].endswith(
        "(reported once per client and server for sessions that carried logins or messages; a session without "
        "them gets its own finding, as low).")


# --------------------------------------------------------------------------- 5. short live idle timeouts


def live_analyzer(idle_timeout: float | None) -> Analyzer:
    analyzer = Analyzer(live_config(build_config(), idle_timeout), reorder=False)
    analyzer.start_source("live")
    return analyzer


@pytest.mark.parametrize("timeout", [1.0, 3.0, 12.0])
def test_live_idle_timeout_under_30_s_ends_the_session_in_time(timeout: float) -> None:
    clock = [T0]
    analyzer = live_analyzer(timeout)
    out = []
    for frame in smtp_session(Conversation(("10.0.0.3", 40003), ("10.0.0.2", 25), clock), finish=False):
        out += analyzer.feed(*frame)
    last = clock[0]
    now = last
    while now < last + timeout - 0.25:  # ticks every quarter second, as the live source gives them
        now += 0.25
        out += analyzer.tick(now)
    assert out == []  # not before the timeout
    ended_at = None
    while ended_at is None and now < last + 60:
        now += 0.25
        done = analyzer.tick(now)
        if done:
            ended_at = now
            [session] = done
            assert session_json(session)["close"] == "timeout"
    assert ended_at is not None and ended_at - last <= timeout + max(1.0, timeout / 10) + 0.25


def test_idle_check_interval() -> None:
    assert FlowLimits().idle_check_every == 30.0  # file analysis: the timing it always had
    assert [FlowLimits(idle_timeout=t).idle_check_every for t in (1, 5, 12, 100, 300, 3600)] == [
        1.0, 1.0, 1.2, 10.0, 30.0, 30.0]


def test_file_captures_keep_the_packet_guard_of_idle_timeouts() -> None:
    """idle_min_packets: in a file, one bogus timestamp far ahead ends no open session by itself."""
    clock = [T0]
    config = build_config()
    analyzer = Analyzer(config, reorder=False)
    analyzer.start_source("file-like")
    out = []
    for frame in smtp_session(Conversation(("10.0.0.3", 40003), ("10.0.0.2", 25), clock), finish=False):
        out += analyzer.feed(*frame)
    clock[0] += 10_000  # one packet of another conversation, far in the future
    for frame in smtp_session(Conversation(("10.0.0.4", 40004), ("10.0.0.2", 25), clock), finish=False)[:1]:
        out += analyzer.feed(*frame)
    assert out == []
    closes = sorted(session_json(s)["close"] for s in analyzer.close_source())
    assert closes == ["open", "open"]
