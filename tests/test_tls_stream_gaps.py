"""Lost bytes inside TLS, wrong keys and encrypted alerts, through the whole pipeline.

The TLS conversations are real (two in-memory OpenSSL endpoints through Python's ``ssl``, OpenSSL
writing the key log); each TLS record becomes one TCP segment of a synthetic capture
(``tests/pcapgen.py``), so a test can lose exactly the records it wants.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import random
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mailtrace.connection import tls_row_event
from mailtrace.model import Chunk, Direction, Eof, Note, Phase, StreamGap
from mailtrace.tls import KeyLog, TlsAlert, TlsSession
from tests.pcapgen import Capture, Tcp
from tests.support import report, run_cli

HOST = "mail.gap.example"


def _cert(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(7).not_valid_before(start).not_valid_after(start + dt.timedelta(days=3650))
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@dataclass
class Dialog:
    """TLS records as they went over the wire: (who, record bytes, plaintext it carried or b"")."""

    records: list[tuple[str, bytes, bytes]] = field(default_factory=list)
    keylog: Path = Path()


def _records(data: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        length = int.from_bytes(data[pos + 3 : pos + 5], "big")
        out.append(data[pos : pos + 5 + length])
        pos += 5 + length
    return out


def tls_dialog(folder: Path, lines: list[tuple[str, bytes]], *,
               version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3, ciphers: str | None = None) -> Dialog:
    """Handshake, then each (who, bytes) written as one record (≤ 16 KiB), then close_notify both ways."""
    cert, key = _cert(folder)
    cctx, sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    for ctx in (cctx, sctx):
        ctx.minimum_version = ctx.maximum_version = version
        if ciphers:
            ctx.set_ciphers(ciphers)
    cctx.check_hostname, cctx.verify_mode = False, ssl.CERT_NONE
    keylog = folder / "keys.log"
    cctx.keylog_filename = str(keylog)
    sctx.load_cert_chain(cert, key)
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client = cctx.wrap_bio(c_in, c_out, server_hostname=HOST)
    server = sctx.wrap_bio(s_in, s_out, server_side=True)
    dialog = Dialog(keylog=keylog)

    def pump(plain: tuple[str, bytes] = ("", b"")) -> None:
        for src, dst, who in ((c_out, s_in, "c"), (s_out, c_in, "s")):
            data = src.read()
            if data:
                dst.write(data)
                recs = _records(data)
                for rec in recs:
                    carried = plain[1] if who == plain[0] and len(recs) == 1 else b""
                    dialog.records.append((who, rec, carried))

    def read_all(obj: ssl.SSLObject) -> bytes:
        out = b""
        while True:
            try:
                piece = obj.read(65536)
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                return out
            if not piece:
                return out
            out += piece

    done = {"c": False, "s": False}
    for _ in range(10):
        for who, obj in (("c", client), ("s", server)):
            if not done[who]:
                try:
                    obj.do_handshake()
                    done[who] = True
                except ssl.SSLWantReadError:
                    pass
        pump()
        if all(done.values()):
            break
    read_all(client)
    pump()
    for who, data in lines:
        writer, reader = (client, server) if who == "c" else (server, client)
        writer.write(data)
        pump((who, data))
        assert read_all(reader) == data
        pump()
    for obj in (client, server):
        with contextlib.suppress(ssl.SSLWantReadError, ssl.SSLZeroReturnError):
            obj.unwrap()
        pump()
    return dialog


def write_capture(path: Path, dialog: Dialog, port: int, *, drop: set[int] = frozenset(),  # type: ignore[assignment]
                  split: dict[int, int] | None = None, drop_part: dict[int, int] | None = None) -> Path:
    """One TCP segment per record; ``drop``: records lost whole; ``split``/``drop_part``: record i sent
    in pieces of that size, with piece ``drop_part[i]`` lost (a gap inside the record)."""
    cap = Capture()
    tcp = Tcp(cap, client=("10.0.0.1", 40000), server=("10.0.0.2", port)).handshake()
    for i, (who, rec, _plain) in enumerate(dialog.records):
        send = tcp.c if who == "c" else tcp.s
        if split and i in split:
            size = split[i]
            for k, pos in enumerate(range(0, len(rec), size)):
                send(rec[pos : pos + size], drop=bool(drop_part and drop_part.get(i) == k))
        else:
            send(rec, drop=i in drop)
    tcp.fin()
    return cap.write(path)


def index_of(dialog: Dialog, plain: bytes) -> int:
    [i] = [i for i, r in enumerate(dialog.records) if r[2] == plain]
    return i


def analyze(path: Path, keylog: Path) -> dict[str, Any]:
    [session] = report(path, args=("--tls-keylog", str(keylog)))["sessions"]
    return session


def kinds(session: dict[str, Any]) -> list[str]:
    return [a["kind"] for a in session["anomalies"]]


SMTP_LINES = [
    ("s", b"220 mail.gap.example ESMTP\r\n"),
    ("c", b"EHLO client.gap.example\r\n"),
    ("s", b"250-mail.gap.example\r\n250 8BITMIME\r\n"),
    ("c", b"MAIL FROM:<alice@gap.example>\r\n"),
    ("s", b"250 2.1.0 Ok\r\n"),
    ("c", b"RCPT TO:<bob@gap.example>\r\n"),
    ("s", b"250 2.1.5 Ok\r\n"),
    ("c", b"DATA\r\n"),
    ("s", b"354 End data with <CR><LF>.<CR><LF>\r\n"),
    ("c", b"From: Alice <alice@gap.example>\r\nTo: bob@gap.example\r\nSubject: Lost in TLS\r\n\r\n"),
    ("c", b"first line of the body\r\n" * 40),
    ("c", b"second part of the body\r\n" * 40),
    ("c", b"third part of the body\r\n" * 40),
    ("c", b".\r\n"),
    ("s", b"250 2.0.0 Ok: queued as 4711\r\n"),
    ("c", b"QUIT\r\n"),
    ("s", b"221 2.0.0 Bye\r\n"),
]


@pytest.fixture(scope="module")
def smtp13(tmp_path_factory: pytest.TempPathFactory) -> Dialog:
    return tls_dialog(tmp_path_factory.mktemp("smtp13"), SMTP_LINES)


def test_whole_dialog_decrypts_without_gaps(smtp13: Dialog, tmp_path: Path) -> None:
    s = analyze(write_capture(tmp_path / "all.pcap", smtp13, 465), smtp13.keylog)
    assert (s["tls"], s["decrypted"], s["gaps"]) == ("implicit", True, [])
    assert [c["verb"] for c in s["commands"]] == ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]
    assert s["messages"][0]["subject"] == "Lost in TLS" and s["messages"][0]["complete"] is True
    assert kinds(s) == []


def test_lost_record_in_the_body_is_a_gap_and_the_message_is_incomplete(smtp13: Dialog, tmp_path: Path) -> None:
    """A whole record of the DATA body lost: a session gap (TCP bytes), the message incomplete by exactly
    the record's plaintext, and no anomaly from bytes glued across the hole."""
    lost = index_of(smtp13, b"second part of the body\r\n" * 40)
    record = smtp13.records[lost][1]
    s = analyze(write_capture(tmp_path / "body.pcap", smtp13, 465, drop={lost}), smtp13.keylog)
    assert s["gaps"] == [{"direction": "client", "bytes": len(record), "frame": s["gaps"][0]["frame"]}]
    assert s["decrypted"] is True
    assert kinds(s) == ["tls-gap"]  # the TLS layer says it; nothing glued, nothing out of state
    [message] = s["messages"]
    assert message["subject"] == "Lost in TLS"
    assert message["complete"] is False
    assert message["missing_bytes"] == len(b"second part of the body\r\n" * 40)
    assert [c["verb"] for c in s["commands"]] == ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]
    assert [r["status"] for r in s["replies"]][-2:] == ["250", "221"]


