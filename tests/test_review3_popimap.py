"""Review 3, POP3/IMAP part: injected secrets redacted, captures that begin inside a response, CLOSE
after EXAMINE, end of data pipelined with QUIT, IDLE latency, a cancelled AUTH/AUTHENTICATE."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mailtrace.capture.reader import open_capture
from mailtrace.commands.common import build_config
from mailtrace.model import CLIENT, SERVER, Chunk
from mailtrace.pipeline import Analyzer
from mailtrace.protocols import imap, pop3
from mailtrace.protocols.base import DissectorLimits
from mailtrace.render.captions import steps
from mailtrace.session import Session
from tests.pcapgen import Capture, Tcp
from tests.support import report, run_cli

Script = list[tuple[str, bytes]]


def write(tmp_path: Path, port: int, script: Script, *, syn: bool = True, name: str = "c.pcap",
          pauses: dict[int, float] | None = None) -> Path:
    """One TCP connection; ``syn=False`` leaves out the handshake (the capture begins mid-session);
    ``pauses`` adds seconds before the script line of that index."""
    cap = Capture()
    conv = Tcp(cap, server=("10.0.0.2", port))
    if syn:
        conv.handshake()
    for i, (who, data) in enumerate(script):
        conv.ts += (pauses or {}).get(i, 0.0)
        (conv.c if who == "c" else conv.s)(data)
    conv.fin()
    return cap.write(tmp_path / name)


def session_of(path: Path) -> Session:
    [session] = list(Analyzer(build_config()).run([open_capture(str(path))]))
    return session


def json_session(path: Path, *args: str) -> dict[str, Any]:
    [session] = report(path, args=args)["sessions"]
    return session


def captions(session: Session, lang: str = "en") -> list[tuple[str, str]]:
    """(key, caption) of the steps that are not TCP setup and teardown."""
    return [(s.key, s.caption) for s in steps(session, lang=lang) if s.key not in ("setup", "tcp.fin")]


def kinds(session: dict[str, Any]) -> list[str]:
    return [a["kind"] for a in session["anomalies"]]


# --------------------------------------------------------------------------- 1. starttls-injection redacted

POP3_INJECTION: Script = [
    ("s", b"+OK POP3 ready\r\n"), ("c", b"CAPA\r\n"), ("s", b"+OK\r\nSTLS\r\nUSER\r\n.\r\n"),
    ("c", b"STLS\r\nUSER alice\r\nPASS TopSecret99\r\n"), ("s", b"+OK begin TLS\r\n"),
]
IMAP_INJECTION: Script = [
    ("s", b"* OK IMAP ready\r\n"),
    ("c", b"a1 STARTTLS\r\na2 LOGIN alice {11}\r\nTopSecret99\r\na3 SELECT INBOX\r\n"),
    ("s", b"a1 OK begin TLS\r\n"),
]


def test_pop3_injected_password_is_redacted_in_json_and_text(tmp_path: Path) -> None:
    path = write(tmp_path, 110, POP3_INJECTION)
    session = json_session(path)
    [injection] = [a for a in session["anomalies"] if a["kind"] == "starttls-injection"]
    assert injection["detail"] == (
        "30 bytes of plaintext sent after STLS before the server's +OK (USER alice\\x0d\\x0aPASS [password]"
        "\\x0d\\x0a): a server that buffers them executes them inside TLS (CVE-2011-0411 class)")
    whole = run_cli("analyze", "--format", "json", str(path)).stdout
    text = run_cli("analyze", "--no-color", str(path)).stdout
    assert "TopSecret99" not in whole and "TopSecret99" not in text
    assert "PASS [password]" in text


def test_pop3_injected_password_shown_with_show_secrets(tmp_path: Path) -> None:
    session = json_session(write(tmp_path, 110, POP3_INJECTION), "--show-secrets")
    [injection] = [a for a in session["anomalies"] if a["kind"] == "starttls-injection"]
    assert "PASS TopSecret99\\x0d\\x0a" in injection["detail"]


def test_imap_injected_login_literal_is_redacted(tmp_path: Path) -> None:
    path = write(tmp_path, 143, IMAP_INJECTION)
    session = json_session(path)
    [injection] = [a for a in session["anomalies"] if a["kind"] == "starttls-injection"]
    assert injection["detail"].startswith(
        "51 bytes of plaintext sent after STARTTLS before the server's OK (a2 LOGIN alice [password]"
        "\\x0d\\x0aa3 SELECT INBOX\\x0d\\x0a)")
    assert "TopSecret99" not in run_cli("analyze", "--no-color", str(path)).stdout
    shown = json_session(path, "--show-secrets")
    assert any("TopSecret99" in a["detail"] for a in shown["anomalies"])


def test_pop3_redaction_of_every_credential_command() -> None:
    data = (b"USER bob\r\nPASS s3cret\r\nAPOP bob c4c9334bac560ecc979e58001b3e22fb\r\nAUTH PLAIN AGJvYgBzM2NyZXQ=\r\n"
            b"AUTH LOGIN\r\nYm9i\r\nczNjcmV0\r\n*\r\nAUTH PLAIN =\r\nSTAT\r\n")
    assert pop3.redact_commands(data) == (
        b"USER bob\r\nPASS [password]\r\nAPOP bob [digest]\r\nAUTH PLAIN [initial response]\r\n"
        b"AUTH LOGIN\r\n[SASL response]\r\n[SASL response]\r\n*\r\nAUTH PLAIN\r\nSTAT\r\n")


def test_imap_redaction_of_every_credential_command() -> None:
    data = (b"a1 LOGIN bob s3cret\r\na2 LOGIN \"bob\" {6}\r\ns3cret\r\na3 AUTHENTICATE PLAIN AGJvYgBzM2NyZXQ=\r\n"
            b"a4 AUTHENTICATE LOGIN\r\nYm9i\r\nczNjcmV0\r\na5 NOOP\r\na6 LOGIN bob {100}\r\ns3c")
    assert imap.redact_commands(data) == (
        b"a1 LOGIN bob [password]\r\na2 LOGIN \"bob\" [password]\r\na3 AUTHENTICATE PLAIN [initial response]\r\n"
        b"a4 AUTHENTICATE LOGIN\r\n[SASL response]\r\n[SASL response]\r\na5 NOOP\r\na6 LOGIN bob [password]")


def test_imap_injected_authenticate_redacted_by_the_dissector() -> None:
    diss = imap.Imap(DissectorLimits())
    diss.feed(Chunk(SERVER, b"* OK ready\r\n", 1.0, 1))
    diss.feed(Chunk(CLIENT, b"a1 STARTTLS\r\na2 AUTHENTICATE PLAIN AGFsaWNlAFRvcFNlY3JldDk5\r\n", 2.0, 2))
    events = diss.feed(Chunk(SERVER, b"a1 OK go\r\n", 3.0, 3))
    [detail] = [e.detail for e in events if getattr(e, "kind", "") == "starttls-injection"]
    assert "a2 AUTHENTICATE PLAIN [initial response]" in detail and "AGFsaWNl" not in detail


# --------------------------------------------------------------------------- 2. capture begins inside a response

POP3_TAIL: Script = [
    ("s", b"regards,\r\n-ERR was the reply we got\r\nBob\r\n.\r\n"),
    ("c", b"DELE 1\r\n"), ("s", b"+OK marked\r\n"),
    ("c", b"RETR 2\r\n"), ("s", b"+OK 30 octets\r\nSubject: two\r\n\r\nbody two\r\n.\r\n"),
    ("c", b"QUIT\r\n"), ("s", b"+OK bye\r\n"),
]


def test_pop3_tail_of_a_response_is_skipped_without_anomalies(tmp_path: Path) -> None:
    path = write(tmp_path, 110, POP3_TAIL, syn=False)
    session = json_session(path)
    assert kinds(session) == []
    block = session["pop3"]
    assert block["greeting"] is None
    assert block["state"] == "UPDATE"
    assert block["marked_deleted"] == [1] and block["deleted"] == [1]
    assert block["retrieved"] == [2]
    text = run_cli("analyze", "--no-color", "--no-explain", str(path)).stdout
    assert "nothing is deleted" not in text and "refuses" not in text
    assert "message 1, marked with DELE, is deleted" in text
    assert text.count("the capture begins inside a server response whose command it does not show") == 2  # caption+row
    assert "Findings" not in text or "malformed responses" not in text


def test_pop3_tail_ends_at_its_final_dot(tmp_path: Path) -> None:
    """A one-sided capture (server only): after the tail's '.', status lines are read again."""
    session = json_session(write(tmp_path, 110, [("s", b"regards,\r\n-ERR quoted\r\n.\r\n+OK 2 messages\r\n")],
                                 syn=False))
    assert kinds(session) == []
    assert session["pop3"]["greeting"] is None
    assert [(r["status"], r["text"], r["answers"]) for r in session["replies"]] == [("+OK", "2 messages", None)]


