"""One direction of a TCP connection: segments in capture order → bytes in stream order.

Rules (docs/architecture.md, "TCP reassembly"):

* Sequence numbers are compared modulo 2**32 and mapped onto a 64-bit stream offset, so a
  connection that wraps around 2**32 keeps its order.
* Retransmissions and overlaps: **the first copy wins** (as in Wireshark's and Zeek's default). When
  a later copy of already delivered bytes differs, that is an ``overlap-mismatch`` anomaly.
* Out-of-order segments wait in a buffer bounded by ``max_pending_bytes``/``max_pending_segments``.
  When the buffer is full, or the peer acknowledged bytes the capture never had and then sent data of
  its own, or the direction ends, the hole is delivered as an explicit :class:`StreamGap` of N bytes —
  never zero-filled.
* A segment cut by the snap length delivers what was captured and a gap for the rest.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

from mailtrace.model import ByteBudget, Chunk, Direction, Eof, StreamGap, StreamItem

MOD = 1 << 32
HALF = 1 << 31
MAX_JUMP = 1 << 26
"""A segment or ACK further ahead than this is not believed (bogus, or another connection)."""


def seq_diff(a: int, b: int) -> int:
    """Signed distance a - b in sequence space (mod 2**32)."""
    return ((a - b + HALF) % MOD) - HALF


@dataclass(frozen=True, slots=True)
class ReassemblyNote:
    """Something reassembly noticed that a user should see (an anomaly with its frame)."""

    kind: str
    detail: str
    frame: int
    direction: Direction


RETRANSMISSION = "retransmission"
"""The note kind of a segment that repeats delivered bytes; its detail is the original frame ("0": not
known any more). Not an anomaly: the views mark the row, as Wireshark's [TCP Retransmission]."""


def _piece_offset(piece: tuple[int, bytes, int]) -> int:
    return piece[0]


PIECE_COST = 160
"""What a segment held or remembered costs besides its bytes (its tuple, offset and frame numbers, the bytes
object's header, the slot that holds it): the run's budgets (``FlowLimits.max_pending_all`` and
``max_recent_all``) are charged that much more per segment. Counted by bytes alone, 2,000 SMTP sessions at once
each pipelining one-line commands remembered 8 MiB of bytes in 45 MiB of memory."""


