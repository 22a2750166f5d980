"""What every dissector shares: the contract, a line buffer, dot-stuffed bodies, event helpers.

A dissector is a sans-I/O state machine (the h11 model): it is fed stream items — bytes of one
direction with the frame and time they came in, explicit gaps, end of stream — and returns typed
events. It never touches files, sockets, the clock or the terminal, and it never raises on what a
peer sends: misbehaviour becomes an :class:`~mailtrace.model.Anomaly` and the machine carries on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from mailtrace.model import (
    LISTED_CHARGED_KEY,
    LISTED_REFUSED_KEY,
    Anomaly,
    ByteBudget,
    Chunk,
    Direction,
    Eof,
    Event,
    MessageData,
    Phase,
    StreamGap,
    StreamItem,
)

LINE_DOT = re.compile(rb"\r\n\.")
"""A line that begins with a dot (the CRLF of the line before it, then the dot)."""


@dataclass(frozen=True, slots=True)
class DissectorLimits:
    """Named limits shared by all dissectors (Config fills them from the command line)."""

    max_line: int = 64 * 1024
    """A command or reply line longer than this is an anomaly; the excess is skipped."""
    max_pending_commands: int = 1000
    """SMTP PIPELINING queue / IMAP tags in flight; beyond it the oldest is dropped (anomaly)."""
    max_wait_bytes: int = 256 * 1024
    """Client bytes held while waiting for a reply that decides how to read them (DATA/354)."""
    show_secrets: bool = False
    unread_budget: ByteBudget | None = field(default=None, compare=False, hash=False, repr=False)
    """What all dissectors of a run hold before they can read it, together: lines still being read, past
    :data:`LINE_FLOOR`, and bytes held for a reply (:class:`WaitCharge`). Set by the analyzer
    (``session.UNREAD_BYTES_ALL``); None: only ``max_line`` and ``max_wait_bytes`` bound them."""
    listed_budget: ByteBudget | None = field(default=None, compare=False, hash=False, repr=False)
    """What the lists of the dissectors' records (SMTP recipients and transactions, POP3 listings, IMAP
    timelines...) of all sessions not yet reported take together (:class:`ListCharge`). Set by the analyzer
    (``SessionLimits.max_listed_bytes_all``); None: only each list's own limit bounds it."""


LINE_FLOOR = 1024
"""Every line is read whole up to this length, whatever the run's unread budget has left (RFC 5321
and 1939 lines are at most 512 bytes; IMAP's common long ones, CAPABILITY and ID, about 1 KiB).

Past it a line takes from :attr:`DissectorLimits.unread_budget` while it is being read and gives it back
when it is read (or its connection ends). 2,000 SMTP sessions at once, each in the middle of a 63 KB MAIL
FROM, held 126 MiB of lines being read (and 391 MiB with the commands and addresses read from them). When
the budget is spent, a line still being read is cut where it stands (an anomaly says so) and the rest of
it skipped, as past ``max_line``: what the sessions keep of such lines is bounded with it."""


def budget_cut(line: Line, limits: DissectorLimits) -> str | None:
    """How a cut line is explained when the run's unread budget cut it (None: ``max_line`` did)."""
    budget = limits.unread_budget
    if budget is None or len(line.text) >= limits.max_line:
        return None
    return f"cut to its first {len(line.text):,} bytes: {budget_spent(budget)}"


def budget_spent(budget: ByteBudget) -> str:
    """Why a dissector stopped holding bytes before its own limit."""
    return f"what all connections hold unread together is limited to {budget.size:,} bytes"