def test_pop3_tail_lines_with_a_handshake_are_still_violations(tmp_path: Path) -> None:
    """With the SYN in the capture, lines before the greeting are the server's fault."""
    session = json_session(write(tmp_path, 110, [("s", b"garbage line\r\n+OK POP3 ready\r\n"),
                                                 ("c", b"QUIT\r\n"), ("s", b"+OK bye\r\n")]))
    assert "invalid-response" in kinds(session)


def test_pop3_dele_ok_proves_transaction_without_syn(tmp_path: Path) -> None:
    """No SYN, a line read as the greeting: DELE +OK still proves TRANSACTION (RFC 1939), so QUIT deletes."""
    session = json_session(write(tmp_path, 110, [
        ("s", b"+OK POP3 server ready\r\n"), ("c", b"DELE 3\r\n"), ("s", b"+OK message 3 deleted\r\n"),
        ("c", b"QUIT\r\n"), ("s", b"+OK bye\r\n")], syn=False))
    block = session["pop3"]
    assert block["state"] == "UPDATE" and block["deleted"] == [3]
    assert [s["trigger"] for s in block["states"]][-2:] == [
        "inferred from DELE +OK: the capture has no login", "QUIT +OK"]


IMAP_TAIL: Script = [
    ("s", b"regards,\r\n* BYE looks like a bye\r\nfoo {5}\r\n)\r\na5 OK FETCH completed\r\n"),
    ("c", b"a6 FETCH 2 (FLAGS)\r\n"), ("s", b"* 2 FETCH (FLAGS (\\Seen))\r\na6 OK done\r\n"),
    ("c", b"a7 LOGOUT\r\n"), ("s", b"* BYE bye\r\na7 OK LOGOUT completed\r\n"),
]


