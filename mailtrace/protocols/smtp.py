"""SMTP (RFC 5321) with ESMTP extensions: PIPELINING, CHUNKING/BDAT, AUTH, STARTTLS, DSN, SIZE.

The client side is read in one of a few modes (commands, a SASL response, a DATA body, BDAT chunk
bytes, bytes held until a reply decides how to read them); the server side is always replies.
Replies are paired with the commands they answer through a FIFO queue — RFC 5321 keeps replies in
order even under PIPELINING — with a named limit. Lost bytes end a message as incomplete and the
machine resynchronises on the next line that parses (Zeek's AFTER_GAP idea), using the server's
replies as the oracle for where the client stream stands.
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
from mailtrace.protocols.sasl import COMMAND_AS_RESPONSE, SaslExchange, command_as_response, redact_lines
from mailtrace.protocols.smtp_codes import is_defined_code

KNOWN_VERBS = frozenset({
    "HELO", "EHLO", "MAIL", "RCPT", "DATA", "RSET", "VRFY", "EXPN", "HELP", "NOOP", "QUIT", "TURN",
    "ETRN", "ATRN", "BDAT", "STARTTLS", "AUTH", "XCLIENT", "XFORWARD", "SEND", "SOML", "SAML", "VERB",
    "ONEX", "XEXCH50", "X-EXPS", "XUSR", "X-LINK2STATE", "XAUTH", "XSHADOW", "XTRN", "XQUE",
})
VERB_PHASE: dict[str, Phase] = {
    "HELO": Phase.NEGOTIATION, "EHLO": Phase.NEGOTIATION, "STARTTLS": Phase.NEGOTIATION,
    "XCLIENT": Phase.NEGOTIATION, "XFORWARD": Phase.NEGOTIATION,
    "AUTH": Phase.AUTH,
    "MAIL": Phase.TRANSFER, "RCPT": Phase.TRANSFER, "DATA": Phase.TRANSFER, "BDAT": Phase.TRANSFER,
    "RSET": Phase.TRANSFER, ".": Phase.TRANSFER,
    "ETRN": Phase.TRANSFER, "TURN": Phase.TRANSFER, "ATRN": Phase.TRANSFER,
    "SEND": Phase.TRANSFER, "SOML": Phase.TRANSFER, "SAML": Phase.TRANSFER,
    "QUIT": Phase.TEARDOWN,
}
SESSION_VERBS = frozenset({"NOOP", "HELP", "VRFY", "EXPN"})
"""Commands a client may send at any time (RFC 5321 4.1.4): no phase of their own."""
REPLY_LINE = re.compile(rb"^(\d{3})([ \-]|$)(.*)$", re.DOTALL)
ADDRESS = re.compile(r'^\s*:?\s*(?:<((?:"(?:[^"\\]|\\.)*+"|[^>"]++)*+)>|(\S*))\s*(.*)$', re.DOTALL)
"""``<path> params``: a quoted local part may hold ``>`` (``<"x>y"@example.org>``, RFC 5321 4.1.2).

Possessive: a run of plain characters is one step, not one per character, and nothing is tried again (there
is only one way to read a path), so a 64 KiB argument takes 0.3 ms, not 6 ms: 2,000 sessions each sending a
MAIL FROM of 63 KB spent 7 s here."""
SOURCE_ROUTE = re.compile(r"^@[^:,]*(?:,\s*@[^:,]*)*:")
"""The obsolete A-d-l before a mailbox (``<@a.example,@b.example:user@c.example>``), which servers
ignore (RFC 5321 4.1.1.3, appendix C): the bare address is the mailbox after it."""
BDAT_ARGS = re.compile(r"^\s*(\S+)(?:\s+(LAST))?\s*$", re.IGNORECASE)
QUEUE_IDS = (  # how MTAs say which queue id they gave the message, most specific first
    re.compile(r"queued as\s+<?([A-Za-z0-9][\w.@\-]{3,})", re.IGNORECASE),  # Postfix, Exchange
    re.compile(r"\bid=([A-Za-z0-9][\w.\-]{3,})", re.IGNORECASE),  # Exim
    re.compile(r"^\d\.\d\.\d\s+([A-Za-z0-9]{8,})\s+Message accepted", re.IGNORECASE),  # sendmail
    re.compile(r"\bOK\s+(\d{6,}\s+[\w.\-]+)\s+-\s+gsmtp", re.IGNORECASE),  # Google
    re.compile(r"(?:message|mail) (?:accepted|queued)[^<]*<([^>]{4,})>", re.IGNORECASE),
)
MAX_BDAT_CHUNK = 1 << 31
MAX_REPLIES_ON_HOLD = 100
"""Replies held while their pairing after a hole in the client's commands is in doubt (a bound: a
pipelined group is a few dozen commands)."""
COMMAND_AFTER_GAP = re.compile(
    rb"^(?:MAIL FROM:|RCPT TO:|(?:RSET|QUIT|DATA|NOOP|STARTTLS)\r?\n|(?:EHLO|HELO) \S+\r?\n|BDAT \d)", re.IGNORECASE)
"""Bytes after a hole in the message that start like this are the next command: the end marker was lost."""
COMMAND_STARTS = (b"MAIL FROM:", b"RCPT TO:", b"RSET", b"QUIT", b"DATA", b"NOOP", b"STARTTLS", b"EHLO ", b"HELO ",
                  b"BDAT ")
"""What COMMAND_AFTER_GAP's commands begin with: bytes after the hole that may still become one wait for
their line's end before the decision (so it does not depend on how the bytes were segmented)."""
RFC_LINE_LIMIT = 512
"""RFC 5321 §4.5.3.1.4/.5: a command line or reply line is at most 512 octets with its CRLF."""
AUTH_LINE_LIMIT = 12288
"""RFC 4954 §4: AUTH lines and SASL responses may be up to 12288 octets with their CRLF."""
SASL_TOKEN = re.compile(rb"^(?:[A-Za-z0-9+/]+={0,2}|=|\*)$")


class Mode(enum.Enum):
    """How the next client bytes are read."""

    COMMAND = "command"
    HOLD = "hold"  # after DATA/STARTTLS: wait for the reply that decides what follows
    AUTH_RESPONSE = "auth-response"
    DATA = "data"
    BDAT = "bdat"
    TLS = "tls"
    GAP = "gap"  # lost bytes: skip until a line parses as a command


@dataclass(slots=True)
class Pending:
    """A command waiting for its reply."""

    verb: str
    argument: str
    frame: int
    ts: float
    phase: Phase
    bdat_last: bool = False
    tx: Transaction | None = None
    """The transaction the command belongs to (replies may arrive after the next one opened)."""
    early_body: bool = False
    """DATA: the client sent the message before the capture showed the 354 (its reply may still come)."""
    junk: bool = False
    """An empty or non-text line: servers answer it with 500 (RFC 5321 §4.2.4), some not at all."""
    after_hole: bool = False
    """Sent after a hole in the client's commands whose replies had not all come yet: the replies
    to the lost commands come first."""


MAX_RECIPIENTS = 10_000
"""RCPTs listed per transaction (RFC 5321 §4.5.3.1.8 asks servers to take at least 100; a hostile client
sent 300,000, 300 MiB of lists); the rest are counted (``rcpt_dropped``, ``accepted_dropped``)."""
MAX_REPLY_LINES = 1_000
"""Lines kept of one multi-line reply, its last line included (an EHLO reply of 2,000,000 lines took 418
MiB); the others are counted (``Reply.lines_dropped``)."""
MAX_TRANSACTIONS = 10_000
"""Transactions listed per session; the rest are counted (``transactions_dropped``)."""
TRANSACTION_COST = 600
"""What a listed transaction costs beyond ``LISTED_ENTRY_COST`` and its sender (its object and empty lists)."""