def test_gap_inside_a_record_skips_exactly_that_record(smtp13: Dialog, tmp_path: Path) -> None:
    """The middle piece of a record lost: the rest of it is skipped, decryption goes on in step."""
    cut = index_of(smtp13, b"first line of the body\r\n" * 40)
    record = smtp13.records[cut][1]
    path = write_capture(tmp_path / "in-record.pcap", smtp13, 465, split={cut: 300}, drop_part={cut: 1})
    s = analyze(path, smtp13.keylog)
    assert [g["bytes"] for g in s["gaps"]] == [300]
    assert kinds(s) == ["tls-gap-in-record"]
    [message] = s["messages"]
    assert (message["subject"], message["complete"]) == ("Lost in TLS", False)
    assert message["missing_bytes"] == len(record) - 5 - 17  # header, AES-GCM tag, TLS 1.3 inner type
    assert [c["verb"] for c in s["commands"]] == ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]


def test_lost_command_record_is_a_gap_not_glued(smtp13: Dialog, tmp_path: Path) -> None:
    """RCPT lost: the dissector is told (as after a cleartext gap), so what follows is not read as
    the rest of an earlier line; the session counts the gap."""
    lost = index_of(smtp13, b"RCPT TO:<bob@gap.example>\r\n")
    s = analyze(write_capture(tmp_path / "rcpt.pcap", smtp13, 465, drop={lost}), smtp13.keylog)
    assert [(g["direction"], g["bytes"]) for g in s["gaps"]] == [("client", len(smtp13.records[lost][1]))]
    assert [c["verb"] for c in s["commands"]] == ["EHLO", "MAIL", "DATA", "QUIT"]
    assert s["messages"][0]["subject"] == "Lost in TLS"
    assert "tls-decrypt-failed" not in kinds(s)