def test_imap_tail_of_a_literal_is_skipped_without_anomalies(tmp_path: Path) -> None:
    path = write(tmp_path, 143, IMAP_TAIL, syn=False)
    session = json_session(path)
    assert kinds(session) == []
    block = session["imap"]
    assert block["greeting"] is None
    assert [(s["state"], s["trigger"]) for s in block["states"]] == [
        ("selected", "inferred from FETCH: the capture has no greeting"), ("logout", "BYE")]
    found = captions(session_of(path))
    assert found[0] == ("note", "the capture begins inside a server response whose command it does not show: "
                                "its lines up to the client's first command are skipped")
    assert found[1][1].endswith("the client fetches FLAGS of message 2 (FETCH)")
    assert [c[0] for c in found] == ["note", "note", "imap.logout.ok"]


def test_imap_tail_ends_at_the_tagged_completion(tmp_path: Path) -> None:
    """A one-sided capture (server only): after the completion of the unseen command, responses are read."""
    session = json_session(write(tmp_path, 143, [("s", b"regards,\r\n* BYE no\r\n)\r\na5 OK done\r\n* 3 EXISTS\r\n")],
                                 syn=False))
    assert kinds(session) == []
    assert session["imap"]["greeting"] is None and session["imap"]["state"] == "connected"
    assert [r["status"] for r in session["replies"]] == ["*"]


def test_imap_tagged_completion_first_without_syn_is_no_unknown_tag(tmp_path: Path) -> None:
    session = json_session(write(tmp_path, 143, [
        ("s", b"a5 OK FETCH completed\r\n"), ("c", b"a6 NOOP\r\n"), ("s", b"a6 OK done\r\n")], syn=False))
    assert "unknown-tag" not in kinds(session)


# --------------------------------------------------------------------------- 3. CLOSE after a read-only select

def _close_after(tmp_path: Path, select: bytes, answer: bytes) -> list[tuple[str, str]]:
    return captions(session_of(write(tmp_path, 143, [
        ("s", b"* OK ready\r\n"), ("c", b"c1 LOGIN bob pw\r\n"), ("s", b"c1 OK hi\r\n"),
        ("c", select), ("s", b"* 3 EXISTS\r\n" + answer),
        ("c", b"c3 CLOSE\r\n"), ("s", b"c3 OK closed\r\n"), ("c", b"c4 LOGOUT\r\n"), ("s", b"* BYE\r\nc4 OK\r\n")])))