@dataclass(slots=True)
class Transaction:
    """One MAIL ... transaction (accepted or not)."""

    mail_from: str
    params: dict[str, str]
    frame: int
    rcpt_to: list[str] = field(default_factory=list)
    rcpt_replies: list[int | None] = field(default_factory=list)
    rcpt_params: list[dict[str, str]] = field(default_factory=list)
    """The ESMTP parameters of each RCPT (DSN's NOTIFY=/ORCPT=, …), parallel to ``rcpt_to``."""
    accepted: list[str] = field(default_factory=list)
    reply: int | None = None
    data_reply: int | None = None
    data_text: str | None = None
    message: int | None = None
    queue_id: str | None = None
    chunks: list[int] = field(default_factory=list)
    declared_size: int | None = None
    sent_bytes: int | None = None
    previous: Transaction | None = field(default=None, repr=False)
    """The transaction that was open when this MAIL was sent (it stays open if this MAIL is refused)."""
    mail_lost: bool = False
    """Its MAIL command was in a hole of the capture (the sender is unknown, not the null sender)."""
    rcpt_answered: int = field(default=0, repr=False)
    """How many of ``rcpt_replies`` from the start are filled in: replies come in order, so the next one
    answers the RCPT here (found by a scan from the start, 300,000 pipelined RCPTs took 11 minutes)."""
    depth: int = field(default=0, repr=False)
    """How many transactions back ``previous`` reaches through MAILs still unanswered (see ``previous``)."""
    rcpt_dropped: int = 0
    """RCPTs past :data:`MAX_RECIPIENTS`, or past the run's budget of listed entries (counted, not listed)."""
    rcpt_dropped_answered: int = field(default=0, repr=False)
    listed: bool = field(default=True, repr=False)
    """In the session's ``transactions`` (False past their limit: its RCPTs are then only counted)."""
    accepted_dropped: int = 0
    """Of those, the ones the server accepted."""

    def to_json(self) -> dict[str, Any]:
        return {
            "mail_from": self.mail_from, "params": self.params, "rcpt_to": list(self.rcpt_to),
            "accepted": list(self.accepted), "reply": self.reply, "message": self.message,
            "rcpt_replies": list(self.rcpt_replies), "rcpt_params": [dict(p) for p in self.rcpt_params],
            "data_reply": self.data_reply,
            "queue_id": self.queue_id, "frame": self.frame,
            "bdat_chunks": list(self.chunks), "declared_size": self.declared_size, "sent_bytes": self.sent_bytes,
            "mail_lost": self.mail_lost,
            **({"rcpt_dropped": self.rcpt_dropped, "accepted_dropped": self.accepted_dropped}
               if self.rcpt_dropped else {}),
        }


_VERB_NAMES = {verb: verb for verb in KNOWN_VERBS}
_CODE_TEXTS = {str(code): str(code) for code in range(100, 600)}
_ONE_LINE_REPLIES: dict[bytes, tuple[str, tuple[str, ...]]] = {}
"""Recent one-line replies (``250 2.1.5 Ok``) → their status and text, shared by every reply that repeats one:
a session of a hundred thousand RCPTs keeps one copy of its ``250 Ok``, not one per reply (~100 bytes each).
Both are immutable; the cache is emptied when it holds :data:`_SHARED_REPLIES`."""
_SHARED_REPLIES = 4096
_SHARED_REPLY_MAX = 200
"""Longer reply lines are not shared (they are rarely repeated, and the cache must stay small)."""

_NO_ARGUMENT = frozenset({"DATA", "QUIT", "RSET", "STARTTLS", "HELP", "TURN"})
_SASL_MECHANISM = re.compile(r"^[A-Z0-9_-]{1,20}$")


def _parses_as_command(verb: str, argument: str) -> bool:
    """Whether a line read while skipping (after a hole, or at the start of a capture without its SYN)
    is a whole command and not message or SASL text that starts with a command word ("Data follows",
    "help me", "send it tomorrow"): the verb's own syntax (RFC 5321 §4.1.1), not the first word alone."""
    if verb not in KNOWN_VERBS:
        return False
    argument = argument.strip()
    if verb in _NO_ARGUMENT:
        return not argument
    if verb in ("MAIL", "SEND", "SOML", "SAML"):
        return argument.upper().startswith("FROM:")
    if verb == "RCPT":
        return argument.upper().startswith("TO:")
    if verb in ("HELO", "EHLO"):
        return bool(argument) and " " not in argument
    if verb == "AUTH":
        words = argument.split()
        return 1 <= len(words) <= 2 and bool(_SASL_MECHANISM.match(words[0]))
    if verb == "BDAT":
        return bool(BDAT_ARGS.match(argument)) and is_count(argument.split()[0])
    if verb in ("VRFY", "EXPN"):
        return bool(argument)
    return True


def redact_commands(data: bytes) -> bytes:
    """Client bytes quoted in a note, with credentials hidden as the command rows hide them: an AUTH
    initial response, and the SASL lines after an AUTH (the user name and password of AUTH LOGIN)."""
    return redact_lines(data, KNOWN_VERBS)


def parse_address(argument: str, keyword: str) -> tuple[str, dict[str, str], bool]:
    """``FROM:<a@b> SIZE=10`` → ("a@b", {"SIZE": "10"}, well_formed)."""
    text = argument
    upper = text.upper()
    well_formed = upper.startswith(keyword + ":")
    if upper.startswith(keyword):
        text = text[len(keyword):]
    match = ADDRESS.match(text)
    if not match:
        return text.strip(), {}, False
    address = match.group(1) if match.group(1) is not None else (match.group(2) or "")
    if match.group(1) is None and address.startswith("<") and address.endswith(">"):
        address = address[1:-1]
    address = SOURCE_ROUTE.sub("", address.strip(), count=1)
    params: dict[str, str] = {}
    for token in match.group(3).split():
        key, eq, value = token.partition("=")
        params[key.upper()] = value if eq else ""
    return address.strip(), params, well_formed


def looks_like_tls_record(data: bytes) -> bool:
    return len(data) >= 3 and 0x14 <= data[0] <= 0x17 and data[1] == 3 and data[2] <= 4


