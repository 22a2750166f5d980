"""The TLS layer: handshake metadata without keys, plaintext with an NSS key log.

After STARTTLS (or from the first byte on implicit-TLS ports) the engine hands each
connection's stream items to a :class:`TlsSession`, which returns events and, when the key log
has the session's secrets, plaintext ``Chunk`` values for the mail dissectors. See docs/tls.md.

Modules, one job each: ``records`` (record framing and resync), ``handshake`` (message
reassembly and decoding), ``certs`` (X.509 summaries), ``keylog`` (the NSS key log),
``suites``/``names`` (protocol numbers), ``crypto`` (key schedules and record ciphers),
``events`` (the vocabulary) and ``session`` (the state machine joining them).
"""

from mailtrace.tls.certs import CertInfo
from mailtrace.tls.events import (
    AlertInfo,
    Decrypted,
    HandshakeComplete,
    HandshakeSeen,
    OpaqueData,
    TlsAlert,
    TlsAnomaly,
    TlsEvent,
    TlsInfo,
    tls_info_to_json,
)
from mailtrace.tls.keylog import KeyLog
from mailtrace.tls.session import TlsSession

__all__ = [
    "AlertInfo",
    "CertInfo",
    "Decrypted",
    "HandshakeComplete",
    "HandshakeSeen",
    "KeyLog",
    "OpaqueData",
    "TlsAlert",
    "TlsAnomaly",
    "TlsEvent",
    "TlsInfo",
    "TlsSession",
    "tls_info_to_json",
]