def test_gap_without_keys_is_still_a_session_gap(smtp13: Dialog, tmp_path: Path) -> None:
    lost = index_of(smtp13, b"MAIL FROM:<alice@gap.example>\r\n")
    path = write_capture(tmp_path / "nokeys.pcap", smtp13, 465, drop={lost})
    [s] = report(path)["sessions"]
    assert [(g["direction"], g["bytes"]) for g in s["gaps"]] == [("client", len(smtp13.records[lost][1]))]
    assert s["decrypted"] is False and kinds(s) == ["tls-gap"]


IMAP_BODY = b"From: Carol <carol@gap.example>\r\nSubject: Fetched over a gap\r\n\r\n" + b"0123456789abcdef\r\n" * 200


def imap_lines() -> list[tuple[str, bytes]]:
    size = len(IMAP_BODY)
    third = size // 3
    return [
        ("s", b"* OK [CAPABILITY IMAP4rev1] ready\r\n"),
        ("c", b"a1 LOGIN carol secret\r\n"),
        ("s", b"a1 OK logged in\r\n"),
        ("c", b"a2 SELECT INBOX\r\n"),
        ("s", b"* 1 EXISTS\r\na2 OK [READ-WRITE] SELECT completed\r\n"),
        ("c", b"a3 FETCH 1 BODY[]\r\n"),
        ("s", b"* 1 FETCH (BODY[] {%d}\r\n" % size + IMAP_BODY[:third]),
        ("s", IMAP_BODY[third : 2 * third]),
        ("s", IMAP_BODY[2 * third :] + b")\r\na3 OK FETCH completed\r\n"),
        ("c", b"a4 LOGOUT\r\n"),
        ("s", b"* BYE\r\na4 OK LOGOUT completed\r\n"),
    ]


def test_imap_literal_keeps_its_framing_across_a_lost_record(tmp_path: Path) -> None:
    """A record in the middle of a FETCH literal lost: the literal's byte count still ends it at
    the right place (the plaintext gap has the exact size), so the tagged OK and LOGOUT are read."""
    lines = imap_lines()
    dialog = tls_dialog(tmp_path, lines)
    lost = index_of(dialog, lines[7][1])
    s = analyze(write_capture(tmp_path / "imap.pcap", dialog, 993, drop={lost}), dialog.keylog)
    assert [(g["direction"], g["bytes"]) for g in s["gaps"]] == [("server", len(dialog.records[lost][1]))]
    assert kinds(s) == ["tls-gap"]
    [message] = s["messages"]
    assert message["subject"] == "Fetched over a gap"
    assert (message["complete"], message["missing_bytes"]) == (False, len(lines[7][1]))
    assert [c["verb"] for c in s["commands"]] == ["LOGIN", "SELECT", "FETCH", "LOGOUT"]
    assert [(r.get("tag"), r["status"]) for r in s["replies"] if r.get("tag")][-2:] == [("a3", "OK"), ("a4", "OK")]


def test_tls12_gcm_gap_has_the_exact_plaintext_size(tmp_path: Path) -> None:
    dialog = tls_dialog(tmp_path, SMTP_LINES, version=ssl.TLSVersion.TLSv1_2, ciphers="ECDHE-ECDSA-AES128-GCM-SHA256")
    lost = index_of(dialog, b"second part of the body\r\n" * 40)
    s = analyze(write_capture(tmp_path / "tls12.pcap", dialog, 465, drop={lost}), dialog.keylog)
    assert s["tls_info"]["version"] == "TLS 1.2" and s["decrypted"] is True
    [message] = s["messages"]
    assert message["missing_bytes"] == len(b"second part of the body\r\n" * 40)
    assert kinds(s) == ["tls-gap"]


# --------------------------------------------------------------------------- wrong key