def test_close_after_examine_removes_nothing(tmp_path: Path) -> None:
    found = _close_after(tmp_path, b"c2 EXAMINE INBOX\r\n", b"c2 OK [READ-ONLY] done\r\n")
    assert ("imap.close.readonly", "the client closes the mailbox, opened read-only: nothing is deleted (CLOSE) "
            "→ Authenticated state") in found


def test_close_after_select_answered_read_only(tmp_path: Path) -> None:
    found = _close_after(tmp_path, b"c2 SELECT INBOX\r\n", b"c2 OK [READ-ONLY] done\r\n")
    assert next(c for c in found if "CLOSE" in c[1])[0] == "imap.close.readonly"


def test_close_after_read_write_select_still_expunges(tmp_path: Path) -> None:
    found = _close_after(tmp_path, b"c2 SELECT INBOX\r\n", b"c2 OK [READ-WRITE] done\r\n")
    assert ("imap.close", "the client closes the mailbox; messages marked for deletion are removed (CLOSE) "
            "→ Authenticated state") in found


# --------------------------------------------------------------------------- 4. end of data pipelined with QUIT

BODY = b"Subject: pipelined2\r\n\r\nbody\r\n"
SMTP_OPEN: Script = [
    ("s", b"220 mx ESMTP\r\n"), ("c", b"EHLO c\r\n"), ("s", b"250-mx\r\n250 PIPELINING\r\n"),
    ("c", b"MAIL FROM:<a@x.example>\r\nRCPT TO:<b@mx.example>\r\nDATA\r\n"), ("s", b"250 ok\r\n250 ok\r\n354 go\r\n"),
]
IN_ORDER = ("smtp.body", "message transferred; message accepted for delivery (250); positive end of the session "
                         "(QUIT / 221)")


def test_dot_pipelined_with_quit_reads_in_protocol_order(tmp_path: Path) -> None:
    found = captions(session_of(write(tmp_path, 25, [
        *SMTP_OPEN, ("c", BODY + b".\r\nQUIT\r\n"), ("s", b"250 queued\r\n221 bye\r\n")])))
    assert found[-1] == IN_ORDER
    assert len(found) == 4


def test_dot_pipelined_with_quit_in_a_later_segment_and_split_replies(tmp_path: Path) -> None:
    found = captions(session_of(write(tmp_path, 25, [
        *SMTP_OPEN, ("c", BODY), ("c", b".\r\nQUIT\r\n"), ("s", b"250 queued\r\n"), ("s", b"221 bye\r\n")])))
    assert found[-1] == IN_ORDER


def test_dot_pipelined_with_quit_in_german(tmp_path: Path) -> None:
    session = session_of(write(tmp_path, 25, [
        *SMTP_OPEN, ("c", BODY + b".\r\nQUIT\r\n"), ("s", b"250 queued\r\n221 bye\r\n")]))
    last = captions(session, "de")[-1][1]
    parts = last.split("; ")
    assert len(parts) == 3 and "250" in parts[1] and "QUIT" in parts[2]


def test_dot_then_separate_quit_is_unchanged(tmp_path: Path) -> None:
    found = captions(session_of(write(tmp_path, 25, [
        *SMTP_OPEN, ("c", BODY + b".\r\n"), ("s", b"250 queued\r\n"), ("c", b"QUIT\r\n"), ("s", b"221 bye\r\n")])))
    assert [k for k, _ in found[-3:]] == ["smtp.body", "smtp.dot.ok", "smtp.quit.ok"]


# --------------------------------------------------------------------------- 5. IDLE latency

IDLE: Script = [
    ("s", b"* OK ready\r\n"), ("c", b"a1 LOGIN bob pw\r\n"), ("s", b"a1 OK hi\r\n"),
    ("c", b"a2 SELECT INBOX\r\n"), ("s", b"* 1 EXISTS\r\na2 OK [READ-WRITE] done\r\n"),
    ("c", b"a3 IDLE\r\n"), ("s", b"+ idling\r\n"), ("c", b"DONE\r\n"), ("s", b"a3 OK Idle completed\r\n"),
]


