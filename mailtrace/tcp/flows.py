"""The flow table: TCP packets → connections, with Wireshark's stream numbering and a bounded life.

Every TCP connection of the capture gets the ``tcp.stream`` index Wireshark would give it (a new
4-tuple, or a SYN with a new initial sequence number on a known 4-tuple), so a user can type
``tcp.stream eq N``. Only connections that a :class:`HandlerFactory` wants (mail ports, or unknown
ports whose first bytes must be sniffed) get reassembly and a handler; all others cost a dict
lookup per packet. A connection is handed back finished as soon as it ends (FIN both ways, RST, idle
timeout), so memory follows the number of *open* connections, not the size of the capture.
"""

from __future__ import annotations

import operator
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from mailtrace.capture.decode import TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, TcpPacket
from mailtrace.model import CLIENT, SERVER, ByteBudget, Chunk, Direction, Endpoint, StreamItem
from mailtrace.tcp.reassembly import Reassembler, ReassemblyNote


def ip_text(raw: bytes) -> str:
    """Dotted quad or RFC 5952 text (remembered: the same few addresses come back again and again)."""
    text = _ip_texts.get(raw)
    if text is None:
        if len(_ip_texts) >= IP_TEXTS_KEPT:
            _ip_texts.clear()
        text = _ip_texts[raw] = socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)
    return text


IP_TEXTS_KEPT = 4096
_ip_texts: dict[bytes, str] = {}


@dataclass(frozen=True, slots=True)
class FlowLimits:
    """Named limits of the flow table (see docs/architecture.md)."""

    idle_timeout: float = 600.0
    """An open mail connection without packets for this long is closed as ``timeout`` (checked every
    tenth of it, at most every 30 s and at least every second: see :attr:`idle_check_every`)."""
    linger: float = 2.0
    """After FIN/RST, trailing packets (last ACK, repeated RST) are still attributed for this long."""
    tombstone_ttl: float = 900.0
    """How long a finished or ignored connection is remembered (keeps stream numbers right)."""
    max_pending_bytes: int = 2 * 1024 * 1024
    """Out-of-order bytes buffered per direction before the hole is declared lost."""
    max_pending_segments: int = 2048
    max_pending_all: int = 4 * 1024 * 1024
    """Out-of-order bytes all connections may hold together (see :attr:`Reassembler.budget`)."""
    max_recent_all: int = 4 * 1024 * 1024
    """Delivered bytes all connections may remember together to compare retransmissions against (64 KiB
    a direction; see :attr:`Reassembler.RECENT_FLOOR`)."""
    recent_idle: float = 5.0
    """While that budget is spent, a connection quiet this long forgets what it remembered (a retransmission
    comes within a few timeouts of the original): 150 IMAP connections idling after a fetch each kept 64 KiB
    and left the busy connections 4 KiB, too little to compare a retransmission 12 KB back."""
    max_sniff_pending_bytes: int = 64 * 1024
    """The same, while a connection on an unknown port is still being sniffed (most are not mail)."""
    max_unanswered: int = 4096
    """Open connections that are only a client's SYN nobody answered (a SYN scan or flood), beyond this
    many: the oldest is ended at once, as the capture's end would end it, so a flood cannot fill the
    memory. If its client tries again or a SYN/ACK comes after all, the conversation is taken up again
    under the same ``tcp.stream`` number, in a session of its own."""
    max_closing: int = 4096
    """Connections that ended (FIN both ways, RST) and still linger for trailing packets, beyond this
    many (a scanner's SYN/RST pairs, thousands a second): the oldest is finished at once instead of
    after ``linger``, so lingering state cannot fill the memory. Its trailing packets, if any come,
    are ignored like those of any finished connection."""
    max_open: int = 2048
    """Mail connections open at once beyond the unanswered SYNs (bounded on their own by
    ``max_unanswered``). A short SMTP session costs the dissecting process ~13 KB while it is open: 20,000
    open at once took it to 316 MiB, 124 MiB at 4,096. Past this many, the tenth quiet longest is ended
    as an idle timeout would end it; one that sends again is taken up again under the same
    ``tcp.stream`` number, in a session of its own (begun mid-stream), and the file's problems say so."""
    max_remembered: int = 32_768
    """Connections remembered at once, followed or not (a finished or ignored one stays as a tombstone for
    ``tombstone_ttl`` so its late packets keep their ``tcp.stream`` number). Past this many, half of the
    tombstones, those quiet longest, are forgotten at once. A SYN scan of a million addresses in 100 s
    (70 MB) took the dissecting process to 1 GiB (~1 KB per connection remembered); with this bound, to
    117 MiB. A forgotten connection that sends again gets a new number where Wireshark would keep the old
    one; the file's problems say that connections were forgotten."""
    idle_min_packets: int = 20_000
    """Idle timeouts also need this many packets since the connection's last one, so a single bogus
    timestamp far in the future cannot expire every open connection."""

    @property
    def idle_check_every(self) -> float:
        """Seconds between idle checks: a tenth of the timeout, between 1 and 30 s. The default 600 s
        gives the 30 s of the tombstone sweep (file analysis keeps its timing); ``live --idle-timeout 5``
        ends a quiet session 5 to 6 s after its last packet."""
        return min(TOMBSTONE_SWEEP_EVERY, max(1.0, self.idle_timeout / 10))