class Reassembler:
    """Per-direction reassembly state. Feed every segment of this direction with :meth:`segment`."""

    __slots__ = (
        "_recent",
        "_recent_bytes",
        "acked_gap_bytes",
        "acked_to",
        "budget",
        "direction",
        "ended",
        "fin_offset",
        "isn",
        "max_pending_bytes",
        "max_pending_segments",
        "next_seq",
        "notes",
        "offset",
        "pending",
        "pending_bytes",
        "recent_budget",
        "retransmitted_bytes",
    )

    RECENT_LIMIT = 64 * 1024
    """Delivered bytes kept to compare retransmissions against (overlap-mismatch detection)."""
    RECENT_PIECES = 256
    """And at most this many segments of them: a segment kept costs ~160 bytes besides its data
    (:data:`PIECE_COST`), so 64 KiB of one-line segments cost 150 KiB a direction, of one-byte segments
    8 MiB (200 sessions sending lines at once held 30 MiB here). Full-size segments reach the byte limit
    first (45 of 1,448 bytes)."""
    RECENT_FLOOR = 2 * 1024
    """What a direction keeps of them while the run's budget of remembered bytes is spent (``recent_budget``,
    ``FlowLimits.max_recent_all``; whole segments: none when the last one alone is longer; counted as they are
    charged, with :data:`PIECE_COST`: one full-size segment, or a dozen one-line ones). 2,000 SMTP sessions open
    at once, each in the middle of its message, remembered 126 MiB; the floor is outside the budget, and 2,048
    connections have two directions each (4 KiB: 16 MiB more). Past it a retransmission of older bytes is still
    recognised and dropped, but its original frame is not named and its bytes are not compared."""

    def __init__(self, direction: Direction, *, max_pending_bytes: int = 2 * 1024 * 1024,
                 max_pending_segments: int = 2048, budget: ByteBudget | None = None,
                 recent_budget: ByteBudget | None = None) -> None:
        self.direction = direction
        self.budget = budget if budget is not None else ByteBudget(1 << 62)
        """Out-of-order bytes all the run's reassemblers may hold together (``FlowLimits.max_pending_all``):
        each direction may hold 2 MiB, and 2,048 connections may be open at once, so hundreds of connections
        each with a lost segment and no ACKs to show it (a one-sided capture) could hold gigabytes. Past it
        the direction that adds gives up its hole as if its own buffer were full. (A reassembler of its own:
        no bound beyond its own.)"""
        self.recent_budget = recent_budget if recent_budget is not None else ByteBudget(1 << 62)
        """Likewise for the delivered bytes remembered (:meth:`_remember`, :attr:`RECENT_FLOOR`)."""
        self.isn: int | None = None
        self.next_seq: int | None = None  # next expected 32-bit sequence number
        self.offset = 0  # stream offset (64-bit) of next_seq
        self.pending: dict[int, tuple[bytes, int, int, float, int]] = {}
        """stream offset → (captured bytes, wire length, frame, ts, fin flag)"""
        self.pending_bytes = 0
        self.max_pending_bytes = max_pending_bytes
        self.max_pending_segments = max_pending_segments
        self.fin_offset: int | None = None
        self.ended = False
        self.retransmitted_bytes = 0
        self.acked_gap_bytes = 0
        self.acked_to = 0
        self._recent: list[tuple[int, bytes, int]] = []
        """(stream offset, bytes, frame) of what was delivered last (a list: an empty deque is 760 bytes, and
        2,048 connections have two each; the old ones leave a slice at a time)."""
        self._recent_bytes = 0
        self.notes: list[ReassemblyNote] = []

    # ------------------------------------------------------------------ input
    def segment(self, seq: int, payload: bytes, wire_len: int, syn: bool, fin: bool,
                frame: int, ts: float) -> list[StreamItem]:
        """Take one segment of this direction; return what became deliverable, in order."""
        if seq == self.next_seq and wire_len == len(payload) and wire_len and not (syn or fin or self.pending) \
                and self.fin_offset is None and not self.ended:
            self.take(payload, wire_len, frame)  # the common case, kept short
            return [Chunk(self.direction, payload, ts, frame)]
        if not wire_len and seq == self.next_seq and not (syn or fin or self.pending) \
                and self.fin_offset is None and not self.ended:
            return []  # a bare ACK in sequence (a third of all packets): nothing to deliver or check
        if self.next_seq is None:
            self.isn = seq
            self.next_seq = (seq + 1) % MOD if syn else seq
            if syn and not wire_len and not fin:
                return []
        elif syn:
            if seq_diff(seq, self.isn or 0) == 0 and self.offset == 0:
                return []  # retransmitted SYN
            seq = (seq + 1) % MOD  # data on a SYN starts after it
        if self.ended:
            return []
        assert self.next_seq is not None
        rel = seq_diff(seq, self.next_seq)
        if rel > MAX_JUMP:
            self.notes.append(ReassemblyNote(
                "sequence-jump", f"segment {rel} bytes ahead of the stream ignored (not this connection?)",
                frame, self.direction))
            return []
        start = self.offset + rel
        if fin:
            fin_at = start + wire_len
            if self.fin_offset is None or fin_at < self.fin_offset:
                self.fin_offset = fin_at
        out: list[StreamItem] = []
        if wire_len:
            if rel > 0:
                self._hold(start, payload, wire_len, frame, ts)
            else:
                self._deliver(start, payload, wire_len, frame, ts, out)
                self._drain(out)
        self._check_end(frame, ts, out)
        if not out and self.pending and self._pending_over_limit():
            self._skip_hole(frame, ts, out)
        return out

    def take(self, payload: bytes, wire_len: int, frame: int) -> None:
        """Deliver the common segment of :meth:`segment`: the next bytes in order, whole, nothing held, no
        SYN or FIN, the direction not ending (the flow table's fast path checks that and makes the
        stream item itself)."""
        self._remember(self.offset, payload, frame)
        self.offset += wire_len
        self.next_seq = (self.next_seq + wire_len) & 0xFFFFFFFF  # type: ignore[operator]

    def acked(self, ack: int) -> None:
        """The peer acknowledged up to ``ack``. Bytes before it that we lack were received by the peer
        but not captured — or are still to come: captures merged from two taps often show the ACK
        before the data. So only remember it; :meth:`flush_acked` declares the hole lost once the peer
        sends data of its own (which it produced after receiving ours)."""
        if self.next_seq is None or self.ended or ack == self.next_seq:
            return
        rel = ((ack - self.next_seq + HALF) & 0xFFFFFFFF) - HALF
        if rel <= 0 or rel > MAX_JUMP:
            return
        target = self.offset + rel
        if self.fin_offset is not None and target > self.fin_offset:
            target = self.fin_offset  # the ACK of a FIN counts one for the FIN itself
        self.acked_to = max(self.acked_to, target)

    def flush_acked(self, frame: int, ts: float) -> list[StreamItem]:
        """Declare the acknowledged holes lost and deliver what waited behind them."""
        target = self.acked_to
        if target <= self.offset or self.ended:
            return []
        out: list[StreamItem] = []
        while self.offset < target and not self.ended:
            self._drain(out)
            if self.offset >= target:
                break
            nxt = min(self.pending) if self.pending else target
            size = min(nxt, target) - self.offset
            self.acked_gap_bytes += size
            self._gap(size, frame, ts, out)
        self._drain(out)
        self._check_end(frame, ts, out)
        return out

    def finish(self, frame: int | None, ts: float, reset: bool = False) -> list[StreamItem]:
        """The direction ends (RST, end of capture, idle timeout): flush what is held, with gaps."""
        out: list[StreamItem] = []
        if self.ended:
            return out
        while self.pending:
            nxt = min(self.pending)
            if nxt > self.offset:
                self._gap(nxt - self.offset, frame or 0, ts, out)
            self._drain(out)
        if self.fin_offset is not None and self.fin_offset > self.offset and not reset:
            self._gap(self.fin_offset - self.offset, frame or 0, ts, out)
        self.ended = True
        out.append(Eof(self.direction, ts, frame, reset))
        return out

    # ------------------------------------------------------------------ internals
    def _deliver(self, start: int, payload: bytes, wire_len: int, frame: int, ts: float,
                 out: list[StreamItem]) -> None:
        """Deliver a segment that starts at or before the current offset (trim the old part)."""
        skip = self.offset - start
        if skip >= wire_len:
            self.retransmitted_bytes += wire_len
            self._compare_old(start, payload, frame)
            if wire_len and not (wire_len == 1 and start == self.offset - 1):  # a keep-alive is no copy
                self._repeated(frame, self._frame_of(start))
            return
        if skip > 0:
            self.retransmitted_bytes += skip
            self._compare_old(start, payload[:skip], frame)
        captured = payload[skip:] if skip > 0 else payload
        new_len = wire_len - max(skip, 0)
        if captured:
            out.append(Chunk(self.direction, captured, ts, frame))
            self._remember(self.offset, captured, frame)
            self._advance(len(captured))
        missing = new_len - len(captured)
        if missing > 0:  # cut by the snap length
            self._gap(missing, frame, ts, out)

    def _hold(self, start: int, payload: bytes, wire_len: int, frame: int, ts: float) -> None:
        old = self.pending.get(start)
        if old is not None:
            if old[1] >= wire_len:
                self.retransmitted_bytes += wire_len
                if wire_len:
                    self._repeated(frame, old[2])
                return
            self.pending_bytes -= len(old[0])
            self.budget.held -= len(old[0]) + PIECE_COST
        self.pending[start] = (payload, wire_len, frame, ts, 0)
        self.pending_bytes += len(payload)
        self.budget.held += len(payload) + PIECE_COST

    def _pending_over_limit(self) -> bool:
        return self._own_buffer_full() or self.budget.spent

    def _own_buffer_full(self) -> bool:
        return self.pending_bytes > self.max_pending_bytes or len(self.pending) > self.max_pending_segments

    @property
    def remembered(self) -> int:
        """Delivered bytes remembered to compare retransmissions against."""
        return self._recent_bytes

    def forget_recent(self) -> None:
        """Stop remembering the delivered bytes (its connection has been quiet while the run's budget of them is
        spent: ``FlowLimits.recent_idle``): a retransmission of them is still recognised, without its frame."""
        self.recent_budget.held -= self._recent_bytes + PIECE_COST * len(self._recent)
        self._recent.clear()
        self._recent_bytes = 0

    def release(self) -> None:
        """The connection is let go: the segments it still held and the bytes it remembered leave the run's
        budgets with it."""
        self.budget.held -= self.pending_bytes + PIECE_COST * len(self.pending)
        self.pending.clear()
        self.pending_bytes = 0
        self.forget_recent()

    def _drain(self, out: list[StreamItem]) -> None:
        """Deliver held segments that have become contiguous."""
        pending = self.pending
        while pending:
            nxt = min(pending)
            if nxt > self.offset:
                return
            payload, wire_len, frame, ts, _ = pending.pop(nxt)
            self.pending_bytes -= len(payload)
            self.budget.held -= len(payload) + PIECE_COST
            self._deliver(nxt, payload, wire_len, frame, ts, out)

    def _skip_hole(self, frame: int, ts: float, out: list[StreamItem]) -> None:
        """The out-of-order buffer is full: give up waiting for the hole and move on."""
        nxt = min(self.pending)
        limit = "out-of-order buffer limit reached" if self._own_buffer_full() \
            else f"the limit for all connections together ({self.budget.size:,} bytes) reached"
        self.notes.append(ReassemblyNote(
            "reorder-buffer-full",
            f"{limit} ({self.pending_bytes} bytes in {len(self.pending)} segments); "
            f"{nxt - self.offset} missing bytes declared lost",
            frame, self.direction))
        self._gap(nxt - self.offset, frame, ts, out)
        self._drain(out)

    def _gap(self, nbytes: int, frame: int, ts: float, out: list[StreamItem]) -> None:
        out.append(StreamGap(self.direction, nbytes, ts, frame))
        self._advance(nbytes)

    def _advance(self, nbytes: int) -> None:
        """Move the stream offset and the expected sequence number together."""
        self.offset += nbytes
        assert self.next_seq is not None
        self.next_seq = (self.next_seq + nbytes) % MOD

    def _check_end(self, frame: int, ts: float, out: list[StreamItem]) -> None:
        if self.fin_offset is not None and self.offset >= self.fin_offset and not self.ended:
            self.ended = True
            out.append(Eof(self.direction, ts, frame, False))

    def _remember(self, offset: int, data: bytes, frame: int) -> None:
        self._recent.append((offset, data, frame))
        size = len(data)
        self._recent_bytes += size
        shared = self.recent_budget
        shared.held += size + PIECE_COST
        if self._recent_bytes > self.RECENT_LIMIT or len(self._recent) > self.RECENT_PIECES \
                or shared.held > shared.size:  # not .spent: a property is a call per segment
            self._trim_recent()

    def _trim_recent(self) -> None:
        recent = self._recent
        shared = self.recent_budget
        # within the run's budget at least the last segment stays, whatever its length; past it only
        # what fits in the floor, counted as charged (bytes and PIECE_COST each)
        least, floor = (0, self.RECENT_FLOOR) if shared.spent else (1, 1 << 62)
        kept = len(recent)
        first = 0
        while (self._recent_bytes > self.RECENT_LIMIT or kept > self.RECENT_PIECES
               or self._recent_bytes + PIECE_COST * kept > floor) and kept > least:
            size = len(recent[first][1])
            first += 1
            kept -= 1
            self._recent_bytes -= size
            shared.held -= size + PIECE_COST
        if first:
            del recent[:first]

    def _frame_of(self, offset: int) -> int:
        """The frame that delivered the byte at ``offset`` (0 when it is no longer remembered). The
        remembered pieces are in stream order: found by bisection (a walk over all of them made a run
        of one-byte retransmissions or zero-window probes quadratic)."""
        recent = self._recent
        i = bisect_right(recent, offset, key=_piece_offset) - 1  # pieces are in stream order
        if i >= 0:
            off, kept, frame = recent[i]
            if off <= offset < off + len(kept):
                return frame
        return 0

    def _repeated(self, frame: int, original: int) -> None:
        """A segment that only repeats bytes already seen: a retransmission (as Wireshark marks it).

        Only a copy that came after the original is one: a segment held out of order and then covered by
        a later, repacketised retransmission is the first copy, not a repeat of the later one."""
        if original == 0 or frame > original:
            self.notes.append(ReassemblyNote(RETRANSMISSION, str(original), frame, self.direction))

    def _compare_old(self, start: int, data: bytes, frame: int) -> None:
        """A retransmitted copy of delivered bytes: the first copy won; flag it if they differ."""
        if not data:
            return
        end = start + len(data)
        recent = self._recent
        for j in range(max(0, bisect_right(recent, start, key=_piece_offset) - 1), len(recent)):
            off, kept, _ = recent[j]  # only the pieces the copy overlaps (see _frame_of)
            if off >= end:
                break
            lo = max(off, start)
            hi = min(off + len(kept), end)
            if lo < hi and kept[lo - off : hi - off] != data[lo - start : hi - start]:
                self.notes.append(ReassemblyNote(
                    "overlap-mismatch",
                    f"a retransmitted segment carries different bytes at stream offset {lo}; "
                    "the first copy was kept",
                    frame, self.direction))
                return

    @property
    def next_offset(self) -> int:
        return self.offset
