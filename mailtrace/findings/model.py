"""The vocabulary of findings: severities, the finding record, the catalogue of ids, the settings.

A finding is a verdict a person reads: one id from :data:`CATALOGUE`, a severity, the session and
frames that show it, one sentence of explanation and a reference. The JSON form
(:meth:`Finding.to_json`) is part of the report contract (docs/findings.md): the seven keys are
fixed and ids are never renamed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class Severity(enum.Enum):
    """How much a finding matters; ordered ``info < low < medium < high``."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank <= other.rank

    @classmethod
    def parse(cls, text: str) -> Severity:
        return cls(text.strip().lower())


_RANK = {Severity.INFO: 0, Severity.LOW: 1, Severity.MEDIUM: 2, Severity.HIGH: 3}


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One security or spam-defence observation."""

    id: str
    """Stable id from :data:`CATALOGUE` (``cleartext-credentials``, ...)."""
    severity: Severity
    session: int | None
    """Session id of the report, or None for findings over several sessions."""
    frames: tuple[int, ...]
    """Evidence frames (capture frame numbers, ascending, capped)."""
    title: str
    """One line, names the subject (user, client, server)."""
    detail: str
    """One or two sentences: what was seen and why it matters."""
    reference: str | None
    """RFC / CVE / other reference, or None."""
    ts: float | None = None
    """Capture time of the first evidence (not in the JSON; for ordering and display)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "severity": self.severity.value,
            "session": self.session,
            "frames": list(self.frames),
            "title": self.title,
            "detail": self.detail,
            "reference": self.reference,
        }


@dataclass(frozen=True, slots=True)
class FindingKind:
    """A catalogue entry: what a finding id means (docs/findings.md describes each one)."""

    id: str
    severities: tuple[Severity, ...]
    """The severities this id can have, lowest first."""
    title: str
    reference: str | None
    """Every reference of the id (what docs/findings.md lists)."""
    per_protocol: tuple[tuple[str, str], ...] = ()
    """(protocol, reference) where a finding about one session of that protocol cites only its own RFCs
    (a POP3 password in the clear cites RFC 1939 §13 and RFC 8314, not the SMTP AUTH RFC)."""

    def reference_for(self, protocol: str | None) -> str | None:
        return dict(self.per_protocol).get(protocol or "", self.reference)


def _kind(id_: str, severities: str, title: str, reference: str | None,
          per_protocol: dict[str, str] | None = None) -> FindingKind:
    return FindingKind(id_, tuple(Severity(s) for s in severities.split()), title, reference,
                       tuple((per_protocol or {}).items()))


