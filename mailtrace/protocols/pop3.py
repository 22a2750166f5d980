"""POP3 (RFC 1939), CAPA and pipelining (RFC 2449), STLS (RFC 2595), SASL AUTH (RFC 5034), UTF8 (RFC 6856).

The three states of RFC 1939 drive the session and its phases: AUTHORIZATION (greeting, CAPA, STLS,
USER/PASS, APOP, AUTH), TRANSACTION (STAT, LIST, UIDL, RETR, TOP, DELE, RSET, NOOP) and UPDATE
(after QUIT the server removes the messages marked with DELE). The state moves only through
:data:`TRANSITIONS`; :data:`COMMAND_STATES` says where each command is allowed.

Whether a ``+OK`` starts a multi-line response depends on the command it answers (LIST and UIDL
without argument, RETR, TOP, CAPA, AUTH without mechanism): responses are paired with commands
through a FIFO queue (RFC 2449 pipelining keeps them in order) and read by that rule. Multi-line
bodies are dot-unstuffed as they stream, also when the ``+OK`` line and the body share a segment.
Lost bytes inside a body are counted and the body read on to its end; if the end itself was lost,
the next status line that answers a later command ends it (Zeek's AFTER_GAP idea).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from mailtrace.model import (
    CLIENT,
    SERVER,
    AuthAttempt,
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
    LISTED_ENTRY_COST,
    DissectorLimits,
    DotBody,
    EventSink,
    Line,
    LineBuffer,
    ListCharge,
    WaitCharge,
    budget_cut,
    printable,
    printable_text,
)
from mailtrace.protocols.sasl import (
    COMMAND_AS_RESPONSE,
    SaslExchange,
    command_as_response,
    redact_lines,
)


class State(enum.Enum):
    """RFC 1939 session states."""

    AUTHORIZATION = "AUTHORIZATION"
    TRANSACTION = "TRANSACTION"
    UPDATE = "UPDATE"


TRANSITIONS: dict[State, dict[str, State]] = {
    State.AUTHORIZATION: {"PASS +OK": State.TRANSACTION, "APOP +OK": State.TRANSACTION,
                          "AUTH +OK": State.TRANSACTION},
    State.TRANSACTION: {"QUIT +OK": State.UPDATE, "QUIT -ERR": State.UPDATE},
    State.UPDATE: {},
}
"""(state, command and response) → next state. QUIT in AUTHORIZATION ends the session without UPDATE."""

AUTHZ = frozenset({State.AUTHORIZATION})
TRANS = frozenset({State.TRANSACTION})
BOTH = AUTHZ | TRANS
COMMAND_STATES: dict[str, frozenset[State]] = {
    **dict.fromkeys(("USER", "PASS", "APOP", "AUTH", "STLS", "UTF8", "RPOP"), AUTHZ),
    **dict.fromkeys(("STAT", "LIST", "UIDL", "RETR", "TOP", "DELE", "NOOP", "RSET", "LAST", "XTND"), TRANS),
    **dict.fromkeys(("CAPA", "QUIT", "LANG"), BOTH),
}
"""Where each command is allowed (RFC 1939 §4-6, RFC 2449, RFC 2595, RFC 5034, RFC 6856)."""
KNOWN_VERBS = frozenset(COMMAND_STATES)
_VERB_NAMES = {verb: verb for verb in KNOWN_VERBS}

VERB_PHASE: dict[str, Phase] = {
    "CAPA": Phase.NEGOTIATION, "STLS": Phase.NEGOTIATION, "UTF8": Phase.NEGOTIATION,
    "LANG": Phase.NEGOTIATION,
    "USER": Phase.AUTH, "PASS": Phase.AUTH, "APOP": Phase.AUTH, "AUTH": Phase.AUTH, "RPOP": Phase.AUTH,
    "STAT": Phase.TRANSFER, "LIST": Phase.TRANSFER, "UIDL": Phase.TRANSFER, "RETR": Phase.TRANSFER,
    "TOP": Phase.TRANSFER, "DELE": Phase.TRANSFER, "RSET": Phase.TRANSFER, "NOOP": Phase.TRANSFER,
    "LAST": Phase.TRANSFER, "XTND": Phase.TRANSFER,
    "QUIT": Phase.TEARDOWN,
}
ARGUMENTS: dict[str, re.Pattern[str]] = {
    "RETR": re.compile(r"^\d+$"), "DELE": re.compile(r"^\d+$"), "TOP": re.compile(r"^\d+ \d+$"),
    "LIST": re.compile(r"^(?:\d+)?$"), "UIDL": re.compile(r"^(?:\d+)?$"),
    **dict.fromkeys(("STAT", "RSET", "NOOP", "QUIT", "STLS", "CAPA"), re.compile(r"^$")),
    "APOP": re.compile(r"^\S+ [0-9A-Fa-f]{32}$"), "USER": re.compile(r"^.+$"),
}
"""What each command's argument must look like (RFC 1939 §5-7); a mismatch is an anomaly."""
APOP_STAMP = re.compile(r"<[^<>\s]*>")
RESP_CODE = re.compile(r"^\[([A-Za-z0-9/\-]+)\]\s*")
OCTETS = re.compile(r"^\d+ octets\b", re.IGNORECASE)
STATUS_AT_LINE_START = re.compile(rb"(?:^|(?<=\n))(?:\+OK|-ERR)(?=[ \r\n]|$)")
GREETING_WORDS = re.compile(
    r"<[^<>\s]*@[^<>\s]*>|\b(?:POP3?|ready|welcome|hello|greetings?|starting|server|service)\b", re.IGNORECASE)
ANSWER_WORDS = re.compile(
    r"\b(?:maildrop|mailbox|messages?|octets|logged|logging|locked|password|pass|user|accepted|bye|goodbye"
    r"|signing|capabilit\w*|follows|scan|listing|deleted|tls|negotiation)\b", re.IGNORECASE)
"""A ``+OK`` that reads like a greeting (RFC 1939 §4 examples, common servers), not an answer to a command."""
MAX_RECORDS = 10_000
"""Per-session cap for the LIST/UIDL tables and the lists of the ``pop3`` block; the rest are counted."""


