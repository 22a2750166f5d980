"""Peer input never raises: wrong keys, gaps, truncation, garbage, oversize records, any split."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mt_tls_lab import CLIENT_LINES, converse
from mt_tls_streams import Item, Run, run, tls_connections

from mailtrace.model import Chunk, Direction, Eof, StreamGap
from mailtrace.tls import (
    HandshakeSeen,
    KeyLog,
    OpaqueData,
    TlsAlert,
    TlsAnomaly,
    TlsSession,
    tls_info_to_json,
)
from mailtrace.tls.records import Problem, Record, RecordReader

C, S = Direction.CLIENT, Direction.SERVER


@pytest.fixture(scope="module")
def starttls(shared: Path) -> tuple[list[Item], str]:
    """The smtplib session of smtp-starttls (TLS 1.3, keys logged) and its key log text."""
    cap = shared / "samples-src/captures/smtp-starttls.pcap"
    [items] = [i for c, i in tls_connections(cap) if c.server[1] == 587]
    return items, cap.with_suffix(".keylog").read_text()


def feed_all(items: list[Item], keylog: str | None) -> tuple[TlsSession, Run]:
    session = TlsSession(KeyLog.from_text(keylog) if keylog is not None else None)
    return session, run(session, items)


def kinds(result: Run) -> list[str]:
    return [e.kind for e in result.of(TlsAnomaly)]


def server_chunk(items: list[Item], frame: int) -> int:
    [index] = [i for i, it in enumerate(items) if isinstance(it, Chunk) and it.frame == frame]
    return index


# ------------------------------------------------------------------ keys


def flip_secrets(keylog: str) -> str:
    """Flip the last hex digit of every secret (the client randoms stay right)."""
    out = []
    for line in keylog.splitlines():
        parts = line.split()
        if len(parts) == 3 and not line.startswith("#"):
            last = parts[2][-1]
            parts[2] = parts[2][:-1] + ("0" if last != "0" else "1")
        out.append(" ".join(parts))
    return "\n".join(out)


def test_wrong_tls13_key_is_an_anomaly_and_stays_opaque(starttls: tuple[list[Item], str]) -> None:
    items, keylog = starttls
    session, result = feed_all(items, flip_secrets(keylog))
    assert kinds(result) == ["decrypt-failed", "decrypt-failed"]  # once per direction
    assert result.plaintext == {C: b"", S: b""}
    assert sum(e.nbytes for e in result.of(OpaqueData)) > 1000
    info = session.info
    assert not info.decrypted and info.version == "TLS 1.3"
    assert info.established  # falls back to the positional reading of the handshake


def test_wrong_tls12_master_secret(tmp_path: Path) -> None:
    conv = converse(tmp_path, ciphers="ECDHE-RSA-AES128-GCM-SHA256", version=ssl.TLSVersion.TLSv1_2)
    session, result = feed_all(conv.items, flip_secrets(conv.keylog))
    assert kinds(result) == ["decrypt-failed", "decrypt-failed"]
    assert result.plaintext == {C: b"", S: b""}
    assert [a.level for a in result.of(TlsAlert)] == ["encrypted", "encrypted"]
    assert session.info.certificates  # TLS 1.2 certificates are plaintext anyway


def test_keylog_for_another_session(starttls: tuple[list[Item], str]) -> None:
    items, _ = starttls
    other = "CLIENT_RANDOM " + "11" * 32 + " " + "22" * 48 + "\n"
    _, result = feed_all(items, other)
    assert kinds(result) == ["no-keys"]
    assert result.plaintext == {C: b"", S: b""}


# ------------------------------------------------------------------ gaps, truncation


def test_gap_inside_a_record_skips_only_that_record(starttls: tuple[list[Item], str]) -> None:
    items, keylog = starttls
    i = server_chunk(items, 28)  # "250 2.1.0 Ok" in one record
    chunk = items[i]
    assert isinstance(chunk, Chunk)
    data = chunk.data
    cut = [
        Chunk(S, data[:10], chunk.ts, chunk.frame),
        StreamGap(S, len(data) - 20, chunk.ts, chunk.frame),
        Chunk(S, data[-10:], chunk.ts, chunk.frame),
    ]
    session, result = feed_all([*items[:i], *cut, *items[i + 1 :]], keylog)
    assert kinds(result) == ["gap-in-record"]
    server = result.plaintext[S]
    assert b"250 2.1.0 Ok" not in server
    assert b"250 2.1.5 Ok" in server and server.endswith(b"221 2.0.0 Bye\r\n")
    assert b"rcpt TO:<carol@remote.example>" in result.plaintext[C]
    assert session.info.alerts[-1].description == "close_notify"


def test_gap_over_several_records_resyncs(starttls: tuple[list[Item], str]) -> None:
    items, keylog = starttls
    a, b, c = (server_chunk(items, f) for f in (28, 30, 32))
    lost = [items[a], items[b]]
    tail = items[c]
    assert isinstance(tail, Chunk)
    nbytes = sum(len(x.data) for x in lost if isinstance(x, Chunk)) + 7
    kept = [it for k, it in enumerate(items) if k not in (a, b, c)]
    pos = kept.index(items[c + 1])
    gap = StreamGap(S, nbytes, tail.ts, tail.frame)
    rest = Chunk(S, tail.data[7:], tail.ts, tail.frame)
    _, result = feed_all([*kept[:pos], gap, rest, *kept[pos:]], keylog)
    assert kinds(result) == ["gap"]
    server = result.plaintext[S]
    assert b"250 2.1.5 Ok" not in server and b"354 End data" not in server
    assert server.endswith(b"221 2.0.0 Bye\r\n")  # found the next header and the right sequence number


def test_gap_before_a_record_without_keys_resyncs(starttls: tuple[list[Item], str]) -> None:
    items, _ = starttls
    i = server_chunk(items, 30)
    chunk = items[i]
    assert isinstance(chunk, Chunk)
    gapped = [*items[:i], StreamGap(S, len(chunk.data), chunk.ts, chunk.frame), *items[i + 1 :]]
    whole, _ = feed_all(items, None)
    session, result = feed_all(gapped, None)
    assert kinds(result) == ["gap"]
    assert session.info.bytes_server == whole.info.bytes_server - len(chunk.data)
    opaque = sum(e.nbytes for e in result.of(OpaqueData))
    assert opaque == sum(e.nbytes for e in run(TlsSession(), items).of(OpaqueData)) - (len(chunk.data) - 5)


def test_truncated_record_at_eof(starttls: tuple[list[Item], str]) -> None:
    items, keylog = starttls
    i = server_chunk(items, 36)  # "221 2.0.0 Bye"
    chunk = items[i]
    assert isinstance(chunk, Chunk)
    cut = [*items[:i], Chunk(S, chunk.data[:-3], chunk.ts, chunk.frame), Eof(S, chunk.ts, chunk.frame)]
    _, result = feed_all(cut, keylog)
    assert kinds(result) == ["truncated-record"]
    assert [e.detail for e in result.of(TlsAnomaly)] == [
        f"stream ended {len(chunk.data) - 3} bytes into a record"
    ]
    assert result.plaintext[S].endswith(b"250 2.0.0 Ok: queued as 8E43E16C722\r\n")


# ------------------------------------------------------------------ garbage, oversize


def test_garbage_instead_of_tls() -> None:
    session = TlsSession()
    out = session.feed(Chunk(C, b"EHLO not.tls.example\r\n", 1.0, 1))
    [anomaly] = [e for e in out if isinstance(e, TlsAnomaly)]
    assert anomaly.kind == "not-tls" and anomaly.frame == 1
    out = session.feed(Chunk(C, b"\x16\x03\x01\x00\x05hello", 2.0, 2))
    assert [type(e) for e in out] == [OpaqueData]  # that direction is not TLS: bytes are only counted
    assert session.info.bytes_client == 32


def test_sslv2_hello_is_named() -> None:
    out = TlsSession().feed(Chunk(C, bytes.fromhex("802b0103010012000000100000"), 1.0, 1))
    assert [e.kind for e in out if isinstance(e, TlsAnomaly)] == ["sslv2-hello"]


def test_garbage_between_records_resyncs(starttls: tuple[list[Item], str]) -> None:
    items, keylog = starttls
    i = server_chunk(items, 28)
    junk = Chunk(S, b"\x00garbage\xff" * 5, items[i].ts, items[i].frame)
    _, result = feed_all([*items[:i], junk, *items[i:]], keylog)
    assert kinds(result) == ["bad-record-header"]
    whole = feed_all(items, keylog)[1]
    assert result.plaintext == whole.plaintext  # nothing lost: the junk was extra


def test_record_length_65535() -> None:
    session = TlsSession()
    hello = bytes.fromhex("160301ffff")  # a handshake header claiming 65535 bytes
    out = session.feed(Chunk(C, hello + b"A" * 70000, 1.0, 1))
    assert [e.kind for e in out if isinstance(e, TlsAnomaly)] == ["record-too-long"]
    assert sum(e.nbytes for e in out if isinstance(e, OpaqueData)) > 60000
    reader = RecordReader(18432)
    reader.feed(bytes.fromhex("1703030100"))  # first record fine and started
    reader.feed(b"x" * 256)
    results = reader.feed(bytes.fromhex("170303ffff") + b"B" * 100_000)
    assert isinstance(results[0], Problem) and results[0].kind.value == "record-too-long"
    assert reader.buffered < 18432 + 5


def test_oversized_handshake_message_is_skipped() -> None:
    session = TlsSession(max_handshake=1000)
    body = b"\x01\x00\x10\x00" + b"\x00" * 2000  # a ClientHello claiming 4096 bytes
    records = b"".join(b"\x16\x03\x01" + len(p).to_bytes(2, "big") + p for p in (body[:1500], body[1500:]))
    out = session.feed(Chunk(C, records, 1.0, 1))
    assert [e.kind for e in out if isinstance(e, TlsAnomaly)] == ["handshake-too-long"]


def test_malformed_client_hello() -> None:
    body = b"\x03\x03" + b"\x00" * 10  # cut short
    record = (
        b"\x16\x03\x01" + (len(body) + 4).to_bytes(2, "big") + b"\x01" + len(body).to_bytes(3, "big") + body
    )
    out = TlsSession().feed(Chunk(C, record, 1.0, 1))
    assert [e.kind for e in out if isinstance(e, TlsAnomaly)] == ["bad-handshake"]
    assert [e.detail for e in out if isinstance(e, HandshakeSeen)] == ["malformed"]


# ------------------------------------------------------------------ split invariance


def summary(session: TlsSession, result: Run) -> tuple[object, ...]:
    return (
        result.plaintext,
        tls_info_to_json(session.info),
        kinds(result),
        [(e.direction, e.kind, e.detail) for e in result.of(HandshakeSeen)],
        sum(e.nbytes for e in result.of(OpaqueData)),
        [(e.level, e.description, e.frame) for e in result.of(TlsAlert)],
    )


def split(items: list[Item], sizes: list[int]) -> list[Item]:
    out: list[Item] = []
    k = 0
    for item in items:
        if not isinstance(item, Chunk):
            out.append(item)
            continue
        data = item.data
        while data:
            n = sizes[k % len(sizes)]
            k += 1
            out.append(Chunk(item.direction, data[:n], item.ts, item.frame))
            data = data[n:]
    return out


def test_byte_by_byte_gives_the_same_result(shared: Path) -> None:
    for name in ("smtp-starttls", "tls-implicit"):
        cap = shared / "samples-src/captures" / f"{name}.pcap"
        keylog = cap.with_suffix(".keylog").read_text()
        for _conn, items in tls_connections(cap):
            whole = feed_all(items, keylog)
            bytewise = feed_all(split(items, [1]), keylog)
            assert summary(*whole) == summary(*bytewise)
            assert whole[1].plaintext[C] or whole[1].plaintext[S] == b""


def test_byte_by_byte_without_keys_on_the_corpus(shared: Path) -> None:
    for capture in (
        "zeek/tls-imap-starttls/imap-starttls.pcap",
        "ndpi/imaps/imaps.pcap",
        "ndpi/smtps/smtps.pcapng",
    ):
        for _conn, items in tls_connections(shared / "corpus" / capture):
            assert summary(*feed_all(items, None)) == summary(*feed_all(split(items, [1]), None))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(min_value=1, max_value=700), min_size=1, max_size=8))
def test_any_split_gives_the_same_plaintext(starttls: tuple[list[Item], str], sizes: list[int]) -> None:
    items, keylog = starttls
    assert summary(*feed_all(split(items, sizes), keylog)) == summary(*feed_all(items, keylog))


@settings(max_examples=200, deadline=None)
@given(client=st.binary(max_size=300), server=st.binary(max_size=300), gap=st.integers(-5, 400))
def test_random_bytes_never_raise(client: bytes, server: bytes, gap: int) -> None:
    session = TlsSession(KeyLog.from_text("CLIENT_RANDOM " + "00" * 32 + " " + "00" * 48))
    for item in (
        Chunk(C, b"\x16\x03\x01" + client, 1.0, 1),
        Chunk(S, server, 2.0, 2),
        StreamGap(S, gap, 3.0, 3),
        Chunk(S, client + server, 4.0, 4),
        Eof(C, 5.0, None),
        Eof(S, 5.0, 5),
    ):
        for out in session.feed(item):
            assert isinstance(out, Chunk | TlsAnomaly | OpaqueData | HandshakeSeen | TlsAlert) or out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_capture_never_raises(starttls: tuple[list[Item], str], data: st.DataObject) -> None:
    items, keylog = starttls
    index = data.draw(st.sampled_from([i for i, it in enumerate(items) if isinstance(it, Chunk)]))
    chunk = items[index]
    assert isinstance(chunk, Chunk)
    pos = data.draw(st.integers(0, len(chunk.data) - 1))
    value = data.draw(st.integers(0, 255))
    mutated = Chunk(
        chunk.direction, chunk.data[:pos] + bytes([value]) + chunk.data[pos + 1 :], chunk.ts, chunk.frame
    )
    session, result = feed_all([*items[:index], mutated, *items[index + 1 :]], keylog)
    assert session.info.first_frame is not None
    assert len(result.plaintext[C]) <= len(b"".join(CLIENT_LINES)) * 100


def test_record_reader_yields_records() -> None:
    reader = RecordReader(100)
    out = reader.feed(bytes.fromhex("1503030002") + b"\x01\x00" + bytes.fromhex("17030300"))
    assert out == [Record(21, 0x0303, bytes.fromhex("1503030002"), b"\x01\x00")]
    assert reader.feed(b"\x01z") == [Record(23, 0x0303, bytes.fromhex("1703030001"), b"z")]