_SYN_FIN_RST = TCP_SYN | TCP_FIN | TCP_RST

TOMBSTONE_SWEEP_EVERY = 30.0
"""Seconds between the sweeps that drop old tombstones."""


class Handler(Protocol):
    """What the flow table drives for a connection it tracks (implemented by the pipeline)."""

    @property
    def tracked(self) -> bool:
        """False while the handler is only sniffing whether this is mail at all (smaller buffers)."""

    def packet(self, conn: Connection, frame: int, ts: float, direction: Direction, pkt: TcpPacket) -> None:
        """Called for every packet of the connection, before its stream items."""

    def items(self, conn: Connection, items: list[StreamItem]) -> None:
        """Reassembled stream items in order; may set ``conn.handler = None`` to stop tracking."""

    def notes(self, conn: Connection, notes: list[ReassemblyNote]) -> None:
        """Reassembly anomalies."""

    def finish(self, conn: Connection, close: str) -> None:
        """The connection is over: ``fin``, ``rst``, ``timeout`` or ``open`` (capture ended)."""


class FastHandler(Handler, Protocol):
    """A handler that also takes the flow table's common case without a :class:`TcpPacket` or a list
    of stream items (a mail session being built: most of a capture's packets)."""

    row: Callable[[int, float, Direction, int, int], None]
    """``row(frame, ts, direction, flags, payload_len)``: what :meth:`Handler.packet` does, for a packet
    without SYN, FIN or RST (a mail connection's is its session builder's ``packet``)."""

    def chunk(self, conn: Connection, direction: Direction, data: bytes, ts: float, frame: int) -> None:
        """What ``items(conn, [Chunk(direction, data, ts, frame)])`` does."""


class HandlerFactory(Protocol):
    def __call__(self, conn: Connection, pkt: TcpPacket) -> Handler | None: ...


class Connection:
    """One TCP connection. ``handler`` is None for connections nobody wants (only numbered)."""

    __slots__ = (
        "_client",
        "_server",
        "base_seq",
        "client_key",
        "closing_since",
        "fast",
        "fin",
        "fin_acked",
        "first_frame",
        "first_ts",
        "handler",
        "last_index",
        "last_ts",
        "packets",
        "rasm",
        "reset",
        "server_port",
        "shed",
        "stream",
        "syn_seen",
        "tunnel",
    )

    def __init__(self, stream: int, client_key: bytes, client: tuple[bytes, int], server: tuple[bytes, int],
                 first_frame: int, ts: float, tunnel: str | None) -> None:
        self.stream = stream
        self.client_key = client_key
        self._client: tuple[bytes, int] | Endpoint = client
        self._server: tuple[bytes, int] | Endpoint = server
        self.server_port = server[1]
        self.first_frame = first_frame
        self.first_ts = ts
        self.last_ts = ts
        self.last_index = 0
        self.packets = 0
        self.tunnel = tunnel
        self.handler: Handler | None = None
        self.fast: FastHandler | None = None
        """The handler again when it takes the common packets without a TcpPacket (see
        :meth:`FlowTable.tracked`); set by the handler, cleared when the connection is let go."""
        self.rasm: tuple[Reassembler, Reassembler] | None = None
        self.base_seq: list[int | None] = [None, None]  # per direction (client, server)
        self.fin = [False, False]
        self.fin_acked = [False, False]
        self.reset = False
        self.closing_since: float | None = None
        self.syn_seen = False
        self.shed = False
        """Ended early as an unanswered SYN under a flood (``FlowLimits.max_unanswered``)."""

    @property
    def client(self) -> Endpoint:
        """The client's address as text: made on first use (most connections are never shown)."""
        raw = self._client
        return raw if isinstance(raw, Endpoint) else self._endpoint(True)

    @property
    def server(self) -> Endpoint:
        raw = self._server
        return raw if isinstance(raw, Endpoint) else self._endpoint(False)

    def _endpoint(self, client: bool) -> Endpoint:
        raw = self._client if client else self._server
        if isinstance(raw, Endpoint):
            return raw
        point = Endpoint(ip_text(raw[0]), raw[1])
        if client:
            self._client = point
        else:
            self._server = point
        return point

    def direction_of(self, key: bytes) -> Direction:
        return CLIENT if key == self.client_key else SERVER


