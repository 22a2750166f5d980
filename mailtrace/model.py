"""The values that cross module boundaries.

Everything here is plain data: no I/O and no behaviour beyond small properties. Values flow one
way through the pipeline (see docs/architecture.md):

    capture ─Frame▶ decode ─Segment▶ tcp.flows/reassembly ─StreamItem▶ protocols ─Event▶ session ─Session▶ render

Stream items and events are created per packet on the hot path, so they are slotted dataclasses
that are *treated* as immutable but not declared ``frozen``: a frozen dataclass costs three times as
much to construct (measured: 1.25 µs vs 0.35 µs for four fields), and several are built per packet.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Any

LISTED_CHARGED_KEY = "_listed_bytes"
"""The private key of a dissector's record that says what its lists took from the run's budget of listed
entries (``protocols.base.ListCharge``); the session builder takes it out of the record."""
LISTED_REFUSED_KEY = "_listed_refused"
"""Likewise: how many entries that budget refused."""


class ByteBudget:
    """Bytes that many holders of one kind may hold together in a run: a bound for the sum where each
    holder also has a bound of its own, because thousands of them may be alive at once (the reassemblers'
    out-of-order segments and remembered bytes, the connections' message content waiting to be dissected:
    see where each is made). Holders add what they take to ``held`` and take it off when they let go."""

    __slots__ = ("held", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.held = 0

    @property
    def spent(self) -> bool:
        return self.held > self.size


class Direction(enum.Enum):
    """Who sent the bytes: decided from the TCP roles (SYN sender is the client), not the ports."""

    CLIENT = "client"
    SERVER = "server"

    @property
    def other(self) -> Direction:
        return Direction.SERVER if self is Direction.CLIENT else Direction.CLIENT


CLIENT = Direction.CLIENT
SERVER = Direction.SERVER


class Phase(enum.Enum):
    """The stages of a mail session, in the order a textbook trace shows them."""

    SETUP = "setup"
    GREETING = "greeting"
    NEGOTIATION = "negotiation"
    TLS = "tls"
    AUTH = "auth"
    TRANSFER = "transfer"
    TEARDOWN = "teardown"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One side of a TCP connection."""

    ip: str
    """RFC 5952 text for IPv6, dotted quad for IPv4, no brackets."""
    port: int

    def __str__(self) -> str:
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"

    def __reduce__(self) -> tuple[type[Endpoint], tuple[str, int]]:
        """Pickled as its fields, not through the Python ``__getstate__`` of frozen slotted dataclasses."""
        return (Endpoint, (self.ip, self.port))


# --------------------------------------------------------------------------- stream items
# What TCP reassembly hands to a dissector (and what the TLS layer hands on after decryption).


@dataclass(slots=True)
class Chunk:
    """New in-order bytes of one direction, from one TCP segment."""

    direction: Direction
    data: bytes
    ts: float
    """Capture time (epoch seconds) of the segment that carried the bytes."""
    frame: int
    """Capture frame number (1-based) of that segment."""


@dataclass(slots=True)
class StreamGap:
    """Bytes of one direction that the capture does not have. Never zero-filled."""

    direction: Direction
    nbytes: int
    ts: float
    frame: int
    """Frame at which the loss became certain (the next segment after the hole)."""


@dataclass(slots=True)
class Eof:
    """One direction ended: FIN, RST, the end of the capture or an idle timeout."""

    direction: Direction
    ts: float
    frame: int | None
    reset: bool = False


StreamItem = Chunk | StreamGap | Eof


# --------------------------------------------------------------------------- events
# What dissectors emit. ``frame`` is where the event completed; ``first_frame`` where it began.