@dataclass(slots=True)
class Pending:
    """A command waiting for its response."""

    verb: str
    argument: str
    frame: int
    ts: float
    phase: Phase


@dataclass(slots=True)
class Mailbox:
    """What the session learnt about the mailbox."""

    count: int | None = None
    size: int | None = None
    listing: dict[int, int] = field(default_factory=dict)
    uids: dict[int, str] = field(default_factory=dict)
    retrieved: list[int] = field(default_factory=list)
    top: list[int] = field(default_factory=list)
    marked: list[int] = field(default_factory=list)
    deleted: list[int] = field(default_factory=list)
    undeleted: list[int] = field(default_factory=list)


@dataclass(slots=True)
class Body:
    """A multi-line response being read."""

    cmd: Pending
    status: str
    text: str
    first_frame: int
    reader: DotBody = field(default_factory=DotBody)
    collect: bool = False
    lines: list[str] = field(default_factory=list)
    collected: int = 0
    missing: int = 0
    after_gap: bool = False
    last: bytes = b"\n"
    """The last body byte seen (a status line can only start after a line feed)."""
    size: int = 0
    ends_nl: bool = True
    guessed: bool = False
    """The command was lost; the status line (``+OK n octets``) says it was a RETR."""
    last_frame: int = 0
    last_ts: float = 0.0
    """Where the last body bytes arrived: a response cut short ends there, not at the client's next command."""
    held: bytes = b""
    """The start of a line at the end of the bytes so far that may become a status line answering a later
    command (``+O``, ``-ER``…): it waits for the next bytes, so the resync does not depend on segmentation."""


def multiline_expected(verb: str, argument: str) -> bool:
    """RFC 1939/2449/5034/6856: which commands get a multi-line +OK response."""
    if verb in ("RETR", "TOP", "CAPA"):
        return True
    if verb in ("LIST", "UIDL", "LANG"):
        return not argument.strip()
    return verb == "AUTH" and not argument.strip()  # the mechanism list (RFC 1734 servers)


def hashcat_apop(digest: str, timestamp: str) -> str:
    """APOP is md5(timestamp + password): hashcat mode 20, ``md5($salt.$pass)``, as ``hash:salt``."""
    return f"{digest.lower()}:{timestamp}"


