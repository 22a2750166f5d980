"""One message followed across hops: submission, relay, retrieval and APPEND joined into flows.

A message seen in several sessions of a capture — handed to the local MTA, relayed to the
recipient's MX, fetched with POP3 RETR or IMAP FETCH, uploaded with APPEND — is one *flow*. Hops are
joined by Message-ID; a message without one (a submission the server will give an id to) joins by
a fingerprint of its body, which relaying does not change (the header grows by a Received line
per MTA, so the hash of the whole message does not serve). Each hop records what it added to the
header, and the flow says whether the Received chain matches the hops the capture shows.

The collector is a session consumer: it keeps a small summary per message (never the bytes), with
named limits (:class:`FlowLimits`), so memory does not grow with message sizes.
"""

from __future__ import annotations

import hashlib
import pickle
import tempfile
import weakref
from array import array
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import IO, TYPE_CHECKING, Any

from mailtrace.jsontext import encode
from mailtrace.mime import is_embedded_message
from mailtrace.model import Endpoint
from mailtrace.received import parse_received
from mailtrace.session import MessageRecord, Session

if TYPE_CHECKING:
    from mailtrace.mime import MessageSummary
    from mailtrace.pipeline import CaptureStats

RETRIEVAL = frozenset({"pop3-retr", "pop3-top", "imap-fetch"})
"""Origins where the message travels from the server to the client."""


@dataclass(frozen=True, slots=True)
class FlowLimits:
    """Named limits of the flow collector (docs/context-and-flows.md)."""

    max_flows: int = 100_000
    """Messages followed; later ones are counted (``dropped``), not kept."""
    max_hops: int = 64
    """Hops kept per flow (a mailing-list loop would otherwise grow without end)."""
    max_received: int = 32
    """Received values kept per hop (the newest ones; the count is always exact)."""
    max_received_chars: int = 600
    max_live_flows: int = 4096
    """Flows kept as objects. Past this, the one changed longest ago goes to a temporary file (its state and
    its JSON entry) and comes back if a later hop joins it: memory stays flat however many messages a
    capture holds (what stays per message is its keys and its place in the order, ~300 bytes)."""


@dataclass(frozen=True, slots=True)
class FlowHop:
    """One sighting of a message: the session that carried it and what its header looked like."""

    session: int
    file: str
    stream: int
    ts: float
    """When the hop had the whole message (its last frame)."""
    protocol: str
    origin: str
    client: Endpoint
    server: Endpoint
    first_frame: int
    last_frame: int
    bytes: int
    sha256: str
    complete: bool
    received: tuple[str, ...]
    """Received values of the message as carried, newest first (capped)."""
    received_count: int
    queue_id: str | None = None
    helo: str | None = None
    server_name: str | None = None
    """The name the server announced in its greeting (SMTP)."""
    user: str | None = None

    @property
    def toward_client(self) -> bool:
        return self.origin in RETRIEVAL

    def __reduce__(self) -> tuple[type[FlowHop], tuple[Any, ...]]:
        """Pickled as its fields in order (a flow waiting in the temporary file): a frozen slotted dataclass
        is otherwise pickled field by field by Python code."""
        return (FlowHop, _HOP_FIELDS(self))


_HOP_FIELDS = attrgetter(*(f.name for f in fields(FlowHop)))


@dataclass
class MessageFlow:
    """A message and the hops the capture saw it take, in time order."""

    key: str
    message_id: str | None
    subject: str | None
    sender: str | None
    hops: list[FlowHop] = field(default_factory=list)
    hops_dropped: int = 0

    def ordered(self) -> list[FlowHop]:
        return sorted(self.hops, key=lambda h: (h.ts, h.session))

    @property
    def sessions(self) -> list[int]:
        """The sessions that carried the message, each once, in the order of their first hop."""
        return list(dict.fromkeys(h.session for h in self.ordered()))

    @property
    def multi_session(self) -> bool:
        """Seen in more than one session: what ``flows --multi-hop`` shows and its summary counts.

        Several hops of one session (a POP3 TOP and then a RETR of the same message, an IMAP FETCH
        of its header and then of the whole) are sightings on one leg of the way, not several hops.
        """
        first = self.hops[0].session if self.hops else None
        return any(h.session != first for h in self.hops)

    @property
    def fetched_again(self) -> bool:
        """Every hop is a download from one mailbox server: the message was fetched several times (by
        one client or several), it did not travel."""
        hops = self.hops
        return len(hops) > 1 and all(h.toward_client for h in hops) and len({h.server.ip for h in hops}) == 1

    @property
    def multi_hop(self) -> bool:
        """Carried by more than one session on its way (what ``flows --multi-hop`` shows and its summary
        counts): not a message only downloaded again from the same mailbox."""
        return self.multi_session and not self.fetched_again


