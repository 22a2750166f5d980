"""IMAP4rev1/rev2 (RFC 3501, 9051), LITERAL+ (7888), BINARY (3516), IDLE (2177), COMPRESS (4978), ID (2971).

Each direction is read by a :class:`Reader` in one explicit mode — a line, the bytes of a literal,
or (client only) bytes held back until the server answers a synchronizing literal or STARTTLS. A
literal — ``{n}``, ``{n+}``, ``~{n}`` — is counted byte by byte, never searched for a line end
(imaplib's ``read(size)`` inside its parser is the anti-pattern), so a gap inside it keeps the
framing. The pieces of a line (text and literals) are joined into one command or response and read
with :mod:`mailtrace.protocols.imap_parse`.

Tagged responses complete their command by tag; untagged data goes to the command in progress that
asks for that kind of data (FETCH data to the FETCH, EXISTS to the SELECT...) or is an unsolicited
update (IDLE wake-ups). The session state — not authenticated, authenticated, selected, logout —
moves only through :data:`TRANSITIONS`, and with the command it drives the phase of every row.

Message bytes stream into the message pipeline as they arrive: FETCH of a whole message
(``BODY[]``, ``BINARY[]``, ``RFC822``), of its header (complete false), a header and text fetched
together, partial fetches (``<origin.length>``, joined when a client fetches a message in chunks),
and APPEND. Body parts (``BODY[2]``, ``BINARY[2]``) are counted and hashed, not parsed as messages.
"""

from __future__ import annotations

import enum
import hashlib
import re
import zlib
from dataclasses import dataclass, field
from typing import Any, ClassVar

from mailtrace.model import (
    CLIENT,
    SERVER,
    AuthAttempt,
    BodyData,
    Chunk,
    Command,
    Direction,
    Eof,
    Event,
    GapEvent,
    MessageEnd,
    Note,
    Phase,
    Reply,
    StreamGap,
    StreamItem,
    TlsStart,
)
from mailtrace.numbers import is_count, parse_count
from mailtrace.protocols.base import (
    DICT_ENTRY_COST,
    DissectorLimits,
    EventSink,
    Line,
    LineBuffer,
    ListCharge,
    WaitCharge,
    budget_cut,
    printable,
)
from mailtrace.protocols.imap_parse import (
    Literal,
    Piece,
    SectionRef,
    Value,
    as_int,
    as_text,
    bodystructure,
    decode_mailbox,
    describe_parts,
    envelope,
    fetch_items,
    flag_list,
    parse_values,
    render,
    requested_sections,
    resp_code,
    section_ref,
)
from mailtrace.protocols.sasl import COMMAND_AS_RESPONSE, SaslExchange, command_as_response


class State(enum.Enum):
    """RFC 3501 §3 session states (plus the moment before the greeting)."""

    CONNECTED = "connected"
    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


S = State
TRANSITIONS: dict[State, dict[str, State]] = {
    S.CONNECTED: {"greeting OK": S.NOT_AUTHENTICATED, "greeting PREAUTH": S.AUTHENTICATED,
                  "greeting BYE": S.LOGOUT},
    S.NOT_AUTHENTICATED: {"LOGIN OK": S.AUTHENTICATED, "AUTHENTICATE OK": S.AUTHENTICATED,
                          "LOGOUT OK": S.LOGOUT, "BYE": S.LOGOUT},
    S.AUTHENTICATED: {"SELECT OK": S.SELECTED, "EXAMINE OK": S.SELECTED,
                      "UNAUTHENTICATE OK": S.NOT_AUTHENTICATED, "LOGOUT OK": S.LOGOUT, "BYE": S.LOGOUT},
    S.SELECTED: {"SELECT OK": S.SELECTED, "EXAMINE OK": S.SELECTED, "SELECT NO": S.AUTHENTICATED,
                 "EXAMINE NO": S.AUTHENTICATED, "CLOSE OK": S.AUTHENTICATED, "UNSELECT OK": S.AUTHENTICATED,
                 "UNAUTHENTICATE OK": S.NOT_AUTHENTICATED, "LOGOUT OK": S.LOGOUT, "BYE": S.LOGOUT},
    S.LOGOUT: {},
}
"""(state, trigger) → next state. A trigger is a command with its tagged status, a greeting, or BYE."""

ANY = frozenset(State) - {S.LOGOUT}
AUTHED = frozenset({S.AUTHENTICATED, S.SELECTED})
COMMAND_STATES: dict[str, frozenset[State]] = {
    **dict.fromkeys(("CAPABILITY", "NOOP", "LOGOUT", "ID", "COMPRESS", "ENABLE", "XYZZY"), ANY),
    **dict.fromkeys(("STARTTLS", "AUTHENTICATE", "LOGIN"), frozenset({S.CONNECTED, S.NOT_AUTHENTICATED})),
    **dict.fromkeys(("SELECT", "EXAMINE", "CREATE", "DELETE", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE", "LIST",
                     "LSUB", "XLIST", "NAMESPACE", "STATUS", "APPEND", "IDLE", "GETQUOTA", "GETQUOTAROOT",
                     "SETQUOTA", "GETACL", "SETACL", "DELETEACL", "MYRIGHTS", "LISTRIGHTS", "GETMETADATA",
                     "SETMETADATA", "NOTIFY", "UNAUTHENTICATE", "XAPPLEPUSHSERVICE"), AUTHED),
    **dict.fromkeys(("CHECK", "CLOSE", "UNSELECT", "EXPUNGE", "SEARCH", "FETCH", "STORE", "COPY", "MOVE",
                     "SORT", "THREAD", "ESEARCH", "REPLACE"), frozenset({S.SELECTED})),
}
"""Where each command is allowed (RFC 3501 §6 and the extensions); elsewhere it is an anomaly."""
KNOWN_COMMANDS = frozenset(COMMAND_STATES) | {"UID", "DONE"}

COMMAND_PHASE: dict[str, Phase] = {
    "CAPABILITY": Phase.NEGOTIATION, "STARTTLS": Phase.NEGOTIATION, "ID": Phase.NEGOTIATION,
    "ENABLE": Phase.NEGOTIATION, "COMPRESS": Phase.NEGOTIATION,
    "LOGIN": Phase.AUTH, "AUTHENTICATE": Phase.AUTH, "UNAUTHENTICATE": Phase.AUTH,
    "LOGOUT": Phase.TEARDOWN,
}
"""Commands with a phase of their own; the rest are transfer once logged in, negotiation before."""

UNTAGGED_OWNERS: dict[str, tuple[str, ...]] = {
    "CAPABILITY": ("CAPABILITY", "LOGIN", "AUTHENTICATE", "STARTTLS"),
    "LIST": ("LIST", "XLIST"), "XLIST": ("XLIST", "LIST"), "LSUB": ("LSUB",), "STATUS": ("STATUS", "LIST"),
    "SEARCH": ("SEARCH",), "ESEARCH": ("SEARCH", "SORT", "ESEARCH"), "SORT": ("SORT",), "THREAD": ("THREAD",),
    "FLAGS": ("SELECT", "EXAMINE"), "EXISTS": ("SELECT", "EXAMINE"), "RECENT": ("SELECT", "EXAMINE"),
    "FETCH": ("FETCH", "STORE"), "EXPUNGE": ("EXPUNGE", "MOVE", "CLOSE"),
    "VANISHED": ("EXPUNGE", "MOVE", "SELECT", "EXAMINE", "FETCH"),
    "NAMESPACE": ("NAMESPACE",), "ID": ("ID",), "ENABLED": ("ENABLE",),
    "QUOTA": ("GETQUOTA", "GETQUOTAROOT", "SETQUOTA"), "QUOTAROOT": ("GETQUOTAROOT",),
    "ACL": ("GETACL",), "MYRIGHTS": ("MYRIGHTS",), "LISTRIGHTS": ("LISTRIGHTS",),
    "METADATA": ("GETMETADATA",),
    "OK": ("SELECT", "EXAMINE"), "BYE": ("LOGOUT",),
}
"""Which commands in flight an untagged response belongs to (the oldest such command wins)."""
UNTAGGED_KINDS = frozenset(UNTAGGED_OWNERS) | {"NO", "BAD", "PREAUTH"}
NUMBERED_KINDS = frozenset({"EXISTS", "RECENT", "EXPUNGE", "FETCH"})

LITERAL_AT_END = re.compile(rb"(~?)\{(\d{1,12})(\+?)\}$")
NO_LITERAL_LINE = re.compile(rb"^(?:\+|\* (?:OK|NO|BAD|BYE|PREAUTH)\b|[^ ]+ (?:OK|NO|BAD)\b)", re.IGNORECASE)
MESSAGE_ITEM = re.compile(
    rb"(?<![A-Za-z0-9.\-])((?:BODY|BINARY)(?:\.PEEK)?\[[^\]]*\](?:<\d+>)?|RFC822(?:\.HEADER|\.TEXT)?)\s*$",
    re.IGNORECASE)
RESPONSE_START = re.compile(rb"^(?:\+(?: |$)|\* [A-Za-z0-9]|[^\s(){%*\"\\\]]+ (?:OK|NO|BAD)(?: |$))",
                            re.IGNORECASE)
"""What the first line of a server response looks like: a continuation, untagged data, a tagged status."""
TAGGED_STATUS = re.compile(rb"^[^\s(){%*\"\\\]+]+ (?:OK|NO|BAD)(?: |$)", re.IGNORECASE)
TAIL_COMPLETION = re.compile(rb"^[^\s(){%*\"\\\]+]*[0-9][^\s(){%*\"\\\]+]* (?:OK|NO|BAD)(?: |$)")
"""A tagged completion that ends the response a capture begins inside: stricter than TAGGED_STATUS, since
the lines skipped are message text ("Sounds OK to me."): the tag has a digit, as every client's tags do,
and the status is upper-case as servers send it."""
TAG_VERB = re.compile(rb"^([^\s(){%*\"\\\]]+) +(?:(UID) +)?([A-Za-z0-9\-]+)", re.IGNORECASE)
SEQUENCE_SET = re.compile(rb"^[0-9*$][0-9*:,$]*$")
NO_ARGUMENTS = frozenset({"CAPABILITY", "NOOP", "CHECK", "CLOSE", "LOGOUT", "STARTTLS", "UNSELECT", "NAMESPACE",
                          "IDLE", "UNAUTHENTICATE"})
"""After lost client bytes a line only resynchronises when its arguments fit its command (see ``_resyncs``)."""
MAX_TAG_SHAPES = 16
MAX_KEPT_LITERAL = 8192
MAX_LINE_PIECES = 512
MAX_RECORDS = 2000
"""Per-session cap for each list of the ``imap`` block (timeline, fetches, parts...); the rest are counted."""
MAX_NOTES = 1000


class ReadMode(enum.Enum):
    """How a direction's next bytes are read."""

    LINE = "line"
    LITERAL = "literal"
    HOLD = "hold"
    """Client bytes held until the server answers a synchronizing literal or STARTTLS."""
    OPAQUE = "opaque"
    """TLS, or a compressed stream that can no longer be inflated."""


