"""POP3 (RFC 1939) with CAPA/pipelining (RFC 2449), STLS (RFC 2595) and SASL AUTH (RFC 5034).

The three states the protocol defines drive the phases: AUTHORIZATION (greeting, CAPA, USER/PASS,
APOP, AUTH), TRANSACTION (STAT, LIST, UIDL, RETR, TOP, DELE, RSET, NOOP) and UPDATE (QUIT: the
server deletes the messages marked with DELE). Whether a ``+OK`` response is multi-line depends on
the command it answers (LIST/UIDL without argument, RETR, TOP, CAPA, AUTH without mechanism), so the
server side is read by that rule; bodies are dot-unstuffed as they stream, even when the ``+OK``
line and the body arrive in one segment.
"""

from __future__ import annotations

import enum
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar

from mailtrace.model import (
    CLIENT,
    SERVER,
    AuthAttempt,
    BodyData,
    Chunk,
    Command,
    Eof,
    Event,
    GapEvent,
    MessageEnd,
    Phase,
    Reply,
    StreamGap,
    StreamItem,
    TlsStart,
)
from mailtrace.protocols.base import DissectorLimits, DotBody, EventSink, Line, LineBuffer, printable
from mailtrace.protocols.sasl import SaslExchange

KNOWN_VERBS = frozenset({
    "USER", "PASS", "APOP", "AUTH", "CAPA", "STLS", "STAT", "LIST", "UIDL", "RETR", "TOP", "DELE", "NOOP",
    "RSET", "QUIT", "UTF8", "LANG", "XTND", "LAST", "RPOP",
})
VERB_PHASE: dict[str, Phase] = {
    "CAPA": Phase.NEGOTIATION, "STLS": Phase.NEGOTIATION, "UTF8": Phase.NEGOTIATION, "LANG": Phase.NEGOTIATION,
    "USER": Phase.AUTH, "PASS": Phase.AUTH, "APOP": Phase.AUTH, "AUTH": Phase.AUTH, "RPOP": Phase.AUTH,
    "STAT": Phase.TRANSFER, "LIST": Phase.TRANSFER, "UIDL": Phase.TRANSFER, "RETR": Phase.TRANSFER,
    "TOP": Phase.TRANSFER, "DELE": Phase.TRANSFER, "RSET": Phase.TRANSFER, "NOOP": Phase.TRANSFER,
    "LAST": Phase.TRANSFER, "XTND": Phase.TRANSFER,
    "QUIT": Phase.TEARDOWN,
}
APOP_STAMP = re.compile(r"<[^<>@\s]*@[^<>\s]*>")


class State(enum.Enum):
    """RFC 1939 session states."""

    AUTHORIZATION = "AUTHORIZATION"
    TRANSACTION = "TRANSACTION"
    UPDATE = "UPDATE"


@dataclass
class Pending:
    verb: str
    argument: str
    frame: int
    ts: float
    phase: Phase


@dataclass
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


def multiline_expected(verb: str, argument: str) -> bool:
    """RFC 1939/2449/5034: which commands get a multi-line +OK response."""
    if verb in ("RETR", "TOP", "CAPA"):
        return True
    if verb in ("LIST", "UIDL"):
        return not argument.strip()
    return verb == "AUTH" and not argument.strip()