class PickledAsValues:
    """Base of slotted dataclasses that a two-process run (mailtrace/forked.py) sends by the thousand
    (dissector events, DNS context observations): pickled as their field values in order and rebuilt by
    a positional constructor. A slotted dataclass otherwise pickles as a dict of its slots, each name
    written again, and is rebuilt by Python code setting them one by one (events then took a tenth more
    of the dissecting process's time to pickle on the benchmark; its 550 DNS observations 35 ms instead
    of 21–29 ms, in pickles a third larger)."""

    __slots__ = ()

    def __reduce__(self) -> tuple[Callable[[type[Any], tuple[Any, ...]], Any], tuple[type[Any], tuple[Any, ...]]]:
        cls = type(self)
        values_of = _VALUES_OF.get(cls) or _values_getter(cls)
        return _from_values, (cls, values_of(self))


_NAMES: dict[type, tuple[str, ...]] = {}
"""Per class: the names of its fields, in order."""
_VALUES_OF: dict[type, Callable[[Any], tuple[Any, ...]]] = {}
"""Per class: its field values in order, as one ``attrgetter`` returning a tuple."""


def _names(cls: type) -> tuple[str, ...]:
    names = _NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


def _values_getter(cls: type) -> Callable[[Any], tuple[Any, ...]]:
    names = _NAMES.get(cls) or _names(cls)
    getter = attrgetter(*names)
    # attrgetter of one name returns the value, not a 1-tuple
    _VALUES_OF[cls] = getter if len(names) > 1 else (lambda obj: (getter(obj),))
    return _VALUES_OF[cls]


_MAKERS: dict[type, Callable[..., Any]] = {}
"""Per class: its constructor taking the field values in order (see :func:`_maker`)."""


def _maker(cls: type) -> Callable[..., Any]:
    """``cls``'s constructor with the fields as positional parameters, as ``dataclasses`` makes ``__init__``
    (a kw_only dataclass takes them by name only, and a dict of names per event cost the report process a
    fifth of its unpickling on the benchmark). The names are the class's own field names."""
    names = _NAMES.get(cls) or _names(cls)
    source = f"lambda {', '.join(names)}: cls({', '.join(f'{n}={n}' for n in names)})"
    make: Callable[..., Any] = eval(source, {"cls": cls})  # noqa: S307 - field names of our own dataclasses
    _MAKERS[cls] = make
    return make


def _from_values(cls: type, values: tuple[Any, ...]) -> Any:
    """An unpickled :class:`PickledAsValues`."""
    return (_MAKERS.get(cls) or _maker(cls))(*values)


@dataclass(slots=True, kw_only=True)
class Event(PickledAsValues):
    """Base of every dissector event."""

    direction: Direction
    ts: float
    frame: int
    first_frame: int
    phase: Phase


@dataclass(slots=True, kw_only=True)
class Command(Event):
    """A client command line (or an IMAP tagged command)."""

    verb: str
    """Upper-cased command word: ``MAIL``, ``RCPT``; for IMAP the name after the tag."""
    argument: str
    """The rest of the line, as sent (secrets are redacted by the dissector unless asked not to)."""
    tag: str | None = None
    uid: bool = False
    known: bool = True
    sent_as: str | None = None
    """The command word(s) as the client wrote them, where that differs from the canonical form
    (``mail``, ``uid fetch``): the views show what was sent; ``verb`` stays the name to match on."""

    @property
    def shown_verb(self) -> str:
        """The command word(s) for the Info column: as sent."""
        return self.sent_as or (("UID " if self.uid else "") + self.verb)


@dataclass(slots=True, kw_only=True)
class Reply(Event):
    """A complete server response (multi-line replies joined into one)."""

    status: str
    """As sent: ``250``, ``+OK``/``-ERR``, ``OK``/``NO``/``BAD`` (tagged IMAP), ``*`` or ``+``."""
    lines: tuple[str, ...]
    """The text of each line without the status prefix."""
    answers: str | None = None
    """Verb of the command this reply answers, or None (greeting, unsolicited)."""
    latency: float | None = None
    """Seconds from the command it answers to this reply."""
    tag: str | None = None
    answers_frame: int | None = None
    """Frame of the command this reply answers (where the command's line ended), or None."""
    answers_lost: bool = False
    """It answers a command the capture lost (a hole in the client's bytes): ``answers`` is None."""
    lines_dropped: int = 0
    """Lines of a very long multi-line reply left out of ``lines`` (before its last line), counted."""

    @property
    def text(self) -> str:
        return " | ".join(self.lines)