@dataclass(frozen=True, slots=True)
class HopReport:
    """A hop as the report shows it: with its delay and what it added to the header."""

    hop: FlowHop
    delay: float | None
    added: tuple[str, ...] | None
    """Received values this hop's message has that the previous hop's did not (None: not comparable)."""
    matches: bool | None
    """The new Received lines record the previous hop (its client's address); None when unknown."""
    continuous: bool | None
    """The hop starts where the previous one ended (a relay's client is the previous server)."""
    queue_id_seen: bool | None = None
    """The queue id the previous server announced (``250 … queued as X``) is in a new Received line."""


def body_fingerprint(summary: MessageSummary) -> str | None:
    """A hash of the decoded content of every MIME leaf, in order: the same on every hop."""
    # an attached e-mail is hashed as sent (its leaves are in the list): a relay that re-encodes it changes that
    leaves = [p.sha256 for p in summary.parts.walk()
              if p.sha256 is not None and not is_embedded_message(p.content_type)]
    if not leaves or not summary.complete:
        return None
    return hashlib.sha256("\n".join(leaves).encode()).hexdigest()


def normalize_message_id(value: str | None) -> str | None:
    if not value:
        return None
    text = "".join(value.split())
    return text or None


class FlowCollector:
    """Consumes sessions (``session``/``end``) and joins their messages into flows.

    Flows are numbered in the order they were made. The ``max_live_flows`` changed last are objects here,
    each with its JSON entry made as its sessions arrived (so the report's end, where nothing runs in
    parallel any more, does not make them all at once); the others wait in a temporary file
    (:class:`_SpillFile`) until a hop joins them again or the report reads them, in order.
    """

    def __init__(self, limits: FlowLimits = FlowLimits()) -> None:
        self.limits = limits
        self._count = 0
        """Flows made; their numbers are 0 .. _count-1."""
        self._live: OrderedDict[int, MessageFlow] = OrderedDict()
        """Flows kept as objects, the one changed longest ago first."""
        self._texts: dict[int, str] = {}
        """JSON entries of live flows that did not change since they were made (:func:`_entry_text`)."""
        self._first_ts = array("d")
        self._first_session = array("q")
        """Per flow number: the time and session of its first hop, what the flows are ordered by."""
        self._by_id: dict[str, int] = {}
        self._by_body: dict[str, int] = {}
        self._spill: _SpillFile | None = None
        self.dropped = 0
        """Messages not followed because ``max_flows`` was reached."""
        self.skipped = 0
        """Partial messages (TOP, header-only FETCH, cut by a gap) without a Message-ID: nothing to join by."""

    # ------------------------------------------------------------------ consumer interface
    def session(self, session: Session) -> None:
        changed = {number for record in session.messages if (number := self._add(session, record)) is not None}
        for number in changed:
            flow = self._live.get(number)
            if flow is not None:
                self._texts[number] = _entry_text(flow)
        while len(self._live) > self.limits.max_live_flows:
            self._spill_oldest()

    def end(self, stats: CaptureStats | None = None, elapsed: float = 0.0) -> None:
        pass

    # ------------------------------------------------------------------ joining
    def add(self, session: Session, record: MessageRecord) -> MessageFlow | None:
        """Join one message of ``session`` to its flow (made if it is the first hop); the flow, or None
        when the message has nothing to join by or ``max_flows`` was reached."""
        number = self._add(session, record)
        return self._live[number] if number is not None else None

    def _add(self, session: Session, record: MessageRecord) -> int | None:
        summary = record.summary
        mid = normalize_message_id(summary.message_id)
        body = body_fingerprint(summary)
        if mid is None and body is None:
            self.skipped += 1
            return None
        number = self._by_id.get(mid) if mid else None
        flow = self._flow(number) if number is not None else None
        if flow is None and body is not None:
            candidate = self._by_body.get(body)
            if candidate is not None:
                found = self._flow(candidate)
                if mid is None or found.message_id in (None, mid):
                    number, flow = candidate, found
        if flow is None or number is None:
            if self._count >= self.limits.max_flows:
                self.dropped += 1
                return None
            key = f"message-id:{mid}" if mid else f"body:{body}"
            flow = MessageFlow(key, mid, summary.subject, summary.from_)
            number = self._count
            self._count += 1
            self._live[number] = flow
            self._first_ts.append(0.0)
            self._first_session.append(0)
        self._live.move_to_end(number)
        self._texts.pop(number, None)
        if mid and flow.message_id is None:
            flow.message_id = mid
            flow.key = f"message-id:{mid}"
        if mid:
            self._by_id.setdefault(mid, number)
        if body:
            self._by_body.setdefault(body, number)
        flow.subject = flow.subject or summary.subject
        flow.sender = flow.sender or summary.from_
        if len(flow.hops) >= self.limits.max_hops:
            flow.hops_dropped += 1
            return number
        hop = self._hop(session, record)
        if not flow.hops or (hop.ts, hop.session) < (self._first_ts[number], self._first_session[number]):
            self._first_ts[number] = hop.ts
            self._first_session[number] = hop.session
        flow.hops.append(hop)
        return number

    def _flow(self, number: int) -> MessageFlow:
        """Flow ``number`` as a live object (read back from the temporary file if it was put there)."""
        flow = self._live.get(number)
        if flow is not None:
            return flow
        assert self._spill is not None
        # its entry is left behind and made again when needed: the flow is about to change (but for the
        # rare body match that turns out to carry another Message-ID)
        flow = self._live[number] = self._spill.take(number)
        return flow

    def _spill_oldest(self) -> None:
        number, flow = self._live.popitem(last=False)
        text = self._texts.pop(number, None) or _entry_text(flow)
        if self._spill is None:
            self._spill = _SpillFile()
        self._spill.put(number, flow, text)

    def _hop(self, session: Session, record: MessageRecord) -> FlowHop:
        summary = record.summary
        limit = self.limits.max_received_chars
        received = [v for k, v in summary.headers if k.lower() == "received"]
        transaction = next((t for t in session.record.get("transactions") or ()
                            if isinstance(t, dict) and t.get("message") == record.index), None)
        smtp = session.record.get("smtp") or {}
        greeting = smtp.get("greeting") if isinstance(smtp, dict) else None
        return FlowHop(
            session=session.id, file=session.file, stream=session.stream, ts=_time_of(session, record.last_frame),
            protocol=session.protocol, origin=record.origin, client=session.client, server=session.server,
            first_frame=record.first_frame, last_frame=record.last_frame, bytes=summary.bytes,
            sha256=summary.sha256, complete=summary.complete,
            received=tuple(" ".join(v.split())[:limit] for v in received[: self.limits.max_received]),
            received_count=len(received),
            queue_id=transaction.get("queue_id") if transaction else None,
            helo=session.helo, server_name=greeting.split(" ", 1)[0] if isinstance(greeting, str) and greeting
            else None, user=session.user,
        )

    # ------------------------------------------------------------------ results
    def __len__(self) -> int:
        return self._count

    def _ordered(self) -> list[int]:
        """Flow numbers by the time of their first hop (ties: the order they were made)."""
        ts, session = self._first_ts, self._first_session
        return sorted(range(self._count), key=lambda n: (ts[n], session[n]))

    def _peek(self, number: int) -> MessageFlow:
        """Flow ``number``, without making it live again."""
        flow = self._live.get(number)
        if flow is not None:
            return flow
        assert self._spill is not None
        return self._spill.read_flow(number)

    def flows(self) -> list[MessageFlow]:
        """Every flow, ordered by the time of its first hop."""
        return [self._peek(number) for number in self._ordered()]

    def json(self) -> list[dict[str, Any]]:
        """The top-level ``flows`` of the JSON report: :func:`flow_json` of every flow, in :meth:`flows` order."""
        return [flow_json(flow) for flow in self.flows()]

    def texts(self) -> Iterator[str]:
        """The entries of :meth:`json` as the report's JSON text (:func:`mailtrace.jsontext.encode`), one at a time."""
        live, texts, spill = self._live, self._texts, self._spill
        for number in self._ordered():
            flow = live.get(number)
            if flow is None:
                assert spill is not None
                yield spill.read_text(number)  # not the flow: its entry is all that is needed
            else:
                text = texts.get(number)
                yield text if text is not None else _entry_text(flow)

    def entries(self) -> FlowEntries:
        """The ``flows`` value of a report: read entry by entry when it is written (see :class:`FlowEntries`)."""
        return FlowEntries(self)