_last_ts = operator.attrgetter("last_ts")


class FlowTable:
    """Maps packets to connections; drives reassembly and handlers; retires connections."""

    def __init__(self, factory: HandlerFactory, server_side: Callable[[int, int], bool],
                 limits: FlowLimits = FlowLimits()) -> None:
        """``server_side(sport, dport)`` says whether the *source* of a packet seen without a SYN
        is the server (e.g. because its port is a mail port)."""
        self.factory = factory
        self.server_side = server_side
        self.limits = limits
        self.table: dict[bytes, Connection] = {}
        self.active: dict[int, Connection] = {}  # stream → tracked, not yet closing
        self.closing: dict[int, Connection] = {}  # stream → closed, lingering for trailing packets
        self.unanswered: dict[int, Connection] = {}
        """stream → tracked connections that are so far only a client's SYN, oldest first."""
        self.next_stream = 0
        self.now = 0.0
        self.next_sweep = 0.0
        self._next_tombstone_sweep = 0.0
        self._next_idle_sweep = 0.0
        self._idle_every = limits.idle_check_every
        self.tcp_packets = 0
        self.forgotten = 0
        """Tombstones forgotten early (``FlowLimits.max_remembered``)."""
        self.ended_early = 0
        """Open connections ended early (``FlowLimits.max_open``)."""
        self.pending_budget = ByteBudget(limits.max_pending_all)
        self.recent_budget = ByteBudget(limits.max_recent_all)

    # ------------------------------------------------------------------ per packet
    def packet(self, frame: int, ts: float, pkt: TcpPacket) -> None:
        """One TCP packet: through :meth:`tracked` when it is that common case, else :meth:`general`."""
        if ts < self.next_sweep and not pkt.flags & TCP_SYN:
            conn = self.table.get(pkt.key)
            if conn is not None and conn.fast is not None:
                key, _, _, _, _, seq, ack, flags, payload, payload_len, _ = pkt
                if self.tracked(conn, frame, ts, key, seq, ack, flags, payload, payload_len):
                    return
        self.general(frame, ts, pkt)

    def general(self, frame: int, ts: float, pkt: TcpPacket) -> None:
        """Any TCP packet (:meth:`packet` without trying :meth:`tracked` first)."""
        self.tcp_packets += 1
        if ts > self.now:
            self.now = ts
            if ts >= self.next_sweep:
                self.sweep()
        conn = self.table.get(pkt.key)
        flags = pkt.flags
        if conn is None:
            conn = self._new_connection(frame, ts, pkt)
        elif conn.shed and (flags & TCP_SYN or (pkt.payload_len and conn.handler is None)):
            # a client that tries again (same ISN) or a late SYN/ACK: the conversation is real after all;
            # or bytes of a connection ended early for room: it goes on under the same tcp.stream number,
            # in a session of its own
            conn = self._new_connection(frame, ts, pkt, stream=conn.stream)
        elif flags & (TCP_SYN | TCP_ACK) == TCP_SYN:
            d = 0 if pkt.key == conn.client_key else 1
            base = conn.base_seq[d]
            if base is not None and pkt.seq != base:  # port reuse: Wireshark starts a new stream
                if conn.handler is not None:
                    self._retire(conn, "rst" if conn.reset else ("fin" if all(conn.fin) else "open"))
                conn = self._new_connection(frame, ts, pkt)
        conn.last_ts = ts
        conn.last_index = self.tcp_packets
        conn.packets += 1
        if pkt.key == conn.client_key:
            direction, d = CLIENT, 0
        else:
            direction, d = SERVER, 1
        if conn.base_seq[d] is None:
            conn.base_seq[d] = pkt.seq
        if self.unanswered and (d or pkt.payload_len or flags & (TCP_FIN | TCP_RST)):
            self.unanswered.pop(conn.stream, None)  # more than a SYN: a conversation, never shed
        handler = conn.handler
        if handler is None:
            return
        handler.packet(conn, frame, ts, direction, pkt)
        if conn.handler is None:
            self._forget(conn)
            return
        rasm = conn.rasm
        if rasm is None:  # made once the first segment did not end the handler's interest
            rasm = conn.rasm = self._reassemblers(handler)
        mine, peer = rasm[d], rasm[1 - d]
        syn = flags & TCP_SYN != 0
        fin = flags & TCP_FIN != 0
        # the two calls below are made only when they have something to do (per packet, calls add up)
        if flags & TCP_ACK and not (flags & TCP_RST) and pkt.ack != peer.next_seq:
            peer.acked(pkt.ack)
        items = mine.segment(pkt.seq, pkt.payload, pkt.payload_len, syn, fin, frame, ts)
        if (pkt.payload_len or fin) and peer.acked_to > peer.offset:
            more = peer.flush_acked(frame, ts)  # the peer's holes come first: it got that data before
            if more:
                items = more + items
        if fin:
            conn.fin[d] = True
        if flags & TCP_RST:
            conn.reset = True
            items += mine.finish(frame, ts, reset=True)
            items += peer.finish(frame, ts, reset=True)
        if items:
            handler.items(conn, items)
        if rasm[0].notes or rasm[1].notes:
            for r in rasm:
                if r.notes:
                    if conn.handler is not None:
                        conn.handler.notes(conn, r.notes)
                    r.notes = []
        if dropped(conn):  # the handler decided this is not mail
            self._forget(conn)
            return
        if flags & TCP_ACK and peer.ended and peer.fin_offset is not None \
                and pkt.ack == (peer.next_seq or 0) + 1 & 0xFFFFFFFF:
            conn.fin_acked[1 - d] = True
        if conn.closing_since is None and (conn.reset or (rasm[0].ended and rasm[1].ended)):
            conn.closing_since = ts
            self.active.pop(conn.stream, None)
            self.closing[conn.stream] = conn
            if len(self.closing) > self.limits.max_closing:
                oldest = next(iter(self.closing.values()))
                self._retire(oldest, "rst" if oldest.reset else "fin")
        if conn.closing_since is not None and not conn.reset and conn.fin_acked[0] and conn.fin_acked[1]:
            self._retire(conn, "fin")  # both FINs acknowledged: nothing of this connection is left to come

    def tracked(self, conn: Connection, frame: int, ts: float, key: bytes, seq: int, ack: int, flags: int,
                payload: bytes, payload_len: int) -> bool:
        """The common packet of a tracked connection, as :meth:`packet` would take it but without a
        :class:`TcpPacket` and with a third of the calls: ``conn`` is the table's entry for ``key``, its
        handler a :class:`FastHandler`, no sweep is due (``ts < next_sweep``), the packet has no SYN,
        FIN or RST, and its bytes are the next of their direction in order (or none), whole, with
        nothing held and the direction not ending. Anything else returns False at once, having changed
        nothing: the caller then hands the packet to :meth:`general`."""
        fast = conn.fast
        rasm = conn.rasm
        if fast is None or rasm is None or flags & _SYN_FIN_RST:
            return False
        if key == conn.client_key:
            direction, d = CLIENT, 0
            mine, peer = rasm
        else:
            direction, d = SERVER, 1
            peer, mine = rasm
        if seq != mine.next_seq or mine.pending or mine.fin_offset is not None or mine.ended \
                or payload_len != len(payload):
            return False
        self.tcp_packets = index = self.tcp_packets + 1
        if ts > self.now:  # noqa: PLR1730 - max() is a call per packet
            self.now = ts
        conn.last_ts = ts
        conn.last_index = index
        conn.packets += 1
        if self.unanswered and (d or payload_len):
            self.unanswered.pop(conn.stream, None)  # more than a SYN: a conversation, never shed
        fast.row(frame, ts, direction, flags, payload_len)
        if flags & TCP_ACK and ack != peer.next_seq:
            peer.acked(ack)
        if payload_len:
            mine.take(payload, payload_len, frame)
            if peer.acked_to > peer.offset:
                items = peer.flush_acked(frame, ts)  # the peer's holes come first: it got that data before
                items.append(Chunk(direction, payload, ts, frame))
                fast.items(conn, items)
            else:
                fast.chunk(conn, direction, payload, ts, frame)
            if peer.notes:
                if conn.handler is not None:
                    conn.handler.notes(conn, peer.notes)
                peer.notes = []
            if conn.handler is None:  # the handler decided this is not mail
                self._forget(conn)
                return True
        if flags & TCP_ACK and peer.ended and peer.fin_offset is not None \
                and ack == (peer.next_seq or 0) + 1 & 0xFFFFFFFF:
            conn.fin_acked[1 - d] = True
            if conn.closing_since is not None and not conn.reset and conn.fin_acked[0] and conn.fin_acked[1]:
                self._retire(conn, "fin")  # both FINs acknowledged: nothing of this connection is left to come
        return True

    def _new_connection(self, frame: int, ts: float, pkt: TcpPacket, *, stream: int | None = None) -> Connection:
        flags = pkt.flags
        src_is_client = not flags & TCP_ACK if flags & TCP_SYN else not self.server_side(pkt.sport, pkt.dport)
        rkey = pkt.dst + pkt.src + pkt.key[-2:] + pkt.key[-4:-2]
        src = (pkt.src, pkt.sport)
        dst = (pkt.dst, pkt.dport)
        if stream is None:
            stream = self.next_stream
            self.next_stream += 1
        if src_is_client:
            conn = Connection(stream, pkt.key, src, dst, frame, ts, pkt.tunnel)
        else:
            conn = Connection(stream, rkey, dst, src, frame, ts, pkt.tunnel)
        conn.syn_seen = bool(flags & TCP_SYN)
        self.table[pkt.key] = conn
        self.table[rkey] = conn
        handler = self.factory(conn, pkt)
        if handler is not None:
            conn.handler = handler
            self.active[conn.stream] = conn
            if flags & (TCP_SYN | TCP_ACK) == TCP_SYN and not pkt.payload_len:
                self.unanswered[conn.stream] = conn
                if len(self.unanswered) > self.limits.max_unanswered:
                    self._shed_oldest_unanswered()
            if len(self.active) - len(self.unanswered) > self.limits.max_open:  # SYNs alone: their own bound
                self._end_quiet_open(conn)
        if len(self.table) > 2 * self.limits.max_remembered:  # two keys per connection
            self._forget_quiet_tombstones(conn)
        return conn

    def _end_quiet_open(self, new: Connection) -> None:
        """Past ``max_open``: end the tenth of the open connections quiet longest (never the one just
        made), as the idle timeout would; marked ``shed``, so one that sends again is taken up again."""
        unanswered = self.unanswered
        candidates = [c for c in self.active.values() if c is not new and c.stream not in unanswered]
        quiet = sorted(candidates, key=_last_ts)[: max(1, len(candidates) // 10)]
        for conn in quiet:
            conn.shed = True
            self._retire(conn, "timeout")
        self.ended_early += len(quiet)

    def _shed_oldest_unanswered(self) -> None:
        """A flood of SYNs nobody answers: end the oldest, as the capture's end would end it ("open").
        If it turns out real (its client tries again, a SYN/ACK comes), it is taken up again."""
        oldest = self.unanswered.pop(next(iter(self.unanswered)))
        oldest.shed = True
        self._retire(oldest, "open")

    def _forget_quiet_tombstones(self, new: Connection) -> None:
        """Drop the half of the tombstones quiet longest, never the connection just made (amortised: the
        table is walked once per ``max_remembered / 2`` new connections at most)."""
        tombstones = {id(c): c for c in self.table.values() if c.handler is None and c is not new}
        if not tombstones:
            return
        # stable: among equal times, the older connection (the table is in creation order) goes first
        quiet = sorted(tombstones.values(), key=_last_ts)[: max(1, len(tombstones) // 2)]
        gone = {id(c) for c in quiet}
        table = self.table  # in place: the pipeline's fast path holds table.get
        for key in [k for k, c in table.items() if id(c) in gone]:
            del table[key]
        self.forgotten += len(gone)

    def _reassemblers(self, handler: Handler) -> tuple[Reassembler, Reassembler]:
        """A connection's two reassemblers, made lazily: most connections on other ports are let go at
        their first segment (``detect.rejects_first_bytes``) and never need them."""
        lim = self.limits
        pending = lim.max_pending_bytes if handler.tracked else lim.max_sniff_pending_bytes
        budget = self.pending_budget
        recent = self.recent_budget
        return (
            Reassembler(CLIENT, max_pending_bytes=pending, max_pending_segments=lim.max_pending_segments,
                        budget=budget, recent_budget=recent),
            Reassembler(SERVER, max_pending_bytes=pending, max_pending_segments=lim.max_pending_segments,
                        budget=budget, recent_budget=recent),
        )

    # ------------------------------------------------------------------ retiring
    def _retire(self, conn: Connection, close: str) -> None:
        """Finish a tracked connection; it stays in the table as a tombstone for numbering."""
        handler = conn.handler
        if handler is None:
            return
        if conn.rasm is not None:
            items: list[StreamItem] = []
            for r in conn.rasm:
                if not r.ended:
                    items += r.finish(None, conn.last_ts)
            if items:
                handler.items(conn, items)
            if dropped(conn):  # the flushed bytes showed it is not mail after all
                self._forget(conn)
                return
            for r in conn.rasm:
                if r.notes:
                    handler.notes(conn, r.notes)
                    r.notes = []
        self._forget(conn)
        handler.finish(conn, close)

    def _forget(self, conn: Connection) -> None:
        if conn.rasm is not None:
            for r in conn.rasm:
                r.release()
        conn.handler = None
        conn.fast = None
        conn.rasm = None
        self.unanswered.pop(conn.stream, None)
        self.active.pop(conn.stream, None)
        self.closing.pop(conn.stream, None)

    def sweep(self) -> None:
        """Retire lingering and idle connections; drop old tombstones. Cheap: runs once a second; the
        open connections are looked at every ``FlowLimits.idle_check_every`` seconds (30 s by default),
        the whole table every 30 s."""
        now = self.now
        self.next_sweep = now + 1.0
        for conn in list(self.closing.values()):
            if conn.closing_since is not None and now - conn.closing_since >= self.limits.linger:
                self._retire(conn, "rst" if conn.reset else "fin")
        if self.recent_budget.spent:
            self._forget_quiet_recent(now - self.limits.recent_idle)
        quiet = self.tcp_packets - self.limits.idle_min_packets
        if now >= self._next_idle_sweep:
            self._next_idle_sweep = now + self._idle_every
            for conn in list(self.active.values()):
                if now - conn.last_ts >= self.limits.idle_timeout and conn.last_index <= quiet:
                    self._retire(conn, "timeout")
        if now >= self._next_tombstone_sweep:
            self._next_tombstone_sweep = now + TOMBSTONE_SWEEP_EVERY
            ttl = self.limits.tombstone_ttl
            stale = [k for k, c in self.table.items()
                     if c.handler is None and now - c.last_ts >= ttl and c.last_index <= quiet]
            for k in stale:
                del self.table[k]

    def _forget_quiet_recent(self, before: float) -> None:
        """Connections quiet since ``before`` give up the delivered bytes they remember (see ``recent_idle``)."""
        for conn in self.active.values():
            if conn.last_ts <= before and conn.rasm is not None:
                for r in conn.rasm:
                    if r.remembered:
                        r.forget_recent()

    def close_all(self) -> None:
        """End of capture: finish every tracked connection."""
        for conn in list(self.closing.values()):
            self._retire(conn, "rst" if conn.reset else "fin")
        for conn in sorted(self.active.values(), key=lambda c: c.stream):
            self._retire(conn, "open")
        self.table.clear()

    @property
    def open_connections(self) -> int:
        return len(self.active)


def dropped(conn: Connection) -> bool:
    """Whether the handler let go of the connection (a call may do that; mypy cannot see it)."""
    return conn.handler is None
