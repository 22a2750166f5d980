"""What it takes to decrypt a cipher suite, derived from its IANA name.

The key exchange part of a name does not matter here, because the key log hands us the master
secret (TLS ≤ 1.2) or the traffic secrets (TLS 1.3) directly. Only the bulk cipher, the MAC and
the PRF hash do, and those are spelled out in the name's tail: ``..._WITH_AES_128_GCM_SHA256``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from mailtrace.tls.suite_names import CIPHER_SUITE_NAMES


class Bulk(enum.Enum):
    """How records are protected."""

    AES_GCM = "aes-gcm"
    AES_CCM = "aes-ccm"
    CHACHA20_POLY1305 = "chacha20-poly1305"
    AES_CBC = "aes-cbc"


@dataclass(frozen=True, slots=True)
class SuiteParams:
    """The parameters of a cipher suite that decryption needs."""

    code: int
    """The IANA code point."""
    name: str
    """The IANA name."""
    bulk: Bulk
    """The record protection algorithm."""
    key_len: int
    """Bytes of the write key."""
    fixed_iv_len: int
    """Bytes of the write IV taken from the key block (TLS ≤ 1.2); TLS 1.3 always uses 12."""
    tag_len: int
    """Bytes of the AEAD tag (0 for CBC)."""
    mac: str | None
    """HMAC hash of a CBC suite (``sha1``, ``sha256``, ``sha384``), None for AEAD."""
    prf_hash: str
    """Hash of the TLS 1.2 PRF, or of HKDF in TLS 1.3: ``sha256`` or ``sha384``."""
    tls13: bool
    """A TLS 1.3 suite (0x1301-0x1305)."""

    @property
    def mac_len(self) -> int:
        return {"sha1": 20, "sha256": 32, "sha384": 48}[self.mac] if self.mac else 0


_BULKS: dict[str, tuple[Bulk, int, int, int]] = {
    # name tail (without the hash)  → bulk, key length, fixed IV length, tag length
    "AES_128_GCM": (Bulk.AES_GCM, 16, 4, 16),
    "AES_256_GCM": (Bulk.AES_GCM, 32, 4, 16),
    "AES_128_CCM": (Bulk.AES_CCM, 16, 4, 16),
    "AES_256_CCM": (Bulk.AES_CCM, 32, 4, 16),
    "AES_128_CCM_8": (Bulk.AES_CCM, 16, 4, 8),
    "AES_256_CCM_8": (Bulk.AES_CCM, 32, 4, 8),
    "CHACHA20_POLY1305": (Bulk.CHACHA20_POLY1305, 32, 12, 16),
    "AES_128_CBC": (Bulk.AES_CBC, 16, 16, 0),
    "AES_256_CBC": (Bulk.AES_CBC, 32, 16, 0),
}
_HASHES = {"SHA": "sha1", "SHA256": "sha256", "SHA384": "sha384"}


def suite_params(code: int) -> SuiteParams | None:
    """The decryption parameters of suite ``code``, or None when mailtrace cannot decrypt it."""
    name = CIPHER_SUITE_NAMES.get(code)
    if name is None:
        return None
    tls13 = 0x1301 <= code <= 0x1305
    if tls13:
        tail = name.removeprefix("TLS_")
    elif "_WITH_" in name:
        tail = name.split("_WITH_", 1)[1]
    else:
        return None
    # CCM suites carry no hash in their name (RFC 6655): their PRF is SHA-256.
    if tail in _BULKS:
        bulk, key_len, iv_len, tag_len = _BULKS[tail]
        return SuiteParams(code, name, bulk, key_len, iv_len, tag_len, None, "sha256", tls13)
    cipher, _, hash_part = tail.rpartition("_")
    if cipher not in _BULKS or hash_part not in _HASHES:
        return None
    bulk, key_len, iv_len, tag_len = _BULKS[cipher]
    hash_name = _HASHES[hash_part]
    if bulk is Bulk.AES_CBC:
        prf = "sha384" if hash_name == "sha384" else "sha256"
        return SuiteParams(code, name, bulk, key_len, iv_len, 0, hash_name, prf, tls13)
    if tls13:
        iv_len = 12
    return SuiteParams(code, name, bulk, key_len, iv_len, tag_len, None, hash_name, tls13)