class Dest(enum.Enum):
    """Where a literal's bytes go."""

    KEEP = "keep"  # kept (up to MAX_KEPT_LITERAL) as a value of the line
    MESSAGE = "message"  # streamed to the message pipeline
    PART = "part"  # counted and hashed (a body part)
    SKIP = "skip"  # counted only (resynchronising after a gap)


@dataclass(slots=True)
class LiteralState:
    size: int
    left: int
    binary: bool
    sync: bool
    dest: Dest
    kept: bytearray = field(default_factory=bytearray)
    missing: int = 0
    sha: Any = None
    ref: SectionRef | None = None


@dataclass
class Reader:
    """One direction's framing state."""

    direction: Direction
    lines: LineBuffer
    mode: ReadMode = ReadMode.LINE
    pieces: list[Piece] = field(default_factory=list)
    kept: int = 0
    first_frame: int = 0
    literal: LiteralState | None = None
    resync: bool = False
    """After a gap: skip lines until one parses."""
    inflater: Any = None
    held: list[tuple[bytes, int, float]] = field(default_factory=list)
    held_bytes: int = 0
    hold_tag: str | None = None
    hold_literal: tuple[int, bool, bool] | None = None

    def reset_line(self) -> None:
        self.pieces = []
        self.kept = 0
        self.literal = None


@dataclass(slots=True)
class Pending:
    """A command in flight (registered at its first line, even while its literals still stream)."""

    tag: str
    verb: str
    frame: int
    ts: float
    phase: Phase
    uid: bool = False
    argument: str = ""
    emitted: bool = False
    args: list[Value] = field(default_factory=list)
    sasl: SaslExchange | None = None
    sasl_turn: bool = False
    login_user: str | None = None
    login_secret: str | None = None
    sections: list[SectionRef] = field(default_factory=list)
    mailbox: str | None = None
    select: dict[str, Any] = field(default_factory=dict)
    results: int = 0
    result_sample: list[str] = field(default_factory=list)
    appends: list[dict[str, Any]] = field(default_factory=list)
    idling: bool = False
    """IDLE answered with '+': the server idles until the client's DONE."""
    sent_as: str | None = None
    """The command word(s) as written, where not upper case (``uid fetch``)."""
    shown_frame: int = 0
    """The frame its Command event names (its last line's; ``frame`` is where it began): replies point here."""

    @property
    def answered_frame(self) -> int:
        return self.shown_frame or self.frame


@dataclass(slots=True)
class OpenMessage:
    """A message being streamed to the pipeline (a MessageEnd is still owed)."""

    origin: str
    first_frame: int
    direction: Direction
    detail: dict[str, Any]
    bytes: int = 0
    missing: int = 0
    complete: bool = True
    end_frame: int = 0
    end_ts: float = 0.0
    msg: int | None = None
    ref: SectionRef | None = None
    response: int = 0
    """Serial of the response whose literal opened it (header+text joining, closing at response end)."""
    continuable: bool = False
    """A partial fetch that the next chunk may continue."""
    literal_done: bool = False
    joined: bool = False
    """A header and the text after it, fetched in one response, make the whole message."""


