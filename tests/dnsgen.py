"""Build DNS messages and ident probes for synthetic captures (the cases the lab captures lack)."""

from __future__ import annotations

import socket
import struct

import dpkt
from pcapgen import Capture, ip_packet

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28, "RRSIG": 46}
NXDOMAIN, SERVFAIL = 3, 2

Record = tuple[str, str, object]
"""(name, type, data): data is an address, a name, (preference, exchange) for MX, text for TXT."""


def _rr(name: str, rtype: str, data: object) -> dpkt.dns.DNS.RR:
    rr = dpkt.dns.DNS.RR(name=name, type=TYPES[rtype], cls=1, ttl=300)
    if rtype == "A":
        rr.ip = socket.inet_aton(str(data))
    elif rtype == "AAAA":
        rr.ip6 = socket.inet_pton(socket.AF_INET6, str(data))
    elif rtype == "PTR":
        rr.ptrname = str(data)
    elif rtype == "CNAME":
        rr.cname = str(data)
    elif rtype == "NS":
        rr.nsname = str(data)
    elif rtype == "MX":
        preference, exchange = data  # type: ignore[misc]
        rr.preference, rr.mxname = preference, exchange
    elif rtype == "TXT":
        rr.text = [data if isinstance(data, bytes) else str(data).encode()]
    else:
        rr.rdata = bytes(data)  # type: ignore[call-overload]
    return rr


def dns_message(ident: int, name: str, qtype: str, *, response: bool = False, rcode: int = 0,
                answers: tuple[Record, ...] = (), additional: tuple[Record, ...] = ()) -> bytes:
    msg = dpkt.dns.DNS(id=ident)
    msg.qr = dpkt.dns.DNS_R if response else dpkt.dns.DNS_Q
    msg.rd = 1
    msg.rcode = rcode
    msg.qd = [dpkt.dns.DNS.Q(name=name, type=TYPES[qtype], cls=1)]
    msg.an = [_rr(*r) for r in answers]
    msg.ar = [_rr(*r) for r in additional]
    return bytes(msg)


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


class Dns:
    """Writes DNS transactions (over UDP) into a capture; ``ts`` is taken from the caller."""

    def __init__(self, cap: Capture, server: str = "10.0.0.53") -> None:
        self.cap = cap
        self.server = server
        self.next_id = 0x1000
        self.port = 50000

    def query(self, ts: float, host: str, name: str, qtype: str) -> tuple[int, int]:
        self.next_id += 1
        self.port += 1
        payload = dns_message(self.next_id, name, qtype)
        self.cap.add_ip(ts, ip_packet(host, self.server, 17, udp(self.port, 53, payload)), ipv6=":" in host)
        return self.next_id, self.port

    def answer(self, ts: float, host: str, key: tuple[int, int], name: str, qtype: str, *, rcode: int = 0,
               answers: tuple[Record, ...] = (), additional: tuple[Record, ...] = ()) -> None:
        ident, port = key
        payload = dns_message(ident, name, qtype, response=True, rcode=rcode, answers=answers,
                              additional=additional)
        self.cap.add_ip(ts, ip_packet(self.server, host, 17, udp(53, port, payload)), ipv6=":" in host)

    def lookup(self, ts: float, host: str, name: str, qtype: str, *, rcode: int = 0,
               answers: tuple[Record, ...] = (), additional: tuple[Record, ...] = ()) -> float:
        """A query and its answer 0.1 ms apart; returns the time after them."""
        key = self.query(ts, host, name, qtype)
        self.answer(ts + 0.0001, host, key, name, qtype, rcode=rcode, answers=answers, additional=additional)
        return ts + 0.0002