class Smtp:
    """The SMTP dissector (sans-I/O)."""

    __slots__ = ("after_gap", "after_gap_frame", "auth_attempts", "authenticated_at", "bare_lf", "bdat_bytes",
                 "bdat_cmd", "bdat_last", "bdat_left", "bdat_size", "began_late", "body", "body_after_gap",
                 "body_frame", "client_bytes", "client_bytes_lost", "client_lines", "commands_lost_at", "current",
                 "ehlo_keywords", "greeted", "greeting", "held", "held_frames", "hello_due_after_tls", "helo",
                 "helo_verb", "limits", "listed", "message_missing", "message_open", "messages", "mode", "no_syn",
                 "out", "pending", "phase", "replies_on_hold", "reply_first_frame", "reply_lines",
                 "reply_lines_dropped", "sasl", "server_bytes", "server_gap", "server_lines", "server_tls",
                 "size_limit", "smuggled_message", "smuggling", "smuggling_accepted", "tls_started_at",
                 "transactions", "transactions_dropped", "wait")

    name: ClassVar[str] = "smtp"
    default_ports: ClassVar[frozenset[int]] = frozenset({25, 587, 2525})
    tls_ports: ClassVar[frozenset[int]] = frozenset({465})

    def __init__(self, limits: DissectorLimits = DissectorLimits()) -> None:
        self.limits = limits
        self.out = EventSink()
        self.client_lines = LineBuffer(limits.max_line, limits.unread_budget)
        self.server_lines = LineBuffer(limits.max_line, limits.unread_budget)
        self.mode = Mode.COMMAND
        self.server_tls = False
        self.greeted = False
        self.no_syn = False
        """The capture holds no SYN of this connection (:meth:`began_mid_session`)."""
        self.began_late = False
        """The capture began mid-session (it has no SYN, and the first command seen needs an earlier one —
        RCPT, DATA, BDAT before any HELO, MAIL or reply — or the first reply answers no command and is no
        greeting). The transaction it joins lacks its MAIL (``mail_lost``): no protocol error of the client."""
        self.pending: list[Pending] = []  # (a deque is 760 bytes empty, per connection)
        self.reply_lines: list[bytes] = []
        self.reply_first_frame = 0
        self.reply_lines_dropped = 0
        self.held = bytearray()
        self.held_frames: list[tuple[int, float]] = []
        self.wait = WaitCharge(limits.unread_budget)
        """``held`` as a charge on the run's unread budget."""
        self.listed = ListCharge(limits.listed_budget)
        """The transactions and recipients listed, as a charge on the run's budget of listed entries."""
        self.body: DotBody | None = None
        self.bdat_left = 0
        self.bdat_last = False
        self.bdat_bytes = 0
        self.bdat_size = 0
        self.bdat_cmd: Pending | None = None
        """The BDAT command whose chunk is being read (its reply ends the chunk, whatever the count says)."""
        self.body_frame = 0
        """The frame of the latest message bytes (where a message cut by the end of the stream ends)."""
        self.message_open = False
        self.message_missing = 0
        self.body_after_gap = False
        """A hole just cut the message: the next client bytes may be a command after a lost end marker."""
        self.after_gap = bytearray()
        """The client bytes after that hole, until their first line says whether they are a command."""
        self.after_gap_frame = 0
        self.commands_lost_at = 0
        """Frame of a hole in the client's commands whose replies may still come (0: none)."""
        self.client_bytes_lost = False
        """A gap took client bytes (sticky: ``commands_lost_at`` resets once the replies catch up)."""
        self.replies_on_hold: list[tuple[Line, str, tuple[str, ...], int, int]] = []
        """Replies that may answer commands a hole took or the pipelined commands after it: paired when
        the server's batch ends (see :meth:`_hold_reply`)."""
        self.authenticated_at = 0
        """Frame of the 235 that authenticated the client (0: not yet, or reset by STARTTLS)."""
        self.hello_due_after_tls = False
        """STARTTLS reset the session to just after the greeting (RFC 3207 4.2), and neither a HELO/EHLO nor
        a MAIL has come since: the first MAIL is judged against it."""
        self.messages = 0
        self.phase = Phase.GREETING
        self.server_bytes = 0
        self.client_bytes = 0
        self.server_gap = False
        self.tls_started_at: int | None = None
        self.sasl: SaslExchange | None = None
        self.auth_attempts: list[AuthAttempt] = []
        # record
        self.helo: str | None = None
        self.helo_verb: str | None = None
        self.ehlo_keywords: list[str] = []
        self.size_limit: int | None = None
        """The fixed maximum message size the server announced (EHLO ``SIZE n``, n > 0; RFC 1870 §4)."""
        self.transactions: list[Transaction] = []
        self.transactions_dropped = 0
        self.current: Transaction | None = None
        self.greeting: str | None = None
        self.bare_lf = 0
        self.smuggling: list[str] = []
        self.smuggled_message: int | None = None
        """Frame of the last message that held an end-of-data look-alike, until the server shows (by an
        extra reply) that it ended the message there, or the next message starts."""
        self.smuggling_accepted = False

    # ------------------------------------------------------------------ contract
    @classmethod
    def sniff(cls, client: bytes, server: bytes) -> float:
        score = 0.0
        if server:
            if re.match(rb"^(220|421|554)[ \-]", server):
                score += 0.6
            elif not re.match(rb"^\d{3}[ \-]", server):
                return -1.0
        if client:
            verb = client.split(None, 1)[0].upper() if client.strip() else b""
            if verb in (b"EHLO", b"HELO"):
                score += 1.0
            elif verb.decode("latin-1") in KNOWN_VERBS:
                score += 0.5
            elif client.strip():
                return -1.0
        return score

    def feed(self, item: StreamItem) -> list[Event]:
        out = self.out
        out.at(item)
        if self.replies_on_hold and (type(item) is not Chunk or item.direction is CLIENT):
            self._pair_replies_on_hold()  # the server's batch of replies is over
        if self.after_gap and (type(item) is not Chunk or item.direction is SERVER):
            self._decide_after_gap(self.after_gap_frame)  # the client's bytes after a hole are all here
        if isinstance(item, Chunk):
            if item.direction is CLIENT:
                self.client_bytes += len(item.data)
                self._client_data(item.data, item.frame, item.ts)
            else:
                self.server_bytes += len(item.data)
                self._server_data(item.data, item.frame, item.ts)
        elif isinstance(item, StreamGap):
            self._gap(item)
        elif isinstance(item, Eof):
            self._eof(item)
        return out.take()

    @property
    def bulk(self) -> Direction | None:
        """The direction whose next bytes are message content, not protocol (see Dissector.bulk)."""
        return CLIENT if self.mode is Mode.DATA or self.mode is Mode.BDAT else None

    @property
    def bulk_left(self) -> int | None:
        """Bytes of bulk content still to come when known (a BDAT chunk); None: it ends at a marker."""
        return self.bdat_left if self.mode is Mode.BDAT else None

    def tls_started(self) -> None:
        """Plaintext resumes after the TLS upgrade (decrypted, or never encrypted): RFC 3207 reset."""
        self.mode = Mode.COMMAND
        self.server_tls = False
        self.client_lines.clear()
        self.server_lines.clear()
        self.current = None
        self.phase = Phase.NEGOTIATION

    def finish(self) -> list[Event]:
        """The session is over: report what was still open (an AUTH without its outcome)."""
        if self.replies_on_hold:
            self._pair_replies_on_hold()
        if self.after_gap:
            self._decide_after_gap(self.after_gap_frame)
        if self.sasl is not None and (self.sasl.username or self.sasl.responses):
            pending = next((p for p in self.pending if p.verb == "AUTH"), None)
            frame = pending.frame if pending else self.out.frame
            self.out.add(AuthAttempt(direction=CLIENT, ts=self.out.ts, frame=self.out.frame, first_frame=frame,
                                     phase=Phase.AUTH, mechanism=self.sasl.mechanism, username=self.sasl.username,
                                     secret=self.sasl.secret, success=None, domain=self.sasl.domain,
                                     extra={"outcome": "not seen", **self.sasl.attempt_extra()}))
            self.sasl = None
        self.release_unread()
        return self.out.take()

    def release_unread(self) -> None:
        """What the dissector holds unread goes back to the run's budget (``base.WaitCharge``)."""
        self.client_lines.release()
        self.server_lines.release()
        self.wait.hold(0)

    def record(self) -> dict[str, Any]:
        return {
            "helo": self.helo,
            "transactions": [t.to_json() for t in self.transactions],
            **({"transactions_dropped": self.transactions_dropped} if self.transactions_dropped else {}),
            **self.listed.keys(),
            "smtp": {
                "greeting": self.greeting,
                "helo_verb": self.helo_verb,
                "ehlo_keywords": list(self.ehlo_keywords),
                "bare_lf": self.bare_lf,
                "smuggling_patterns": list(self.smuggling),
            },
        }

    @property
    def _mail_seen(self) -> bool:
        """A MAIL opened a transaction (listed or not: the run's budget may have refused to list it)."""
        return bool(self.transactions) or self.transactions_dropped > 0

    def _list_recipient(self, tx: Transaction, address: str, params: dict[str, str]) -> None:
        """A RCPT of ``tx``, listed up to :data:`MAX_RECIPIENTS` and while the run's budget of listed entries has
        room; else counted (``rcpt_dropped``). The listed ones stay a prefix, so that replies pair in order: once
        one is not listed, no later one of the transaction is (nor any of a transaction not listed itself)."""
        if tx.listed and len(tx.rcpt_to) < MAX_RECIPIENTS:  # else past the list's own limit
            if tx.rcpt_dropped:  # the run's budget refused an earlier one: this one goes with it
                self.listed.refused += 1
            elif self.listed.take(len(address)):
                tx.rcpt_to.append(address)
                tx.rcpt_replies.append(None)
                tx.rcpt_params.append(params)
                return
        tx.rcpt_dropped += 1

    def _keep_transaction(self, tx: Transaction) -> None:
        """A new transaction, listed up to :data:`MAX_TRANSACTIONS` and while the run's budget of listed entries
        has room (it is the open one either way). Once one is not listed, no later one is: the list stays an
        unbroken start of the session's."""
        if len(self.transactions) < MAX_TRANSACTIONS:  # else past the list's own limit
            if self.transactions_dropped:  # the run's budget refused an earlier one: this one goes with it
                self.listed.refused += 1
            elif self.listed.take(TRANSACTION_COST + len(tx.mail_from)):
                self.transactions.append(tx)
                return
        tx.listed = False
        self.transactions_dropped += 1

    # ------------------------------------------------------------------ client side
    def _client_data(self, data: bytes, frame: int, ts: float) -> None:
        if self.wait.charged and not self.held:
            self.wait.hold(0)  # what was held has been read
        while data:
            mode = self.mode
            if mode is Mode.TLS:
                return
            if mode is Mode.HOLD:
                if self.server_bytes == 0 and self.pending and self.pending[-1].verb == "DATA":
                    self._start_data(frame)  # one-sided capture: assume the 354 came
                    continue
                self.held += data
                self.held_frames.append((frame, ts))
                waiting_data = bool(self.pending) and self.pending[-1].verb == "DATA"
                if waiting_data and self._held_is_body():
                    # The message came before the 354: a client that did not wait (RFC 2920 §3.1: DATA
                    # ends a pipelined group), or a capture that lost the reply. DATA stays pending so
                    # the 354, when it comes, pairs with it and the end-of-data reply with the message.
                    self.pending[-1].early_body = True
                    self._start_data(frame)
                    return
                if len(self.held) > self.limits.max_wait_bytes or self.wait.hold(len(self.held)):
                    self.out.anomaly(CLIENT, self.phase, "no-reply",
                                     f"{len(self.held)} client bytes sent without waiting for the reply to "
                                     f"{self.pending[-1].verb if self.pending else 'the command'}"
                                     + self.wait.reason(self.limits, len(self.held)))
                    held = bytes(self.held)
                    self.held.clear()
                    self.wait.hold(0)
                    if self.pending and self.pending[-1].verb == "DATA":
                        self._start_data(frame)
                    else:
                        self.mode = Mode.COMMAND
                    data = held
                    continue
                return
            if mode is Mode.DATA:
                data = self._body_data(data, frame)
                continue
            if mode is Mode.BDAT:
                data = self._bdat_data(data, frame)
                continue
            # line modes: COMMAND, AUTH_RESPONSE, GAP
            self.client_lines.push(data, frame, ts)
            data = b""
            for line in self.client_lines.lines(frame, ts):
                self._client_line(line)
                if self.mode in (Mode.DATA, Mode.BDAT, Mode.HOLD, Mode.TLS):
                    data = self.client_lines.take_all()
                    break

    def _client_line(self, line: Line) -> None:
        if line.bare_lf:
            self.bare_lf += 1
        if line.too_long:
            cut = budget_cut(line, self.limits)
            self.out.anomaly(CLIENT, self.phase, "line-too-long",
                             f"client line of {len(line.text) + line.too_long} bytes "
                             + (cut or f"exceeds {self.limits.max_line}"), line.frame)
        elif len(line.text) + 2 > RFC_LINE_LIMIT and self.mode is not Mode.GAP:
            self._over_rfc_limit(line)  # (in gap mode the line may be message text after a lost DATA)
        if self.mode is Mode.AUTH_RESPONSE:
            self._auth_response(line)
            return
        text = line.text.decode("utf-8", "surrogateescape")
        verb, _, argument = text.strip(" ").partition(" ")
        verb_u = verb.upper()
        verb_u = _VERB_NAMES.get(verb_u, verb_u)  # one str per known verb, not one per command kept
        if self.sasl is not None and verb_u not in KNOWN_VERBS and SASL_TOKEN.match(line.text) \
                and any(p.verb == "AUTH" for p in self.pending):
            self._auth_response(line)  # its 334 prompt was lost, but an exchange is open
            return
        if self.mode is Mode.GAP:
            if line.text == b"." and self.no_syn and not self.greeted and not self._mail_seen:
                self._late_end_of_data(line)
                return
            if not _parses_as_command(verb_u, argument):  # message or SASL text, however it starts
                return
            self.mode = Mode.COMMAND
        if not text.strip():
            self.out.anomaly(CLIENT, self.phase, "empty-command", "empty command line", line.frame)
            self._junk_line(line)
            return
        if not _is_text(line.text):
            self.out.anomaly(CLIENT, self.phase, "garbage",
                             f"non-text bytes where a command was expected: {printable(line.text, 60)}", line.frame)
            self._junk_line(line)
            return
        known = verb_u in KNOWN_VERBS
        phase = VERB_PHASE.get(verb_u, self.phase)
        if verb_u in SESSION_VERBS or not known:  # allowed at any time: they stay in the phase they come in
            phase = self.phase if self.phase is not Phase.GREETING else Phase.NEGOTIATION
        self.phase = phase
        shown = argument
        if verb_u == "AUTH":
            shown = self._auth_command(argument, line)
        command = Command(direction=CLIENT, ts=line.ts, frame=line.frame, first_frame=line.first_frame,
                          phase=phase, verb=verb_u, argument=shown, known=known,
                          sent_as=verb if verb != verb_u else None)
        self.out.add(command)
        if not known:
            self.out.anomaly(CLIENT, phase, "unknown-command", f"unknown command {printable_text(verb, 40)}",
                             line.frame)
        if not self.greeted and self.server_bytes and not self.pending:
            pass
        if len(self.pending) >= self.limits.max_pending_commands:
            dropped = self.pending.pop(0)
            self.out.anomaly(CLIENT, phase, "pipeline-overflow",
                             f"more than {self.limits.max_pending_commands} commands without replies; "
                             f"{dropped.verb} (frame {dropped.frame}) will not be paired", line.frame)
        pending = Pending(verb_u, argument, line.frame, line.ts, phase, after_hole=bool(self.commands_lost_at))
        self.pending.append(pending)
        self._client_command_effects(pending, line)
        pending.tx = self.current

    def _junk_line(self, line: Line) -> None:
        """A line that is no command still gets its reply, in order (Postfix: ``500 5.5.2 Error: command not
        recognized``): queued so that 500 is not taken for a reply nobody asked for."""
        if len(self.pending) < self.limits.max_pending_commands:
            self.pending.append(Pending("", "", line.frame, line.ts, self.phase, junk=True,
                                        after_hole=bool(self.commands_lost_at)))

    def _client_command_effects(self, cmd: Pending, line: Line) -> None:
        verb = cmd.verb
        if verb in ("HELO", "EHLO"):
            name = cmd.argument.strip()
            if not self.helo:
                self.helo = name
                self.helo_verb = verb
            self.hello_due_after_tls = False
        elif verb == "MAIL":
            address, params, ok = parse_address(cmd.argument, "FROM")
            if not ok:
                self.out.anomaly(CLIENT, cmd.phase, "syntax", f"MAIL without 'FROM:': {cmd.argument!r}", line.frame)
            if self.helo is None and not self.no_syn and not self.client_bytes_lost and not self._mail_seen:
                self.out.anomaly(CLIENT, cmd.phase, "mail-without-helo",
                                 "MAIL before HELO/EHLO (RFC 5321 4.1.4: the client must say hello first)",
                                 line.frame)
            elif self.hello_due_after_tls and not self.client_bytes_lost:
                self.out.anomaly(CLIENT, cmd.phase, "mail-without-helo",
                                 "MAIL after STARTTLS without a new EHLO (RFC 3207 4.2: TLS resets the session to "
                                 "just after the greeting, and RFC 5321 4.1.4 wants a hello before MAIL)",
                                 line.frame)
            self.hello_due_after_tls = False  # only the first MAIL after the reset is judged
            if self.current is not None and self.current.reply is not None and 200 <= self.current.reply < 300 \
                    and self.current.message is None and self.current.data_reply is None:
                self.out.anomaly(CLIENT, cmd.phase, "nested-mail",
                                 "MAIL inside an open transaction (no RSET)", line.frame)
            size = params.get("SIZE")
            previous = self.current
            depth = previous.depth + 1 if previous is not None and previous.reply is None else 0
            if depth > self.limits.max_pending_commands:  # a flood of unanswered MAILs: none to go back to
                previous, depth = None, 0
            self.current = Transaction(address, params, line.frame,
                                       declared_size=parse_count(size) if size else None,
                                       previous=previous, depth=depth)
            self._keep_transaction(self.current)
        elif verb == "RCPT":
            address, params, ok = parse_address(cmd.argument, "TO")
            if not ok:
                self.out.anomaly(CLIENT, cmd.phase, "syntax", f"RCPT without 'TO:': {cmd.argument!r}", line.frame)
            if self.current is None and (self.commands_lost_at or self._joins_late(cmd, line)):
                self._lost_mail(line.frame)  # the MAIL was in the hole or before the capture, not missing
            if self.current is None:
                self.out.anomaly(CLIENT, cmd.phase, "rcpt-without-mail", "RCPT before MAIL", line.frame)
            else:
                self._list_recipient(self.current, address, params)
        elif verb in ("DATA", "STARTTLS"):
            if verb == "DATA" and self.current is None and (self.commands_lost_at or self._joins_late(cmd, line)):
                self._lost_mail(line.frame)
            if verb == "DATA" and self.current is None:
                self.out.anomaly(CLIENT, cmd.phase, "data-without-mail", "DATA outside a transaction", line.frame)
            self.mode = Mode.HOLD
        elif verb == "BDAT":
            self._bdat_command(cmd, line)
        elif verb == "RSET":
            self.current = None  # the server handles commands in order: what follows is a new transaction

    def _joins_late(self, cmd: Pending, line: Line) -> bool:
        """Whether this RCPT/DATA/BDAT continues a transaction begun before the capture: it is the first
        thing of the session the capture shows, or follows a first reply that was no greeting."""
        if self._mail_seen or not self.no_syn:
            return False
        if not self.began_late and not self.greeted and not self.server_bytes and self.helo is None:
            self.began_late = True
            self.out.add(Note(direction=CLIENT, ts=line.ts, frame=line.frame, first_frame=line.frame,
                              phase=cmd.phase, text=f"the capture begins mid-session: {cmd.verb} continues a "
                                                    "transaction whose MAIL command came before the first packet"))
            return True
        return self.began_late

    def _late_end_of_data(self, line: Line) -> None:
        """A lone ``.`` among the first client lines of a capture without its SYN: the end of a message
        whose start came before the first packet. It waits for its reply like any end of data."""
        self.began_late = True
        self._lost_mail(line.frame)
        self.pending.append(Pending(".", "", line.frame, line.ts, Phase.TRANSFER, tx=self.current,
                                    after_hole=bool(self.commands_lost_at)))
        self.current = None
        self.mode = Mode.COMMAND
        self.out.add(Note(direction=CLIENT, ts=line.ts, frame=line.frame, first_frame=line.frame,
                          phase=Phase.TRANSFER, text="the capture begins inside a message: this is its end of "
                                                     "data (the message itself came before the first packet)"))

    def began_mid_session(self) -> None:
        # the first client bytes may be the tail of a message or of a SASL exchange: read them as after a
        # hole (skip lines until one is a command), with the server's replies as the oracle
        self.no_syn = True
        self.mode = Mode.GAP

    def _lost_mail(self, frame: int) -> None:
        """A transaction whose MAIL command the capture lost (the client went on with RCPT or DATA)."""
        self.current = Transaction("", {}, frame, mail_lost=True)
        self._keep_transaction(self.current)

    def _held_is_body(self) -> bool:
        """After DATA, a first line that is no SMTP command means the 354 came (and the capture lost it)."""
        nl = self.held.find(b"\n")
        if nl < 0:
            return len(self.held) > 1024
        verb = bytes(self.held[:nl]).strip().split(b" ", 1)[0].upper().decode("latin-1")
        return verb not in KNOWN_VERBS

    def _bdat_command(self, cmd: Pending, line: Line) -> None:
        match = BDAT_ARGS.match(cmd.argument)
        size_text = match.group(1) if match else cmd.argument.strip()
        last = bool(match and match.group(2))
        size_value = parse_count(size_text)
        if size_value is None or size_value >= MAX_BDAT_CHUNK:
            self.out.anomaly(CLIENT, cmd.phase, "bdat-invalid",
                             f"BDAT with invalid chunk size {printable_text(size_text, 40)}; "
                             "reading on as commands", line.frame)
            return
        size = int(size_text)
        cmd.bdat_last = last
        if self.current is None:
            if self._joins_late(cmd, line):
                self._lost_mail(line.frame)
            else:
                self.out.anomaly(CLIENT, cmd.phase, "data-without-mail", "BDAT outside a transaction", line.frame)
                self.current = Transaction("", {}, line.frame)
                self._keep_transaction(self.current)
        assert self.current is not None
        self.current.chunks.append(size)
        if not self.message_open:
            self.message_open = True
            self.message_missing = 0
            self.bdat_bytes = 0
            self.body_frame = 0
        self.bdat_left = size
        self.bdat_size = size
        self.bdat_last = last
        self.bdat_cmd = cmd if size else None
        if size:
            self.mode = Mode.BDAT
        elif last:
            self._end_message("smtp-bdat", line.frame)

    def _bdat_data(self, data: bytes, frame: int) -> bytes:
        take = data[: self.bdat_left]
        rest = data[self.bdat_left :]
        self.bdat_left -= len(take)
        self.bdat_bytes += len(take)
        if take:
            self.body_frame = frame
        self.out.data(CLIENT, Phase.TRANSFER, take)
        if self.bdat_left == 0:
            self.mode = Mode.COMMAND
            self.bdat_cmd = None
            if self.bdat_last:
                self._end_message("smtp-bdat", frame)
        return rest

    def _bdat_short(self, frame: int, why: str) -> None:
        """The chunk ended before its announced size: say so, and read what follows as commands again."""
        left = self.bdat_left
        self.out.anomaly(CLIENT, Phase.TRANSFER, "bdat-chunk-short",
                         f"BDAT announced a chunk of {self.bdat_size} bytes, but {why} after "
                         f"{self.bdat_size - left} of them; {left} bytes never came (RFC 3030)", frame)
        self.message_missing += left
        self.bdat_left = 0
        self.bdat_cmd = None
        if self.mode is Mode.BDAT:
            self.mode = Mode.COMMAND

    def _start_data(self, frame: int) -> None:
        self.mode = Mode.DATA
        self.smuggled_message = None
        self.smuggling_accepted = False
        self.body = DotBody()
        self.body_frame = 0
        self.message_open = True
        self.message_missing = 0
        self.body_after_gap = False
        self.after_gap.clear()
        held = bytes(self.held)
        self.held.clear()
        self.held_frames.clear()
        if held:
            self._client_data(held, frame, self.out.ts)

    def _body_data(self, data: bytes, frame: int) -> bytes:
        body = self.body
        assert body is not None
        if self.body_after_gap:
            decided = self._after_gap_bytes(data, frame, final=False)
            if decided is None:
                return b""  # its first line is not all here yet
            if self.mode is not Mode.DATA:
                return decided  # the client's next commands
            data = decided
        chunk, rest = body.feed(data)
        if data:
            self.body_frame = frame
        self.out.data(CLIENT, Phase.TRANSFER, chunk)
        if rest is None:
            return b""
        self._end_message("smtp-data", frame)
        return rest

    def _after_gap_bytes(self, data: bytes, frame: int, *, final: bool) -> bytes | None:
        """The client's bytes after a hole in the message: None while their first line may still turn
        out to be a command; then all of them, and if they are a command the message has ended (the
        hole swallowed its end marker: clients write a command at the start of a segment, message text
        almost never starts with one)."""
        buffer = self.after_gap
        buffer += data
        if not self.after_gap_frame:
            self.after_gap_frame = frame
        head = bytes(buffer)
        if not final and b"\n" not in head and len(head) < RFC_LINE_LIMIT:
            start = head[:10].upper()
            if any(word.startswith(start[: len(word)]) for word in COMMAND_STARTS):
                return None
        buffer.clear()
        first_frame, self.after_gap_frame = self.after_gap_frame, 0
        self.body_after_gap = False
        if COMMAND_AFTER_GAP.match(head):
            self.out.anomaly(CLIENT, Phase.TRANSFER, "end-of-data-lost",
                             "the bytes after the hole start with a command: the end of the message was lost "
                             "in the capture", first_frame)
            self._end_message("smtp-data", self.body_frame or first_frame, complete=False)
        return head

    def _decide_after_gap(self, frame: int) -> None:
        """Decide on the bytes after a hole with what came (the stream ended, another hole, a reply)."""
        if self.mode is not Mode.DATA or not self.body_after_gap:
            self.after_gap.clear()
            return
        data = self._after_gap_bytes(b"", frame, final=True)
        if data:
            self._client_data(data, frame, self.out.ts)

    def _end_message(self, origin: str, frame: int, complete: bool = True) -> None:
        """The message is over (end marker, BDAT LAST, or cut by a gap/EOF)."""
        extra: dict[str, Any] = {}
        size = self.bdat_bytes
        if self.body is not None:
            tail = self.body.flush()
            self.out.data(CLIENT, Phase.TRANSFER, tail)
            extra = {"bare_lf": self.body.bare_lf, "bare_cr": self.body.bare_cr}
            sent = self.body.raw_bytes
            size = sent - self.body.stuffed  # RFC 1870 counts the message without the stuffing dots
            if self.body.smuggling:
                extra["smuggling"] = list(self.body.smuggling)
                self.smuggling += [p for p in self.body.smuggling if p not in self.smuggling]
                self.out.anomaly(CLIENT, Phase.TRANSFER, "smtp-smuggling",
                                 "end-of-data look-alike in the message body: " + ", ".join(self.body.smuggling)
                                 + " (only <CR><LF>.<CR><LF> ends DATA; a server that accepts these can be "
                                 "tricked into a second message)", frame)
                self.smuggled_message = frame
            self.body = None
        else:
            sent = self.bdat_bytes
            if self.current is not None:
                extra["chunks"] = list(self.current.chunks)
        if self.message_missing:
            complete = False
        self.out.add(MessageEnd(direction=CLIENT, ts=self.out.ts, frame=frame, first_frame=frame,
                                phase=Phase.TRANSFER, origin=origin, complete=complete,
                                missing_bytes=self.message_missing, detail=extra))
        self.message_open = False
        if self.current is not None:
            self.current.message = self.messages
            self.current.sent_bytes = sent
            # SIZE= in MAIL FROM is the client's estimate (RFC 1870 §1; sendmail leaves out the Received
            # line it adds), so sending more than declared is normal; more than the server's announced
            # fixed maximum is what the server should have refused (RFC 1870 §6.2).
            limit = self.size_limit
            if limit is not None and size > limit:
                declared = self.current.declared_size
                said = f" (SIZE={declared} declared in MAIL FROM)" if declared is not None else ""
                self.out.anomaly(CLIENT, Phase.TRANSFER, "size-exceeded",
                                 f"the message is {size} bytes, more than the fixed maximum of {limit} bytes the "
                                 f"server announced in its EHLO reply{said} (RFC 1870 §6.2)", frame)
        self.messages += 1
        if origin == "smtp-data":
            self.mode = Mode.COMMAND
            self.pending.append(Pending(".", "", frame, self.out.ts, Phase.TRANSFER, tx=self.current,
                                        after_hole=bool(self.commands_lost_at)))
            self.current = None

    def _auth_command(self, argument: str, line: Line) -> str:
        if self.authenticated_at:
            self.out.anomaly(CLIENT, Phase.AUTH, "auth-after-auth",
                             f"AUTH after the login at frame {self.authenticated_at} succeeded (RFC 4954 4: no "
                             "more AUTH commands in the session)", line.frame)
        mech, _, initial = argument.strip().partition(" ")
        self.sasl = SaslExchange(mech.upper())
        initial = initial.strip()
        if initial:
            self.sasl.initial(initial)
        if initial and initial != "=" and not self.limits.show_secrets:
            return f"{mech} [initial response]"
        return argument

    def _auth_response(self, line: Line) -> None:
        self.mode = Mode.COMMAND
        text = line.text.decode("utf-8", "replace").strip()
        if self.sasl is not None:
            detail = command_as_response(text, KNOWN_VERBS, exchange=f"AUTH {self.sasl.mechanism}",
                                         challenge="334", reference="RFC 4954 §4")
            self.sasl.client(text, is_command=detail is not None)
            if detail is not None:
                self.out.anomaly(CLIENT, Phase.AUTH, COMMAND_AS_RESPONSE, detail, line.frame)
        shown = text if self.limits.show_secrets or text == "*" else "[SASL response]"
        auth = next((p for p in self.pending if p.verb == "AUTH"), None)
        if auth is not None:
            auth.ts = line.ts  # the server's next reply answers this line: latency counts from here
        self.out.add(Command(direction=CLIENT, ts=line.ts, frame=line.frame, first_frame=line.first_frame,
                             phase=Phase.AUTH, verb="", argument=shown, known=True))

    # ------------------------------------------------------------------ server side
    def _server_data(self, data: bytes, frame: int, ts: float) -> None:
        if self.server_tls:
            return
        self.server_lines.push(data, frame, ts)
        for line in self.server_lines.lines(frame, ts):
            self._server_line(line)
            if self.mode is Mode.TLS:  # STARTTLS accepted: the rest is not SMTP
                self.server_lines.clear()
                return

    def _over_rfc_limit(self, line: Line) -> None:
        """A command line longer than RFC 5321 allows (AUTH and SASL responses have RFC 4954's limit)."""
        size = len(line.text) + 2
        sasl = self.mode is Mode.AUTH_RESPONSE or line.text[:5].upper() == b"AUTH " or (
            self.sasl is not None and SASL_TOKEN.match(line.text) is not None)
        if sasl and size <= AUTH_LINE_LIMIT:
            return
        limit, rule = (AUTH_LINE_LIMIT, "RFC 4954 §4") if sasl else (RFC_LINE_LIMIT, "RFC 5321 §4.5.3.1.4")
        self.out.anomaly(CLIENT, self.phase, "line-over-rfc-limit",
                         f"command line of {size} octets with its CRLF; {rule} allows {limit}", line.frame)

    def _server_line(self, line: Line) -> None:
        match = REPLY_LINE.match(line.text)
        if match is None:
            if self.server_gap:
                return
            if not self.greeted and not self.reply_lines and looks_like_tls_record(line.text):
                return
            self.out.anomaly(SERVER, self.phase, "invalid-reply",
                             f"server line without a reply code: {printable(line.text, 80)}", line.frame)
            if self.reply_lines:  # a broken continuation: close the reply we have
                self._reply_done(line)
            return
        self.server_gap = False
        if line.too_long:
            cut = budget_cut(line, self.limits)
            self.out.anomaly(SERVER, self.phase, "line-too-long",
                             f"server line of {len(line.text) + line.too_long} bytes "
                             + (cut or f"exceeds {self.limits.max_line}"), line.frame)
        elif len(line.text) + 2 > RFC_LINE_LIMIT:
            self.out.anomaly(SERVER, self.phase, "line-over-rfc-limit",
                             f"reply line of {len(line.text) + 2} octets with its CRLF; RFC 5321 §4.5.3.1.5 allows "
                             f"{RFC_LINE_LIMIT}", line.frame)
        code, sep, rest = match.group(1), match.group(2), match.group(3)
        if self.reply_lines and code != self.reply_lines[0][:3]:
            self.out.anomaly(SERVER, self.phase, "invalid-reply",
                             f"reply code changed inside a multi-line reply ({self.reply_lines[0][:3]!r} → {code!r})",
                             line.frame)
            self._reply_done(line, partial=True)
        if not self.reply_lines:
            self.reply_first_frame = line.first_frame
        if len(self.reply_lines) < MAX_REPLY_LINES - 1 or sep != b"-":
            self.reply_lines.append(code + b" " + rest)
        else:
            self.reply_lines_dropped += 1
        if sep != b"-":
            self._reply_done(line)

    def _reply_done(self, line: Line, partial: bool = False) -> None:
        raw = self.reply_lines
        self.reply_lines = []
        dropped, self.reply_lines_dropped = self.reply_lines_dropped, 0
        shared = _ONE_LINE_REPLIES.get(raw[0]) if len(raw) == 1 else None
        if shared is not None:
            code_text, texts = shared
        else:
            code_text = raw[0][:3].decode("ascii")
            code_text = _CODE_TEXTS.get(code_text, code_text)
            texts = tuple(r[4:].decode("utf-8", "replace") for r in raw)
            if len(raw) == 1 and len(raw[0]) <= _SHARED_REPLY_MAX:
                if len(_ONE_LINE_REPLIES) >= _SHARED_REPLIES:
                    _ONE_LINE_REPLIES.clear()
                _ONE_LINE_REPLIES[raw[0]] = (code_text, texts)
        code = int(code_text)
        first_frame = self.reply_first_frame or line.frame
        if self.mode is Mode.DATA and code != 354 and (not self.pending or (
                len(self.pending) == 1 and self.pending[0].early_body and code < 400)):
            if self.pending:  # the message came early and its 354 is not in the capture either
                lost = self.pending.pop(0)
                self.out.anomaly(CLIENT, Phase.TRANSFER, "reply-not-seen",
                                 "the client sent the message, so the server must have answered DATA with 354, "
                                 "but the capture does not show that reply", lost.frame)
            self._lost_end_marker(line.frame)  # the server answers an end of data the capture lost
        if self._hold_reply(line, code_text, texts, first_frame, dropped):
            return
        self._answer(self._pair(code), line, code_text, texts, first_frame, dropped)

    def _hold_reply(self, line: Line, code_text: str, texts: tuple[str, ...], first_frame: int,
                    dropped: int = 0) -> bool:
        """Hold a reply whose command is in doubt: a hole took client commands, and the pipelined group
        the client sent after it (ending with DATA, RFC 2920 §3.1) waits for its replies. Which replies
        answer the lost commands is known only from the whole batch: the last ones answer the commands
        the capture shows, DATA's last of all (its 354, or the next client bytes, end the batch).
        Paired in order as they come, every reply would answer the command after its own, and DATA's
        354 none (the message read as commands)."""
        if not self.replies_on_hold:
            pending = self.pending
            if not (self.commands_lost_at and pending and pending[0].after_hole and pending[0].verb != "DATA"
                    and any(p.verb == "DATA" for p in pending)):
                return False
        self.replies_on_hold.append((line, code_text, texts, first_frame, dropped))
        if code_text == "354" or len(self.replies_on_hold) > MAX_REPLIES_ON_HOLD:
            self._pair_replies_on_hold()
        return True

    def _pair_replies_on_hold(self) -> None:
        held = self.replies_on_hold
        self.replies_on_hold = []
        group = next((i + 1 for i, p in enumerate(self.pending) if p.verb == "DATA"), len(self.pending))
        lost = len(held) - group  # the first replies answer the commands the hole took
        for number, (line, code_text, texts, first_frame, dropped) in enumerate(held):
            self._answer(None if number < lost else self._pair(int(code_text)), line, code_text, texts, first_frame,
                         dropped)

    def _answer(self, cmd: Pending | None, line: Line, code_text: str, texts: tuple[str, ...],
                first_frame: int, dropped: int = 0) -> None:
        """Emit the reply as the answer to ``cmd`` (None: no command the capture shows) and apply it."""
        code = int(code_text)
        phase = cmd.phase if cmd is not None else self.phase
        if not 100 <= code < 600:
            self.out.anomaly(SERVER, phase, "invalid-reply-code", f"reply code {code} is outside RFC 5321",
                             line.frame)
        elif not is_defined_code(code_text):
            self.out.anomaly(SERVER, phase, "undefined-reply-code",
                             f"reply code {code} is not defined by RFC 5321 or an SMTP extension", line.frame)
        if cmd is None:
            phase = self.phase if self.greeted else Phase.GREETING
            late: Note | None = None
            lost = False
            if not self.greeted and code not in (220, 421, 554) and self.no_syn:
                # RFC 5321 §3.1/§4.3.1: a greeting is 220 (or 421/554 refusing): this reply answers a
                # command the capture does not show
                self.greeted = True
                self.began_late = True
                phase = self.phase = Phase.AUTH if code == 334 else \
                    Phase.NEGOTIATION if len(texts) > 1 else Phase.TRANSFER
                why = f"reply {code} answers no command the capture shows and is no greeting: the capture " \
                      "begins mid-session"
                late = Note(direction=SERVER, ts=line.ts, frame=line.frame, first_frame=first_frame, phase=phase,
                            text=why)
                if code == 354 and self.mode is Mode.GAP:  # DATA came before the capture: the message follows
                    self._lost_mail(line.frame)
                    self._start_data(line.frame)
            elif not self.greeted:
                self.greeted = True
                self.greeting = texts[0] if texts else ""
                phase = Phase.GREETING
            elif code == 421 or self.client_bytes == 0:
                pass
            elif self.commands_lost_at:  # it answers a command the capture lost
                lost = True
                if code == 354 and self.mode is Mode.GAP:  # the lost command was DATA: the message follows
                    if self.current is None:
                        self._lost_mail(line.frame)
                    self._start_data(line.frame)
            elif self.smuggled_message is not None:
                self._smuggling_accepted(line.frame, f"reply {code} answers no command the client sent")
            else:
                self.out.anomaly(SERVER, self.phase, "unsolicited-reply",
                                 f"reply {code} answers no command", line.frame)
            self.out.add(Reply(direction=SERVER, ts=line.ts, frame=line.frame, first_frame=first_frame,
                               phase=Phase.TEARDOWN if code == 421 and self.greeted else phase,
                               status=code_text, lines=texts, answers=None, answers_lost=lost, lines_dropped=dropped))
            if late is not None:
                self.out.add(late)
            if code == 421:
                self.phase = Phase.TEARDOWN
            return
        if not self.greeted:
            self.greeted = True
        if self.commands_lost_at and cmd.after_hole:
            self.commands_lost_at = 0  # the replies have caught up with the commands after the hole
        reply = Reply(direction=SERVER, ts=line.ts, frame=line.frame, first_frame=first_frame, phase=cmd.phase,
                      status=code_text, lines=texts, answers=cmd.verb,
                      latency=None if cmd.junk else max(0.0, line.ts - cmd.ts),
                      answers_frame=cmd.frame, lines_dropped=dropped)
        self.out.add(reply)
        self._reply_effects(cmd, code, texts, line)

    def _pair(self, code: int) -> Pending | None:
        """The command this reply answers (RFC 5321 keeps replies in command order)."""
        pending = self.pending
        if not pending:
            return None
        if not self.greeted and code in (220, 421, 554) and not self.began_late:
            early = pending[0]
            if code == 220 and early.verb != "STARTTLS" and not early.junk:
                # (a 421/554 may answer a command of a capture begun late)
                self.out.anomaly(CLIENT, early.phase, "command-before-greeting",
                                 f"{early.verb} was sent at frame {early.frame}, before the server's greeting; the "
                                 "next reply answers it (RFC 5321 §4.3.1: the client waits for the greeting)",
                                 early.frame)
            return None  # the greeting, even if the client spoke first
        while pending[0].junk and code != 500:
            # the server let the junk line pass without a reply (only 500 answers a line that is no
            # command: 501/502 answer a command it knows, and taking them would shift every pairing)
            pending.pop(0)
            if not pending:
                return None
        head = pending[0]
        if self.server_gap or code in (354, 334):
            # after lost replies, skip commands this reply cannot be answering
            while len(pending) > 1 and not _plausible(pending[0].verb, code):
                pending.pop(0)
            head = pending[0]
        if code == 334 and head.verb == "AUTH":
            return head  # an intermediate challenge: AUTH stays pending
        if head.early_body:
            if code == 354:
                self.out.anomaly(CLIENT, Phase.TRANSFER, "data-before-354",
                                 "the client sent the message before the server's 354 (RFC 2920 §3.1: DATA must "
                                 "end a pipelined group and the client waits for its reply)", head.frame)
                return pending.pop(0)
            if len(pending) > 1 or code < 400:
                # the reply answers the end of the message: the 354 is not in the capture
                pending.pop(0)
                self.out.anomaly(CLIENT, Phase.TRANSFER, "reply-not-seen",
                                 "the client sent the message, so the server must have answered DATA with 354, "
                                 "but the capture does not show that reply", head.frame)
                return pending.pop(0) if pending else None
        return pending.pop(0)

    def _reply_effects(self, cmd: Pending, code: int, texts: tuple[str, ...], line: Line) -> None:
        verb = cmd.verb
        ok = 200 <= code < 300
        tx = cmd.tx
        if verb in ("EHLO", "HELO") and ok:
            if verb == "EHLO":
                self.ehlo_keywords = [t.split(" ", 1)[0].upper() for t in texts[1:] if t]
                limits = [t.split()[1] for t in texts[1:] if t.upper().startswith("SIZE ") and len(t.split()) > 1]
                self.size_limit = (parse_count(limits[0]) if limits else None) or None  # SIZE 0: no limit
            if self.current is not None and self.current.frame < cmd.frame:
                self.current = None  # an accepted HELO/EHLO resets the transaction (RFC 5321 4.1.4)
        elif verb == "MAIL" and tx is not None and tx.reply is None:
            tx.reply = code
            if not ok and self.current is tx:
                prev = tx.previous
                self.current = prev if prev is not None and prev.message is None and prev.reply is not None \
                    and 200 <= prev.reply < 300 else None
            tx.previous = None  # only a refusal of its MAIL goes back to it: the chain of MAILs is not kept
        elif verb == "RCPT" and tx is not None:
            idx = tx.rcpt_answered
            if idx < len(tx.rcpt_replies):
                tx.rcpt_replies[idx] = code
                tx.rcpt_answered = idx + 1
                if ok:
                    tx.accepted.append(tx.rcpt_to[idx])
            elif tx.rcpt_dropped_answered < tx.rcpt_dropped:  # a recipient past the list's limit
                tx.rcpt_dropped_answered += 1
                tx.accepted_dropped += ok
        elif verb == "DATA":
            if code == 354:
                if self.mode is Mode.HOLD:
                    self._start_data(line.frame)
            else:
                if tx is not None:
                    tx.data_reply = code
                    tx.data_text = " | ".join(texts)
                self._release_held()
        elif verb == ".":
            if tx is not None:
                tx.data_reply = code
                tx.data_text = " | ".join(texts)
                if ok:
                    tx.queue_id = _queue_id(texts)
        elif verb == "BDAT":
            if cmd is self.bdat_cmd and self.mode is Mode.BDAT and self.bdat_left > 0:
                # the server has read the whole chunk, so it ended here: the count was wrong
                self._bdat_short(line.frame, f"the server answered it ({code}); the client had sent it")
                if cmd.bdat_last:
                    self._end_message("smtp-bdat", self.body_frame or line.frame)
            if tx is not None and (cmd.bdat_last or not ok):
                tx.data_reply = code
                tx.data_text = " | ".join(texts)
                if ok:
                    tx.queue_id = _queue_id(texts)
                if cmd.bdat_last and self.current is tx:
                    self.current = None
        elif verb == "AUTH":
            self._auth_reply(cmd, code, texts, line)
        elif verb == "STARTTLS":
            if code == 220:
                self._starttls(line)
            else:
                self._release_held()

    def _release_held(self) -> None:
        """The reply said the held client bytes are commands after all."""
        if self.mode is Mode.HOLD:
            self.mode = Mode.COMMAND
        held = bytes(self.held)
        frames = self.held_frames
        self.held.clear()
        self.held_frames = []
        if held:
            frame, ts = frames[0] if frames else (self.out.frame, self.out.ts)
            self._client_data(held, frame, ts)

    def _lost_end_marker(self, frame: int) -> None:
        body = self.body
        if body is not None:
            self.out.data(CLIENT, Phase.TRANSFER, body.flush())  # look-alikes in the held-back tail count
        if body is not None and body.smuggling and not self.message_missing:
            # nothing was lost: the server took a look-alike for the end of data
            self._end_message("smtp-data", frame)
            self._smuggling_accepted(frame, "the server answered while the message was still open", rest_ran=False)
            self.client_lines.clear()
            return
        self.message_missing = max(self.message_missing, 1)
        self.out.anomaly(CLIENT, Phase.TRANSFER, "end-of-data-lost",
                         "the server accepted the end of the message, but the capture lost it", frame)
        self._end_message("smtp-data", frame, complete=False)
        self.client_lines.clear()

    def _smuggling_accepted(self, frame: int, evidence: str, rest_ran: bool = True) -> None:
        """The server's replies show it ended DATA at a look-alike: the rest of the body ran as commands.

        Said once; the further replies to the smuggled commands are explained by it, not anomalies."""
        if self.smuggled_message is None or self.smuggling_accepted:
            return
        self.smuggling_accepted = True
        consequence = ("the server ended the message at the look-alike and ran the rest of the body as SMTP "
                       "commands — a smuggled second message" if rest_ran else
                       "the server takes the look-alike for the end of data, so whatever the client sends after "
                       "it runs as SMTP commands")
        self.out.anomaly(SERVER, Phase.TRANSFER, "smuggling-accepted",
                         f"{evidence}, after an end-of-data look-alike ({', '.join(self.smuggling)}, frame "
                         f"{self.smuggled_message}): {consequence} (SMTP smuggling, CVE-2023-51764 class)", frame)

    def _starttls(self, line: Line) -> None:
        self.server_tls = True
        injected = bytes(self.held) + bytes(self.client_lines.take_all())
        self.held.clear()
        self.wait.hold(0)  # no client data may come to do it (TLS without keys)
        self.held_frames = []
        if injected:
            shown = injected if self.limits.show_secrets else redact_commands(injected)
            self.out.anomaly(CLIENT, Phase.NEGOTIATION, "starttls-injection",
                             f"{len(injected)} bytes of plaintext sent after STARTTLS before the server's 220 "
                             f"({printable(shown, 80)}): a server that buffers them executes them inside TLS "
                             "(CVE-2011-0411 class)", line.frame)
        self.mode = Mode.TLS
        self.pending.clear()
        self.tls_started_at = line.frame
        self.authenticated_at = 0  # the server forgets what the client said before TLS (RFC 3207 4.2)
        self.hello_due_after_tls = True
        self.phase = Phase.TLS
        self.out.add(TlsStart(direction=SERVER, ts=line.ts, frame=line.frame, first_frame=line.frame,
                              phase=Phase.TLS, mode="starttls"))

    # ------------------------------------------------------------------ authentication
    def _auth_reply(self, cmd: Pending, code: int, texts: tuple[str, ...], line: Line) -> None:
        sasl = self.sasl
        if sasl is None:
            return
        if code == 334:
            sasl.server(texts[0] if texts else "")
            self.mode = Mode.AUTH_RESPONSE
            return
        # 454 is a temporary failure (RFC 4954 §6), but a failure: the client is not authenticated
        success: bool | None = True if code == 235 else (None if code == 432 else False)
        if sasl.cancelled:
            success = False
        if success:
            self.authenticated_at = line.frame
        self.out.add(AuthAttempt(direction=CLIENT, ts=line.ts, frame=line.frame, first_frame=cmd.frame,
                                 phase=Phase.AUTH, mechanism=sasl.mechanism, username=sasl.username,
                                 secret=sasl.secret, success=success, domain=sasl.domain,
                                 extra=_auth_extra(sasl, code)))
        self.sasl = None
        if self.mode is Mode.AUTH_RESPONSE:
            self.mode = Mode.COMMAND

    # ------------------------------------------------------------------ gaps and end
    def _gap(self, gap: StreamGap) -> None:
        phase = self.phase
        if gap.direction is CLIENT:
            self.client_bytes_lost = True
            if self.mode is Mode.DATA:
                self.message_missing += gap.nbytes
                self.body_after_gap = True
                detail = "inside the message body; reading on to its end marker"
            elif self.mode is Mode.BDAT:
                self.message_missing += min(gap.nbytes, self.bdat_left)
                over = gap.nbytes - self.bdat_left
                self.bdat_left = max(0, self.bdat_left - gap.nbytes)
                self.bdat_bytes += gap.nbytes
                detail = "inside a BDAT chunk"
                if self.bdat_left == 0:
                    self.mode = Mode.GAP if over > 0 else Mode.COMMAND
                    self.bdat_cmd = None
                    if self.bdat_last:
                        self._end_message("smtp-bdat", gap.frame)
            elif self.mode is Mode.TLS:
                return
            else:
                self.client_lines.clear()
                self.mode = Mode.GAP
                self.commands_lost_at = gap.frame
                detail = "client commands lost; resynchronising on the next command line"
        else:
            if self.server_tls:
                return
            self.server_lines.clear()
            self.reply_lines = []
            self.reply_lines_dropped = 0
            self.server_gap = True
            detail = "server replies lost; pairing resumes with the next reply"
        self.out.add(GapEvent(direction=gap.direction, ts=gap.ts, frame=gap.frame, first_frame=gap.frame,
                              phase=phase, nbytes=gap.nbytes, detail=detail))

    def _eof(self, eof: Eof) -> None:
        if eof.direction is CLIENT:
            if self.mode is Mode.DATA and self.body is not None:
                self.message_missing = max(self.message_missing, 1)
                self.out.anomaly(CLIENT, Phase.TRANSFER, "incomplete-message",
                                 "the client stopped sending in the middle of the message (no end marker)",
                                 eof.frame)
                # the message ends where its last bytes came, not on the FIN/RST that cut it (one row, one message)
                self._end_message("smtp-data", self.body_frame or eof.frame or self.out.frame, complete=False)
                self.pending.pop()
            elif self.mode is Mode.BDAT:
                self._bdat_short(eof.frame or self.out.frame, "the client's stream ended")
                self._end_message("smtp-bdat", self.body_frame or eof.frame or self.out.frame, complete=False)
            elif self.mode is Mode.HOLD and self.held:
                self._release_held()
            if len(self.client_lines) and self.mode not in (Mode.TLS,):
                rest = self.client_lines.take_all()
                if rest.strip():
                    if not self.limits.show_secrets:  # a password sent without its CRLF before the FIN
                        rest = b"[SASL response]" if self.mode is Mode.AUTH_RESPONSE else redact_commands(rest)
                    self.out.anomaly(CLIENT, self.phase, "unterminated-line",
                                     f"client data without a line end at the end of the stream: {printable(rest, 80)}",
                                     eof.frame)
        elif self.reply_lines:
            self.out.anomaly(SERVER, self.phase, "incomplete-reply", "multi-line reply cut off", eof.frame)
            self.reply_lines = []
            self.reply_lines_dropped = 0


