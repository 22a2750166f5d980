"""The values of the context layer: observations of DNS and ident traffic, their rows, the limits.

An observation is one DNS transaction (a query and its response) or one ident probe (a TCP
connection to port 113), with the packets that carried it. The tracker
(:mod:`mailtrace.context.tracker`) attributes it to the mail session it serves and says why
(``purpose``); renderers turn that into captions (:mod:`mailtrace.render.context`). Observations
are filled in as their packets arrive (a response completes its query), so they are plain mutable
records, not frozen values.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from mailtrace.model import PickledAsValues

DNS = "dns"
IDENT = "ident"

REVERSED_V4 = re.compile(
    r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.([a-z0-9.-]+\.[a-z]{2,})\.?$", re.IGNORECASE
)
DOMAIN_LISTS = (
    "dbl.spamhaus.org",
    "multi.uribl.com",
    "multi.surbl.org",
    "black.uribl.com",
    "rhsbl.sorbs.net",
    "dbl.nordspam.com",
    "uribl.spameatingmonkey.net",
)
"""Blocklists of domain names (RFC 5782 §2.2): the name asked about is a domain, not an address."""
NOT_BLOCKLISTS = ("in-addr.arpa", "ip6.arpa")
DNSBL_TYPES = frozenset({"A", "TXT", "ANY"})
"""Query types of a blocklist look-up (RFC 5782 §2.1: A for the verdict, TXT for the reason)."""


def dnsbl_query(qname: str) -> tuple[str, str] | None:
    """``2.0.0.127.zen.spamhaus.org`` → (``127.0.0.2``, ``zen.spamhaus.org``); domain lists → (name, zone).

    The one parser of DNS blocklist names: the findings (``dnsbl-lookup``) and the context layer's
    counts (``ContextStats.dnsbl_*``, the statistics' ``spam.dnsbl``) both use it.
    """
    name = qname.strip().rstrip(".").lower()
    if name.endswith(NOT_BLOCKLISTS):
        return None
    labels = name.split(".")
    if len(labels) > 32 + 2 and all(len(x) == 1 and x in "0123456789abcdef" for x in labels[:32]):
        address = ipaddress.IPv6Address(int("".join(reversed(labels[:32])), 16))
        return str(address), ".".join(labels[32:])
    match = REVERSED_V4.match(name)
    if match and all(int(match.group(i)) < 256 for i in range(1, 5)):
        return ".".join(match.group(i) for i in (4, 3, 2, 1)), match.group(5)
    for zone in DOMAIN_LISTS:
        if name.endswith("." + zone) and name != zone:
            return name[: -len(zone) - 1], zone
    return None


def dnsbl_lookup(qname: str, qtype: str | None) -> tuple[str, str] | None:
    """(subject, zone) when a query is a blocklist look-up (a blocklist name asked for A, TXT or ANY)."""
    if (qtype or "A").upper() not in DNSBL_TYPES:
        return None
    return dnsbl_query(qname)


def dnsbl_codes(answers: Iterable[str]) -> tuple[str, ...]:
    """The 127.0.0.x answers of a blocklist look-up: the address or domain is listed (RFC 5782 §2.1)."""
    return tuple(a for a in answers if a.startswith("127."))


@dataclass(frozen=True, slots=True)
class DnsRecord(PickledAsValues):
    """One resource record of an answer or additional section."""

    name: str
    rtype: str
    data: str
    """Address (A/AAAA), name (PTR, CNAME, NS, MX exchange), text (TXT) or a hex preview."""
    preference: int | None = None
    """MX preference (lower is tried first)."""

    @property
    def text(self) -> str:
        """The record data as a zone file writes it: ``10 mx.remote.example`` for MX."""
        return f"{self.preference} {self.data}" if self.preference is not None else self.data



@dataclass(frozen=True, slots=True)
class ContextLimits:
    """Named limits of the context layer (docs/context-and-flows.md)."""

    window_before: float = 30.0
    """Seconds before a session in which lookups by its client (its MTA's address, the MX of a
    recipient domain) count as made for it; unclaimed observations are forgotten after this."""
    max_pending: int = 4096
    """Unattributed observations kept waiting for a session that starts later (oldest dropped first)."""
    query_timeout: float = 10.0
    """A DNS query without a response for this long is reported unanswered."""
    max_queries: int = 4096
    """DNS queries waiting for their response (oldest reported unanswered first)."""
    max_per_session: int = 256
    """Context observations kept per session; more are counted (``context_dropped``)."""
    max_probe_rows: int = 16
    """Packets listed per ident probe."""
    max_ident_bytes: int = 512
    """Bytes of an ident request or answer kept."""
    max_dnsbl_zones: int = 256
    """Blocklist zones counted one by one (``ContextStats.dnsbl_zones``); look-ups of more zones are
    counted under ``(other)``."""


@dataclass(slots=True)
class ContextRow(PickledAsValues):
    """One packet of an observation, as a row of a session's table."""

    frame: int
    ts: float
    src: str
    dst: str
    sport: int
    dport: int
    response: bool = False
    """DNS: the response (else the query). Ident: sent by the probed host."""
    flags: int = 0
    """TCP flags (ident rows and DNS over TCP)."""
    payload_len: int = 0
    text: str | None = None
    """Ident: the request or answer line this packet carried."""


@dataclass(slots=True)
class ContextObservation(PickledAsValues):
    """A DNS transaction or an ident probe seen beside the mail sessions."""

    kind: str
    """``dns`` or ``ident``."""
    frame: int
    """The frame of the query (DNS) or of the probe's first packet (ident)."""
    ts: float
    host: str
    """Who asked: the resolver's client (DNS) or the probing host (ident)."""
    peer: str
    """The DNS server asked, or the probed host (ident)."""
    transport: str = "udp"
    dns_id: int | None = None
    query: str | None = None
    """DNS: the name asked about. Ident: the request (``44112 , 25``), None if none was sent."""
    qtype: str | None = None
    answers: tuple[DnsRecord, ...] = ()
    additional: tuple[DnsRecord, ...] = ()
    rcode: str | None = None
    """DNS: ``NOERROR``, ``NXDOMAIN`` …; None while no response was seen."""
    cut: bool = False
    """DNS: the response's records were cut off in the capture (snap length): its answers may be more."""
    response_frame: int | None = None
    response_ts: float | None = None
    outcome: str | None = None
    """Ident: ``rst`` (refused), ``answered``, ``error`` (an ident ERROR reply), ``no-response``."""
    reply: str | None = None
    """Ident: the answer line (``44112 , 25 : USERID : UNIX : alice``)."""
    rows: list[ContextRow] = field(default_factory=list)
    purpose: str = ""
    """Why it belongs to its session (set by the tracker): ``client-ptr``, ``mx``, ``ident`` …"""
    role: str = ""
    """Who asked, in the session's terms: ``server`` or ``client``."""
    subject: str = ""
    """The name the purpose is about (the domain, the client's name)."""
    session_stream: int | None = None
    """The ``tcp.stream`` of the session it was attributed to; None while unattributed."""

    @property
    def answered(self) -> bool:
        return self.rcode is not None

    @property
    def answer_texts(self) -> list[str]:
        return [r.text for r in self.answers]

    def addresses(self) -> set[str]:
        """Every address the response names (answers and additional records)."""
        return {r.data for r in (*self.answers, *self.additional) if r.rtype in ("A", "AAAA")}

    @property
    def last_frame(self) -> int:
        return self.rows[-1].frame if self.rows else self.frame


@dataclass(frozen=True, slots=True)
class ContextCheck:
    """A conclusion drawn from a session's context (forward-confirmed rDNS, MX routing, NXDOMAIN)."""

    check: str
    """``fcrdns``, ``helo``, ``mx-route`` or ``nxdomain``."""
    result: str
    """``ok`` or a word for what is wrong: ``unconfirmed``, ``no-ptr``, ``differs``, ``not-mx``,
    ``backup-mx``, ``refused``."""
    params: tuple[tuple[str, str], ...]
    """Values the sentence needs (names, addresses, preference, reply), as text."""
    frames: tuple[int, ...] = ()

    @property
    def values(self) -> dict[str, str]:
        return dict(self.params)

    @property
    def ok(self) -> bool:
        return self.result == "ok"
