"""Decryption against real OpenSSL conversations, for the versions and suites the samples lack.

OpenSSL (through Python's ``ssl``, in memory, no sockets) writes both the records and the key
log, so these check our key schedules and record ciphers against an independent implementation.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from mt_tls_lab import CLIENT_LINES, HOSTNAME, SERVER_LINES, Conversation, converse
from mt_tls_streams import Run, run

from mailtrace.model import Chunk, Direction
from mailtrace.tls import HandshakeSeen, KeyLog, OpaqueData, TlsAnomaly, TlsSession, tls_info_to_json
from mailtrace.tls.handshake import parse_server_hello

BIG = 40_000  # a server message spanning three full-size records


def decrypt(conv: Conversation | list[Chunk], keylog: str | None = None) -> tuple[TlsSession, Run]:
    items = conv.items if isinstance(conv, Conversation) else conv
    text = conv.keylog if isinstance(conv, Conversation) else keylog
    session = TlsSession(KeyLog.from_text(text or ""))
    return session, run(session, list(items))


def assert_clean_plaintext(session: TlsSession, result: Run, big: int = BIG) -> None:
    assert not result.of(TlsAnomaly), result.of(TlsAnomaly)
    assert not result.of(OpaqueData)
    assert result.plaintext[Direction.CLIENT] == b"".join(CLIENT_LINES)
    blob = (bytes(range(256)) * (big // 256 + 1))[:big]
    expected_server = SERVER_LINES[0] + SERVER_LINES[1] + blob + SERVER_LINES[2]
    assert result.plaintext[Direction.SERVER] == expected_server
    info = tls_info_to_json(session.info)
    assert info["decrypted"] and info["established"]
    assert info["sni"] == HOSTNAME
    assert [(a["direction"], a["description"]) for a in info["alerts"]] == [
        ("client", "close_notify"),
        ("server", "close_notify"),
    ]


def server_hello_extensions(conv: Conversation) -> tuple[int, ...]:
    first = next(c.data for c in conv.items if c.direction is Direction.SERVER)
    return parse_server_hello(first[9 : 9 + int.from_bytes(first[6:9], "big")]).extensions


TLS12 = [
    # OpenSSL cipher string, version, disable encrypt-then-MAC, expected IANA name
    ("ECDHE-RSA-AES128-GCM-SHA256", ssl.TLSVersion.TLSv1_2, False, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
    ("ECDHE-RSA-AES256-GCM-SHA384", ssl.TLSVersion.TLSv1_2, False, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        ssl.TLSVersion.TLSv1_2,
        False,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    ),
    ("AES128-GCM-SHA256", ssl.TLSVersion.TLSv1_2, False, "TLS_RSA_WITH_AES_128_GCM_SHA256"),
    ("AES128-CCM", ssl.TLSVersion.TLSv1_2, False, "TLS_RSA_WITH_AES_128_CCM"),
    ("AES256-CCM8", ssl.TLSVersion.TLSv1_2, False, "TLS_RSA_WITH_AES_256_CCM_8"),
    ("ECDHE-RSA-AES128-SHA", ssl.TLSVersion.TLSv1_2, False, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"),
    ("ECDHE-RSA-AES128-SHA", ssl.TLSVersion.TLSv1_2, True, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"),
    ("ECDHE-RSA-AES256-SHA384", ssl.TLSVersion.TLSv1_2, True, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384"),
    ("AES256-SHA256", ssl.TLSVersion.TLSv1_2, False, "TLS_RSA_WITH_AES_256_CBC_SHA256"),
    ("ECDHE-RSA-AES128-SHA:@SECLEVEL=0", ssl.TLSVersion.TLSv1_1, True, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"),
    ("ECDHE-RSA-AES256-SHA:@SECLEVEL=0", ssl.TLSVersion.TLSv1, False, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"),
    ("ECDHE-RSA-AES256-SHA:@SECLEVEL=0", ssl.TLSVersion.TLSv1, True, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"),
]


@pytest.mark.parametrize(("ciphers", "version", "no_etm", "iana"), TLS12, ids=str)
def test_tls12_and_older_suites(
    tmp_path: Path, ciphers: str, version: ssl.TLSVersion, no_etm: bool, iana: str
) -> None:
    conv = converse(tmp_path, ciphers=ciphers, version=version, no_etm=no_etm, big=BIG)
    session, result = decrypt(conv)
    assert_clean_plaintext(session, result)
    assert session.info.cipher == iana
    assert (
        session.info.version == {"TLSv1": "TLS 1.0", "TLSv1.1": "TLS 1.1", "TLSv1.2": "TLS 1.2"}[conv.version]
    )
    [cert] = session.info.certificates
    assert cert.subject == f"C=DE,O=mailtrace tests,CN={HOSTNAME}"
    assert cert.san == (HOSTNAME, "imap.lab.example") and cert.serial == "0102"
    assert cert.not_before == "2024-01-02T03:04:05Z"
    if "CBC" in iana:  # both MAC orders are covered: OpenSSL uses encrypt-then-MAC unless told not to
        assert (22 in server_hello_extensions(conv)) is not no_etm


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_resumed_session_decrypts(tmp_path: Path, version: ssl.TLSVersion) -> None:
    first = converse(tmp_path, version=version)
    second = converse(tmp_path, resume=first, big=BIG)
    assert second.resumed
    session, result = decrypt(second)
    assert_clean_plaintext(session, result)
    assert session.info.resumed
    assert session.info.certificates == ()  # an abbreviated handshake sends none
    fresh, _ = decrypt(first)
    assert not fresh.info.resumed


def test_tls13_key_update_both_directions(tmp_path: Path) -> None:
    try:
        conv = converse(tmp_path, version=ssl.TLSVersion.TLSv1_3, key_update=True, big=BIG)
    except RuntimeError as exc:
        pytest.skip(f"cannot make OpenSSL send a KeyUpdate here: {exc}")
    session, result = decrypt(conv)
    assert_clean_plaintext(session, result)
    updates = [(e.direction, e.detail) for e in result.of(HandshakeSeen) if e.kind == "key_update"]
    assert updates == [(Direction.CLIENT, "update requested"), (Direction.SERVER, "update not requested")]
    assert session.info.key_updates == 2


OPENSSL_CONF = """openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
Ciphersuites = {suite}
"""


@pytest.mark.parametrize(
    "suite",
    [
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_256_GCM_SHA384",
        "TLS_CHACHA20_POLY1305_SHA256",
        "TLS_AES_128_CCM_SHA256",
        "TLS_AES_128_CCM_8_SHA256",
    ],
)
def test_tls13_suites(tmp_path: Path, suite: str) -> None:
    """Python cannot pick a TLS 1.3 suite, OpenSSL's config can: run the lab in a subprocess."""
    conf = tmp_path / "openssl.cnf"
    conf.write_text(OPENSSL_CONF.format(suite=suite))
    out = tmp_path / "conv.json"
    here = Path(__file__).resolve().parent
    env = {
        **os.environ,
        "OPENSSL_CONF": str(conf),
        "PYTHONPATH": os.pathsep.join([str(here.parents[1]), str(here)]),
    }
    subprocess.run(
        [sys.executable, str(here / "mt_tls_lab.py"), str(out), str(tmp_path), str(BIG)],
        check=True,
        env=env,
        timeout=60,
    )
    data = json.loads(out.read_text())
    assert data["cipher"] == suite
    items = [Chunk(Direction(i["d"]), bytes.fromhex(i["data"]), i["ts"], i["frame"]) for i in data["items"]]
    session, result = decrypt(items, data["keylog"])
    assert_clean_plaintext(session, result)
    assert session.info.cipher == suite and session.info.version == "TLS 1.3"
    [cert] = session.info.certificates  # read from the decrypted handshake
    assert cert.subject == f"C=DE,O=mailtrace tests,CN={HOSTNAME}"