class Pop3:
    """The POP3 dissector (sans-I/O)."""

    name: ClassVar[str] = "pop3"
    default_ports: ClassVar[frozenset[int]] = frozenset({110})
    tls_ports: ClassVar[frozenset[int]] = frozenset({995})

    def __init__(self, limits: DissectorLimits = DissectorLimits()) -> None:
        self.limits = limits
        self.out = EventSink(limits.max_events)
        self.client_lines = LineBuffer(limits.max_line)
        self.server_lines = LineBuffer(limits.max_line)
        self.pending: deque[Pending] = deque()
        self.state = State.AUTHORIZATION
        self.greeted = False
        self.greeting: str | None = None
        self.apop_timestamp: str | None = None
        self.tls = False
        self.client_tls = False
        self.body: DotBody | None = None
        self.body_cmd: Pending | None = None
        self.body_status: tuple[str, str, int, int, float] | None = None
        self.body_lines: list[str] = []
        self.body_collect = False
        self.body_missing = 0
        self.server_gap = False
        self.client_gap = False
        self.sasl: SaslExchange | None = None
        self.auth_waiting = False
        self.user: str | None = None
        self.user_frame = 0
        self.password: str | None = None
        self.capabilities: list[str] = []
        self.mailbox = Mailbox()
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
                if not self.client_tls:
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
        for cmd in list(self.pending):
            if cmd.verb == "PASS":
                self._auth_event("USER", self.user, self.password, None, cmd, cmd.frame, cmd.ts)
            elif cmd.verb == "APOP":
                name, _, digest = cmd.argument.strip().rpartition(" ")
                self._auth_event("APOP", name or None, digest, None, cmd, cmd.frame, cmd.ts)
            elif cmd.verb == "AUTH" and self.sasl is not None:
                self._auth_event(self.sasl.mechanism, self.sasl.username, self.sasl.secret, None, cmd, cmd.frame,
                                 cmd.ts)
                self.sasl = None
        self.pending.clear()
        return self.out.take()

    def tls_started(self) -> None:
        self.tls = False
        self.client_tls = False
        self.client_lines.clear()
        self.server_lines.clear()
        self.phase = Phase.NEGOTIATION

    def record(self) -> dict[str, Any]:
        mb = self.mailbox
        return {
            "user": self.user,
            "pop3": {
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
            },
        }

    # ------------------------------------------------------------------ client
    def _client_data(self, data: bytes, frame: int, ts: float) -> None:
        self.client_lines.push(data, frame, ts)
        for line in self.client_lines.lines(frame, ts):
            self._client_line(line)
            if self.client_tls:
                return

    def _client_line(self, line: Line) -> None:
        if line.too_long:
            self.out.anomaly(CLIENT, self.phase, "line-too-long",
                             f"client line of {len(line.text) + line.too_long} bytes", line.frame)
        if self.auth_waiting and self.sasl is not None:
            self.auth_waiting = False
            text = line.text.decode("utf-8", "replace").strip()
            self.sasl.client(text)
            shown = text if self.limits.show_secrets or text == "*" else "[SASL response]"
            self.out.add(Command(direction=CLIENT, ts=line.ts, frame=line.frame, first_frame=line.first_frame,
                                 phase=Phase.AUTH, verb="", argument=shown))
            return
        text = line.text.decode("utf-8", "surrogateescape").strip()
        if not text:
            self.out.anomaly(CLIENT, self.phase, "empty-command", "empty command line", line.frame)
            return
        verb, _, argument = text.partition(" ")
        verb_u = verb.upper()
        known = verb_u in KNOWN_VERBS
        if self.client_gap:
            if not known:
                return
            self.client_gap = False
        if not known and not printable_ascii(line.text):
            self.out.anomaly(CLIENT, self.phase, "garbage",
                             f"non-text bytes where a command was expected: {printable(line.text, 60)}", line.frame)
            return
        phase = VERB_PHASE.get(verb_u, self.phase if self.phase is not Phase.GREETING else Phase.NEGOTIATION)
        self.phase = phase
        shown = argument
        if verb_u == "PASS":
            self.password = argument
            shown = argument if self.limits.show_secrets else "[password]"
        elif verb_u == "USER":
            self.user = argument.strip()
            self.user_frame = line.frame
        elif verb_u == "APOP":
            name, _, _digest = argument.strip().rpartition(" ")
            self.user = name or argument.strip()
            self.user_frame = line.frame
            shown = argument if self.limits.show_secrets else f"{self.user} [digest]"
        elif verb_u == "AUTH" and argument.strip():
            mech, _, initial = argument.strip().partition(" ")
            self.sasl = SaslExchange(mech.upper())
            if initial.strip():
                self.sasl.initial(initial.strip())
                if not self.limits.show_secrets and initial.strip() != "=":
                    shown = f"{mech} [initial response]"
        self.out.add(Command(direction=CLIENT, ts=line.ts, frame=line.frame, first_frame=line.first_frame,
                             phase=phase, verb=verb_u, argument=shown, known=known))
        if not known:
            self.out.anomaly(CLIENT, phase, "unknown-command", f"unknown command {printable(verb.encode(), 40)}",
                             line.frame)
        if len(self.pending) >= self.limits.max_pending_commands:
            self.pending.popleft()
            self.out.anomaly(CLIENT, phase, "pipeline-overflow", "too many commands without responses", line.frame)
        self.pending.append(Pending(verb_u, argument, line.frame, line.ts, phase))
        if verb_u == "STLS":
            self.client_tls = False

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
        if text.startswith(("+OK", "-ERR")):
            self.server_gap = False
            status = "+OK" if text.startswith("+OK") else "-ERR"
            rest = text[len(status):].lstrip(" ")
            self._status(status, rest, line)
        elif text.startswith("+") and self.sasl is not None:
            challenge = text[1:].strip()
            self.sasl.server(challenge)
            self.auth_waiting = True
            cmd = self.pending[0] if self.pending else None
            self.out.add(Reply(direction=SERVER, ts=line.ts, frame=line.frame, first_frame=line.first_frame,
                               phase=Phase.AUTH, status="+", lines=(challenge,), answers="AUTH",
                               latency=(line.ts - cmd.ts) if cmd else None))
        elif not self.server_gap:
            self.out.anomaly(SERVER, self.phase, "invalid-response",
                             f"server line is not +OK/-ERR: {printable(line.text, 80)}", line.frame)

    def _status(self, status: str, rest: str, line: Line) -> None:
        ok = status == "+OK"
        if not self.greeted and (not self.pending or self.client_bytes == 0 or self.pending[0].frame >= line.frame):
            self.greeted = True
            self.greeting = rest
            stamp = APOP_STAMP.search(rest)
            if stamp:
                self.apop_timestamp = stamp.group(0)
            self.out.add(Reply(direction=SERVER, ts=line.ts, frame=line.frame, first_frame=line.first_frame,
                               phase=Phase.GREETING, status=status, lines=(rest,), answers=None))
            return
        self.greeted = True
        cmd = self.pending.popleft() if self.pending else None
        if cmd is None:
            if self.client_bytes:
                self.out.anomaly(SERVER, self.phase, "unsolicited-response", f"{status} answers no command",
                                 line.frame)
            self.out.add(Reply(direction=SERVER, ts=line.ts, frame=line.frame, first_frame=line.first_frame,
                               phase=self.phase, status=status, lines=(rest,), answers=None))
            return
        if ok and multiline_expected(cmd.verb, cmd.argument):
            self.body = DotBody()
            self.body_cmd = cmd
            self.body_status = (status, rest, line.first_frame, line.frame, line.ts)
            self.body_collect = cmd.verb in ("LIST", "UIDL", "CAPA", "AUTH")
            self.body_lines = []
            self.body_missing = 0
            return
        self.out.add(Reply(direction=SERVER, ts=line.ts, frame=line.frame, first_frame=line.first_frame,
                           phase=cmd.phase, status=status, lines=(rest,), answers=cmd.verb,
                           latency=max(0.0, line.ts - cmd.ts)))
        self._effects(cmd, ok, rest, line)

    def _body_data(self, data: bytes, frame: int, ts: float) -> bytes:
        body, cmd = self.body, self.body_cmd
        assert body is not None and cmd is not None
        chunk, rest = body.feed(data)
        is_message = cmd.verb in ("RETR", "TOP")
        if is_message:
            self.out.data(SERVER, Phase.TRANSFER, chunk)
            self.out.add(BodyData(direction=SERVER, ts=ts, frame=frame, first_frame=frame, phase=Phase.TRANSFER,
                                  nbytes=len(data) - (len(rest) if rest is not None else 0)))
        elif self.body_collect and chunk:
            self.body_lines.append(chunk.decode("utf-8", "replace"))
        if rest is None:
            return b""
        self._body_end(frame, ts, complete=True)
        return rest

    def _body_end(self, frame: int, ts: float, complete: bool) -> None:
        body, cmd, status = self.body, self.body_cmd, self.body_status
        assert body is not None and cmd is not None and status is not None
        tail = body.flush() if not complete else b""
        is_message = cmd.verb in ("RETR", "TOP")
        if is_message:
            self.out.data(SERVER, Phase.TRANSFER, tail)
        elif self.body_collect and tail:
            self.body_lines.append(tail.decode("utf-8", "replace"))
        self.body = None
        self.body_cmd = None
        self.body_status = None
        st, rest, first, _status_frame, _ts = status
        listing = "".join(self.body_lines).split("\r\n") if self.body_collect else []
        listing = [x for x in listing if x]
        lines = (rest, *listing[:200]) if listing else (rest,)
        self.out.add(Reply(direction=SERVER, ts=ts, frame=frame, first_frame=first, phase=cmd.phase, status=st,
                           lines=lines, answers=cmd.verb, latency=max(0.0, ts - cmd.ts)))
        if is_message:
            number = _int(cmd.argument.split()[0]) if cmd.argument.split() else None
            missing = self.body_missing or (0 if complete else 1)
            detail: dict[str, Any] = {"msg": number}
            if cmd.verb == "TOP":
                parts = cmd.argument.split()
                detail["lines"] = _int(parts[1]) if len(parts) > 1 else None
            self.out.add(MessageEnd(direction=SERVER, ts=ts, frame=frame, first_frame=first, phase=Phase.TRANSFER,
                                    origin="pop3-retr" if cmd.verb == "RETR" else "pop3-top",
                                    complete=complete and not self.body_missing and cmd.verb == "RETR",
                                    missing_bytes=missing, detail=detail))
            self.messages += 1
            if number is not None:
                (self.mailbox.retrieved if cmd.verb == "RETR" else self.mailbox.top).append(number)
        self._effects(cmd, True, rest, None, listing)
        self.body_lines = []

    def _effects(self, cmd: Pending, ok: bool, rest: str, line: Line | None,
                 listing: list[str] | None = None) -> None:
        verb = cmd.verb
        ts = line.ts if line else self.out.ts
        frame = line.frame if line else self.out.frame
        mb = self.mailbox
        if verb == "PASS":
            self._auth_event("USER", self.user, self.password, ok, cmd, frame, ts)
            if ok:
                self.state = State.TRANSACTION
        elif verb == "APOP":
            name, _, digest = cmd.argument.strip().rpartition(" ")
            extra = {"timestamp": self.apop_timestamp} if self.apop_timestamp else {}
            self._auth_event("APOP", name or None, digest, ok, cmd, frame, ts, extra)
            if ok:
                self.state = State.TRANSACTION
        elif verb == "AUTH" and cmd.argument.strip() and self.sasl is not None:
            sasl = self.sasl
            self._auth_event(sasl.mechanism, sasl.username, sasl.secret, ok and not sasl.cancelled, cmd, frame, ts,
                             {"domain": sasl.domain} if sasl.domain else {})
            self.sasl = None
            self.auth_waiting = False
            if ok:
                self.state = State.TRANSACTION
        elif verb == "USER" and not ok:
            pass
        elif verb == "STAT" and ok:
            parts = rest.split()
            if len(parts) >= 2:
                mb.count, mb.size = _int(parts[0]), _int(parts[1])
        elif verb == "LIST" and ok:
            for entry in (listing or []) if listing is not None else [rest]:
                parts = entry.split()
                if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
                    mb.listing[int(parts[0])] = int(parts[1])
        elif verb == "UIDL" and ok:
            for entry in (listing or []) if listing is not None else [rest]:
                parts = entry.split()
                if len(parts) >= 2 and parts[0].isdigit():
                    mb.uids[int(parts[0])] = parts[1]
        elif verb == "CAPA" and ok and listing is not None:
            self.capabilities = listing
        elif verb == "DELE" and ok:
            number = _int(cmd.argument.strip())
            if number is not None and number not in mb.marked:
                mb.marked.append(number)
        elif verb == "RSET" and ok:
            mb.undeleted += [n for n in mb.marked if n not in mb.undeleted]
            mb.marked = []
        elif verb == "QUIT":
            if self.state is State.TRANSACTION and ok:
                self.state = State.UPDATE
                mb.deleted = list(mb.marked)
            self.phase = Phase.TEARDOWN
        elif verb == "STLS" and ok and line is not None:
            self.tls = True
            self.client_tls = True
            self.pending.clear()
            self.phase = Phase.TLS
            self.out.add(TlsStart(direction=SERVER, ts=line.ts, frame=line.frame, first_frame=line.frame,
                                  phase=Phase.TLS, mode="starttls"))

    def _auth_event(self, mechanism: str, user: str | None, secret: str | None, ok: bool | None, cmd: Pending,
                    frame: int, ts: float, extra: dict[str, str] | None = None) -> None:
        first = self.user_frame if mechanism == "USER" and self.user_frame else cmd.frame
        self.out.add(AuthAttempt(direction=CLIENT, ts=ts, frame=frame, first_frame=first, phase=Phase.AUTH,
                                 mechanism=mechanism, username=user, secret=secret, success=ok,
                                 extra={k: v for k, v in (extra or {}).items() if v}))

    # ------------------------------------------------------------------ gaps and end
    def _gap(self, gap: StreamGap) -> None:
        if gap.direction is SERVER:
            if self.tls:
                return
            if self.body is not None:
                self.body_missing += gap.nbytes
                detail = "inside a multi-line response; reading on to its end"
            else:
                self.server_lines.clear()
                self.server_gap = True
                detail = "server responses lost; resynchronising on the next +OK/-ERR"
        else:
            if self.client_tls:
                return
            self.client_lines.clear()
            self.client_gap = True
            detail = "client commands lost; resynchronising on the next command"
        self.out.add(GapEvent(direction=gap.direction, ts=gap.ts, frame=gap.frame, first_frame=gap.frame,
                              phase=self.phase, nbytes=gap.nbytes, detail=detail))

    def _eof(self, eof: Eof) -> None:
        if eof.direction is SERVER and self.body is not None:
            self.out.anomaly(SERVER, Phase.TRANSFER, "incomplete-response",
                             "the multi-line response ends without its final '.' line", eof.frame)
            self._body_end(eof.frame or self.out.frame, eof.ts, complete=False)


def _int(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def printable_ascii(raw: bytes) -> bool:
    return all(0x20 <= b < 0x7F or b == 0x09 for b in raw[:256])
