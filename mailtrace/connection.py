"""The per-connection stack: sniffing/proxy preamble → TLS gate → protocol dissector → session.

Built like mitmproxy's layers: each stage takes stream items and hands on what is left for the next
one. The TLS gate sits between reassembly and the dissector from the moment TLS starts (STARTTLS
accepted, an implicit-TLS port, or a capture that starts inside TLS). It looks at the first bytes of
each direction: TLS records stay opaque (counted, shown as rows), while cleartext — a capture taken
behind a TLS-inspection box, or decrypted afterwards — goes on to the dissector with an anomaly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mailtrace.capture.decode import TCP_FIN, TCP_RST, TCP_SYN, TcpPacket
from mailtrace.detect import Decision, Sniffer, rejects_first_bytes, strip_preamble
from mailtrace.model import (
    CLIENT,
    SERVER,
    Anomaly,
    ByteBudget,
    Chunk,
    Direction,
    Eof,
    Event,
    GapEvent,
    Note,
    Opaque,
    Phase,
    StreamGap,
    StreamItem,
    TlsStart,
)
from mailtrace.protocols import BY_NAME, DissectorClass
from mailtrace.protocols.base import Dissector, ListCharge
from mailtrace.protocols.smtp import looks_like_tls_record
from mailtrace.session import WAITING_BYTES_ALL, EventBudget, MessageSinkFactory, Session, SessionBuilder, tee
from mailtrace.tcp.reassembly import RETRANSMISSION, ReassemblyNote
from mailtrace.tls.keylog import KeyLog

if TYPE_CHECKING:
    from mailtrace.config import Config
    from mailtrace.tcp.flows import Connection
    from mailtrace.tls import TlsEvent, TlsSession

BULK_BYTES = 64 * 1024
"""Message content is handed to the dissector in pieces of about this size rather than per segment:
the same events (the dissectors are split-invariant), a fraction of the calls."""

MAX_SNIFF_PACKETS = 64
"""Packets of an unknown-port connection looked at before it is judged not to be mail."""

SessionDone = Callable[[int, Session | None], None]
"""Called once per connection: its stream index and its session, or None when it was not mail."""


class MailConnection:
    """Flow-table handler for one (possibly) mail connection."""

    __slots__ = ("_budget", "_builder", "_bulk", "_bulk_left", "_bulk_tail", "_conn", "_file", "_held",
                 "_held_bytes", "_held_direction", "_held_first", "_held_frame", "_held_ts", "_sink_factory",
                 "_sniffed_rows", "_tls_port_protocols", "_waiting", "config", "decrypted_any", "dissector",
                 "implicit_tls", "keep_transcript", "keylog", "mid_stream_tls", "on_done", "plain", "row",
                 "seen_data", "sniffer", "sniffing", "tls", "tls_state", "tunnel")

    row: Callable[[int, float, Direction, int, int], None]
    """The session builder's ``packet`` once a session is built: the flow table's fast path calls it
    directly (:class:`~mailtrace.tcp.flows.FastHandler`)."""

    def __init__(self, conn: Connection, config: Config, file: str, on_done: SessionDone,
                 protocol: DissectorClass | None, implicit_tls: bool,
                 tls_port_protocols: dict[int, DissectorClass], keylog: Callable[[], KeyLog | None],
                 sink_factory: MessageSinkFactory | None = None, budget: EventBudget | None = None) -> None:
        self.config = config
        self._budget = budget
        self._waiting = budget.waiting if budget is not None else ByteBudget(WAITING_BYTES_ALL)
        """Message content held back by the run's connections and summarisers together (see
        :data:`~mailtrace.session.WAITING_BYTES_ALL`): past it, what a connection holds is dissected at once."""
        self.on_done = on_done
        self._conn = conn
        self._file = file
        self._sink_factory = sink_factory
        self._builder: SessionBuilder | None = None
        self._sniffed_rows: list[tuple[int, float, Direction, int, int]] = []
        """Packets of a connection still being sniffed (most are not mail: no session is built yet)."""
        self.sniffing = protocol is None
        """No verdict yet on what this connection speaks (its first bytes are being looked at)."""
        self.sniffer: Sniffer | None = None
        """Made when the first bytes alone do not settle it (most connections on other ports are
        rejected on their first segment by :func:`~mailtrace.detect.rejects_first_bytes`)."""
        self._tls_port_protocols = tls_port_protocols
        if protocol is not None:
            self._build(protocol.name)
        self.dissector: Dissector | _FailedDissector | None = self._dissector(protocol) if protocol else None
        self.tls_state: str | None = None
        """None before TLS; then "undecided" until the first bytes show "tls" records or "plain" text."""
        self.tls: TlsSession | None = None
        self.keylog = keylog
        self.mid_stream_tls = False
        self.decrypted_any = False
        self.seen_data = False
        self.keep_transcript = config.session.keep_transcript
        self.plain = False
        """Past the first bytes, no TLS, no sniffing: items go straight to the dissector."""
        self._bulk: Direction | None = None
        """The direction the dissector reads message content from right now (see Dissector.bulk)."""
        self._bulk_left: int | None = None
        self._bulk_tail = b""
        self._held: list[bytes] = []
        """Message content waiting to be dissected in one piece (see :meth:`_release_bulk`)."""
        self._held_bytes = 0
        self._held_first = 0
        """The frame of the first held piece, and the direction, time and frame of the last."""
        self._held_direction: Direction = CLIENT
        self._held_ts = 0.0
        self._held_frame = 0
        self.implicit_tls = implicit_tls
        self.tunnel: str | None = conn.tunnel

    def _dissector(self, protocol: DissectorClass) -> Dissector:
        """The protocol's dissector, told when the capture holds no SYN of the connection."""
        dissector = protocol(self.config.dissector)
        if not self._conn.syn_seen:
            dissector.began_mid_session()
        return dissector

    def session_builder(self) -> SessionBuilder | None:
        """The session being built, or None while the first bytes are still being sniffed."""
        return self._builder

    @property
    def builder(self) -> SessionBuilder:
        assert self._builder is not None, "no session is built while sniffing"
        return self._builder

    def _build(self, protocol: str) -> None:
        conn = self._conn
        self._sink_factory = tee(self._sink_factory, self.config.message_sink)
        self._builder = SessionBuilder(protocol=protocol, client=conn.client, server=conn.server,
                                       stream=conn.stream, file=self._file, tunnel=conn.tunnel,
                                       limits=self.config.session, mime_limits=self.config.mime,
                                       sink_factory=self._sink_factory, summarize=self.config.summarize,
                                       budget=self._budget)
        for row in self._sniffed_rows:
            self._builder.packet(*row)
        self._sniffed_rows = []
        self.row = self._builder.packet
        conn.fast = self  # the flow table may now hand over its common packets without a TcpPacket

    # ------------------------------------------------------------------ flow-table callbacks
    @property
    def tracked(self) -> bool:
        return not self.sniffing

    def packet(self, conn: Connection, frame: int, ts: float, direction: Direction, pkt: TcpPacket) -> None:
        if self._builder is not None:  # not sniffing any more: a session is being built
            self._builder.packet(frame, ts, direction, pkt.flags, pkt.payload_len)
            return
        self._sniffed_rows.append((frame, ts, direction, pkt.flags, pkt.payload_len))
        if len(self._sniffed_rows) > MAX_SNIFF_PACKETS:
            conn.handler = None  # no verdict after this many packets: not a mail conversation we can read
            self.on_done(conn.stream, None)
            return
        if self.sniffer is None and pkt.payload_len and self._first_bytes(conn, direction, pkt) \
                and rejects_first_bytes(pkt.payload, direction is CLIENT, self.config.max_sniff_bytes):
            self._not_mail(conn)  # the flow table then skips reassembly of this segment

    def chunk(self, conn: Connection, direction: Direction, data: bytes, ts: float, frame: int) -> None:
        """``items(conn, [Chunk(direction, data, ts, frame)])``, the flow table's common case: message
        content that cannot end the content is held without making a Chunk and a list for it."""
        if direction is self._bulk and self.plain and not self.keep_transcript and self._inside_bulk(data):
            self._hold(direction, data, ts, frame)
        else:
            self.items(conn, [Chunk(direction, data, ts, frame)])

    def _hold(self, direction: Direction, data: bytes, ts: float, frame: int) -> None:
        """Message content: dissected in pieces of BULK_BYTES."""
        held = self._held
        if not held:
            self._held_first = frame
            self._held_direction = direction
        held.append(data)
        self._held_ts = ts
        self._held_frame = frame
        size = len(data)
        self._held_bytes += size
        shared = self._waiting
        shared.held += size
        if self._held_bytes >= BULK_BYTES or shared.held > shared.size:  # not .spent: a call per segment
            self._release_bulk()

    @staticmethod
    def _first_bytes(conn: Connection, direction: Direction, pkt: TcpPacket) -> bool:
        """Whether reassembly would hand on this segment's payload, whole, as the connection's very
        first stream item and nothing else: the first segment of both directions, no SYN/FIN/RST,
        not cut by the snap length. The sniffer's verdict on it can then be had before reassembly."""
        if pkt.flags & (TCP_SYN | TCP_FIN | TCP_RST) or len(pkt.payload) != pkt.payload_len:
            return False
        rasm = conn.rasm
        if rasm is None:  # no segment reassembled yet: the flow table makes them after this call
            return True
        client, server = rasm
        return client.next_seq is None and server.next_seq is None and not client.ended and not server.ended

    def items(self, conn: Connection, items: list[StreamItem]) -> None:
        if self.plain and not self.keep_transcript:
            for item in items:  # the common case: a cleartext session past its first bytes
                if type(item) is Chunk and item.direction is self._bulk and self._inside_bulk(item.data):
                    self._hold(item.direction, item.data, item.ts, item.frame)
                    continue
                if self._held:
                    self._release_bulk()
                if type(item) is Chunk and item.frame == self.builder.marked_frame:
                    # the segment that may end the content was counted on its row already: not twice
                    builder = self.builder
                    builder.marked_frame = 0
                    builder.body_marked = True
                    try:
                        self._plain(item)
                    finally:
                        builder.body_marked = False
                    continue
                self._plain(item)
            return
        if self.sniffer is None and self.sniffing and items and type(items[0]) is Chunk:
            first = items[0]
            if rejects_first_bytes(first.data, first.direction is CLIENT, self.config.max_sniff_bytes):
                self._not_mail(conn)  # what the sniffer would say on these bytes, without making one
                return
        for item in items:
            if self.keep_transcript and self._builder is not None:
                self.builder.raw(item)
            if self.sniffing:
                decision = self._sniffer().feed(item)
                if decision is None:
                    continue
                if not self._decided(conn, decision):
                    return
                continue
            self._stack(item)

    def _plain(self, item: StreamItem) -> None:
        """Feed one item to the dissector of a cleartext session; notice TLS starting and bulk data."""
        dissector, builder = self.dissector, self.builder
        assert dissector is not None
        try:
            events = dissector.feed(item)
        except Exception as exc:  # a dissector's bug ends its session's dissection, not the run
            events = self._dissector_failed(exc, item)
        if events:
            starts = builder.tls_starts
            builder.events(events)
            if builder.tls_starts != starts:
                self.tls_state = "undecided"
                self.plain = False
        self._bulk = builder.bulk = dissector.bulk if self.plain else None
        if self._bulk is not None:
            self._bulk_left = dissector.bulk_left
            self._bulk_tail = item.data[-4:] if type(item) is Chunk else b""

    def _inside_bulk(self, data: bytes) -> bool:
        """Whether ``data`` cannot end the bulk content: then it may wait to be dissected with more.
        The segment that may end it is dissected on its own, so every event keeps its exact frame."""
        left = self._bulk_left
        if left is not None:
            return self._held_bytes + len(data) < left
        tail = self._held[-1][-4:] if self._held else self._bulk_tail
        # a segment without a dot (most of base64 content) cannot hold the marker: one memchr decides
        return (tail + data[:4]).find(b"\r\n.\r\n") < 0 and (data.find(b".") < 0 or data.find(b"\r\n.\r\n") < 0)

    def _release_bulk(self) -> None:
        """Dissect the held message content as one piece (it was already counted on its rows)."""
        held = self._held
        data = held[0] if len(held) == 1 else b"".join(held)
        self._held = []
        self._waiting.held -= self._held_bytes
        self._held_bytes = 0
        self._bulk_tail = data[-4:]
        builder = self.builder
        builder.body_marked = True
        builder.bulk_first_frame = self._held_first
        try:
            self._plain(Chunk(self._held_direction, data, self._held_ts, self._held_frame))
        finally:
            builder.body_marked = False
            builder.bulk_first_frame = 0

    def notes(self, conn: Connection, notes: list[ReassemblyNote]) -> None:
        builder = self._builder
        if builder is None:
            return  # still sniffing: reassembly trouble on what is probably not mail
        trouble: list[Event] = []
        for n in notes:
            if n.kind == RETRANSMISSION:  # not an anomaly: a mark on the packet's row
                builder.retransmitted(n.frame, int(n.detail))
            else:
                trouble.append(Anomaly(direction=n.direction, ts=conn.last_ts, frame=n.frame, first_frame=n.frame,
                                       phase=builder.phase, kind=n.kind, detail=n.detail))
        if trouble:
            builder.events(trouble)

    def finish(self, conn: Connection, close: str) -> None:
        if self.sniffing and not self._decided(conn, self._sniffer().end()):
            return
        if self.dissector is None:
            return
        if self._held:
            self._release_bulk()
        try:
            events = self.dissector.finish()
        except Exception as exc:  # as in _plain
            events = self._dissector_failed(exc, None)
        self.builder.events(events)
        record: dict[str, Any] = self.dissector.record()
        if self.tls is not None:
            from mailtrace.tls import tls_info_to_json  # the TLS layer loads with its first session

            info = self.tls.info
            self.builder.tls_info = tls_info_to_json(info)
            self.builder.decrypting = info.decrypted
        if self.tunnel != self.builder.tunnel:
            self.builder.tunnel = self.tunnel
        session = self.builder.finish(session_id=0, close=close, record=record)
        self.on_done(conn.stream, session)

    def _dissector_failed(self, exc: Exception, item: StreamItem | None) -> list[Event]:
        """The dissector raised: a bug that these bytes met (hostile input is normal input). The run goes
        on: the session keeps what it had, says so in an anomaly, and the rest of its bytes are not read."""
        dissector = self.dissector
        try:
            record = dissector.record() if dissector is not None else {}
        except Exception:  # its state may be what failed; what its lists took still goes back with the session
            record = dict(dissector.listed.keys()) if dissector is not None else {}
        if dissector is not None:
            dissector.release_unread()  # it will not be finished
        self.dissector = _FailedDissector(record)
        builder = self.builder
        self._bulk = builder.bulk = None
        frame = getattr(item, "frame", None) or builder.last_frame
        protocol = builder.protocol.upper()
        return [Anomaly(direction=getattr(item, "direction", CLIENT), ts=getattr(item, "ts", builder.last_ts),
                        frame=frame, first_frame=frame, phase=builder.phase, kind="dissector-error",
                        detail=f"the {protocol} dissector failed on these bytes ({type(exc).__name__}: {exc}); "
                               "the rest of the session is not dissected. Please report this with the capture.")]

    # ------------------------------------------------------------------ sniffing
    def _sniffer(self) -> Sniffer:
        sniffer = self.sniffer
        if sniffer is None:
            sniffer = self.sniffer = Sniffer(self.config.max_sniff_bytes, self._tls_port_protocols)
        return sniffer

    def _not_mail(self, conn: Connection) -> None:
        self.sniffing = False
        self.sniffer = None
        conn.handler = None
        self.on_done(conn.stream, None)

    def _decided(self, conn: Connection, decision: Decision) -> bool:
        """Apply the sniffer's verdict; False when this is not mail (the flow table forgets us)."""
        sniffer = self._sniffer()
        if decision.protocol is None:
            self._not_mail(conn)
            return False
        self.sniffing = False
        self.sniffer = None
        self.dissector = self._dissector(decision.protocol)
        self._build(decision.protocol.name)
        if self.keep_transcript:
            for item in sniffer.items:
                self.builder.raw(item)
        self.implicit_tls = decision.implicit_tls
        if decision.tunnel:
            self.tunnel = decision.tunnel
            self.builder.tunnel = decision.tunnel
        for direction, text, frame, ts in decision.preamble:
            self.builder.events([Note(direction=direction, ts=ts, frame=frame, first_frame=frame,
                                      phase=Phase.SETUP, text=text.decode("latin-1", "replace"))])
        for item in strip_preamble(sniffer.items, decision.skip):
            self._stack(item)
        return True

    # ------------------------------------------------------------------ TLS gate and dissector
    def _stack(self, item: StreamItem) -> None:
        if isinstance(item, Chunk) and not self.seen_data:
            self.seen_data = True
            if self.implicit_tls:
                self._start_tls(item, "implicit")
            elif looks_like_tls_record(item.data):
                self._start_tls(item, "starttls")
                self.builder.note("the capture starts inside TLS: STARTTLS happened before it")
                self.builder.events([Anomaly(direction=item.direction, ts=item.ts, frame=item.frame,
                                             first_frame=item.frame, phase=Phase.TLS, kind="mid-stream-tls",
                                             detail="the capture starts inside a TLS session")])
        if self.tls_state is None:
            self._dissect(item)
            return
        if self.tls_state == "undecided":
            if not isinstance(item, Chunk):
                self._to_tls(item)
                return
            if looks_like_tls_record(item.data) and (item.direction is CLIENT or self.mid_stream_tls):
                self.tls_state = "tls"
            elif item.direction is SERVER and self.builder.tls == "implicit" and not self.mid_stream_tls \
                    and not self._cleartext_greeting(item.data):
                self.tls_state = "tls"  # the client never spoke TLS first: let the TLS layer say what this is
            else:
                self.tls_state = "plain"
                self._plaintext_after_tls(item)
        if self.tls_state == "plain":
            self._dissect(item)
        else:
            self._to_tls(item)

    def _to_tls(self, item: StreamItem) -> None:
        """Feed the TLS layer; its plaintext goes on to the dissector, its events become rows.

        Bytes lost inside TLS are a gap of the session (the TCP bytes lost, recorded here since the
        dissector only sees plaintext). When they took decrypted application data with them, the TLS
        layer hands on a plaintext ``StreamGap`` at the right place, and the dissector resynchronises
        on it as after a cleartext gap instead of reading the bytes before and after as one stream.
        """
        if self.tls is None:
            from mailtrace.tls import TlsSession  # the TLS layer loads with its first session

            self.tls = TlsSession(self.keylog())
        if isinstance(item, StreamGap):
            self.builder.events([GapEvent(direction=item.direction, ts=item.ts, frame=item.frame,
                                          first_frame=item.frame, phase=self.builder.phase, nbytes=item.nbytes,
                                          detail="lost inside TLS records")])
        for out in self.tls.feed(item):
            if isinstance(out, Chunk):
                if self.keep_transcript:
                    self.builder.raw(out, decrypted=True)  # --follow shows the plaintext, as Follow TLS Stream
                self._plaintext_starts()
                self.builder.decrypting = True
                self._dissect(out)
                self.builder.decrypting = False
            elif isinstance(out, StreamGap):
                self._plaintext_starts()
                self._dissect(out, gap_recorded=True)
            else:
                event = tls_row_event(out, self.builder.phase)
                if event is not None:
                    self.builder.events([event])
        if isinstance(item, Eof) and self.decrypted_any:
            self._dissect(item)  # the plaintext of this direction ends too (an open message is incomplete)

    def _plaintext_starts(self) -> None:
        """The first decrypted bytes (or the first loss of them): the dissector reads plaintext from here."""
        if not self.decrypted_any:
            self.decrypted_any = True
            assert self.dissector is not None
            self.dissector.tls_started()

    def _dissect(self, item: StreamItem, gap_recorded: bool = False) -> None:
        """Feed the dissector. ``gap_recorded``: ``item`` is a gap the session already counts (lost
        TLS records), so the dissector's own GapEvent for it is not counted twice."""
        assert self.dissector is not None
        try:
            events = self.dissector.feed(item)
        except Exception as exc:  # as in _plain
            events = self._dissector_failed(exc, item)
        if gap_recorded:
            events = [e for e in events if not isinstance(e, GapEvent)]
        if events:
            starts = self.builder.tls_starts
            self.builder.events(events)
            if self.builder.tls_starts != starts:
                self.tls_state = "undecided"
        self.plain = self.tls_state is None and self.seen_data and not self.sniffing

    def _start_tls(self, item: Chunk, mode: str) -> None:
        self.tls_state = "undecided"
        self.mid_stream_tls = mode == "starttls"
        self.builder.events([TlsStart(direction=item.direction, ts=item.ts, frame=item.frame,
                                      first_frame=item.frame, phase=Phase.TLS, mode=mode)])

    def _cleartext_greeting(self, data: bytes) -> bool:
        """The server's first bytes on an implicit-TLS port are its protocol's cleartext greeting (``220``,
        ``+OK``, ``* OK``: what the dissector's sniffer scores as a greeting), not TLS records: the server
        speaks in the clear on a port that promises TLS, and the session is dissected as cleartext."""
        return not looks_like_tls_record(data) and BY_NAME[self.builder.protocol].sniff(b"", data) > 0

    def _plaintext_after_tls(self, item: Chunk) -> None:
        """Cleartext where TLS records were expected: keep dissecting, and say so."""
        assert self.dissector is not None
        self.dissector.tls_started()
        if self.builder.tls == "implicit":
            detail = "an implicit-TLS port carries cleartext in this capture"
            self.builder.no_implicit_tls()
        else:
            detail = ("after the TLS upgrade the capture holds cleartext, not TLS records: it was taken behind a "
                      "TLS-inspection box or decrypted afterwards; the session is dissected on")
        self.builder.note(detail)
        self.builder.events([Anomaly(direction=item.direction, ts=item.ts, frame=item.frame, first_frame=item.frame,
                                     phase=Phase.TLS, kind="plaintext-after-tls", detail=detail)])


