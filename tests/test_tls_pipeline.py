"""TLS through the whole pipeline: metadata for every TLS session, decryption with a key log."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from mailtrace.capture.reader import open_capture
from tests.support import facts, report, run_cli, sample


def by_port(data: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {s["server"]["port"]: s for s in data["sessions"]}


def test_starttls_metadata_without_keys() -> None:
    sessions = report(sample("smtp-starttls.pcap"))["sessions"]
    assert [s["tls"] for s in sessions] == ["starttls", "starttls"]
    for s in sessions:
        info = s["tls_info"]
        assert (info["version"], info["cipher"]) == ("TLS 1.3", "TLS_AES_256_GCM_SHA384")
        assert s["decrypted"] is False
        assert [c["verb"] for c in s["commands"]] == ["EHLO", "STARTTLS"]
    assert sessions[0]["tls_info"]["sni"] == "mx.remote.example"


def test_starttls_decrypted_with_keylog_matches_facts() -> None:
    f = facts("smtp-starttls.facts.json")["sessions"][0]
    data = report(sample("smtp-starttls.pcap"), args=("--tls-keylog", str(sample("smtp-starttls.keylog"))))
    s = data["sessions"][0]
    assert (s["tls"], s["decrypted"]) == ("starttls", True)
    assert [c["verb"] for c in s["commands"]] == ["EHLO", "STARTTLS", "EHLO", "AUTH", "MAIL", "RCPT", "DATA", "QUIT"]
    assert s["auth"][0]["mechanism"] == "PLAIN" and s["auth"][0]["username"] == f["auth"]["username"]
    tx = s["transactions"][0]
    assert tx["mail_from"] == f["mail_from"]
    assert tx["rcpt_to"] == [r["address"] for r in f["rcpt_to"]]
    assert s["messages"][0]["subject"] == f["messages"][0]["subject"]
    # the swaks session on port 25 has no keys: it stays opaque, with its metadata
    assert data["sessions"][1]["decrypted"] is False and data["sessions"][1]["tls_info"]["cipher"]


def test_decrypted_rows_are_marked_in_the_table() -> None:
    out = run_cli("analyze", "--width", "160", "--tls-keylog", str(sample("smtp-starttls.keylog")),
                  str(sample("smtp-starttls.pcap"))).stdout
    assert "decrypted" in out
    assert "C: AUTH PLAIN [initial response]" in out


def test_implicit_tls_and_upgrades_decrypted() -> None:
    f = facts("tls-implicit.facts.json")
    data = report(sample("tls-implicit.pcap"), args=("--tls-keylog", str(sample("tls-implicit.keylog"))))
    sessions = by_port(data)
    assert {p: s["tls"] for p, s in sessions.items()} == {465: "implicit", 993: "implicit", 995: "implicit",
                                                          143: "starttls", 110: "starttls"}
    assert all(s["decrypted"] for s in sessions.values())
    expected_users = {s["server"]["port"]: (s.get("username") or (s.get("auth") or {}).get("username"))
                      for s in f["sessions"]}
    for port, s in sessions.items():
        assert s["user"] == expected_users[port], port
        assert s["auth"] and s["auth"][0]["success"] is True
    for fs in f["sessions"]:  # every command the client logged, in order, among what we dissected
        expected = [t[0].split()[0].upper() for t in fs["transcript"] if not t[0].startswith("<")]
        seen = iter(c["verb"] for c in sessions[fs["server"]["port"]]["commands"])
        assert all(verb in seen for verb in expected), (fs["server"]["port"], expected)


def test_implicit_tls_metadata_without_keys() -> None:
    for s in report(sample("tls-implicit.pcap"))["sessions"]:
        info = s["tls_info"]
        assert info["sni"] == "mx.remote.example"
        assert info["version"] == "TLS 1.3"
        assert s["decrypted"] is False


def test_keylog_from_pcapng_decryption_secrets_block(tmp_path: Path) -> None:
    """A key log embedded in the capture (pcapng DSB, as editcap --inject-secrets writes) is used."""
    keys = sample("smtp-starttls.keylog").read_bytes()

    def block(btype: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        return struct.pack("<II", btype, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))

    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    out += block(1, struct.pack("<HHI", 1, 0, 262144))
    out += block(0x0A, struct.pack("<II", 0x544C534B, len(keys)) + keys)
    for ts, _linktype, data, wire in open_capture(str(sample("smtp-starttls.pcap"))).frames():
        t = round(ts * 1e6)
        out += block(6, struct.pack("<IIIII", 0, t >> 32, t & 0xFFFFFFFF, len(data), wire) + data)
    path = tmp_path / "with-secrets.pcapng"
    path.write_bytes(out)
    s = report(path)["sessions"][0]
    assert s["decrypted"] is True
    assert s["auth"][0]["username"] == "bob"


def test_missing_keylog_file_is_a_one_line_error(tmp_path: Path) -> None:
    result = run_cli("analyze", "--tls-keylog", str(tmp_path / "none.keys"), str(sample("smtp-starttls.pcap")))
    assert result.exit_code == 2
    assert "--tls-keylog" in result.stderr and "Traceback" not in result.stderr
    # a directory is the same kind of mistake: one line too (it was click's three-line usage error)
    result = run_cli("analyze", "--tls-keylog", str(tmp_path), str(sample("smtp-starttls.pcap")))
    assert result.exit_code == 2
    assert result.stderr == f"mailtrace: --tls-keylog {tmp_path}: Is a directory\n"


def test_handshake_secrets_only_is_not_reported_decrypted(tmp_path: Path) -> None:
    """A TLS 1.3 key log with the handshake secrets only: the session is not ``decrypted``."""
    lines = sample("smtp-starttls.keylog").read_text().splitlines()
    keylog = tmp_path / "handshake-only.keylog"
    keylog.write_text("".join(ln + "\n" for ln in lines if "_HANDSHAKE_TRAFFIC_SECRET " in ln))
    assert len(keylog.read_text().splitlines()) == 2
    data = report(sample("smtp-starttls.pcap"), args=("--tls-keylog", str(keylog)))
    s = data["sessions"][0]
    assert (s["server"]["port"], s["tls"], s["decrypted"]) == (587, "starttls", False)
    assert s["tls_info"]["decrypted"] is False and s["tls_info"]["established"] is True
    # the certificate was in the decrypted handshake; the mail commands after STARTTLS were not
    assert s["tls_info"]["certificates"]
    assert [c["verb"] for c in s["commands"]] == ["EHLO", "STARTTLS"]
    assert s["tls_info"]["anomalies"] == ["no-keys", "no-keys"]


def _server_first(tmp_path: Path, port: int, dialog: list[tuple[str, bytes]]) -> dict[str, Any]:
    from tests.pcapgen import Capture, Tcp

    cap = Capture()
    conv = Tcp(cap, server=("10.0.0.2", port)).handshake()
    for who, data in dialog:
        (conv.c if who == "c" else conv.s)(data)
    conv.fin()
    session: dict[str, Any] = report(cap.write(tmp_path / f"port{port}.pcap"))["sessions"][0]
    return session


def test_a_cleartext_greeting_on_an_implicit_tls_port_is_dissected(tmp_path: Path) -> None:
    """A server that greets in the clear on 465/995 (a TLS server never speaks first) is not handed to
    the TLS layer as records: the session is dissected as cleartext, says so, and its login is seen."""
    smtp = _server_first(tmp_path, 465, [
        ("s", b"220 mx.example ESMTP\r\n"), ("c", b"EHLO client\r\n"), ("s", b"250-mx.example\r\n250 AUTH PLAIN\r\n"),
        ("c", b"AUTH PLAIN AHVzZXIAc2VjcmV0\r\n"), ("s", b"235 2.7.0 ok\r\n"),
        ("c", b"QUIT\r\n"), ("s", b"221 bye\r\n")])
    assert smtp["tls"] == "none" and [a["kind"] for a in smtp["anomalies"]] == ["plaintext-after-tls"]
    assert [c["verb"] for c in smtp["commands"]] == ["EHLO", "AUTH", "QUIT"]
    assert [(a["mechanism"], a["username"], a["success"]) for a in smtp["auth"]] == [("PLAIN", "user", True)]
    # no TLS phase: the greeting's row is the greeting, as the terminal view shows it
    assert [(p["name"], p["first_frame"], p["last_frame"]) for p in smtp["phases"]] == [
        ("setup", 1, 3), ("greeting", 4, 4), ("negotiation", 5, 6), ("auth", 7, 8), ("teardown", 9, 13)]
    pop3 = _server_first(tmp_path, 995, [
        ("s", b"+OK POP3 ready\r\n"), ("c", b"USER alice\r\n"), ("s", b"+OK\r\n"), ("c", b"PASS secret\r\n"),
        ("s", b"+OK logged in\r\n"), ("c", b"QUIT\r\n"), ("s", b"+OK bye\r\n")])
    assert pop3["tls"] == "none" and pop3["user"] == "alice"
    assert [(a["mechanism"], a["success"]) for a in pop3["auth"]] == [("USER", True)]
    assert [p["name"] for p in pop3["phases"]] == ["setup", "greeting", "auth", "teardown"]


def test_cleartext_from_the_client_on_an_implicit_tls_port_has_no_tls_phase(tmp_path: Path) -> None:
    """The capture lost the server's banner and the client's first bytes on 993 are a cleartext LOGIN: the
    row is in the login's phase (the TLS the port promised is taken back with ``tls: none``)."""
    from tests.pcapgen import Capture, Tcp

    cap = Capture()
    conv = Tcp(cap, server=("10.0.0.2", 993)).handshake()
    conv.c(b"a1 LOGIN alice secret\r\n")
    conv.s(b"a1 OK logged in\r\n")
    conv.c(b"a2 LOGOUT\r\n")
    conv.s(b"* BYE\r\na2 OK bye\r\n")
    conv.fin()
    imap = report(cap.write(tmp_path / "port993.pcap"))["sessions"][0]
    assert imap["tls"] == "none" and [a["kind"] for a in imap["anomalies"]] == ["plaintext-after-tls"]
    assert [(p["name"], p["first_frame"]) for p in imap["phases"]] == [("setup", 1), ("auth", 4), ("teardown", 6)]


def test_server_first_bytes_that_are_no_greeting_stay_with_the_tls_layer(tmp_path: Path) -> None:
    """A capture that begins inside implicit TLS (the server's records first) or server bytes that are
    neither TLS nor a greeting: the TLS layer reads them and says what they are, as before."""
    record = b"\x17\x03\x03\x00\x10" + bytes(range(16))
    inside = _server_first(tmp_path, 465, [("s", record), ("c", b"\x17\x03\x03\x00\x08" + bytes(8))])
    assert inside["tls"] == "implicit" and inside["commands"] == []
    assert "plaintext-after-tls" not in [a["kind"] for a in inside["anomalies"]]
    noise = _server_first(tmp_path, 993, [("s", b"\x00\x01garbage that is not a greeting\r\n")])
    assert noise["tls"] == "implicit" and "tls-not-tls" in [a["kind"] for a in noise["anomalies"]]
