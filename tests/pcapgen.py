"""Build synthetic captures for tests (the edge cases no real capture has).

A :class:`Capture` collects frames; a :class:`Tcp` conversation writes a handshake, data in either
direction, FIN/RST, and lets a test lose, reorder, duplicate or cut segments. Frames are built with
dpkt, wrapped in the link layer / tunnel the test asks for, and written as pcap or pcapng.
"""

from __future__ import annotations

import io
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dpkt

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def _ip_bytes(addr: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6 if ":" in addr else socket.AF_INET, addr)


def ip_packet(src: str, dst: str, proto: int, payload: bytes, *, ident: int = 1) -> bytes:
    """An IPv4 or IPv6 header + payload (checksums computed by dpkt for IPv4)."""
    if ":" in src:
        ip6 = dpkt.ip6.IP6(src=_ip_bytes(src), dst=_ip_bytes(dst), nxt=proto, hlim=64, plen=len(payload))
        ip6.data = payload
        return bytes(ip6)
    ip = dpkt.ip.IP(src=_ip_bytes(src), dst=_ip_bytes(dst), p=proto, ttl=64, id=ident)
    ip.data = payload
    ip.len = 20 + len(payload)
    return bytes(ip)


def tcp_segment(sport: int, dport: int, seq: int, ack: int, flags: int, payload: bytes) -> bytes:
    tcp = dpkt.tcp.TCP(sport=sport, dport=dport, seq=seq % (1 << 32), ack=ack % (1 << 32), flags=flags,
                       win=65535, off=5)
    tcp.data = payload
    return bytes(tcp)


def ethernet(l3: bytes, *, ipv6: bool = False, vlans: tuple[int, ...] = ()) -> bytes:
    head = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01"
    for vid in vlans:
        head += struct.pack("!HH", 0x8100, vid)
    return head + struct.pack("!H", 0x86DD if ipv6 else 0x0800) + l3


@dataclass
class Frame:
    ts: float
    data: bytes
    wire_len: int | None = None


@dataclass
class Capture:
    """Frames in capture order, written as pcap (µs or ns, either byte order) or pcapng."""

    linktype: int = 1
    frames: list[Frame] = field(default_factory=list)
    link: Callable[[bytes, bool], bytes] | None = None
    """Wraps an IP packet in the link layer; default Ethernet for linktype 1, nothing for raw."""

    def add_ip(self, ts: float, ip: bytes, *, ipv6: bool = False, snaplen: int | None = None) -> None:
        frame = self.wrap(ip, ipv6)
        wire = len(frame)
        if snaplen is not None and snaplen < wire:
            frame = frame[:snaplen]
        self.frames.append(Frame(ts, frame, wire))

    def wrap(self, ip: bytes, ipv6: bool) -> bytes:
        if self.link is not None:
            return self.link(ip, ipv6)
        if self.linktype == 1:
            return ethernet(ip, ipv6=ipv6)
        if self.linktype == 113:  # Linux cooked SLL
            return struct.pack("!HHH8sH", 0, 1, 6, b"\x02" * 6 + b"\0\0", 0x86DD if ipv6 else 0x0800) + ip
        if self.linktype == 276:  # SLL2
            return struct.pack("!HHIHBB8s", 0x86DD if ipv6 else 0x0800, 0, 1, 1, 0, 6, b"\x02" * 8) + ip
        if self.linktype == 0:  # BSD NULL, host byte order (little endian here)
            return struct.pack("<I", 30 if ipv6 else 2) + ip
        if self.linktype == 108:  # OpenBSD LOOP, network byte order
            return struct.pack("!I", 24 if ipv6 else 2) + ip
        return ip  # raw IP (101, 12, 14, 228, 229)

    def pcap_bytes(self, *, nano: bool = False, big_endian: bool = False, snaplen: int = 262144) -> bytes:
        e = ">" if big_endian else "<"
        magic = 0xA1B23C4D if nano else 0xA1B2C3D4
        out = io.BytesIO()
        out.write(struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, snaplen, self.linktype))
        for f in self.frames:
            sec = int(f.ts)
            frac = round((f.ts - sec) * (1e9 if nano else 1e6))
            out.write(struct.pack(e + "IIII", sec, frac, len(f.data), f.wire_len or len(f.data)))
            out.write(f.data)
        return out.getvalue()

    def pcapng_bytes(self) -> bytes:
        out = io.BytesIO()
        out.write(_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))
        out.write(_block(1, struct.pack("<HHI", self.linktype, 0, 262144)))
        for f in self.frames:
            ts = round(f.ts * 1e6)
            body = struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(f.data), f.wire_len or len(f.data))
            out.write(_block(6, body + f.data + b"\0" * (-len(f.data) % 4)))
        return out.getvalue()

    def write(self, path: Path, *, fmt: str = "pcap", **kwargs: bool) -> Path:
        data = self.pcapng_bytes() if fmt == "pcapng" else self.pcap_bytes(**kwargs)
        path.write_bytes(data)
        return path