class WaitCharge:
    """Bytes a dissector holds until a reply says how to read them (a message sent before the 354, a
    literal before the '+', commands after STLS, the lines of a multi-line response), as a charge on the
    run's unread budget. Each is bounded by ``max_wait_bytes`` (256 KiB) a connection, and 2,000 IMAP
    clients at once each sending its APPEND without waiting for the '+' held 360 MiB. :meth:`hold` says
    when the run's budget is spent: the dissector then stops waiting as it does past ``max_wait_bytes``."""

    __slots__ = ("budget", "charged")

    def __init__(self, budget: ByteBudget | None) -> None:
        self.budget = budget
        self.charged = 0

    def hold(self, size: int) -> bool:
        """``size`` bytes are held now (0: none); True when the run's budget is spent."""
        budget = self.budget
        if budget is None:
            return False
        budget.held += size - self.charged
        self.charged = size
        return budget.held > budget.size

    def reason(self, limits: DissectorLimits, size: int) -> str:
        """What made the dissector stop waiting at ``size`` bytes: its own limit or the run's budget."""
        if size > limits.max_wait_bytes or self.budget is None:
            return ""
        return f" ({budget_spent(self.budget)})"


LISTED_ENTRY_COST = 200
"""What an entry of a record's list is charged besides its text: its slots in the lists that hold it, its
dict or small numbers (an SMTP recipient is an address in four parallel lists and a parameters dict)."""
DICT_ENTRY_COST = 400
"""What a listed entry that is a small dict (a timeline step, a retrieval) is charged beyond
:data:`LISTED_ENTRY_COST`."""


class ListCharge:
    """What one dissector's record lists take from the run's budget of listed entries
    (``DissectorLimits.listed_budget``). Each list has its own limit per session (``MAX_RECIPIENTS``,
    ``MAX_RECORDS``...), but 2,048 sessions may be open at once: 2,000 SMTP sessions each sending 100 RCPTs
    held 55 MiB of recipients. Past the budget an entry is counted as its list's limit counts it, not kept,
    and a session holds at most what is left for the others (alone, half of it: one hostile session cannot
    take it all). Only lists the dissector does not read itself are charged: what it decides by (POP3
    capabilities, SMTP's "a MAIL was seen") must not depend on what other sessions listed.

    The charge goes back when the session is reported, not when the dissector finishes (a finished session
    may wait for older ones to end): the record carries it (:meth:`keys`) to the session, and the analyzer's
    ``EventBudget.give_back`` returns it."""

    __slots__ = ("budget", "charged", "refused")

    def __init__(self, budget: ByteBudget | None) -> None:
        self.budget = budget
        self.charged = 0
        self.refused = 0
        """Entries not kept because the run's budget was spent."""

    def take(self, size: int = 0) -> bool:
        """Room for one more entry of ``size`` bytes beyond :data:`LISTED_ENTRY_COST` (its text, or what its
        kind costs): charged, True; else counted, False."""
        budget = self.budget
        if budget is None:
            return True
        cost = LISTED_ENTRY_COST + size
        room = budget.size - budget.held - cost
        if room < 0 or self.charged > room:  # it holds at most what is left for the others (alone: half)
            self.refused += 1
            return False
        budget.held += cost
        self.charged += cost
        return True

    def give(self, cost: int) -> None:
        """Entries that cost ``cost`` together are no longer held (a list the protocol empties)."""
        if self.budget is not None and cost > 0:
            self.budget.held -= cost
            self.charged -= cost

    def keys(self) -> dict[str, int]:
        """The record's private keys that carry the charge to the session (``SessionBuilder.finish`` takes them
        out of the record)."""
        out: dict[str, int] = {}
        if self.charged:
            out[LISTED_CHARGED_KEY] = self.charged
        if self.refused:
            out[LISTED_REFUSED_KEY] = self.refused
        return out


