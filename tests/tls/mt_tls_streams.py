"""TEST-ONLY stand-in for the engine: pcap → per-connection TCP payload streams → TLS streams.

This is just enough TCP reassembly for the TLS tests (SYN → roles, sequence order, duplicate
and overlapping retransmissions trimmed, holes reported as StreamGap at the end). The real
capture/decode/reassembly modules of mailtrace replace it; nothing in mailtrace imports this.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path

import dpkt

from mailtrace.model import Chunk, Direction, Eof, StreamGap

Item = Chunk | StreamGap | Eof
IMPLICIT_TLS_PORTS = frozenset({465, 993, 995})
SERVER_PORTS = frozenset({25, 110, 143, 465, 587, 993, 995, 2525})

# The command that asks for TLS, and the server's positive reply to it.
_STARTTLS_CMD = re.compile(rb"(?mi)^(?:[A-Za-z0-9.]+ )?(?:STARTTLS|STLS)\r?\n")
_STARTTLS_OK = re.compile(rb"(?m)^(?:220 |\+OK|[A-Za-z0-9.]+ OK )[^\r\n]*TLS[^\r\n]*\r?\n")


def shared_dir() -> Path:
    """/work/shared, or $MAILTRACE_SHARED (the repo's sibling folder ``shared``)."""
    env = os.environ.get("MAILTRACE_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared"


@dataclass
class _Dir:
    next_seq: int | None = None
    pending: dict[int, tuple[bytes, float, int]] = field(default_factory=dict)
    fin: bool = False
    ended: bool = False


@dataclass
class Conn:
    """One TCP connection as the engine would hand it over."""

    client: tuple[str, int]
    server: tuple[str, int]
    items: list[Item] = field(default_factory=list)
    dirs: dict[Direction, _Dir] = field(default_factory=lambda: {d: _Dir() for d in Direction})

    def data(self, direction: Direction) -> bytes:
        return b"".join(i.data for i in self.items if isinstance(i, Chunk) and i.direction is direction)


def _link(linktype: int, buf: bytes) -> dpkt.Packet:
    if linktype in (dpkt.pcap.DLT_NULL, dpkt.pcap.DLT_LOOP):
        return dpkt.loopback.Loopback(buf).data
    if linktype == dpkt.pcap.DLT_LINUX_SLL:
        return dpkt.sll.SLL(buf).data
    if linktype in (dpkt.pcap.DLT_RAW, 101):
        return dpkt.ip.IP(buf) if buf[0] >> 4 == 4 else dpkt.ip6.IP6(buf)
    return dpkt.ethernet.Ethernet(buf).data


def _ip_pair(pkt: dpkt.Packet) -> tuple[str, str, dpkt.tcp.TCP] | None:
    if isinstance(pkt, dpkt.ip.IP):
        fam = socket.AF_INET
    elif isinstance(pkt, dpkt.ip6.IP6):
        fam = socket.AF_INET6
    else:
        return None
    if not isinstance(pkt.data, dpkt.tcp.TCP):
        return None
    return socket.inet_ntop(fam, pkt.src), socket.inet_ntop(fam, pkt.dst), pkt.data


def _deliver(conn: Conn, d: Direction, seq: int, data: bytes, ts: float, frame: int) -> None:
    st = conn.dirs[d]
    if st.next_seq is None:
        st.next_seq = seq
    offset = (seq - st.next_seq) & 0xFFFFFFFF
    if offset >= 0x80000000:  # starts before what we have: a retransmission, maybe with new bytes
        behind = 0x100000000 - offset
        if behind >= len(data):
            return
        data, seq = data[behind:], st.next_seq
        offset = 0
    if offset:
        st.pending.setdefault(seq, (data, ts, frame))
        return
    conn.items.append(Chunk(d, data, ts, frame))
    st.next_seq = (st.next_seq + len(data)) & 0xFFFFFFFF
    while st.pending:
        for pseq in list(st.pending):
            pdata, _, _ = st.pending[pseq]
            off = (pseq - st.next_seq) & 0xFFFFFFFF
            if off >= 0x80000000 or off == 0:
                del st.pending[pseq]
                behind = (0x100000000 - off) & 0xFFFFFFFF
                if behind < len(pdata):
                    conn.items.append(Chunk(d, pdata[behind:], ts, frame))
                    st.next_seq = (st.next_seq + len(pdata) - behind) & 0xFFFFFFFF
                break
        else:
            return


def read_connections(path: Path) -> list[Conn]:
    """Every TCP connection with payload, in the order each first appeared."""
    conns: dict[tuple[tuple[str, int], tuple[str, int]], Conn] = {}
    with path.open("rb") as fh:
        reader = dpkt.pcap.UniversalReader(fh)
        linktype = reader.datalink()
        for frame, (ts, buf) in enumerate(reader, start=1):
            try:
                parsed = _ip_pair(_link(linktype, buf))
            except (dpkt.UnpackError, IndexError):
                continue
            if parsed is None:
                continue
            src, dst, tcp = parsed
            a, b = (src, tcp.sport), (dst, tcp.dport)
            conn = conns.get((a, b)) or conns.get((b, a))
            if conn is None:
                syn_only = tcp.flags & dpkt.tcp.TH_SYN and not tcp.flags & dpkt.tcp.TH_ACK
                synack = tcp.flags & dpkt.tcp.TH_SYN and tcp.flags & dpkt.tcp.TH_ACK
                conn = Conn(a, b) if syn_only or (not synack and tcp.dport in SERVER_PORTS) else Conn(b, a)
                conns[(conn.client, conn.server)] = conn
            d = Direction.CLIENT if a == conn.client else Direction.SERVER
            st = conn.dirs[d]
            seq = tcp.seq
            if tcp.flags & dpkt.tcp.TH_SYN:
                st.next_seq = (seq + 1) & 0xFFFFFFFF
                seq += 1
            if tcp.data:
                _deliver(conn, d, seq & 0xFFFFFFFF, bytes(tcp.data), float(ts), frame)
            if tcp.flags & (dpkt.tcp.TH_FIN | dpkt.tcp.TH_RST) and not st.ended and not st.pending:
                st.ended = True
                conn.items.append(Eof(d, float(ts), frame, reset=bool(tcp.flags & dpkt.tcp.TH_RST)))
    for conn in conns.values():
        for d, st in conn.dirs.items():
            while st.pending and st.next_seq is not None:
                pseq = min(st.pending, key=lambda s: (s - st.next_seq) & 0xFFFFFFFF)  # type: ignore[operator]
                data, ts, frame = st.pending.pop(pseq)
                hole = (pseq - st.next_seq) & 0xFFFFFFFF
                conn.items.append(StreamGap(d, hole, ts, frame))
                conn.items.append(Chunk(d, data, ts, frame))
                st.next_seq = (pseq + len(data)) & 0xFFFFFFFF
            if not st.ended:
                last_ts = conn.items[-1].ts if conn.items else 0.0
                conn.items.append(Eof(d, last_ts, None))
    return [c for c in conns.values() if any(isinstance(i, Chunk) for i in c.items)]


def tls_start_offsets(conn: Conn) -> tuple[int, int] | None:
    """Where TLS starts in (client, server) bytes: 0 on implicit ports, after the STARTTLS reply."""
    if conn.server[1] in IMPLICIT_TLS_PORTS:
        return 0, 0
    cmd = _STARTTLS_CMD.search(conn.data(Direction.CLIENT))
    ok = _STARTTLS_OK.search(conn.data(Direction.SERVER))
    if cmd is None or ok is None:
        return None
    return cmd.end(), ok.end()


def tls_items(conn: Conn) -> list[Item] | None:
    """The connection's stream items from the first TLS byte on (None: no TLS in it)."""
    start = tls_start_offsets(conn)
    if start is None:
        return None
    skip = {Direction.CLIENT: start[0], Direction.SERVER: start[1]}
    out: list[Item] = []
    for item in conn.items:
        if isinstance(item, Chunk) and skip[item.direction]:
            cut = min(skip[item.direction], len(item.data))
            skip[item.direction] -= cut
            if cut < len(item.data):
                out.append(Chunk(item.direction, item.data[cut:], item.ts, item.frame))
            continue
        out.append(item)
    return out


def tls_connections(path: Path) -> list[tuple[Conn, list[Item]]]:
    """The connections of a capture that carry TLS, with their TLS stream items."""
    out = []
    for conn in read_connections(path):
        items = tls_items(conn)
        if items is not None:
            out.append((conn, items))
    return out


@dataclass
class Run:
    """The outcome of feeding one connection through a TlsSession."""

    plaintext: dict[Direction, bytes]
    events: list[object]
    chunks: list[Chunk]

    def of(self, kind: type) -> list:  # type: ignore[type-arg]
        return [e for e in self.events if isinstance(e, kind)]


def run(session: object, items: list[Item]) -> Run:
    """Feed every item to ``session`` (a TlsSession) and collect what comes out."""
    result = Run({Direction.CLIENT: b"", Direction.SERVER: b""}, [], [])
    for item in items:
        for out in session.feed(item):  # type: ignore[attr-defined]
            if isinstance(out, Chunk):
                result.plaintext[out.direction] += out.data
                result.chunks.append(out)
            else:
                result.events.append(out)
    return result
