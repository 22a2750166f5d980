"""Key derivation and record decryption (RFC 8446 §7, RFC 5246 §5-6, RFC 7905, RFC 7366).

Every primitive (AEAD, block cipher, HMAC, HKDF) comes from ``cryptography``; this module only
arranges them the way TLS does. A record that fails authentication yields None rather than an
exception, because a wrong key or a damaged record is a fact about the capture, not a bug.
"""

from __future__ import annotations

import abc
import hmac as std_hmac
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from mailtrace.tls.suites import Bulk, SuiteParams

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "md5": hashes.MD5,
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
}
_HASH_LEN = {"md5": 16, "sha1": 20, "sha256": 32, "sha384": 48}


# --------------------------------------------------------------------------- key derivation


def hkdf_expand_label(hash_name: str, secret: bytes, label: bytes, context: bytes, length: int) -> bytes:
    """HKDF-Expand-Label of RFC 8446 §7.1."""
    full = b"tls13 " + label
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + bytes([len(context)]) + context
    return HKDFExpand(_HASHES[hash_name](), length, info).derive(secret)


def _hmac(hash_name: str, key: bytes, data: bytes) -> bytes:
    mac = hmac.HMAC(key, _HASHES[hash_name]())
    mac.update(data)
    return mac.finalize()


def _p_hash(hash_name: str, secret: bytes, seed: bytes, length: int) -> bytes:
    out = bytearray()
    a = seed
    while len(out) < length:
        a = _hmac(hash_name, secret, a)
        out += _hmac(hash_name, secret, a + seed)
    return bytes(out[:length])


def prf(hash_name: str | None, secret: bytes, label: bytes, seed: bytes, length: int) -> bytes:
    """The TLS 1.2 PRF with ``hash_name``; None selects the TLS 1.0/1.1 MD5 ⊕ SHA-1 PRF."""
    if hash_name is not None:
        return _p_hash(hash_name, secret, label + seed, length)
    half = (len(secret) + 1) // 2
    md5 = _p_hash("md5", secret[:half], label + seed, length)
    sha1 = _p_hash("sha1", secret[len(secret) - half :], label + seed, length)
    return bytes(x ^ y for x, y in zip(md5, sha1, strict=True))


# --------------------------------------------------------------------------- record protection


@dataclass(frozen=True, slots=True)
class Opened:
    """A record that authenticated."""

    seq: int
    """The sequence number it authenticated with."""
    content_type: int
    """The real content type (TLS 1.3: from the inner plaintext; 0 when the inner type is missing)."""
    plaintext: bytes


class RecordCipher(abc.ABC):
    """Decrypts the records of one direction under one key."""

    overhead: int
    """Payload bytes of a record that are not plaintext (explicit nonce or IV, tag or MAC, the TLS 1.3
    inner type, at least one byte of CBC padding): a record's plaintext size is about its payload
    size minus this. Padding beyond that (TLS 1.3 record padding, CBC blocks) is not known."""

    @abc.abstractmethod
    def open(self, header: bytes, payload: bytes, seqs: range) -> Opened | None:
        """Decrypt with the first sequence number in ``seqs`` that authenticates, else None."""


def _nonce(iv: bytes, seq: int) -> bytes:
    padded = seq.to_bytes(len(iv), "big")
    return bytes(a ^ b for a, b in zip(iv, padded, strict=True))


def _aead(bulk: Bulk, key: bytes, tag_len: int) -> AESGCM | AESCCM | ChaCha20Poly1305:
    if bulk is Bulk.AES_GCM:
        return AESGCM(key)
    if bulk is Bulk.AES_CCM:
        return AESCCM(key, tag_length=tag_len)
    return ChaCha20Poly1305(key)


class Tls13Cipher(RecordCipher):
    """RFC 8446 §5.2: per-record nonce = IV ⊕ seq, AAD = the record header, type inside."""

    __slots__ = ("_aead", "_iv", "_tag_len", "overhead")

    def __init__(self, params: SuiteParams, secret: bytes) -> None:
        key = hkdf_expand_label(params.prf_hash, secret, b"key", b"", params.key_len)
        self._iv = hkdf_expand_label(params.prf_hash, secret, b"iv", b"", 12)
        self._aead = _aead(params.bulk, key, params.tag_len)
        self._tag_len = params.tag_len
        self.overhead = params.tag_len + 1

    def open(self, header: bytes, payload: bytes, seqs: range) -> Opened | None:
        if len(payload) < self._tag_len:
            return None
        for seq in seqs:
            try:
                inner = self._aead.decrypt(_nonce(self._iv, seq), payload, header)
            except InvalidTag:
                continue
            inner = inner.rstrip(b"\x00")
            if not inner:
                return Opened(seq, 0, b"")
            return Opened(seq, inner[-1], inner[:-1])
        return None


def tls13_next_secret(params: SuiteParams, secret: bytes) -> bytes:
    """The traffic secret after a KeyUpdate (RFC 8446 §7.2)."""
    return hkdf_expand_label(params.prf_hash, secret, b"traffic upd", b"", _HASH_LEN[params.prf_hash])