COMMAND_AS_RESPONSE_KEY = "command_as_response"
"""A login's ``extra`` key: which fields command lines sent as SASL responses filled (``username``,
``secret``, both as ``username,secret``, or ``response`` when neither); see
:func:`mailtrace.protocols.sasl.command_as_response`."""


def filled_by_command(extra: dict[str, str], field_name: str) -> bool:
    """Whether a login's ``field_name`` (``username``, ``secret``) holds a command the server decoded
    (see :data:`COMMAND_AS_RESPONSE_KEY`)."""
    filled = extra.get(COMMAND_AS_RESPONSE_KEY)
    return filled is not None and field_name in filled.split(",")


@dataclass(slots=True, kw_only=True)
class AuthAttempt(Event):
    """A login: SASL, USER/PASS, APOP, IMAP LOGIN. Emitted when its outcome is known."""

    mechanism: str
    username: str | None
    secret: str | None = None
    """Password, token or digest as seen; renderers show it only with --show-secrets."""
    success: bool | None = None
    domain: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def cancelled(self) -> bool:
        """The client cancelled the exchange with ``*`` (RFC 4954 §4, RFC 5034 §4, RFC 9051 §6.2.2): the
        server checked nothing, so no login was refused (``extra["cancelled"]``, as the JSON has it)."""
        return self.extra.get("cancelled") == "yes"

    @property
    def sent_username(self) -> str | None:
        """The user name as a credential the client gave: None when the line the server read as it was
        a command the client meant for the protocol (``QUIT`` after ``334 VXNlcm5hbWU6``)."""
        return None if filled_by_command(self.extra, "username") else self.username

    @property
    def sent_secret(self) -> str | None:
        """The secret as a credential the client gave (see :attr:`sent_username`)."""
        return None if filled_by_command(self.extra, "secret") else self.secret


@dataclass(slots=True, kw_only=True)
class TlsStart(Event):
    """The connection switches to TLS from here on (STARTTLS/STLS accepted, or implicit TLS)."""

    mode: str
    """``starttls`` or ``implicit``."""


@dataclass(slots=True, kw_only=True)
class BodyData(Event):
    """Part of a message body or other bulk data passed in this frame (for the packet rows)."""

    nbytes: int
    what: str = "message"


@dataclass(slots=True, kw_only=True)
class MessageData(Event):
    """Bytes of a message being carried (already dot-unstuffed / literal-cut), in order."""

    data: bytes


@dataclass(slots=True, kw_only=True)
class MessageEnd(Event):
    """The message whose bytes were sent as MessageData is over."""

    origin: str
    """``smtp-data``, ``smtp-bdat``, ``pop3-retr``, ``pop3-top``, ``imap-fetch``, ``imap-append``."""
    complete: bool
    missing_bytes: int = 0
    detail: dict[str, Any] = field(default_factory=dict)
    """Protocol facts about the carrier (e.g. POP3 message number, IMAP UID, BDAT chunk sizes)."""


@dataclass(slots=True, kw_only=True)
class Opaque(Event):
    """Bytes the dissector cannot read (TLS without keys)."""

    nbytes: int


@dataclass(slots=True, kw_only=True)
class GapEvent(Event):
    """The dissector was told that bytes are missing and what it did about it."""

    nbytes: int
    detail: str = ""


@dataclass(slots=True, kw_only=True)
class Anomaly(Event):
    """Something a peer did that the protocol does not allow, or that the capture lost."""

    kind: str
    detail: str


@dataclass(slots=True, kw_only=True)
class Note(Event):
    """Protocol fact worth a row caption but not a command or reply (e.g. IMAP IDLE woken)."""

    text: str