def test_tls13_hello_retry_request(tmp_path: Path) -> None:
    """The server only takes P-384, the client's key share is X25519: HelloRetryRequest first."""
    conv = converse(tmp_path, version=ssl.TLSVersion.TLSv1_3, server_curve="secp384r1", big=BIG)
    session, result = decrypt(conv)
    assert_clean_plaintext(session, result)
    hellos = [(e.kind, e.detail) for e in result.of(HandshakeSeen) if e.kind.endswith("hello")]
    assert hellos == [
        ("client_hello", f"SNI {HOSTNAME}"),
        ("server_hello", "hello retry request, TLS_AES_256_GCM_SHA384"),
        ("client_hello", f"SNI {HOSTNAME}"),
        ("server_hello", "TLS 1.3, TLS_AES_256_GCM_SHA384"),
    ]


def test_tls12_renegotiation_uses_the_new_client_random(tmp_path: Path) -> None:
    try:
        conv = converse(
            tmp_path,
            ciphers="ECDHE-RSA-AES128-GCM-SHA256",
            version=ssl.TLSVersion.TLSv1_2,
            renegotiate=True,
            big=BIG,
        )
    except RuntimeError as exc:
        pytest.skip(f"cannot make OpenSSL renegotiate here: {exc}")
    assert conv.keylog.count("CLIENT_RANDOM") == 2
    session, result = decrypt(conv)
    assert_clean_plaintext(session, result)
    hellos = [(e.kind, e.encrypted) for e in result.of(HandshakeSeen) if e.kind.endswith("hello")]
    assert hellos == [
        ("client_hello", False),
        ("server_hello", False),
        ("client_hello", True),
        ("server_hello", True),
    ]
    assert len(session.info.certificates) == 1  # the same chain twice is listed once