class Tls12AeadCipher(RecordCipher):
    """RFC 5288/6655 (GCM, CCM: 4-byte salt + 8-byte explicit nonce) and RFC 7905 (ChaCha20: IV ⊕ seq)."""

    __slots__ = ("_aead", "_explicit", "_iv", "_tag_len", "overhead")

    def __init__(self, params: SuiteParams, key: bytes, iv: bytes) -> None:
        self._aead = _aead(params.bulk, key, params.tag_len)
        self._iv = iv
        self._tag_len = params.tag_len
        self._explicit = params.bulk is not Bulk.CHACHA20_POLY1305
        self.overhead = params.tag_len + (8 if self._explicit else 0)

    def open(self, header: bytes, payload: bytes, seqs: range) -> Opened | None:
        if self._explicit:
            if len(payload) < 8 + self._tag_len:
                return None
            fixed_nonce: bytes | None = self._iv + payload[:8]
            body = payload[8:]
        else:
            if len(payload) < self._tag_len:
                return None
            fixed_nonce = None
            body = payload
        length = (len(body) - self._tag_len).to_bytes(2, "big")
        for seq in seqs:
            nonce = fixed_nonce if fixed_nonce is not None else _nonce(self._iv, seq)
            aad = seq.to_bytes(8, "big") + header[:3] + length
            try:
                plaintext = self._aead.decrypt(nonce, body, aad)
            except (InvalidTag, ValueError):  # ValueError: a nonce the cipher refuses (a suite its version lacks)
                continue
            return Opened(seq, header[0], plaintext)
        return None


class Tls12CbcCipher(RecordCipher):
    """AES-CBC with HMAC: MAC-then-encrypt (RFC 5246 §6.2.3.2) or encrypt-then-MAC (RFC 7366).

    TLS 1.0 chains the IV from the previous record's last ciphertext block, so this object keeps
    that one block of state; TLS 1.1+ carries an explicit IV in each record.
    """

    __slots__ = ("_etm", "_explicit_iv", "_iv", "_key", "_mac", "_mac_key", "_mac_len", "overhead")

    def __init__(
        self, params: SuiteParams, key: bytes, mac_key: bytes, iv: bytes, *, version: int, etm: bool
    ):
        assert params.mac is not None
        self._key = key
        self._mac = params.mac
        self._mac_key = mac_key
        self._mac_len = params.mac_len
        self._iv = iv
        self._explicit_iv = version >= 0x0302
        self._etm = etm
        self.overhead = (16 if self._explicit_iv else 0) + params.mac_len + 1

    def _decrypt(self, iv: bytes, data: bytes) -> bytes:
        decryptor = Cipher(algorithms.AES(self._key), modes.CBC(iv)).decryptor()
        return decryptor.update(data) + decryptor.finalize()

    def _mac_ok(self, seqs: range, header: bytes, content: bytes, mac: bytes) -> int | None:
        prefix = header[:3] + len(content).to_bytes(2, "big")
        for seq in seqs:
            expected = _hmac(self._mac, self._mac_key, seq.to_bytes(8, "big") + prefix + content)
            if std_hmac.compare_digest(expected, mac):
                return seq
        return None

    def open(self, header: bytes, payload: bytes, seqs: range) -> Opened | None:
        if self._etm:
            if len(payload) < self._mac_len + 16 or (len(payload) - self._mac_len) % 16:
                return None
            protected, mac = payload[: -self._mac_len], payload[-self._mac_len :]
            seq = self._mac_ok(seqs, header, protected, mac)
            if seq is None:
                return None
            plaintext = self._unpad(self._decrypt_blocks(protected))
            return None if plaintext is None else Opened(seq, header[0], plaintext)
        if len(payload) < 16 or len(payload) % 16:
            return None
        padded = self._unpad(self._decrypt_blocks(payload))
        if padded is None or len(padded) < self._mac_len:
            return None
        content, mac = padded[: len(padded) - self._mac_len], padded[len(padded) - self._mac_len :]
        seq = self._mac_ok(seqs, header, content, mac)
        if seq is None:
            return None
        if not self._explicit_iv:
            self._iv = payload[-16:]
        return Opened(seq, header[0], content)

    def _decrypt_blocks(self, data: bytes) -> bytes:
        if self._explicit_iv:
            return self._decrypt(data[:16], data[16:]) if len(data) > 16 else b""
        plaintext = self._decrypt(self._iv, data)
        if self._etm:
            self._iv = data[-16:]
        return plaintext

    @staticmethod
    def _unpad(data: bytes) -> bytes | None:
        if not data:
            return None
        pad = data[-1]
        if pad + 1 > len(data) or data[-pad - 1 :] != bytes([pad]) * (pad + 1):
            return None
        return data[: -pad - 1]


def tls12_ciphers(
    params: SuiteParams,
    *,
    version: int,
    master_secret: bytes,
    client_random: bytes,
    server_random: bytes,
    etm: bool,
) -> tuple[RecordCipher, RecordCipher]:
    """The (client write, server write) ciphers from the key block (RFC 5246 §6.3)."""
    mac_len, key_len, iv_len = params.mac_len, params.key_len, params.fixed_iv_len
    prf_hash = params.prf_hash if version >= 0x0303 else None
    block = prf(
        prf_hash,
        master_secret,
        b"key expansion",
        server_random + client_random,
        2 * (mac_len + key_len + iv_len),
    )
    parts: list[bytes] = []
    offset = 0
    for size in (mac_len, mac_len, key_len, key_len, iv_len, iv_len):
        parts.append(block[offset : offset + size])
        offset += size
    c_mac, s_mac, c_key, s_key, c_iv, s_iv = parts
    if params.bulk is Bulk.AES_CBC:
        return (
            Tls12CbcCipher(params, c_key, c_mac, c_iv, version=version, etm=etm),
            Tls12CbcCipher(params, s_key, s_mac, s_iv, version=version, etm=etm),
        )
    return Tls12AeadCipher(params, c_key, c_iv), Tls12AeadCipher(params, s_key, s_iv)