def _plausible(verb: str, code: int) -> bool:
    if code == 354:
        return verb == "DATA"
    if code in (334, 235, 535):
        return verb == "AUTH"
    if code == 221:
        return verb == "QUIT"
    return True


def _queue_id(texts: tuple[str, ...]) -> str | None:
    text = " ".join(texts)
    for pattern in QUEUE_IDS:
        match = pattern.search(text)
        if match:
            return match.group(1).rstrip(".")
    return None


def _auth_extra(sasl: SaslExchange, code: int) -> dict[str, str]:
    extra = {"code": str(code)}
    if sasl.mechanism == "CRAM-MD5" and "challenge" in sasl.extra:
        extra["challenge"] = sasl.extra["challenge"]
    extra.update(sasl.attempt_extra())
    return extra


_NOT_CONTROL = bytes(b for b in range(256) if b == 0x09 or 0x20 <= b != 0x7F)
"""Every byte but the C0 controls (tab excepted) and DEL: deleting these leaves the controls."""


def _is_text(raw: bytes) -> bool:
    """A command line is text: mostly printable ASCII/UTF-8, no NUL or C0 controls beyond tab."""
    head = raw[:256]
    bad = len(head.translate(None, _NOT_CONTROL))  # counted in C, not byte by byte in Python
    return bad == 0 or (bad * 10 < len(head) and b"\x00" not in head)
