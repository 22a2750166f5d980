"""The vocabulary of the TLS layer: what :class:`~mailtrace.tls.session.TlsSession` reports.

Events are immutable values stamped with the direction, capture time and frame of the TCP
segment that completed them. :class:`TlsInfo` is the per-connection summary, a snapshot taken
whenever ``TlsSession.info`` is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mailtrace.model import Direction
from mailtrace.tls.certs import CertInfo


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsEvent:
    """Base of every TLS layer event. Don't subclass outside this module."""

    direction: Direction
    """Who sent the record(s) the event is about."""
    ts: float
    """Capture time of the segment that completed the record."""
    frame: int | None
    """Frame of that segment (None for an end of stream without a frame)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HandshakeSeen(TlsEvent):
    """A handshake message (or ChangeCipherSpec), decoded or recognised by its position."""

    kind: str
    """IANA handshake type name (``client_hello``, ``certificate``, ``finished``, ...),
    ``change_cipher_spec``, or ``encrypted_handshake`` for a protected one without keys."""
    detail: str = ""
    """A short caption: SNI, selected version and cipher, certificate subject, ..."""
    encrypted: bool = False
    """It travelled inside protected records (and was decrypted, unless kind says otherwise)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HandshakeComplete(TlsEvent):
    """Both sides have finished the handshake (for TLS 1.3 without keys: the client's first
    protected record, which is its Finished)."""

    version: str | None
    cipher: str | None
    seconds: float | None
    """From the ClientHello to this point."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsAlert(TlsEvent):
    """An alert record."""

    level: str
    """``warning``, ``fatal``, or ``encrypted`` when it could not be read."""
    description: str
    """IANA alert name (``close_notify``, ...) or ``encrypted``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsAnomaly(TlsEvent):
    """Something the peers, the capture or the key log did that stops or limits decoding."""

    kind: str
    """Stable identifier, e.g. ``decrypt-failed``, ``gap-in-record``, ``not-tls``."""
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Decrypted(TlsEvent):
    """Application data was decrypted; the plaintext follows as a ``Chunk``."""

    nbytes: int
    """Plaintext bytes."""
    records: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class OpaqueData(TlsEvent):
    """Protected records that stay encrypted (no keys, a failed key, an unsupported cipher)."""

    nbytes: int
    """Record payload bytes (ciphertext, headers excluded)."""
    records: int = 1


@dataclass(frozen=True, slots=True)
class AlertInfo:
    """One alert, for the summary."""

    direction: str
    level: str
    description: str
    frame: int | None


@dataclass(frozen=True, slots=True)
class TlsInfo:
    """What is known about one TLS connection so far."""

    sni: str | None
    """server_name of the ClientHello."""
    client_versions: tuple[str, ...]
    """Versions the client offers (supported_versions, else the ClientHello version); no GREASE."""
    cipher_suites_offered: int
    """Number of cipher suites in the ClientHello, GREASE included (as on the wire)."""
    alpn: tuple[str, ...]
    """ALPN protocols the client offers."""
    alpn_selected: str | None
    version: str | None
    """Negotiated version, tshark spelling: ``TLS 1.2``, ``TLS 1.3``."""
    cipher: str | None
    """Negotiated cipher suite, IANA name."""
    resumed: bool
    """Abbreviated handshake (TLS ≤ 1.2 session-id/ticket) or PSK (TLS 1.3)."""
    certificates: tuple[CertInfo, ...]
    """Readable certificates (TLS ≤ 1.2 always; TLS 1.3 only when decrypted), in order sent."""
    alerts: tuple[AlertInfo, ...]
    bytes_client: int
    """TLS stream bytes from the client (records, headers included, from the first TLS byte)."""
    bytes_server: int
    handshake_seconds: float | None
    established: bool
    """The handshake completed (see :class:`HandshakeComplete`)."""
    decrypted: bool
    """Application data was decrypted (the key log had the traffic secrets and they worked)."""
    key_updates: int
    """TLS 1.3 KeyUpdate messages seen (decrypted)."""
    first_frame: int | None
    """Frame of the first TLS byte."""
    first_ts: float | None
    anomalies: tuple[str, ...]
    """Kinds of the anomalies reported, in order (bounded)."""
    alerts_dropped: int = 0
    """Alerts past the ones kept in ``alerts`` (counted)."""
    handshake_decrypted: bool = False
    """An encrypted handshake record (TLS 1.3) was decrypted: with only the handshake secrets in the
    key log this is true while ``decrypted`` stays false."""


def tls_info_to_json(info: TlsInfo) -> dict[str, Any]:
    """The JSON form of :class:`TlsInfo` (keys are part of mailtrace's JSON schema)."""
    return {
        "sni": info.sni,
        "client_versions": list(info.client_versions),
        "cipher_suites_offered": info.cipher_suites_offered,
        "alpn": list(info.alpn),
        "alpn_selected": info.alpn_selected,
        "version": info.version,
        "cipher": info.cipher,
        "resumed": info.resumed,
        "certificates": [
            {
                "subject": c.subject,
                "issuer": c.issuer,
                "not_before": c.not_before,
                "not_after": c.not_after,
                "san": list(c.san),
                "serial": c.serial,
                "sha256": c.sha256,
                "sent_by": c.sent_by,
            }
            for c in info.certificates
        ],
        "alerts": [
            {"direction": a.direction, "level": a.level, "description": a.description, "frame": a.frame}
            for a in info.alerts
        ],
        "bytes": {"client": info.bytes_client, "server": info.bytes_server},
        "handshake_seconds": info.handshake_seconds,
        "established": info.established,
        "decrypted": info.decrypted,
        "handshake_decrypted": info.handshake_decrypted,
        "key_updates": info.key_updates,
        "first_frame": info.first_frame,
        "first_ts": info.first_ts,
        "anomalies": list(info.anomalies),
        **({"alerts_dropped": info.alerts_dropped} if info.alerts_dropped else {}),
    }
