"""Captions: group a session's rows into the steps a textbook trace shows, each with a caption.

Shared by the terminal and HTML views (one source of truth for what a step is called). A step is a
run of consecutive rows under one caption, e.g. "TCP connection set up from the user agent ...
(SYN, SYN/ACK, ACK)" or "recipient transferred and accepted".

Steps come from the session model only (the events on the rows), in two passes:

1. **Grouping.** Walk the rows; a row *starts* a step when it opens something new — a command
   while no earlier command waits for its reply, a greeting or unsolicited reply, the first row of
   a message body, a TCP handshake or teardown, TLS records, a note, a gap. Every other row (ACKs,
   replies, continuation segments, the rest of a body) joins the open step. Commands sent together
   (SMTP PIPELINING) therefore share one step, and so do a command and all of its replies.
2. **Captioning.** Each step's exchanges (command + replies + login + messages) become sentences
   from :mod:`mailtrace.render.catalog`, joined with "; ".
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mailtrace.capture.decode import TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN
from mailtrace.model import (
    Anomaly,
    AuthAttempt,
    BodyData,
    Command,
    Direction,
    Event,
    GapEvent,
    MessageEnd,
    Note,
    Opaque,
    Phase,
    Reply,
    TlsStart,
)
from mailtrace.numbers import is_count
from mailtrace.protocols.imap_parse import section_ref
from mailtrace.protocols.smtp_codes import explain_reply
from mailtrace.render.catalog import fields, has, text, translated
from mailtrace.session import MessageRecord, PacketRow, Session

TONES = ("info", "ok", "warn", "fail")
"""How a step went, mildest first: a view may colour by it (the caption says it in words too)."""

MAX_LISTED = 10
"""Items one caption lists (IDLE news, sentences of one kind in a row) when there are more than twice as
many (a server's thousand unasked responses); the rest are counted. Up to twice as many are all listed:
"… and 1 more like it" would say less than the sentence itself."""
MAX_GAPS_LISTED = 3
"""Gaps a step's caption names one by one; past it, one sentence sums them up."""

CHALLENGE_MECHANISMS = frozenset({"CRAM-MD5", "DIGEST-MD5", "APOP", "NTLM", "GSSAPI", "SCRAM-SHA-1",
                                  "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS"})
SUBMISSION_PORTS = frozenset({587, 465})


@dataclass(frozen=True)
class Step:
    """Rows under one caption."""

    phase: Phase
    caption: str
    rows: tuple[PacketRow, ...]
    key: str = ""
    """Catalogue id of the caption's first sentence (e.g. ``smtp.rcpt.ok``): stable, for tests and styling."""
    tone: str = "info"
    """``info``, ``ok``, ``warn`` (4xx, gaps, resets) or ``fail`` (refused)."""


def steps(session: Session, *, lang: str = "en") -> list[Step]:
    """The captioned steps of a session, in row order."""
    drafts = _group(session)
    ctx = _Context(session, lang)
    out: list[Step] = []
    for index, draft in enumerate(drafts):
        key, caption, tone = _caption(draft, ctx, first=index == 0)
        out.append(Step(draft.phase, caption, tuple(draft.rows), key, tone))
    return out


# --------------------------------------------------------------------------- pass 1: grouping


@dataclass
class _Exchange:
    """A command and what answered it (or a reply that answers nothing)."""

    command: Command | None
    replies: list[Reply] = field(default_factory=list)
    auth: AuthAttempt | None = None
    messages: list[MessageRecord] = field(default_factory=list)
    continued: int = 0
    """SASL responses or other continuation lines the client sent for this command."""
    decrypted: bool = False
    waiting: bool = True
    """The command still waits for the server (no reply that settles it yet)."""
    overtaken: bool = False
    """A later server reply came while this command was waiting: it may never be answered."""

    @property
    def verb(self) -> str:
        return self.command.verb if self.command is not None else ""


@dataclass
class _Draft:
    kind: str
    """``setup``, ``close``, ``exchange``, ``body``, ``tls``, ``opaque``, ``note``, ``gap``, ``other``."""
    phase: Phase
    rows: list[PacketRow] = field(default_factory=list)
    exchanges: list[_Exchange] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    tls_notes: list[Note] = field(default_factory=list)
    messages: list[MessageRecord] = field(default_factory=list)
    gaps: list[GapEvent] = field(default_factory=list)
    tls_start: TlsStart | None = None
    opaque_bytes: int = 0


class _Waiting:
    """The commands that wait for the server, oldest first.

    Every operation the grouper needs costs O(1) (amortised), so a flood of pipelined commands
    (thousands of RCPT sent at once, most of them never paired with a reply) stays linear: the
    oldest waiting command of a verb, the newest one, whether one has not been overtaken, and
    settling one (which marks every older one overtaken). Exchanges are told apart by identity,
    never by the dataclass equality, which compares every field.
    """

    def __init__(self) -> None:
        self._next = 0
        self._seq: dict[int, int] = {}
        """``id(exchange)`` → its place in the queue (the queue holds it, so the id stays its own)."""
        self._all: OrderedDict[int, _Exchange] = OrderedDict()
        self._by_verb: dict[str, OrderedDict[int, _Exchange]] = {}
        self._fresh: OrderedDict[int, _Exchange] = OrderedDict()
        """The waiting exchanges not overtaken, oldest first."""

    def __len__(self) -> int:
        return len(self._all)

    def __contains__(self, exchange: _Exchange) -> bool:
        return id(exchange) in self._seq

    def last(self) -> _Exchange:
        """The newest waiting exchange (there must be one)."""
        return self._all[next(reversed(self._all))]

    def oldest(self, verb: str) -> _Exchange | None:
        """The oldest waiting exchange of a verb."""
        queue = self._by_verb.get(verb)
        return queue[next(iter(queue))] if queue else None

    def busy(self) -> bool:
        """Some waiting exchange has not been overtaken."""
        return bool(self._fresh)

    def append(self, exchange: _Exchange) -> None:
        seq = self._next
        self._next += 1
        self._seq[id(exchange)] = seq
        self._all[seq] = exchange
        self._by_verb.setdefault(exchange.verb, OrderedDict())[seq] = exchange
        if not exchange.overtaken:
            self._fresh[seq] = exchange

    def resume(self, exchange: _Exchange) -> None:
        """The client goes on with an exchange (a continuation line): it waits again, not overtaken.

        The exchange is the newest waiting one, or one that waits no more (it joins at the end).
        """
        exchange.waiting = True
        exchange.overtaken = False
        seq = self._seq.get(id(exchange))
        if seq is None:
            self.append(exchange)
        elif seq not in self._fresh:
            assert seq == next(reversed(self._all)), "only the newest waiting exchange is resumed"
            self._fresh[seq] = exchange  # the newest: the fresh ones stay oldest first

    def settle(self, exchange: _Exchange) -> None:
        """A reply ends the wait of an exchange: every older waiting one is overtaken."""
        seq = self._seq.pop(id(exchange))
        exchange.waiting = False
        del self._all[seq]
        queue = self._by_verb[exchange.verb]
        del queue[seq]
        if not queue:
            del self._by_verb[exchange.verb]
        fresh = self._fresh
        while fresh:
            first = next(iter(fresh))
            if first >= seq:
                break
            fresh.popitem(last=False)[1].overtaken = True
        fresh.pop(seq, None)


_QUIET = (Reply, AuthAttempt, MessageEnd, TlsStart, GapEvent, Anomaly)
_TLS_ASIDES = ("TLS new session ticket", "TLS key update", "TLS change cipher spec", "TLS heartbeat")
"""TLS records that do not start a step of their own (they happen in passing)."""


class _Grouper:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.protocol = session.protocol
        self.drafts: list[_Draft] = []
        self.draft: _Draft | None = None
        self.waiting = _Waiting()
        self.messages = _MessageIndex(session.messages)
        rows = session.rows
        self.starts: dict[int, Command] = {}
        """Row index → the command whose first segment it carries (completed in a later row)."""
        self.inside: set[int] = set()
        """Rows carrying the middle or end of a command that began in an earlier row."""
        self.consumed: set[int] = set()
        self.replied = bool(session.replies)
        index_of = {row.frame: i for i, row in enumerate(rows)}
        for row in rows:
            for event in row.events or ():
                if isinstance(event, Command) and 0 < event.first_frame < event.frame:
                    first = index_of.get(event.first_frame)
                    if first is None:
                        continue
                    self.starts.setdefault(first, event)
                    for i in range(first + 1, len(rows)):
                        if rows[i].frame > event.frame:
                            break
                        self.inside.add(i)

    # ------------------------------------------------------------------ driving
    def run(self) -> list[_Draft]:
        for index, row in enumerate(self.session.rows):
            self._row(index, row)
        return self.drafts

    def _open(self, kind: str, phase: Phase) -> _Draft:
        draft = _Draft(kind, phase)
        self.drafts.append(draft)
        self.draft = draft
        return draft

    def _row(self, index: int, row: PacketRow) -> None:
        events = row.events or []
        early = self.starts.get(index)
        if early is not None and index not in self.inside:
            kind, phase, starts = self._classify_command(early)
        elif index in self.inside:
            kind, phase, starts = "exchange", row.phase, False
        else:
            kind, phase, starts = self._classify(row, events)
        draft = self.draft
        if draft is None or starts:
            if draft is None and not starts:
                kind = "other"
            draft = self._open(kind, phase)
        draft.rows.append(row)
        if early is not None and id(early) not in self.consumed:
            self._command(early, row)
        for event in events:
            self._event(event, row)

    # ------------------------------------------------------------------ classification
    def _busy(self) -> bool:
        """A command waits for the server (and has not been overtaken by later replies).

        A capture that holds no reply at all (one direction only) is never busy: every command
        is a step of its own.
        """
        return self.replied and self.waiting.busy()

    def _classify_command(self, command: Command) -> tuple[str, Phase, bool]:
        if command.verb == "":
            return "exchange", command.phase, False
        return "exchange", command.phase, not self._busy()

    def _classify(self, row: PacketRow, events: list[Event]) -> tuple[str, Phase, bool]:
        current = self.draft.kind if self.draft is not None else ""
        lead = next((e for e in events if not isinstance(e, _QUIET)), None)
        replies = [e for e in events if isinstance(e, Reply)]
        if _data_end_then_command(events):
            # end of data pipelined with the next command (``.<CRLF>QUIT<CRLF>``): the message step goes
            # first, then its 250 and the command, in protocol order
            return "body", Phase.TRANSFER, current != "body"
        if isinstance(lead, Command):
            return self._classify_command(lead)
        if isinstance(lead, Note) and not lead.text.startswith("TLS "):
            if any(self._match(r, waiting_only=True) is not None for r in replies):
                return "exchange", lead.phase, False
            # a note that comes with a command (a state inferred from it) opens the command's own step
            return "note", lead.phase, current != "note" or any(isinstance(e, Command) for e in events)
        if isinstance(lead, Note):
            if lead.text.startswith(_TLS_ASIDES) or current == "close":
                return "tls", lead.phase, False
            return "tls", lead.phase, current not in ("tls", "opaque")
        if isinstance(lead, Opaque):
            if current == "close":
                return "opaque", lead.phase, False
            after_handshake = current == "tls" and self._handshake_done()
            return "opaque", lead.phase, current not in ("opaque", "tls") or after_handshake
        if isinstance(lead, BodyData) or (lead is None and row.body_bytes and row.payload_len):
            phase = lead.phase if lead is not None else row.phase
            if self.waiting and self._busy():
                return "exchange", phase, False
            return "body", phase, current != "body"
        if replies:
            reply = replies[0]
            if reply.answers is None and reply.status == "+":
                return "exchange", reply.phase, False
            if self._match(reply, waiting_only=False) is not None:
                return "exchange", reply.phase, False
            return "exchange", reply.phase, True
        gaps = [e for e in events if isinstance(e, GapEvent)]
        if gaps and not row.payload_len:
            return "gap", gaps[0].phase, current != "gap"
        flags = row.flags
        if flags & TCP_SYN:
            return "setup", Phase.SETUP, current != "setup"
        if flags & (TCP_FIN | TCP_RST) and not row.payload_len:
            return "close", Phase.TEARDOWN, current != "close"
        if gaps:
            return "gap", gaps[0].phase, current != "gap"
        return "other", row.phase, False

    def _handshake_done(self) -> bool:
        draft = self.draft
        return draft is not None and any(n.text.startswith("TLS handshake complete") for n in draft.tls_notes)

    # ------------------------------------------------------------------ events
    def _match(self, reply: Reply, *, waiting_only: bool) -> _Exchange | None:
        """The exchange a reply belongs to: a waiting command of its verb, else the latest one."""
        verb = reply.answers
        if verb is None:
            return None
        oldest = self.waiting.oldest(verb)
        if oldest is not None:
            return oldest
        if waiting_only:
            return None
        if self.waiting and verb == "":
            return self.waiting.last()
        draft = self.draft
        if draft is not None:
            for x in reversed(draft.exchanges):
                if x.verb == verb or (x.verb == "DONE" and verb == "IDLE"):
                    return x
            if self.waiting and self.protocol == "imap":
                return self.waiting.last()
        return None

    def _command(self, command: Command, row: PacketRow) -> None:
        self.consumed.add(id(command))
        draft = self.draft
        assert draft is not None
        if command.verb == "":
            target = self.waiting.last() if self.waiting else (draft.exchanges[-1] if draft.exchanges else None)
            if target is not None:
                target.continued += 1
                self.waiting.resume(target)
                return
        exchange = _Exchange(command, decrypted=row.decrypted)
        draft.exchanges.append(exchange)
        self.waiting.append(exchange)

    def _settles(self, reply: Reply) -> bool:
        """Whether a reply ends the wait of its command (untagged IMAP data does not)."""
        if self.protocol == "imap":
            return reply.status.upper() in ("OK", "NO", "BAD", "+")
        return True

    def _reply(self, reply: Reply, row: PacketRow) -> None:
        draft = self.draft
        assert draft is not None
        if reply.answers is None and reply.status == "+":
            return  # an IMAP literal continuation: part of the command that follows
        exchange = self._match(reply, waiting_only=False)
        if exchange is None:
            exchange = _Exchange(None, [], decrypted=row.decrypted, waiting=False)
            draft.exchanges.append(exchange)
        exchange.replies.append(reply)
        if exchange in self.waiting and self._settles(reply):
            self.waiting.settle(exchange)

    def _event(self, event: Event, row: PacketRow) -> None:
        draft = self.draft
        assert draft is not None
        if isinstance(event, Command):
            if id(event) not in self.consumed:
                self._command(event, row)
        elif isinstance(event, Reply):
            self._reply(event, row)
        elif isinstance(event, AuthAttempt):
            target = self._auth_exchange()
            if target is not None:
                target.auth = event
        elif isinstance(event, MessageEnd):
            record = self.messages.take(event)
            if record is not None:
                target = self._message_exchange(draft) or self._earlier_exchange(draft, record)
                if target is not None:
                    target.messages.append(record)
                else:
                    draft.messages.append(record)
            if event.origin == "smtp-data" and _data_end_then_command(row.events or []):
                # the end of data waits for its reply like a command (RFC 5321 §4.1.1.4), before the
                # commands pipelined after it
                dot = Command(direction=Direction.CLIENT, ts=event.ts, frame=event.frame,
                              first_frame=event.frame, phase=Phase.TRANSFER, verb=".", argument="")
                exchange = _Exchange(dot, decrypted=row.decrypted)
                draft.exchanges.append(exchange)
                self.waiting.append(exchange)
        elif isinstance(event, Note):
            (draft.tls_notes if event.text.startswith("TLS ") else draft.notes).append(event)
        elif isinstance(event, Opaque):
            draft.opaque_bytes += event.nbytes
        elif isinstance(event, TlsStart):
            draft.tls_start = event
        elif isinstance(event, GapEvent):
            draft.gaps.append(event)

    def _auth_exchange(self) -> _Exchange | None:
        for draft in reversed(self.drafts[-3:]):
            for x in reversed(draft.exchanges):
                if x.verb in ("AUTH", "AUTHENTICATE", "LOGIN", "PASS", "APOP", "USER"):
                    return x
        return None

    def _earlier_exchange(self, draft: _Draft, record: MessageRecord) -> _Exchange | None:
        """The command step a message began in, when it ends in a later step (the connection
        closed in the middle of a FETCH literal or a RETR): its caption tells it was cut short."""
        if draft.kind == "body" or any(r.frame == record.first_frame for r in draft.rows):
            return None
        for earlier in reversed(self.drafts[:-1]):
            if earlier.kind == "body":
                return None
            if any(r.frame == record.first_frame for r in earlier.rows):
                return self._message_exchange(earlier) if earlier.kind == "exchange" else None
        return None

    def _message_exchange(self, draft: _Draft) -> _Exchange | None:
        if draft.kind == "body":
            return None
        for x in reversed(draft.exchanges):
            if x.command is not None:
                return x
        return None


def _data_end_then_command(events: list[Event]) -> bool:
    """The row ends an SMTP DATA message and carries a command after it (pipelined after the dot)."""
    ended = False
    for event in events:
        if isinstance(event, MessageEnd) and event.origin == "smtp-data" and event.direction is Direction.CLIENT:
            ended = True
        elif ended and isinstance(event, Command) and event.verb:
            return True
    return False


class _MessageIndex:
    """Finds the MessageRecord a MessageEnd event produced (same last frame and origin, in order)."""

    def __init__(self, records: list[MessageRecord]) -> None:
        self.by_end: dict[tuple[int, str], list[MessageRecord]] = {}
        for record in records:
            self.by_end.setdefault((record.last_frame, record.origin), []).append(record)

    def take(self, event: MessageEnd) -> MessageRecord | None:
        bucket = self.by_end.get((event.frame, event.origin))
        return bucket.pop(0) if bucket else None


def _group(session: Session) -> list[_Draft]:
    return _Grouper(session).run()


# --------------------------------------------------------------------------- pass 2: captions


@dataclass
class _Context:
    """What captions need beyond one step: the session, the language, running POP3/IMAP state."""

    session: Session
    lang: str
    pop3_marked: list[str] = field(default_factory=list)
    """POP3: the messages marked for deletion (DELE) since the login or the last RSET."""
    logged_in: bool = False
    tls_seen: bool = False
    upgraded: bool = False
    """STARTTLS/STLS was accepted: what follows runs inside TLS (or behind an inspection box)."""
    imap_states_told: set[int] = field(default_factory=set)
    """IMAP: the indexes of the dissector's state changes a caption has named already."""

    def t(self, key: str, **params: Any) -> str:
        return text(key, self.lang, **params)

    def has(self, key: str) -> bool:
        return has(key, self.lang)

    def fits(self, key: str, params: dict[str, Any]) -> bool:
        """The message exists and every placeholder it uses has a value."""
        return has(key, self.lang) and fields(key, self.lang) <= params.keys()


@dataclass(frozen=True)
class _Sentence:
    key: str
    text: str
    tone: str


def _caption(draft: _Draft, ctx: _Context, *, first: bool) -> tuple[str, str, str]:
    sentences = _sentences(draft, ctx, first=first)
    if not sentences:
        sentences = [_Sentence("tcp.acks", ctx.t("tcp.acks"), "info")]
    merged: list[tuple[_Sentence, int]] = []
    for sentence in sentences:
        if merged and merged[-1][0].text == sentence.text:
            merged[-1] = (merged[-1][0], merged[-1][1] + 1)
        else:
            merged.append((sentence, 1))
    parts = [s.text if n == 1 else ctx.t("repeat", caption=s.text, n=n) for s, n in _few_of_a_kind(merged, ctx)]
    tone = max((s.tone for s in sentences), key=TONES.index)
    return sentences[0].key, "; ".join(parts), tone


def _few_of_a_kind(merged: list[tuple[_Sentence, int]], ctx: _Context) -> list[tuple[_Sentence, int]]:
    """Runs of more than twice :data:`MAX_LISTED` sentences of one kind (a server's thousand unasked
    responses in one step) keep their first ones and count the rest."""
    out: list[tuple[_Sentence, int]] = []
    i = 0
    while i < len(merged):
        j = i
        while j < len(merged) and merged[j][0].key == merged[i][0].key:
            j += 1
        if j - i <= 2 * MAX_LISTED:
            out += merged[i:j]
        else:
            out += merged[i : i + MAX_LISTED]
            rest = j - i - MAX_LISTED
            out.append((_Sentence(merged[i][0].key, ctx.t("more.like", n=rest), merged[i][0].tone), 1))
        i = j
    return out


def _sentences(draft: _Draft, ctx: _Context, *, first: bool) -> list[_Sentence]:
    kind = draft.kind
    session = ctx.session
    if kind == "setup":
        return [_setup(draft, ctx)]
    if kind == "close":
        return [_close(draft, ctx)] + [s for s in _tls(draft, ctx) if s.key.startswith("tls.alert")]
    if kind == "gap":
        if len(draft.gaps) > MAX_GAPS_LISTED:
            return [_gaps(draft.gaps, ctx)]
        return [_gap(g, ctx) for g in draft.gaps]
    if kind in ("tls", "opaque"):
        return _tls(draft, ctx)
    if kind == "note":
        return [_notes(draft, ctx)] + [_exchange(x, ctx) for x in draft.exchanges if x.command is not None]
    if kind == "body":
        out = [_body(draft, ctx)]
        return out + [_exchange(x, ctx) for x in draft.exchanges]
    out = [_exchange(x, ctx) for x in draft.exchanges]
    if out:
        batch = _pipelined(draft)
        if batch > 1:
            if _pipelining_offered(session) is False:  # RFC 2920 / 2449: only where the server offers it
                out.append(_Sentence("pipelined.unoffered", ctx.t("pipelined.unoffered", n=batch), "warn"))
            else:
                out.append(_Sentence("pipelined", ctx.t("pipelined", n=batch,
                                                        rfc=PIPELINING_RFC[session.protocol]), "info"))
        return out
    if draft.tls_notes or draft.opaque_bytes:
        return _tls(draft, ctx)
    if first and session.rows and not session.rows[0].flags & TCP_SYN:
        return [_Sentence("tcp.midstream", ctx.t("tcp.midstream"), "warn")]
    data = sum(r.payload_len for r in draft.rows)
    if data:
        return [_Sentence("tcp.data", ctx.t("tcp.data", bytes=data, n=data), "info")]
    return []


PIPELINING_RFC = {"smtp": "RFC 2920", "pop3": "RFC 2449", "imap": "RFC 3501 5.5"}


def _pipelining_offered(session: Session) -> bool | None:
    """Whether the server offered pipelining: IMAP always allows it; SMTP after an EHLO that lists
    PIPELINING (a HELO session never has it); POP3 when CAPA lists it. None: the capture does not say."""
    if session.protocol == "imap":
        return True
    if session.protocol == "smtp":
        smtp = session.record.get("smtp") or {}
        keywords = smtp.get("ehlo_keywords") or []
        if "PIPELINING" in keywords:
            return True
        return False if keywords or smtp.get("helo_verb") == "HELO" else None
    capabilities = (session.record.get("pop3") or {}).get("capabilities") or []
    if any(str(c).upper().split(" ", 1)[0] == "PIPELINING" for c in capabilities):
        return True
    return False if capabilities else None


def _pipelined(draft: _Draft) -> int:
    """The most commands one client segment of the step carried (pipelining), counting only commands
    that wait for their own reply (not SASL lines)."""
    per_frame: dict[int, int] = {}
    for x in draft.exchanges:
        command = x.command
        if command is not None and command.verb:
            per_frame[command.frame] = per_frame.get(command.frame, 0) + 1
    return max(per_frame.values(), default=0)


def _side(direction: Direction, ctx: _Context) -> str:
    return ctx.t("side.client" if direction is Direction.CLIENT else "side.server")


def _setup(draft: _Draft, ctx: _Context) -> _Sentence:
    session = ctx.session
    seen: list[str] = []
    for row in draft.rows:
        flags = row.flags
        if flags & TCP_SYN and flags & TCP_ACK:
            name = "SYN/ACK"
        elif flags & TCP_SYN:
            name = "SYN"
        elif flags & TCP_RST:
            name = "RST"
        elif flags & TCP_ACK and not row.payload_len and not row.events:
            name = "ACK"
        else:
            continue
        seen.append(name)
    names: list[str] = []
    counts: list[int] = []
    for name in seen:
        if names and names[-1] == name:
            counts[-1] += 1
        else:
            names.append(name)
            counts.append(1)
    flags_text = ", ".join(n if c == 1 else f"{n} ×{c}" for n, c in zip(names, counts, strict=True))
    agent = session.protocol in ("pop3", "imap") or session.server.port in SUBMISSION_PORTS
    role = "role.user_agent" if agent else "role.client"
    if "SYN/ACK" in names:
        key = "setup"
    elif "ACK" in names:
        key = "setup.no_synack"
    else:
        answer = next((r for r in session.rows if r.direction is Direction.SERVER), None)
        # a SYN answered by RST is a refusal (a closed port, or a firewall that rejects), not silence
        key = "setup.refused" if answer is not None and answer.flags & TCP_RST else "setup.unanswered"
    return _Sentence(key, ctx.t(key, role=ctx.t(role), client=session.client.ip, server=session.server.ip,
                                port=session.server.port, flags=flags_text),
                     "warn" if key in ("setup.unanswered", "setup.refused") else "info")


def _close(draft: _Draft, ctx: _Context) -> _Sentence:
    # who closed first is the session's first FIN, which may have ridden on the last reply (a POP3
    # server's "+OK bye" with FIN) and so sit in the block before this one
    last = draft.rows[-1].frame if draft.rows else 0
    fin = next((r for r in ctx.session.rows if r.flags & TCP_FIN and r.frame <= last), None)
    rst = next((r for r in draft.rows if r.flags & TCP_RST), None)
    if fin is not None and rst is not None and fin.frame < rst.frame:
        key = "tcp.fin_rst.same" if fin.direction is rst.direction else "tcp.fin_rst"
        return _Sentence(key, ctx.t(key, side=_side(fin.direction, ctx), rst_side=_side(rst.direction, ctx)),
                         "warn")
    if rst is not None:
        return _Sentence("tcp.rst", ctx.t("tcp.rst", side=_side(rst.direction, ctx)), "warn")
    if fin is not None:
        return _Sentence("tcp.fin", ctx.t("tcp.fin", side=_side(fin.direction, ctx)), "info")
    return _Sentence("tcp.acks", ctx.t("tcp.acks"), "info")


def _gap(gap: GapEvent, ctx: _Context) -> _Sentence:
    side = _side(gap.direction, ctx)
    return _Sentence("gap", ctx.t("gap", nbytes=gap.nbytes, n=gap.nbytes, side=side), "warn")


def _gaps(gaps: list[GapEvent], ctx: _Context) -> _Sentence:
    """Many gaps in one step (a capture that cut every packet's payload), summed up in one sentence: listed,
    eleven of them made a caption of five lines (Zeek's tcp-truncated-header)."""
    client = sum(g.nbytes for g in gaps if g.direction is Direction.CLIENT)
    server = sum(g.nbytes for g in gaps if g.direction is not Direction.CLIENT)
    key = "gap.many" if client and server else "gap.many.one_side"
    side = _side(Direction.CLIENT if client else Direction.SERVER, ctx)
    return _Sentence("gap", ctx.t(key, n=len(gaps), nbytes=client + server, client=client, server=server,
                                  side=side), "warn")


def _tls_details(ctx: _Context) -> str:
    info = ctx.session.tls_info or {}
    parts = [str(info[k]) for k in ("version", "cipher") if info.get(k)]
    if info.get("sni"):
        parts.append(ctx.t("tls.sni", sni=info["sni"]))
    return ", ".join(parts) or ctx.t("tls.unknown")


_ALERT = re.compile(r"^TLS alert: (?:(fatal|warning) )?(.+)$")
"""``TLS alert: fatal handshake_failure``; an encrypted alert has no readable level: ``TLS alert: encrypted``."""


def _tls(draft: _Draft, ctx: _Context) -> list[_Sentence]:
    session = ctx.session
    out: list[_Sentence] = []
    notes = draft.tls_notes
    handshake = [n for n in notes if not n.text.startswith("TLS alert")]
    if handshake and not ctx.tls_seen:
        ctx.tls_seen = True
        decrypted = session.decrypted or any(r.decrypted for r in session.rows)
        implicit = session.tls == "implicit"
        key = ("tls.implicit" if implicit else "tls.handshake") + (".decrypted" if decrypted else "")
        out.append(_Sentence(key, ctx.t(key, details=_tls_details(ctx), port=session.server.port), "info"))
    elif handshake:
        texts = list(dict.fromkeys(n.text.removeprefix("TLS ") for n in handshake))
        out.append(_Sentence("tls.notes", ctx.t("tls.notes", text=", ".join(texts)), "info"))
    for note in notes:
        match = _ALERT.match(note.text)
        if match:
            fatal = match.group(1) == "fatal"
            key = "tls.alert.fatal" if fatal else "tls.alert"
            out.append(_Sentence(key, ctx.t(key, side=_side(note.direction, ctx), description=match.group(2)),
                                 "fail" if fatal else "info"))
    if draft.opaque_bytes:
        packets = sum(1 for r in draft.rows if any(isinstance(e, Opaque) for e in r.events or ()))
        out.append(_Sentence("tls.opaque", ctx.t("tls.opaque", n=packets, bytes=draft.opaque_bytes), "info"))
    return out


def _notes(draft: _Draft, ctx: _Context) -> _Sentence:
    texts = [n.text for n in draft.notes]
    if texts and all(t.startswith("IDLE woken: ") for t in texts):
        listed = texts if len(texts) <= 2 * MAX_LISTED else texts[:MAX_LISTED]
        updates = ", ".join(t.removeprefix("IDLE woken: ").removeprefix("* ") for t in listed)
        if len(listed) < len(texts):
            updates += " " + ctx.t("more.like", n=len(texts) - MAX_LISTED)
        return _Sentence("imap.idle.news", ctx.t("imap.idle.news", updates=updates), "info")
    if draft.notes and all(n.phase is Phase.SETUP for n in draft.notes):
        return _Sentence("note.tunnel", ctx.t("note.tunnel", text="; ".join(texts)), "info")
    said = [_note_sentence(t, ctx) for t in texts]
    return _Sentence(said[0][0] if said else "note", "; ".join(s for _, s in said), "info")


_BYE_NOTE = "the server closes the session"
"""The IMAP dissector's note for a BYE no LOGOUT asked for (``…: reason`` when the server gives one)."""


def _note_sentence(note: str, ctx: _Context) -> tuple[str, str]:
    """(catalogue key, text) of a dissector note: in the view's language where the catalogue has it."""
    if note == _BYE_NOTE or note.startswith(_BYE_NOTE + ": "):
        reason = note.removeprefix(_BYE_NOTE).removeprefix(": ")
        if reason.strip():
            return "imap.bye.reason", ctx.t("imap.bye.reason", reason=reason)
        return "imap.bye", ctx.t("imap.bye")
    return "note", note


def _body(draft: _Draft, ctx: _Context) -> _Sentence:
    frames = {r.frame for r in draft.rows}
    records = draft.messages + [m for m in ctx.session.messages if m.first_frame in frames]
    incomplete = list({id(m): m for m in records if not m.summary.complete}.values())
    if incomplete and all(_lost_inside(m, ctx) for m in incomplete):
        missing = sum(m.summary.missing_bytes for m in incomplete)
        return _Sentence("smtp.body.gap", ctx.t("smtp.body.gap", n=missing), "warn")
    if incomplete:
        return _Sentence("smtp.body.incomplete", ctx.t("smtp.body.incomplete"), "warn")
    return _Sentence("smtp.body", ctx.t("smtp.body"), "info")


def _lost_inside(record: MessageRecord, ctx: _Context) -> bool:
    """Bytes of the message were lost, but its end was not: the server answered the end of the message
    (``.`` or the last ``BDAT``), so the transfer went on to its end and only the capture missed a part."""
    if record.summary.missing_bytes <= 0:
        return False
    transactions = ctx.session.record.get("transactions")
    for t in transactions if isinstance(transactions, list) else ():
        if isinstance(t, dict) and t.get("message") == record.index:
            return t.get("data_reply") is not None
    return False


# --------------------------------------------------------------------------- exchanges


def reply_text(reply: Reply, lang: str = "en") -> str:
    """A reply as one line for a caption. An SMTP failure is named by its meaning (RFC 3463 / 5321):
    ``550 5.1.1 bad destination mailbox address``; anything else by its status and first line."""
    first = reply.lines[0] if reply.lines else ""
    if reply.status[:1] in ("4", "5") and reply.status.isdigit():
        meaning = explain_reply(reply.status, first, lang)
        if meaning is not None and (meaning.enhanced_meaning or meaning.meaning):
            code = f"{reply.status} {meaning.enhanced}" if meaning.enhanced else reply.status
            return f"{code} {meaning.short}"
    return f"{reply.status} {first}".strip()


def _tone(reply: Reply | None) -> str:
    if reply is None:
        return "warn"
    status = reply.status.upper()
    if status[:1].isdigit():
        return {"2": "ok", "3": "ok", "4": "warn"}.get(status[:1], "fail")
    if status == "*":
        head = reply.lines[0].split(" ", 1)[0].upper() if reply.lines else ""
        return "fail" if head in ("NO", "BAD", "BYE") else "ok"
    return "ok" if status in ("+OK", "+", "OK", "PREAUTH") else "fail"


def _final(x: _Exchange, protocol: str) -> Reply | None:
    if not x.replies:
        return None
    if protocol == "imap":
        tagged = [r for r in x.replies if r.status.upper() in ("OK", "NO", "BAD")]
        if tagged:
            return tagged[-1]
    return x.replies[-1]


def _say(ctx: _Context, key: str, reply: Reply | None, tone: str | None = None, **params: Any) -> _Sentence:
    """The sentence for ``key`` given how the server answered (see the catalogue's docstring)."""
    status = reply.status if reply is not None else ""
    params.setdefault("status", status)
    if reply is not None:
        params.setdefault("reply", reply_text(reply, ctx.lang))
    verdict = tone or _tone(reply)
    if reply is None:
        if ctx.has(key + ".noreply"):
            return _Sentence(key + ".noreply", ctx.t(key + ".noreply", **params), "warn")
        return _Sentence(key, ctx.t("outcome.noreply", action=ctx.t(key, **params)), "warn")
    if verdict in ("ok", "info"):
        name = key + ".ok" if ctx.fits(key + ".ok", params) else key
        return _Sentence(name, ctx.t(name, **params), verdict)
    if ctx.has(key + ".fail"):
        return _Sentence(key + ".fail", ctx.t(key + ".fail", **params), verdict)
    outcome = "outcome.temporary" if verdict == "warn" else "outcome.refused"
    return _Sentence(key, ctx.t(outcome, action=ctx.t(key, **params), reply=params["reply"]), verdict)


def _exchange(x: _Exchange, ctx: _Context) -> _Sentence:
    sentence = _exchange_sentence(x, ctx)
    if ctx.session.protocol == "imap":
        state = _imap_entered(x, ctx)
        if state is not None:
            sentence = _Sentence(sentence.key, sentence.text + " " + ctx.t("imap.enter", state=state), sentence.tone)
    return sentence


def _exchange_sentence(x: _Exchange, ctx: _Context) -> _Sentence:
    protocol = ctx.session.protocol
    reply = _final(x, protocol)
    if x.command is None:
        return _unasked(x, ctx)
    command = x.command
    verb = command.verb
    if verb == "." and protocol == "smtp":  # the end of data (see _Grouper._event)
        return _say(ctx, "smtp.dot", reply)
    if verb in ("AUTH", "AUTHENTICATE", "LOGIN") or (verb in ("PASS", "APOP") and protocol == "pop3"):
        return _auth(x, ctx, reply)
    if verb in ("STARTTLS", "STLS"):
        upgrade = _say(ctx, "starttls", reply, verb=verb)
        ctx.upgraded = ctx.upgraded or upgrade.tone == "ok"
        return upgrade
    handler = PROTOCOL_CAPTIONS.get(protocol)
    if handler is not None:
        sentence = handler(x, ctx, reply)
        if sentence is not None:
            return sentence
    label = ("UID " if command.uid else "") + (verb or "?")
    if not command.known:
        return _say(ctx, "unknown", reply, verb=label)
    return _say(ctx, "generic", reply, verb=label)


def _unasked(x: _Exchange, ctx: _Context) -> _Sentence:
    reply = x.replies[0]
    session = ctx.session
    protocol = session.protocol
    if reply.answers == ".":
        return _say(ctx, "smtp.dot", reply)
    if reply.answers == "" and protocol == "smtp":  # the answer to an empty or non-text line (smtp.py: junk)
        return _say(ctx, "smtp.junk", reply)
    is_greeting = reply.phase is Phase.GREETING and bool(session.replies) and session.replies[0] is reply
    if is_greeting:
        line = reply.lines[0] if reply.lines else ""
        if protocol == "imap":
            head = line.split(" ", 1)[0].upper()
            if head == "PREAUTH":
                ctx.logged_in = True
                return _Sentence("greeting.preauth", ctx.t("greeting.preauth"), "ok")
            status = f"* {head}" if head else "*"
            tone = "ok" if head == "OK" else "fail"
        else:
            status = reply.status
            tone = _tone(reply)
        if tone != "ok":
            refused = ctx.t("greeting.fail", reply=_reply_line(reply, protocol, ctx.lang))
            return _Sentence("greeting.fail", refused, "fail")
        if protocol == "pop3" and re.search(r"<[^<>@]+@[^<>]+>", line):
            # a POP3 greeting puts the session in the AUTHORIZATION state (RFC 1939 §4)
            return _Sentence("greeting.apop", ctx.t("greeting.apop", status=status), "ok")
        refined = f"{protocol}.greeting.ok"  # "the MTA is ready to receive a message", where a language has it
        ready = refined if translated(refined, ctx.lang) else "greeting.ok"
        return _Sentence("greeting.ok", ctx.t(ready, status=status), "ok")
    line = _reply_line(reply, protocol, ctx.lang)
    bye = reply.status == "*" and bool(reply.lines) and reply.lines[0].upper().startswith("BYE")
    if reply.status == "421" or bye:
        return _Sentence("server.closes", ctx.t("server.closes", reply=line), "warn")
    if reply.answers_lost:
        return _Sentence("answers_lost", ctx.t("answers_lost", reply=line), _tone(reply))
    return _Sentence("unsolicited", ctx.t("unsolicited", reply=line), "warn")


def _reply_line(reply: Reply, protocol: str, lang: str) -> str:
    if protocol == "imap" and reply.status == "*":
        return "* " + (reply.lines[0] if reply.lines else "")
    return reply_text(reply, lang)


def _auth(x: _Exchange, ctx: _Context, reply: Reply | None) -> _Sentence:
    session = ctx.session
    command = x.command
    assert command is not None
    verb = command.verb
    attempt = x.auth
    if verb == "AUTH" and not command.argument.strip() and attempt is None:
        return _say(ctx, "auth.list", reply)
    first_word = command.argument.split(" ", 1)[0].upper() if command.argument else ""
    if verb == "LOGIN":
        method, mechanism = "LOGIN", "LOGIN"
    elif verb == "APOP":
        method, mechanism = "APOP", "APOP"
    elif verb == "PASS":
        method, mechanism = "PASS", "USER"
    else:
        mechanism = (attempt.mechanism if attempt is not None else first_word).upper() or "?"
        method = f"{verb} {mechanism}"
    user = attempt.sent_username if attempt is not None else None  # not a command the server read as one
    if user is None and verb in ("LOGIN", "APOP") and command.argument:
        user = command.argument.split(" ", 1)[0].strip('"')
    if x.decrypted or (session.tls != "none" and ctx.tls_seen):
        channel = ctx.t("channel.tls")
    elif mechanism in CHALLENGE_MECHANISMS:
        channel = ctx.t("channel.challenge")
    else:
        channel = ctx.t("channel.cleartext")
    decided = attempt is not None and attempt.success is not None
    if not decided and reply is not None and _asks_more(reply):
        # 334 (SMTP) or + (IMAP, POP3): a challenge, the server waits for the next part — no verdict yet
        as_user = ctx.t("auth.as", user=user) if user else ""
        caption = ctx.t("auth.continue", method=method, as_user=as_user, channel=channel, status=reply.status)
        return _Sentence("auth.continue", caption, "warn")
    if attempt is not None and attempt.cancelled:
        return _auth_cancelled(ctx, reply, method=method, user=user, channel=channel,
                               sent=bool(attempt.username or attempt.secret))
    ok = attempt.success if attempt is not None and attempt.success is not None else \
        (None if reply is None else _tone(reply) == "ok")
    if ok:
        ctx.logged_in = True
    tone = "ok" if ok else ("fail" if ok is False else "warn")
    if verb == "PASS":
        sentence = _say(ctx, "pop3.pass", reply, tone, channel=channel)
    elif verb == "APOP":
        sentence = _say(ctx, "pop3.apop", reply, tone, user=user or "?")
    else:
        as_user = ctx.t("auth.as", user=user) if user else ""
        sentence = _say(ctx, "auth", reply, tone, method=method, as_user=as_user, channel=channel)
    if session.protocol == "pop3" and _pop3_entered(x, ctx) == "TRANSACTION":
        sentence = _Sentence(sentence.key, sentence.text + " " + ctx.t("pop3.enter", state="TRANSACTION"),
                             sentence.tone)
    return sentence


def _auth_cancelled(ctx: _Context, reply: Reply | None, *, method: str, user: str | None, channel: str,
                    sent: bool) -> _Sentence:
    """The client sent ``*`` to cancel the exchange (RFC 4954 §4, RFC 5034 §4, RFC 3501 §6.2.2) and the
    server answers with an error that confirms it (501, -ERR, BAD): no login was tried. The channel is
    named only when part of the credentials (a user name) went over it."""
    if sent:
        as_user = ctx.t("auth.as", user=user) if user else ""
        key, action = "auth.cancel.sent", ctx.t("auth.cancel.sent", method=method, as_user=as_user, channel=channel)
    else:
        key, action = "auth.cancel", ctx.t("auth.cancel", method=method)
    if reply is None:
        return _Sentence(key, ctx.t("outcome.noreply", action=action), "warn")
    if _tone(reply) == "ok":  # a server that accepts a cancelled exchange
        return _Sentence(key, ctx.t("outcome.accepted", action=action, status=reply.status), "warn")
    return _Sentence(key, ctx.t("auth.cancel.confirmed", action=action, status=reply.status), "info")


def _asks_more(reply: Reply) -> bool:
    """A continuation: SMTP's 334 and other 3yz replies, the ``+`` of IMAP and POP3 (RFC 4954, 3501, 5034)."""
    return reply.status == "+" or (len(reply.status) == 3 and reply.status.startswith("3"))


def _words(argument: str) -> list[str]:
    return argument.split()


def _size(x: _Exchange) -> int | None:
    sizes = [m.summary.bytes for m in x.messages]
    return sum(sizes) if sizes else None


def _smtp(x: _Exchange, ctx: _Context, reply: Reply | None) -> _Sentence | None:
    command = x.command
    assert command is not None
    verb = command.verb
    if verb in ("EHLO", "HELO", "LHLO"):
        again = x.decrypted or ctx.tls_seen or ctx.upgraded
        if _tone(reply) == "ok":
            key = "smtp.ehlo.tls.ok" if again and verb != "HELO" else ("smtp.helo.ok" if verb == "HELO"
                                                                        else "smtp.ehlo.ok")
            return _Sentence(key, ctx.t(key, verb=verb), "ok")
        return _say(ctx, "smtp.ehlo", reply, verb=verb)
    if verb in ("MAIL", "RCPT", "DATA", "RSET", "NOOP", "HELP", "QUIT", "ETRN"):
        return _say(ctx, "smtp." + verb.lower(), reply)
    if verb in ("VRFY", "EXPN"):
        address = command.argument.strip() or "?"
        if verb == "VRFY" and reply is not None and reply.status == "252":
            return _Sentence("smtp.vrfy.252", ctx.t("smtp.vrfy.252", address=address), "info")
        return _say(ctx, "smtp." + verb.lower(), reply, address=address)
    if verb == "BDAT":
        words = _words(command.argument)
        size = words[0] if words else "?"
        last = len(words) > 1 and words[1].upper() == "LAST"
        if last and _tone(reply) == "ok":
            return _Sentence("smtp.bdat.last.ok", ctx.t("smtp.bdat.last.ok", size=size, status=reply.status
                                                        if reply else ""), "ok")
        return _say(ctx, "smtp.bdat", reply, size=size)
    return None


def _pop3(x: _Exchange, ctx: _Context, reply: Reply | None) -> _Sentence | None:
    command = x.command
    assert command is not None
    verb = command.verb
    words = _words(command.argument)
    msg = words[0] if words else "?"
    ok = _tone(reply) == "ok"
    if verb == "USER":
        return _say(ctx, "pop3.user", reply, user=msg)
    if verb == "STAT":
        parts = reply.lines[0].split() if reply is not None and reply.lines else []
        if ok and len(parts) >= 2 and is_count(parts[0]) and is_count(parts[1]):
            caption = ctx.t("pop3.stat.ok", count=int(parts[0]), octets=int(parts[1]), n=int(parts[0]))
            return _Sentence("pop3.stat.ok", caption, "ok")
        return _say(ctx, "pop3.stat", reply, tone="info" if ok else None)
    if verb in ("LIST", "UIDL"):
        if words:
            return _say(ctx, f"pop3.{verb.lower()}.one", reply, msg=msg)
        count = len([line for line in (reply.lines[1:] if reply is not None else ()) if line.strip()])
        if verb == "LIST" and ok:
            return _Sentence("pop3.list.ok", ctx.t("pop3.list.ok", n=count), "ok")
        return _say(ctx, f"pop3.{verb.lower()}", reply)
    if verb == "RETR":
        size = _size(x)
        if ok and size is not None and any(not m.summary.complete for m in x.messages):
            caption = ctx.t("pop3.retr.incomplete", msg=msg, size=size)
            return _Sentence("pop3.retr.incomplete", caption, "warn")
        if ok and size is not None:
            return _Sentence("pop3.retr.ok", ctx.t("pop3.retr.ok", msg=msg, size=size), "ok")
        return _say(ctx, "pop3.retr", reply, tone="info" if ok else None, msg=msg)
    if verb == "TOP":
        return _say(ctx, "pop3.top", reply, msg=msg, lines=words[1] if len(words) > 1 else "?")
    if verb == "DELE":
        if ok and msg.isdigit() and msg not in ctx.pop3_marked:
            ctx.pop3_marked.append(msg)
        return _say(ctx, "pop3.dele", reply, msg=msg)
    if verb == "RSET":
        if not ok:
            return _say(ctx, "pop3.rset", reply)
        undone, ctx.pop3_marked = ctx.pop3_marked, []
        if not undone:
            return _Sentence("pop3.rset.none", ctx.t("pop3.rset.none"), "ok")
        return _Sentence("pop3.rset.ok", ctx.t("pop3.rset.ok", n=len(undone), msgs=", ".join(undone)), "ok")
    if verb == "QUIT":
        return _pop3_quit(x, ctx, reply)
    if verb in ("CAPA", "NOOP"):
        return _say(ctx, "pop3." + verb.lower(), reply)
    return None


def _pop3_states(ctx: _Context) -> list[dict[str, Any]]:
    """The POP3 dissector's state changes (``{state, frame, trigger}``), oldest first."""
    block = ctx.session.record.get("pop3")
    states = block.get("states") if isinstance(block, dict) else None
    return [s for s in states if isinstance(s, dict)] if isinstance(states, list) else []


def _pop3_entered(x: _Exchange, ctx: _Context) -> str | None:
    """The RFC 1939 state this exchange moved the session into (PASS/APOP/AUTH +OK → TRANSACTION,
    QUIT → UPDATE), as the dissector recorded it; None when it changed nothing."""
    frames = {r.frame for r in x.replies}
    for change in _pop3_states(ctx):
        trigger = str(change.get("trigger") or "")
        if change.get("frame") in frames and trigger.split(" ", 1)[0] == x.verb:
            return str(change.get("state"))
    return None


IMAP_STATES = {"not authenticated": "Not Authenticated", "authenticated": "Authenticated",
               "selected": "Selected", "logout": "Logout"}
"""The RFC 3501 §3 states as the RFC writes them, by the IMAP dissector's names."""


def _imap_entered(x: _Exchange, ctx: _Context) -> str | None:
    """The RFC 3501 §3 state this exchange moved the session into, as the dissector recorded it: the
    greeting (Not Authenticated, or Authenticated after PREAUTH), LOGIN/AUTHENTICATE (Authenticated),
    SELECT/EXAMINE (Selected), CLOSE/UNSELECT or a refused SELECT (back to Authenticated), LOGOUT or a
    BYE (Logout). None when it changed nothing; a change the dissector only inferred has its own note."""
    block = ctx.session.record.get("imap")
    states = block.get("states") if isinstance(block, dict) else None
    if not isinstance(states, list) or not x.replies:
        return None
    frames = {r.frame for r in x.replies}
    entered = None
    for index, change in enumerate(states):
        if not isinstance(change, dict) or index in ctx.imap_states_told or change.get("frame") not in frames:
            continue
        trigger = str(change.get("trigger") or "")
        first = trigger.split(" ", 1)[0]
        if first == "BYE" or (first == "greeting" and x.command is None) or (first and first == x.verb):
            ctx.imap_states_told.add(index)
            state = str(change.get("state") or "")
            entered = IMAP_STATES.get(state, state)
    return entered


def _pop3_quit(x: _Exchange, ctx: _Context, reply: Reply | None) -> _Sentence:
    """QUIT: in TRANSACTION it enters UPDATE, where the marked messages are deleted (RFC 1939 §6);
    in AUTHORIZATION it just ends the session."""
    ok = _tone(reply) == "ok"
    status = reply.status if reply is not None else ""
    marked = ctx.pop3_marked
    states = _pop3_states(ctx)
    update = _pop3_entered(x, ctx) == "UPDATE"
    if not states:  # no state record: go by what the captions saw
        update = ok and ctx.logged_in
    if update and not ok:
        return _say(ctx, "pop3.quit.update", reply, n=len(marked), msgs=", ".join(marked))
    if update and marked:
        caption = ctx.t("pop3.quit.update.ok", status=status, n=len(marked), msgs=", ".join(marked))
        return _Sentence("pop3.quit.update.ok", caption, "ok")
    if update:
        return _Sentence("pop3.quit.update.none", ctx.t("pop3.quit.update.none", status=status), "ok")
    if states and str(states[-1].get("state")) == "AUTHORIZATION":
        return _say(ctx, "pop3.quit.authorization", reply)
    return _say(ctx, "pop3.quit", reply)


_IMAP_COUNT = re.compile(r"^(\d{1,18}) (EXISTS|EXPUNGE)\b", re.IGNORECASE)


def _untagged(x: _Exchange, word: str) -> list[str]:
    """Lines of untagged replies that begin with ``word`` (``LIST``, ``SEARCH``, ``STATUS``)."""
    found = []
    for reply in x.replies:
        if reply.status == "*":
            for line in reply.lines:
                if line.upper().startswith(word + " ") or line.upper() == word:
                    found.append(line)
    return found


def _imap_count(x: _Exchange, kind: str) -> list[int]:
    numbers = []
    for reply in x.replies:
        if reply.status == "*" and reply.lines:
            match = _IMAP_COUNT.match(reply.lines[0])
            if match and match.group(2).upper() == kind:
                numbers.append(int(match.group(1)))
    return numbers


def _mailbox(argument: str) -> str:
    argument = argument.strip()
    if argument.startswith('"'):
        end = argument.find('"', 1)
        return argument[: end + 1] if end > 0 else argument
    return argument.split(" ", 1)[0] if argument else "?"


def _messages(ctx: _Context, message_set: str, *, uid: bool = False) -> str:
    """``message 2`` or ``messages 1:*`` (a sequence set with ranges or lists is plural); after ``UID``
    the numbers are unique identifiers, not message sequence numbers (RFC 3501 §2.3.1, §6.4.8)."""
    return ctx.t("imap.uidset" if uid else "imap.set", set=message_set, n=1 if message_set.isdigit() else 2)


def _imap_read_only(ctx: _Context, frame: int) -> bool:
    """Whether the mailbox selected before ``frame`` was opened read-only (EXAMINE, or a SELECT the
    server answered ``[READ-ONLY]``), as the dissector recorded it."""
    block = ctx.session.record.get("imap")
    selected = block.get("selected") if isinstance(block, dict) else None
    last = None
    for entry in selected if isinstance(selected, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("frame"), int) and entry["frame"] < frame:
            last = entry
    return last is not None and bool(last.get("read_only"))


def _imap(x: _Exchange, ctx: _Context, reply: Reply | None) -> _Sentence | None:
    command = x.command
    assert command is not None
    verb = command.verb
    label = ("UID " if command.uid else "") + verb
    argument = command.argument
    ok = _tone(reply) == "ok"
    words = _words(argument)
    if verb == "CLOSE" and _imap_read_only(ctx, command.frame):
        # RFC 3501 §6.4.2 / RFC 9051 §6.4.1: CLOSE expunges only a mailbox selected read-write
        return _say(ctx, "imap.close.readonly", reply)
    if verb in ("CAPABILITY", "ID", "NAMESPACE", "EXPUNGE", "CLOSE", "UNSELECT", "IDLE", "LOGOUT") and not (
            verb == "EXPUNGE" and ok):
        return _say(ctx, "imap." + verb.lower(), reply)
    if verb == "EXPUNGE":
        return _Sentence("imap.expunge.ok", ctx.t("imap.expunge.ok", n=len(_imap_count(x, "EXPUNGE"))), "ok")
    if verb in ("ENABLE", "COMPRESS", "RENAME"):
        return _say(ctx, "imap." + verb.lower(), reply, argument=argument)
    if verb in ("SELECT", "EXAMINE"):
        exists = _imap_count(x, "EXISTS")
        key = "imap." + verb.lower()
        if ok and exists:
            return _Sentence(key + ".ok", ctx.t(key + ".ok", mailbox=_mailbox(argument), n=exists[-1]), "ok")
        return _say(ctx, key, reply, tone="info" if ok else None, mailbox=_mailbox(argument))
    if verb in ("LIST", "LSUB", "XLIST"):
        n = len(_untagged(x, verb))
        if ok:
            return _Sentence("imap.list.ok", ctx.t("imap.list.ok", verb=verb, n=n), "ok")
        return _say(ctx, "imap.list", reply, verb=verb)
    if verb == "STATUS":
        lines = _untagged(x, "STATUS")
        items = lines[0][lines[0].find("(") :] if lines and "(" in lines[0] else ""
        if ok and items:
            caption = ctx.t("imap.status.ok", mailbox=_mailbox(argument), items=items)
            return _Sentence("imap.status.ok", caption, "ok")
        return _say(ctx, "imap.status", reply, tone="info" if ok else None, mailbox=_mailbox(argument))
    if verb in ("SEARCH", "SORT", "THREAD"):
        hits = _untagged(x, "SEARCH") or _untagged(x, "SORT")
        n = sum(len(line.split()) - 1 for line in hits)
        if ok and verb != "THREAD":
            caption = ctx.t("imap.search.ok", verb=label, criteria=argument, n=n)
            return _Sentence("imap.search.ok", caption, "ok")
        return _say(ctx, "imap.search", reply, tone="info" if ok else None, verb=label, criteria=argument)
    message_set = words[0] if words else "?"
    messages = _messages(ctx, message_set, uid=command.uid)
    if verb == "FETCH":
        items = argument[len(message_set):].strip()
        if items.startswith("(") and items.endswith(")"):
            items = items[1:-1]
        return _imap_fetch(x, ctx, reply, messages=messages, verb=label, items=items)
    if verb == "STORE":
        flags = argument[len(message_set):].strip()
        upper = flags.upper()
        key = "imap.store"
        if "\\DELETED" in upper:
            key = "imap.store.undeleted" if upper.startswith("-") else "imap.store.deleted"
        return _say(ctx, key, reply, tone="info" if ok else None, messages=messages, verb=label, flags=flags)
    if verb in ("COPY", "MOVE"):
        return _say(ctx, "imap." + verb.lower(), reply, messages=messages, verb=label,
                    mailbox=_mailbox(argument[len(message_set):]))
    if verb in ("CREATE", "DELETE", "SUBSCRIBE", "UNSUBSCRIBE"):
        return _say(ctx, "imap." + verb.lower(), reply, mailbox=_mailbox(argument))
    if verb == "APPEND":
        size = _size(x)
        if ok and size is not None:
            caption = ctx.t("imap.append.ok", mailbox=_mailbox(argument), size=size)
            return _Sentence("imap.append.ok", caption, "ok")
        return _say(ctx, "imap.append", reply, tone="info" if ok else None, mailbox=_mailbox(argument))
    if verb == "DONE":
        return _say(ctx, "imap.done", reply)
    if verb == "CHECK":  # RFC 3501 §6.4.1: a checkpoint of the selected mailbox, not a poll for news
        return _say(ctx, "imap.check", reply, tone="info" if ok else None)
    if verb == "NOOP":
        return _say(ctx, "imap.noop", reply, tone="info" if ok else None, verb=verb)
    return None


def _fetched(record: MessageRecord) -> str:
    """What a FETCH literal carried: ``message``, ``cut`` (a whole message cut short), ``partial``
    (a byte range the client asked for), ``header`` (all of it), ``fields`` (some header fields)."""
    section = str(record.detail.get("section") or "")
    joined = "+" in section  # BODY[HEADER] and BODY[TEXT] of one response: the whole message
    ref = None if joined else section_ref(section)
    kind = "message" if joined else (ref.kind if ref is not None else "")
    if kind == "header":
        assert ref is not None
        return "fields" if ref.section.startswith("HEADER.FIELDS") else "header"
    if kind != "message":
        return kind
    if record.summary.complete:
        return "message"
    if record.detail.get("partial") and not record.summary.missing_bytes:
        return "partial"
    return "cut"


def _imap_fetch(x: _Exchange, ctx: _Context, reply: Reply | None, **params: Any) -> _Sentence:
    """FETCH: a download, a download cut short, a byte range, a header, or other data items."""
    kinds: dict[str, list[MessageRecord]] = {}
    for record in x.messages:
        kinds.setdefault(_fetched(record), []).append(record)
    ok = _tone(reply) == "ok"
    if "cut" in kinds:
        # the client asked for whole messages and the capture holds only part of one
        size = sum(m.summary.bytes for m in kinds["cut"])
        missing = sum(m.summary.missing_bytes for m in kinds["cut"])
        key = "imap.fetch.incomplete"
        if ok:
            return _Sentence(key, ctx.t(key, size=size, missing=missing, **params), "warn")
        return _say(ctx, key, reply, size=size, missing=missing, **params)
    for kind, key in (("message", "imap.fetch.message"), ("partial", "imap.fetch.partial")):
        if kind in kinds:
            size = sum(m.summary.bytes for m in kinds[kind])
            return _say(ctx, key, reply, tone="ok" if ok else None, size=size, **params)
    if "header" in kinds:
        return _say(ctx, "imap.fetch.header.whole", reply, tone="ok" if ok else None, **params)
    if "fields" in kinds:
        return _say(ctx, "imap.fetch.header", reply, tone="ok" if ok else None, **params)
    return _say(ctx, "imap.fetch", reply, tone="info" if ok else None, **params)


PROTOCOL_CAPTIONS: dict[str, Callable[[_Exchange, _Context, Reply | None], _Sentence | None]] = {
    "smtp": _smtp,
    "pop3": _pop3,
    "imap": _imap,
}
"""Per protocol, the sentences for its commands (a protocol without one gets the generic caption)."""
