"""The TLS layer: handshake metadata without keys, plaintext with an NSS key log.

After STARTTLS (or from the first byte on implicit-TLS ports) the engine hands each
connection's stream items to a :class:`TlsSession`, which returns events and, when the key log
has the session's secrets, plaintext ``Chunk`` values for the mail dissectors. See docs/tls.md.

Modules, one job each: ``records`` (record framing and resync), ``handshake`` (message
reassembly and decoding), ``certs`` (X.509 summaries), ``keylog`` (the NSS key log),
``suites``/``names`` (protocol numbers), ``crypto`` (key schedules and record ciphers),
``events`` (the vocabulary) and ``session`` (the state machine joining them).

The names below load their module when first used: most captures have no TLS session, and the
layer's dataclasses and tables are a tenth of the start-up before the dissecting process can start
(``tests/test_cli_startup.py``). ``KeyLog`` alone is light (the options read it).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_MODULE_OF = {
    "AlertInfo": "events", "CertInfo": "certs", "Decrypted": "events", "HandshakeComplete": "events",
    "HandshakeSeen": "events", "KeyLog": "keylog", "OpaqueData": "events", "TlsAlert": "events",
    "TlsAnomaly": "events", "TlsEvent": "events", "TlsInfo": "events", "TlsSession": "session",
    "tls_info_to_json": "events",
}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # once loaded, a plain module attribute
    return value


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