class Pop3:
    """The POP3 dissector (sans-I/O)."""

    __slots__ = ("apop_timestamp", "auth_waiting", "body", "capabilities", "capabilities_before_tls", "client_bytes",
                 "client_gap", "client_hold", "client_lines", "collecting", "dropped", "greeted", "greeting",
                 "limits", "listed", "lost_bytes", "mailbox", "messages", "no_syn", "orphan_lines", "out",
                 "password", "pending", "phase", "retrievals", "sasl", "server_bytes", "server_gap", "server_lines",
                 "state", "state_known", "states", "tail_lines", "tail_open", "tls", "user", "user_command_frame",
                 "user_name", "user_refused", "wait")

    name: ClassVar[str] = "pop3"
    default_ports: ClassVar[frozenset[int]] = frozenset({110})
    tls_ports: ClassVar[frozenset[int]] = frozenset({995})

    def __init__(self, limits: DissectorLimits | None = None) -> None:
        limits = limits or DissectorLimits()
        self.limits = limits
        self.out = EventSink()
        self.client_lines = LineBuffer(limits.max_line, limits.unread_budget)
        self.server_lines = LineBuffer(limits.max_line, limits.unread_budget)
        self.pending: list[Pending] = []  # (a deque is 760 bytes empty, per connection)
        self.state = State.AUTHORIZATION
        self.state_known = False
        self.states: list[dict[str, Any]] = []
        self.greeted = False
        self.greeting: str | None = None
        self.apop_timestamp: str | None = None
        self.tls = False
        self.client_hold: bytearray | None = None
        """Client bytes sent after STLS, held until the server answers it."""
        self.wait = WaitCharge(limits.unread_budget)
        """``client_hold`` as a charge on the run's unread budget."""
        self.collecting = WaitCharge(limits.unread_budget)
        """The lines of the multi-line response being collected (``Body.collected``), likewise."""
        self.listed = ListCharge(limits.listed_budget)
        """The entries of the ``pop3`` block's tables and lists, as a charge on the run's budget of listed
        entries (past it they are counted in ``dropped`` as past :data:`MAX_RECORDS`)."""
        self.body: Body | None = None
        self.server_gap = False
        self.client_gap = False
        self.lost_bytes = False
        """Bytes of either side were lost: the state may have moved unseen (a login in the gap)."""
        self.orphan_lines = -1
        """Lines of a multi-line response whose command was lost (-1: not in one)."""
        self.no_syn = False
        """The capture holds no SYN of this connection (:meth:`began_mid_session`)."""
        self.tail_lines = 0
        """Server lines skipped before the first client command of a capture that begins mid-session."""
        self.tail_open = False
        """Reading the tail of that response (up to its '.' line or the client's first command)."""
        self.sasl: SaslExchange | None = None
        self.auth_waiting = False
        self.user: str | None = None
        self.user_name: str | None = None
        """The name of the USER command a PASS goes with (RFC 1939 7: PASS follows a successful USER)."""
        self.user_command_frame = 0
        self.user_refused = False
        self.password: str | None = None
        self.capabilities: list[str] = []
        self.capabilities_before_tls: list[str] | None = None
        self.mailbox = Mailbox()
        self.retrievals: list[dict[str, Any]] = []
        self.dropped: dict[str, int] = {}
        self.messages = 0
        self.client_bytes = 0
        self.server_bytes = 0
        self.phase = Phase.GREETING

    # ------------------------------------------------------------------ contract
    @classmethod
    def sniff(cls, client: bytes, server: bytes) -> float:
        score = 0.0
        if server:
            if server.startswith((b"+OK", b"-ERR")):
                score += 0.6
            else:
                return -1.0
        if client:
            verb = client.split(None, 1)[0].upper() if client.strip() else b""
            if verb in (b"USER", b"CAPA", b"APOP", b"AUTH", b"STLS"):
                score += 1.0
            elif verb.decode("latin-1") in KNOWN_VERBS:
                score += 0.5
            elif client.strip():
                return -1.0
        return score

    def feed(self, item: StreamItem) -> list[Event]:
        self.out.at(item)
        if isinstance(item, Chunk):
            if item.direction is CLIENT:
                self.client_bytes += len(item.data)
                if self.client_hold is not None:
                    self._hold(item.data, item.frame)
                elif not self.tls:
                    self._client_data(item.data, item.frame, item.ts)
            else:
                self.server_bytes += len(item.data)
                if not self.tls:
                    self._server_data(item.data, item.frame, item.ts)
        elif isinstance(item, StreamGap):
            self._gap(item)
        elif isinstance(item, Eof):
            self._eof(item)
        return self.out.take()

    def finish(self) -> list[Event]:
        """Logins whose outcome the capture does not show are reported with ``success: None``."""
        self._release_held_body()
        if self.body is not None:
            self.out.anomaly(SERVER, Phase.TRANSFER, "incomplete-response",
                             "the multi-line response ends without its final '.' line", self.out.frame)
            self._body_end(self.out.frame, self.out.ts, complete=False)
        for cmd in list(self.pending):
            self._login_result(cmd, None, "", frame=cmd.frame, ts=cmd.ts, extra={"outcome": "not seen"})
        self.pending.clear()
        self.release_unread()
        return self.out.take()

    def release_unread(self) -> None:
        """What the dissector holds unread goes back to the run's budget (``base.WaitCharge``)."""
        self.client_lines.release()
        self.server_lines.release()
        self.wait.hold(0)
        self.collecting.hold(0)

    @property
    def bulk(self) -> Direction | None:
        """The direction whose next bytes are message content, not protocol (see Dissector.bulk)."""
        body = self.body
        if body is None or self.tls or body.cmd.verb not in ("RETR", "TOP"):
            return None  # listings are read line by line: they are protocol, not content
        return SERVER

    @property
    def bulk_left(self) -> int | None:
        """A multi-line response ends at its ``.`` line: the length is not known in advance."""
        return None

    def began_mid_session(self) -> None:
        """The capture may begin inside a response: server lines before the client's first command that
        are no status line are the tail of a response whose command it does not show (``_tail_line``).
        The client's first lines may be the tail of an exchange too (a SASL response, the password of
        an AUTH): they are read as after a hole, skipped until a command (never shown as one)."""
        self.no_syn = True
        self.client_gap = True

    def tls_started(self) -> None:
        """Plaintext resumes after STLS (decrypted): RFC 2595 §4 — the old capabilities are forgotten."""
        self.tls = False
        self.client_hold = None
        self.wait.hold(0)
        self.client_lines.clear()
        self.server_lines.clear()
        if self.capabilities and self.capabilities_before_tls is None:
            self.capabilities_before_tls = self.capabilities
        self.capabilities = []
        self.phase = Phase.NEGOTIATION

    def record(self) -> dict[str, Any]:
        mb = self.mailbox
        block: dict[str, Any] = {
            "state": self.state.value,
            "greeting": self.greeting,
            "apop_timestamp": self.apop_timestamp,
            "capabilities": list(self.capabilities),
            "mailbox": {"messages": mb.count, "octets": mb.size},
            "list": [{"msg": n, "octets": s} for n, s in sorted(mb.listing.items())],
            "uidl": [{"msg": n, "uid": u} for n, u in sorted(mb.uids.items())],
            "retrieved": list(mb.retrieved),
            "top": list(mb.top),
            "marked_deleted": list(mb.marked),
            "deleted": list(mb.deleted),
            "undeleted": list(mb.undeleted),
            "states": list(self.states),
            "capabilities_before_tls": self.capabilities_before_tls,
            "retrievals": list(self.retrievals),
        }
        if self.dropped:
            block["dropped"] = dict(self.dropped)
        return {"user": self.user, "pop3": block, **self.listed.keys()}

    # ------------------------------------------------------------------ client
    def _client_data(self, data: bytes, frame: int, ts: float) -> None:
        if self.wait.charged and self.client_hold is None:
            self.wait.hold(0)  # what was held has been read
        self.client_lines.push(data, frame, ts)
        for line in self.client_lines.lines(frame, ts):
            self._client_line(line)
            if self.client_hold is not None:
                rest = self.client_lines.take_all()
                if rest:
                    self._hold(rest, frame)
                return

    def _hold(self, data: bytes, frame: int) -> None:
        assert self.client_hold is not None
        self.client_hold += data
        if len(self.client_hold) > self.limits.max_wait_bytes or self.wait.hold(len(self.client_hold)):
            self.out.anomaly(CLIENT, self.phase, "no-reply",
                             f"{len(self.client_hold)} client bytes sent after STLS without the server's "
                             "answer" + self.wait.reason(self.limits, len(self.client_hold)), frame)
            self._release_hold(frame)

    def _release_hold(self, frame: int) -> None:
        held, self.client_hold = bytes(self.client_hold or b""), None
        self.wait.hold(0)
        if held:
            self._client_data(held, frame, self.out.ts)

    def _client_line(self, line: Line) -> None:
        if line.too_long:
            cut = budget_cut(line, self.limits)
            self.out.anomaly(CLIENT, self.phase, "line-too-long",
                             f"client line of {len(line.text) + line.too_long} bytes" + (f" {cut}" if cut else ""),
                             line.frame)
        if self.auth_waiting and self.sasl is not None:
            self._sasl_response(line)
            return
        if self.body is not None and not self._pipelining:
            # without PIPELINING (RFC 2449 §6.6) a client waits for the final '.' before its next command;
            # a command now means the server's response ended without one
            verb = self.body.cmd.verb
            if self.body.after_gap:
                self.out.anomaly(SERVER, Phase.TRANSFER, "end-of-response-lost",
                                 f"the end of the {verb} response was lost in a gap", line.frame)
            else:
                self.out.anomaly(SERVER, Phase.TRANSFER, "incomplete-response",
                                 f"the {verb} response has no final '.' line before the client's next command",
                                 line.frame)
            self.body.missing = max(self.body.missing, 1)
            self._body_end(self.body.last_frame or self.body.first_frame, self.body.last_ts or line.ts,
                           complete=False)
        text = line.text.decode("utf-8", "surrogateescape").strip()
        if not text:
            self.out.anomaly(CLIENT, self.phase, "empty-command", "empty command line", line.frame)
            return
        verb, _, argument = text.partition(" ")
        verb_u = verb.upper()
        verb_u = _VERB_NAMES.get(verb_u, verb_u)  # one str per known verb, not one per command kept
        known = verb_u in KNOWN_VERBS
        if self.client_gap:
            if not known:
                return
            self.client_gap = False
        if not known and not printable_ascii(line.text):
            self.out.anomaly(CLIENT, self.phase, "garbage",
                             f"non-text bytes where a command was expected: {printable(line.text, 60)}",
                             line.frame)
            return
        phase = self._phase_for(verb_u)
        self.phase = phase
        shown = argument
        if verb_u == "PASS":
            if self.state_known and not self.lost_bytes and (self.user_command_frame == 0 or self.user_refused):
                why = "the server refused the USER/PASS before it" if self.user_command_frame else "no USER before it"
                self.out.anomaly(CLIENT, phase, "pass-without-user",
                                 f"PASS without a successful USER ({why}; RFC 1939 7)", line.frame)
            self.password = argument
            shown = argument if self.limits.show_secrets else "[password]"
        elif verb_u == "USER":
            self.user = argument.strip()
            self.user_name, self.user_command_frame, self.user_refused = self.user, line.frame, False
        elif verb_u == "APOP":
            name = argument.strip().rpartition(" ")[0]
            self.user = name or argument.strip()
            self.user_name, self.user_command_frame = None, 0  # a PASS after it has no USER
            shown = argument if self.limits.show_secrets else f"{self.user} [digest]"
            if self.greeted and self.apop_timestamp is None:
                self.out.anomaly(CLIENT, phase, "apop-without-timestamp",
                                 "APOP, but the greeting offered no <timestamp> to digest", line.frame)
        elif verb_u == "AUTH" and argument.strip():
            mech, _, initial = argument.strip().partition(" ")
            self.sasl = SaslExchange(mech.upper())
            if initial.strip():
                self.sasl.initial(initial.strip())
                if not self.limits.show_secrets and initial.strip() != "=":
                    shown = f"{mech} [initial response]"
            if self.sasl.sent_username:
                self.user = self.sasl.sent_username
        self.out.add(Command(direction=CLIENT, ts=line.ts, frame=line.frame, first_frame=line.first_frame,
                             phase=phase, verb=verb_u, argument=shown, known=known,
                             sent_as=verb if verb != verb_u else None))
        if not known:
            self.out.anomaly(CLIENT, phase, "unknown-command",
                             f"unknown command {printable_text(verb, 40)}", line.frame)
        else:
            self._check_command(verb_u, argument.strip(), phase, line.frame)
        if len(self.pending) >= self.limits.max_pending_commands:
            self.pending.pop(0)
            self.out.anomaly(CLIENT, phase, "pipeline-overflow", "too many commands without responses",
                             line.frame)
        self.pending.append(Pending(verb_u, argument, line.frame, line.ts, phase))
        if verb_u == "STLS":
            self.client_hold = bytearray()

    def _sasl_response(self, line: Line) -> None:
        assert self.sasl is not None
        self.auth_waiting = False
        text = line.text.decode("utf-8", "replace").strip()
        detail = command_as_response(text, KNOWN_VERBS, exchange=f"AUTH {self.sasl.mechanism}", challenge="+",
                                     reference="RFC 5034 §4")
        self.sasl.client(text, is_command=detail is not None)
        if detail is not None:
            self.out.anomaly(CLIENT, Phase.AUTH, COMMAND_AS_RESPONSE, detail, line.frame)
        if self.sasl.sent_username:
            self.user = self.sasl.sent_username
        shown = text if self.limits.show_secrets or text == "*" else "[SASL response]"
        auth = next((p for p in self.pending if p.verb == "AUTH"), None)
        if auth is not None:
            auth.ts = line.ts  # the server's next response answers this line: latency counts from here
        self.out.add(Command(direction=CLIENT, ts=line.ts, frame=line.frame, first_frame=line.first_frame,
                             phase=Phase.AUTH, verb="", argument=shown))

    @property
    def _pipelining(self) -> bool:
        return any(c.split(" ", 1)[0].upper() == "PIPELINING" for c in self.capabilities)

    def _phase_for(self, verb: str) -> Phase:
        phase = VERB_PHASE.get(verb)
        if phase is not None:
            return phase
        if self.state is State.TRANSACTION:
            return Phase.TRANSFER
        return self.phase if self.phase not in (Phase.GREETING, Phase.TLS) else Phase.NEGOTIATION

    def _check_command(self, verb: str, argument: str, phase: Phase, frame: int) -> None:
        """A command in the wrong state or with a malformed argument is an anomaly (the server says -ERR)."""
        allowed = COMMAND_STATES[verb]
        if not self.state_known:
            if self.state is State.AUTHORIZATION and allowed == TRANS:
                # a capture that starts after the login: the first command shows where the session stands
                self._set_state(State.TRANSACTION, frame, f"inferred from {verb}: the capture has no login")
            self.state_known = True
        elif self.state not in allowed and not self.lost_bytes:
            self.out.anomaly(CLIENT, phase, "command-out-of-state",
                             f"{verb} is not allowed in the {self.state.value} state", frame)
        pattern = ARGUMENTS.get(verb)
        if pattern is not None and not pattern.match(argument):
            self.out.anomaly(CLIENT, phase, "invalid-argument",
                             f"{verb} {printable_text(argument, 60)}: not what RFC 1939 allows", frame)

    # ------------------------------------------------------------------ server
    def _server_data(self, data: bytes, frame: int, ts: float) -> None:
        while data:
            if self.body is not None:
                data = self._body_data(data, frame, ts)
                continue
            self.server_lines.push(data, frame, ts)
            data = b""
            for line in self.server_lines.lines(frame, ts):
                self._server_line(line)
                if self.body is not None or self.tls:
                    data = self.server_lines.take_all()
                    break
            if self.tls:
                return

    def _server_line(self, line: Line) -> None:
        text = line.text.decode("utf-8", "replace")
        if self.no_syn and not self.client_bytes and not self.greeted and (
                self.tail_open or (not self.tail_lines and not text.startswith(("+OK", "-ERR")))):
            self._tail_line(text, line)
            return
        if self.orphan_lines >= 0:
            if not text.startswith(("+OK", "-ERR")):
                if text == ".":
                    self.out.anomaly(SERVER, self.phase, "orphan-response",
                                     f"a multi-line response of {self.orphan_lines} lines answers a command "
                                     "the capture does not show", line.frame)
                    self.orphan_lines = -1
                else:
                    self.orphan_lines += 1
                return
            self.orphan_lines = -1
        if text.startswith(("+OK", "-ERR")):
            status = "+OK" if text.startswith("+OK") else "-ERR"
            rest = text[len(status):].lstrip(" ")
            if self.server_gap:
                self._resync_pending(line)
            self.server_gap = False
            self._status(status, rest, line)
        elif text.startswith("+") and self.sasl is not None and not self.server_gap:
            challenge = text[1:].strip()
            self.sasl.server(challenge)
            self.auth_waiting = True
            cmd = self.pending[0] if self.pending else None
            self.out.add(Reply(direction=SERVER, ts=line.ts, frame=line.frame, first_frame=line.first_frame,
                               phase=Phase.AUTH, status="+", lines=(challenge,), answers="AUTH",
                               latency=(line.ts - cmd.ts) if cmd else None,
                               answers_frame=cmd.frame if cmd else None))
        elif not self.server_gap:
            self.out.anomaly(SERVER, self.phase, "invalid-response",
                             f"server line is not +OK/-ERR: {printable(line.text, 80)}", line.frame)

    def _tail_line(self, text: str, line: Line) -> None:
        """A line of the response the capture begins in (no SYN, no greeting, no command yet): its lines —
        a message body may hold one that reads ``-ERR`` — are skipped up to its final '.', with one note
        and no greeting."""
        if not self.tail_lines:
            self.tail_open = True
            self._note(line.frame, line.ts, self.phase,
                       "the capture begins inside a server response whose command it does not show: its "
                       "lines up to the client's first command are skipped")
        self.tail_lines += 1
        if text == ".":  # the end of the multi-line response: the server is past its greeting
            self.tail_open = False
            self.greeted = True

    def _resync_pending(self, line: Line) -> None:
        """The first status line after lost server bytes answers the latest command sent before it."""
        before = [p for p in self.pending if p.frame <= line.first_frame]
        if len(before) > 1:
            lost = before[:-1]
            for cmd in lost:
                self.pending.remove(cmd)
            self.out.anomaly(SERVER, self.phase, "responses-lost",
                             f"the responses to {', '.join(c.verb for c in lost)} were lost in the gap",
                             line.frame)

    def _status(self, status: str, rest: str, line: Line) -> None:
        ok = status == "+OK"
        if self.tail_lines:
            self.greeted = True  # the server was well past its greeting when the capture began
        if self.no_syn and self.client_gap and self.client_bytes and not self.greeted:
            # it answers the client lines skipped at the capture's start (a SASL response, say): no greeting
            self.greeted = True
            self.phase = Phase.AUTH if self.state is State.AUTHORIZATION else Phase.TRANSFER
            self._note(line.frame, line.ts, self.phase, f"{status} answers client lines the capture begins "
                                                        "inside (their command came before the first packet)")
        first_answer = not self.pending or self.client_bytes == 0 or self.pending[0].frame >= line.frame
        if not self.greeted and (first_answer or self._early_greeting(ok, rest)):
            self._greeting(status, rest, line)
            return
        self.greeted = True
        cmd = self.pending.pop(0) if self.pending else None
        if cmd is None:
            self._orphan(status, rest, line)
            return
        if ok and self.lost_bytes and cmd.verb not in ("RETR", "TOP") and OCTETS.match(rest):
            # "+OK n octets" answers a RETR the capture lost, not this command: its answer was lost too
            self.out.anomaly(SERVER, self.phase, "responses-lost",
                             f"the response to {cmd.verb} was lost in a gap", line.frame)
            self._orphan(status, rest, line)
            return
        if ok and multiline_expected(cmd.verb, cmd.argument):
            self.body = Body(cmd, status, rest, line.first_frame,
                             collect=cmd.verb in ("LIST", "UIDL", "CAPA", "AUTH", "LANG"))
            return
        self.out.add(Reply(direction=SERVER, ts=line.ts, frame=line.frame, first_frame=line.first_frame,
                           phase=cmd.phase, status=status, lines=(rest,), answers=cmd.verb,
                           latency=max(0.0, line.ts - cmd.ts), answers_frame=cmd.frame))
        self._effects(cmd, ok, rest, frame=line.frame, ts=line.ts)

    def _orphan(self, status: str, rest: str, line: Line) -> None:
        """A response to no command seen: after lost client bytes, the command was in the gap."""
        if self.client_gap or self.lost_bytes:
            if status == "+OK" and OCTETS.match(rest):
                # "+OK n octets" answers a RETR: read the message although its number is unknown
                self.body = Body(Pending("RETR", "", line.frame, line.ts, Phase.TRANSFER), status, rest,
                                 line.first_frame, guessed=True)
                return
            self.orphan_lines = 0 if status == "+OK" else -1
        elif self.client_bytes:
            self.out.anomaly(SERVER, self.phase, "unsolicited-response", f"{status} answers no command",
                             line.frame)
        self.out.add(Reply(direction=SERVER, ts=line.ts, frame=line.frame, first_frame=line.first_frame,
                           phase=self.phase, status=status, lines=(rest,), answers=None))

    def _early_greeting(self, ok: bool, rest: str) -> bool:
        """Is the server's first status line its greeting although the client already spoke?

        The capture may have begun mid-session (the line answers the first command) or the client talked
        before the greeting (a pregreet bot, or a client that does not wait): nothing in the stream says
        which. The first line is taken for the greeting when it reads like one and the commands sent are
        ones a client could send before logging in.
        """
        if not ok or self.lost_bytes or self.state is not State.AUTHORIZATION:
            return False
        if any(COMMAND_STATES.get(p.verb, AUTHZ) == TRANS for p in self.pending):
            return False
        return GREETING_WORDS.search(rest) is not None and ANSWER_WORDS.search(rest) is None

    def _greeting(self, status: str, rest: str, line: Line) -> None:
        early = [p for p in self.pending if p.frame < line.first_frame]
        if early:
            self.out.anomaly(CLIENT, early[0].phase, "command-before-greeting",
                             f"{early[0].verb} was sent at frame {early[0].frame}, before the server's greeting "
                             f"at frame {line.first_frame}; the next response answers it", early[0].frame)
        self.greeted = True
        self.state_known = True
        self.greeting = rest
        stamp = APOP_STAMP.search(rest)
        if stamp:
            self.apop_timestamp = stamp.group(0)
        self.states.append({"state": self.state.value, "frame": line.frame, "trigger": "greeting"})
        self.out.add(Reply(direction=SERVER, ts=line.ts, frame=line.frame, first_frame=line.first_frame,
                           phase=Phase.GREETING, status=status, lines=(rest,), answers=None))
        if status == "-ERR":
            self.out.anomaly(SERVER, Phase.GREETING, "refused", f"the server refuses the connection: {rest}",
                             line.frame)

    def _body_data(self, data: bytes, frame: int, ts: float, *, final: bool = False) -> bytes:
        body = self.body
        assert body is not None
        body.last_frame, body.last_ts = frame, ts
        watch = body.after_gap or body.collect
        if body.held:
            data = body.held + data
            body.held = b""
        if watch and not final and self.pending:
            cut = _status_start_at_end(data, body.last)
            if cut is not None:
                body.held = data[cut:]
                data = data[:cut]
                if not data:
                    return b""
        resync_at = self._resync_point(body, data) if watch else None
        chunk, rest = body.reader.feed(data if resync_at is None else data[:resync_at])
        marker = rest is not None
        if resync_at is not None:
            if rest is None:
                body.missing = max(body.missing, 1)
                if body.after_gap:
                    self.out.anomaly(SERVER, Phase.TRANSFER, "end-of-response-lost",
                                     f"the end of the {body.cmd.verb} response was lost in a gap; the next "
                                     "status line answers a later command", frame)
                else:
                    self.out.anomaly(SERVER, body.cmd.phase, "unterminated-response",
                                     f"the {body.cmd.verb} response has no final '.' line: a status line "
                                     "answering a later command follows it", frame)
            rest = (rest or b"") + data[resync_at:]
        consumed = len(data) - (len(rest) if rest is not None else 0)
        if consumed:
            body.last = data[consumed - 1 : consumed]
        is_message = body.cmd.verb in ("RETR", "TOP")
        if is_message:
            self._count(body, chunk)
            self.out.data(SERVER, Phase.TRANSFER, chunk)  # the session counts these bytes on the row
        elif body.collect and chunk:
            self._collect(body, chunk)
        if rest is None:
            return b""
        self._body_end(frame, ts, complete=marker)
        if body.held:  # the response ended before them: they are the next line's start
            rest += body.held
            body.held = b""
        return rest

    def _release_held_body(self) -> None:
        """The bytes held at the end of a response are decided with what came (a gap, the end)."""
        body = self.body
        if body is not None and body.held:
            rest = self._body_data(b"", body.last_frame, body.last_ts, final=True)
            if rest:
                self._server_data(rest, body.last_frame, body.last_ts)

    def _resync_point(self, body: Body, data: bytes) -> int | None:
        """Where a status line answering a later command starts (after a gap, or in a listing), if anywhere.

        A message body may hold a line that reads ``+OK``; it only counts when the client has already
        sent another command, and for RETR/TOP only after lost bytes.
        """
        if not self.pending:
            return None
        for match in STATUS_AT_LINE_START.finditer(data):
            start = match.start()
            if start == 0 and body.last != b"\n":
                continue
            if start > 0 and data[start - 1 : start] != b"\n":
                continue
            return start
        return None

    @staticmethod
    def _count(body: Body, chunk: bytes) -> None:
        if chunk:
            body.size += len(chunk)
            body.ends_nl = chunk.endswith(b"\n")

    def _collect(self, body: Body, chunk: bytes) -> None:
        if body.collected < self.limits.max_wait_bytes:
            if self.collecting.hold(body.collected + len(chunk)):
                # the run's budget is spent: no more lines, as past max_wait_bytes (none missing in between)
                self.collecting.hold(body.collected)
                body.collected = self.limits.max_wait_bytes
                return
            body.lines.append(chunk.decode("utf-8", "replace"))
            body.collected += len(chunk)

    def _body_end(self, frame: int, ts: float, complete: bool) -> None:
        body = self.body
        assert body is not None
        self.body = None
        cmd = body.cmd
        tail = body.reader.flush() if not complete else b""
        is_message = cmd.verb in ("RETR", "TOP")
        if is_message and tail:
            self._count(body, tail)
            self.out.data(SERVER, Phase.TRANSFER, tail)
        elif body.collect and tail:
            self._collect(body, tail)
        listing = [x for x in "".join(body.lines).split("\r\n") if x] if body.collect else []
        self.collecting.hold(0)  # its lines are read
        lines = (body.text, *listing[:200]) if listing else (body.text,)
        self.out.add(Reply(direction=SERVER, ts=ts, frame=frame, first_frame=body.first_frame,
                           phase=cmd.phase, status=body.status, lines=lines, answers=cmd.verb,
                           latency=max(0.0, ts - cmd.ts), answers_frame=None if body.guessed else cmd.frame))
        if is_message:
            self._message_end(body, frame, ts, complete)
        self._effects(cmd, True, body.text, frame=frame, ts=ts, listing=listing if body.collect else None)

    def _message_end(self, body: Body, frame: int, ts: float, complete: bool) -> None:
        cmd = body.cmd
        args = cmd.argument.split()
        number = parse_count(args[0]) if args else None
        missing = body.missing or (0 if complete else 1)
        detail: dict[str, Any] = {"msg": number}
        if cmd.verb == "TOP":
            detail["lines"] = parse_count(args[1]) if len(args) > 1 else None
            detail["lines_asked"] = detail["lines"]
        announced = re.match(r"^(\d{1,18})(?: octets)?\b", body.text)
        if announced:
            detail["octets_announced"] = int(announced.group(1))
        if number is not None and number in self.mailbox.listing:
            detail["octets_listed"] = self.mailbox.listing[number]
        if number is not None and number in self.mailbox.uids:
            detail["uid"] = self.mailbox.uids[number]
        detail["stuffed_lines"] = body.reader.stuffed
        if body.guessed:
            detail["guessed"] = True
        origin = "pop3-retr" if cmd.verb == "RETR" else "pop3-top"
        full = complete and not body.missing and cmd.verb == "RETR"
        self.out.add(MessageEnd(direction=SERVER, ts=ts, frame=frame, first_frame=body.first_frame,
                                phase=Phase.TRANSFER, origin=origin, complete=full, missing_bytes=missing,
                                detail=detail))
        self.messages += 1
        if number is not None:
            self._keep_number(self.mailbox.retrieved if cmd.verb == "RETR" else self.mailbox.top,
                              "retrieved" if cmd.verb == "RETR" else "top", number)
        entry: dict[str, Any] = {
            "frame": frame, "first_frame": body.first_frame, "command": cmd.verb, "msg": number,
            "bytes": body.size,  # (every byte the reader returns passes _count: its LF count is the body's)
            "lines": body.reader.newlines + (0 if body.ends_nl else 1),
            "stuffed_lines": body.reader.stuffed, "complete": complete and not body.missing,
            "missing_bytes": body.missing}
        for key in ("lines_asked", "octets_announced", "uid"):
            if key in detail:
                entry[key] = detail[key]
        if len(self.retrievals) < MAX_RECORDS and self.listed.take(DICT_ENTRY_COST):
            self.retrievals.append(entry)
        else:
            self.dropped["retrievals"] = self.dropped.get("retrievals", 0) + 1

    def _effects(self, cmd: Pending, ok: bool, rest: str, *, frame: int, ts: float,
                 listing: list[str] | None = None) -> None:
        verb = cmd.verb
        mb = self.mailbox
        if ok and (self.lost_bytes or self.no_syn) and self.state is State.AUTHORIZATION \
                and COMMAND_STATES.get(verb) == TRANS:
            # RFC 1939: only the TRANSACTION state answers these with +OK (DELE, RETR, STAT...)
            why = f"inferred from {verb} +OK: " + ("the login was lost in a gap" if self.lost_bytes else
                                                  "the capture has no login")
            self._set_state(State.TRANSACTION, frame, why, ts)
        self._login_result(cmd, ok, rest, frame=frame, ts=ts, extra={})
        if verb == "STAT" and ok:
            parts = rest.split()
            if len(parts) >= 2:
                mb.count, mb.size = parse_count(parts[0]), parse_count(parts[1])
        elif verb == "LIST" and ok:
            for entry in listing if listing is not None else [rest]:
                parts = entry.split()
                if len(parts) >= 2 and is_count(parts[0]) and is_count(parts[1]):
                    self._table(mb.listing, "list", int(parts[0]), int(parts[1]))
        elif verb == "UIDL" and ok:
            for entry in listing if listing is not None else [rest]:
                parts = entry.split()
                if len(parts) >= 2 and is_count(parts[0]):
                    self._table(mb.uids, "uidl", int(parts[0]), parts[1])
        elif verb == "CAPA" and ok and listing is not None:
            self.capabilities = listing[:MAX_RECORDS]  # (not charged: the dissector reads it, see _pipelining)
        elif verb == "DELE" and ok:
            number = parse_count(cmd.argument.strip())
            if number is not None and number not in mb.marked:
                self._keep_number(mb.marked, "marked_deleted", number)
        elif verb == "RSET" and ok:
            moved = [n for n in mb.marked if n not in mb.undeleted]
            mb.undeleted += moved  # they keep their charge; the others' goes back
            self.listed.give(LISTED_ENTRY_COST * (len(mb.marked) - len(moved)))
            mb.marked = []
        elif verb == "QUIT":
            if self.state is State.TRANSACTION:
                mb.deleted = list(mb.marked) if ok else []
            self._transition(f"QUIT {'+OK' if ok else '-ERR'}", frame, ts)
            self.phase = Phase.TEARDOWN
        elif verb == "STLS":
            if ok:
                self._stls(frame, ts)
            else:
                self._release_hold(frame)

    def _login_result(self, cmd: Pending, ok: bool | None, rest: str, *, frame: int, ts: float,
                      extra: dict[str, str]) -> None:
        """USER/PASS, APOP, AUTH: the AuthAttempt, once the response (or the end) tells the outcome."""
        verb = cmd.verb
        extra = dict(extra)
        if ok is False:
            extra["reason"] = rest
        if verb == "USER" and ok is False:
            self.user_refused = True
        if verb == "PASS" and ok is False and self.user_command_frame <= cmd.frame:
            self.user_refused = True  # a refused PASS ends the USER/PASS pair: the next PASS needs a new USER
        if verb == "PASS":
            name = self.user_name if self.user_command_frame else None  # not an APOP's name
            self._auth_event("USER", name, self.password, ok, cmd=cmd, frame=frame, ts=ts, extra=extra)
        elif verb == "APOP":
            name, _, digest = cmd.argument.strip().rpartition(" ")
            if self.apop_timestamp:
                extra["timestamp"] = self.apop_timestamp
                if self.limits.show_secrets and digest:
                    extra["hashcat"] = hashcat_apop(digest, self.apop_timestamp)
            self._auth_event("APOP", name or None, digest, ok, cmd=cmd, frame=frame, ts=ts, extra=extra)
        elif verb == "AUTH" and cmd.argument.strip() and self.sasl is not None:
            sasl = self.sasl
            if sasl.domain:
                extra["domain"] = sasl.domain
            extra.update(sasl.attempt_extra())
            line = sasl.hashcat() if self.limits.show_secrets else None
            if line:
                extra["hashcat"] = line
            success = None if ok is None else ok and not sasl.cancelled
            self._auth_event(sasl.mechanism, sasl.username, sasl.secret, success, cmd=cmd, frame=frame, ts=ts,
                             extra=extra)
            self.sasl = None
            self.auth_waiting = False
        else:
            return
        if ok:
            self._transition(f"{verb} +OK", frame, ts)

    def _auth_event(self, mechanism: str, user: str | None, secret: str | None, ok: bool | None, *,
                    cmd: Pending, frame: int, ts: float, extra: dict[str, str]) -> None:
        first = self.user_command_frame if mechanism == "USER" and self.user_command_frame else cmd.frame
        domain = extra.pop("domain", None)
        self.out.add(AuthAttempt(direction=CLIENT, ts=ts, frame=frame, first_frame=first, phase=Phase.AUTH,
                                 mechanism=mechanism, username=user, secret=secret, success=ok, domain=domain,
                                 extra={k: v for k, v in extra.items() if v}))

    def _stls(self, frame: int, ts: float) -> None:
        injected = bytes(self.client_hold or b"") + self.client_lines.take_all()
        self.client_hold = None
        self.wait.hold(0)  # no client data may come to do it (TLS without keys)
        if injected:
            shown = injected if self.limits.show_secrets else redact_commands(injected)
            self.out.anomaly(CLIENT, Phase.NEGOTIATION, "starttls-injection",
                             f"{len(injected)} bytes of plaintext sent after STLS before the server's +OK "
                             f"({printable(shown, 80)}): a server that buffers them executes them inside "
                             "TLS (CVE-2011-0411 class)", frame)
        self.tls = True
        self.pending.clear()
        self.phase = Phase.TLS
        self.out.add(TlsStart(direction=SERVER, ts=ts, frame=frame, first_frame=frame, phase=Phase.TLS,
                              mode="starttls"))

    # ------------------------------------------------------------------ state
    def _transition(self, trigger: str, frame: int, ts: float) -> None:
        target = TRANSITIONS[self.state].get(trigger)
        if target is not None and target is not self.state:
            self._set_state(target, frame, trigger, ts)

    def _set_state(self, state: State, frame: int, why: str, ts: float | None = None) -> None:
        old = self.state
        self.state = state
        self.state_known = True
        self.states.append({"state": state.value, "frame": frame, "trigger": why})
        if why.startswith("inferred"):
            # the captions narrate ordinary state changes; one the capture does not show deserves a row note
            self._note(frame, self.out.ts if ts is None else ts, self.phase,
                       f"POP3 state {old.value} → {state.value} {why}")

    def _note(self, frame: int, ts: float, phase: Phase, text: str) -> None:
        self.out.add(Note(direction=SERVER, ts=ts, frame=frame, first_frame=frame, phase=phase, text=text))

    def _table(self, table: dict[int, Any], name: str, key: int, value: Any) -> None:
        if key in table or (len(table) < MAX_RECORDS and self.listed.take(len(value) if isinstance(value, str) else 0)):
            table[key] = value
        else:
            self.dropped[name] = self.dropped.get(name, 0) + 1

    def _keep_number(self, bucket: list[int], name: str, number: int) -> None:
        if len(bucket) < MAX_RECORDS and self.listed.take():
            bucket.append(number)
        else:
            self.dropped[name] = self.dropped.get(name, 0) + 1

    # ------------------------------------------------------------------ gaps and end
    def _gap(self, gap: StreamGap) -> None:
        if not self.tls:
            self.lost_bytes = True
        if gap.direction is SERVER:
            if self.tls:
                return
            self._release_held_body()
            if self.body is not None:
                self.body.missing += gap.nbytes
                self.body.after_gap = True
                detail = "inside a multi-line response; reading on to its end"
            else:
                self.server_lines.clear()
                self.server_gap = True
                detail = "server responses lost; resynchronising on the next +OK/-ERR"
        else:
            if self.tls:
                return
            self.client_lines.clear()
            self.client_gap = True
            self.auth_waiting = False
            detail = "client commands lost; resynchronising on the next command"
        self.out.add(GapEvent(direction=gap.direction, ts=gap.ts, frame=gap.frame, first_frame=gap.frame,
                              phase=self.phase, nbytes=gap.nbytes, detail=detail))

    def _eof(self, eof: Eof) -> None:
        if eof.direction is SERVER:
            self._release_held_body()
        if eof.direction is SERVER and self.body is not None:
            self.out.anomaly(SERVER, Phase.TRANSFER, "incomplete-response",
                             "the multi-line response ends without its final '.' line", eof.frame)
            self._body_end(eof.frame or self.out.frame, eof.ts, complete=False)
        elif eof.direction is CLIENT and self.client_hold:
            self._release_hold(eof.frame or self.out.frame)


