"""Small pieces: key log parsing, names and suite parameters, the JSON shape."""

from __future__ import annotations

from pathlib import Path

from mailtrace.model import Chunk, Direction
from mailtrace.tls import KeyLog, TlsSession, tls_info_to_json
from mailtrace.tls.crypto import hkdf_expand_label
from mailtrace.tls.names import cipher_name, is_grease, version_name
from mailtrace.tls.suites import Bulk, suite_params

CR = bytes(range(32))


def test_keylog_parses_and_counts_bad_lines(tmp_path: Path) -> None:
    text = "\n".join(
        [
            "# comment",
            "",
            f"CLIENT_RANDOM {CR.hex()} {'ab' * 48}",
            f"SERVER_TRAFFIC_SECRET_0 {CR.hex().upper()} {'cd' * 48}",
            f"RSA {'00' * 8} {'11' * 48}",  # keyed by encrypted premaster: not used
            f"CLIENT_RANDOM {'zz' * 32} {'ab' * 48}",
            f"CLIENT_RANDOM {'00' * 31} {'ab' * 48}",
            "CLIENT_RANDOM too few",
        ]
    )
    path = tmp_path / "keys.log"
    path.write_text(text)
    log = KeyLog.from_file(path)
    assert len(log) == 1 and CR in log
    assert log.get(CR, "CLIENT_RANDOM") == bytes.fromhex("ab" * 48)
    assert log.labels(CR) == {"CLIENT_RANDOM", "SERVER_TRAFFIC_SECRET_0"}
    assert log.get(CR, "CLIENT_TRAFFIC_SECRET_0") is None and log.get(b"x" * 32, "CLIENT_RANDOM") is None
    assert log.skipped_lines == 4
    other = KeyLog.from_text(f"CLIENT_RANDOM {CR.hex()} {'ef' * 48}\r\n".encode())
    log.merge(other)
    assert log.get(CR, "CLIENT_RANDOM") == bytes.fromhex("ef" * 48)  # the merged-in value wins


def test_names_as_tshark_spells_them() -> None:
    assert version_name(0x0304) == "TLS 1.3" and version_name(0x0300) == "SSL 3.0"
    assert version_name(0x7F1C) == "TLS 1.3 (draft 28)"
    assert version_name(0xDADA) == "Reserved (GREASE)" and is_grease(0x8A8A) and not is_grease(0x0303)
    assert cipher_name(0xC02F) == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    assert cipher_name(0x00FF) == "TLS_EMPTY_RENEGOTIATION_INFO_SCSV"
    assert cipher_name(0x1234) == "Unknown (0x1234)"


def test_suite_parameters_from_names() -> None:
    p = suite_params(0x1302)
    assert p is not None and (p.bulk, p.key_len, p.fixed_iv_len, p.prf_hash, p.tls13) == (
        Bulk.AES_GCM,
        32,
        12,
        "sha384",
        True,
    )
    p = suite_params(0xC030)
    assert p is not None and (p.bulk, p.key_len, p.fixed_iv_len, p.prf_hash) == (
        Bulk.AES_GCM,
        32,
        4,
        "sha384",
    )
    p = suite_params(0xCCA8)
    assert p is not None and (p.bulk, p.fixed_iv_len) == (Bulk.CHACHA20_POLY1305, 12)
    p = suite_params(0xC013)
    assert p is not None and (p.bulk, p.mac, p.mac_len, p.prf_hash) == (Bulk.AES_CBC, "sha1", 20, "sha256")
    p = suite_params(0xC0A1)
    assert p is not None and (p.bulk, p.tag_len) == (Bulk.AES_CCM, 8)
    assert suite_params(0x000A) is None  # 3DES: not supported
    assert suite_params(0x0005) is None  # RC4
    assert suite_params(0x00FF) is None


def test_hkdf_expand_label_rfc8448() -> None:
    """RFC 8448 §3 (simple 1-RTT): server handshake traffic secret → write key and IV."""
    secret = bytes.fromhex("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38")
    assert hkdf_expand_label("sha256", secret, b"key", b"", 16).hex() == "3fce516009c21727d0f2e4e86ee403bc"
    assert hkdf_expand_label("sha256", secret, b"iv", b"", 12).hex() == "5d313eb2671276ee13000b30"


def test_info_json_shape_before_anything() -> None:
    session = TlsSession()
    assert tls_info_to_json(session.info) == {
        "sni": None,
        "client_versions": [],
        "cipher_suites_offered": 0,
        "alpn": [],
        "alpn_selected": None,
        "version": None,
        "cipher": None,
        "resumed": False,
        "certificates": [],
        "alerts": [],
        "bytes": {"client": 0, "server": 0},
        "handshake_seconds": None,
        "established": False,
        "decrypted": False,
        "handshake_decrypted": False,
        "key_updates": 0,
        "first_frame": None,
        "first_ts": None,
        "anomalies": [],
    }
    assert session.feed(Chunk(Direction.CLIENT, b"", 1.0, 1)) == []
