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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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
    """Consumes sessions (``session``/``end``) and joins their messages into flows."""

    def __init__(self, limits: FlowLimits = FlowLimits()) -> None:
        self.limits = limits
        self._flows: list[MessageFlow] = []
        self._by_id: dict[str, MessageFlow] = {}
        self._by_body: dict[str, MessageFlow] = {}
        self.dropped = 0
        """Messages not followed because ``max_flows`` was reached."""
        self.skipped = 0
        """Partial messages (TOP, header-only FETCH, cut by a gap) without a Message-ID: nothing to join by."""
        self._json: dict[int, dict[str, Any]] = {}
        """Each flow's :func:`flow_json` (by ``id``), made as its sessions arrive, dropped when it changes:
        so the report's end, where nothing runs in parallel any more, does not make them all at once."""

    # ------------------------------------------------------------------ consumer interface
    def session(self, session: Session) -> None:
        changed = {id(flow): flow for record in session.messages if (flow := self.add(session, record)) is not None}
        for key, flow in changed.items():
            self._json[key] = flow_json(flow)

    def end(self, stats: CaptureStats | None = None, elapsed: float = 0.0) -> None:
        pass

    # ------------------------------------------------------------------ joining
    def add(self, session: Session, record: MessageRecord) -> MessageFlow | None:
        summary = record.summary
        mid = normalize_message_id(summary.message_id)
        body = body_fingerprint(summary)
        if mid is None and body is None:
            self.skipped += 1
            return None
        flow = self._by_id.get(mid) if mid else None
        if flow is None and body is not None:
            candidate = self._by_body.get(body)
            if candidate is not None and (mid is None or candidate.message_id in (None, mid)):
                flow = candidate
        if flow is None:
            if len(self._flows) >= self.limits.max_flows:
                self.dropped += 1
                return None
            key = f"message-id:{mid}" if mid else f"body:{body}"
            flow = MessageFlow(key, mid, summary.subject, summary.from_)
            self._flows.append(flow)
        self._json.pop(id(flow), None)
        if mid and flow.message_id is None:
            flow.message_id = mid
            flow.key = f"message-id:{mid}"
        if mid:
            self._by_id.setdefault(mid, flow)
        if body:
            self._by_body.setdefault(body, flow)
        flow.subject = flow.subject or summary.subject
        flow.sender = flow.sender or summary.from_
        if len(flow.hops) >= self.limits.max_hops:
            flow.hops_dropped += 1
            return flow
        flow.hops.append(self._hop(session, record))
        return flow

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
    def flows(self) -> list[MessageFlow]:
        """Every flow, ordered by the time of its first hop."""
        return sorted(self._flows, key=lambda f: min((h.ts, h.session) for h in f.hops))

    def json(self) -> list[dict[str, Any]]:
        """The top-level ``flows`` of the JSON report: :func:`flow_json` of every flow, in :meth:`flows` order."""
        made = self._json
        return [made.get(id(flow)) or flow_json(flow) for flow in self.flows()]


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