def _status_start_at_end(data: bytes, last: bytes) -> int | None:
    """Where a line at the end of ``data`` begins if it is all of a status so far (``+``, ``+O``, ``+OK``,
    ``-``… ``-ERR``): only the next byte says whether it is one (``+OK`` then a space, or ``+OKAY``)."""
    feed = data.rfind(b"\n")
    start = feed + 1 if feed >= 0 else 0 if last == b"\n" else -1
    if start < 0:
        return None
    tail = data[start:]
    if tail and len(tail) <= 4 and (b"+OK".startswith(tail) or b"-ERR".startswith(tail)):
        return start
    return None


def redact_commands(data: bytes) -> bytes:
    """Client bytes quoted in a note, with credentials hidden as the command rows hide them: PASS,
    APOP's digest, an AUTH initial response and the SASL lines after an AUTH (RFC 5034)."""
    return redact_lines(data, KNOWN_VERBS, _hide_secret)


def _hide_secret(verb_u: bytes, verb: bytes, argument: bytes) -> bytes | None:
    if verb_u == b"PASS":
        return verb + b" [password]"
    if verb_u == b"APOP":
        name = argument.strip().rpartition(b" ")[0] or argument.strip()
        return verb + b" " + name + b" [digest]"
    return None


def _numbers(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:20])
    return shown + (f" (+{len(numbers) - 20})" if len(numbers) > 20 else "")


def printable_ascii(raw: bytes) -> bool:
    return all(0x20 <= b < 0x7F or b == 0x09 for b in raw[:256])


__all__ = ["COMMAND_STATES", "KNOWN_VERBS", "TRANSITIONS", "Pop3", "State"]