def test_wrong_key_is_not_decrypted_and_says_the_key_does_not_fit(smtp13: Dialog, tmp_path: Path) -> None:
    lines = []
    for line in smtp13.keylog.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3:
            parts[2] = "".join("0" if ch != "0" else "1" for ch in parts[2])
        lines.append(" ".join(parts))
    wrong = tmp_path / "wrong.keys"
    wrong.write_text("\n".join(lines) + "\n")
    s = analyze(write_capture(tmp_path / "wrong.pcap", smtp13, 465), wrong)
    assert s["decrypted"] is False
    assert s["tls_info"]["decrypted"] is False and s["tls_info"]["handshake_decrypted"] is False
    failed = [a for a in s["anomalies"] if a["kind"] == "tls-decrypt-failed"]
    assert len(failed) == 2
    assert all("does not fit this session (wrong key)" in a["detail"] for a in failed)
    assert "SERVER_HANDSHAKE_TRAFFIC_SECRET" in failed[0]["detail"] + failed[1]["detail"]
    assert s["commands"] == []


def test_wrong_application_secret_names_that_secret(smtp13: Dialog, tmp_path: Path) -> None:
    lines = []
    for line in smtp13.keylog.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "CLIENT_TRAFFIC_SECRET_0":
            parts[2] = "".join("0" if ch != "0" else "1" for ch in parts[2])
        lines.append(" ".join(parts))
    wrong = tmp_path / "wrong-app.keys"
    wrong.write_text("\n".join(lines) + "\n")
    s = analyze(write_capture(tmp_path / "wrong-app.pcap", smtp13, 465), wrong)
    # the server's side decrypts (its replies are read), the client's does not: decrypted is honest
    assert s["tls_info"]["handshake_decrypted"] is True
    [failed] = [a for a in s["anomalies"] if a["kind"] == "tls-decrypt-failed"]
    assert failed["direction"] == "client"
    assert "CLIENT_TRAFFIC_SECRET_0" in failed["detail"] and "wrong key" in failed["detail"]
    assert [c["verb"] for c in s["commands"]] == []


# --------------------------------------------------------------------------- encrypted alert


def test_encrypted_alert_row_text_is_not_doubled() -> None:
    event = TlsAlert(direction=Direction.SERVER, ts=1.0, frame=9, level="encrypted", description="encrypted")
    row = tls_row_event(event, Phase.TEARDOWN)
    assert isinstance(row, Note)
    assert "encrypted encrypted" not in row.text
    plain = tls_row_event(TlsAlert(direction=Direction.SERVER, ts=1.0, frame=9, level="warning",
                                   description="close_notify"), Phase.TEARDOWN)
    assert isinstance(plain, Note) and plain.text == "TLS alert: warning close_notify"


def test_encrypted_alert_in_the_terminal_is_not_doubled(smtp13: Dialog, tmp_path: Path) -> None:
    dialog = tls_dialog(tmp_path, SMTP_LINES[:3], version=ssl.TLSVersion.TLSv1_2,
                        ciphers="ECDHE-ECDSA-AES128-GCM-SHA256")
    path = write_capture(tmp_path / "alert.pcap", dialog, 465)
    out = run_cli("analyze", "--width", "160", str(path)).stdout
    assert "encrypted encrypted" not in out
    assert "TLS alert: encrypted" in out


# --------------------------------------------------------------------------- the TLS layer itself


def _feed(dialog: Dialog, dropped: set[int]) -> dict[Direction, list[tuple[str, object]]]:
    """Feed the dialog's records to a TlsSession, losing ``dropped`` (consecutive ones as one TCP
    gap); return per direction the plaintext and gaps handed on, adjacent plaintext merged."""
    session = TlsSession(KeyLog.from_text(dialog.keylog.read_text()))
    items: list[Chunk | StreamGap | Eof] = []
    for i, (who, rec, _plain) in enumerate(dialog.records):
        d = Direction.CLIENT if who == "c" else Direction.SERVER
        if i in dropped:
            last = items[-1] if items else None
            if isinstance(last, StreamGap) and last.direction is d:
                last.nbytes += len(rec)
            else:
                items.append(StreamGap(d, len(rec), 1.0 + i, i + 1))
        else:
            items.append(Chunk(d, rec, 1.0 + i, i + 1))
    items += [Eof(Direction.CLIENT, 99.0, None), Eof(Direction.SERVER, 99.0, None)]
    got: dict[Direction, list[tuple[str, object]]] = {Direction.CLIENT: [], Direction.SERVER: []}
    for item in items:
        for out in session.feed(item):
            if isinstance(out, Chunk):
                seq = got[out.direction]
                if seq and seq[-1][0] == "data":
                    seq[-1] = ("data", seq[-1][1] + out.data)  # type: ignore[operator]
                else:
                    seq.append(("data", out.data))
            elif isinstance(out, StreamGap):
                assert out.nbytes > 0
                got[out.direction].append(("gap", out.nbytes))
    return got


