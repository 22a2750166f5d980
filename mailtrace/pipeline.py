"""The analysis pipeline: frames → decode → flow table → per-connection stacks → finished sessions.

The same object serves capture files and live sniffing: :meth:`Analyzer.frame` takes one frame and
returns the sessions that ended because of it. Sessions are handed out in the order they started
(held back in a bounded buffer while an earlier connection is still open), numbered from 1.
"""

from __future__ import annotations

import heapq
import operator
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields, replace
from typing import Any

from mailtrace.capture.decode import (
    ETH_IPV4,
    ETH_IPV6,
    ETH_VLAN,
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_RAW_ALIASES,
    LINKTYPE_SLL,
    LINKTYPE_SLL2,
    Decoder,
    TcpPacket,
    UdpPacket,
)
from mailtrace.capture.reader import MAX_RECORD, RELEASE_EVERY, CaptureFile, MappedPcap
from mailtrace.config import Config
from mailtrace.connection import MailConnection
from mailtrace.context.tracker import CONTEXT_PORTS, ContextStats, ContextTracker
from mailtrace.protocols import BY_NAME, DissectorClass
from mailtrace.session import EventBudget, MessageSinkFactory, Session
from mailtrace.tcp.flows import Connection, FlowTable, Handler
from mailtrace.tls import KeyLog


@dataclass
class FileStats:
    """What one capture file held."""

    name: str
    filetype: str = ""
    packets: int = 0
    bytes: int = 0
    start: float | None = None
    end: float | None = None
    truncated: bool = False
    problems: list[str] = field(default_factory=list)
    snapped: int = 0
    """Frames cut by the snap length (captured shorter than they were on the wire)."""
    error: str | None = None
    """Why the input could not be read at all (``filetype`` is then empty, nothing was analysed)."""

    def __reduce__(self) -> tuple[type[FileStats], tuple[Any, ...]]:
        """Pickled as its fields (a two-process run sends the totals with every session)."""
        return (FileStats, _file_stats_fields(self))


@dataclass
class CaptureStats:
    """Totals over all files of the run."""

    files: list[FileStats] = field(default_factory=list)
    packets: int = 0
    bytes: int = 0
    tcp_packets: int = 0
    mail_packets: int = 0
    start: float | None = None
    end: float | None = None
    non_ip: int = 0
    unknown_linktype: int = 0
    unknown_linktypes: set[int] = field(default_factory=set)
    """The link types of those frames (numbers as in the pcap header)."""
    truncated_headers: int = 0
    snapped: int = 0
    """Frames cut by the snap length, over all files."""
    sessions: int = 0
    context: ContextStats | None = None
    """DNS and ident traffic seen beside the sessions (None when the context layer is off)."""

    @property
    def truncated(self) -> bool:
        return any(f.truncated for f in self.files)

    def __reduce__(self) -> tuple[type[CaptureStats], tuple[Any, ...]]:
        """Pickled as its fields: a two-process run sends the totals with every session
        (mailtrace/forked.py), and a dataclass's own way (its ``__dict__`` with every key) costs twice."""
        return (CaptureStats, _capture_stats_fields(self))


_file_stats_fields = operator.attrgetter(*(f.name for f in fields(FileStats)))
_capture_stats_fields = operator.attrgetter(*(f.name for f in fields(CaptureStats)))


SKIP_TAIL = 16 + MAX_RECORD
"""The last bytes of a mapped file, where the skip loop also checks that a record ends in the file
(before them, a record that does not is longer than ``MAX_RECORD``, which is checked anyway)."""


class _Counts:
    """What a walk over one file counted (kept even when the walk stops early)."""

    __slots__ = ("fast_skipped", "first_ts", "last_ts", "nbytes", "packets", "snapped", "udp_skipped")

    def __init__(self) -> None:
        self.packets = 0
        self.nbytes = 0
        self.snapped = 0
        self.first_ts: float | None = None
        self.last_ts = 0.0
        self.fast_skipped = 0
        self.udp_skipped = 0


