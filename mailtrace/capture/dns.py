"""DNS messages (RFC 1035) from UDP datagrams and TCP streams: bytes → :class:`DnsMessage`.

The context rows of a session (docs/context-and-flows.md) need what a mail server asked its
resolver and what it was told. dpkt's ``dns`` module decodes names (with compression) and the
record types mail servers use; this module wraps it so nothing outside ``capture/`` sees a dpkt
object. A record dpkt cannot decode (RRSIG, HTTPS, a TXT string that is not UTF-8 …) keeps its type
and a hex preview instead of failing the whole message, and a datagram that is not DNS at all
(port 53 used for something else, a zero-filled test packet) is None — the caller skips it.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailtrace.context.model import DnsRecord

if TYPE_CHECKING:
    import dpkt

QTYPES: dict[int, str] = {
    1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 13: "HINFO", 15: "MX", 16: "TXT", 28: "AAAA",
    33: "SRV", 35: "NAPTR", 39: "DNAME", 41: "OPT", 43: "DS", 46: "RRSIG", 47: "NSEC", 48: "DNSKEY",
    52: "TLSA", 64: "SVCB", 65: "HTTPS", 99: "SPF", 252: "AXFR", 255: "ANY", 257: "CAA",
}
"""Record type names as Wireshark writes them; others are ``TYPE123`` (RFC 3597)."""

RCODES: dict[int, str] = {
    0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED", 6: "YXDOMAIN",
    7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE",
}

MAX_RECORDS = 64
"""Records read per section: a mail server's answers are small; a huge one is cut, not read whole."""
MAX_TEXT = 512
"""Characters kept of one TXT record (SPF, DKIM keys) for display."""

_HEADER = struct.Struct("!HHHHHH")


@dataclass(frozen=True, slots=True)
class DnsMessage:
    """The facts of one DNS message that the context rows need."""

    id: int
    response: bool
    opcode: int
    rcode: str
    qname: str | None
    """The (first) question's name, without the trailing dot; None when there is no question."""
    qtype: str | None
    answers: tuple[DnsRecord, ...]
    additional: tuple[DnsRecord, ...]
    """Additional-section records (the addresses of MX hosts, as dnsmasq and BIND add them)."""
    truncated: bool
    """The TC bit: the answer did not fit and the client should retry over TCP."""
    cut: bool = False
    """Records the header counts are not in the captured bytes (a frame cut by the snap length): the
    answers are not known to be all there."""


def qtype_name(value: int) -> str:
    return QTYPES.get(value, f"TYPE{value}")


def parse_dns(payload: bytes) -> DnsMessage | None:
    """A DNS message, or None when the bytes are not one (too short, no question, garbage)."""
    if len(payload) < 12:
        return None
    ident, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(payload)
    opcode = (flags >> 11) & 0x0F
    if qdcount == 0 or qdcount > 16 or opcode > 6:
        return None  # mail servers' queries and answers always carry their question
    import dpkt  # only now: most runs never see a DNS message, and dpkt costs a tenth of a second to load

    parser = dpkt.dns.DNS()
    try:
        question, off = parser.unpack_q(payload, 12)
        qname = _name(question.name)
        qtype = qtype_name(question.type)
        for _ in range(qdcount - 1):
            _, off = parser.unpack_q(payload, off)
    except (dpkt.UnpackError, struct.error, IndexError, ValueError, UnicodeDecodeError):
        return None
    answers, off = _records(parser, payload, off, ancount)
    _, off = _records(parser, payload, off, nscount, keep=False)
    additional, off = _records(parser, payload, off, arcount)
    return DnsMessage(id=ident, response=bool(flags & 0x8000), opcode=opcode,
                      rcode=RCODES.get(flags & 0x0F, f"RCODE{flags & 0x0F}"), qname=qname, qtype=qtype,
                      answers=answers, additional=additional, truncated=bool(flags & 0x0200), cut=off < 0)


def _records(parser: dpkt.dns.DNS, payload: bytes, off: int, count: int, *,
             keep: bool = True) -> tuple[tuple[DnsRecord, ...], int]:
    """Read ``count`` records from ``off``; stop quietly at the first one that does not parse."""
    import dpkt

    out: list[DnsRecord] = []
    for _ in range(min(count, MAX_RECORDS)):
        if off < 0:
            break
        try:
            rr = parser.RR()
            name, off = dpkt.dns.unpack_name(payload, off)
            rtype, _cls, _ttl, rdlen = struct.unpack(">HHIH", payload[off : off + 10])
            off += 10
            if off + rdlen > len(payload):
                raise IndexError("record data cut off")
            rdata = payload[off : off + rdlen]
            start, off = off, off + rdlen
        except (dpkt.UnpackError, struct.error, IndexError, ValueError, UnicodeDecodeError):
            return tuple(out), -1
        if not keep or rtype == 41:  # OPT (EDNS) is not data
            continue
        rr.type = rtype
        rr.rdata = rdata
        out.append(_record(rr, payload, start, _name(name), rtype, rdata))
    return tuple(out), off


def _record(rr: dpkt.dns.DNS.RR, payload: bytes, start: int, name: str, rtype: int, rdata: bytes) -> DnsRecord:
    import dpkt

    kind = qtype_name(rtype)
    try:
        rr.unpack_rdata(payload, start)
    except (dpkt.UnpackError, struct.error, IndexError, ValueError, UnicodeDecodeError):
        return DnsRecord(name, kind, _hex(rdata))
    if rtype == 1 and len(rdata) == 4:
        return DnsRecord(name, kind, socket.inet_ntop(socket.AF_INET, rdata))
    if rtype == 28 and len(rdata) == 16:
        return DnsRecord(name, kind, socket.inet_ntop(socket.AF_INET6, rdata))
    if rtype == 12:
        return DnsRecord(name, kind, _name(rr.ptrname))
    if rtype == 5:
        return DnsRecord(name, kind, _name(rr.cname))
    if rtype == 2:
        return DnsRecord(name, kind, _name(rr.nsname))
    if rtype == 15:
        preference = rr.preference[0] if isinstance(rr.preference, tuple) else int(rr.preference)
        return DnsRecord(name, kind, _name(rr.mxname), preference)
    if rtype in (16, 99):
        return DnsRecord(name, kind, "".join(rr.text)[:MAX_TEXT])
    if rtype == 6:
        return DnsRecord(name, kind, f"{_name(rr.mname)} {_name(rr.rname)}")
    if rtype == 33:
        return DnsRecord(name, kind, f"{rr.priority} {rr.weight} {rr.port} {_name(rr.srvname)}")
    return DnsRecord(name, kind, _hex(rdata))


def _name(value: object) -> str:
    text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
    return text.rstrip(".")


def _hex(data: bytes) -> str:
    return data[:32].hex() + ("…" if len(data) > 32 else "")


class TcpDnsFramer:
    """DNS over TCP (RFC 7766): each message is preceded by its length in two bytes.

    One per direction of a connection; ``feed`` returns the complete messages' bytes. The buffer
    holds at most one message (64 KiB + 2); a gap resets the framing, because after lost bytes no
    length prefix can be trusted.
    """

    __slots__ = ("buffer",)

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self.buffer + data
        out: list[bytes] = []
        while len(buffer) >= 2:
            size = (buffer[0] << 8) | buffer[1]
            if len(buffer) < 2 + size:
                break
            out.append(buffer[2 : 2 + size])
            buffer = buffer[2 + size :]
        self.buffer = buffer
        return out

    def gap(self) -> None:
        self.buffer = b""