class FlowEntries:
    """A report's ``flows``, as the report's ``extra`` holds them until it is written: the JSON report
    writes :meth:`texts` one by one (never all of them at once: tens of megabytes on a big capture), the
    HTML report takes them as a list (``list(entries)``: :func:`flow_json` of each)."""

    def __init__(self, collector: FlowCollector) -> None:
        self.collector = collector

    def __len__(self) -> int:
        return len(self.collector)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.collector.json())

    def texts(self) -> Iterator[str]:
        return self.collector.texts()


def _entry_text(flow: MessageFlow) -> str:
    return encode(flow_json(flow))


class _SpillFile:
    """Flows waiting in an anonymous temporary file: each one's pickled state and JSON entry, found by number.

    A flow read back to be changed (:meth:`take`) leaves its old record behind (dead space: rare, a hop that
    joins a flow after ``max_live_flows`` others changed); the file goes when the run ends."""

    def __init__(self) -> None:
        self.file: IO[bytes] = tempfile.TemporaryFile(prefix="mailtrace-flows-")  # noqa: SIM115 - lives with the collector
        weakref.finalize(self, self.file.close)  # closed (and so removed) when the collector is done with it
        self.size = 0
        self.position = 0
        """Where the file's position is: appending needs no seek (each one would write the buffer out)."""
        self.where: dict[int, tuple[int, int, int]] = {}
        """Flow number → offset, length of its pickled state, length of its JSON entry (UTF-8)."""

    def put(self, number: int, flow: MessageFlow, text: str) -> None:
        state = pickle.dumps(flow, protocol=pickle.HIGHEST_PROTOCOL)
        data = text.encode()
        if self.position != self.size:  # a read moved away from the end (a seek also writes what is buffered)
            self.file.seek(self.size)
        self.file.write(state)
        self.file.write(data)
        self.where[number] = (self.size, len(state), len(data))
        self.size = self.position = self.size + len(state) + len(data)

    def read_flow(self, number: int) -> MessageFlow:
        offset, state_len, _ = self.where[number]
        flow: MessageFlow = pickle.loads(self._read(offset, state_len))  # noqa: S301 - written by this process
        return flow

    def read_text(self, number: int) -> str:
        offset, state_len, text_len = self.where[number]
        return self._read(offset + state_len, text_len).decode()

    def _read(self, offset: int, size: int) -> bytes:
        if self.position != offset:
            self.file.seek(offset)
        self.position = offset + size
        return self.file.read(size)

    def take(self, number: int) -> MessageFlow:
        """Flow ``number``, to be changed: its record here (state and entry) is no longer its own."""
        flow = self.read_flow(number)
        del self.where[number]
        return flow