def tls_row_event(event: TlsEvent, phase: Phase) -> Event | None:
    """A TLS layer event as a row event of the session table."""
    from mailtrace.tls import HandshakeComplete, HandshakeSeen, OpaqueData, TlsAlert, TlsAnomaly

    d, ts, frame = event.direction, event.ts, event.frame or 0
    if isinstance(event, OpaqueData):
        return Opaque(direction=d, ts=ts, frame=frame, first_frame=frame, phase=Phase.TLS, nbytes=event.nbytes)
    if isinstance(event, TlsAnomaly):
        return Anomaly(direction=d, ts=ts, frame=frame, first_frame=frame, phase=Phase.TLS,
                       kind="tls-" + event.kind, detail=event.detail)
    if isinstance(event, HandshakeSeen):
        text = "TLS " + event.kind.replace("_", " ") + (f" ({event.detail})" if event.detail else "")
    elif isinstance(event, HandshakeComplete):
        text = f"TLS handshake complete: {event.version or '?'} {event.cipher or ''}".rstrip()
    elif isinstance(event, TlsAlert):
        if event.level == event.description:  # "encrypted"/"encrypted": neither can be read, say it once
            text = f"TLS alert: {event.description}"
        else:
            text = f"TLS alert: {event.level} {event.description}"
        return Note(direction=d, ts=ts, frame=frame, first_frame=frame, phase=phase, text=text)
    else:
        return None  # Decrypted: the plaintext's own events mark the row
    return Note(direction=d, ts=ts, frame=frame, first_frame=frame, phase=Phase.TLS, text=text)


class _FailedDissector:
    """Stands in for a dissector that raised (:meth:`MailConnection._dissector_failed`): reads nothing
    more and keeps the record the dissector had."""

    bulk = None
    bulk_left = None

    def __init__(self, record: dict[str, Any]) -> None:
        self._record = record

    def feed(self, item: StreamItem) -> list[Event]:
        return []

    def finish(self) -> list[Event]:
        return []

    def release_unread(self) -> None:
        pass

    @property
    def listed(self) -> ListCharge:
        return ListCharge(None)  # (the failed dissector's charge is in the record it kept)

    def record(self) -> dict[str, Any]:
        return self._record

    def tls_started(self) -> None:
        pass

    def began_mid_session(self) -> None:
        pass