class Dissector(Protocol):
    """The contract of a protocol module (see docs/adding-a-protocol.md)."""

    name: ClassVar[str]
    default_ports: ClassVar[frozenset[int]]
    tls_ports: ClassVar[frozenset[int]]

    def __init__(self, limits: DissectorLimits) -> None: ...

    @classmethod
    def sniff(cls, client: bytes, server: bytes) -> float:
        """How sure we are that these first bytes are this protocol: < 0 no, 0 can't tell, ≥ 1 yes."""
        ...

    def feed(self, item: StreamItem) -> list[Event]:
        """Consume one stream item; return the events it completed. Never raises on peer input."""
        ...

    def finish(self) -> list[Event]:
        """The connection is over: flush what is still open (e.g. a login whose outcome was not seen), and
        give back what it held unread to the run's budget (:meth:`release_unread`)."""
        ...

    @property
    def listed(self) -> ListCharge:
        """What its record's lists took from ``limits.listed_budget`` (the connection reads it when the
        dissector failed and its record cannot be made)."""
        ...

    def release_unread(self) -> None:
        """Give back what the dissector holds unread to ``limits.unread_budget`` (``finish`` does; the
        connection calls it itself when the dissector failed and will not be finished)."""
        ...

    @property
    def bulk(self) -> Direction | None:
        """The direction whose next bytes are message content rather than protocol lines (a DATA
        body, a RETR response, a message literal), or None. The stack may then hand those bytes over
        in larger pieces: the events must not depend on how the bytes were cut (rule 2)."""
        ...

    @property
    def bulk_left(self) -> int | None:
        """How many bytes of bulk content are still to come when the protocol says (a literal, a
        BDAT chunk); None when the content ends at a marker (``CRLF.CRLF``)."""
        ...

    def tls_started(self) -> None:
        """The stack confirmed TLS (or plaintext) after the upgrade: reset protocol state as the RFC says."""
        ...

    def began_mid_session(self) -> None:
        """The capture holds no SYN of this connection (called before the first bytes): they may continue
        a session already under way, so a command or reply that needs an earlier one is no violation."""
        ...

    def record(self) -> dict[str, Any]:
        """Protocol fields for the session report (JSON-ready values)."""
        ...


@dataclass(slots=True)
class Line:
    """A complete line from a :class:`LineBuffer`."""

    text: bytes
    """Without the line ending."""
    frame: int
    first_frame: int
    ts: float
    bare_lf: bool
    too_long: int = 0
    """Bytes skipped because the line exceeded the limit (0 normally)."""


class LineBuffer:
    """Accumulates one direction's bytes and hands out lines (h11's ReceiveBuffer idea).

    Lines end at LF (CRLF or bare LF). A line longer than ``max_line`` is delivered truncated with
    ``too_long`` set, and the rest up to its end is skipped, so the buffer never grows past the limit.
    """

    __slots__ = ("_buf", "_first_frame", "_first_ts", "_limit", "_partial", "_skipping", "budget", "max_line")

    def __init__(self, max_line: int, budget: ByteBudget | None = None) -> None:
        self._buf = bytearray()
        self._first_frame = 0
        self._first_ts = 0.0
        self._skipping = 0
        self.max_line = max_line
        self.budget = budget
        """The run's unread budget (see :data:`LINE_FLOOR`), or None."""
        self._limit = max_line
        """How long the line being read may be: ``max_line``, or where the budget cut it."""
        self._partial = 0
        """Bytes the line being read took from the budget (given back when it is read)."""

    def __len__(self) -> int:
        return len(self._buf)

    def push(self, data: bytes, frame: int, ts: float) -> None:
        if not self._buf:
            self._first_frame = frame
            self._first_ts = ts
        self._buf += data

    def take_all(self) -> bytes:
        data = bytes(self._buf)
        self.clear()
        return data

    @property
    def first_frame(self) -> int:
        return self._first_frame

    def lines(self, frame: int, ts: float) -> Iterator[Line]:
        """Yield complete lines; leave an incomplete tail buffered. Callers may stop early."""
        buf = self._buf
        while buf:
            nl = buf.find(b"\n")
            if nl < 0:
                if len(buf) > LINE_FLOOR and self.budget is not None:
                    self._take(len(buf))
                limit = self._limit
                if len(buf) > limit:  # keep the line's start, count the rest as skipped
                    self._skipping += len(buf) - limit
                    del buf[limit:]
                return
            bare = not (nl > 0 and buf[nl - 1] == 0x0D)
            text = bytes(buf[: nl if bare else nl - 1])
            skipped = self._skipping
            if len(text) > LINE_FLOOR and self.budget is not None:
                self._take(len(text))
            limit = self._limit
            if len(text) > limit:
                skipped += len(text) - limit
                text = text[:limit]
            del buf[: nl + 1]
            first = self._first_frame
            self._first_frame = frame
            self._first_ts = ts
            self._skipping = 0
            if self._partial:  # read: what it took goes back
                self._give_back()
            self._limit = self.max_line
            yield Line(text, frame, first, ts, bare, skipped)

    def _take(self, size: int) -> None:
        """The line being read is ``size`` bytes long so far: take its bytes past the floor from the run's
        budget, or, when that is spent, stop it where it stands (:attr:`_limit`)."""
        budget = self.budget
        assert budget is not None
        want = min(size, self._limit) - LINE_FLOOR - self._partial
        if want <= 0:
            return
        room = budget.size - budget.held
        if want > room:
            want = max(0, room)
            self._limit = LINE_FLOOR + self._partial + want
        budget.held += want
        self._partial += want

    def release(self) -> None:
        """The connection is over: what the line still being read took goes back to the run's budget."""
        self.clear()

    def clear(self) -> None:
        self._buf.clear()
        self._skipping = 0
        if self._partial:  # the line being read is not one any more: what it took goes back
            self._give_back()
        self._limit = self.max_line

    def _give_back(self) -> None:
        assert self.budget is not None
        self.budget.held -= self._partial
        self._partial = 0


