"""X.509 certificate summaries, with names spelled the way OpenSSL (and so Zeek's x509.log) does."""

from __future__ import annotations

import datetime as dt
import functools
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.x509 import ObjectIdentifier


@functools.cache
def _openssl_names() -> dict[ObjectIdentifier, str]:
    """OpenSSL short names for attributes that cryptography would otherwise print as dotted OIDs or
    in other spellings; RFC 4514 order (most specific first) matches OpenSSL's XN_FLAG_RFC2253.
    (Made on first use: ``cryptography`` loads only when a capture has a certificate.)"""
    from cryptography.x509.oid import NameOID

    return {
        NameOID.EMAIL_ADDRESS: "emailAddress",
        NameOID.STREET_ADDRESS: "street",
        NameOID.POSTAL_CODE: "postalCode",
        NameOID.SERIAL_NUMBER: "serialNumber",
        NameOID.SURNAME: "SN",
        NameOID.GIVEN_NAME: "GN",
        NameOID.TITLE: "title",
        NameOID.BUSINESS_CATEGORY: "businessCategory",
        NameOID.JURISDICTION_COUNTRY_NAME: "jurisdictionC",
        NameOID.JURISDICTION_STATE_OR_PROVINCE_NAME: "jurisdictionST",
        NameOID.JURISDICTION_LOCALITY_NAME: "jurisdictionL",
        NameOID.ORGANIZATION_IDENTIFIER: "organizationIdentifier",
        NameOID.DN_QUALIFIER: "dnQualifier",
        NameOID.PSEUDONYM: "pseudonym",
        NameOID.INITIALS: "initials",
        NameOID.GENERATION_QUALIFIER: "generationQualifier",
        NameOID.X500_UNIQUE_IDENTIFIER: "x500UniqueIdentifier",
        NameOID.UNSTRUCTURED_NAME: "unstructuredName",
    }


@dataclass(frozen=True, slots=True)
class CertInfo:
    """The facts of one certificate that a mail trace shows."""

    subject: str
    """RFC 2253 string with OpenSSL attribute names, e.g. ``CN=mx.example,O=Example,C=DE``."""
    issuer: str
    not_before: str
    """ISO 8601 UTC, e.g. ``2013-11-12T10:17:31Z``."""
    not_after: str
    san: tuple[str, ...]
    """DNS names, then IP addresses, then e-mail addresses of subjectAltName."""
    serial: str
    """Upper-case hex of the serial's bytes (an even number of digits), as Zeek prints it."""
    sha256: str
    """Lower-case hex SHA-256 of the DER bytes (Zeek's x509 fingerprint)."""
    sent_by: str
    """``server`` or ``client``."""


def _when(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _serial(number: int) -> str:
    digits = f"{abs(number):X}"
    return "0" + digits if len(digits) % 2 else digits


def describe_certificate(der: bytes, *, sent_by: str) -> CertInfo:
    """Summarise one DER certificate; raises (ValueError, or whatever ``cryptography`` raises) when it
    does not parse. Its deprecation warnings about a capture's odd certificates (a negative serial)
    are not the user's business: they are silenced here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _describe(der, sent_by=sent_by)


def _describe(der: bytes, *, sent_by: str) -> CertInfo:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    cert = x509.load_der_x509_certificate(der)
    san: list[str] = []
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        pass
    else:
        san += ext.get_values_for_type(x509.DNSName)
        san += [str(ip) for ip in ext.get_values_for_type(x509.IPAddress)]
        san += ext.get_values_for_type(x509.RFC822Name)
    return CertInfo(
        subject=cert.subject.rfc4514_string(_openssl_names()),
        issuer=cert.issuer.rfc4514_string(_openssl_names()),
        not_before=_when(cert.not_valid_before_utc),
        not_after=_when(cert.not_valid_after_utc),
        san=tuple(san),
        serial=_serial(cert.serial_number),
        sha256=cert.fingerprint(hashes.SHA256()).hex(),
        sent_by=sent_by,
    )