def _time_of(session: Session, frame: int) -> float:
    ts = session.frame_time(frame)
    return session.end if ts is None else ts


def hop_reports(flow: MessageFlow) -> list[HopReport]:
    """The flow's hops in time order, with delays and the Received comparison."""
    out: list[HopReport] = []
    previous: FlowHop | None = None
    before_downloads: FlowHop | None = None
    """The hop before a run of downloads from one server: a second download is measured from it."""
    for hop in flow.ordered():
        if previous is not None and hop.toward_client and previous.toward_client \
                and hop.server.ip == previous.server.ip:
            # downloaded again: not a step after the previous download, and nothing to compare
            delay = hop.ts - before_downloads.ts if before_downloads is not None else None
            out.append(HopReport(hop, delay, None, None, None))
            continue
        before_downloads = previous
        if previous is None:
            out.append(HopReport(hop, None, None, None, None))
            previous = hop
            continue
        delay = hop.ts - previous.ts
        new = hop.received_count - previous.received_count
        added: tuple[str, ...] | None = hop.received[:new] if new >= 0 and len(hop.received) >= new else None
        matches: bool | None = None
        if added is not None and previous.received_count <= len(previous.received):
            if previous.toward_client:
                matches = None  # a retrieval does not pass the message on
            elif new == 0:
                matches = False if previous.protocol == "smtp" else None
            else:
                recorded = {parse_received(value).from_ip for value in added}
                matches = previous.client.ip in recorded
        if hop.toward_client or hop.origin == "imap-append":
            continuous = hop.server.ip == previous.server.ip if not previous.toward_client else None
        else:
            continuous = hop.client.ip == previous.server.ip
        queue_id_seen = None
        if previous.queue_id and added:
            queue_id_seen = previous.queue_id in {parse_received(value).id for value in added}
        out.append(HopReport(hop, delay, added, matches, continuous, queue_id_seen))
        previous = hop
    return out