def _block(btype: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", btype, length) + body + struct.pack("<I", length)


@dataclass
class Tcp:
    """One TCP conversation written into a Capture, with knobs for what a capture can lose."""

    cap: Capture
    client: tuple[str, int] = ("10.0.0.1", 40000)
    server: tuple[str, int] = ("10.0.0.2", 25)
    isn_client: int = 1000
    isn_server: int = 5000
    ts: float = 1_700_000_000.0
    step: float = 0.001
    wrap_ip: Callable[[bytes, str, str], bytes] | None = None
    """Optional tunnel: (inner IP packet, client ip, server ip) → outer packet."""
    held: list[Frame] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.seq = {"c": self.isn_client, "s": self.isn_server}
        self.ipv6 = ":" in self.client[0]

    def _emit(self, who: str, flags: int, payload: bytes = b"", *, seq: int | None = None, drop: bool = False,
              hold: bool = False, snaplen: int | None = None, advance: bool = True) -> None:
        self.ts += self.step
        if who == "c":
            (sip, sport), (dip, dport), ack = self.client, self.server, self.seq["s"]
        else:
            (sip, sport), (dip, dport), ack = self.server, self.client, self.seq["c"]
        use_seq = self.seq[who] if seq is None else seq
        seg = tcp_segment(sport, dport, use_seq, ack, flags, payload)
        ip = ip_packet(sip, dip, 6, seg)
        if self.wrap_ip is not None:
            ip = self.wrap_ip(ip, sip, dip)
        if advance and seq is None:
            self.seq[who] = (self.seq[who] + len(payload) + (1 if flags & (SYN | FIN) else 0)) % (1 << 32)
        if drop:
            return
        before = len(self.cap.frames)
        self.cap.add_ip(self.ts, ip, ipv6=self.ipv6 and self.wrap_ip is None, snaplen=snaplen)
        if hold:
            self.held.append(self.cap.frames.pop(before))

    def handshake(self) -> Tcp:
        self._emit("c", SYN)
        self._emit("s", SYN | ACK)
        self._emit("c", ACK)
        return self

    def c(self, data: bytes, **kw: object) -> Tcp:
        self._emit("c", PSH | ACK, data, **kw)  # type: ignore[arg-type]
        return self

    def s(self, data: bytes, **kw: object) -> Tcp:
        self._emit("s", PSH | ACK, data, **kw)  # type: ignore[arg-type]
        return self

    def ack(self, who: str) -> Tcp:
        self._emit(who, ACK)
        return self

    def release(self) -> Tcp:
        """Write the held (reordered) segments now."""
        self.cap.frames.extend(self.held)
        self.held = []
        return self

    def fin(self) -> Tcp:
        self._emit("c", FIN | ACK)
        self._emit("s", FIN | ACK)
        self._emit("c", ACK)
        return self

    def rst(self, who: str = "c") -> Tcp:
        self._emit(who, RST | ACK)
        return self


def gre(inner: bytes, outer_src: str = "192.0.2.1", outer_dst: str = "192.0.2.2") -> bytes:
    return ip_packet(outer_src, outer_dst, 47, struct.pack("!HH", 0, 0x86DD if inner[0] >> 4 == 6 else 0x0800) + inner)


def ipip(inner: bytes, outer_src: str = "192.0.2.1", outer_dst: str = "192.0.2.2") -> bytes:
    return ip_packet(outer_src, outer_dst, 41 if inner[0] >> 4 == 6 else 4, inner)


def fragments(ip: bytes, size: int) -> list[bytes]:
    """Split an IPv4 packet (20-byte header) into fragments with ``size``-byte payloads (a multiple of 8)."""
    head, body = ip[:20], ip[20:]
    out = []
    for off in range(0, len(body), size):
        part = body[off : off + size]
        flags = (off // 8) | (0x2000 if off + size < len(body) else 0)
        frag = bytearray(head)
        struct.pack_into("!H", frag, 2, 20 + len(part))
        struct.pack_into("!H", frag, 6, flags)
        struct.pack_into("!H", frag, 10, 0)  # checksums are never verified
        out.append(bytes(frag) + part)
    return out


SMTP_SESSION = [
    ("s", b"220 mx.example.org ESMTP ready\r\n"),
    ("c", b"EHLO client.example.com\r\n"),
    ("s", b"250-mx.example.org\r\n250-PIPELINING\r\n250 SIZE 1000000\r\n"),
    ("c", b"MAIL FROM:<alice@example.com>\r\n"),
    ("s", b"250 2.1.0 Ok\r\n"),
    ("c", b"RCPT TO:<bob@example.org>\r\n"),
    ("s", b"250 2.1.5 Ok\r\n"),
    ("c", b"DATA\r\n"),
    ("s", b"354 End data with <CR><LF>.<CR><LF>\r\n"),
    ("c", b"From: Alice <alice@example.com>\r\nTo: bob@example.org\r\nSubject: Hello there\r\n"
          b"Message-ID: <t1@example.com>\r\n\r\nHi Bob,\r\n..a line starting with a dot\r\nbye\r\n.\r\n"),
    ("s", b"250 2.0.0 Ok: queued as ABC123\r\n"),
    ("c", b"QUIT\r\n"),
    ("s", b"221 2.0.0 Bye\r\n"),
]
"""A plain SMTP session used by many tests: one message with a dot-stuffed line."""


def smtp_capture(**tcp_kwargs: object) -> Capture:
    cap = Capture()
    conv = Tcp(cap, **tcp_kwargs).handshake()  # type: ignore[arg-type]
    for who, data in SMTP_SESSION:
        (conv.c if who == "c" else conv.s)(data)
    conv.fin()
    return cap
