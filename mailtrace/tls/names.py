"""Names of TLS protocol numbers, as the registries (IANA) and tshark spell them. Data only."""

from __future__ import annotations

from mailtrace.tls.suite_names import CIPHER_SUITE_NAMES

# Record content types (RFC 8446 §5.1).
CHANGE_CIPHER_SPEC = 20
ALERT = 21
HANDSHAKE = 22
APPLICATION_DATA = 23
HEARTBEAT = 24

VERSION_NAMES: dict[int, str] = {
    0x0002: "SSL 2.0",
    0x0300: "SSL 3.0",
    0x0301: "TLS 1.0",
    0x0302: "TLS 1.1",
    0x0303: "TLS 1.2",
    0x0304: "TLS 1.3",
}
"""tshark's value strings for ``tls.handshake.version`` (drafts are named by :func:`version_name`)."""

HANDSHAKE_NAMES: dict[int, str] = {
    0: "hello_request",
    1: "client_hello",
    2: "server_hello",
    4: "new_session_ticket",
    5: "end_of_early_data",
    8: "encrypted_extensions",
    11: "certificate",
    12: "server_key_exchange",
    13: "certificate_request",
    14: "server_hello_done",
    15: "certificate_verify",
    16: "client_key_exchange",
    20: "finished",
    22: "certificate_status",
    24: "key_update",
    254: "message_hash",
}
"""IANA TLS HandshakeType names."""

ALERT_LEVELS: dict[int, str] = {1: "warning", 2: "fatal"}

ALERT_NAMES: dict[int, str] = {
    0: "close_notify",
    1: "end_of_early_data",
    10: "unexpected_message",
    20: "bad_record_mac",
    21: "decryption_failed",
    22: "record_overflow",
    30: "decompression_failure",
    40: "handshake_failure",
    41: "no_certificate",
    42: "bad_certificate",
    43: "unsupported_certificate",
    44: "certificate_revoked",
    45: "certificate_expired",
    46: "certificate_unknown",
    47: "illegal_parameter",
    48: "unknown_ca",
    49: "access_denied",
    50: "decode_error",
    51: "decrypt_error",
    60: "export_restriction",
    70: "protocol_version",
    71: "insufficient_security",
    80: "internal_error",
    86: "inappropriate_fallback",
    90: "user_canceled",
    100: "no_renegotiation",
    109: "missing_extension",
    110: "unsupported_extension",
    111: "certificate_unobtainable",
    112: "unrecognized_name",
    113: "bad_certificate_status_response",
    114: "bad_certificate_hash_value",
    115: "unknown_psk_identity",
    116: "certificate_required",
    120: "no_application_protocol",
    121: "ech_required",
}
"""IANA TLS Alert names (the spelling Zeek's ssl.log uses as well)."""


def is_grease(value: int) -> bool:
    """RFC 8701 GREASE values (0x0A0A, 0x1A1A, ... 0xFAFA) that clients sprinkle into lists."""
    return (value & 0x0F0F) == 0x0A0A and (value >> 8) == (value & 0xFF)


def version_name(value: int) -> str:
    if value in VERSION_NAMES:
        return VERSION_NAMES[value]
    if 0x7F0E <= value <= 0x7F1C:
        return f"TLS 1.3 (draft {value & 0xFF})"
    if is_grease(value):
        return "Reserved (GREASE)"
    return f"Unknown (0x{value:04x})"


def cipher_name(value: int) -> str:
    return CIPHER_SUITE_NAMES.get(value, f"Unknown (0x{value:04x})")


def handshake_name(value: int) -> str:
    return HANDSHAKE_NAMES.get(value, f"unknown_{value}")


def alert_name(value: int) -> str:
    return ALERT_NAMES.get(value, f"unknown_{value}")
