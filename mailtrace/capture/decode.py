"""Frames → TCP packets (and the few UDP packets someone asked for), skipping the rest cheaply.

Link layers: Ethernet (802.1Q/QinQ VLAN tags, MPLS), Linux cooked SLL and SLL2, raw IP (DLT_RAW
and its aliases), BSD NULL/LOOP. Network: IPv4 with options and fragments (reassembled), IPv6 with
extension headers and fragments. Tunnels: GRE (incl. transparent Ethernet), IP-in-IP and IPv6-in-IPv4.

Nothing here allocates an object for a packet it skips, and checksums are never verified: NIC offload
makes them wrong in most captures taken on the sending host.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import NamedTuple

# Link types (https://www.tcpdump.org/linktypes.html)
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW_ALIASES = frozenset({12, 14, 101})
LINKTYPE_LOOP = 108
LINKTYPE_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_SLL2 = 276

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_VLAN = frozenset({0x8100, 0x88A8, 0x9100, 0x9200})
ETH_MPLS = frozenset({0x8847, 0x8848})
ETH_TEB = 0x6558  # transparent Ethernet bridging inside GRE

PROTO_TCP = 6
PROTO_UDP = 17
PROTO_IPIP = 4
PROTO_IPV6 = 41
PROTO_GRE = 47
IPV6_EXTENSIONS = frozenset({0, 43, 60, 135, 139, 140})  # hop-by-hop, routing, dest opts, mobility, HIP, shim6
IPV6_FRAGMENT = 44
IPV6_AH = 51

BSD_AF_INET6 = frozenset({10, 24, 28, 30})  # Linux, NetBSD/OpenBSD, FreeBSD, macOS

TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x04, 0x08, 0x10

_unpack_tcp = struct.Struct("!HHIIBB").unpack_from
_unpack_hh = struct.Struct("!HH").unpack_from


class TcpPacket(NamedTuple):
    """The TCP facts of one frame that the flow table needs."""

    key: bytes
    """src address + dst address + src port + dst port, as raw bytes: the flow-table key."""
    src: bytes
    dst: bytes
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    payload: bytes
    """The captured payload; shorter than ``payload_len`` when the snap length cut the frame."""
    payload_len: int
    """Payload length as sent (from the IP header)."""
    tunnel: str | None


class UdpPacket(NamedTuple):
    """A UDP datagram on a port someone registered interest in (DNS for the context rows)."""

    src: bytes
    dst: bytes
    sport: int
    dport: int
    payload: bytes


def ethernet_ipv4_tcp(data: bytes) -> TcpPacket | None:
    """The common case in one function: Ethernet, IPv4 (not a fragment), TCP with a full header.

    Returns None for anything else (VLAN tags, IPv6, fragments, tunnels, TSO-zeroed lengths, cut
    headers): the general decoder handles those. Both give identical packets (tests/test_capture.py).
    """
    if len(data) < 54 or data[12] != 0x08 or data[13] != 0x00 or data[14] >> 4 != 4 or data[23] != 6 \
            or data[20] & 0x3F or data[21]:
        return None
    ihl = (data[14] & 0x0F) * 4
    total = (data[16] << 8) | data[17]
    start = 14 + ihl
    if ihl < 20 or total < ihl + 20 or len(data) < start + 20:
        return None
    sport, dport, seq, ack, offx, flags = _unpack_tcp(data, start)
    hlen = (offx >> 4) * 4
    if hlen < 20:
        return None
    pstart = start + hlen
    end = 14 + total
    payload_len = end - pstart if end > pstart else 0
    src = data[26:30]
    dst = data[30:34]
    return TcpPacket(src + dst + data[start : start + 4], src, dst, sport, dport, seq, ack, flags,
                     data[pstart:end] if payload_len else b"", payload_len, None)


LINKTYPE_NAMES = {6: "IEEE802_5", 9: "PPP", 50: "PPP_HDLC", 105: "IEEE802_11", 119: "PRISM_HEADER",
                  127: "IEEE802_11_RADIOTAP", 163: "IEEE802_11_AVS", 195: "IEEE802_15_4", 220: "USB_LINUX_MMAPPED",
                  249: "NETLINK", 252: "WIRESHARK_UPPER_PDU", 274: "NFLOG"} | {147 + i: f"USER{i}" for i in range(16)}
"""tcpdump's names for link types mailtrace does not decode, for the summary (``147 (USER0)``)."""


