"""IMAP4rev1/rev2 (RFC 3501, 9051) with LITERAL+ (7888), literal8 (3516), IDLE (2177), COMPRESS (4978).

Both directions are read as lines that may be interrupted by literals — ``{n}``, ``{n+}``,
``~{n}`` — whose n bytes are counted in an explicit state, never searched for a line end (the
imaplib anti-pattern). A synchronizing client literal waits for the server's ``+`` continuation;
commands are paired with their tagged completion by tag, untagged data is attached to the command in
progress. Message literals (FETCH BODY[]/RFC822/BINARY[], header fetches, APPEND) stream into the
message pipeline.
"""

from __future__ import annotations

import enum
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
from mailtrace.protocols.base import DissectorLimits, EventSink, LineBuffer, printable
from mailtrace.protocols.sasl import SaslExchange

KNOWN_COMMANDS = frozenset({
    "CAPABILITY", "NOOP", "LOGOUT", "STARTTLS", "AUTHENTICATE", "LOGIN", "ENABLE", "ID", "SELECT", "EXAMINE",
    "CREATE", "DELETE", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE", "LIST", "LSUB", "NAMESPACE", "STATUS", "APPEND",
    "IDLE", "CHECK", "CLOSE", "UNSELECT", "EXPUNGE", "SEARCH", "FETCH", "STORE", "COPY", "MOVE", "UID",
    "COMPRESS", "GETQUOTA", "GETQUOTAROOT", "SETQUOTA", "GETACL", "SETACL", "MYRIGHTS", "LISTRIGHTS",
    "DELETEACL", "GETMETADATA", "SETMETADATA", "SORT", "THREAD", "ESEARCH", "XLIST", "NOTIFY", "UNAUTHENTICATE",
    "REPLACE", "XAPPLEPUSHSERVICE", "X-GM-EXT-1", "XYZZY",
})
COMMAND_PHASE: dict[str, Phase] = {
    "CAPABILITY": Phase.NEGOTIATION, "STARTTLS": Phase.NEGOTIATION, "ID": Phase.NEGOTIATION,
    "ENABLE": Phase.NEGOTIATION, "COMPRESS": Phase.NEGOTIATION,
    "LOGIN": Phase.AUTH, "AUTHENTICATE": Phase.AUTH,
    "LOGOUT": Phase.TEARDOWN,
}
LITERAL_AT_END = re.compile(rb"(~?)\{(\d{1,12})(\+?)\}$")
MESSAGE_ITEM = re.compile(
    rb"(?:(BODY|BINARY)(?:\.PEEK)?\[([^\]]*)\](<\d+(?:\.\d+)?>)?|(RFC822(?:\.HEADER|\.TEXT)?))\s*$",
    re.IGNORECASE,
)
MAX_KEPT_LITERAL = 8192


class State(enum.Enum):
    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


@dataclass
class Pending:
    tag: str
    verb: str
    argument: str
    frame: int
    ts: float
    phase: Phase
    uid: bool = False
    sasl: SaslExchange | None = None
    login_user: str | None = None
    login_secret: str | None = None


@dataclass
class Building:
    """A line (command or response) being assembled across literals."""

    parts: list[bytes] = field(default_factory=list)
    first_frame: int = 0
    literal_left: int = 0
    literal_kept: bytearray = field(default_factory=bytearray)
    literal_size: int = 0
    message_origin: str | None = None
    message_complete: bool = True
    message_section: str = ""
    literal_missing: int = 0


@dataclass
class Mailbox:
    name: str
    exists: int | None = None
    recent: int | None = None
    uidvalidity: str | None = None
    read_only: bool = False


