"""The analysis pipeline: frames → decode → flow table → per-connection stacks → finished sessions.

The same object serves capture files and live sniffing: :meth:`Analyzer.frame` takes one frame and
returns the sessions that ended because of it. Sessions are handed out in the order they started
(held back in a bounded buffer while an earlier connection is still open), numbered from 1.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from mailtrace.capture.decode import Decoder, TcpPacket, UdpPacket
from mailtrace.capture.reader import CaptureFile
from mailtrace.config import Config
from mailtrace.connection import MailConnection
from mailtrace.context.tracker import CONTEXT_PORTS, ContextStats, ContextTracker
from mailtrace.protocols import BY_NAME, DissectorClass
from mailtrace.session import MessageSinkFactory, Session
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
    truncated_headers: int = 0
    sessions: int = 0
    context: ContextStats | None = None
    """DNS and ident traffic seen beside the sessions (None when the context layer is off)."""

    @property
    def truncated(self) -> bool:
        return any(f.truncated for f in self.files)


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
                                 sink_factory=self.sink_factory)
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
        self._held_rows += len(session.rows) + 1

    # ------------------------------------------------------------------ running
    def run_file(self, capture: CaptureFile, progress: Callable[[int], None] | None = None) -> Iterator[Session]:
        """Analyse one capture file, yielding sessions as they finish (in start order)."""
        self._new_file(capture.name)
        self._capture = capture
        self._secrets_seen = 0
        fstats = FileStats(capture.name, capture.filetype)
        self.stats.files.append(fstats)
        decode = self.decoder.decode
        flows = self.flows
        flow_packet = flows.packet
        packets = 0
        nbytes = 0
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
                last_ts = ts
                if first_ts is None:
                    first_ts = ts
                    fstats.start = ts  # known at once: views measure Time from the file's first packet
                # Fast path for the common case, Ethernet/IPv4/TCP of a connection nobody tracks: one
                # dict lookup and no objects. Anything else (SYN/FIN/RST, fragments, other link types,
                # new connections, time for a sweep) takes the full decode below; test_fast_path checks
                # that both give the same results.
                if fast and linktype == 1 and data[12:14] == b"\x08\x00" and not (data[20] & 0x3F or data[21]):
                    proto = data[23]
                    if proto == 6:
                        if ts < next_sweep and len(data) >= 54:
                            p = 14 + (data[14] & 0x0F) * 4
                            conn = table_get(data[26:34] + data[p : p + 4])
                            if conn is not None and conn.handler is None and not data[p + 13] & 0x07:
                                conn.last_ts = ts
                                fast_skipped += 1
                                continue
                    elif proto == 17:
                        p = 14 + (data[14] & 0x0F) * 4
                        if skip_udp or (len(data) >= p + 4 and (data[p] << 8 | data[p + 1]) not in udp_ports
                                        and (data[p + 2] << 8 | data[p + 3]) not in udp_ports):
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
            self.flows.close_all()
            if context is not None:
                context.flush()
        finally:
            fstats.packets = packets
            fstats.bytes = nbytes
            fstats.start = first_ts
            fstats.end = last_ts if first_ts is not None else None
            fstats.truncated = capture.truncated
            flows.tcp_packets += fast_skipped
            self.decoder.stats.non_tcp += udp_skipped
            fstats.problems = list(capture.problems)
            self._account(fstats)
        yield from self._emit(final=True)

    def _account(self, f: FileStats) -> None:
        s = self.stats
        s.packets += f.packets
        s.bytes += f.bytes
        if f.start is not None:
            s.start = f.start if s.start is None else min(s.start, f.start)
        if f.end is not None:
            s.end = f.end if s.end is None else max(s.end, f.end)
        ds = self.decoder.stats
        s.non_ip += ds.non_ip
        s.unknown_linktype += ds.unknown_linktype
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
            self._held_rows -= len(session.rows) + 1
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