class DotBody:
    """Reads a dot-stuffed body up to ``CRLF.CRLF`` (SMTP DATA, POP3 multi-line responses).

    Emits the unstuffed bytes as they stream (a line starting with '.' loses that dot, RFC 5321
    4.5.2 / RFC 1939 3), holding back only the few bytes that could be the start of the end marker.
    The CRLF that ended the line before the body counts for the marker (an empty body is just
    ``.CRLF``) but is never emitted. Counts bare LF/CR and notices the end-of-data look-alikes that
    SMTP smuggling uses.
    """

    __slots__ = ("_cr_pending", "_ctx", "_look", "_look_end", "_reported_dot", "_skip", "_tail", "bare_cr", "bare_lf",
                 "newlines", "raw_bytes", "smuggling", "stuffed")

    MARKER = b"\r\n.\r\n"
    """The end of data. A line of one dot between any other line endings is a look-alike (<LF>.<LF>,
    <CR>.<CR>, <CR><LF>.<CR>, ... as in the 2023 SMTP smuggling research)."""

    def __init__(self) -> None:
        self._tail = b"\r\n"
        self._skip = 2
        self._ctx = b""
        self._look = b""
        self._look_end = 0
        """Absolute offset (in inspected bytes) where ``_look`` ends."""
        self._reported_dot = -1
        """Absolute offset of the last dot named as a look-alike (each is named once)."""
        self._cr_pending = False
        self.raw_bytes = 0
        self.bare_lf = 0
        self.bare_cr = 0
        self.smuggling: list[str] = []
        self.stuffed = 0
        """Lines that began with a '.' on the wire (their dot removed)."""
        self.newlines = 0
        """LF bytes in the body returned so far (counted on the way: POP3 reports a message's lines)."""

    def feed(self, data: bytes) -> tuple[bytes, bytes | None]:
        """Return (unstuffed body bytes, rest after the end marker or None if not finished)."""
        ctx = self._ctx
        # the bytes already emitted just before (ctx) lead the text: a line's dot right after them is found too
        text = ctx + self._tail + data
        start = len(ctx)
        dots: list[int] = []
        end = -1
        if b"." in text:  # no dot (most of base64 content): neither stuffing nor the marker
            end = self._scan(text, start, dots)
        if end >= 0:
            self._tail = b""
            return self._emit(text, start, end + 2, dots), text[end + 5 :]
        keep = min(4, len(text) - start)
        self._tail = text[len(text) - keep :]
        return self._emit(text, start, len(text) - keep, dots), None

    def flush(self) -> bytes:
        """The body ends without its marker (gap, EOF): return what is still held back."""
        tail, self._tail = self._tail, b""
        if not tail:  # a dot still waiting for its right side is judged as it stands
            self._spot_lookalikes(self._look, self._look_end - len(self._look), final=True)
        text = self._ctx + tail
        dots: list[int] = []
        self._scan(text, len(self._ctx), dots, marker=False)
        return self._emit(text, len(self._ctx), len(text), dots, final=True)

    def _scan(self, text: bytes, start: int, dots: list[int], marker: bool = True) -> int:
        """Collect in ``dots`` where each line's leading dot is in ``text``, up to the first end marker
        that begins at ``start`` or later; return where that marker begins (-1: none).

        One regex scan finds both (it skips to each CR); a marker search plus a split cost three times as much."""
        for match in LINE_DOT.finditer(text):
            at = match.start()
            if marker and at >= start and text[at + 3 : at + 5] == b"\r\n":
                return at
            dots.append(at + 2)
        return -1

    def _emit(self, text: bytes, start: int, stop: int, dots: list[int], final: bool = False) -> bytes:
        """Unstuff ``text[start:stop]`` (``dots``: where the lines' leading dots are in ``text``); drop the
        virtual leading CRLF."""
        if stop <= start:
            return b""
        raw = text[start:stop]
        newlines = self._inspect(raw, final)
        out = raw
        if dots:
            cut = [d for d in dots if d < stop]  # a dot in the held-back tail is seen again with the next bytes
            if cut:
                self.stuffed += len(cut)
                pieces = []
                prev = start
                for d in cut:
                    pieces.append(text[prev:d])
                    prev = d + 1
                pieces.append(text[prev:stop])
                out = b"".join(pieces)
        self._ctx = text[max(0, stop - 2) : stop]
        if self._skip:
            dropped = min(self._skip, len(out))
            newlines -= out.count(b"\n", 0, dropped)
            out = out[dropped:]
            self._skip -= dropped
            self.raw_bytes -= dropped
        self.raw_bytes += len(raw)
        self.newlines += newlines
        return out

    def _inspect(self, raw: bytes, final: bool = False) -> int:
        """Count bare CR/LF and spot end-of-data look-alikes, also across chunk boundaries; return the LF
        bytes in ``raw``.

        Written for the common case, a body of CRLF lines: one test shows that nothing is bare, and
        then the look-alike search is skipped (see below)."""
        # Only CRLF pairs in raw (so it neither starts with LF nor ends with CR) iff dropping every CR
        # and turning every LF into CRLF gives raw back. Single-byte replace runs on memchr: about 5x
        # cheaper than counting CRLF, LF and CR (a two-byte count is the slowest of the three).
        without_cr = raw.replace(b"\r", b"")
        if without_cr.replace(b"\n", b"\r\n") == raw:
            newlines = len(raw) - len(without_cr)  # one LF to each CR
            if self._cr_pending:
                self.bare_cr += 1  # the CR that ended the previous chunk is not followed by LF
                self._cr_pending = False
        else:
            crlf = raw.count(b"\r\n")
            newlines = raw.count(b"\n")
            lf = newlines - crlf
            cr = raw.count(b"\r") - crlf
            if self._cr_pending:
                if raw[:1] == b"\n":
                    lf -= 1  # the CR of the previous chunk and this LF form a CRLF
                else:
                    self.bare_cr += 1
                self._cr_pending = False
            if raw[-1:] == b"\r":
                cr -= 1  # a CR at the end waits for the next chunk to tell
                self._cr_pending = True
            self.bare_lf += lf
            self.bare_cr += cr
        prev = self._look
        start = self._look_end - len(prev)  # absolute offset of the window's first byte
        self._look_end += len(raw)
        self._look = (prev + raw[-5:])[-5:]
        if not (self.bare_lf or self.bare_cr or self._cr_pending or final):
            # every CR and LF so far (the window's too) sits in a CRLF, so a dot with line endings on
            # both sides is CRLF.CRLF: the real marker, which feed() never passes here
            return newlines
        look = prev + raw
        # a look-alike has a line ending on both sides of its dot: four substring tests (C speed) rule
        # out nearly every chunk before _spot_lookalikes walks it ("end.\r\n" and "\r\n..x" have only one side)
        if b"." in look and (b"\n.\n" in look or b"\n.\r" in look or b"\r.\r" in look or b"\r.\n" in look
                             or (final and look.endswith((b"\n.", b"\r.", b"\n.\r", b"\r.\r")))):
            self._spot_lookalikes(look, start, final)
        return newlines

    def _spot_lookalikes(self, look: bytes, start: int, final: bool) -> None:
        """Name each dot that has a line ending on both sides, unless it is the real end marker.

        Walked dot by dot (look-alikes may overlap: ``LF.LF.CR``), each side read as the longest ending
        (CRLF before a lone CR or LF). A dot is judged once, by its absolute offset; one whose right side
        is not complete yet (the dot or a CR last in the window) waits for the next chunk, which still
        has it in the window, unless this is the body's last chunk (``final``)."""
        n = len(look)
        i = look.find(b".", 1 if start == 0 else 2)  # dots at 0/1 of a later window were judged before
        while i >= 0:
            at = start + i
            left = look[i - 1]
            if at > self._reported_dot and left in (13, 10):  # CR, LF
                if i + 1 >= n or (look[i + 1] == 13 and i + 2 >= n):
                    if not final:
                        return  # its right side may continue in the next chunk
                    right = look[i + 1 : i + 2]
                elif look[i + 1] in (13, 10):
                    right = b"\r\n" if look[i + 1 : i + 3] == b"\r\n" else look[i + 1 : i + 2]
                else:
                    right = b""
                if right:
                    seq = (b"\r\n" if left == 10 and look[i - 2 : i - 1] == b"\r" else look[i - 1 : i]) + b"." + right
                    if seq != self.MARKER:
                        self._reported_dot = at
                        shown = seq.decode("ascii").replace("\r", "<CR>").replace("\n", "<LF>")
                        if shown not in self.smuggling:
                            self.smuggling.append(shown)
            i = look.find(b".", i + 1)