class Analyzer:
    """Runs captures through the pipeline; one instance per report."""

    def __init__(self, config: Config, *, reorder: bool = True, keylog: KeyLog | None = None,
                 fast_path: bool = True, sink_factory: MessageSinkFactory | None = None) -> None:
        self.config = config
        self.sink_factory = sink_factory
        """Called when a message's first bytes arrive; its sink gets the bytes (``mailtrace extract``)."""
        self.fast_path = fast_path
        self.keylog = keylog
        self._capture: CaptureFile | None = None
        self._secrets_seen = 0
        self._live = FileStats("")
        self.stats = CaptureStats()
        self.reorder = reorder
        self._done: list[tuple[int, int, int, Session]] = []
        self._changed = False
        """A connection ended since the last look: sessions may be ready to hand out."""
        self._held_rows = 0
        """Packet rows of the finished sessions held back for ordering (bounded by the config)."""
        self._ready: list[Session] = []
        self._open: dict[int, int] = {}  # stream → first frame, in creation order
        self._seq = 0
        self._next_id = 1
        self._file = ""
        self._tls_port_protocols: dict[int, DissectorClass] = {
            port: BY_NAME[rule.protocol] for port, rule in config.ports.items() if rule.implicit_tls
        }
        self.event_budget = EventBudget.of(config.session)
        """Commands and replies (and transcript bytes) the sessions not yet reported may keep, together."""
        # the dissectors of this run share its unread budget (lines being read, bytes held for a reply) and
        # its budget of listed entries (recipients, LIST tables...)
        self.config = config = replace(config, dissector=replace(config.dissector,
                                                                 unread_budget=self.event_budget.unread,
                                                                 listed_budget=self.event_budget.listed))
        self.context = ContextTracker(config.context) if config.context_enabled else None
        """DNS and ident beside the sessions; its ``listeners`` get every DNS transaction (findings)."""
        self.stats.context = self.context.stats if self.context is not None else None
        self._new_file("")

    # ------------------------------------------------------------------ setup per file
    def _new_file(self, name: str) -> None:
        self._file = name
        self.decoder = Decoder(udp_ports=frozenset({53}) if self.context is not None else frozenset())
        self.flows = FlowTable(self._factory, self._server_side, self.config.flow)
        self._open.clear()
        self.event_budget.refill()
        if self.context is not None:
            self.context.new_file()

    def _server_side(self, sport: int, dport: int) -> bool:
        ports = self.config.ports
        if sport in ports and dport not in ports:
            return True
        if dport in ports and sport not in ports:
            return False
        return sport < dport

    def _factory(self, conn: Connection, pkt: TcpPacket) -> Handler | None:
        rule = self.config.ports.get(conn.server_port)
        context = self.context
        if rule is None and context is not None and conn.server_port in CONTEXT_PORTS:
            return context.handler(conn, pkt)  # DNS over TCP, ident probes
        if rule is None and not self.config.sniff_other_ports:
            return None
        protocol = BY_NAME[rule.protocol] if rule else None
        handler = MailConnection(conn, self.config, self._file, self._session_done, protocol,
                                 bool(rule and rule.implicit_tls), self._tls_port_protocols, self._keylog,
                                 sink_factory=self.sink_factory, budget=self.event_budget)
        self._open[conn.stream] = conn.first_frame
        if context is not None:
            context.opened(conn, handler.session_builder)
        return handler

    def _keylog(self) -> KeyLog | None:
        """The key log, with secrets from pcapng Decryption Secrets Blocks read so far merged in."""
        capture = self._capture
        if capture is not None and len(capture.tls_secrets) > self._secrets_seen:
            if self.keylog is None:
                self.keylog = KeyLog()
            for secret in capture.tls_secrets[self._secrets_seen :]:
                self.keylog.add_text(secret)
            self._secrets_seen = len(capture.tls_secrets)
        return self.keylog

    def _session_done(self, stream: int, session: Session | None) -> None:
        self._open.pop(stream, None)
        self._changed = True
        if self.context is not None:
            self.context.closed(stream, session)
        if session is None:
            return
        self._seq += 1
        heapq.heappush(self._done, (session.first_frame, session.stream, self._seq, session))
        self._held_rows += session.row_count + 1

    # ------------------------------------------------------------------ running
    def run_file(self, capture: CaptureFile, progress: Callable[[int], None] | None = None) -> Iterator[Session]:
        """Analyse one capture file, yielding sessions as they finish (in start order)."""
        if capture.error is not None:  # listed in the report, with why it was not read
            self.stats.files.append(FileStats(capture.name, capture.filetype, error=capture.error))
            return
        self._new_file(capture.name)
        self._capture = capture
        self._secrets_seen = 0
        fstats = FileStats(capture.name, capture.filetype)
        self.stats.files.append(fstats)
        counts = _Counts()
        mapped = capture.mapped() if self.fast_path else None
        try:
            if mapped is not None:
                yield from self._walk_mapped(mapped, fstats, counts, progress)
            else:
                yield from self._walk_frames(capture, fstats, counts, progress)
            self.flows.close_all()
            if self.context is not None:
                self.context.flush()
        finally:
            if mapped is not None:
                mapped.close()
            fstats.packets = counts.packets
            fstats.bytes = counts.nbytes
            fstats.snapped = counts.snapped
            fstats.start = counts.first_ts
            fstats.end = counts.last_ts if counts.first_ts is not None else None
            fstats.truncated = capture.truncated
            self.flows.tcp_packets += counts.fast_skipped
            self.decoder.stats.non_tcp += counts.udp_skipped
            fstats.problems = list(capture.problems)
            if self.flows.ended_early:
                fstats.problems.append(
                    f"more than {self.flows.limits.max_open:,} mail connections open at once: "
                    f"{self.flows.ended_early:,} quiet ones were ended early (close \"timeout\") to bound the memory; "
                    "one that sent again goes on in a session of its own under the same tcp.stream number")
            if self.flows.forgotten:  # a flow table per file
                fstats.problems.append(
                    f"more than {self.flows.limits.max_remembered:,} TCP connections at once: "
                    f"{self.flows.forgotten:,} that had ended or were not mail were forgotten early to bound "
                    "the memory; one that sends again gets a new tcp.stream number where Wireshark would keep "
                    "the old one")
            self._account(fstats)
        yield from self._emit(final=True)

    def _walk_frames(self, capture: CaptureFile, fstats: FileStats, counts: _Counts,
                     progress: Callable[[int], None] | None) -> Iterator[Session]:
        """Any capture, frame by frame from the reader (pcapng, compressed files, pipes; and every
        capture when the fast path is off)."""
        decode = self.decoder.decode
        flows = self.flows
        flow_packet = flows.packet
        packets = 0
        nbytes = 0
        snapped = 0
        first_ts: float | None = None
        last_ts = 0.0
        fast_skipped = 0
        udp_skipped = 0
        fast = self.fast_path
        table_get = flows.table.get
        next_sweep = flows.next_sweep
        udp_ports = self.decoder.udp_ports
        skip_udp = not udp_ports
        context = self.context
        try:
            for ts, linktype, data, wire_len in capture.frames():
                packets += 1
                nbytes += wire_len
                if wire_len > len(data):
                    snapped += 1
                last_ts = ts
                if first_ts is None:
                    first_ts = ts
                    fstats.start = ts  # known at once: views measure Time from the file's first packet
                # Fast path for the common case, Ethernet/IPv4/TCP of a connection nobody tracks: one
                # dict lookup and no objects. Anything else (SYN, fragments, other link types, new
                # connections, time for a sweep, headers the decoder calls damaged) takes the full
                # decode below; test_fast_path checks that both give the same results. (A FIN or RST
                # of an untracked connection changes nothing the flow table would keep: only a SYN
                # can start a new stream on the same ports.)
                if fast and linktype == 1 and len(data) >= 34 and data[12:14] == b"\x08\x00" \
                        and data[14] >> 4 == 4 and data[14] & 0x0F >= 5 and not (data[20] & 0x3F or data[21]) \
                        and ((data[16] << 8 | data[17]) >= (data[14] & 0x0F) * 4 or not (data[16] or data[17])):
                    proto = data[23]
                    p = 14 + (data[14] & 0x0F) * 4
                    if proto == 6:
                        if ts < next_sweep and len(data) >= p + 20 and data[p + 12] >= 0x50 \
                                and not data[p + 13] & 0x02:  # no SYN
                            conn = table_get(data[26:34] + data[p : p + 4])
                            if conn is not None and conn.handler is None and not conn.shed:
                                conn.last_ts = ts
                                fast_skipped += 1
                                continue
                    elif proto == 17 and (skip_udp or (len(data) >= p + 4
                                                       and (data[p] << 8 | data[p + 1]) not in udp_ports
                                                       and (data[p + 2] << 8 | data[p + 3]) not in udp_ports)):
                        udp_skipped += 1
                        continue
                pkt = decode(ts, linktype, data)
                if pkt is not None:
                    if type(pkt) is TcpPacket:
                        flow_packet(packets, ts, pkt)
                        next_sweep = flows.next_sweep
                        if self._changed:
                            yield from self._emit()
                    elif context is not None and type(pkt) is UdpPacket:  # to or from port 53
                        context.udp(packets, ts, pkt)
                if progress is not None and not packets & 0x3FFF:
                    progress(packets)
        finally:
            counts.packets = packets
            counts.nbytes = nbytes
            counts.snapped = snapped
            counts.first_ts = first_ts
            counts.last_ts = last_ts
            counts.fast_skipped = fast_skipped
            counts.udp_skipped = udp_skipped

    def _walk_mapped(self, mapped: MappedPcap, fstats: FileStats, counts: _Counts,
                     progress: Callable[[int], None] | None) -> Iterator[Session]:
        """A memory-mapped pcap file in one loop: record header and frame headers read with a single
        ``unpack_from`` on the map, and a frame is only sliced out and decoded when someone wants it.

        Skipped without building any object: TCP segments (Ethernet, VLAN tags, Linux cooked, raw
        IP; IPv4 that is not a fragment, IPv6 without extension headers) of connections the flow table
        knows and nobody tracks, without SYN and before the next sweep is due; UDP datagrams
        on ports nobody asked for. Everything else (new connections, tracked ones, fragments,
        tunnels, damaged or odd headers, other link types) is sliced out and takes the full decode,
        exactly as in ``_walk_frames``; tests/test_mapped_walk.py checks both give one report.
        """
        buf = mapped.buf
        size = mapped.size
        res = mapped.res
        linktype = mapped.linktype
        little = mapped.endian == "<"
        # One struct for the record header (file byte order) and the Ethernet/IPv4/TCP fields the skip
        # needs. The frame's fields are read in the same byte order, so the two-byte ones come out
        # byte-swapped in little-endian files: they are only compared with constants swapped alike.
        # (record: sec usec incl orig) (eth: 12 addresses, type) (ip: ver+ihl, tos, total, id, flags+
        # fragment, ttl, proto, checksum, src+dst) (tcp: ports, seq+ack, data offset, flags)
        unpack = struct.Struct(mapped.endian + "IIII12xHBxH2xHxB2x12s8xBB").unpack_from
        unpack_rec = struct.Struct(mapped.endian + "IIII").unpack_from
        unpack_udp = struct.Struct("!H16xHH").unpack_from  # IPv4 total length .. UDP ports
        unpack_tcp = struct.Struct("!H16xHHII").unpack_from  # IPv4 total length .. TCP ports, seq, ack
        whole = 64  # bytes the big struct reads from a record's start
        eth = linktype == LINKTYPE_ETHERNET
        # ethertype IPv4 as read; -1 never matches (other link types: those fields are not there)
        et_ipv4 = (0x0008 if little else 0x0800) if eth else -1
        frag_mask = 0xFF3F if little else 0x3FFF  # MF flag and fragment offset
        # a total length of 1..19 is a damaged header for the decoder (0 is TSO's, and fine)
        short_total, short_mask = (0x1400, 0xFF) if little else (20, 0xFF00)
        decode = self.decoder.decode
        flows = self.flows
        flow_packet = flows.packet
        general = flows.general
        tracked = flows.tracked
        table_get = flows.table.get
        new_tuple = tuple.__new__  # a NamedTuple's own __new__ is a Python function: a third slower per packet
        next_sweep = flows.next_sweep
        udp_ports = self.decoder.udp_ports
        skip_udp = not udp_ports
        context = self.context
        packets = 0
        nbytes = 0
        snapped = 0
        first_ts: float | None = None
        ts = 0.0
        udp_skipped = 0
        decoded = 0  # packets that were not skipped (TCP skipped: the rest, counted at the end)
        pos = mapped.FIRST_RECORD
        released = 0
        next_release = RELEASE_EVERY
        bound = min(next_release, size - SKIP_TAIL)
        view = memoryview(buf)  # unpack_from reads a memoryview faster than the map itself
        try:
            if pos + 16 <= size:
                sec, frac, incl, _orig = unpack_rec(view, pos)
                if incl <= MAX_RECORD and pos + 16 + incl <= size:
                    first_ts = sec + frac * res
                    fstats.start = first_ts  # known at once: views measure Time from the file's first packet
            while True:
                # One test for the common case: no pages to give back yet, and far enough from the end
                # that a record either fits or is longer than any record may be.
                if pos <= bound:
                    sec, frac, incl, orig, etype, vihl, total, frag, proto, key, offx, flags = unpack(view, pos)
                elif pos > next_release:
                    released = mapped.release(released, pos)
                    next_release = released + RELEASE_EVERY
                    bound = min(next_release, size - SKIP_TAIL)
                    if progress is not None:
                        progress(packets)
                    continue
                elif pos + whole <= size:
                    sec, frac, incl, orig, etype, vihl, total, frag, proto, key, offx, flags = unpack(view, pos)
                    if pos + 16 + incl > size:
                        mapped.stop(pos, incl)
                        break
                elif pos + 16 <= size:
                    sec, frac, incl, orig = unpack_rec(view, pos)
                    etype = -2  # too near the end for the big struct: the general decode
                    if pos + 16 + incl > size:
                        mapped.stop(pos, incl)
                        break
                else:
                    mapped.stop(pos, None)
                    break
                if incl > MAX_RECORD:
                    mapped.stop(pos, incl)
                    break
                end = pos + 16 + incl
                packets += 1
                if orig > incl:  # cut by the snap length
                    nbytes += orig
                    snapped += 1
                else:
                    nbytes += incl
                ts = sec + frac * res
                if etype == et_ipv4 and vihl == 0x45 and incl >= 34 and not frag & frag_mask \
                        and not (total < short_total and total and not total & short_mask):
                    if proto == 6:
                        if incl >= 54 and offx >= 0x50:
                            conn = None
                            if not flags & 0x02 and ts < next_sweep:  # no SYN
                                conn = table_get(key)
                                if conn is not None and conn.handler is None and not conn.shed:
                                    conn.last_ts = ts
                                    pos = end
                                    continue
                            length, sport, dport, seq, ack = unpack_tcp(view, pos + 32)
                            if length >= 40:  # else (TSO's zero, a short one) the decoder decides
                                pstart = pos + 50 + (offx >> 4) * 4
                                pend = pos + 30 + length
                                plen = pend - pstart if pend > pstart else 0
                                payload = buf[pstart : pend if pend < end else end] if plen else b""
                                decoded += 1
                                pos = end
                                # a tracked connection's common packets go in without a TcpPacket; any
                                # other gets the packet decode.ethernet_ipv4_tcp would give, made here
                                if conn is None or not tracked(conn, packets, ts, key, seq, ack, flags, payload, plen):
                                    general(packets, ts, new_tuple(TcpPacket, (key, key[:4], key[4:8], sport, dport,
                                                                               seq, ack, flags, payload, plen, None)))
                                    next_sweep = flows.next_sweep
                                if self._changed:
                                    yield from self._emit()
                                continue
                    elif proto == 17:
                        if skip_udp or incl < 42:
                            udp_skipped += 1
                            pos = end
                            continue
                        length, sport, dport = unpack_udp(buf, pos + 32)
                        if sport not in udp_ports and dport not in udp_ports:
                            udp_skipped += 1
                            pos = end
                            continue
                        if context is not None:  # DNS: the datagram the decoder would give, made here
                            payload = buf[pos + 58 : min(pos + 30 + length, end) if length else end]
                            context.udp(packets, ts, UdpPacket(key[:4], key[4:8], sport, dport, payload))
                            decoded += 1
                            pos = end
                            continue
                elif etype != -2:
                    # VLAN tags, IPv6, IPv4 with options, other link layers: the same test, by offsets
                    start = pos + 16
                    net = -1
                    if eth:
                        if incl >= 14:
                            net, etype = start + 14, buf[start + 12] << 8 | buf[start + 13]
                    elif linktype == LINKTYPE_SLL:
                        if incl >= 16:
                            net, etype = start + 16, buf[start + 14] << 8 | buf[start + 15]
                    elif linktype == LINKTYPE_SLL2:
                        if incl >= 20:
                            net, etype = start + 20, buf[start] << 8 | buf[start + 1]
                    elif incl and (linktype in LINKTYPE_RAW_ALIASES or linktype in (LINKTYPE_IPV4, LINKTYPE_IPV6)):
                        version = buf[start] >> 4
                        net, etype = start, ETH_IPV4 if version == 4 else ETH_IPV6 if version == 6 else -1
                    while net >= 0 and etype in ETH_VLAN:
                        if net + 4 > end:
                            net = -1
                            break
                        etype = buf[net + 2] << 8 | buf[net + 3]
                        net += 4
                    tcp = -1
                    if net < 0:
                        pass
                    elif etype == ETH_IPV4:
                        if net + 20 <= end and buf[net] >> 4 == 4 and buf[net] & 0x0F >= 5 \
                                and not (buf[net + 6] & 0x3F or buf[net + 7]):
                            ihl = (buf[net] & 0x0F) * 4
                            length = buf[net + 2] << 8 | buf[net + 3]
                            if length >= ihl or not length:
                                proto = buf[net + 9]
                                tcp = net + ihl
                                key = buf[net + 12 : net + 20]
                    elif etype == ETH_IPV6 and net + 40 <= end and buf[net] >> 4 == 6:
                        proto = buf[net + 6]
                        tcp = net + 40
                        key = buf[net + 8 : net + 40]
                    if tcp < 0:
                        pass
                    elif proto == 6:
                        if tcp + 20 <= end and buf[tcp + 12] >= 0x50 and not buf[tcp + 13] & 0x02 \
                                and ts < next_sweep:
                            conn = table_get(key + buf[tcp : tcp + 4])
                            if conn is not None and conn.handler is None and not conn.shed:
                                conn.last_ts = ts
                                pos = end
                                continue
                    elif proto == 17 and (skip_udp or tcp + 8 > end or (
                            (buf[tcp] << 8 | buf[tcp + 1]) not in udp_ports
                            and (buf[tcp + 2] << 8 | buf[tcp + 3]) not in udp_ports)):
                        udp_skipped += 1
                        pos = end
                        continue
                # everything else: the frame as the reader gives it, through the full decoder
                decoded += 1
                pkt = decode(ts, linktype, buf[pos + 16 : end])
                pos = end
                if pkt is not None:
                    if type(pkt) is TcpPacket:
                        flow_packet(packets, ts, pkt)
                        next_sweep = flows.next_sweep
                        if self._changed:
                            yield from self._emit()
                    elif context is not None and type(pkt) is UdpPacket:  # to or from port 53
                        context.udp(packets, ts, pkt)
        finally:
            view.release()  # before the map is closed (it cannot close while a view is exported)
            counts.packets = packets
            counts.nbytes = nbytes
            counts.snapped = snapped
            counts.first_ts = first_ts
            counts.last_ts = ts
            counts.fast_skipped = packets - udp_skipped - decoded
            counts.udp_skipped = udp_skipped

    def _account(self, f: FileStats) -> None:
        s = self.stats
        s.packets += f.packets
        s.bytes += f.bytes
        s.snapped += f.snapped
        if f.start is not None:
            s.start = f.start if s.start is None else min(s.start, f.start)
        if f.end is not None:
            s.end = f.end if s.end is None else max(s.end, f.end)
        ds = self.decoder.stats
        s.non_ip += ds.non_ip
        s.unknown_linktype += ds.unknown_linktype
        s.unknown_linktypes |= ds.unknown_linktypes
        s.truncated_headers += ds.truncated_headers
        s.tcp_packets += self.flows.tcp_packets

    def _emit(self, final: bool = False) -> Iterator[Session]:
        self._changed = False
        done = self._done
        limit = self.config.max_reorder_sessions if self.reorder else 0
        while done:
            oldest_open = next(iter(self._open.values()), None)
            if not final and oldest_open is not None and done[0][0] > oldest_open and len(done) <= limit \
                    and (not self.reorder or self._held_rows <= self.config.max_reorder_rows):
                return
            session = heapq.heappop(done)[3]
            self._held_rows -= session.row_count + 1
            self.event_budget.give_back(session)  # it leaves this side of the run now
            session.id = self._next_id
            self._next_id += 1
            self.stats.sessions += 1
            self.stats.mail_packets += session.packets
            yield session

    # ------------------------------------------------------------------ frame by frame (live capture)
    def start_source(self, name: str) -> None:
        """Begin a source that is fed frame by frame (live capture) rather than read from a file."""
        self._new_file(name)
        self._live = FileStats(name, "live")
        self.stats.files.append(self._live)

    def feed(self, ts: float, linktype: int, data: bytes, wire_len: int) -> list[Session]:
        """One frame from a live source; returns the sessions it finished (in start order)."""
        live = self._live
        live.packets += 1
        live.bytes += wire_len
        if live.start is None:
            live.start = ts
        live.end = ts
        pkt = self.decoder.decode(ts, linktype, data)
        if pkt is not None:
            if type(pkt) is TcpPacket:
                self.flows.packet(live.packets, ts, pkt)
            elif self.context is not None and type(pkt) is UdpPacket:
                self.context.udp(live.packets, ts, pkt)
        return list(self._emit()) if self._changed else []

    def tick(self, now: float) -> list[Session]:
        """Let time pass without packets (live capture): lingering and idle sessions end."""
        if now > self.flows.now:
            self.flows.now = now
            self.flows.sweep()
        return list(self._emit()) if self._changed else []

    def close_source(self) -> list[Session]:
        """End of a live source: open sessions are flushed as ``open``."""
        self.flows.close_all()
        if self.context is not None:
            self.context.flush()
        self._account(self._live)
        return list(self._emit(final=True))

    def run(self, captures: Iterable[CaptureFile]) -> Iterator[Session]:
        for capture in captures:
            yield from self.run_file(capture)