def linktype_text(linktype: int) -> str:
    name = LINKTYPE_NAMES.get(linktype)
    return f"{linktype} ({name})" if name else str(linktype)


@dataclass
class DecodeStats:
    """Counters for what was skipped and why (reported in the capture summary)."""

    non_ip: int = 0
    unknown_linktype: int = 0
    non_tcp: int = 0
    truncated_headers: int = 0
    fragments: int = 0
    fragments_reassembled: int = 0
    fragments_dropped: int = 0
    unknown_linktypes: set[int] = field(default_factory=set)


@dataclass
class _Fragments:
    parts: dict[int, bytes] = field(default_factory=dict)
    total: int | None = None
    first_ts: float = 0.0
    size: int = 0


MAX_TUNNEL_DEPTH = 8
"""Tunnels inside tunnels followed (GRE, IP-in-IP, 6in4); deeper frames are counted as not TCP."""


class Decoder:
    """Turns frames into TcpPacket/UdpPacket; keeps the IP fragment buffers (bounded)."""

    def __init__(
        self,
        *,
        udp_ports: frozenset[int] = frozenset(),
        max_fragment_datagrams: int = 1024,
        max_fragment_bytes: int = 4 * 1024 * 1024,
        fragment_timeout: float = 30.0,
    ) -> None:
        self.stats = DecodeStats()
        self.udp_ports = udp_ports
        self._fragments: OrderedDict[bytes, _Fragments] = OrderedDict()
        self._fragment_bytes = 0
        self._nesting = 0
        self.max_fragment_datagrams = max_fragment_datagrams
        self.max_fragment_bytes = max_fragment_bytes
        self.fragment_timeout = fragment_timeout

    # ------------------------------------------------------------------ link layer
    def decode(self, ts: float, linktype: int, data: bytes) -> TcpPacket | UdpPacket | None:
        if linktype == LINKTYPE_ETHERNET:
            return ethernet_ipv4_tcp(data) or self._ethernet(ts, data, 0, None)
        if linktype in LINKTYPE_RAW_ALIASES or linktype in (LINKTYPE_IPV4, LINKTYPE_IPV6):
            return self._ip_any(ts, data, 0, None)
        if linktype == LINKTYPE_SLL:
            if len(data) < 16:
                self.stats.truncated_headers += 1
                return None
            return self._ethertype(ts, data, 16, (data[14] << 8) | data[15], None)
        if linktype == LINKTYPE_SLL2:
            if len(data) < 20:
                self.stats.truncated_headers += 1
                return None
            return self._ethertype(ts, data, 20, (data[0] << 8) | data[1], None)
        if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
            if len(data) < 4:
                self.stats.truncated_headers += 1
                return None
            family = int.from_bytes(data[:4], "big" if linktype == LINKTYPE_LOOP else "little")
            if family > 0xFFFF:  # NULL is host byte order: a big-endian writer
                family = int.from_bytes(data[:4], "big")
            if family == 2:
                return self._ipv4(ts, data, 4, None)
            if family in BSD_AF_INET6:
                return self._ipv6(ts, data, 4, None)
            self.stats.non_ip += 1
            return None
        self.stats.unknown_linktype += 1
        self.stats.unknown_linktypes.add(linktype)
        return None

    def _ethernet(self, ts: float, data: bytes, off: int, tunnel: str | None) -> TcpPacket | UdpPacket | None:
        if len(data) < off + 14:
            self.stats.truncated_headers += 1
            return None
        return self._ethertype(ts, data, off + 14, (data[off + 12] << 8) | data[off + 13], tunnel)

    def _ethertype(
        self, ts: float, data: bytes, off: int, etype: int, tunnel: str | None
    ) -> TcpPacket | UdpPacket | None:
        while etype in ETH_VLAN:
            if len(data) < off + 4:
                self.stats.truncated_headers += 1
                return None
            etype = (data[off + 2] << 8) | data[off + 3]
            off += 4
        if etype == ETH_IPV4:
            return self._ipv4(ts, data, off, tunnel)
        if etype == ETH_IPV6:
            return self._ipv6(ts, data, off, tunnel)
        if etype in ETH_MPLS:
            while len(data) >= off + 4:
                bottom = data[off + 2] & 0x01
                off += 4
                if bottom:
                    return self._ip_any(ts, data, off, tunnel)
            self.stats.truncated_headers += 1
            return None
        self.stats.non_ip += 1
        return None

    def _ip_any(self, ts: float, data: bytes, off: int, tunnel: str | None) -> TcpPacket | UdpPacket | None:
        if len(data) <= off:
            self.stats.truncated_headers += 1
            return None
        version = data[off] >> 4
        if version == 4:
            return self._ipv4(ts, data, off, tunnel)
        if version == 6:
            return self._ipv6(ts, data, off, tunnel)
        self.stats.non_ip += 1
        return None

    # ------------------------------------------------------------------ network layer
    def _ipv4(self, ts: float, data: bytes, off: int, tunnel: str | None) -> TcpPacket | UdpPacket | None:
        if len(data) < off + 20 or data[off] >> 4 != 4:
            self.stats.truncated_headers += 1
            return None
        ihl = (data[off] & 0x0F) * 4
        total = (data[off + 2] << 8) | data[off + 3]
        if ihl < 20 or total < ihl:
            if total == 0 and ihl >= 20:  # TSO: total length 0 on the sending host; trust the frame
                total = len(data) - off
            else:
                self.stats.truncated_headers += 1
                return None
        proto = data[off + 9]
        src = data[off + 12 : off + 16]
        dst = data[off + 16 : off + 20]
        frag = ((data[off + 6] << 8) | data[off + 7]) & 0x3FFF
        start = off + ihl
        end = off + total
        if frag:
            key = b"4" + src + dst + data[off + 4 : off + 6] + bytes((proto,))
            offset = (frag & 0x1FFF) * 8
            more = bool(frag & 0x2000)
            whole = self._reassemble(ts, key, offset, more, data[start:end])
            if whole is None:
                return None
            return self._transport(ts, proto, src, dst, whole, 0, len(whole), tunnel)
        return self._transport(ts, proto, src, dst, data, start, end, tunnel)

    def _ipv6(self, ts: float, data: bytes, off: int, tunnel: str | None) -> TcpPacket | UdpPacket | None:
        if len(data) < off + 40 or data[off] >> 4 != 6:
            self.stats.truncated_headers += 1
            return None
        plen = (data[off + 4] << 8) | data[off + 5]
        nxt = data[off + 6]
        src = data[off + 8 : off + 24]
        dst = data[off + 24 : off + 40]
        pos = off + 40
        end = pos + plen if plen else len(data)  # jumbograms carry plen 0
        while True:
            if nxt in IPV6_EXTENSIONS:
                if len(data) < pos + 2:
                    self.stats.truncated_headers += 1
                    return None
                nxt, hlen = data[pos], (data[pos + 1] + 1) * 8
                pos += hlen
            elif nxt == IPV6_AH:
                if len(data) < pos + 2:
                    self.stats.truncated_headers += 1
                    return None
                nxt, hlen = data[pos], (data[pos + 1] + 2) * 4
                pos += hlen
            elif nxt == IPV6_FRAGMENT:
                if len(data) < pos + 8:
                    self.stats.truncated_headers += 1
                    return None
                inner = data[pos]
                fo = (data[pos + 2] << 8) | data[pos + 3]
                key = b"6" + src + dst + data[pos + 4 : pos + 8]
                whole = self._reassemble(ts, key, fo & 0xFFF8, bool(fo & 1), data[pos + 8 : end])
                if whole is None:
                    return None
                return self._transport(ts, inner, src, dst, whole, 0, len(whole), tunnel)
            else:
                break
        return self._transport(ts, nxt, src, dst, data, pos, end, tunnel)

    def _reassemble(self, ts: float, key: bytes, offset: int, more: bool, part: bytes) -> bytes | None:
        """Collect IP fragments; return the whole datagram once every byte is there."""
        self.stats.fragments += 1
        self._expire_fragments(ts)
        entry = self._fragments.get(key)
        if entry is None:
            if len(self._fragments) >= self.max_fragment_datagrams:
                self._drop_oldest_fragments()
            entry = _Fragments(first_ts=ts)
            self._fragments[key] = entry
        changed = offset not in entry.parts
        if changed:
            entry.parts[offset] = part
            entry.size += len(part)
            self._fragment_bytes += len(part)
        if not more and entry.total != offset + len(part):
            entry.total = offset + len(part)
            changed = True
        while self._fragment_bytes > self.max_fragment_bytes and self._fragments:
            self._drop_oldest_fragments()
        # a duplicate changes nothing, and fewer bytes than the datagram's length leave a hole: joining
        # the parts again for each (32,000 copies of one fragment) made a capture quadratic
        if not changed or entry.total is None or entry.size < entry.total or key not in self._fragments:
            return None
        out = bytearray()
        for off in sorted(entry.parts):
            piece = entry.parts[off]
            if off > len(out):
                return None  # still a hole
            out += piece[len(out) - off :]
        if len(out) < entry.total:
            return None
        del self._fragments[key]
        self._fragment_bytes -= entry.size
        self.stats.fragments_reassembled += 1
        return bytes(out[: entry.total])

    def _drop_oldest_fragments(self) -> None:
        _, old = self._fragments.popitem(last=False)
        self._fragment_bytes -= old.size
        self.stats.fragments_dropped += 1

    def _expire_fragments(self, ts: float) -> None:
        while self._fragments:
            oldest = next(iter(self._fragments.values()))
            if ts - oldest.first_ts <= self.fragment_timeout:
                break
            self._drop_oldest_fragments()

    # ------------------------------------------------------------------ transport and tunnels
    def _transport(
        self, ts: float, proto: int, src: bytes, dst: bytes, data: bytes, start: int, end: int, tunnel: str | None
    ) -> TcpPacket | UdpPacket | None:
        if proto == PROTO_TCP:
            if len(data) < start + 14:
                self.stats.truncated_headers += 1
                return None
            sport, dport, seq, ack, offx, flags = _unpack_tcp(data, start)
            hlen = (offx >> 4) * 4
            if hlen < 20:
                self.stats.truncated_headers += 1
                return None
            pstart = start + hlen
            payload_len = end - pstart
            payload_len = max(payload_len, 0)
            payload = data[pstart:end] if payload_len else b""
            return TcpPacket(
                src + dst + data[start : start + 4], src, dst, sport, dport, seq, ack, flags,
                payload, payload_len, tunnel,
            )
        if proto == PROTO_UDP:
            if not self.udp_ports or len(data) < start + 8:
                self.stats.non_tcp += 1
                return None
            sport, dport = _unpack_hh(data, start)
            if sport in self.udp_ports or dport in self.udp_ports:
                return UdpPacket(src, dst, sport, dport, data[start + 8 : end])
            self.stats.non_tcp += 1
            return None
        if proto in (PROTO_IPIP, PROTO_IPV6, PROTO_GRE):
            if self._nesting >= MAX_TUNNEL_DEPTH:  # a frame of a thousand tunnels would recurse until Python stops
                self.stats.non_tcp += 1
                return None
            self._nesting += 1
            try:
                if proto == PROTO_IPIP:
                    return self._ipv4(ts, data[:end], start, tunnel or "ipip")
                if proto == PROTO_IPV6:
                    return self._ipv6(ts, data[:end], start, tunnel or ("6in4" if len(src) == 4 else "ipip"))
                return self._gre(ts, data[:end], start, tunnel)
            finally:
                self._nesting -= 1
        self.stats.non_tcp += 1
        return None

    def _gre(self, ts: float, data: bytes, off: int, tunnel: str | None) -> TcpPacket | UdpPacket | None:
        if len(data) < off + 4:
            self.stats.truncated_headers += 1
            return None
        flags = data[off]
        version = data[off + 1] & 0x07
        etype = (data[off + 2] << 8) | data[off + 3]
        if version != 0:  # enhanced GRE (PPTP) carries PPP, not IP
            self.stats.non_ip += 1
            return None
        pos = off + 4
        if flags & 0x80:  # checksum present
            pos += 4
        if flags & 0x20:  # key present
            pos += 4
        if flags & 0x10:  # sequence present
            pos += 4
        tunnel = tunnel or "gre"
        if etype == ETH_TEB:
            return self._ethernet(ts, data, pos, tunnel)
        if etype == 0x88BE:  # ERSPAN type II: 8-byte header, then Ethernet
            return self._ethernet(ts, data, pos + 8, tunnel)
        return self._ethertype(ts, data, pos, etype, tunnel)
