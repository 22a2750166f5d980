"""Attributes DNS transactions and ident probes to the mail sessions they serve.

The lecture's trace shows more than one TCP connection: before the greeting the MTA looks up the
client's name (PTR) and sends an ident probe; during MAIL FROM and RCPT TO it looks up the domains;
before relaying it asks for the MX of the recipient domain and the address of the MX host. This
module sees those packets (UDP and TCP port 53, TCP port 113) beside the mail sessions and decides,
for each, which session it was made for — or none. The rules (docs/context-and-flows.md):

* **Made by the session's server while the session is in its dialog** (connected, before QUIT):
  it belongs to the session when it is about the session — the client's address (PTR, a DNS
  blocklist), the names that PTR returned or the HELO name, the domains of the commands waiting
  for a reply (MAIL FROM, RCPT TO, VRFY, EXPN) or of the open transaction. An SMTP server that looks
  up something else while a command waits (EXPN expanding an alias) or before its greeting is
  credited with it when no session has better evidence.
* **Made by the session's client shortly before it** (``window_before``): a lookup whose answers
  lead to the server's address — the MTA's name resolved by the user agent, the MX of the recipient
  domain and the addresses of the MX hosts resolved by a relaying MTA — is claimed when the
  connection opens.
* **An ident probe** from the session's server to its client during the dialog.

Observations nobody claims wait in a bounded buffer for ``window_before`` seconds, then count as
unattributed. Memory stays flat: the buffer, the queries awaiting a response and each session's
list have named limits (:class:`~mailtrace.context.model.ContextLimits`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailtrace.capture.decode import TCP_FIN, TCP_RST, TCP_SYN, TcpPacket, UdpPacket
from mailtrace.capture.dns import DnsMessage, TcpDnsFramer, parse_dns
from mailtrace.context.checks import context_checks
from mailtrace.context.model import (
    DNS,
    IDENT,
    ContextLimits,
    ContextObservation,
    ContextRow,
    dnsbl_codes,
    dnsbl_lookup,
)
from mailtrace.model import CLIENT, Chunk, Direction, StreamGap, StreamItem
from mailtrace.numbers import is_count
from mailtrace.tcp.flows import ip_text

if TYPE_CHECKING:
    from mailtrace.session import Session, SessionBuilder
    from mailtrace.tcp.flows import Connection
    from mailtrace.tcp.reassembly import ReassemblyNote

DNS_PORT = 53
IDENT_PORT = 113
CONTEXT_PORTS = frozenset({DNS_PORT, IDENT_PORT})
"""TCP server ports the context layer takes (when no --port rule claims them for mail)."""

ADDRESS_TYPES = frozenset({"A", "AAAA", "ANY"})
END_VERBS = frozenset({"QUIT", "LOGOUT"})
ENVELOPE_VERBS = {"MAIL": "sender-domain", "RCPT": "recipient-domain", "VRFY": "command", "EXPN": "command"}

_DOMAIN = re.compile(r"@\[?([A-Za-z0-9._:-]+)\]?")

Listener = Callable[[ContextObservation], None]


@dataclass
class ContextStats:
    """What the context layer saw in a run (reported in the JSON ``capture.context``)."""

    dns: int = 0
    """DNS transactions (a query and its response count once)."""
    ident: int = 0
    attributed: int = 0
    """Observations attributed to a mail session."""
    non_mail: int = 0
    """Claimed by a connection that turned out not to be mail (HTTP after its name lookup)."""
    unanswered: int = 0
    """DNS queries without a response in the capture."""
    dropped: int = 0
    """Observations over a limit (the pending buffer, a session's list)."""
    udp_packets: int = 0
    """UDP packets to or from port 53 (the protocol hierarchy's ``dns (udp)`` row)."""
    udp_bytes: int = 0
    """Their UDP payload bytes (the DNS messages, UDP header not included)."""
    tcp_dns_packets: int = 0
    """Packets of TCP connections to port 53 while they were followed."""
    tcp_dns_bytes: int = 0
    """Their TCP payload bytes."""
    ident_packets: int = 0
    """Packets of TCP connections to port 113 (ident probes) while they were followed."""
    ident_bytes: int = 0
    """Their TCP payload bytes."""
    dnsbl_lookups: int = 0
    """DNS transactions that were blocklist look-ups (:func:`~mailtrace.context.model.dnsbl_lookup`)."""
    dnsbl_listed: int = 0
    """… answered with a 127.0.0.x address: listed."""
    dnsbl_not_listed: int = 0
    """… answered NXDOMAIN: not listed (RFC 5782 §2.1)."""
    dnsbl_unanswered: int = 0
    """… without a response in the capture."""
    dnsbl_zones: dict[str, list[int]] = field(default_factory=dict)
    """Zone → [look-ups, listed, not listed] (at most ``ContextLimits.max_dnsbl_zones`` zones, the
    rest under ``(other)``)."""

    @property
    def unattributed(self) -> int:
        return self.dns + self.ident - self.attributed - self.non_mail

    @property
    def dnsbl_other(self) -> int:
        """Blocklist look-ups answered otherwise: an error (SERVFAIL, REFUSED …), or NOERROR without a
        127.0.0.x address (a TXT reason alone, no data)."""
        return self.dnsbl_lookups - self.dnsbl_listed - self.dnsbl_not_listed - self.dnsbl_unanswered

    def count_dnsbl(self, o: ContextObservation, max_zones: int) -> None:
        """Count one finished DNS transaction if it is a blocklist look-up."""
        parsed = dnsbl_lookup(o.query or "", o.qtype)
        if parsed is None:
            return
        zone = parsed[1]
        if zone not in self.dnsbl_zones and len(self.dnsbl_zones) >= max_zones:
            zone = "(other)"
        counts = self.dnsbl_zones.setdefault(zone, [0, 0, 0])
        self.dnsbl_lookups += 1
        counts[0] += 1
        if o.rcode is None:
            self.dnsbl_unanswered += 1
        elif dnsbl_codes(r.data for r in o.answers):
            self.dnsbl_listed += 1
            counts[1] += 1
        elif o.rcode == "NXDOMAIN":
            self.dnsbl_not_listed += 1
            counts[2] += 1


def reverse_name(address: str) -> str | None:
    """``127.0.0.10`` → ``10.0.0.127.in-addr.arpa`` (and the nibble form for IPv6)."""
    try:
        return ipaddress.ip_address(address).reverse_pointer
    except ValueError:
        return None


def address_in(name: str) -> str | None:
    """The address a reverse-DNS or DNS-blocklist name is about: ``10.0.0.127.in-addr.arpa`` and
    ``10.0.0.127.zen.spamhaus.org`` → ``127.0.0.10`` (IPv6: 32 nibbles); None for other names."""
    labels = name.split(".")
    if len(labels) > 32 and all(len(x) == 1 for x in labels[:32]):
        try:
            return str(ipaddress.IPv6Address(int("".join(reversed(labels[:32])), 16)))
        except ValueError:
            return None
    if len(labels) > 4 and all(is_count(x, 3) and int(x) < 256 for x in labels[:4]):
        return ".".join(reversed(labels[:4]))
    return None


def domain_of(argument: str) -> str | None:
    """The domain of the address in a MAIL/RCPT/VRFY/EXPN argument, lower-cased."""
    match = _DOMAIN.search(argument)
    if match is None:
        return None
    return match.group(1).strip(".").lower() or None


_EMPTY: list[SessionBuilder] = []


def _no_session() -> SessionBuilder:
    """A builder with nothing in it, standing in while a connection is sniffed (nothing said yet)."""
    if not _EMPTY:
        from mailtrace.model import Endpoint
        from mailtrace.session import SessionBuilder

        nowhere = Endpoint("", 0)
        _EMPTY.append(SessionBuilder(protocol="?", client=nowhere, server=nowhere, stream=-1, file="",
                                     tunnel=None))
    return _EMPTY[0]


@dataclass(slots=True)
class _Subject:
    """What the tracker knows about one open mail connection (read from its session builder).

    One is made for every connection that may be mail (sniffed ones too), so making it is cheap:
    the addresses as text and the reverse name of the client are only computed when a lookup asks
    for them (most sniffed connections end on their first segment, before any lookup).
    """

    stream: int
    conn: Connection
    source: Callable[[], SessionBuilder | None]
    """The connection's session builder, or None while its first bytes are still being sniffed."""
    start: float
    observations: list[ContextObservation] = field(default_factory=list)
    dropped: int = 0
    names: set[str] = field(default_factory=set)
    """Names of the client: PTR answers and the HELO argument."""
    helo: str | None = None
    envelope: dict[str, str] = field(default_factory=dict)
    """Domains of the open transaction → ``sender-domain`` / ``recipient-domain``."""
    transaction_open: bool = False
    recipients: set[str] = field(default_factory=set)
    """Domains of every RCPT TO of the session."""
    ended: bool = False
    """QUIT/LOGOUT was sent: nothing the server looks up now is for this session."""
    commands_seen: int = 0
    replies_seen: int = 0
    _rev: str | None = None

    @property
    def builder(self) -> SessionBuilder:
        return self.source() or _no_session()

    @property
    def client(self) -> str:
        return self.conn.client.ip

    @property
    def server(self) -> str:
        return self.conn.server.ip

    @property
    def rev(self) -> str | None:
        """The client's address as a PTR name (``10.0.0.127.in-addr.arpa``)."""
        if self._rev is None:
            self._rev = reverse_name(self.client) or ""
        return self._rev or None

    def refresh(self) -> None:
        """Read the commands and replies the session gained since the last look."""
        commands = self.builder.commands
        for command in commands[self.commands_seen :]:
            verb = command.verb
            if verb in ("HELO", "EHLO", "LHLO"):
                name = command.argument.split(" ", 1)[0].strip("[]").rstrip(".").lower()
                if name:
                    self.helo = name
            elif verb == "MAIL":
                self.envelope = {}
                domain = domain_of(command.argument)
                if domain:
                    self.envelope[domain] = "sender-domain"
                self.transaction_open = True
            elif verb == "RCPT":
                domain = domain_of(command.argument)
                if domain:
                    self.envelope.setdefault(domain, "recipient-domain")
                    self.recipients.add(domain)
            elif verb == "RSET":
                self.transaction_open = False
            elif verb in END_VERBS:
                self.ended = True
        self.commands_seen = len(commands)
        replies = self.builder.replies
        for reply in replies[self.replies_seen :]:
            if reply.answers == "." or (reply.answers == "MAIL" and reply.status[:1] in ("4", "5")):
                self.transaction_open = False
        self.replies_seen = len(replies)

    @property
    def in_dialog(self) -> bool:
        conn = self.conn
        return not self.ended and not conn.reset and not any(conn.fin)

    @property
    def greeted(self) -> bool:
        return bool(self.builder.replies) or self.builder.bytes[1] > 0

    def pending(self) -> dict[str, str]:
        """Domains named by the commands still waiting for a reply → their purpose (none once the session stopped
        keeping its commands and replies: its last kept command is no longer the last one sent)."""
        builder = self.builder
        if builder.events_dropped:
            return {}
        last_reply = builder.replies[-1].frame if builder.replies else 0
        out: dict[str, str] = {}
        for command in reversed(builder.commands[-16:]):
            if command.frame <= last_reply and command.first_frame <= last_reply:
                break
            purpose = ENVELOPE_VERBS.get(command.verb)
            domain = domain_of(command.argument) if purpose else None
            if domain and purpose:
                out.setdefault(domain, purpose)
        return out

    def waiting(self) -> bool:
        """A command waits for its reply, or the server has not greeted yet (not known once the session stopped
        keeping its commands and replies)."""
        builder = self.builder
        if not self.greeted:
            return True
        if builder.events_dropped:
            return False
        commands = [c for c in builder.commands[-4:] if c.verb]
        if not commands:
            return False
        return not builder.replies or commands[-1].frame > builder.replies[-1].frame

    def relevance(self, o: ContextObservation) -> tuple[int, str, str]:
        """How strongly a lookup by this session's server is about the session: (score, purpose, subject)."""
        name = (o.query or "").lower()
        rev = self.rev
        if rev is not None:
            if name == rev:
                return 3, "client-ptr", self.client
            head = rev.rsplit(".", 2)[0]  # the reversed address, without in-addr.arpa / ip6.arpa
            if name.startswith(head + ".") and not name.endswith((".in-addr.arpa", ".ip6.arpa")):
                return 3, "dnsbl", name[len(head) + 1 :]
        if name in self.names:
            return 3, "client-name", name
        if self.helo is not None and name == self.helo:
            return 3, "helo-name", name
        for domain, purpose in self.pending().items():
            if _about(name, domain, o.qtype):
                return 3, purpose, domain
        if self.transaction_open:
            for domain, purpose in self.envelope.items():
                if _about(name, domain, o.qtype):
                    return 2, purpose, domain
        if self.builder.protocol == "smtp" and self.waiting():
            return 1, "command" if self.greeted else "connect", name
        return 0, "", ""


def _about(name: str, domain: str, qtype: str | None) -> bool:
    """The lookup is of the domain itself, or a policy record under it (SPF, DKIM, DMARC: TXT)."""
    return name == domain or (qtype in ("TXT", "SPF") and name.endswith("." + domain))


class ContextTracker:
    """Sees DNS and ident traffic, attributes it to open mail connections, hands it to their sessions."""

    def __init__(self, limits: ContextLimits = ContextLimits()) -> None:
        self.limits = limits
        self.stats = ContextStats()
        self.listeners: list[Listener] = []
        """Called with every DNS transaction once it is complete (answered or given up): the findings hook."""
        self._subjects: dict[int, _Subject] = {}
        self._by_server: dict[str, dict[int, _Subject]] = {}
        self._unindexed: dict[int, _Subject] = {}
        """Subjects opened since ``_by_server`` was last read, not in it yet (see :meth:`_servers`)."""
        self._pending: dict[int, ContextObservation] = {}
        """Serial → observation nobody claimed yet, oldest first."""
        self._pending_by_host: dict[str, dict[int, ContextObservation]] = {}
        self._serial_of: dict[int, int] = {}
        """id(observation) → its serial in the pending buffer."""
        self._serial = 0
        self._queries: dict[tuple[str, int, str, int, str], ContextObservation] = {}
        """(asker, its port, server, DNS id, transport) → query waiting for its response, oldest first."""

    # ------------------------------------------------------------------ per capture file
    def new_file(self) -> None:
        """Frame numbers start again: nothing carries over from the previous file."""
        self.flush()
        self._subjects.clear()
        self._by_server.clear()
        self._unindexed.clear()
        self._pending.clear()
        self._pending_by_host.clear()
        self._serial_of.clear()

    def flush(self) -> None:
        """End of a file: queries still waiting are unanswered; the pending buffer is unattributed."""
        for key in list(self._queries):
            self._give_up(key)

    # ------------------------------------------------------------------ mail connections
    def opened(self, conn: Connection, builder: Callable[[], SessionBuilder | None]) -> None:
        """A connection that may be mail begins: claim its client's lookups from the pending buffer."""
        if self._pending or self._queries:
            self._expire(conn.first_ts)
        subject = _Subject(conn.stream, conn, builder, conn.first_ts)
        self._subjects[conn.stream] = subject
        self._unindexed[conn.stream] = subject
        if self._pending_by_host:
            self._claim_before(subject)

    def _servers(self) -> dict[str, dict[int, _Subject]]:
        """Server address → its open subjects, in the order they opened.

        A subject is filed under its server's address only when a lookup or ident probe first needs
        the index: most connections end (not mail) before any, and never need their address as text.
        All subjects waiting here opened after every filed one, so the order stays the opening order.
        """
        if self._unindexed:
            by_server = self._by_server
            for stream, subject in self._unindexed.items():
                by_server.setdefault(subject.server, {})[stream] = subject
            self._unindexed.clear()
        return self._by_server

    def closed(self, stream: int, session: Session | None) -> None:
        """The connection ended (``session`` is None when it was not mail): hand over its observations."""
        subject = self._subjects.pop(stream, None)
        if subject is None:
            return
        if self._unindexed.pop(stream, None) is None:
            servers = self._by_server.get(subject.server)
            if servers is not None:
                servers.pop(stream, None)
                if not servers:
                    del self._by_server[subject.server]
        if session is None:
            self.stats.non_mail += len(subject.observations)
            return
        self._claim_mx_after(subject)
        self.stats.attributed += len(subject.observations)
        session.context = sorted(subject.observations, key=lambda o: o.frame)
        session.context_dropped = subject.dropped
        session.context_checks = context_checks(session)

    # ------------------------------------------------------------------ DNS
    def udp(self, frame: int, ts: float, pkt: UdpPacket) -> None:
        if DNS_PORT not in (pkt.sport, pkt.dport):
            return
        stats = self.stats
        stats.udp_packets += 1
        payload = pkt.payload
        stats.udp_bytes += len(payload)
        message = parse_dns(payload)
        if message is None:
            return
        src, dst = ip_text(pkt.src), ip_text(pkt.dst)
        row = ContextRow(frame, ts, src, dst, pkt.sport, pkt.dport, message.response, 0, len(pkt.payload))
        self.dns(row, message, "udp")

    def dns(self, row: ContextRow, message: DnsMessage, transport: str) -> None:
        """One DNS message (from UDP or a TCP stream) with the row of the packet that completed it."""
        self._expire(row.ts)
        if message.response:
            key = (row.dst, row.dport, row.src, message.id, transport)
            o = self._queries.pop(key, None)
            if o is None:  # the query is not in the capture: the response stands alone
                o = self._new_dns(row, message, transport, asker=row.dst, server=row.src)
                self._complete(o, row, message)
                self._place(o)
            else:
                self._complete(o, row, message)
                if o.session_stream is None:
                    self._attribute_live(o)  # its answers may say more than its question did
            self._answered(o)
            return
        key = (row.src, row.sport, row.dst, message.id, transport)
        if key in self._queries:  # the same id again before an answer: a retransmission
            self._queries[key].rows.append(row)
            return
        o = self._new_dns(row, message, transport, asker=row.src, server=row.dst)
        if len(self._queries) >= self.limits.max_queries:
            self._give_up(next(iter(self._queries)))
        self._queries[key] = o
        self._place(o)

    def _new_dns(self, row: ContextRow, message: DnsMessage, transport: str, *, asker: str,
                 server: str) -> ContextObservation:
        self.stats.dns += 1
        return ContextObservation(kind=DNS, frame=row.frame, ts=row.ts, host=asker, peer=server,
                                  transport=transport, dns_id=message.id, query=message.qname,
                                  qtype=message.qtype, rows=[row])

    def _complete(self, o: ContextObservation, row: ContextRow, message: DnsMessage) -> None:
        if row not in o.rows:
            o.rows.append(row)
        o.rcode = message.rcode
        o.answers = message.answers
        o.additional = message.additional
        o.cut = message.cut
        o.response_frame = row.frame
        o.response_ts = row.ts
        if o.session_stream is not None and o.purpose == "client-ptr":
            subject = self._subjects.get(o.session_stream)
            if subject is not None:
                subject.names.update(r.data.lower() for r in o.answers if r.rtype == "PTR")

    def _answered(self, o: ContextObservation) -> None:
        self.stats.count_dnsbl(o, self.limits.max_dnsbl_zones)
        for listener in self.listeners:
            listener(o)

    def _give_up(self, key: tuple[str, int, str, int, str]) -> None:
        o = self._queries.pop(key)
        self.stats.unanswered += 1
        self._answered(o)

    # ------------------------------------------------------------------ attribution
    def _place(self, o: ContextObservation) -> None:
        """A new observation: give it to the session it serves now, or keep it for a later one."""
        if self._attribute_live(o):
            return
        if len(self._pending) >= self.limits.max_pending:
            self._unpend(next(iter(self._pending.values())))
            self.stats.dropped += 1
        self._serial += 1
        self._pending[self._serial] = o
        self._serial_of[id(o)] = self._serial
        self._pending_by_host.setdefault(o.host, {})[self._serial] = o

    def _attribute_live(self, o: ContextObservation) -> bool:
        """A lookup by a server about one of its sessions in progress.

        A server may hold thousands of open connections (IMAP IDLE clients): only SMTP sessions are
        weighed in full (their commands can make any lookup theirs); the others are skipped unless
        the lookup is about their client's address or names, which costs a comparison each.
        """
        candidates = self._servers().get(o.host)
        if not candidates:
            return False
        name = (o.query or "").lower()
        about = address_in(name)
        best: tuple[int, float, _Subject, str, str] | None = None
        for subject in candidates.values():
            if subject.builder.protocol != "smtp" and about != subject.client and name not in subject.names:
                continue
            subject.refresh()
            if not subject.in_dialog:
                continue
            score, purpose, about = subject.relevance(o)
            if score == 0:
                continue
            rank = (score, subject.start)
            if best is None or rank > best[:2]:
                best = (score, subject.start, subject, purpose, about)
        if best is None:
            return False
        _, _, subject, purpose, about = best
        self._give(subject, o, purpose, "server", about)
        return True

    def _claim_before(self, subject: _Subject) -> None:
        """Lookups by the client in the window before it connected that lead to the server's address."""
        waiting = self._pending_by_host.get(subject.client)
        if not waiting:
            return
        earliest = subject.start - self.limits.window_before
        found = [o for o in waiting.values() if o.kind == DNS and earliest <= o.ts <= subject.start]
        if not found:
            return
        server = subject.server
        to_server: set[str] = set()
        for o in found:
            if o.qtype in ADDRESS_TYPES and server in o.addresses():
                to_server.add((o.query or "").lower())
                to_server.update(r.data.lower() for r in o.answers if r.rtype == "CNAME")
            to_server.update(r.name.lower() for r in o.additional if r.data == server)
        mx_hosts: set[str] = set()
        for o in found:
            if o.qtype == "MX":
                exchanges = {r.data.lower() for r in o.answers if r.rtype == "MX"}
                if exchanges & to_server:
                    mx_hosts |= exchanges
                    self._give(subject, o, "mx", "client", (o.query or "").lower())
        for o in found:
            name = (o.query or "").lower()
            if o.session_stream is not None or o.qtype not in (*ADDRESS_TYPES, "CNAME"):
                continue
            if name in mx_hosts:
                self._give(subject, o, "mx-host", "client", name)
            elif name in to_server:
                self._give(subject, o, "server-address", "client", name)

    def _claim_mx_after(self, subject: _Subject) -> None:
        """A relay that did not go where its MX lookup pointed: once the recipients are known, the
        client's MX lookups of their domains just before the connection still belong to it (the
        ``mx-route`` check then says where the MX pointed instead)."""
        waiting = self._pending_by_host.get(subject.client)
        if not waiting:
            return  # the common case: no lookup by the client waits (its commands need not be read again)
        subject.refresh()
        if not subject.recipients:
            return
        earliest = subject.start - self.limits.window_before
        found = [o for o in waiting.values() if o.kind == DNS and earliest <= o.ts <= subject.start]
        hosts: set[str] = set()
        for o in found:
            if o.qtype == "MX" and (o.query or "").lower() in subject.recipients:
                hosts |= {r.data.lower() for r in o.answers if r.rtype == "MX"}
                self._give(subject, o, "mx", "client", (o.query or "").lower())
        for o in found:
            if o.qtype in ADDRESS_TYPES and (o.query or "").lower() in hosts and o.session_stream is None:
                self._give(subject, o, "mx-host", "client", (o.query or "").lower())

    def _give(self, subject: _Subject, o: ContextObservation, purpose: str, role: str, about: str) -> None:
        self._unpend(o)
        o.session_stream = subject.stream
        o.purpose = purpose
        o.role = role
        o.subject = about
        if len(subject.observations) >= self.limits.max_per_session:
            subject.dropped += 1
            self.stats.dropped += 1
            return
        subject.observations.append(o)
        if purpose == "client-ptr" and o.answered:
            subject.names.update(r.data.lower() for r in o.answers if r.rtype == "PTR")

    def _unpend(self, o: ContextObservation) -> None:
        serial = self._serial_of.pop(id(o), None)
        if serial is None:
            return
        self._pending.pop(serial, None)
        by_host = self._pending_by_host.get(o.host)
        if by_host is not None:
            by_host.pop(serial, None)
            if not by_host:
                del self._pending_by_host[o.host]

    def _expire(self, now: float) -> None:
        """Forget pending observations older than the window; give up on queries past the timeout."""
        limit = now - self.limits.window_before
        while self._pending:
            o = next(iter(self._pending.values()))
            if o.ts >= limit:
                break
            self._unpend(o)
        timeout = now - self.limits.query_timeout
        while self._queries:
            key, o = next(iter(self._queries.items()))
            if o.ts >= timeout:
                break
            self._give_up(key)

    # ------------------------------------------------------------------ TCP handlers (port 53, 113)
    def handler(self, conn: Connection, pkt: TcpPacket) -> IdentProbe | DnsOverTcp | None:
        """The flow-table handler for a TCP connection to port 53 or 113 (None for other ports)."""
        port = conn.server.port
        if port == IDENT_PORT:
            return IdentProbe(self, conn)
        if port == DNS_PORT:
            return DnsOverTcp(self, conn)
        return None

    def ident_started(self, o: ContextObservation) -> None:
        """An ident probe from a server to the client of one of its sessions in progress."""
        self.stats.ident += 1
        candidates = self._servers().get(o.host)
        best: tuple[bool, float, _Subject] | None = None
        for subject in (candidates or {}).values():
            subject.refresh()
            if subject.client != o.peer or not subject.in_dialog:
                continue
            rank = (not subject.greeted, subject.start)
            if best is None or rank > best[:2]:
                best = (rank[0], rank[1], subject)
        if best is not None:
            self._give(best[2], o, "ident", "server", o.peer)


class IdentProbe:
    """Flow-table handler for one TCP connection to port 113 (RFC 1413): the probe and its outcome."""

    def __init__(self, tracker: ContextTracker, conn: Connection) -> None:
        self.tracker = tracker
        self.limits = tracker.limits
        self.observation: ContextObservation | None = None
        self.request = b""
        self.answer = b""
        self.conn = conn

    @property
    def tracked(self) -> bool:
        return True

    def packet(self, conn: Connection, frame: int, ts: float, direction: Direction, pkt: TcpPacket) -> None:
        stats = self.tracker.stats
        stats.ident_packets += 1
        stats.ident_bytes += pkt.payload_len
        client = direction is CLIENT
        src, dst = (conn.client, conn.server) if client else (conn.server, conn.client)
        row = ContextRow(frame, ts, src.ip, dst.ip, src.port, dst.port, not client, pkt.flags, pkt.payload_len)
        o = self.observation
        if o is None:
            o = ContextObservation(kind=IDENT, frame=frame, ts=ts, host=conn.client.ip, peer=conn.server.ip,
                                   transport="tcp", rows=[row])
            self.observation = o
            self.tracker.ident_started(o)
        elif len(o.rows) < self.limits.max_probe_rows:
            o.rows.append(row)
        if not client and pkt.flags & TCP_RST and o.outcome is None:
            o.outcome = "rst"
            o.response_frame, o.response_ts = frame, ts
        elif not client and pkt.flags & TCP_SYN and o.response_frame is None:
            o.response_frame, o.response_ts = frame, ts

    def items(self, conn: Connection, items: list[StreamItem]) -> None:
        o = self.observation
        if o is None:
            return
        room = self.limits.max_ident_bytes
        for item in items:
            if isinstance(item, Chunk):
                if item.direction is CLIENT:
                    self.request = (self.request + item.data)[:room]
                    o.query = _line(self.request)
                    _mark(o, item.frame, o.query)
                else:
                    self.answer = (self.answer + item.data)[:room]
                    o.reply = _line(self.answer)
                    _mark(o, item.frame, o.reply)
                    upper = (o.reply or "").upper()
                    o.outcome = "error" if ": ERROR" in upper or ":ERROR" in upper else "answered"
                    o.response_frame, o.response_ts = item.frame, item.ts

    def notes(self, conn: Connection, notes: list[ReassemblyNote]) -> None:
        pass

    def finish(self, conn: Connection, close: str) -> None:
        o = self.observation
        if o is not None and o.outcome is None:
            o.outcome = "no-response" if not any(r.response for r in o.rows) else "closed"


class DnsOverTcp:
    """Flow-table handler for one TCP connection to port 53: length-prefixed DNS messages."""

    def __init__(self, tracker: ContextTracker, conn: Connection) -> None:
        self.tracker = tracker
        self.framers = (TcpDnsFramer(), TcpDnsFramer())
        self.flags = 0

    @property
    def tracked(self) -> bool:
        return True

    def packet(self, conn: Connection, frame: int, ts: float, direction: Direction, pkt: TcpPacket) -> None:
        self.flags = pkt.flags
        stats = self.tracker.stats
        stats.tcp_dns_packets += 1
        stats.tcp_dns_bytes += pkt.payload_len

    def items(self, conn: Connection, items: list[StreamItem]) -> None:
        for item in items:
            client = item.direction is CLIENT
            framer = self.framers[0 if client else 1]
            if isinstance(item, StreamGap):
                framer.gap()
                continue
            if not isinstance(item, Chunk):
                continue
            src, dst = (conn.client, conn.server) if client else (conn.server, conn.client)
            for raw in framer.feed(item.data):
                message = parse_dns(raw)
                if message is not None:
                    row = ContextRow(item.frame, item.ts, src.ip, dst.ip, src.port, dst.port, message.response,
                                     self.flags & ~(TCP_FIN | TCP_RST), len(raw) + 2)
                    self.tracker.dns(row, message, "tcp")

    def notes(self, conn: Connection, notes: list[ReassemblyNote]) -> None:
        pass

    def finish(self, conn: Connection, close: str) -> None:
        pass


def _line(data: bytes) -> str:
    return data.split(b"\n", 1)[0].rstrip(b"\r").decode("latin-1", "replace").strip()


def _mark(o: ContextObservation, frame: int, text: str | None) -> None:
    for row in o.rows:
        if row.frame == frame:
            row.text = text
            return