CATALOGUE: dict[str, FindingKind] = {
    k.id: k
    for k in (
        _kind(
            "cleartext-credentials",
            "medium high",
            "Credentials sent without TLS",
            "RFC 8314; RFC 4954 §4; RFC 1939 §13; RFC 9051 §11.1",
            {"smtp": "RFC 8314; RFC 4954 §4", "pop3": "RFC 8314; RFC 1939 §13",
             "imap": "RFC 8314; RFC 9051 §11.1"},
        ),
        _kind(
            "starttls-not-used", "low medium", "STARTTLS offered but not used", "RFC 3207; RFC 2595; RFC 8314",
            {"smtp": "RFC 3207; RFC 8314", "pop3": "RFC 2595 §4; RFC 8314", "imap": "RFC 2595 §3.1; RFC 8314"},
        ),
        _kind(
            "starttls-refused-cleartext",
            "medium high",
            "STARTTLS refused, session went on in cleartext",
            "RFC 3207 §4; RFC 8461",
        ),
        _kind(
            "starttls-stripped",
            "medium high",
            "STARTTLS removed from the EHLO reply on the path",
            "RFC 3207 §6; RFC 8461; RFC 7672",
        ),
        _kind(
            "starttls-injection", "high", "Commands injected after STARTTLS", "CVE-2011-0411; RFC 3207 §4.2"
        ),
        _kind(
            "auth-before-tls",
            "low",
            "Password authentication offered before TLS",
            "RFC 8314 §4.1; RFC 4954 §4; RFC 3501 §6.2.3",
            {"smtp": "RFC 8314 §4.1; RFC 4954 §4", "pop3": "RFC 8314 §4.1; RFC 2595 §4",
             "imap": "RFC 8314 §4.1; RFC 3501 §6.2.3"},
        ),
        _kind("user-enumeration", "low medium", "User enumeration (VRFY/EXPN/RCPT)", "RFC 5321 §3.5.3, §7.3"),
        _kind(
            "auth-bruteforce",
            "medium high",
            "Failed logins: brute force or password spraying",
            "MITRE ATT&CK T1110",
        ),
        _kind(
            "open-relay-attempt",
            "info medium high",
            "Relaying accepted without authentication",
            "RFC 5321 §3.6.2, §7.1; RFC 2505 §2",
        ),
        _kind("relay-denied", "low", "Relaying refused", "RFC 5321 §3.6.2; RFC 3463 (5.7.1)"),
        _kind("envelope-mismatch", "info low", "Envelope sender and From header differ", "RFC 7489 §3.1"),
        _kind(
            "display-name-spoof",
            "medium",
            "From display name shows another address",
            "RFC 5322 §3.4; RFC 7489",
        ),
        _kind("received-chain-suspicious", "low medium", "Received chain looks forged", "RFC 5321 §4.4"),
        _kind(
            "smtp-smuggling",
            "medium high",
            "End-of-data look-alike in a message body (SMTP smuggling)",
            "CVE-2023-51764; CVE-2023-51765; CVE-2023-51766; RFC 5321 §4.1.1.4",
        ),
        _kind(
            "protocol-violation",
            "low medium",
            "Protocol violation",
            "RFC 5321 §4.1.4, §4.3.2; RFC 1939; RFC 3501; RFC 9051",
            {"smtp": "RFC 5321 §4.1.4, §4.3.2", "pop3": "RFC 1939", "imap": "RFC 3501; RFC 9051"},
        ),
        _kind("greylisting", "info", "Greylisting", "RFC 6647"),
        _kind(
            "spam-rejected",
            "info",
            "Rejected by a spam or abuse defence",
            "RFC 5321 §4.2; RFC 3463; RFC 5782",
        ),
        _kind(
            "spam-verdict",
            "info low",
            "Spam-defence verdicts carried by a message",
            "RFC 8601; RFC 7208 §9.1; RFC 6376; RFC 8617; RFC 7489",
        ),
        _kind("dnsbl-lookup", "info low", "DNS blocklist look-up", "RFC 5782"),
        _kind(
            "reverse-dns-mismatch",
            "info low",
            "Client without forward-confirmed reverse DNS, or HELO not its name",
            "RFC 8601 §2.7.3; RFC 5321 §4.1.4; RFC 1912 §2.1",
        ),
        _kind(
            "connection-scan",
            "low medium",
            "Connections to a mail port that never reached a dialog (scan or SYN flood)",
            "RFC 4987; RFC 9293 §3.5",
        ),
        _kind("relay-not-to-mx", "low", "Relay to a host that is not an MX of the recipient domain", "RFC 5321 §5.1"),
        _kind(
            "weak-tls", "medium high", "Obsolete TLS version or weak cipher", "RFC 8996; RFC 7465; RFC 9325"
        ),
    )
}


DEFAULT_FAILED_LOGIN_THRESHOLD = 5
"""Failed logins that make ``auth-bruteforce`` (fail2ban's and Dovecot's usual default)."""


@dataclass(frozen=True, slots=True)
class FindingsConfig:
    """What the findings rules are told by the command line; every limit is named."""

    show_secrets: bool = False
    """Put passwords and tokens into ``cleartext-credentials`` details."""
    local_domains: frozenset[str] = frozenset()
    """Domains the observed servers serve (``--local-domains``); empty: guessed from the server names."""
    failed_login_threshold: int = DEFAULT_FAILED_LOGIN_THRESHOLD
    """Failed logins from one client, or against one user, that raise ``auth-bruteforce``."""
    rcpt_unknown_threshold: int = 5
    """RCPTs refused as unknown users from one client that raise ``user-enumeration``."""
    attempts_threshold: int = 100
    """Connections to one server port that carried no byte (refused, unanswered, or closed at once) that
    raise ``connection-scan``."""
    flood_rate: float = 100.0
    """Such attempts per second (over their whole span) that make ``connection-scan`` medium: a SYN flood."""
    clock_skew: float = 3600.0
    """Seconds a Received header may be dated after the newer one above it (unsynchronised clocks)."""
    future_tolerance: float = 86_400.0
    """Seconds a Received or Date header may lie after the moment the capture saw the message."""
    max_findings: int = 10_000
    """Findings kept for the report; later ones are only counted."""
    max_frames: int = 20
    """Evidence frames listed per finding."""
    max_tracked: int = 20_000
    """Clients, users, servers and greylisting triples remembered for the cross-session rules (past it, the
    half with the fewest events is dropped: see ``findings.cross.Keyed``). ~1 KB each: at 100,000, a SYN
    scan of a million addresses (one connection-attempt tally per target) took the report process to
    206 MiB."""