def _expected(dialog: Dialog, dropped: set[int]) -> dict[Direction, list[tuple[str, object]]]:
    """What should come out: the kept plaintext, and a gap per loss the dissector must hear of before
    it reads on. Losses of one direction with nothing read in between are one gap. A gap is ``exact``
    (the lost plaintext) when a record of its direction authenticated before the gap had to be told
    and no estimated gap of that direction came since its last record read (then the layer knows how
    many records were lost); else it is only bounded by the TCP bytes lost."""
    want: dict[Direction, list[tuple[str, object]]] = {Direction.CLIENT: [], Direction.SERVER: []}
    pending: dict[Direction, list[Any]] = {}
    """direction → [plaintext lost, TCP bytes lost, extent known, exact]"""
    unsure = {Direction.CLIENT: False, Direction.SERVER: False}

    def tell(d: Direction) -> None:
        if d in pending:
            plain, wire, known, exact = pending.pop(d)
            want[d].append(("gap", plain, known and exact, wire))
            unsure[d] = unsure[d] or not known

    for i, (who, rec, plain) in enumerate(dialog.records):
        d = Direction.CLIENT if who == "c" else Direction.SERVER
        if i in dropped:
            if d in pending and pending[d][2]:
                tell(d)
            lost = pending.setdefault(d, [0, 0, False, False])
            lost[0] += len(plain)
            lost[1] += len(rec)
            continue
        if d in pending and not pending[d][2]:
            pending[d][2:] = [True, not unsure[d]]
        unsure[d] = False
        if plain:
            tell(Direction.CLIENT)
            tell(Direction.SERVER)
            seq = want[d]
            if seq and seq[-1][0] == "data":
                seq[-1] = ("data", seq[-1][1] + plain)  # type: ignore[operator]
            else:
                seq.append(("data", plain))
    tell(Direction.CLIENT)
    tell(Direction.SERVER)
    return want


def same(got: dict[Direction, list[tuple[str, object]]], want: dict[Direction, list[tuple[str, object]]]) -> None:
    for d in (Direction.CLIENT, Direction.SERVER):
        assert [g[0] for g in got[d]] == [w[0] for w in want[d]], d
        for g, w in zip(got[d], want[d], strict=True):
            if g[0] == "data":
                assert g == w
            elif w[2]:
                assert g[1] == w[1], d  # exact: the lost plaintext, byte for byte
            else:  # estimated (how many records were lost is not known yet): bounded by the TCP bytes
                assert 1 <= g[1] <= w[3], d


@pytest.mark.parametrize("seed", range(12))
def test_random_record_loss_gives_exact_gaps_and_never_glues(smtp13: Dialog, seed: int) -> None:
    """Lose random application-data records (TLS 1.3, AES-GCM): every loss reaches the dissector as a
    gap at its place (exactly the lost plaintext when the layer can know it); the plaintext around a
    gap is never joined."""
    rng = random.Random(seed)
    carrying = [i for i, r in enumerate(smtp13.records) if r[2]]
    dropped = set(rng.sample(carrying, rng.randint(1, 6)))
    # a run of lost records of one direction only merges into one gap when nothing of that
    # direction came between: _expected does the same
    same(_feed(smtp13, dropped), _expected(smtp13, dropped))


def test_no_gap_is_handed_on_without_keys(smtp13: Dialog) -> None:
    session = TlsSession(None)
    out: list[object] = []
    for i, (who, rec, _plain) in enumerate(smtp13.records):
        d = Direction.CLIENT if who == "c" else Direction.SERVER
        out += session.feed(StreamGap(d, len(rec), 1.0, i + 1) if i == 12 else Chunk(d, rec, 1.0, i + 1))
    assert not any(isinstance(o, (StreamGap, Chunk)) for o in out)


@pytest.fixture(scope="module")
def chacha12(tmp_path_factory: pytest.TempPathFactory) -> Dialog:
    return tls_dialog(tmp_path_factory.mktemp("chacha12"), SMTP_LINES, version=ssl.TLSVersion.TLSv1_2,
                      ciphers="ECDHE-ECDSA-CHACHA20-POLY1305")


@pytest.mark.parametrize("seed", range(4))
def test_random_record_loss_tls12_chacha(chacha12: Dialog, seed: int) -> None:
    rng = random.Random(100 + seed)
    carrying = [i for i, r in enumerate(chacha12.records) if r[2]]
    dropped = set(rng.sample(carrying, rng.randint(1, 6)))
    same(_feed(chacha12, dropped), _expected(chacha12, dropped))