def chain_matches(reports: list[HopReport]) -> bool | None:
    """All comparable hops match (True), one does not (False), or nothing to compare (None)."""
    verdicts = [r.matches for r in reports if r.matches is not None]
    if not verdicts:
        return None
    return all(verdicts)


def flow_json(flow: MessageFlow) -> dict[str, Any]:
    """One entry of the top-level ``flows`` (docs/json-format.md, docs/context-and-flows.md)."""
    reports = hop_reports(flow)
    first = reports[0].hop if reports else None
    out: dict[str, Any] = {
        "message_id": flow.message_id,
        "key": flow.key,
        "subject": flow.subject,
        "from": flow.sender,
        "hops": [_hop_json(r) for r in reports],
        "sessions": flow.sessions,
        "multi_hop": flow.multi_hop,
        "received_before": first.received_count if first else 0,
        "received_chain_matches": chain_matches(reports),
        "duration": round(reports[-1].hop.ts - reports[0].hop.ts, 6) if reports else 0.0,
    }
    if flow.hops_dropped:
        out["hops_dropped"] = flow.hops_dropped
    return out


def _hop_json(report: HopReport) -> dict[str, Any]:
    hop = report.hop
    added = None
    if report.added is not None:
        added = []
        for value in report.added:
            parsed = parse_received(value)
            added.append({"from": parsed.from_, "ip": parsed.from_ip, "by": parsed.by, "with": parsed.with_,
                          "id": parsed.id, "date": parsed.date, "raw": value})
    return {
        "session": hop.session,
        "ts": round(hop.ts, 6),
        "protocol": hop.protocol,
        "client": {"ip": hop.client.ip, "port": hop.client.port},
        "server": {"ip": hop.server.ip, "port": hop.server.port},
        "origin": hop.origin,
        "delay": round(report.delay, 6) if report.delay is not None else None,
        "file": hop.file,
        "stream": hop.stream,
        "first_frame": hop.first_frame,
        "last_frame": hop.last_frame,
        "bytes": hop.bytes,
        "sha256": hop.sha256,
        "complete": hop.complete,
        "queue_id": hop.queue_id,
        "helo": hop.helo,
        "server_name": hop.server_name,
        "user": hop.user,
        "received_count": hop.received_count,
        "received_added": added,
        "received_matches": report.matches,
        "queue_id_in_received": report.queue_id_seen,
        "continuous": report.continuous,
    }
