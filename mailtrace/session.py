"""Folds a connection's packets and dissector events into a :class:`Session` — pure, no I/O.

Every packet becomes a row (TCP control packets too), and every event is attached to the row of
the frame that completed it, so a renderer can print a Wireshark-style table whose numbers and
times match the capture. Rows carry the phase of their first event (or of the moment, for pure
ACKs); consecutive rows of one phase form the phase blocks of the report. Messages stream through
the message pipeline (:mod:`mailtrace.mime`) as their bytes arrive; only the summary is kept.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import itertools
import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from mailtrace.capture.decode import TCP_FIN, TCP_RST, TCP_SYN
from mailtrace.mime import MessageSummarizer, MessageSummary, MimeLimits, PartWriter
from mailtrace.model import (
    LISTED_CHARGED_KEY,
    LISTED_REFUSED_KEY,
    Anomaly,
    AuthAttempt,
    BodyData,
    ByteBudget,
    Chunk,
    Command,
    Direction,
    Endpoint,
    Event,
    GapEvent,
    MessageData,
    MessageEnd,
    Note,
    Phase,
    Reply,
    StreamGap,
    StreamItem,
    TlsStart,
)

if TYPE_CHECKING:
    from mailtrace.context.model import ContextCheck, ContextObservation

_CLIENT = Direction.CLIENT
_SYN_FIN_RST = TCP_SYN | TCP_FIN | TCP_RST

_FRAME, _TS, _DIRECTION, _FLAGS, _PAYLOAD_LEN, _PHASE, _EVENTS, _DECRYPTED, _BODY_BYTES = range(9)
"""Where the fields of :class:`PacketRow` are in the plain lists the session builder keeps."""
_row_frame = operator.itemgetter(_FRAME)
_item_start = operator.itemgetter(0)

CLOCK_JUMP_SECONDS = 86_400.0
"""A frame stamped this much before an earlier frame of its session: one of them has a wrong clock
(mercury's imap2 capture has a SYN/ACK dated 2063 between frames of 2015). When the session ends its
frames are grouped by time (a gap of this much splits two groups); the largest group is the session's
clock, the others are named in an anomaly and left out of the start, end and duration. A capture whose
times only go forward keeps its whole span: frames of 2009 followed by frames of 2023 are what the file
says, not one frame with a wrong clock."""

ROW_GRANT = 1_024
"""Most rows a builder takes from the run's row budget at a time: a call per thousand rows, not a test per
row. The first grant is :data:`FIRST_ROW_GRANT` and each doubles the last: most sessions are short, and up to
2,048 are open at once (a SYN flood's sessions are a row each)."""
FIRST_ROW_GRANT = 16
ROW_FLOOR = 16
"""Rows every session keeps whatever the budget has left: its setup, greeting and first exchanges, so
that no view or finding reads a session that kept nothing (a few long sessions open all day could
otherwise leave none to those that come later). Bounded by the flow table's 2,048 open connections
(~13 MiB; at 64 rows, 2,000 sessions at once each in the middle of a message held 26 MiB of them); the
budget grants rows past them."""
WAITING_BYTES_ALL = 4 * 1024 * 1024
"""Message content held back so that it is worked on in larger pieces, all connections of a run together:
what a connection gathers for its dissector (``connection.BULK_BYTES``, 64 KiB), what a message summariser
gathers for a scan (``mime._BLOCK``, 64 KiB), a header line it holds until its end (``MimeLimits.max_line``;
past the budget ``max_field_bytes``, or ``mime.HEADER_FLOOR`` for a line already seen to be a header field)
and the header fields it keeps (past the budget its first ``HEADER_FLOOR``). Each is bounded per message, but
2,048 connections may be open at once: 2,000 SMTP sessions each in the middle of its message held 250 MiB that
way. Past it each works on what it has as it comes: the same events and MIME structure (both are
split-invariant), a little slower, but the summaries keep less of long headers: a long header line is cut
("line too long") and later fields are dropped ("header too long"), reserved ones (From, Subject,
Content-Type...) aside."""
UNREAD_BYTES_ALL = 4 * 1024 * 1024
"""What the dissectors of a run hold before they can read it, together: lines still being read, past their
first KiB (``protocols.base.LINE_FLOOR``), and a client's bytes held until the reply that says how to read
them (``DissectorLimits.max_wait_bytes``, 256 KiB a connection). See ``protocols.base.WaitCharge``."""
LISTED_BYTES_ALL = 4 * 1024 * 1024
"""The default of ``SessionLimits.max_listed_bytes_all``."""
MAX_ELIDED_SPANS = 8
"""Spans of time kept for the rows past the row limit; a frame far from all of them joins the nearest."""

LOGIN_OUTCOMES = {True: "succeeded", False: "failed", None: "unknown"}
"""A login attempt's ``success`` as the statistics and ``logins_dropped`` name it."""

SIDE_EVENTS = frozenset({Anomaly, GapEvent})
"""Events that do not decide a row's phase (they can happen in any phase)."""


@dataclass(slots=True)
class PacketRow:
    """One packet of the session, as a row of the trace table."""

    frame: int
    ts: float
    direction: Direction
    flags: int
    payload_len: int
    phase: Phase
    events: list[Event] | None = None
    decrypted: bool = False
    body_bytes: int = 0
    """Message bytes this packet carried (DATA/BDAT body, RETR/TOP response, FETCH/APPEND literal)."""

    def __reduce__(self) -> tuple[type[PacketRow], tuple[Any, ...]]:
        """Pickled as its fields in order: rows are most of what a session sends to the report process
        (mailtrace/forked.py), and this halves their size and the time to pickle them."""
        return (PacketRow, (self.frame, self.ts, self.direction, self.flags, self.payload_len, self.phase,
                            self.events, self.decrypted, self.body_bytes))

    @property
    def is_pure_ack(self) -> bool:
        return not self.payload_len and not (self.flags & (TCP_SYN | TCP_FIN | TCP_RST)) and not self.events

    @property
    def message_bytes(self) -> int:
        """Message bytes the packet carried, as the views count them: ``body_bytes``, or the sizes of
        its BodyData events (IMAP literals); none for a packet without payload, even when a message
        held back was flushed at it (a FIN or RST in the middle of DATA)."""
        if not self.payload_len:
            return 0
        if self.body_bytes:
            return self.body_bytes
        events = self.events
        return sum(e.nbytes for e in events if isinstance(e, BodyData)) if events else 0


@dataclass(frozen=True, slots=True)
class PhaseBlock:
    """A run of consecutive rows in one phase."""

    phase: Phase
    first_frame: int
    last_frame: int
    first_row: int
    last_row: int

    def __reduce__(self) -> tuple[type[PhaseBlock], tuple[Phase, int, int, int, int]]:
        """Pickled as its fields (a frozen slotted dataclass otherwise pickles through a Python
        ``__getstate__`` that looks up its fields on every call): a session sends ~5 to the report process."""
        return (PhaseBlock, (self.phase, self.first_frame, self.last_frame, self.first_row, self.last_row))


@dataclass(frozen=True, slots=True)
class GapInfo:
    direction: Direction
    nbytes: int
    frame: int


@dataclass(frozen=True, slots=True)
class TranscriptPiece:
    """Reassembled stream bytes for ``--follow`` (before TLS and proxy handling, as on the wire)."""

    direction: Direction
    frame: int
    ts: float
    data: bytes
    gap: int = 0
    """Bytes missing here (then ``data`` is empty)."""
    decrypted: bool = False
    """Plaintext the TLS layer decrypted (the wire bytes it came in are pieces of their own)."""


@dataclass
class MessageRecord:
    """A message the session carried, with where it was seen."""

    index: int
    origin: str
    summary: MessageSummary
    first_frame: int
    last_frame: int
    direction: Direction
    detail: dict[str, Any] = field(default_factory=dict)

    def __reduce__(self) -> tuple[type[MessageRecord], tuple[Any, ...]]:
        """Pickled as its fields (a dataclass's own way writes its ``__dict__`` with every key)."""
        return (MessageRecord, _record_fields(self))


_record_fields = operator.attrgetter(*(f.name for f in dataclasses.fields(MessageRecord)))


class MessageSink(Protocol):
    """Receives a message's bytes as they stream (used by ``extract`` to write .eml files).

    A sink may also have a method ``on_part(start: PartStart) -> PartWriter | None``: the session's
    own summarizer then calls it for every leaf part and writes the part's decoded bytes to the
    writer it returns (so attachments are saved without decoding the message twice).
    """

    def write(self, data: bytes) -> None: ...

    def close(self, record: MessageRecord) -> None: ...


MessageSinkFactory = Callable[["SessionBuilder", str], MessageSink | None]


class _TeeSink:
    """Two sinks fed the same message (e.g. ``--html --embed-attachments`` next to an extractor)."""

    def __init__(self, a: MessageSink, b: MessageSink) -> None:
        self.sinks = (a, b)
        hooks = [h for h in (getattr(a, "on_part", None), getattr(b, "on_part", None)) if h is not None]
        if hooks:
            self.on_part = lambda start: _tee_parts([h(start) for h in hooks])

    def write(self, data: bytes) -> None:
        for sink in self.sinks:
            sink.write(data)

    def close(self, record: MessageRecord) -> None:
        for sink in self.sinks:
            sink.close(record)


class _TeePart:
    def __init__(self, writers: list[PartWriter]) -> None:
        self.writers = writers

    def write(self, data: bytes, /) -> object:
        for w in self.writers:
            w.write(data)
        return None

    def close(self) -> object:
        for w in self.writers:
            w.close()
        return None


def _tee_parts(writers: list[PartWriter | None]) -> PartWriter | None:
    kept = [w for w in writers if w is not None]
    return kept[0] if len(kept) == 1 else (_TeePart(kept) if kept else None)


def tee(a: MessageSinkFactory | None, b: MessageSinkFactory | None) -> MessageSinkFactory | None:
    """One sink factory that feeds both (either may be None)."""
    if a is None or b is None:
        return a or b

    def both(builder: SessionBuilder, origin: str) -> MessageSink | None:
        x, y = a(builder, origin), b(builder, origin)
        if x is None or y is None:
            return x or y
        return _TeeSink(x, y)

    return both


@dataclass
class Session:
    """Everything known about one mail session. Renderers read this; nothing re-parses packets."""

    id: int
    protocol: str
    client: Endpoint
    server: Endpoint
    stream: int
    file: str
    tunnel: str | None
    start: float
    end: float
    packets: int
    tls: str
    close: str
    first_frame: int
    last_frame: int
    rows: list[PacketRow]
    commands: list[Command]
    replies: list[Reply]
    auth: list[AuthAttempt]
    messages: list[MessageRecord]
    anomalies: list[Anomaly]
    gaps: list[GapInfo]
    record: dict[str, Any]
    bytes_client: int = 0
    bytes_server: int = 0
    rows_elided: int = 0
    events_dropped: int = 0
    """Commands and replies over the session's or the run's limit (SessionLimits): counted, not kept."""
    anomalies_dropped: int = 0
    """Anomalies over ``SessionLimits.max_anomalies``: counted, not kept."""
    notes_dropped: int = 0
    """Row notes over ``SessionLimits.max_notes`` (IDLE news, TLS messages and alerts): counted, not kept."""
    messages_dropped: int = 0
    """Messages past ``SessionLimits.max_messages``: counted, not kept (``extract`` still writes them)."""
    messages_dropped_by_origin: dict[str, int] = field(default_factory=dict)
    """Those messages by origin (``pop3-retr``, ``imap-fetch``, ...), so that the statistics count them."""
    messages_dropped_complete: int = 0
    """Of those messages, the ones that came whole."""
    logins_dropped: dict[str, int] = field(default_factory=dict)
    """Login attempts over ``SessionLimits.max_logins``, by outcome (``succeeded``, ``failed``, ``unknown``;
    ``cancelled`` counts those of the failed the client cancelled)."""
    decrypted: bool = False
    tls_info: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    transcript: list[TranscriptPiece] = field(default_factory=list)
    transcript_truncated: int = 0
    """Bytes of the streams not kept in ``transcript`` (over ``max_transcript_bytes``, or the run's
    ``max_transcript_bytes_all``)."""
    context: list[ContextObservation] = field(default_factory=list)
    """DNS transactions and ident probes made for this session, in frame order (mailtrace.context)."""
    context_checks: list[ContextCheck] = field(default_factory=list)
    """What the context shows: forward-confirmed rDNS, HELO, MX routing, NXDOMAIN behind a refusal."""
    context_dropped: int = 0
    """Context observations over ``ContextLimits.max_per_session`` (counted, not kept)."""
    retransmissions: dict[int, int] = field(default_factory=dict)
    """Frames that only repeated bytes already seen → the frame that first carried them (0: not known
    any more); as many as the session keeps rows."""
    listed_dropped: int = 0
    """Entries of the protocol's record lists (recipients, transactions, LIST tables, IMAP timelines...) not
    listed because what all sessions at once list was spent (``SessionLimits.max_listed_bytes_all``); each
    list's own count of them says which."""
    listed_bytes: int = 0
    """What the session's lists took from the run's budget of them: given back when it is reported."""

    @property
    def phases(self) -> list[PhaseBlock]:
        """Consecutive rows of one phase. Made from the rows when first read: the dissecting process of a
        two-process run neither makes nor sends them (mailtrace/forked.py)."""
        state = self.__dict__
        blocks: list[PhaseBlock] | None = state.get("_phases")
        if blocks is None:
            blocks = state["_phases"] = _phase_blocks(state["_raw_rows"])
        return blocks

    @property
    def row_count(self) -> int:
        """``len(rows)``, without making the rows."""
        return len(self.__dict__["_raw_rows"])

    def frame_time(self, frame: int) -> float | None:
        """The capture time of ``frame`` when the session kept its row (rows are in frame order)."""
        raw = self.__dict__["_raw_rows"]
        i = bisect.bisect_left(raw, frame, key=_row_frame)
        return raw[i][_TS] if i < len(raw) and raw[i][_FRAME] == frame else None

    def row_events(self) -> Iterator[Event]:
        """The events on the kept rows, in row order (without making the rows)."""
        for row in self.__dict__["_raw_rows"]:
            if row[_EVENTS]:
                yield from row[_EVENTS]

    def rows_from(self, frame: int) -> tuple[int, int]:
        """How many kept rows are at or after ``frame``, and the payload bytes they carried."""
        count = payload = 0
        for row in self.__dict__["_raw_rows"]:
            if row[_FRAME] >= frame:
                count += 1
                payload += row[_PAYLOAD_LEN]
        return count, payload

    def __reduce__(self) -> tuple[Callable[..., Session], tuple[dict[str, Any], list[list[Any]]]]:
        """Pickled as its fields with the rows as plain lists, as the builder keeps them (mailtrace/forked.py
        sends every session to the report process, which makes the rows only if it reads them):
        pickling a :class:`PacketRow` costs a Python call to its ``__reduce__``, two memo entries and the
        checks of the reduce protocol; a list is written by the pickler's own loop."""
        state = self.__dict__.copy()
        state.pop("_rows", None)
        state.pop("_phases", None)
        return (_unpickle_session, (state, state.pop("_raw_rows")))

    @property
    def user(self) -> str | None:
        ok = [a.sent_username for a in self.auth if a.success and a.sent_username]
        if ok:
            return ok[-1]
        tried = [a.sent_username for a in self.auth if a.sent_username]  # not a command read as a name
        if tried:
            return tried[-1]
        value = self.record.get("user")
        return value if isinstance(value, str) else None

    @property
    def message_total(self) -> int:
        """Messages the session carried: those listed in ``messages`` and those past the limit."""
        return len(self.messages) + self.messages_dropped

    @property
    def logins_dropped_total(self) -> int:
        """Login attempts past the session's limit (``logins_dropped``, its outcomes added up)."""
        return sum(self.logins_dropped.get(outcome, 0) for outcome in LOGIN_OUTCOMES.values())

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)

    @property
    def helo(self) -> str | None:
        value = self.record.get("helo")
        return value if isinstance(value, str) else None


def _unpickle_session(state: dict[str, Any], raw: list[list[Any]]) -> Session:
    session = Session.__new__(Session)
    session.__dict__.update(state)
    return _with_raw_rows(session, raw)


def _with_raw_rows(session: Session, raw: list[list[Any]]) -> Session:
    """``session`` with its rows as the builder's plain lists (the fields of :class:`PacketRow` in order).

    The lists are what a session holds; the :class:`PacketRow` objects are made from them when ``rows``
    is first read, and so are the ``phases``. The dissecting process of a two-process run never reads
    them (it sends the lists as they are, ``Session.__reduce__``), and the JSON report reads only what
    ``frame_time``, ``row_events`` and ``rows_from`` take from the lists. Rows are not changed once the
    session is built."""
    session.__dict__.pop("_rows", None)
    session.__dict__.pop("_phases", None)
    session.__dict__["_raw_rows"] = raw
    return session


def _get_rows(session: Session) -> list[PacketRow]:
    state = session.__dict__
    rows: list[PacketRow] | None = state.get("_rows")
    if rows is None:
        rows = state["_rows"] = list(itertools.starmap(PacketRow, state["_raw_rows"]))
    return rows


def _set_rows(session: Session, rows: list[PacketRow]) -> None:
    _with_raw_rows(session, [[r.frame, r.ts, r.direction, r.flags, r.payload_len, r.phase, r.events, r.decrypted,
                              r.body_bytes] for r in rows])
    session.__dict__["_rows"] = rows


# ``rows`` is a property over the dataclass field (the generated ``__init__`` stores through it): the
# PacketRow objects are made on first use from the plain lists the builder keeps (see _with_raw_rows).
# A property and not ``__getattr__``: a class with ``__getattr__`` loses the interpreter's fast path for
# every attribute read of its instances (about +300 instructions each), the report side reads thousands.
setattr(Session, "rows", property(_get_rows, _set_rows, doc="The packets' rows (see :class:`PacketRow`)."))  # noqa: B010


@dataclass(frozen=True, slots=True)
class SessionLimits:
    max_rows: int = 20_000
    """Rows kept per session; the packets beyond it are counted (``rows_elided``), their events not kept."""
    max_rows_all: int = 100_000
    """Rows kept by all the sessions not yet reported, together (~200 bytes each; see :class:`EventBudget`):
    200 SMTP sessions at once each sending 10,000 segments took 520 MiB. Twice ``Config.max_reorder_rows``:
    the finished sessions waiting for their turn may hold that many, and the open ones need rows too."""
    max_events: int = 200_000
    """Commands kept per session, and replies; the rest are counted (``events_dropped``), not kept."""
    max_events_all: int = 50_000
    """Commands and replies kept by all the sessions not yet reported, together (see :class:`EventBudget`)."""
    max_listed_bytes_all: int = LISTED_BYTES_ALL
    """What the lists of the dissectors' records (SMTP recipients and transactions, POP3 LIST/UIDL tables, IMAP
    timelines, fetches, folders...) of all sessions not yet reported may take together, as charged by
    ``protocols.base.ListCharge`` (an entry ~200 bytes and its text: ~35,000 recipients). Each list has its own
    limit per session, but 2,000 SMTP sessions open at once each sending 100 RCPTs held 55 MiB of them. Past it
    an entry is counted, not listed (``rcpt_dropped``, the ``dropped`` of the ``pop3`` and ``imap`` blocks;
    ``listed_dropped`` of the session), and the view says so."""
    max_anomalies: int = 1_000
    """Anomalies kept per session; the rest are counted (``anomalies_dropped``)."""
    max_messages: int = 10_000
    """Message records kept per session (a POP3 session of 50,000 tiny RETRs took 389 MiB); the rest are
    counted (``messages_dropped``) — their bytes still reach the sinks: ``extract`` writes every message."""
    max_logins: int = 10_000
    """Login attempts kept per session; the rest are tallied by outcome (``logins_dropped``), so that the
    statistics and the brute-force finding still count them."""
    max_notes: int = 2_000
    """Notes on the packet rows per session (IMAP IDLE news, TLS handshake messages and alerts); the rest
    are counted (``notes_dropped``)."""
    keep_transcript: bool = False
    """Keep the raw stream bytes for ``--follow`` (off unless asked: it costs memory)."""
    max_transcript_bytes: int = 16 * 1024 * 1024
    max_transcript_bytes_all: int = 256 * 1024 * 1024
    """Stream bytes kept for ``--follow`` by all the sessions not yet reported, together."""


class EventBudget:
    """The commands and replies (and, for ``--follow``, stream bytes) all sessions of a run may keep while
    they are not reported yet.

    ``max_events`` bounds one session; this bounds their sum, so that a capture of many sessions each
    flooding lines at once (an IMAP server sending ``* 5 EXISTS`` by the hundred thousand on eight
    connections: a 35 MB capture took 690 MiB) cannot make the analyzer's memory grow with its size. A
    builder takes one per event it keeps; the analyzer gives them back as each session is reported.
    Transcript bytes work the same way (16 MiB per session, but up to 2,048 sessions are open at once), and
    packet rows (20,000 per session: 200 sessions at once each sending 10,000 segments took 520 MiB);
    builders keep :data:`ROW_FLOOR` rows each outside it, take the rest in grants (:data:`FIRST_ROW_GRANT`,
    doubling up to :data:`ROW_GRANT`) and give back what they did not use when they finish."""

    __slots__ = ("left", "listed", "rows_floor", "rows_left", "rows_size", "size", "transcript_left",
                 "transcript_size", "unread", "waiting")

    def __init__(self, size: int, transcript_size: int, rows_size: int, rows_floor: int = ROW_FLOOR,
                 listed_size: int = LISTED_BYTES_ALL) -> None:
        self.waiting = ByteBudget(WAITING_BYTES_ALL)
        """Message content held back to be worked on in larger pieces, by all connections and message
        summarisers together (see :data:`WAITING_BYTES_ALL`)."""
        self.unread = ByteBudget(UNREAD_BYTES_ALL)
        """What the dissectors hold unread, together (see :data:`UNREAD_BYTES_ALL`; the analyzer hands it to
        them in ``DissectorLimits.unread_budget``)."""
        self.listed = ByteBudget(listed_size)
        """What the dissectors' record lists take, together (``SessionLimits.max_listed_bytes_all``; the analyzer
        hands it to them in ``DissectorLimits.listed_budget``). Given back as each session is reported."""
        self.size = size
        self.left = size
        self.transcript_size = transcript_size
        self.transcript_left = transcript_size
        self.rows_size = rows_size
        self.rows_left = rows_size
        self.rows_floor = rows_floor
        """Rows each session keeps outside the budget (:data:`ROW_FLOOR`, or its own limit if lower)."""

    @classmethod
    def of(cls, limits: SessionLimits) -> EventBudget:
        return cls(limits.max_events_all, limits.max_transcript_bytes_all, limits.max_rows_all,
                   min(ROW_FLOOR, limits.max_rows), limits.max_listed_bytes_all)

    def give_back(self, session: Session) -> None:
        self.left = min(self.size, self.left + len(session.commands) + len(session.replies))
        self.rows_left = min(self.rows_size, self.rows_left + max(0, session.row_count - self.rows_floor))
        self.listed.held -= session.listed_bytes
        if session.transcript:
            kept = sum(len(piece.data) for piece in session.transcript)
            self.transcript_left = min(self.transcript_size, self.transcript_left + kept)

    def refill(self) -> None:
        """A new capture file: every session of the last one was reported."""
        self.waiting.held = 0
        self.unread.held = 0
        self.listed.held = 0
        self.left = self.size
        self.transcript_left = self.transcript_size
        self.rows_left = self.rows_size


def kept_summary(summary: MessageSummary) -> MessageSummary:
    """What a session keeps of a message's summary: what its views show, not the message bytes (those
    went to the sinks). The session's summarisers make it directly (``MessageSummarizer(keep=False)``,
    which tests/test_mime.py checks against this)."""
    if summary.kept or summary.text_preview:
        return dataclasses.replace(summary, kept=b"", text_preview="")
    return summary


class Unsummarized:
    """Stands in for the summariser while another process summarises the message (``Config.summarize``
    False): the bytes are only counted by the sink, and the summary is that of an empty message that
    keeps whether the message was complete and how much was missing."""

    def __init__(self, limits: MimeLimits) -> None:
        self.limits = limits

    def feed(self, data: bytes) -> None:
        pass

    def close(self, *, complete: bool = True, missing_bytes: int = 0) -> MessageSummary:
        return _empty_summary(self.limits, complete, missing_bytes)


@functools.lru_cache(maxsize=64)
def _empty_summary(limits: MimeLimits, complete: bool, missing_bytes: int) -> MessageSummary:
    """An empty message's summary (frozen, so one serves every message alike)."""
    return MessageSummarizer(limits).close(complete=complete, missing_bytes=missing_bytes)


class SessionBuilder:
    """Accumulates one connection's rows and events."""

    __slots__ = ("_fins", "_last_row", "_max_rows", "_message_first_frame", "_rows_refused", "_rows_taken", "_sink",
                 "_summarizer", "anomalies", "anomalies_dropped", "auth", "body_marked", "budget", "bulk",
                 "bulk_first_frame", "bytes", "client", "clock_went_back", "commands", "decrypting", "elided_spans",
                 "events_dropped", "file", "first_frame", "first_ts", "gaps", "last_ts", "limits", "logins_dropped",
                 "marked_frame", "message_count", "messages", "messages_dropped", "messages_dropped_by_origin",
                 "messages_dropped_complete", "mime_limits", "notes", "notes_dropped", "notes_kept", "phase",
                 "protocol", "replies", "retransmissions", "rows", "rows_elided", "server", "sink_factory", "stream",
                 "summarize", "tls", "tls_info", "tls_starts", "transcript", "transcript_bytes",
                 "transcript_truncated", "tunnel")

    def __init__(self, *, protocol: str, client: Endpoint, server: Endpoint, stream: int, file: str,
                 tunnel: str | None, limits: SessionLimits = SessionLimits(),
                 mime_limits: MimeLimits = MimeLimits(), sink_factory: MessageSinkFactory | None = None,
                 summarize: bool = True, budget: EventBudget | None = None) -> None:
        self.protocol = protocol
        self.client = client
        self.server = server
        self.stream = stream
        self.file = file
        self.tunnel = tunnel
        self.limits = limits
        self.mime_limits = mime_limits
        self.sink_factory = sink_factory
        self.summarize = summarize
        """False: the sink summarises (Config.summarize); records get :class:`Unsummarized` summaries."""
        self.rows: list[list[Any]] = []
        """The rows as plain lists, the fields of :class:`PacketRow` in order (indices ``_FRAME`` ...):
        a list is made without a Python call, and pickled without one (``Session.__reduce__``)."""
        self.rows_elided = 0
        self.phase = Phase.SETUP
        self.tls = "none"
        self.decrypting = False
        self.commands: list[Command] = []
        self.replies: list[Reply] = []
        self.auth: list[AuthAttempt] = []
        self.messages: list[MessageRecord] = []
        self.anomalies: list[Anomaly] = []
        self.anomalies_dropped = 0
        self.notes_kept = 0
        self.notes_dropped = 0
        self.logins_dropped: dict[str, int] = {}
        self.message_count = 0
        """Messages ended so far, kept or not: the next one's ``index`` (sinks and summaries are keyed by it)."""
        self.messages_dropped = 0
        self.messages_dropped_by_origin: dict[str, int] = {}
        self.messages_dropped_complete = 0
        self.budget = budget if budget is not None else EventBudget.of(limits)
        """Shared by the sessions of a run (the analyzer's); a builder made alone has one of its own."""
        self.gaps: list[GapInfo] = []
        self.events_dropped = 0
        self.bytes = [0, 0]
        self.first_ts: float | None = None
        self.last_ts = 0.0
        self.first_frame = 0
        self._summarizer: MessageSummarizer | Unsummarized | None = None
        self._sink: MessageSink | None = None
        self._message_first_frame = 0
        self._last_row: list[Any] | None = None
        self.tls_info: dict[str, Any] | None = None
        self.notes: list[str] = []
        self.tls_starts = 0
        """How many TlsStart events were seen (the stack watches it to put the TLS gate in place)."""
        self.body_marked = False
        """Message bytes were already counted on their rows (the stack dissects them in bulk)."""
        self.bulk: Direction | None = None
        """The direction whose payload is message content right now (the stack knows it before dissecting,
        see ``Dissector.bulk``): counted on the packets' rows as they arrive."""
        self.marked_frame = 0
        """The latest packet whose payload was counted so."""
        self._fins = 0
        """Bit 1: the client sent FIN, bit 2: the server did (RST: both). At 3 packets without payload are
        the teardown (a half-closed connection still has an exchange to finish)."""
        self.bulk_first_frame = 0
        """While bulk content is dissected: the frame its first bytes came in (for the message's first frame)."""
        self._max_rows = min(self.budget.rows_floor, limits.max_rows)
        """Rows the session may keep: the floor, and what the run's budget granted (:meth:`_more_rows`)."""
        self._rows_taken = 0
        """Of those, the rows taken from the budget."""
        self._rows_refused = False
        self.transcript: list[TranscriptPiece] = []
        self.retransmissions: dict[int, int] = {}
        self.transcript_bytes = 0
        self.transcript_truncated = 0
        self.clock_went_back = False
        """A frame was stamped more than :data:`CLOCK_JUMP_SECONDS` before an earlier one: decided at the end."""
        self.elided_spans: list[list[Any]] = []
        """``[first time, last time, frames, first frame, its direction]`` of the rows past the row limit
        (see :meth:`_elided_time`)."""

    # ------------------------------------------------------------------ input
    def packet(self, frame: int, ts: float, direction: Direction, flags: int, payload_len: int) -> None:
        """A packet's row (the flow table's fast path calls this directly: see ``MailConnection.row``)."""
        if self.first_ts is None:
            self.first_ts = ts
            self.first_frame = frame
            if not flags & TCP_SYN:
                self.phase = Phase.GREETING
        if ts > self.last_ts:  # not max(): a call per packet
            self.last_ts = ts
        elif ts < self.last_ts - CLOCK_JUMP_SECONDS:
            self.clock_went_back = True
        body = 0
        if payload_len:
            self.bytes[0 if direction is _CLIENT else 1] += payload_len
            if direction is self.bulk:  # message content: counted on its row now
                body = payload_len
                self.marked_frame = frame
        phase = self.phase
        if flags & _SYN_FIN_RST:  # one test for the common case, a segment in the middle of the session
            if flags & (TCP_FIN | TCP_RST):
                phase = Phase.TEARDOWN
                self._fins |= 3 if flags & TCP_RST else 1 if direction is _CLIENT else 2
            else:
                phase = Phase.SETUP
        elif self._fins == 3 and not payload_len:
            phase = Phase.TEARDOWN  # the ACK of a FIN belongs to the teardown, not to the last exchange
        row = self._last_row = [frame, ts, direction, flags, payload_len, phase, None, self.decrypting, body]
        if len(self.rows) < self._max_rows or self._more_rows():
            self.rows.append(row)
        else:
            self.rows_elided += 1
            self._elided_time(ts, frame, direction)

    def _more_rows(self) -> bool:
        """Room for more rows: the next grant of the run's row budget, while the session is under its own
        limit and holds less than the budget still has for the others (one connection cannot take all of
        it). Once refused, a session keeps no more rows: what it keeps stays an unbroken start of it."""
        if self._rows_refused:
            return False
        taken = self._rows_taken
        budget = self.budget
        # after the grant, what is left for the others is still more than this session holds (alone, a
        # session stops at half the budget)
        grant = min(max(taken, FIRST_ROW_GRANT), ROW_GRANT, self.limits.max_rows - self._max_rows,
                    (budget.rows_left - taken) // 2)
        if grant <= 0:
            self._rows_refused = True
            return False
        budget.rows_left -= grant
        self._rows_taken = taken + grant
        self._max_rows += grant
        return True

    def _elided_time(self, ts: float, frame: int, direction: Direction) -> None:
        """An elided row's time, kept as a span of times (frames within a day of each other): enough for
        :meth:`_mend_clock` to group rows it no longer has, in bounded memory."""
        for span in self.elided_spans:
            if span[0] - CLOCK_JUMP_SECONDS <= ts <= span[1] + CLOCK_JUMP_SECONDS:
                break
        else:
            if len(self.elided_spans) < MAX_ELIDED_SPANS:
                self.elided_spans.append([ts, ts, 1, frame, direction])
                return
            span = min(self.elided_spans, key=lambda s: min(abs(ts - s[0]), abs(ts - s[1])))  # the nearest
        if ts < span[0]:
            span[0] = ts
        elif ts > span[1]:
            span[1] = ts
        span[2] += 1

    def _mend_clock(self) -> None:
        """Frames whose time is more than :data:`CLOCK_JUMP_SECONDS` away from the session's largest group
        of frames carry a wrong clock: the start and end are taken from that group, an anomaly names them.

        Decided once the session is over, so that it does not matter whether the wrong frame came first,
        in the middle or last, nor whether its clock ran ahead or behind. Rows past the row limit count
        by their spans of time (:meth:`_elided_time`)."""
        # (first time, last time, frames, the row or None for a span of elided rows, first frame, direction)
        items: list[tuple[float, float, int, list[Any] | None, int, Direction]] = [
            (r[_TS], r[_TS], 1, r, r[_FRAME], r[_DIRECTION]) for r in self.rows]
        items += [(lo, hi, n, None, frame, direction) for lo, hi, n, frame, direction in self.elided_spans]
        items.sort(key=_item_start)
        groups = [[items[0]]]
        reach = items[0][1]
        for item in items[1:]:
            if item[0] - reach > CLOCK_JUMP_SECONDS:
                groups.append([])
            groups[-1].append(item)
            reach = max(reach, item[1])
        if len(groups) == 1:  # a slow session: every frame is within a day of another
            return
        clock = max(groups, key=lambda g: (sum(i[2] for i in g), max(i[1] for i in g)))  # a tie: the later clock
        kept = {id(i[3]) for i in clock if i[3] is not None}
        # the start stays the first frame's time, as for every session: the first frame of the group
        self.first_ts = next((r[_TS] for r in self.rows if id(r) in kept), min(i[0] for i in clock))
        self.last_ts = max(i[1] for i in clock)
        wrong = [r for r in self.rows if id(r) not in kept]
        elided = sum(i[2] for g in groups if g is not clock for i in g if i[3] is None)
        if wrong:
            odd = wrong[0]
            odd_ts, odd_frame, odd_direction, odd_phase = odd[_TS], odd[_FRAME], odd[_DIRECTION], odd[_PHASE]
            named = f"frame {odd_frame}"
            others = len(wrong) - 1 + elided
        else:  # only rows past the row limit: named by the first frame of their span, shown on no row
            span = next(i for g in groups if g is not clock for i in g)
            odd_ts, odd_frame, odd_direction = span[0], span[4], span[5]
            odd_phase = self._last_row[_PHASE] if self._last_row is not None else self.phase
            named = f"frame {odd_frame}, past the row limit,"
            others = elided - 1
        later = odd_ts > self.last_ts
        days = (odd_ts - self.last_ts if later else min(i[0] for i in clock) - odd_ts) / 86_400
        outside = [r[_TS] for r in wrong] + [t for g in groups if g is not clock for i in g if i[3] is None
                                              for t in (i[0], i[1])]
        both_ways = any((t > self.last_ts) != later for t in outside)  # some ahead, some behind
        more = f" (and {others} more {'frame' if others == 1 else 'frames'}" \
               f"{', some ahead, some behind' if both_ways else ''})" if others else ""
        anomaly = Anomaly(
            direction=odd_direction, ts=odd_ts, frame=odd_frame, first_frame=odd_frame,
            phase=odd_phase, kind="clock-jump",
            detail=f"{named}{more} is stamped {days:,.1f} days "
                   f"{'after' if later else 'before'} the frames around it: a wrong clock in the capture; the "
                   "session's start, end and duration leave it out",
        )
        if len(self.anomalies) >= self.limits.max_anomalies:
            self.anomalies_dropped += 1
            return
        if wrong:  # on its row, as the anomalies the dissectors find
            row_events = wrong[0][_EVENTS]
            if row_events is None:
                wrong[0][_EVENTS] = [anomaly]
            else:
                row_events.append(anomaly)
        at = next((i for i, a in enumerate(self.anomalies) if (a.frame or 0) > odd_frame), len(self.anomalies))
        self.anomalies.insert(at, anomaly)  # in frame order, like those found as they came

    @property
    def packets(self) -> int:
        """Packets of the session (a row each, kept or elided)."""
        return len(self.rows) + self.rows_elided

    @property
    def messages_full(self) -> bool:
        """The session keeps no more message records (``SessionLimits.max_messages``): the next is counted."""
        return len(self.messages) >= self.limits.max_messages

    @property
    def last_frame(self) -> int:
        return self._last_row[_FRAME] if self._last_row is not None else 0

    def retransmitted(self, frame: int, original: int) -> None:
        """A packet that only repeated bytes the stream already had (the views mark its row)."""
        if len(self.retransmissions) < self.limits.max_rows:
            self.retransmissions[frame] = original

    def events(self, events: list[Event]) -> None:
        for event in events:
            self._event(event)

    def _event(self, event: Event) -> None:
        kind = type(event)
        if kind is MessageData:  # the most frequent event: body bytes, counted on the row
            row = self._last_row if self._last_row is not None and self._last_row[_FRAME] == event.frame \
                else self._row_for(event.frame)
            if row is not None and not self.body_marked:
                row[_BODY_BYTES] += len(event.data)  # type: ignore[attr-defined]
            self._message_data(event)  # type: ignore[arg-type]
            return
        if kind is Command or kind is Reply:
            # Over a limit: counted, and not on its row either (a row of one 64 KiB segment can hold
            # thousands of short replies: the row limit alone does not bound what a session keeps). From
            # then on the session keeps none: what it keeps stays an unbroken start of it, so that no
            # command is paired with the reply of the next (a kept RCPT with the 250 of another, behind a
            # dropped 550). A session may hold at most what the run's budget still has for the others.
            budget = self.budget
            bucket = self.commands if kind is Command else self.replies
            if self.events_dropped or len(bucket) >= self.limits.max_events \
                    or budget.left <= len(self.commands) + len(self.replies):
                self.events_dropped += 1
                self.phase = event.phase
                return
            budget.left -= 1
        elif kind is Anomaly and len(self.anomalies) >= self.limits.max_anomalies:
            self.anomalies_dropped += 1
            return
        elif kind is MessageEnd and self.messages_full:
            self.phase = event.phase
            self._message_end(event)  # type: ignore[arg-type]  # counted there, and not on its row
            return
        elif kind is AuthAttempt and len(self.auth) >= self.limits.max_logins:
            attempt: AuthAttempt = event  # type: ignore[assignment]
            dropped = self.logins_dropped
            outcome = LOGIN_OUTCOMES[attempt.success]
            dropped[outcome] = dropped.get(outcome, 0) + 1
            if attempt.cancelled:  # counted among the failed, as the statistics count it
                dropped["cancelled"] = dropped.get("cancelled", 0) + 1
            self.phase = event.phase
            return
        elif kind is Note:
            if self.notes_kept >= self.limits.max_notes:
                self.notes_dropped += 1
                self.phase = event.phase  # as a kept note would have moved it
                return
            self.notes_kept += 1
        row = self._row_for(event.frame)
        if row is not None:
            events = row[_EVENTS]
            if events is None:
                events = row[_EVENTS] = [event]
            else:
                events.append(event)
            if kind not in SIDE_EVENTS and (not (row[_FLAGS] & (TCP_FIN | TCP_RST)) or row[_PAYLOAD_LEN]) and \
                    (len(events) == 1 or all(type(e) in SIDE_EVENTS for e in events[:-1])):
                row[_PHASE] = event.phase
                if event.first_frame < event.frame:
                    self._earlier_segments(event)
            if self.decrypting:
                row[_DECRYPTED] = True
        if kind not in SIDE_EVENTS:
            self.phase = event.phase
        handler = _DISPATCH.get(kind)
        if handler is not None:
            handler(self, event)

    def _command(self, event: Command) -> None:
        self.commands.append(event)  # within the limits: see _event

    def _reply(self, event: Reply) -> None:
        self.replies.append(event)

    def _auth(self, event: AuthAttempt) -> None:
        self.auth.append(event)

    def _gap(self, event: GapEvent) -> None:
        self.gaps.append(GapInfo(event.direction, event.nbytes, event.frame))

    def _anomaly(self, event: Anomaly) -> None:
        self.anomalies.append(event)  # within the limit: see _event

    def _tls_start(self, event: TlsStart) -> None:
        self.tls = event.mode
        self.tls_starts += 1

    def no_implicit_tls(self) -> None:
        """The implicit TLS the port promised did not come (the server greeted in the clear): the session is
        not TLS, and its first data row is in the phase of what it carried, not in a TLS phase (the
        :class:`TlsStart` put there when the bytes began is taken back)."""
        self.tls = "none"
        for row in reversed(self.rows[-64:]):
            events = row[_EVENTS]
            if events and any(type(e) is TlsStart for e in events):
                row[_EVENTS] = [e for e in events if type(e) is not TlsStart] or None
                break

    def _earlier_segments(self, event: Event) -> None:
        """A command or reply that began some segments back (an IMAP LOGIN sent in pieces around its
        literals): its earlier segments, which carry no event of their own, are in its phase too."""
        for row in reversed(self.rows[-64:]):
            if row[_FRAME] < event.first_frame:
                break
            if row[_FRAME] < event.frame and row[_EVENTS] is None and row[_PAYLOAD_LEN] \
                    and row[_DIRECTION] is event.direction:
                row[_PHASE] = event.phase

    def _row_for(self, frame: int) -> list[Any] | None:
        row = self._last_row
        if row is not None and row[_FRAME] == frame:
            return row
        candidate: list[Any]
        for candidate in reversed(self.rows[-64:]):
            if candidate[_FRAME] == frame:
                return candidate
        return row

    def _message_data(self, event: MessageData) -> None:
        if self._summarizer is None:
            self._message_first_frame = self.bulk_first_frame or event.frame
            if self.sink_factory is not None:
                self._sink = self.sink_factory(self, "")
            # keep=False: the session keeps the summary without the message's first bytes (kept_summary),
            # so they are not collected either (64 KiB for each message open at once)
            self._summarizer = (MessageSummarizer(self.mime_limits, on_part=getattr(self._sink, "on_part", None),
                                                  keep=False, waiting=self.budget.waiting)
                                if self.summarize and (not self.messages_full or self._sink is not None)
                                else Unsummarized(self.mime_limits))  # past the limit only a sink (extract) reads it
        self._summarizer.feed(event.data)
        if self._sink is not None:
            self._sink.write(event.data)

    def _message_end(self, event: MessageEnd) -> None:
        summarizer = self._summarizer or (MessageSummarizer(self.mime_limits, keep=False) if self.summarize
                                          else Unsummarized(self.mime_limits))
        first = self._message_first_frame or event.first_frame
        summary = summarizer.close(complete=event.complete, missing_bytes=event.missing_bytes)
        record = MessageRecord(self.message_count, event.origin, summary, first, event.frame, event.direction,
                               dict(event.detail))
        self.message_count += 1
        if not self.messages_full:
            self.messages.append(record)
        else:
            self.messages_dropped += 1
            by_origin = self.messages_dropped_by_origin
            by_origin[event.origin] = by_origin.get(event.origin, 0) + 1
            if summary.complete:
                self.messages_dropped_complete += 1
        if self._sink is not None:
            self._sink.close(record)
        self._summarizer = None
        self._sink = None
        self._message_first_frame = 0

    def raw(self, item: StreamItem, *, decrypted: bool = False) -> None:
        """Keep reassembled bytes for the follow view, up to the limit (and decrypted plaintext, marked)."""
        if isinstance(item, Chunk):
            budget = self.budget
            room = min(self.limits.max_transcript_bytes - self.transcript_bytes, budget.transcript_left)
            if room <= 0:
                self.transcript_truncated += len(item.data)
                return
            data = item.data[:room]
            self.transcript_truncated += len(item.data) - len(data)
            self.transcript_bytes += len(data)
            budget.transcript_left -= len(data)
            self.transcript.append(TranscriptPiece(item.direction, item.frame, item.ts, data, decrypted=decrypted))
        elif isinstance(item, StreamGap):
            self.transcript.append(TranscriptPiece(item.direction, item.frame, item.ts, b"", item.nbytes))

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    # ------------------------------------------------------------------ output
    def finish(self, *, session_id: int, close: str, record: dict[str, Any]) -> Session:
        # taken from the budget and not used goes back now: the session holds its rows past the floor
        held = max(0, len(self.rows) - self.budget.rows_floor)
        self.budget.rows_left += self._rows_taken - held
        self._rows_taken = held
        if self.clock_went_back:
            self._mend_clock()
        if self._summarizer is not None:  # a message that never ended
            self._message_end(MessageEnd(direction=Direction.CLIENT, ts=self.last_ts, frame=self.last_frame,
                                         first_frame=self._message_first_frame, phase=Phase.TRANSFER,
                                         origin=record.get("_open_message_origin", "unknown"), complete=False))
        record.pop("_open_message_origin", None)
        listed_bytes = record.pop(LISTED_CHARGED_KEY, 0)
        listed_dropped = record.pop(LISTED_REFUSED_KEY, 0)
        return _with_raw_rows(Session(
            id=session_id, protocol=self.protocol, client=self.client, server=self.server, stream=self.stream,
            file=self.file, tunnel=self.tunnel, start=self.first_ts or 0.0, end=self.last_ts,
            packets=self.packets, tls=self.tls, close=close, first_frame=self.first_frame,
            last_frame=self.last_frame, rows=[],
            commands=self.commands, replies=self.replies, auth=self.auth, messages=self.messages,
            anomalies=self.anomalies, gaps=self.gaps, record=record, bytes_client=self.bytes[0],
            bytes_server=self.bytes[1], rows_elided=self.rows_elided, events_dropped=self.events_dropped,
            anomalies_dropped=self.anomalies_dropped, notes_dropped=self.notes_dropped,
            logins_dropped=self.logins_dropped, messages_dropped=self.messages_dropped,
            messages_dropped_by_origin=self.messages_dropped_by_origin,
            messages_dropped_complete=self.messages_dropped_complete,
            decrypted=self.decrypting, tls_info=self.tls_info, notes=self.notes,
            transcript=self.transcript, transcript_truncated=self.transcript_truncated,
            retransmissions=self.retransmissions, listed_bytes=listed_bytes, listed_dropped=listed_dropped,
        ), self.rows)


_DISPATCH: dict[type[Event], Callable[[SessionBuilder, Any], None]] = {
    Command: SessionBuilder._command,
    Reply: SessionBuilder._reply,
    MessageEnd: SessionBuilder._message_end,
    AuthAttempt: SessionBuilder._auth,
    Anomaly: SessionBuilder._anomaly,
    GapEvent: SessionBuilder._gap,
    TlsStart: SessionBuilder._tls_start,
}
"""What the builder does with each kind of event besides putting it on its row (one lookup, no chain)."""


def _phase_blocks(rows: list[list[Any]]) -> list[PhaseBlock]:
    """Consecutive rows of one phase, in order (rows as the builder keeps them)."""
    blocks: list[PhaseBlock] = []
    if not rows:
        return blocks
    start = 0
    i = 0
    current = rows[0][_PHASE]
    for row in rows:
        if row[_PHASE] is not current:
            blocks.append(PhaseBlock(current, rows[start][_FRAME], rows[i - 1][_FRAME], start, i - 1))
            start = i
            current = row[_PHASE]
        i += 1
    blocks.append(PhaseBlock(current, rows[start][_FRAME], rows[-1][_FRAME], start, i - 1))
    return blocks