def test_idle_latency_is_not_the_idling_time(tmp_path: Path) -> None:
    path = write(tmp_path, 143, IDLE, pauses={7: 3.0})
    data = report(path)
    [session] = data["sessions"]
    idle = [r for r in session["replies"] if r.get("answers") == "IDLE"]
    assert [r["status"] for r in idle] == ["+", "OK"]
    assert 0 <= idle[0]["latency"] < 0.01
    assert idle[1]["latency"] is None
    assert "IDLE" not in data["stats"]["latency"]["imap"]
    assert "SELECT" in data["stats"]["latency"]["imap"]
    text = run_cli("analyze", "--no-color", str(path)).stdout
    assert "a3 OK Idle completed (to IDLE)" in text and "after 3" not in text


def test_idle_refused_at_once_keeps_its_latency(tmp_path: Path) -> None:
    [session] = report(write(tmp_path, 143, [*IDLE[:5], ("c", b"a3 IDLE\r\n"), ("s", b"a3 BAD no\r\n")]))["sessions"]
    [reply] = [r for r in session["replies"] if r.get("answers") == "IDLE"]
    assert reply["latency"] is not None and reply["latency"] >= 0


# --------------------------------------------------------------------------- 6. cancelled authentication

def _auth_caption(session: Session) -> tuple[str, str]:
    return next(c for c in captions(session) if c[0].startswith("auth"))


def test_smtp_auth_cancelled(tmp_path: Path) -> None:
    session = session_of(write(tmp_path, 25, [
        ("s", b"220 mx ESMTP\r\n"), ("c", b"EHLO c\r\n"), ("s", b"250-mx\r\n250 AUTH PLAIN LOGIN\r\n"),
        ("c", b"AUTH PLAIN\r\n"), ("s", b"334 \r\n"), ("c", b"*\r\n"), ("s", b"501 5.7.0 Authentication aborted\r\n"),
        ("c", b"QUIT\r\n"), ("s", b"221 bye\r\n")]))
    assert _auth_caption(session) == (
        "auth.cancel", "the client cancels the authentication with AUTH PLAIN (*); the server confirms the "
                       "cancellation (501)")
    assert captions(session, "de")[2][1] == (
        "der Client bricht die Authentisierung mit AUTH PLAIN ab (*); der Server bestätigt den Abbruch (501)")


def test_smtp_auth_login_cancelled_after_the_user_name(tmp_path: Path) -> None:
    session = session_of(write(tmp_path, 25, [
        ("s", b"220 mx ESMTP\r\n"), ("c", b"EHLO c\r\n"), ("s", b"250-mx\r\n250 AUTH PLAIN LOGIN\r\n"),
        ("c", b"AUTH LOGIN\r\n"), ("s", b"334 VXNlcm5hbWU6\r\n"), ("c", b"YWxpY2U=\r\n"),
        ("s", b"334 UGFzc3dvcmQ6\r\n"), ("c", b"*\r\n"), ("s", b"501 5.7.0 Authentication aborted\r\n")]))
    assert _auth_caption(session) == (
        "auth.cancel.sent", "the client cancels the authentication with AUTH LOGIN as alice (*) after sending "
                            "part of it — in cleartext; the server confirms the cancellation (501)")


def test_pop3_auth_cancelled(tmp_path: Path) -> None:
    session = session_of(write(tmp_path, 110, [
        ("s", b"+OK POP3 ready\r\n"), ("c", b"AUTH PLAIN\r\n"), ("s", b"+ \r\n"), ("c", b"*\r\n"),
        ("s", b"-ERR authentication cancelled\r\n"), ("c", b"QUIT\r\n"), ("s", b"+OK bye\r\n")]))
    assert _auth_caption(session) == (
        "auth.cancel", "the client cancels the authentication with AUTH PLAIN (*); the server confirms the "
                       "cancellation (-ERR)")


def test_imap_authenticate_cancelled(tmp_path: Path) -> None:
    session = session_of(write(tmp_path, 143, [
        ("s", b"* OK ready\r\n"), ("c", b"a1 AUTHENTICATE PLAIN\r\n"), ("s", b"+ \r\n"), ("c", b"*\r\n"),
        ("s", b"a1 BAD authentication cancelled\r\n"), ("c", b"a2 LOGOUT\r\n"), ("s", b"* BYE\r\na2 OK\r\n")]))
    key, text = _auth_caption(session)
    assert (key, text) == (
        "auth.cancel", "the client cancels the authentication with AUTHENTICATE PLAIN (*); the server confirms "
                       "the cancellation (BAD)")
    assert "cleartext" not in text
    assert [a.extra.get("cancelled") for a in session.auth] == ["yes"]
