"""A command word where the server waits for a SASL answer (``QUIT`` after ``334 VXNlcm5hbWU6``): the
server reads it as base64, so the exchange goes on with a garbled user name. Said as an anomaly."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from tests.pcapgen import Capture, Tcp
from tests.support import corpus, report, run_cli


def _session(tmp_path: Path, port: int, lines: list[tuple[str, bytes]]) -> dict[str, Any]:
    cap = Capture()
    t = Tcp(cap, client=("10.0.0.1", 40000), server=("10.0.0.2", port)).handshake()
    for side, line in lines:
        (t.c if side == "c" else t.s)(line)
    t.fin()
    [session] = report(cap.write(tmp_path / "x.pcap"))["sessions"]
    return session


def _kinds(session: dict[str, Any]) -> list[str]:
    return [a["kind"] for a in session["anomalies"]]


def test_suricata_capture_quit_sent_as_the_auth_login_user_name() -> None:
    """suricata-verify smtp-long-command: after ``AUTH LOGIN`` and ``334 VXNlcm5hbWU6`` the client sends
    ``QUIT``; Postfix decodes it as the user name and asks for the password (``334 UGFzc3dvcmQ6``)."""
    path = corpus("suricata-verify/smtp-long-command")
    (session,) = report(path)["sessions"]
    [anomaly] = [a for a in session["anomalies"] if a["kind"] == "command-as-sasl-response"]
    assert anomaly["frame"] == 19 and "sent QUIT" in anomaly["detail"] and "AUTH LOGIN" in anomaly["detail"]
    assert session["auth"][0]["username"] == "AB\x13"  # what the server decoded "QUIT" to
    assert session["auth"][0]["command_as_response"] == "username"
    assert session["user"] is None  # the client presented no name: it sent QUIT
    listing = run_cli("analyze", "--list", str(path)).stdout
    assert "AB\x13" not in listing and " -  " in listing
    assert "no session matches" in run_cli("analyze", "--list", "--user", "AB\x13", str(path)).stdout
    findings = run_cli("analyze", "--findings-only", str(path)).stdout
    assert "commands sent where the server waited for a SASL response" in findings
    # "QUIT" read as base64 is no credential: no "user name AB\x13 sent in cleartext" finding
    assert "cleartext-credentials" not in findings and "AB" not in findings
    table = run_cli("analyze", "--width", "200", str(path)).stdout
    assert "the client authenticates with AUTH LOGIN — in cleartext; the server asks" in table  # not "as AB␓"


def test_pop3_quit_in_an_auth_exchange(tmp_path: Path) -> None:
    session = _session(tmp_path, 110, [("s", b"+OK ready\r\n"), ("c", b"AUTH LOGIN\r\n"), ("s", b"+ VXNlcm5hbWU6\r\n"),
                                       ("c", b"quit\r\n"), ("s", b"+ UGFzc3dvcmQ6\r\n")])
    assert _kinds(session) == ["command-as-sasl-response"]
    assert "sent QUIT" in session["anomalies"][0]["detail"] and "RFC 5034" in session["anomalies"][0]["detail"]


def test_real_answers_and_a_cancel_are_no_anomaly(tmp_path: Path) -> None:
    user, password = base64.b64encode(b"alice"), base64.b64encode(b"secret")
    smtp = _session(tmp_path, 25, [("s", b"220 hi\r\n"), ("c", b"EHLO a\r\n"), ("s", b"250 AUTH LOGIN\r\n"),
                                   ("c", b"AUTH LOGIN\r\n"), ("s", b"334 VXNlcm5hbWU6\r\n"), ("c", user + b"\r\n"),
                                   ("s", b"334 UGFzc3dvcmQ6\r\n"), ("c", password + b"\r\n"), ("s", b"235 ok\r\n"),
                                   ("c", b"AUTH LOGIN\r\n"), ("s", b"334 VXNlcm5hbWU6\r\n"), ("c", b"*\r\n"),
                                   ("s", b"501 cancelled\r\n"), ("c", b"QUIT\r\n"), ("s", b"221 bye\r\n")])
    assert "command-as-sasl-response" not in _kinds(smtp)
    assert smtp["auth"][0]["username"] == "alice" and smtp["commands"][-1]["verb"] == "QUIT"


def test_imap_tagged_command_in_an_authenticate_exchange(tmp_path: Path) -> None:
    session = _session(tmp_path, 143, [("s", b"* OK ready\r\n"), ("c", b"a1 AUTHENTICATE PLAIN\r\n"),
                                       ("s", b"+ \r\n"), ("c", b"a2 LOGOUT\r\n"),
                                       ("s", b"a1 BAD invalid base64\r\n")])
    assert _kinds(session) == ["command-as-sasl-response"]
    assert "tagged LOGOUT" in session["anomalies"][0]["detail"]
    imap = _session(tmp_path, 143, [("s", b"* OK ready\r\n"), ("c", b"a1 AUTHENTICATE PLAIN\r\n"), ("s", b"+ \r\n"),
                                    ("c", base64.b64encode(b"\0bob\0pw") + b"\r\n"), ("s", b"a1 OK\r\n")])
    assert imap["anomalies"] == [] and imap["auth"][0]["username"] == "bob"


def test_a_login_that_stops_after_the_user_name_sent_no_password(tmp_path: Path) -> None:
    """AUTH LOGIN answered with the user name only (then the client closes): the user name crossed in
    the clear, no password did — the finding says so, at medium rather than high."""
    session = _session(tmp_path, 25, [("s", b"220 hi\r\n"), ("c", b"EHLO a\r\n"), ("s", b"250 AUTH LOGIN\r\n"),
                                      ("c", b"AUTH LOGIN\r\n"), ("s", b"334 VXNlcm5hbWU6\r\n"),
                                      ("c", base64.b64encode(b"alice") + b"\r\n"), ("s", b"334 UGFzc3dvcmQ6\r\n")])
    assert session["auth"][0]["username"] == "alice"
    path = tmp_path / "x.pcap"
    [finding] = [f for f in report(path)["findings"] if f["id"] == "cleartext-credentials"]
    assert (finding["severity"], finding["title"]) == ("medium", "SMTP user name alice sent in cleartext")
    assert "no password" in finding["detail"]


def test_a_command_read_as_the_password_leaves_the_user_name_as_the_credential(tmp_path: Path) -> None:
    """The real user name, then ``QUIT`` where the password goes: the user name crossed in the clear,
    no password did (medium, not "password of alice sent in cleartext")."""
    session = _session(tmp_path, 25, [("s", b"220 hi\r\n"), ("c", b"EHLO a\r\n"), ("s", b"250 AUTH LOGIN\r\n"),
                                      ("c", b"AUTH LOGIN\r\n"), ("s", b"334 VXNlcm5hbWU6\r\n"),
                                      ("c", base64.b64encode(b"alice") + b"\r\n"), ("s", b"334 UGFzc3dvcmQ6\r\n"),
                                      ("c", b"QUIT\r\n"), ("s", b"535 5.7.8 failed\r\n")])
    [auth] = session["auth"]
    assert (auth["username"], auth["success"], auth["command_as_response"]) == ("alice", False, "secret")
    [finding] = [f for f in report(tmp_path / "x.pcap")["findings"] if f["id"] == "cleartext-credentials"]
    assert (finding["severity"], finding["title"]) == ("medium", "SMTP user name alice sent in cleartext")


def test_pop3_and_imap_logins_say_which_field_a_command_filled(tmp_path: Path) -> None:
    pop3 = _session(tmp_path, 110, [("s", b"+OK ready\r\n"), ("c", b"AUTH LOGIN\r\n"), ("s", b"+ VXNlcm5hbWU6\r\n"),
                                    ("c", b"NOOP\r\n"), ("s", b"-ERR bad\r\n")])
    assert pop3["auth"][0]["command_as_response"] == "username"
    assert pop3["user"] is None  # NOOP decoded as a name is no name the client presented
    assert not [f for f in report(tmp_path / "x.pcap")["findings"] if f["id"] == "cleartext-credentials"]
    imap = _session(tmp_path, 143, [("s", b"* OK ready\r\n"), ("c", b"a1 AUTHENTICATE PLAIN\r\n"),
                                    ("s", b"+ \r\n"), ("c", b"a2 LOGOUT\r\n"), ("s", b"a1 BAD invalid base64\r\n")])
    assert imap["auth"][0]["command_as_response"] == "response"  # no NULs: PLAIN found no user in it


def test_commands_at_both_login_prompts_fill_both_fields_and_are_no_credential(tmp_path: Path) -> None:
    """QUIT at the user name prompt and again at the password prompt: both fields came from commands,
    so no 'password sent in cleartext' finding of them."""
    session = _session(tmp_path, 25, [("s", b"220 hi\r\n"), ("c", b"EHLO a\r\n"), ("s", b"250 AUTH LOGIN\r\n"),
                                      ("c", b"AUTH LOGIN\r\n"), ("s", b"334 VXNlcm5hbWU6\r\n"), ("c", b"QUIT\r\n"),
                                      ("s", b"334 UGFzc3dvcmQ6\r\n"), ("c", b"QUIT\r\n"),
                                      ("s", b"535 5.7.8 failed\r\n")])
    [auth] = session["auth"]
    assert (auth["success"], auth["command_as_response"]) == (False, "username,secret")
    assert not [f for f in report(tmp_path / "x.pcap")["findings"] if f["id"] == "cleartext-credentials"]


def test_a_command_as_the_cram_md5_answer_gives_no_hashcat_line(tmp_path: Path) -> None:
    """CRAM-MD5's one answer is 'user digest'; a command in its place filled both, and is no digest to crack."""
    challenge = base64.b64encode(b"<1896.697170952@mail.example>")
    lines = [("s", b"220 hi\r\n"), ("c", b"EHLO a\r\n"), ("s", b"250 AUTH CRAM-MD5\r\n"), ("c", b"AUTH CRAM-MD5\r\n"),
             ("s", b"334 " + challenge + b"\r\n")]
    session = _session(tmp_path, 25, [*lines, ("c", b"QUIT\r\n"), ("s", b"535 5.7.8 failed\r\n")])
    assert session["auth"][0]["command_as_response"] == "username,secret"
    path = tmp_path / "x.pcap"
    shown = report(path, args=("--show-secrets",))["sessions"][0]["auth"][0]
    assert "hashcat" not in shown and "hashcat" not in run_cli("analyze", "--show-secrets", str(path)).stdout
    real = base64.b64encode(b"tim b913a602c7eda7a495b4e6e7334d3890")
    session = _session(tmp_path, 25, [*lines, ("c", real + b"\r\n"), ("s", b"235 ok\r\n")])
    shown = report(path, args=("--show-secrets",))["sessions"][0]["auth"][0]
    assert shown["hashcat"].startswith("$cram_md5$") and "command_as_response" not in shown


def test_an_imap_command_at_the_login_name_prompt_is_not_the_sessions_user(tmp_path: Path) -> None:
    imap = _session(tmp_path, 143, [("s", b"* OK ready\r\n"), ("c", b"a1 AUTHENTICATE LOGIN\r\n"),
                                    ("s", b"+ VXNlcm5hbWU6\r\n"), ("c", b"a2 LOGOUT\r\n"), ("s", b"+ UGFzc3dvcmQ6\r\n"),
                                    ("c", b"c2VjcmV0\r\n"), ("s", b"a1 NO auth failed\r\n")])
    [auth] = imap["auth"]
    assert auth["command_as_response"] == "username" and auth["username"] and imap["user"] is None