class Imap:
    """The IMAP dissector (sans-I/O)."""

    __slots__ = ("alerts", "appended", "appends", "building", "capabilities", "capabilities_before_tls",
                 "client_bytes", "client_id", "client_tail", "command_seen", "compressed", "current_box", "dropped",
                 "enabled", "expunged", "fetched", "fetches", "folders", "greeting", "idle", "idle_updates",
                 "inferred", "limits", "listed", "lost_bytes", "mailboxes", "message", "namespace", "no_syn",
                 "notes", "out", "parts", "pending", "phase", "readers", "response_serial", "searches", "selected",
                 "server_bytes", "server_id", "server_spoke", "starttls", "state", "state_known", "states", "status",
                 "stored", "tag_shapes", "tail_lines", "tail_open", "timeline", "user", "vanished", "wait")

    name: ClassVar[str] = "imap"
    default_ports: ClassVar[frozenset[int]] = frozenset({143})
    tls_ports: ClassVar[frozenset[int]] = frozenset({993})

    def __init__(self, limits: DissectorLimits | None = None) -> None:
        limits = limits or DissectorLimits()
        self.limits = limits
        self.out = EventSink()
        self.readers = (Reader(CLIENT, LineBuffer(limits.max_line, limits.unread_budget)),
                        Reader(SERVER, LineBuffer(limits.max_line, limits.unread_budget)))
        self.wait = WaitCharge(limits.unread_budget)
        """The client's held bytes (``Reader.held_bytes``) as a charge on the run's unread budget."""
        self.listed = ListCharge(limits.listed_budget)
        """The entries of the ``imap`` block's lists, as a charge on the run's budget of listed entries (past it
        they are counted in ``dropped`` as past :data:`MAX_RECORDS`)."""
        self.pending: dict[str, Pending] = {}
        self.building: Pending | None = None
        """The client command whose line is still being assembled (literals to come)."""
        self.state = State.CONNECTED
        self.state_known = False
        self.lost_bytes = False
        """Bytes of either side were lost: the state may have moved unseen."""
        self.phase = Phase.GREETING
        self.greeting: str | None = None
        self.server_spoke = False
        """A server response has been read (a greeting can only be the first)."""
        self.inferred: tuple[State, int, str] | None = None
        """A state the first command suggests, held while the server has said nothing: the greeting may
        still come (a client that talks first) and then there is nothing to infer."""
        self.client_bytes = 0
        self.server_bytes = 0
        self.no_syn = False
        """The capture holds no SYN of this connection (:meth:`began_mid_session`)."""
        self.command_seen = False
        """A client line has parsed as ``tag command``: before it, in such a capture, client lines that do not
        are the tail of an exchange begun before the first packet (a SASL response), skipped unquoted."""
        self.client_tail = 0
        self.tail_lines = 0
        """Server lines skipped before the first client command of a capture that begins mid-session."""
        self.tail_open = False
        """Reading the tail of that response (up to its tagged completion or the client's first command)."""
        self.tag_shapes: set[bytes] = set()
        """How the client's tags look (digits folded: ``a0``, ``DPDO0``): after lost bytes a message line
        such as ``to fetch the…`` is not taken for a command because its "tag" looks like no tag seen."""
        self.response_serial = 0
        self.message: OpenMessage | None = None
        self.idle: Pending | None = None
        self.starttls: Pending | None = None
        self.compressed = False
        self.notes = 0
        self.user: str | None = None
        # the imap block of the report
        self.capabilities: list[str] = []
        self.capabilities_before_tls: list[str] | None = None
        self.enabled: list[str] = []
        self.client_id: dict[str, str | None] | None = None
        self.server_id: dict[str, str | None] | None = None
        self.namespace: dict[str, list[dict[str, str | None]]] | None = None
        self.states: list[dict[str, Any]] = []
        self.folders: list[str] = []
        self.mailboxes: list[dict[str, Any]] = []
        self.selected: list[dict[str, Any]] = []
        self.current_box: dict[str, Any] | None = None
        self.fetched = 0
        self.appended = 0
        self.expunged: list[int] = []
        self.vanished: list[str] = []
        self.stored: list[str] = []
        self.idle_updates: list[str] = []
        self.timeline: list[dict[str, Any]] = []
        self.fetches: list[dict[str, Any]] = []
        self.parts: list[dict[str, Any]] = []
        self.appends: list[dict[str, Any]] = []
        self.status: list[dict[str, Any]] = []
        self.searches: list[dict[str, Any]] = []
        self.alerts: list[str] = []
        self.dropped: dict[str, int] = {}

    # ------------------------------------------------------------------ contract
    @classmethod
    def sniff(cls, client: bytes, server: bytes) -> float:
        score = 0.0
        if server:
            if server.startswith((b"* OK", b"* PREAUTH", b"* BYE")):
                score += 0.6
            else:
                return -1.0
        if client:
            parts = client.split(None, 2)
            if len(parts) >= 2 and parts[1].upper().decode("latin-1") in KNOWN_COMMANDS:
                score += 1.0
            elif client.strip():
                return -1.0
        return score

    def feed(self, item: StreamItem) -> list[Event]:
        self.out.at(item)
        if isinstance(item, Chunk):
            reader = self.readers[0 if item.direction is CLIENT else 1]
            if item.direction is CLIENT:
                self.client_bytes += len(item.data)
            else:
                self.server_bytes += len(item.data)
            if reader.mode is not ReadMode.OPAQUE:
                data = item.data
                if reader.inflater is not None:
                    data = self._inflate(reader, data, item.frame)
                self._consume(reader, data, item.frame, item.ts)
        elif isinstance(item, StreamGap):
            self._gap(item)
        elif isinstance(item, Eof):
            self._eof(item)
        return self.out.take()

    def finish(self) -> list[Event]:
        """The connection is over: close an open message, report logins whose outcome was not seen."""
        self._settle_inference()
        self._close_message()
        for cmd in self.pending.values():
            if cmd.verb == "LOGIN":
                self._auth(cmd, "LOGIN", cmd.login_user, cmd.login_secret, None, frame=self.out.frame,
                           ts=self.out.ts, extra={"outcome": "not seen"})
            elif cmd.verb == "AUTHENTICATE" and cmd.sasl is not None:
                sasl = cmd.sasl
                self._auth(cmd, sasl.mechanism, sasl.username, sasl.secret, None, frame=self.out.frame,
                           ts=self.out.ts, extra={"outcome": "not seen"}, sasl=sasl)
        self.pending.clear()
        self.release_unread()
        return self.out.take()

    def release_unread(self) -> None:
        """What the dissector holds unread goes back to the run's budget (``base.WaitCharge``)."""
        for reader in self.readers:
            reader.lines.release()
        self.wait.hold(0)

    @property
    def bulk(self) -> Direction | None:
        """The direction whose next bytes are message content, not protocol (see Dissector.bulk)."""
        for reader in self.readers:
            lit = reader.literal
            if reader.mode is ReadMode.LITERAL and lit is not None and lit.dest is Dest.MESSAGE \
                    and reader.inflater is None and lit.left > 0:
                return reader.direction
        return None

    @property
    def bulk_left(self) -> int | None:
        """Bytes left in the message literal being read."""
        for reader in self.readers:
            if reader.mode is ReadMode.LITERAL and reader.literal is not None:
                return reader.literal.left
        return None

    def began_mid_session(self) -> None:
        """The capture may begin inside a response (the rest of a FETCH literal): server lines before the
        client's first command are skipped from the first one that cannot start a response (``_in_tail``)."""
        self.no_syn = True

    def tls_started(self) -> None:
        """Plaintext resumes after STARTTLS (decrypted): RFC 3501 §6.2.1 — forget the old capabilities."""
        for reader in self.readers:
            reader.lines.clear()
            reader.reset_line()
            reader.mode = ReadMode.LINE
            reader.held = []
            reader.held_bytes = 0
            reader.resync = False
        self.wait.hold(0)
        if self.capabilities and self.capabilities_before_tls is None:
            self.capabilities_before_tls = self.capabilities
        self.capabilities = []
        self.phase = Phase.NEGOTIATION

    def record(self) -> dict[str, Any]:
        block: dict[str, Any] = {
            "state": self.state.value,
            "greeting": self.greeting,
            "capabilities": list(self.capabilities),
            "folders": list(self.folders),
            "selected": [dict(s) for s in self.selected],
            "fetched_messages": self.fetched,
            "appended_messages": self.appended,
            "expunged": list(self.expunged),
            "stored": list(self.stored),
            "idle_updates": list(self.idle_updates),
            "compressed": self.compressed,
            "states": list(self.states),
            "capabilities_before_tls": self.capabilities_before_tls,
            "enabled": list(self.enabled),
            "client_id": self.client_id,
            "server_id": self.server_id,
            "namespace": self.namespace,
            "mailboxes": list(self.mailboxes),
            "timeline": list(self.timeline),
            "fetches": list(self.fetches),
            "parts": list(self.parts),
            "appends": list(self.appends),
            "status": list(self.status),
            "searches": list(self.searches),
            "vanished": list(self.vanished),
            "alerts": list(self.alerts),
        }
        if self.dropped:
            block["dropped"] = dict(self.dropped)
        return {"user": self.user, "imap": block, **self.listed.keys()}

    # ------------------------------------------------------------------ bytes → lines and literals
    def _inflate(self, reader: Reader, data: bytes, frame: int) -> bytes:
        try:
            return bytes(reader.inflater.decompress(data))
        except zlib.error as exc:
            self.out.anomaly(reader.direction, self.phase, "compress-error",
                             f"the COMPRESS=DEFLATE stream cannot be inflated ({exc}); the rest is opaque",
                             frame)
            reader.inflater = None
            reader.mode = ReadMode.OPAQUE
            return b""

    def _consume(self, r: Reader, data: bytes, frame: int, ts: float) -> None:
        while data:
            mode = r.mode
            if mode is ReadMode.OPAQUE:
                return
            if mode is ReadMode.LITERAL:
                lit = r.literal
                if lit is None:  # defensive: never reached by the transitions above
                    r.mode = ReadMode.LINE
                    continue
                take = data[: lit.left]
                data = data[lit.left :]
                lit.left -= len(take)
                self._literal_bytes(r, lit, take, frame, ts)
                if lit.left == 0:
                    self._literal_end(r, lit, frame, ts)
                continue
            if mode is ReadMode.HOLD:
                self._hold(r, data, frame, ts)
                return
            r.lines.push(data, frame, ts)
            data = b""
            inflating = r.inflater is not None
            for line in r.lines.lines(frame, ts):
                self._line(r, line)
                if r.mode is not ReadMode.LINE or (r.inflater is not None) != inflating:
                    data = r.lines.take_all()
                    if r.inflater is not None and not inflating:
                        data = self._inflate(r, data, frame)
                    break

    def _line(self, r: Reader, line: Line) -> None:
        text = line.text
        if line.too_long:
            cut = budget_cut(line, self.limits)
            self.out.anomaly(r.direction, self.phase, "line-too-long",
                             f"line of {len(text) + line.too_long} bytes "
                             + (cut or f"(limit {self.limits.max_line})"), line.frame)
        if not r.pieces and r.direction is SERVER and self._in_tail(text):
            self._tail_line(line)
            return
        if not r.pieces:
            r.first_frame = line.first_frame
            if r.resync and not self._resyncs(r, text):
                self._skip_literal_after_gap(r, text)
                return
            r.resync = False
        match = LITERAL_AT_END.search(text) if self._literal_allowed(r, text) else None
        if match is not None and len(r.pieces) < MAX_LINE_PIECES:
            head = text[: match.start()]
            r.pieces.append(head)
            r.kept += len(head)
            size, binary, sync = int(match.group(2)), bool(match.group(1)), not match.group(3)
            if r.direction is CLIENT:
                self._client_literal_head(r, line)
                cmd = self.building
                if cmd is not None and not cmd.emitted and self._append_message_next(r, cmd):
                    self._emit_command(cmd, r.pieces, r.first_frame or line.first_frame, frame=line.frame,
                                       ts=line.ts, suffix=match.group(0).decode("latin-1"))
                if not sync:
                    self._check_literal_plus(size, line.frame)
                if sync and self.server_bytes and self.building is not None:
                    r.mode = ReadMode.HOLD
                    r.hold_tag = self.building.tag
                    r.hold_literal = (size, binary, sync)
                    return
            self._literal_start(r, size, binary, sync, frame=line.frame, ts=line.ts)
            return
        r.pieces.append(text)
        pieces = r.pieces
        first = r.first_frame or line.first_frame
        r.reset_line()
        if r.direction is CLIENT:
            self._command(pieces, first, line.frame, line.ts)
        else:
            self._response(pieces, first, line.frame, line.ts)

    def _in_tail(self, text: bytes) -> bool:
        """Is this server line part of the response the capture begins in (no SYN, nothing read yet, no
        command yet)? From the first line that starts no response until the client's first command."""
        if not self.no_syn or self.client_bytes or self.server_spoke:
            return False
        if self.tail_open or self.tail_lines:
            return self.tail_open
        # a tagged status must look like one a server sends (TAIL_COMPLETION), not "Sounds OK to me."
        starts = RESPONSE_START.match(text) is not None and (
            not TAGGED_STATUS.match(text) or TAIL_COMPLETION.match(text) is not None)
        return not starts

    def _tail_line(self, line: Line) -> None:
        """A line of the response the capture begins in: the rest of a literal, or lines that read like
        responses inside it (``* BYE`` in a message body): skipped, with one note and no greeting."""
        if not self.tail_lines:
            self.tail_open = True
            self._note(line.frame, line.ts, line.first_frame, self.phase,
                       "the capture begins inside a server response whose command it does not show: its "
                       "lines up to the client's first command are skipped", force=True)
        self.tail_lines += 1
        if TAIL_COMPLETION.match(line.text):  # the completion of the command the capture does not show
            self.tail_open = False
            self.server_spoke = True

    def _literal_allowed(self, r: Reader, text: bytes) -> bool:
        if r.pieces:
            return True
        if r.direction is SERVER:
            return NO_LITERAL_LINE.match(text) is None
        sasl = self._sasl_waiting()
        if sasl is not None and sasl.sasl_turn:
            return False
        return not (self.idle is not None and text.upper() == b"DONE")

    def _literal_start(self, r: Reader, size: int, binary: bool, sync: bool, *, frame: int,
                       ts: float) -> None:
        dest, ref = self._literal_dest(r)
        lit = LiteralState(size, size, binary, sync, dest, ref=ref)
        r.literal = lit
        r.mode = ReadMode.LITERAL
        if dest is Dest.PART:
            lit.sha = hashlib.sha256()
        if size == 0:
            self._literal_end(r, lit, frame, ts)

    def _literal_dest(self, r: Reader) -> tuple[Dest, SectionRef | None]:
        last = r.pieces[-1] if r.pieces and isinstance(r.pieces[-1], bytes) else b""
        if r.direction is SERVER:
            match = MESSAGE_ITEM.search(last)
            ref = section_ref(match.group(1).decode("latin-1")) if match else None
            if ref is None or not r.pieces or not isinstance(r.pieces[0], bytes) \
                    or not r.pieces[0].startswith(b"* "):
                return Dest.KEEP, None
            return self._server_message_start(r, ref), ref
        cmd = self.building
        if cmd is not None and self._append_message_next(r, cmd):
            self._open_append(r, cmd, parse_values(r.pieces, _args_offset(r.pieces)))
            return Dest.MESSAGE, None
        return Dest.KEEP, None

    def _append_message_next(self, r: Reader, cmd: Pending) -> bool:
        """Does this client line announce a message literal (APPEND's, not a mailbox or CATENATE text)?"""
        if cmd.verb not in ("APPEND", "REPLACE"):
            return False
        if any(isinstance(p, bytes) and b"CATENATE" in p.upper() for p in r.pieces):
            return False
        return len(parse_values(r.pieces, _args_offset(r.pieces))) >= (2 if cmd.verb == "REPLACE" else 1)

    def _literal_bytes(self, r: Reader, lit: LiteralState, data: bytes, frame: int, ts: float) -> None:
        if not data:
            return
        dest = lit.dest
        if dest is Dest.KEEP:
            room = MAX_KEPT_LITERAL - len(lit.kept)
            if room > 0:
                lit.kept += data[:room]
            return
        if dest is Dest.MESSAGE:
            msg = self.message
            if msg is not None:
                msg.bytes += len(data)
            self.out.data(r.direction, Phase.TRANSFER, data)  # the session counts these bytes on the row
        elif dest is Dest.PART:
            lit.sha.update(data)
            self.out.add(BodyData(direction=r.direction, ts=ts, frame=frame, first_frame=frame,
                                  phase=Phase.TRANSFER, nbytes=len(data), what="literal"))

    def _literal_end(self, r: Reader, lit: LiteralState, frame: int, ts: float) -> None:
        r.mode = ReadMode.LINE
        r.literal = None
        if lit.dest is Dest.SKIP:
            r.reset_line()
            return
        whole = lit.dest is Dest.KEEP and len(lit.kept) == lit.size and not lit.missing
        value = Literal(lit.size, bytes(lit.kept) if whole else None, lit.binary, lit.sync, lit.missing)
        r.pieces.append(value)
        if lit.dest is Dest.MESSAGE:
            msg = self.message
            if msg is not None:
                msg.missing += lit.missing
                msg.end_frame, msg.end_ts = frame, ts
                msg.literal_done = True
                if lit.missing:
                    msg.complete = False
                if msg.origin == "imap-append":
                    self._close_message()
        elif lit.dest is Dest.PART and lit.ref is not None:
            head = r.pieces[0] if isinstance(r.pieces[0], bytes) else b""
            number = _int_word(head, 1)
            self._keep(self.parts, "parts", {
                "frame": frame, "msg": number, "section": lit.ref.label, "bytes": lit.size - lit.missing,
                "sha256": lit.sha.hexdigest() if not lit.missing else None,
                "partial": lit.ref.origin is not None, "missing_bytes": lit.missing})

    def _client_literal_head(self, r: Reader, line: Line) -> None:
        """The first line of a client command that goes on with a literal: register the command now."""
        if self.building is not None or len(r.pieces) != 1:
            return
        head = r.pieces[0]
        match = TAG_VERB.match(head) if isinstance(head, bytes) else None
        if match is None:
            return
        tag = match.group(1).decode("latin-1")
        verb = match.group(3).decode("latin-1").upper()
        cmd = Pending(tag, verb, r.first_frame or line.first_frame, line.ts, self._phase_for(verb),
                      uid=bool(match.group(2)), sent_as=_sent_as(match))
        self.building = cmd
        self._register(cmd, line.frame)

    # ------------------------------------------------------------------ holding client bytes
    def _hold(self, r: Reader, data: bytes, frame: int, ts: float) -> None:
        r.held.append((data, frame, ts))
        r.held_bytes += len(data)
        if r.held_bytes > self.limits.max_wait_bytes or self.wait.hold(r.held_bytes):
            self.out.anomaly(CLIENT, self.phase, "no-continuation",
                             f"{r.held_bytes} client bytes sent without the server's '+' continuation"
                             + self.wait.reason(self.limits, r.held_bytes), frame)
            self._release(r, go_on=True, overflow=True)

    def _check_literal_plus(self, size: int, frame: int) -> None:
        """RFC 7888: ``{n+}`` only where the server announced LITERAL+, or LITERAL- for up to 4096 octets."""
        caps = {c.upper() for c in self.capabilities}
        if not caps:
            return  # capabilities not seen (a capture that lacks them): nothing to judge by
        if "LITERAL+" in caps:
            return
        if "LITERAL-" in caps or "IMAP4REV2" in caps:  # RFC 9051 includes LITERAL-
            if size > 4096:
                self.out.anomaly(CLIENT, self.phase, "literal-plus-misused",
                                 f"a non-synchronizing literal of {size} octets, but the server offers only "
                                 "LITERAL- (at most 4096 octets; RFC 7888 5, RFC 9051)", frame)
            return
        self.out.anomaly(CLIENT, self.phase, "literal-plus-misused",
                         f"a non-synchronizing literal ({{{size}+}}) to a server that does not offer LITERAL+ "
                         "or LITERAL- (RFC 7888 4)", frame)

    def _release(self, r: Reader, go_on: bool, *, overflow: bool = False) -> None:
        """The server answered: a held synchronizing literal goes on (``+``) or is refused (tagged NO/BAD)."""
        if r.held and r.hold_literal is not None and not overflow:
            # the client went on without the server's '+': only a LITERAL+ literal may (RFC 3501 4.3)
            self.out.anomaly(CLIENT, self.phase, "literal-without-continuation",
                             f"the client sent {r.held_bytes} bytes after a synchronizing literal before the "
                             "server's answer (RFC 3501 4.3: it must wait for '+')", r.held[0][1])
        held, r.held, r.held_bytes = r.held, [], 0
        self.wait.hold(0)
        literal, r.hold_literal = r.hold_literal, None
        r.hold_tag = None
        r.mode = ReadMode.LINE
        if literal is not None and go_on:
            first = held[0] if held else (b"", self.out.frame, self.out.ts)
            self._literal_start(r, literal[0], literal[1], literal[2], frame=first[1], ts=first[2])
        elif literal is not None:
            self._end_building(r, refused=True)
        saved = self.out.frame, self.out.ts
        for data, frame, ts in held:
            self.out.frame, self.out.ts = frame, ts
            self._consume(r, data, frame, ts)
        self.out.frame, self.out.ts = saved

    def _end_building(self, r: Reader, refused: bool) -> None:
        """A client command whose literal the server refused ends where it stands."""
        pieces = r.pieces
        r.reset_line()
        cmd = self.building
        if cmd is None:
            return
        if not cmd.emitted:
            self._command(pieces, r.first_frame, self.out.frame, self.out.ts, refused=refused)
            return
        self.building = None
        if refused:  # a server may answer NO instead of '+' (RFC 3501 7.5): no violation, but worth saying
            self._note(self.out.frame, self.out.ts, self.out.frame, cmd.phase,
                       f"the server refused {cmd.verb}'s synchronizing literal; the command ends here")

    # ------------------------------------------------------------------ client commands
    def _sasl_waiting(self) -> Pending | None:
        return next((p for p in self.pending.values() if p.verb == "AUTHENTICATE" and p.sasl is not None),
                    None)

    def _command(self, pieces: list[Piece], first: int, frame: int, ts: float, refused: bool = False) -> None:
        raw = pieces[0] if pieces and isinstance(pieces[0], bytes) else b""
        building, self.building = self.building, None
        auth = self._sasl_waiting()
        if auth is not None and building is None and len(pieces) == 1 and (
                auth.sasl_turn or TAG_VERB.match(raw) is None or _verb_of(raw) not in KNOWN_COMMANDS):
            self._sasl_response(auth, raw, first, frame, ts)
            return
        if self.idle is not None and building is None and raw.strip().upper() == b"DONE":
            self.out.add(Command(direction=CLIENT, ts=ts, frame=frame, first_frame=first,
                                 phase=self.idle.phase, verb="DONE", argument=""))
            self._timeline(frame, "idle-done")
            return
        match = TAG_VERB.match(raw)
        if match is None and self.no_syn and not self.command_seen:
            if not self.client_tail:
                self._note(frame, ts, first, self.phase, "the capture begins inside a client exchange (a SASL "
                                                         "response, say): its lines up to the first command are "
                                                         "skipped")
            self.client_tail += 1
            return
        if match is None:
            if raw.strip() or len(pieces) > 1:
                kind = "invalid-command" if _printable(raw) else "garbage"
                self.out.anomaly(CLIENT, self.phase, kind,
                                 f"client line is not 'tag command': {printable(raw, 80)}", frame)
            else:
                self.out.anomaly(CLIENT, self.phase, "empty-command", "empty command line", frame)
            return
        self.command_seen = True
        tag = match.group(1).decode("latin-1")
        verb = match.group(3).decode("latin-1").upper()
        uid = bool(match.group(2))
        known = verb in KNOWN_COMMANDS
        if not known and not _printable(raw):
            self.out.anomaly(CLIENT, self.phase, "garbage", f"non-text bytes where a command was expected: "
                             f"{printable(raw, 60)}", frame)
            return
        cmd = building if building is not None and building.tag == tag else None
        if cmd is None:
            cmd = Pending(tag, verb, first, ts, self._phase_for(verb), uid=uid, sent_as=_sent_as(match))
            self._register(cmd, frame)
        if not cmd.emitted:
            self._emit_command(cmd, pieces, first, frame=frame, ts=ts)
        cmd.ts = ts  # its last byte (after any literals): the server's latency counts from here
        if refused:  # a server may answer NO instead of '+' (RFC 3501 7.5): no violation, but worth saying
            self._note(frame, ts, first, cmd.phase,
                       f"the server refused {cmd.verb}'s synchronizing literal; the command ends here")
        if verb == "STARTTLS" and not refused:
            self.starttls = cmd
            reader = self.readers[0]
            reader.mode = ReadMode.HOLD
            reader.hold_tag = tag

    def _emit_command(self, cmd: Pending, pieces: list[Piece], first: int, *, frame: int, ts: float,
                      suffix: str = "") -> None:
        """The Command event: at the end of the command, or (APPEND) where the line announces the message."""
        offset = _args_offset(pieces)
        self._check_state(cmd, frame)
        cmd.args = parse_values(pieces, offset)
        cmd.argument = (self._display(cmd, pieces, offset) + " " + suffix).strip()
        cmd.emitted = True
        cmd.shown_frame = frame
        self.phase = cmd.phase
        self._command_effects(cmd, frame, ts)
        known = cmd.verb in KNOWN_COMMANDS
        self.out.add(Command(direction=CLIENT, ts=ts, frame=frame, first_frame=first, phase=cmd.phase,
                             verb=cmd.verb, argument=cmd.argument, tag=cmd.tag, uid=cmd.uid, known=known,
                             sent_as=cmd.sent_as))
        if not known:
            self.out.anomaly(CLIENT, cmd.phase, "unknown-command",
                             f"unknown command {printable(cmd.verb.encode('utf-8', 'surrogateescape'), 40)}",
                             frame)

    def _register(self, cmd: Pending, frame: int) -> None:
        if len(self.tag_shapes) <= MAX_TAG_SHAPES:
            self.tag_shapes.add(_tag_shape(cmd.tag.encode("latin-1")))
        if cmd.tag in self.pending:
            self.out.anomaly(CLIENT, cmd.phase, "duplicate-tag",
                             f"tag {cmd.tag} reused while still in flight", frame)
        elif len(self.pending) >= self.limits.max_pending_commands:
            self.pending.pop(next(iter(self.pending)))
            self.out.anomaly(CLIENT, cmd.phase, "too-many-tags",
                             "too many commands in flight; the oldest is dropped", frame)
        self.pending[cmd.tag] = cmd

    def _phase_for(self, verb: str) -> Phase:
        phase = COMMAND_PHASE.get(verb)
        if phase is not None:
            return phase
        if verb == "NOOP" or verb not in KNOWN_COMMANDS:
            if self.state in AUTHED:
                return Phase.TRANSFER
            return self.phase if self.phase not in (Phase.GREETING, Phase.TLS) else Phase.NEGOTIATION
        return Phase.TRANSFER

    def _check_state(self, cmd: Pending, frame: int) -> None:
        allowed = COMMAND_STATES.get(cmd.verb)
        if allowed is None:
            return
        if not self.state_known:
            # a capture that starts mid-session: the first command tells where the session stands
            if self.state is S.CONNECTED and allowed is not ANY and self.inferred is None:
                guess = (S.SELECTED if allowed == {S.SELECTED} else S.AUTHENTICATED if allowed == AUTHED
                         else S.NOT_AUTHENTICATED)
                self.inferred = (guess, frame, f"inferred from {cmd.verb}: the capture has no greeting")
                if self.server_spoke or self.server_bytes:
                    self._settle_inference()
            return
        if self.state not in allowed and self.state is not S.CONNECTED and not self.lost_bytes:
            self.out.anomaly(CLIENT, cmd.phase, "command-out-of-state",
                             f"{cmd.verb} is not allowed in the {self.state.value} state", frame)

    def _display(self, cmd: Pending, pieces: list[Piece], offset: int) -> str:
        """The argument as shown: literals as values or ``{n}``, secrets redacted."""
        verb, show = cmd.verb, self.limits.show_secrets
        if verb == "LOGIN" and not show and len(cmd.args) >= 2:
            return f"{render(cmd.args[0])} [password]"
        if verb == "AUTHENTICATE" and not show and len(cmd.args) >= 2 and as_text(cmd.args[1]) != "=":
            return f"{render(cmd.args[0])} [initial response]"
        out: list[str] = []
        for i, piece in enumerate(pieces):
            if isinstance(piece, Literal):
                out.append(piece.marker if piece.data is None else render(piece.data, 200))
            else:
                out.append(piece[offset if i == 0 else 0 :].decode("utf-8", "replace"))
        return "".join(out).strip()

    def _command_effects(self, cmd: Pending, frame: int, ts: float) -> None:
        verb, args = cmd.verb, cmd.args
        if verb == "LOGIN":
            cmd.login_user = as_text(args[0]) if args else None
            cmd.login_secret = as_text(args[1]) if len(args) > 1 else None
            self.user = cmd.login_user
        elif verb == "AUTHENTICATE":
            mech = (as_text(args[0]) if args else None) or "?"
            cmd.sasl = SaslExchange(mech.upper())
            if len(args) > 1:
                cmd.sasl.initial(as_text(args[1]))
                if cmd.sasl.sent_username:
                    self.user = cmd.sasl.sent_username
        elif verb in ("SELECT", "EXAMINE", "CREATE", "DELETE", "SUBSCRIBE", "UNSUBSCRIBE", "STATUS", "APPEND",
                      "RENAME", "GETQUOTAROOT", "MYRIGHTS", "GETACL"):
            name = as_text(args[0]) if args else None
            cmd.mailbox = decode_mailbox(name) if name is not None else None
        elif verb in ("COPY", "MOVE"):
            name = as_text(args[1]) if len(args) > 1 else None
            cmd.mailbox = decode_mailbox(name) if name is not None else None
        elif verb == "FETCH":
            cmd.sections = requested_sections(args[1:])
        elif verb == "IDLE":
            self.idle = cmd
            self._timeline(frame, "idle")
        elif verb == "ID":
            self.client_id = _id_params(args[0] if args else None)

    def _sasl_response(self, cmd: Pending, raw: bytes, first: int, frame: int, ts: float) -> None:
        assert cmd.sasl is not None
        text = raw.decode("utf-8", "replace").strip()
        detail = command_as_response(text, KNOWN_COMMANDS, exchange=f"AUTHENTICATE {cmd.sasl.mechanism}",
                                     challenge="+", reference="RFC 9051 §6.2.2", tagged=True)
        cmd.sasl.client(text, is_command=detail is not None)
        cmd.sasl_turn = False
        if detail is not None:
            self.out.anomaly(CLIENT, Phase.AUTH, COMMAND_AS_RESPONSE, detail, frame)
        cmd.ts = ts  # the server's next response answers this line: latency counts from here
        if cmd.sasl.sent_username:
            self.user = cmd.sasl.sent_username
        shown = text if self.limits.show_secrets or text == "*" else "[SASL response]"
        self.out.add(Command(direction=CLIENT, ts=ts, frame=frame, first_frame=first, phase=Phase.AUTH,
                             verb="", argument=shown))

    def _open_append(self, r: Reader, cmd: Pending, values: list[Value]) -> None:
        self._close_message()
        box = as_text(values[0]) if values else None
        mailbox = decode_mailbox(box) if box is not None else None
        # MULTIAPPEND (RFC 3502): each message has its own flags and date, after the literal before it
        last = max((i for i, v in enumerate(values) if isinstance(v, Literal)), default=0)
        flags = next((flag_list(v) for v in values[last + 1:] if isinstance(v, list)), [])
        date = next((as_text(v) for v in values[last + 1:] if isinstance(v, bytes)), None)
        detail: dict[str, Any] = {"section": "APPEND", "tag": cmd.tag, "mailbox": mailbox}
        if flags:
            detail["flags"] = flags
        if date:
            detail["date"] = date
        self.message = OpenMessage("imap-append", r.first_frame or self.out.frame, CLIENT, detail)
        cmd.appends.append({"mailbox": mailbox, "flags": flags, "date": date})

    # ------------------------------------------------------------------ server responses
    def _settle_inference(self) -> None:
        """No greeting came first: the state the first command suggested stands."""
        if self.inferred is None:
            return
        guess, frame, why = self.inferred
        self.inferred = None
        if not self.state_known and self.state is S.CONNECTED:
            self.state_known = True
            self._set_state(guess, frame, why)

    def _early_greeting(self, kind: str) -> bool:
        """Can the server's first response be its greeting although commands are already in flight?

        The capture may have begun mid-session, or the client talked before the greeting (a client that
        does not wait, a pregreet bot): nothing in the stream says which. The first server response is
        the greeting when it is a greeting's kind and no command in flight would explain it as its data.
        """
        if self.server_spoke or self.lost_bytes or self.greeting is not None or self.state is not S.CONNECTED:
            return False
        verbs = {p.verb for p in self.pending.values()}
        if kind == "BYE":
            return "LOGOUT" not in verbs
        if kind == "OK":
            return not verbs & {"SELECT", "EXAMINE", "IDLE"}
        return kind == "PREAUTH"

    def _response(self, pieces: list[Piece], first: int, frame: int, ts: float) -> None:
        raw = pieces[0] if isinstance(pieces[0], bytes) else b""
        self.response_serial += 1
        if self.tail_lines:
            self.server_spoke = True  # the server was past its greeting when the capture began
        if not (raw.startswith(b"* ") and self.inferred is not None):
            self._settle_inference()  # an untagged response may still be the greeting (see _untagged)
        if raw.startswith(b"+"):
            self._continuation(raw[1:].strip().decode("utf-8", "replace"), first, frame, ts)
        elif raw.startswith(b"* ") or raw == b"*":
            self._untagged(pieces, first, frame, ts)
        else:
            self._tagged(pieces, first, frame, ts)
        self.server_spoke = True
        self._response_done()

    def _continuation(self, text: str, first: int, frame: int, ts: float) -> None:
        client = self.readers[0]
        cmd: Pending | None = None
        if client.mode is ReadMode.HOLD and client.hold_literal is not None:
            cmd = self.pending.get(client.hold_tag or "")
        if cmd is None:
            cmd = self._sasl_waiting() or self.idle or self.building
        if cmd is None:
            cmd = next((p for p in reversed(self.pending.values()) if p.verb in ("APPEND", "LOGIN")), None)
        phase = cmd.phase if cmd else self.phase
        # A '+' that releases a literal answers no command: it lets the command go on (the renderers
        # keep the command waiting for its tagged answer). SASL challenges and IDLE's '+' do answer.
        answering = cmd is not None and (cmd.verb == "AUTHENTICATE" or cmd is self.idle)
        self.out.add(Reply(direction=SERVER, ts=ts, frame=frame, first_frame=first, phase=phase, status="+",
                           lines=(text,), answers=cmd.verb if cmd is not None and answering else None,
                           latency=max(0.0, ts - cmd.ts) if cmd is not None and answering else None, tag=None,
                           answers_frame=cmd.answered_frame if cmd is not None and answering else None))
        if client.mode is ReadMode.HOLD and client.hold_literal is not None:
            self._release(client, go_on=True)
        elif cmd is not None and cmd.verb == "AUTHENTICATE" and cmd.sasl is not None:
            cmd.sasl.server(text)
            cmd.sasl_turn = True
        elif cmd is not None and cmd is self.idle:
            cmd.idling = True
        elif cmd is None:
            self.out.anomaly(SERVER, self.phase, "unexpected-continuation",
                             "'+' with no command waiting for it", frame)

    def _owner(self, kind: str) -> Pending | None:
        wanted = UNTAGGED_OWNERS.get(kind, ())
        for cmd in self.pending.values():
            if cmd.verb in wanted:
                return cmd
        if self.idle is not None:
            return self.idle
        return next(reversed(self.pending.values())) if self.pending else None

    def _untagged(self, pieces: list[Piece], first: int, frame: int, ts: float) -> None:
        raw = pieces[0] if isinstance(pieces[0], bytes) else b""
        words = raw[2:].split(b" ", 2)
        number: int | None = None
        if words and words[0].isdigit() and len(words) > 1:
            number = parse_count(words[0].decode("latin-1"))
            kind = words[1].decode("latin-1").upper()
            offset = 2 + len(words[0]) + 1 + len(words[1])
        else:
            kind = words[0].decode("latin-1").upper() if words else ""
            offset = 2 + len(words[0]) if words else 2
        text = _render_pieces(pieces, 2, self.limits.max_line)
        rest = raw[offset:].strip().decode("utf-8", "replace") if len(pieces) == 1 else ""
        greeting = kind in ("OK", "PREAUTH", "BYE") and number is None
        if greeting and self.state is S.CONNECTED and (not self.pending or self._early_greeting(kind)):
            self._greeting(kind, rest, text, first=first, frame=frame, ts=ts)
            return
        self._settle_inference()
        owner = self._owner(kind)
        phase = Phase.TEARDOWN if kind == "BYE" else (owner.phase if owner else self.phase)
        self.out.add(Reply(direction=SERVER, ts=ts, frame=frame, first_frame=first, phase=phase, status="*",
                           lines=(text,), answers=owner.verb if owner else None,
                           answers_frame=owner.answered_frame if owner else None))
        idle = self.idle is not None and owner is self.idle and (number is not None or kind == "VANISHED")
        if idle:
            update = f"{number} {kind}" if number is not None else text
            self._keep_text(self.idle_updates, "idle_updates", update)
            self._note(frame, ts, first, phase, f"IDLE woken: * {update}")
        values: list[Value] | None = None
        if kind in ("OK", "NO", "BAD") and self.idle is not None and owner is self.idle:
            self._timeline(frame, "idle-status", text=text)  # a keepalive ("* OK Still here"), not a wake-up
        if kind in ("OK", "NO", "BAD", "BYE", "PREAUTH"):
            self._status_untagged(kind, rest, owner, frame=frame, ts=ts, first=first)
        elif kind == "CAPABILITY":
            self.capabilities = rest.split()
        elif kind == "ENABLED":
            self.enabled += [c for c in rest.split() if c not in self.enabled]
        elif kind in ("LIST", "LSUB", "XLIST"):
            values = parse_values(pieces, offset)
            self._list_entry(kind, values)
        elif kind == "STATUS":
            values = parse_values(pieces, offset)
            self._status_entry(values, frame)
        elif kind in ("SEARCH", "SORT", "ESEARCH"):
            if owner is not None:
                found = rest.split() if kind != "ESEARCH" else [rest]
                owner.results += len(found) if kind != "ESEARCH" else _esearch_count(rest)
                owner.result_sample += found[: max(0, 50 - len(owner.result_sample))]
        elif kind == "FLAGS":
            if owner is not None and owner.verb in ("SELECT", "EXAMINE"):
                values = parse_values(pieces, offset)
                owner.select["flags"] = flag_list(values[0]) if values else []
        elif kind == "ID":
            values = parse_values(pieces, offset)
            self.server_id = _id_params(values[0] if values else None)
        elif kind == "NAMESPACE":
            values = parse_values(pieces, offset)
            self.namespace = {key: _namespaces(values[i]) if i < len(values) else []
                              for i, key in enumerate(("personal", "other", "shared"))}
        elif kind == "VANISHED":
            earlier = rest.upper().startswith("(EARLIER)")
            uids = rest[len("(EARLIER)"):].strip() if earlier else rest
            self._keep_text(self.vanished, "vanished", uids)
            box = self.current_box
            gone = _set_size(uids)
            if not earlier and gone and box is not None and isinstance(box.get("exists"), int):
                box["exists"] = max(0, box["exists"] - gone)  # RFC 7162 3.2.10: VANISHED replaces EXPUNGE
            self._timeline(frame, "vanished", uids=uids, earlier=earlier,
                           during=owner.verb if owner else None, idle=idle or None)
        elif number is not None:
            self._numbered(number, kind, pieces, offset, owner=owner, idle=idle, frame=frame, ts=ts,
                           first=first)

    def _greeting(self, kind: str, rest: str, text: str, *, first: int, frame: int, ts: float) -> None:
        early = [p for p in self.pending.values() if p.frame < first]
        if early:
            self.out.anomaly(CLIENT, early[0].phase, "command-before-greeting",
                             f"{early[0].verb} was sent at frame {early[0].frame}, before the server's greeting "
                             f"at frame {first}; its tagged response follows", early[0].frame)
        self.inferred = None
        self.greeting = rest
        self.state_known = True
        self.out.add(Reply(direction=SERVER, ts=ts, frame=frame, first_frame=first, phase=Phase.GREETING,
                           status="*", lines=(text,)))
        code, arg, _ = resp_code(rest)
        if code == "CAPABILITY":
            self.capabilities = arg.split()
        self._transition(f"greeting {kind}", frame, ts, first)
        if kind == "BYE":
            self.out.anomaly(SERVER, Phase.GREETING, "refused", f"the server refuses the connection: {rest}",
                             frame)

    def _status_untagged(self, kind: str, rest: str, owner: Pending | None, *, frame: int, ts: float,
                         first: int) -> None:
        code, arg, text = resp_code(rest)
        target = owner.select if owner is not None and owner.verb in ("SELECT", "EXAMINE") else None
        if code == "CAPABILITY":
            self.capabilities = arg.split()
        elif code == "ALERT":
            self._keep_text(self.alerts, "alerts", text)
            self._note(frame, ts, first, self.phase, f"server alert: {text}")
        elif code in ("UIDVALIDITY", "UIDNEXT", "UNSEEN", "HIGHESTMODSEQ") and target is not None:
            value = parse_count(arg)
            target[code.lower()] = value if value is not None else arg
        elif code == "PERMANENTFLAGS" and target is not None:
            target["permanent_flags"] = arg.strip("()").split()
        elif code == "CLOSED":
            self._timeline(frame, "closed", mailbox=(self.current_box or {}).get("name"))
        if kind == "BYE":
            if owner is None or owner.verb != "LOGOUT":
                reason = text or rest
                said = f"the server closes the session: {reason}" if reason.strip() else "the server closes the session"
                self._note(frame, ts, first, Phase.TEARDOWN, said)
            self._transition("BYE", frame, ts, first)
        elif kind in ("NO", "BAD") and owner is None:
            self._note(frame, ts, first, self.phase, f"server warning: {kind} {rest}")

    def _numbered(self, number: int, kind: str, pieces: list[Piece], offset: int, *, owner: Pending | None,
                  idle: bool, frame: int, ts: float, first: int) -> None:
        box = self.current_box
        selecting = owner is not None and owner.verb in ("SELECT", "EXAMINE")
        during = owner.verb if owner else None
        if kind in ("EXISTS", "RECENT"):
            if selecting and owner is not None:
                owner.select[kind.lower()] = number
            else:
                if box is not None:
                    box[kind.lower()] = number
                self._timeline(frame, kind.lower(), count=number, during=during, idle=idle or None)
        elif kind == "EXPUNGE":
            self.expunged.append(number)
            if box is not None and isinstance(box.get("exists"), int) and box["exists"] > 0:
                box["exists"] -= 1
            self._timeline(frame, "expunge", msg=number, during=during, idle=idle or None)
        elif kind == "FETCH":
            self._fetch_response(number, pieces, offset, owner=owner, idle=idle, frame=frame, ts=ts,
                                 first=first)

    def _fetch_response(self, number: int, pieces: list[Piece], offset: int, *, owner: Pending | None,
                        idle: bool, frame: int, ts: float, first: int) -> None:
        items = fetch_items(parse_values(pieces, offset))
        entry: dict[str, Any] = {"frame": frame, "msg": number}
        uid = as_int(items.get("UID"))
        if uid is not None:
            entry["uid"] = uid
        if "FLAGS" in items:
            entry["flags"] = flag_list(items["FLAGS"])
        for name, key in (("INTERNALDATE", "internaldate"), ("RFC822.SIZE", "size"), ("MODSEQ", "modseq")):
            if name in items:
                value = items[name]
                entry[key] = as_int(value) if key == "size" else (
                    render(value) if isinstance(value, list) else as_text(value))
        env = envelope(items["ENVELOPE"]) if "ENVELOPE" in items else None
        if env is not None:
            entry["envelope"] = env
            sender = ", ".join(env["from"][:2]) or "?"
            self._note(frame, ts, first, owner.phase if owner else self.phase,
                       f"message {number}: “{env['subject'] or ''}” from {sender}")
        structure = items.get("BODYSTRUCTURE", items.get("BODY"))
        if isinstance(structure, list):
            parts = bodystructure(structure)
            entry["parts"] = parts
            if parts:
                self._note(frame, ts, first, owner.phase if owner else self.phase,
                           f"message {number} structure: {describe_parts(parts)}")
        sections = [ref.label for ref in (section_ref(k) for k in items) if ref is not None]
        if sections:
            entry["sections"] = sections
        msg = self.message
        if msg is not None and msg.response == self.response_serial and msg.origin == "imap-fetch":
            if uid is not None:
                msg.detail["uid"] = uid
            if "flags" in entry:
                msg.detail["flags"] = entry["flags"]
            if owner is not None:
                msg.detail["tag"] = owner.tag
        only_flags = set(items) <= {"FLAGS", "UID", "MODSEQ"}
        if owner is None or owner.verb != "FETCH" or idle:
            if "FLAGS" in items:
                self._timeline(frame, "flags", msg=number, uid=uid, flags=entry["flags"],
                               during=owner.verb if owner else None, idle=idle or None)
            if only_flags:
                return
        self._keep(self.fetches, "fetches", entry)

    def _list_entry(self, kind: str, values: list[Value]) -> None:
        if len(values) < 3:
            return
        name_raw = as_text(values[2])
        if name_raw is None:
            return
        name = decode_mailbox(name_raw)
        if name not in self.folders:
            if len(self.folders) < MAX_RECORDS and self.listed.take(len(name)):
                self.folders.append(name)
                self._keep(self.mailboxes, "mailboxes", {
                    "name": name, "flags": flag_list(values[0]), "delimiter": as_text(values[1]),
                    "command": kind})
            else:
                self.dropped["folders"] = self.dropped.get("folders", 0) + 1

    def _status_entry(self, values: list[Value], frame: int) -> None:
        if len(values) < 2:
            return
        name = as_text(values[0])
        items: dict[str, int | str | None] = {}
        data = values[1] if isinstance(values[1], list) else []
        for i in range(0, len(data) - 1, 2):
            key = as_text(data[i])
            if key is not None:
                number = as_int(data[i + 1])
                items[key.upper()] = number if number is not None else as_text(data[i + 1])
        self._keep(self.status, "status", {"frame": frame, "mailbox": decode_mailbox(name) if name else None,
                                           "items": items})

    def _tagged(self, pieces: list[Piece], first: int, frame: int, ts: float) -> None:
        raw = pieces[0] if isinstance(pieces[0], bytes) else b""
        text = raw.decode("utf-8", "replace")
        tag, _, rest = text.partition(" ")
        status, _, detail = rest.partition(" ")
        status = status.upper()
        if status not in ("OK", "NO", "BAD") or not tag:
            self.out.anomaly(SERVER, self.phase, "invalid-response",
                             f"server line is not a response: {printable(raw, 80)}", frame)
            return
        cmd = self.pending.pop(tag, None)
        client = self.readers[0]
        if client.hold_tag == tag and client.mode is ReadMode.HOLD:
            if self.starttls is not None and self.starttls.tag == tag:
                pass  # handled in _completion
            else:
                self._release(client, go_on=status == "OK")
        if cmd is None:
            lost = ", whose command the capture lost" if self.lost_bytes else ""
            if not (self.no_syn and not self.command_seen):  # else: a command sent before the capture began
                self.out.anomaly(SERVER, self.phase, "unknown-tag",
                                 f"tagged {status} for unknown tag {tag}{lost}", frame)
            elif self.phase is Phase.GREETING:  # it answers that command: the capture shows no greeting
                self.phase = Phase.AUTH if self.state is State.CONNECTED else Phase.TRANSFER
            self.out.add(Reply(direction=SERVER, ts=ts, frame=frame, first_frame=first, phase=self.phase,
                               status=status, lines=(detail,), tag=tag))
            if self.no_syn and not self.command_seen:
                self._note(frame, ts, first, self.phase, f"tagged {status} for {tag}: it answers a command sent "
                                                         "before the capture began")
            return
        if self.building is cmd and client.mode is not ReadMode.LITERAL:
            # answered before its line was complete (a literal refused, or a line the capture cut):
            # the command ends here. A literal already streaming (LITERAL+) is still sent in full.
            self._end_building(client, refused=status != "OK")
            self.building = None
        # an IDLE the server entered ends when the client sends DONE (RFC 2177): the time until its tagged
        # OK is the client's idling, not the server's latency (that is on the '+' continuation)
        latency = None if cmd.idling else max(0.0, ts - cmd.ts)
        self.out.add(Reply(direction=SERVER, ts=ts, frame=frame, first_frame=first, phase=cmd.phase,
                           status=status, lines=(detail,), answers=cmd.verb, latency=latency,
                           tag=tag, answers_frame=cmd.answered_frame))
        self._completion(cmd, status, detail, first=first, frame=frame, ts=ts)

    def _completion(self, cmd: Pending, status: str, detail: str, *, first: int, frame: int,
                    ts: float) -> None:
        verb, ok = cmd.verb, status == "OK"
        code, arg, _ = resp_code(detail)
        if code == "CAPABILITY":
            self.capabilities = arg.split()
        if verb == "LOGIN":
            extra = {} if ok else {"reason": detail}
            self._auth(cmd, "LOGIN", cmd.login_user, cmd.login_secret, ok, frame=frame, ts=ts, extra=extra)
        elif verb == "AUTHENTICATE" and cmd.sasl is not None:
            sasl = cmd.sasl
            extra = {} if ok else {"reason": detail}
            self._auth(cmd, sasl.mechanism, sasl.username, sasl.secret, ok and not sasl.cancelled,
                       frame=frame, ts=ts, extra=extra, sasl=sasl)
        elif verb in ("SELECT", "EXAMINE"):
            self._selected(cmd, ok, code, detail, frame)
        elif verb in ("CLOSE", "UNSELECT") and ok:
            self._timeline(frame, verb.lower(), mailbox=(self.current_box or {}).get("name"))
            self.current_box = None
        elif verb == "STORE":
            if ok:
                self.stored.append(cmd.argument)
            self._store(cmd, ok, frame)
        elif verb in ("COPY", "MOVE"):
            event: dict[str, Any] = {"set": as_text(cmd.args[0]) if cmd.args else None,
                                     "uid": cmd.uid or None, "to": cmd.mailbox, "ok": ok}
            if code == "COPYUID":
                event["copyuid"] = arg
            self._timeline(frame, verb.lower(), **event)
        elif verb in ("APPEND", "REPLACE"):
            for append in cmd.appends or [{"mailbox": cmd.mailbox}]:
                entry = {"frame": frame, **append, "ok": ok, "status": status}
                if code == "APPENDUID":
                    entry["appenduid"] = arg
                self._keep(self.appends, "appends", entry)
            self._timeline(frame, "append", mailbox=cmd.mailbox, ok=ok,
                           appenduid=arg if code == "APPENDUID" else None)
        elif verb in ("CREATE", "DELETE", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE"):
            target = render(cmd.args[1]) if verb == "RENAME" and len(cmd.args) > 1 else None
            self._timeline(frame, verb.lower(), mailbox=cmd.mailbox, to=target, ok=ok)
        elif verb == "EXPUNGE":
            self._timeline(frame, "expunge-done", ok=ok, uid=cmd.uid or None)
        elif verb in ("SEARCH", "SORT", "THREAD") and ok:
            self._keep(self.searches, "searches", {
                "frame": frame, "command": verb, "uid": cmd.uid, "criteria": cmd.argument[:200],
                "count": cmd.results, "results": cmd.result_sample})
        elif verb == "IDLE":
            if self.idle is cmd:
                self.idle = None
        elif verb == "STARTTLS":
            self._starttls(cmd, ok, frame, ts)
        elif verb == "COMPRESS" and ok:
            self._compress(frame, ts, first, cmd)
        self._transition(f"{verb} {status}", frame, ts, first)
        allowed = COMMAND_STATES.get(verb)
        if ok and self.lost_bytes and allowed not in (None, ANY) and self.state not in (allowed or ()):
            guess = S.SELECTED if allowed == {S.SELECTED} else S.AUTHENTICATED if allowed == AUTHED else None
            if guess is not None:
                self._set_state(guess, frame, f"inferred from {verb} OK: the change was lost in a gap")

    def _auth(self, cmd: Pending, mechanism: str, user: str | None, secret: str | None, ok: bool | None, *,
              frame: int, ts: float, extra: dict[str, str], sasl: SaslExchange | None = None) -> None:
        extra = dict(extra)
        domain = None
        if sasl is not None:
            domain = sasl.domain
            extra.update(sasl.attempt_extra())
            if sasl.extra.get("authzid"):
                extra["authzid"] = sasl.extra["authzid"]
            line = sasl.hashcat() if self.limits.show_secrets else None
            if line:
                extra["hashcat"] = line
        named = user if sasl is None else sasl.sent_username  # not a command the server decoded as a name
        if named:
            self.user = named
        self.out.add(AuthAttempt(direction=CLIENT, ts=ts, frame=frame, first_frame=cmd.frame,
                                 phase=Phase.AUTH, mechanism=mechanism, username=user, secret=secret,
                                 success=ok, domain=domain, extra=extra))

    def _selected(self, cmd: Pending, ok: bool, code: str | None, detail: str, frame: int) -> None:
        info = cmd.select
        entry: dict[str, Any] = {"name": cmd.mailbox or "", "exists": info.get("exists"),
                                 "recent": info.get("recent"),
                                 "uidvalidity": str(info["uidvalidity"]) if "uidvalidity" in info else None,
                                 "read_only": cmd.verb == "EXAMINE" or code == "READ-ONLY"}
        for key in ("uidnext", "unseen", "highestmodseq", "flags", "permanent_flags"):
            if key in info:
                entry[key] = info[key]
        entry["frame"] = frame
        if ok:
            if len(self.selected) < MAX_RECORDS and self.listed.take(DICT_ENTRY_COST):
                self.selected.append(entry)
            else:
                self.dropped["selected"] = self.dropped.get("selected", 0) + 1
            self.current_box = entry
            shown = {k: v for k, v in entry.items() if k != "frame"}
            self._timeline(frame, cmd.verb.lower(), **shown, ok=True)
        else:
            self.current_box = None
            self._timeline(frame, cmd.verb.lower(), mailbox=cmd.mailbox, ok=False, reason=detail)

    def _store(self, cmd: Pending, ok: bool, frame: int) -> None:
        args = cmd.args
        operation = as_text(args[1]) if len(args) > 1 else None
        flags = flag_list(args[2]) if len(args) > 2 else []
        if len(args) > 3 and isinstance(args[1], list):  # STORE set (UNCHANGEDSINCE n) +FLAGS (...)
            operation, flags = as_text(args[2]), flag_list(args[3])
        self._timeline(frame, "store", set=as_text(args[0]) if args else None, uid=cmd.uid or None,
                       operation=operation, flags=flags, ok=ok)

    def _starttls(self, cmd: Pending, ok: bool, frame: int, ts: float) -> None:
        client = self.readers[0]
        self.starttls = None
        if not ok:
            if client.mode is ReadMode.HOLD:
                self._release(client, go_on=False)
            return
        injected = b"".join(d for d, _, _ in client.held) + client.lines.take_all()
        client.held, client.held_bytes, client.hold_tag = [], 0, None
        self.wait.hold(0)
        if injected:
            shown = injected if self.limits.show_secrets else redact_commands(injected)
            self.out.anomaly(CLIENT, Phase.NEGOTIATION, "starttls-injection",
                             f"{len(injected)} bytes of plaintext sent after STARTTLS before the server's OK "
                             f"({printable(shown, 80)}): a server that buffers them executes them inside "
                             "TLS (CVE-2011-0411 class)", frame)
        for reader in self.readers:
            reader.mode = ReadMode.OPAQUE
            reader.lines.clear()
        self.pending.clear()
        self.phase = Phase.TLS
        self.out.add(TlsStart(direction=SERVER, ts=ts, frame=frame, first_frame=frame, phase=Phase.TLS,
                              mode="starttls"))

    def _compress(self, frame: int, ts: float, first: int, cmd: Pending) -> None:
        mech = (as_text(cmd.args[0]) if cmd.args else "") or ""
        if mech.upper() != "DEFLATE":
            self.out.anomaly(SERVER, cmd.phase, "compress-unknown",
                             f"COMPRESS {mech} accepted; only DEFLATE can be read, the rest is opaque", frame)
            for reader in self.readers:
                reader.mode = ReadMode.OPAQUE
            return
        self.compressed = True
        for reader in self.readers:
            reader.inflater = zlib.decompressobj(-15)
        self._note(frame, ts, first, cmd.phase,
                   "COMPRESS=DEFLATE: both directions are compressed from here on")

    # ------------------------------------------------------------------ messages
    def _server_message_start(self, r: Reader, ref: SectionRef) -> Dest:
        """A FETCH literal that carries message bytes: continue the open message, open one, or hash a part."""
        head = r.pieces[0] if isinstance(r.pieces[0], bytes) else b""
        number = _int_word(head, 1)
        kind = ref.kind
        msg = self.message
        if msg is not None and msg.origin == "imap-fetch" and msg.msg == number and msg.ref is not None:
            same_response = msg.response == self.response_serial + 1
            whole_header = msg.ref.section == "HEADER" or msg.ref.item == "RFC822.HEADER"
            if kind == "text" and msg.ref.kind == "header" and whole_header and same_response \
                    and msg.ref.origin is None and ref.origin is None and not msg.joined:
                msg.detail["section"] = f"{msg.ref.label}+{ref.label}"
                msg.ref = ref
                msg.joined = True
                msg.literal_done = False
                return Dest.MESSAGE
            next_chunk = ref.origin is not None and ref.origin > 0 and ref.origin == msg.bytes + msg.missing
            if kind == "message" and msg.continuable and msg.ref.kind == "message" and next_chunk:
                msg.detail["chunks"] = msg.detail.get("chunks", 1) + 1
                msg.response = self.response_serial + 1
                msg.ref = ref
                msg.continuable = False
                msg.literal_done = False
                return Dest.MESSAGE
        if kind in {"part", "text"} or (ref.origin is not None and ref.origin > 0):
            return Dest.PART
        self._close_message()
        complete = kind == "message" and ref.origin is None
        detail: dict[str, Any] = {"section": ref.label, "msg": number}
        if ref.origin is not None:
            detail["partial"] = True
            detail["origin"] = ref.origin
        self.message = OpenMessage("imap-fetch", r.first_frame or self.out.frame, SERVER, detail,
                                   complete=complete, msg=number, ref=ref, response=self.response_serial + 1)
        return Dest.MESSAGE

    def _response_done(self) -> None:
        """A server response is complete: its message ends now, unless a later chunk may continue it."""
        msg = self.message
        if msg is None or msg.origin != "imap-fetch" or msg.response != self.response_serial \
                or not msg.literal_done:
            return
        ref = msg.ref
        if ref is not None and ref.kind == "message" and ref.origin is not None:
            asked = self._requested_length(msg)
            literal = msg.bytes + msg.missing - ref.origin
            if asked is not None and literal < asked:
                # the chunk came back short: the whole message has been fetched
                msg.complete = msg.missing == 0 and msg.detail.get("origin") == 0
                if msg.complete:
                    msg.detail["partial"] = False
                self._close_message()
                return
            if asked is not None and literal == asked:
                msg.continuable = True
                return
        if msg.joined:
            msg.complete = msg.missing == 0
        self._close_message()

    def _requested_length(self, msg: OpenMessage) -> int | None:
        tag = msg.detail.get("tag")
        cmd = self.pending.get(tag) if isinstance(tag, str) else None
        if cmd is None:
            return None
        return next((r.length for r in cmd.sections if r.kind == "message" and r.length is not None), None)

    def _close_message(self) -> None:
        msg = self.message
        if msg is None:
            return
        self.message = None
        detail = {k: v for k, v in msg.detail.items() if v is not None}
        complete = msg.complete and msg.missing == 0 and msg.literal_done
        if msg.origin == "imap-fetch":
            self.fetched += 1
        else:
            self.appended += 1
        self.out.add(MessageEnd(direction=msg.direction, ts=msg.end_ts or self.out.ts,
                                frame=msg.end_frame or self.out.frame, first_frame=msg.first_frame,
                                phase=Phase.TRANSFER, origin=msg.origin, complete=complete,
                                missing_bytes=msg.missing, detail=detail))

    # ------------------------------------------------------------------ state and records
    def _transition(self, trigger: str, frame: int, ts: float, first: int) -> None:
        target = TRANSITIONS.get(self.state, {}).get(trigger)
        if target is None:
            return
        self.state_known = True
        if target is not self.state:
            self._set_state(target, frame, trigger)

    def _set_state(self, state: State, frame: int, why: str) -> None:
        old = self.state
        self.state = state
        self.states.append({"state": state.value, "frame": frame, "trigger": why})
        if why.startswith("inferred"):
            # the captions narrate ordinary state changes; one the capture does not show deserves a row note
            self._note(frame, self.out.ts, frame, self.phase, f"IMAP state: {old.value} → {state.value} ({why})",
                       force=True)

    def _timeline(self, frame: int, event: str, **fields: Any) -> None:
        entry: dict[str, Any] = {"frame": frame, "event": event}
        entry.update({k: v for k, v in fields.items() if v is not None})
        self._keep(self.timeline, "timeline", entry)

    def _keep(self, bucket: list[dict[str, Any]], name: str, entry: dict[str, Any]) -> None:
        if len(bucket) < MAX_RECORDS and self.listed.take(DICT_ENTRY_COST):
            bucket.append(entry)
        else:
            self.dropped[name] = self.dropped.get(name, 0) + 1

    def _keep_text(self, bucket: list[str], name: str, text: str) -> None:
        if len(bucket) < MAX_RECORDS and self.listed.take(len(text)):
            bucket.append(text)
        else:
            self.dropped[name] = self.dropped.get(name, 0) + 1

    def _note(self, frame: int, ts: float, first: int, phase: Phase, text: str, *,
              force: bool = False) -> None:
        if self.notes >= MAX_NOTES and not force:
            return
        self.notes += 1
        self.out.add(Note(direction=SERVER, ts=ts, frame=frame, first_frame=first, phase=phase, text=text))

    # ------------------------------------------------------------------ gaps and end
    def _resyncs(self, r: Reader, text: bytes) -> bool:
        """After a gap, does this line start a command/response we can trust?"""
        if r.direction is CLIENT:
            if self.idle is not None and text.strip().upper() == b"DONE":
                return True
            return self._plausible_command(text)
        if text.startswith(b"+ ") or text == b"+":
            # a message line can read "+ added line" (a patch): only a command waiting for '+' trusts one
            return self.building is not None or self.idle is not None or self._sasl_waiting() is not None \
                or any(p.verb in ("APPEND", "REPLACE", "LOGIN", "AUTHENTICATE") for p in self.pending.values())
        if text.startswith(b"* "):
            words = text[2:].split(b" ", 2)
            if words and words[0].isdigit():
                return len(words) > 1 and words[1].upper().decode("latin-1") in NUMBERED_KINDS
            return bool(words) and words[0].upper().decode("latin-1") in UNTAGGED_KINDS
        tag, _, rest = text.partition(b" ")
        return tag.decode("latin-1") in self.pending and rest[:3].upper() in (b"OK ", b"NO ", b"BAD", b"OK")

    def _plausible_command(self, text: bytes) -> bool:
        """After lost client bytes: a line that can only be a command, not a line of a message literal.

        A known verb is not enough ("to fetch the file" reads as tag ``to``, FETCH): the tag must look like
        the client's tags so far, and commands with a fixed syntax must have it.
        """
        match = TAG_VERB.match(text)
        if match is None:
            return False
        verb = match.group(3).decode("latin-1").upper()
        if verb not in KNOWN_COMMANDS:
            return False
        if self.tag_shapes and len(self.tag_shapes) <= MAX_TAG_SHAPES \
                and _tag_shape(match.group(1)) not in self.tag_shapes:
            return False
        rest = text[match.end():].strip()
        uid = bool(match.group(2))
        if verb in NO_ARGUMENTS or (verb == "EXPUNGE" and not uid):
            return not rest
        if verb in ("FETCH", "STORE", "COPY", "MOVE", "EXPUNGE"):
            return SEQUENCE_SET.match(rest.split(b" ", 1)[0]) is not None
        return True

    def _skip_literal_after_gap(self, r: Reader, text: bytes) -> None:
        """A line skipped while resynchronising that announces a message literal: skip the literal too."""
        match = LITERAL_AT_END.search(text)
        if match is not None and r.direction is SERVER and MESSAGE_ITEM.search(text[: match.start()]):
            size = int(match.group(2))
            r.literal = LiteralState(size, size, bool(match.group(1)), True, Dest.SKIP)
            r.mode = ReadMode.LITERAL if size else ReadMode.LINE

    def _gap(self, gap: StreamGap) -> None:
        r = self.readers[0 if gap.direction is CLIENT else 1]
        if r.mode is ReadMode.OPAQUE:
            return
        self.lost_bytes = True
        if gap.direction is CLIENT and r.mode is ReadMode.HOLD and r.hold_literal is not None:
            # the client sent bytes while waiting for '+' (it did not wait, or the capture shows the '+'
            # late): they and the lost ones are the literal, and its byte count keeps the framing
            self._release(r, go_on=True)
        lit = r.literal
        if r.inflater is not None:
            r.inflater = None
            r.mode = ReadMode.OPAQUE
            r.lines.clear()
            detail = "the compressed stream cannot be inflated past lost bytes; the rest of it is opaque"
            if lit is not None and lit.dest is Dest.MESSAGE and self.message is not None:
                self.message.missing += lit.left
                self.message.complete = False
                self._close_message()
        elif r.mode is ReadMode.LITERAL and lit is not None:
            used = min(gap.nbytes, lit.left)
            lit.left -= used
            lit.missing += used
            if lit.dest is Dest.MESSAGE and self.message is not None:
                self.message.complete = False
            detail = f"inside a {lit.size}-byte literal; its byte count keeps the framing"
            if lit.left == 0:
                self._literal_end(r, lit, gap.frame, gap.ts)
                if gap.nbytes > used:
                    self._lose_line(r)
                    detail += "; the gap runs past its end: resynchronising on the next command/response"
        elif r.mode is ReadMode.HOLD:
            r.held, r.held_bytes, r.hold_tag, r.hold_literal = [], 0, None, None
            self.wait.hold(0)
            self._lose_line(r)
            detail = "resynchronising on the next command/response"
        else:
            self._lose_line(r)
            detail = "resynchronising on the next command/response"
        if gap.direction is SERVER and self.readers[0].mode is ReadMode.HOLD \
                and self.readers[0].hold_literal is not None:
            self._release(self.readers[0], go_on=True)  # the '+' may have been in the lost bytes
        self.out.add(GapEvent(direction=gap.direction, ts=gap.ts, frame=gap.frame, first_frame=gap.frame,
                              phase=self.phase, nbytes=gap.nbytes, detail=detail))

    def _lose_line(self, r: Reader) -> None:
        r.lines.clear()
        if r.pieces and r.direction is SERVER:
            self.response_serial += 1
            self._response_done()
        if r.direction is CLIENT and self.building is not None:
            self.building = None
        r.reset_line()
        r.mode = ReadMode.LINE
        r.resync = True
        msg = self.message
        if msg is not None and msg.direction is r.direction and not msg.literal_done:
            msg.complete = False
            self._close_message()

    def _eof(self, eof: Eof) -> None:
        r = self.readers[0 if eof.direction is CLIENT else 1]
        lit = r.literal
        if r.mode is ReadMode.LITERAL and lit is not None:
            if lit.dest is Dest.MESSAGE:
                self.out.anomaly(eof.direction, self.phase, "incomplete-literal",
                                 f"the stream ended {lit.left} bytes before the end of a {lit.size}-byte "
                                 "literal", eof.frame)
                lit.missing += lit.left
                lit.left = 0
                self._literal_end(r, lit, eof.frame or self.out.frame, eof.ts)
                if self.message is not None and self.message.direction is eof.direction:
                    self.message.complete = False
                    self._close_message()
            r.mode = ReadMode.OPAQUE
        elif r.mode is ReadMode.HOLD and r.held:
            self._release(r, go_on=True)
        if self.message is not None and self.message.direction is eof.direction:
            self._close_message()


# --------------------------------------------------------------------------- helpers


def redact_commands(data: bytes) -> bytes:
    """Client bytes quoted in a note, with credentials hidden as the command rows hide them: LOGIN's
    password, an AUTHENTICATE initial response and the SASL lines after an AUTHENTICATE. Literals are
    framed by their byte count, so a password sent as a literal is found too."""
    out: list[bytes] = []
    in_sasl = False
    pos = 0
    while pos < len(data):
        start = pos
        line, pos = _next_line(data, pos)
        match = TAG_VERB.match(line)
        verb = match.group(3).decode("latin-1").upper() if match else ""
        pieces: list[Piece] = []
        while True:  # the whole command: its lines and literals
            lit = LITERAL_AT_END.search(line) if match is not None else None
            if lit is None or len(pieces) >= MAX_LINE_PIECES:
                pieces.append(line)
                break
            pieces.append(line[: lit.start()])
            size = int(lit.group(2))
            pieces.append(Literal(size, data[pos : pos + size]))
            pos = min(len(data), pos + size)
            if pos >= len(data):
                break
            line, pos = _next_line(data, pos)
        raw = data[start:pos]
        eol = raw[len(raw.rstrip(b"\r\n")):]
        if match is not None and verb in KNOWN_COMMANDS:
            in_sasl = False
        if match is not None and verb in ("LOGIN", "AUTHENTICATE"):
            args = parse_values(pieces, match.end())
            head = match.group(0)
            if verb == "LOGIN":
                raw = head + (b" " + render(args[0]).encode("utf-8") if args else b"") + b" [password]" + eol
            else:
                raw = head + (b" " + render(args[0]).encode("utf-8") if args else b"")
                if len(args) > 1:
                    raw += b" =" if as_text(args[1]) == "=" else b" [initial response]"
                raw += eol
                in_sasl = True
        elif in_sasl and verb not in KNOWN_COMMANDS and raw.strip() not in (b"", b"*"):
            raw = b"[SASL response]" + eol
        out.append(raw)
    return b"".join(out)


def _next_line(data: bytes, pos: int) -> tuple[bytes, int]:
    """The line at ``pos`` (without its line end) and where the next one starts."""
    nl = data.find(b"\n", pos)
    end = len(data) if nl < 0 else nl + 1
    return data[pos:end].rstrip(b"\r\n"), end



def _args_offset(pieces: list[Piece]) -> int:
    head = pieces[0] if pieces and isinstance(pieces[0], bytes) else b""
    match = TAG_VERB.match(head)
    return match.end() if match else 0


def _tag_shape(tag: bytes) -> bytes:
    return re.sub(rb"[0-9]+", b"0", tag.upper())


def _sent_as(match: re.Match[bytes]) -> str | None:
    """The command word(s) of a TAG_VERB match as written, if not in the canonical upper case."""
    words = [w.decode("latin-1") for w in match.group(2, 3) if w]
    sent = " ".join(words)
    return sent if sent != sent.upper() else None


def _set_size(text: str) -> int:
    """How many numbers a sequence set names (``7,9:11`` → 4); 0 where it is not one (``*``, garbage)."""
    total = 0
    for item in text.strip().split(","):
        low, _, high = item.partition(":")
        if not is_count(low, 10) or (high and not is_count(high, 10)):
            return 0
        total += abs(int(high) - int(low)) + 1 if high else 1
    return total


def _esearch_count(rest: str) -> int:
    """The matches an ESEARCH response reports (RFC 4731 3.1): its COUNT, else the size of its ALL set
    of message numbers (a UID set's ranges may span UIDs that do not exist: not a count)."""
    words = rest.split()
    upper = [w.upper() for w in words]
    for name in ("COUNT",) if "UID" in upper else ("COUNT", "ALL"):
        if name in upper:
            i = upper.index(name)
            value = words[i + 1] if i + 1 < len(words) else ""
            if name == "COUNT":
                return parse_count(value, 11) or 0
            return _set_size(value)
    return 0


def _verb_of(raw: bytes) -> str:
    match = TAG_VERB.match(raw)
    return match.group(3).decode("latin-1").upper() if match else ""


def _int_word(raw: bytes, index: int) -> int | None:
    words = raw.split(b" ", index + 1)
    if len(words) > index and words[index].isdigit() and len(words[index]) < 20:
        return int(words[index])
    return None


def _render_pieces(pieces: list[Piece], start: int, limit: int) -> str:
    out: list[str] = []
    size = 0
    for i, piece in enumerate(pieces):
        if isinstance(piece, Literal):
            text = piece.marker if piece.data is None else render(piece.data, 200)
        else:
            text = piece[start if i == 0 else 0 :].decode("utf-8", "replace")
        out.append(text)
        size += len(text)
        if size > limit:
            break
    joined = "".join(out)
    return joined if len(joined) <= limit else joined[:limit] + "…"


def _id_params(value: Value) -> dict[str, str | None] | None:
    if not isinstance(value, list):
        return None
    out: dict[str, str | None] = {}
    for i in range(0, len(value) - 1, 2):
        key = as_text(value[i])
        if key is not None and len(out) < 30:
            out[key.lower()] = as_text(value[i + 1])
    return out


def _namespaces(value: Value) -> list[dict[str, str | None]]:
    """One NAMESPACE class (RFC 2342): ``(("" "/") ("Shared/" "/"))`` → prefixes and delimiters."""
    if not isinstance(value, list):
        return []
    return [{"prefix": as_text(ns[0]), "delimiter": as_text(ns[1])} for ns in value[:20]
            if isinstance(ns, list) and len(ns) >= 2]


def _printable(raw: bytes) -> bool:
    return all(b >= 0x20 or b == 0x09 for b in raw[:256])


__all__ = ["COMMAND_STATES", "KNOWN_COMMANDS", "TRANSITIONS", "Imap", "State"]
