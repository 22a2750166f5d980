"""Decryption of the lab captures with their key logs, checked against facts.json and tshark."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from mt_tls_streams import Conn, Item, Run, run, tls_connections

from mailtrace.model import Direction
from mailtrace.tls import Decrypted, HandshakeSeen, KeyLog, OpaqueData, TlsAnomaly, TlsSession
from mailtrace.tls.events import tls_info_to_json

CAPTURES = "samples-src/captures"
_TSHARK_LINE = re.compile(r"^\s*(\d+)\s+\S+\s+\S+ → \S+\s+(SMTP|SMTP/IMF|IMAP|POP)\s+\d+\s+(.*)$")


def load(shared: Path, name: str) -> tuple[list[tuple[Conn, list[Item]]], KeyLog, dict[str, Any]]:
    cap = shared / CAPTURES / f"{name}.pcap"
    facts = json.loads((shared / CAPTURES / f"{name}.facts.json").read_text())
    return tls_connections(cap), KeyLog.from_file(cap.with_suffix(".keylog")), facts


def tshark_app_lines(shared: Path, name: str) -> list[tuple[int, str, str]]:
    """(frame, C|S, text) of the mail protocol rows tshark decrypted (``-o tls.keylog_file``)."""
    rows = []
    for line in (shared / CAPTURES / f"{name}.tshark-decrypted.txt").read_text().splitlines():
        m = _TSHARK_LINE.match(line)
        if m is None or m.group(2) == "SMTP/IMF":
            continue
        text = m.group(3)
        for prefix, who in (("C: ", "C"), ("S: ", "S"), ("Request: ", "C"), ("Response: ", "S")):
            if text.startswith(prefix):
                rows.append((int(m.group(1)), who, text[len(prefix) :]))
    return rows


def decrypt(conn_items: list[Item], keylog: KeyLog) -> tuple[TlsSession, Run]:
    session = TlsSession(keylog)
    return session, run(session, conn_items)


def session_facts(facts: dict[str, Any], conn: Conn) -> dict[str, Any]:
    [s] = [s for s in facts["sessions"] if s["client"]["port"] == conn.client[1]]
    return s


def check_against_tshark(shared: Path, name: str, conn: Conn, result: Run, first: int, last: int) -> None:
    rows = [r for r in tshark_app_lines(shared, name) if first <= r[0] <= last]
    assert rows, "tshark shows decrypted rows for this session"
    plain = {
        "C": result.plaintext[Direction.CLIENT].decode(),
        "S": result.plaintext[Direction.SERVER].decode(),
    }
    for _frame, who, text in rows:
        for piece in text.split(" | "):  # tshark joins SMTP multi-line replies with " | "
            assert piece.strip() in plain[who], (who, piece)
    # Every frame tshark shows as a mail row carried plaintext for us, and vice versa (the IMF
    # row of the DATA body too, which the filter above leaves out of the text check).
    tshark_frames = {f for f, _, _ in rows}
    ours = {c.frame for c in result.chunks}
    assert tshark_frames <= ours
    assert len(ours - tshark_frames) <= 1


def test_smtp_starttls_decrypts(shared: Path) -> None:
    conns, keylog, facts = load(shared, "smtp-starttls")
    by_port = {c.server[1]: (c, items) for c, items in conns}
    conn, items = by_port[587]
    session, result = decrypt(items, keylog)
    info = session.info
    assert info.decrypted and info.established and info.version == "TLS 1.3"
    assert not result.of(TlsAnomaly) and not result.of(OpaqueData)
    client = result.plaintext[Direction.CLIENT].decode()
    server = result.plaintext[Direction.SERVER].decode()
    f = session_facts(facts, conn)
    assert "AUTH PLAIN " in client
    assert f"mail FROM:<{f['mail_from']}>" in client
    for rcpt in f["rcpt_to"]:
        assert f"rcpt TO:<{rcpt['address']}>" in client
    [message] = f["messages"]
    assert f"Subject: {message['subject']}" in client
    assert f"Message-ID: {message['message_id']}" in client
    assert f["data"]["reply"] in server
    assert client.endswith("quit\r\n") and server.endswith("221 2.0.0 Bye\r\n")
    assert [e.kind for e in result.of(HandshakeSeen) if e.encrypted] == [
        "encrypted_extensions",
        "certificate",
        "certificate_verify",
        "finished",
        "finished",
        "new_session_ticket",
    ]
    check_against_tshark(shared, "smtp-starttls", conn, result, 19, 37)
    # The swaks session on port 25 has no keys: metadata only, one clear anomaly.
    session25, result25 = decrypt(by_port[25][1], keylog)
    assert not session25.info.decrypted
    assert [a.kind for a in result25.of(TlsAnomaly)] == ["no-keys"]
    assert result25.plaintext == {Direction.CLIENT: b"", Direction.SERVER: b""}
    assert sum(e.nbytes for e in result25.of(OpaqueData)) > 0


@pytest.mark.parametrize("port", [465, 993, 995, 143, 110])
def test_tls_implicit_decrypts(shared: Path, port: int) -> None:
    conns, keylog, facts = load(shared, "tls-implicit")
    [(conn, items)] = [(c, i) for c, i in conns if c.server[1] == port]
    session, result = decrypt(items, keylog)
    assert session.info.decrypted and not result.of(TlsAnomaly)
    assert not result.of(OpaqueData)
    client = result.plaintext[Direction.CLIENT].decode()
    server = result.plaintext[Direction.SERVER].decode()
    f = session_facts(facts, conn)
    if f.get("username"):
        assert f["username"] in client and f["password"] in client
    if f.get("auth") and isinstance(f["auth"], dict):
        assert f["auth"]["mechanism"] in client
    in_tls = False
    for command, *_reply in f["transcript"]:
        if command in ("STARTTLS", "STLS"):
            in_tls = True
            continue
        if command.startswith("<") or (f["tls"]["kind"] != "implicit" and not in_tls):
            continue
        assert command.split()[0] in client, command
    for msg in f.get("messages", []):
        assert f"Subject: {msg['subject']}" in client
    decrypted_bytes = sum(e.nbytes for e in result.of(Decrypted))
    assert decrypted_bytes == len(client) + len(server)
    first = session.info.first_frame
    assert first is not None
    [alert] = session.info.alerts
    assert (alert.direction, alert.level, alert.description) == ("server", "warning", "close_notify")
    assert alert.frame is not None
    check_against_tshark(shared, "tls-implicit", conn, result, first, alert.frame)


def test_keylog_merge_is_what_decrypts(shared: Path) -> None:
    """A key log assembled from pieces (as pcapng DSBs would be) decrypts the same."""
    conns, keylog, _facts = load(shared, "tls-implicit")
    text = (shared / CAPTURES / "tls-implicit.keylog").read_text().splitlines()
    merged = KeyLog()
    for line in text:
        merged.merge(KeyLog.from_text(line))
    assert len(merged) == len(keylog) == 5
    for _conn, items in conns:
        a = run(TlsSession(keylog), items)
        b = run(TlsSession(merged), items)
        assert a.plaintext == b.plaintext and a.plaintext[Direction.CLIENT]


def handshake_only(keylog_text: str) -> KeyLog:
    """The key log with only the TLS 1.3 handshake traffic secrets (no *_TRAFFIC_SECRET_0)."""
    lines = [ln for ln in keylog_text.splitlines() if ln.split(" ", 1)[0].endswith("_HANDSHAKE_TRAFFIC_SECRET")]
    return KeyLog.from_text("\n".join(lines))


def test_handshake_secrets_only_is_not_decrypted(shared: Path) -> None:
    """Handshake records decrypt, application data does not: ``decrypted`` stays false."""
    conns, full, _facts = load(shared, "smtp-starttls")
    keylog = handshake_only((shared / CAPTURES / "smtp-starttls.keylog").read_text())
    assert 0 < len(keylog) == len(full)  # the same client randoms, fewer secrets each
    [(_conn, items)] = [(c, i) for c, i in conns if c.server[1] == 587]
    session, result = decrypt(items, keylog)
    info = session.info
    assert info.version == "TLS 1.3" and info.established
    assert info.decrypted is False
    assert session.handshake_decrypted is True and info.handshake_decrypted is True
    assert tls_info_to_json(info)["handshake_decrypted"] is True
    # the server's encrypted flight was read (its certificate too), the application data was not
    assert [e.kind for e in result.of(HandshakeSeen) if e.encrypted] == [
        "encrypted_extensions",
        "certificate",
        "certificate_verify",
        "finished",
        "finished",
    ]
    assert [c.subject for c in info.certificates] != []
    assert result.plaintext == {Direction.CLIENT: b"", Direction.SERVER: b""}
    assert not result.of(Decrypted)
    assert sum(e.nbytes for e in result.of(OpaqueData)) == 1327
    assert sorted(a.detail for a in result.of(TlsAnomaly)) == [
        "the key log lacks CLIENT_TRAFFIC_SECRET_0",
        "the key log lacks SERVER_TRAFFIC_SECRET_0",
    ]


def test_full_keylog_decrypts_handshake_and_application_data(shared: Path) -> None:
    conns, keylog, _facts = load(shared, "tls-implicit")
    for conn, items in conns:
        session, result = decrypt(items, keylog)
        assert (session.info.decrypted, session.handshake_decrypted) == (True, True), conn.server
        assert result.of(Decrypted)


def test_no_keys_decrypts_nothing(shared: Path) -> None:
    conns, _keylog, _facts = load(shared, "tls-implicit")
    for conn, items in conns:
        session, _result = decrypt(items, KeyLog())
        assert (session.info.decrypted, session.handshake_decrypted) == (False, False), conn.server
