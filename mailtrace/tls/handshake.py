"""Handshake messages: reassembly across records and decoding of the ones that carry metadata.

Decoders raise :class:`DecodeError` on malformed input; the session catches it and reports an
anomaly, so a hostile ClientHello costs one row, not the connection.
"""

from __future__ import annotations

from dataclasses import dataclass

HELLO_RETRY_RANDOM = bytes.fromhex("CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C")
"""The ServerHello.random that marks a HelloRetryRequest (RFC 8446 §4.1.3)."""

EXT_SERVER_NAME = 0
EXT_ALPN = 16
EXT_ENCRYPT_THEN_MAC = 22
EXT_EXTENDED_MASTER_SECRET = 23
EXT_PRE_SHARED_KEY = 41
EXT_SUPPORTED_VERSIONS = 43


class DecodeError(ValueError):
    """A handshake message is shorter or otherwise different from what its lengths promise."""


class _Reader:
    """Bounds-checked reading of TLS presentation-language fields."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise DecodeError(f"needs {n} bytes at offset {self.pos}, has {len(self.data) - self.pos}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def vector(self, len_bytes: int) -> bytes:
        return self.take(self.uint(len_bytes))

    @property
    def done(self) -> bool:
        return self.pos >= len(self.data)


def _extensions(r: _Reader) -> list[tuple[int, bytes]]:
    if r.done:  # extensions are optional in TLS ≤ 1.2 hellos
        return []
    block = _Reader(r.vector(2))
    out: list[tuple[int, bytes]] = []
    while not block.done:
        ext_type = block.uint(2)
        out.append((ext_type, block.vector(2)))
    return out


def _alpn_list(data: bytes) -> tuple[str, ...]:
    r = _Reader(_Reader(data).vector(2))
    names: list[str] = []
    while not r.done:
        names.append(r.vector(1).decode("ascii", errors="replace"))
    return tuple(names)


def _server_name(data: bytes) -> str | None:
    r = _Reader(_Reader(data).vector(2))
    while not r.done:
        name_type = r.uint(1)
        name = r.vector(2)
        if name_type == 0:
            return name.decode("ascii", errors="replace")
    return None


@dataclass(frozen=True, slots=True)
class ClientHello:
    """What a ClientHello offers."""

    legacy_version: int
    random: bytes
    session_id: bytes
    cipher_suites: tuple[int, ...]
    """As sent, GREASE included."""
    extensions: tuple[int, ...]
    """Extension types in order."""
    sni: str | None
    alpn: tuple[str, ...]
    supported_versions: tuple[int, ...]
    """From the supported_versions extension; empty when absent."""


def parse_client_hello(body: bytes) -> ClientHello:
    r = _Reader(body)
    version = r.uint(2)
    random = r.take(32)
    session_id = r.vector(1)
    suites_raw = r.vector(2)
    if len(suites_raw) % 2:
        raise DecodeError("odd cipher_suites length")
    suites = tuple(int.from_bytes(suites_raw[i : i + 2], "big") for i in range(0, len(suites_raw), 2))
    r.vector(1)  # compression methods
    sni: str | None = None
    alpn: tuple[str, ...] = ()
    versions: tuple[int, ...] = ()
    exts = _extensions(r)
    for ext_type, data in exts:
        if ext_type == EXT_SERVER_NAME and data:
            sni = _server_name(data)
        elif ext_type == EXT_ALPN:
            alpn = _alpn_list(data)
        elif ext_type == EXT_SUPPORTED_VERSIONS:
            raw = _Reader(data).vector(1)
            versions = tuple(int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw) - 1, 2))
    return ClientHello(version, random, session_id, suites, tuple(t for t, _ in exts), sni, alpn, versions)


@dataclass(frozen=True, slots=True)
class ServerHello:
    """What a ServerHello (or HelloRetryRequest) selects."""

    legacy_version: int
    random: bytes
    session_id: bytes
    cipher_suite: int
    version: int
    """The negotiated version: supported_versions if present, else the legacy field."""
    extensions: tuple[int, ...]
    alpn: str | None
    hello_retry: bool
    """This is a HelloRetryRequest: another ClientHello and ServerHello follow."""

    @property
    def encrypt_then_mac(self) -> bool:
        return EXT_ENCRYPT_THEN_MAC in self.extensions

    @property
    def psk(self) -> bool:
        """TLS 1.3 resumption (or external PSK)."""
        return EXT_PRE_SHARED_KEY in self.extensions


def parse_server_hello(body: bytes) -> ServerHello:
    r = _Reader(body)
    legacy = r.uint(2)
    random = r.take(32)
    session_id = r.vector(1)
    suite = r.uint(2)
    r.uint(1)  # compression method
    version = legacy
    alpn: str | None = None
    exts = _extensions(r)
    for ext_type, data in exts:
        if ext_type == EXT_SUPPORTED_VERSIONS:
            version = _Reader(data).uint(2)
        elif ext_type == EXT_ALPN:
            names = _alpn_list(data)
            alpn = names[0] if names else None
    return ServerHello(
        legacy,
        random,
        session_id,
        suite,
        version,
        tuple(t for t, _ in exts),
        alpn,
        random == HELLO_RETRY_RANDOM,
    )


def parse_encrypted_extensions(body: bytes) -> str | None:
    """The ALPN protocol the TLS 1.3 server selected, if any."""
    r = _Reader(body)
    block = _Reader(r.vector(2))
    while not block.done:
        ext_type = block.uint(2)
        data = block.vector(2)
        if ext_type == EXT_ALPN:
            names = _alpn_list(data)
            return names[0] if names else None
    return None


def parse_certificates(body: bytes, *, tls13: bool) -> list[bytes]:
    """The DER certificates of a Certificate message, end-entity first."""
    r = _Reader(body)
    if tls13:
        r.vector(1)  # certificate_request_context
    chain = _Reader(r.vector(3))
    certs: list[bytes] = []
    while not chain.done:
        certs.append(chain.vector(3))
        if tls13:
            chain.vector(2)  # per-certificate extensions (OCSP, SCT)
    return certs


def parse_key_update(body: bytes) -> bool:
    """Whether the sender asks the peer to update its keys too."""
    return _Reader(body).uint(1) == 1


@dataclass(frozen=True, slots=True)
class Oversize:
    """A handshake message longer than the reassembly limit; its bytes are skipped."""

    msg_type: int
    length: int


class HandshakeReassembler:
    """Joins handshake fragments (a message may span records; a record may hold several)."""

    __slots__ = ("_buf", "_skip", "max_message")

    def __init__(self, max_message: int) -> None:
        self.max_message = max_message
        self._buf = bytearray()
        self._skip = 0

    @property
    def pending(self) -> int:
        """Bytes of an incomplete message held back (0 at a message boundary)."""
        return len(self._buf) + self._skip

    def feed(self, data: bytes) -> list[tuple[int, bytes] | Oversize]:
        out: list[tuple[int, bytes] | Oversize] = []
        if self._skip:
            take = min(self._skip, len(data))
            self._skip -= take
            data = data[take:]
        self._buf += data
        while len(self._buf) >= 4:
            msg_type = self._buf[0]
            length = int.from_bytes(self._buf[1:4], "big")
            if length > self.max_message:
                out.append(Oversize(msg_type, length))
                have = len(self._buf) - 4
                self._skip = max(0, length - have)
                del self._buf[: 4 + min(length, have)]
                continue
            if len(self._buf) < 4 + length:
                break
            out.append((msg_type, bytes(self._buf[4 : 4 + length])))
            del self._buf[: 4 + length]
        return out

    def reset(self) -> None:
        """Forget a partial message (after a gap or a key change)."""
        self._buf.clear()
        self._skip = 0