class EventSink:
    """Small helper a dissector uses to build events with the current item's frame and time."""

    __slots__ = ("events", "frame", "ts")

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.frame = 0
        self.ts = 0.0

    def at(self, item: Chunk | StreamGap | Eof) -> None:
        self.frame = item.frame or self.frame
        self.ts = item.ts

    def take(self) -> list[Event]:
        """The events collected since the last call (callers only read the list)."""
        out = self.events
        if out:
            self.events = []
        return out

    def add(self, event: Event) -> None:
        self.events.append(event)

    def anomaly(self, direction: Direction, phase: Phase, kind: str, detail: str,
                frame: int | None = None) -> None:
        f = frame or self.frame
        self.events.append(Anomaly(direction=direction, ts=self.ts, frame=f, first_frame=f, phase=phase,
                                   kind=kind, detail=detail))

    def data(self, direction: Direction, phase: Phase, data: bytes) -> None:
        if data:
            self.events.append(MessageData(direction=direction, ts=self.ts, frame=self.frame,
                                           first_frame=self.frame, phase=phase, data=data))


def printable_text(text: str, limit: int = 200) -> str:
    """Text decoded with ``surrogateescape`` (the raw bytes kept in it), shown like :func:`printable`."""
    return printable(text.encode("utf-8", "surrogateescape"), limit)


def printable(data: bytes, limit: int = 200) -> str:
    """Bytes from the wire as a one-line str for display: undecodable bytes and controls escaped."""
    text = data[:limit].decode("utf-8", "backslashreplace")
    if not text.isprintable():
        text = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
    if len(data) > limit:
        text += f"… (+{len(data) - limit} bytes)"
    return text