def tokens(text: str) -> list[str]:
    """Split IMAP arguments: atoms, "quoted strings" (unescaped), (lists kept whole)."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == " ":
            i += 1
        elif c == '"':
            j, buf = i + 1, []
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                buf.append(text[j])
                j += 1
            out.append("".join(buf))
            i = j + 1
        elif c == "(":
            depth, j = 0, i
            while j < n:
                if text[j] == "(":
                    depth += 1
                elif text[j] == ")":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            out.append(text[i : j + 1])
            i = j + 1
        else:
            j = i
            while j < n and text[j] != " ":
                j += 1
            out.append(text[i:j])
            i = j
    return out


class Imap:
    """The IMAP dissector (sans-I/O)."""

    name: ClassVar[str] = "imap"
    default_ports: ClassVar[frozenset[int]] = frozenset({143})
    tls_ports: ClassVar[frozenset[int]] = frozenset({993})

    def __init__(self, limits: DissectorLimits = DissectorLimits()) -> None:
        self.limits = limits
        self.out = EventSink(limits.max_events)
        self.lines = (LineBuffer(limits.max_line), LineBuffer(limits.max_line))
        self.building = [Building(), Building()]
        self.pending: dict[str, Pending] = {}
        self.waiting: Pending | None = None  # the command a '+' continuation is for
        self.held = bytearray()  # client bytes after a synchronizing literal, before the '+'
        self.holding = False
        self.holding_tag = ""
        self.state = State.NOT_AUTHENTICATED
        self.greeted = False
        self.greeting: str | None = None
        self.tls = [False, False]
        self.inflate: list[Any | None] = [None, None]
        self.compress_pending = False
        self.phase = Phase.GREETING
        self.client_bytes = 0
        self.server_bytes = 0
        self.gap = [False, False]
        self.capabilities: list[str] = []
        self.selected: list[Mailbox] = []
        self.current_box: Mailbox | None = None
        self.folders: list[str] = []
        self.expunged: list[int] = []
        self.fetched = 0
        self.appended = 0
        self.stored: list[str] = []
        self.idle_updates: list[str] = []
        self.in_idle: Pending | None = None
        self.messages = 0

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
            d = 0 if item.direction is CLIENT else 1
            if d == 0:
                self.client_bytes += len(item.data)
            else:
                self.server_bytes += len(item.data)
            if not self.tls[d]:
                data = item.data
                inflater = self.inflate[d]
                if inflater is not None:
                    try:
                        data = inflater.decompress(data)
                    except zlib.error as exc:
                        self.out.anomaly(item.direction, self.phase, "compress-error",
                                         f"COMPRESS=DEFLATE stream cannot be inflated: {exc}", item.frame)
                        self.inflate[d] = None
                        self.tls[d] = True  # unreadable from here on
                        return self.out.take()
                if d == 0:
                    self._client_data(data, item.frame, item.ts)
                else:
                    self._server_data(data, item.frame, item.ts)
        elif isinstance(item, StreamGap):
            self._gap(item)
        elif isinstance(item, Eof):
            self._eof(item)
        return self.out.take()

    def finish(self) -> list[Event]:
        """Logins whose tagged completion the capture does not show are reported with ``success: None``."""
        for cmd in self.pending.values():
            if cmd.verb == "LOGIN":
                self.out.add(AuthAttempt(direction=CLIENT, ts=cmd.ts, frame=cmd.frame, first_frame=cmd.frame,
                                         phase=Phase.AUTH, mechanism="LOGIN", username=cmd.login_user,
                                         secret=cmd.login_secret, success=None))
            elif cmd.verb == "AUTHENTICATE" and cmd.sasl is not None:
                self.out.add(AuthAttempt(direction=CLIENT, ts=cmd.ts, frame=cmd.frame, first_frame=cmd.frame,
                                         phase=Phase.AUTH, mechanism=cmd.sasl.mechanism, username=cmd.sasl.username,
                                         secret=cmd.sasl.secret, success=None, domain=cmd.sasl.domain))
        self.pending.clear()
        return self.out.take()

    def tls_started(self) -> None:
        self.tls = [False, False]
        for buf in self.lines:
            buf.clear()
        self.building = [Building(), Building()]
        self.phase = Phase.NEGOTIATION

    def record(self) -> dict[str, Any]:
        return {
            "user": None,
            "imap": {
                "state": self.state.value,
                "greeting": self.greeting,
                "capabilities": list(self.capabilities),
                "folders": list(self.folders),
                "selected": [vars(m) for m in self.selected],
                "fetched_messages": self.fetched,
                "appended_messages": self.appended,
                "expunged": list(self.expunged),
                "stored": list(self.stored),
                "idle_updates": list(self.idle_updates),
                "compressed": self.inflate[0] is not None or self.inflate[1] is not None,
            },
        }

    # ------------------------------------------------------------------ shared line/literal reader
    def _read(self, d: int, data: bytes, frame: int, ts: float) -> None:
        """Split one direction's bytes into lines and literals; complete lines go to the handlers."""
        direction = CLIENT if d == 0 else SERVER
        while data:
            b = self.building[d]
            if b.literal_left:
                take = data[: b.literal_left]
                data = data[b.literal_left :]
                b.literal_left -= len(take)
                self._literal_bytes(d, b, take, frame, ts)
                if b.literal_left:
                    return
                self._literal_done(d, b, frame, ts)
                continue
            if d == 0 and self.holding:
                self.held += data
                if len(self.held) > self.limits.max_wait_bytes or self.server_bytes == 0:
                    self._release_hold(frame, ts, assume_continue=True)
                return
            buf = self.lines[d]
            buf.push(data, frame, ts)
            data = b""
            for line in buf.lines(frame, ts):
                b = self.building[d]
                if not b.parts:
                    b.first_frame = line.first_frame
                if line.too_long:
                    self.out.anomaly(direction, self.phase, "line-too-long",
                                     f"line of {len(line.text) + line.too_long} bytes", line.frame)
                match = LITERAL_AT_END.search(line.text)
                if match and not self.gap[d]:
                    size = int(match.group(2))
                    b.parts.append(line.text)
                    b.literal_left = size
                    b.literal_size = size
                    b.literal_kept = bytearray()
                    b.literal_missing = 0
                    self._literal_start(d, b, line.text[: match.start()], size)
                    sync = not match.group(3)
                    data = buf.take_all()
                    if d == 0 and sync and self.server_bytes:
                        self.holding = True
                        self.holding_tag = b.parts[0].split(b" ", 1)[0].decode("latin-1", "replace")
                    if size == 0:
                        b.literal_left = 0
                        self._literal_done(d, b, line.frame, ts)
                    break
                b.parts.append(line.text)
                text = b"".join(b.parts)
                first = b.first_frame or line.first_frame
                self.building[d] = Building()
                if d == 0:
                    self._client_line(text, first, line.frame, ts)
                else:
                    self._server_line(text, first, line.frame, ts)
                if self.tls[d] or (d == 0 and self.holding):
                    data = buf.take_all()
                    if self.tls[d]:
                        return
                    break
            else:
                return

    def _literal_start(self, d: int, b: Building, before: bytes, size: int) -> None:
        b.message_origin = None
        if d == 1:
            match = MESSAGE_ITEM.search(before)
            if match:
                section = (match.group(2) or b"").upper().decode("latin-1")
                partial = match.group(3) is not None
                rfc822 = (match.group(4) or b"").upper()
                if rfc822 == b"RFC822" or (match.group(1) and section == ""):
                    b.message_origin, b.message_complete = "imap-fetch", not partial
                    b.message_section = "BODY[]" if not rfc822 else "RFC822"
                elif rfc822 == b"RFC822.HEADER" or section.startswith("HEADER"):
                    b.message_origin, b.message_complete = "imap-fetch", False
                    b.message_section = "header"
        else:
            pending_line = b"".join(b.parts).split(b" ")
            if len(pending_line) >= 2 and pending_line[1].upper() == b"APPEND":
                b.message_origin, b.message_complete = "imap-append", True
                b.message_section = "APPEND"

    def _literal_bytes(self, d: int, b: Building, data: bytes, frame: int, ts: float) -> None:
        direction = CLIENT if d == 0 else SERVER
        if b.message_origin:
            self.out.data(direction, Phase.TRANSFER, data)
            self.out.add(BodyData(direction=direction, ts=ts, frame=frame, first_frame=frame, phase=Phase.TRANSFER,
                                  nbytes=len(data), what="literal"))
        elif len(b.literal_kept) < MAX_KEPT_LITERAL:
            b.literal_kept += data[: MAX_KEPT_LITERAL - len(b.literal_kept)]

    def _literal_done(self, d: int, b: Building, frame: int, ts: float) -> None:
        direction = CLIENT if d == 0 else SERVER
        if b.message_origin:
            self.out.add(MessageEnd(direction=direction, ts=ts, frame=frame, first_frame=b.first_frame or frame,
                                    phase=Phase.TRANSFER, origin=b.message_origin,
                                    complete=b.message_complete and not b.literal_missing,
                                    missing_bytes=b.literal_missing, detail={"section": b.message_section}))
            self.messages += 1
            if b.message_origin == "imap-fetch":
                self.fetched += 1
            else:
                self.appended += 1
            b.parts.append(f"[{b.literal_size} bytes]".encode())
        else:
            kept = bytes(b.literal_kept)
            b.parts.append(b'"' + kept.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
                           if len(kept) == b.literal_size else f"[{b.literal_size} bytes]".encode())
        b.message_origin = None

    def _release_hold(self, frame: int, ts: float, assume_continue: bool) -> None:
        self.holding = False
        held = bytes(self.held)
        self.held.clear()
        b = self.building[0]
        if not assume_continue:
            b.literal_left = 0
            self.building[0] = Building()
        if held:
            self._read(0, held, frame, ts)

    # ------------------------------------------------------------------ client
    def _client_data(self, data: bytes, frame: int, ts: float) -> None:
        self._read(0, data, frame, ts)

    def _client_line(self, raw: bytes, first: int, frame: int, ts: float) -> None:
        waiting = self.waiting
        if waiting is not None and waiting.verb == "AUTHENTICATE" and waiting.sasl is not None:
            text = raw.decode("utf-8", "replace").strip()
            waiting.sasl.client(text)
            self.waiting = None
            shown = text if self.limits.show_secrets or text == "*" else "[SASL response]"
            self.out.add(Command(direction=CLIENT, ts=ts, frame=frame, first_frame=first, phase=Phase.AUTH,
                                 verb="", argument=shown))
            return
        if self.in_idle is not None and raw.strip().upper() == b"DONE":
            self.out.add(Command(direction=CLIENT, ts=ts, frame=frame, first_frame=first, phase=Phase.TRANSFER,
                                 verb="DONE", argument="", tag=None))
            self.waiting = None
            return
        text = raw.decode("utf-8", "surrogateescape")
        parts = text.split(" ", 2)
        if self.gap[0]:
            if len(parts) < 2 or parts[1].upper() not in KNOWN_COMMANDS:
                return
            self.gap[0] = False
        if len(parts) < 2 or not parts[0]:
            self.out.anomaly(CLIENT, self.phase, "invalid-command",
                             f"client line is not 'tag command': {printable(raw, 80)}", frame)
            return
        tag, verb = parts[0], parts[1].upper()
        argument = parts[2] if len(parts) > 2 else ""
        uid = False
        if verb == "UID" and argument:
            sub, _, argument = argument.partition(" ")
            verb, uid = sub.upper(), True
        known = verb in KNOWN_COMMANDS
        if not known and not printable_text(raw):
            self.out.anomaly(CLIENT, self.phase, "garbage",
                             f"non-text bytes where a command was expected: {printable(raw, 60)}", frame)
            return
        phase = COMMAND_PHASE.get(verb)
        if phase is None:
            phase = Phase.TRANSFER if self.state in (State.AUTHENTICATED, State.SELECTED) or verb not in (
                "NOOP",) else (self.phase if self.phase is not Phase.GREETING else Phase.NEGOTIATION)
        self.phase = phase
        pending = Pending(tag, verb, argument, frame, ts, phase, uid)
        shown = argument
        if verb == "LOGIN":
            args = tokens(argument)
            pending.login_user = args[0] if args else None
            pending.login_secret = args[1] if len(args) > 1 else None
            if not self.limits.show_secrets and len(args) > 1:
                shown = f"{_quote(args[0])} [password]"
        elif verb == "AUTHENTICATE":
            mech, _, initial = argument.strip().partition(" ")
            pending.sasl = SaslExchange(mech.upper())
            if initial.strip():
                pending.sasl.initial(initial.strip())
                if not self.limits.show_secrets and initial.strip() != "=":
                    shown = f"{mech} [initial response]"
            self.waiting = pending
        elif verb == "IDLE":
            self.in_idle = pending
            self.waiting = pending
        self.out.add(Command(direction=CLIENT, ts=ts, frame=frame, first_frame=first, phase=phase, verb=verb,
                             argument=shown, tag=tag, uid=uid, known=known))
        if not known:
            self.out.anomaly(CLIENT, phase, "unknown-command", f"unknown command {printable(verb.encode(), 40)}",
                             frame)
        if len(self.pending) >= self.limits.max_pending_commands:
            self.pending.pop(next(iter(self.pending)))
            self.out.anomaly(CLIENT, phase, "too-many-tags", "too many commands in flight", frame)
        if tag in self.pending:
            self.out.anomaly(CLIENT, phase, "duplicate-tag", f"tag {tag} reused while still in flight", frame)
        self.pending[tag] = pending
        if verb == "STARTTLS":
            pass

    # ------------------------------------------------------------------ server
    def _server_data(self, data: bytes, frame: int, ts: float) -> None:
        self._read(1, data, frame, ts)

    def _server_line(self, raw: bytes, first: int, frame: int, ts: float) -> None:
        text = raw.decode("utf-8", "replace")
        if text.startswith("+"):
            self.gap[1] = False
            self._continuation(text[1:].strip(), first, frame, ts)
            return
        if text.startswith("* "):
            self.gap[1] = False
            self._untagged(text[2:], first, frame, ts)
            return
        tag, _, rest = text.partition(" ")
        status, _, detail = rest.partition(" ")
        status = status.upper()
        if status not in ("OK", "NO", "BAD", "BYE", "PREAUTH"):
            if not self.gap[1]:
                self.out.anomaly(SERVER, self.phase, "invalid-response",
                                 f"server line is not a response: {printable(raw, 80)}", frame)
            return
        self.gap[1] = False
        cmd = self.pending.pop(tag, None)
        if cmd is None:
            self.out.anomaly(SERVER, self.phase, "unknown-tag", f"tagged {status} for unknown tag {tag}", frame)
            self.out.add(Reply(direction=SERVER, ts=ts, frame=frame, first_frame=first, phase=self.phase,
                               status=status, lines=(detail,), tag=tag))
            return
        if self.holding and self.holding_tag == tag:
            self._release_hold(frame, ts, assume_continue=False)
        if self.waiting is cmd:
            self.waiting = None
        if self.in_idle is cmd:
            self.in_idle = None
        self.out.add(Reply(direction=SERVER, ts=ts, frame=frame, first_frame=first, phase=cmd.phase, status=status,
                           lines=(detail,), answers=cmd.verb, latency=max(0.0, ts - cmd.ts), tag=tag))
        self._completion(cmd, status == "OK", detail, frame, ts)

    def _continuation(self, text: str, first: int, frame: int, ts: float) -> None:
        cmd = self.waiting or next((p for p in reversed(self.pending.values())
                                    if p.verb in ("AUTHENTICATE", "IDLE", "APPEND")), None)
        if self.holding:
            cmd = self.pending.get(self.holding_tag, cmd)
        phase = cmd.phase if cmd else self.phase
        self.out.add(Reply(direction=SERVER, ts=ts, frame=frame, first_frame=first, phase=phase, status="+",
                           lines=(text,), answers=cmd.verb if cmd else None,
                           latency=max(0.0, ts - cmd.ts) if cmd else None))
        if self.holding:
            self._release_hold(frame, ts, assume_continue=True)
        elif cmd is not None and cmd.verb == "AUTHENTICATE" and cmd.sasl is not None:
            cmd.sasl.server(text)
            self.waiting = cmd
        elif cmd is None and not self.pending:
            self.out.anomaly(SERVER, self.phase, "unexpected-continuation", "'+' with no command waiting", frame)

    def _untagged(self, text: str, first: int, frame: int, ts: float) -> None:
        word, _, rest = text.partition(" ")
        upper = word.upper()
        if not self.greeted and upper in ("OK", "PREAUTH", "BYE"):
            self.greeted = True
            self.greeting = rest
            if upper == "PREAUTH":
                self.state = State.AUTHENTICATED
            self._capabilities_in(rest)
            self.out.add(Reply(direction=SERVER, ts=ts, frame=frame, first_frame=first, phase=Phase.GREETING,
                               status="*", lines=(text,)))
            return
        self.greeted = True
        cmd = self._in_progress()
        phase = cmd.phase if cmd else self.phase
        if upper == "BYE":
            phase = Phase.TEARDOWN
        self.out.add(Reply(direction=SERVER, ts=ts, frame=frame, first_frame=first, phase=phase, status="*",
                           lines=(text,), answers=cmd.verb if cmd else None))
        if upper == "CAPABILITY":
            self.capabilities = rest.split()
        elif upper == "OK":
            self._capabilities_in(rest)
            if self.current_box is not None and "[UIDVALIDITY" in rest.upper():
                match = re.search(r"\[UIDVALIDITY (\d+)\]", rest, re.IGNORECASE)
                if match:
                    self.current_box.uidvalidity = match.group(1)
        elif upper in ("LIST", "LSUB", "XLIST"):
            args = tokens(rest)
            if len(args) >= 3 and args[-1] not in self.folders:
                self.folders.append(args[-1])
        elif word.isdigit():
            number, kind = int(word), rest.split(" ", 1)[0].upper()
            box = self.current_box
            if kind == "EXISTS" and box is not None:
                box.exists = number
            elif kind == "RECENT" and box is not None:
                box.recent = number
            elif kind == "EXPUNGE":
                self.expunged.append(number)
            if self.in_idle is not None and kind in ("EXISTS", "RECENT", "EXPUNGE", "FETCH"):
                self.idle_updates.append(f"{number} {kind}")
                self.out.add(Note(direction=SERVER, ts=ts, frame=frame, first_frame=first, phase=phase,
                                  text=f"IDLE woken: * {number} {kind}"))

    def _capabilities_in(self, text: str) -> None:
        match = re.search(r"\[CAPABILITY ([^\]]*)\]", text, re.IGNORECASE)
        if match:
            self.capabilities = match.group(1).split()

    def _in_progress(self) -> Pending | None:
        if not self.pending:
            return None
        return next(reversed(self.pending.values()))

    def _completion(self, cmd: Pending, ok: bool, detail: str, frame: int, ts: float) -> None:
        verb = cmd.verb
        self._capabilities_in(detail)
        if verb == "LOGIN":
            self.out.add(AuthAttempt(direction=CLIENT, ts=ts, frame=frame, first_frame=cmd.frame, phase=Phase.AUTH,
                                     mechanism="LOGIN", username=cmd.login_user, secret=cmd.login_secret,
                                     success=ok))
            if ok:
                self.state = State.AUTHENTICATED
        elif verb == "AUTHENTICATE" and cmd.sasl is not None:
            sasl = cmd.sasl
            self.out.add(AuthAttempt(direction=CLIENT, ts=ts, frame=frame, first_frame=cmd.frame, phase=Phase.AUTH,
                                     mechanism=sasl.mechanism, username=sasl.username, secret=sasl.secret,
                                     success=ok and not sasl.cancelled, domain=sasl.domain,
                                     extra={"host": sasl.host} if sasl.host else {}))
            if ok:
                self.state = State.AUTHENTICATED
        elif verb in ("SELECT", "EXAMINE"):
            if ok:
                args = tokens(cmd.argument)
                box = Mailbox(args[0] if args else "", read_only=verb == "EXAMINE")
                self.selected.append(box)
                self.current_box = box
                self.state = State.SELECTED
        elif verb in ("CLOSE", "UNSELECT") and ok:
            self.current_box = None
            self.state = State.AUTHENTICATED
        elif verb == "STORE" and ok:
            self.stored.append(cmd.argument)
        elif verb == "LOGOUT":
            self.state = State.LOGOUT
        elif verb == "STARTTLS" and ok:
            self.tls = [True, True]
            self.pending.clear()
            self.phase = Phase.TLS
            self.out.add(TlsStart(direction=SERVER, ts=ts, frame=frame, first_frame=frame, phase=Phase.TLS,
                                  mode="starttls"))
        elif verb == "COMPRESS" and ok:
            self.inflate = [zlib.decompressobj(-15), zlib.decompressobj(-15)]
            self.out.add(Note(direction=SERVER, ts=ts, frame=frame, first_frame=frame, phase=cmd.phase,
                              text="COMPRESS=DEFLATE: both directions are compressed from here on"))

    # ------------------------------------------------------------------ gaps and end
    def _gap(self, gap: StreamGap) -> None:
        d = 0 if gap.direction is CLIENT else 1
        if self.tls[d]:
            return
        b = self.building[d]
        if b.literal_left:
            used = min(gap.nbytes, b.literal_left)
            b.literal_left -= used
            b.literal_missing += used
            detail = "inside a literal; its byte count keeps the framing"
            if b.literal_left == 0:
                self._literal_done(d, b, gap.frame, gap.ts)
            if gap.nbytes > used:
                self.lines[d].clear()
                self.building[d] = Building()
                self.gap[d] = True
                detail += "; the gap runs past it: resynchronising"
        else:
            self.lines[d].clear()
            self.building[d] = Building()
            self.gap[d] = True
            detail = "resynchronising on the next complete line"
        if self.inflate[d] is not None:
            self.inflate[d] = None
            self.tls[d] = True
            detail = "the compressed stream cannot continue after lost bytes"
        self.out.add(GapEvent(direction=gap.direction, ts=gap.ts, frame=gap.frame, first_frame=gap.frame,
                              phase=self.phase, nbytes=gap.nbytes, detail=detail))

    def _eof(self, eof: Eof) -> None:
        d = 0 if eof.direction is CLIENT else 1
        b = self.building[d]
        if b.literal_left and b.message_origin:
            b.literal_missing += b.literal_left
            b.literal_left = 0
            self._literal_done(d, b, eof.frame or self.out.frame, eof.ts)
            self.out.anomaly(eof.direction, self.phase, "incomplete-literal", "stream ended inside a literal",
                             eof.frame)


def _quote(text: str) -> str:
    return f'"{text}"' if " " in text or not text else text


def printable_text(raw: bytes) -> bool:
    return all(b >= 0x20 or b == 0x09 for b in raw[:256])


__all__ = ["Direction", "Imap"]
