"""Statistics over the sessions of a capture: a session consumer with bounded memory.

:class:`StatsCollector` takes sessions as they stream (``session``) and the capture totals
(``end``), and keeps only counters, bounded samples and a coarsening timeline — never the sessions.
:meth:`StatsCollector.result` gives a :class:`Statistics` value with ``to_json()`` (the ``stats``
key of the JSON report, ``mailtrace stats --format json``) and ``rows()`` (``--format csv``).

What is counted, and how (docs/findings.md, "Statistics"):

* protocol hierarchy: frames → TCP → SMTP/POP3/IMAP (→ TLS), DNS over TCP, ident → other TCP; not TCP →
  DNS over UDP → other; packets counted per packet row of each session (the context layer counts the
  DNS and ident packets), bytes are TCP or UDP payload bytes (frame sizes are only known in total);
* spam defences: the verdicts of :func:`~mailtrace.findings.headers.verdicts` (the parser the
  per-message ``verdicts`` of the JSON report and the ``spam-verdict`` finding use), refusals by
  reply text, greylisting (the findings' :class:`~mailtrace.findings.cross.GreylistTracker`: a triple
  deferred, then accepted on a retry) and DNS blocklist look-ups (counted by the context layer);
* SMTP replies by class (2yz/3yz/4yz/5yz) and by category (x0z..x5z), RFC 5321 §4.2.1; one count
  per reply, however many lines it has;
* reply latency: from the command to the first packet of the reply that answers it (what
  Wireshark calls the response time), per command verb;
* medians (the middle value, or the mean of the two middle ones) and 95th percentiles (nearest-rank
  method: the smallest value with at least 95 % of the values at or below it) are computed on the
  values kept: all of them up to ``StatsLimits.max_samples``, a uniform reservoir sample beyond
  (``sampled`` says so).
"""

from __future__ import annotations

import functools
import math
import random
import statistics
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import Any

from mailtrace.context.tracker import ContextStats
from mailtrace.findings.cross import GreylistTracker
from mailtrace.findings.facts import SessionFacts, domain_of, plain_mailbox
from mailtrace.findings.model import FindingsConfig
from mailtrace.findings.rules import RELAY_TEXT, UNKNOWN_USER, RuleContext, spam_category
from mailtrace.mime import is_embedded_message
from mailtrace.pipeline import CaptureStats
from mailtrace.protocols.smtp import parse_address
from mailtrace.protocols.smtp_codes import enhanced_code
from mailtrace.session import LOGIN_OUTCOMES, Session

FORMAT_NAME = "mailtrace-stats"
FORMAT_VERSION = 1
TIMELINE_WIDTHS = (
    1,
    2,
    5,
    10,
    15,
    30,
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    10800,
    21600,
    43200,
    86400,
    172800,
    604800,
    2592000,
    31536000,
)


DEFAULT_TOP = 10
OTHER_VERBS = "(other)"
"""The latency entry of the verbs past ``StatsLimits.max_latency_verbs``."""


@dataclass(frozen=True, slots=True)
class StatsLimits:
    """Every collection of the statistics has a named limit."""

    top: int = DEFAULT_TOP
    """Rows of the top-N tables (senders, servers, ...)."""
    max_keys: int = 50_000
    """Distinct keys per counter; past it the rarest are pruned and the counter marked approximate."""
    max_samples: int = 100_000
    """Values kept per distribution (durations, latencies, sizes); a reservoir sample beyond."""
    max_buckets: int = 2_000
    """Timeline buckets; the bucket width grows when a capture spans more."""
    max_latency_verbs: int = 100
    """Entries of the latency table per protocol: past it, the replies to commands the dissector does not
    know (a client sending thousands of made-up ones) share one, ``(other)``; known commands always
    have their own."""


class BoundedCounter:
    """A counter of at most ``limit`` keys; pruning keeps the most frequent half (then ``approximate``)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.counts: dict[str, int] = {}
        self.approximate = False

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n
        if len(self.counts) > self.limit:
            keep = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))[: max(1, self.limit // 2)]
            self.counts = dict(keep)
            self.approximate = True

    def top(self, n: int | None = None) -> list[tuple[str, int]]:
        items = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return items if n is None else items[:n]

    def total(self) -> int:
        return sum(self.counts.values())

    def __len__(self) -> int:
        return len(self.counts)


@dataclass(frozen=True, slots=True)
class Summary:
    """A distribution in five numbers (seconds or bytes)."""

    count: int
    min: float
    median: float
    p95: float
    max: float
    mean: float
    sampled: bool = False
    """True when median/p95 come from a reservoir sample rather than every value."""

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "min": _r(self.min),
            "median": _r(self.median),
            "p95": _r(self.p95),
            "max": _r(self.max),
            "mean": _r(self.mean),
            "sampled": self.sampled,
        }


def _r(value: float) -> float:
    return round(value, 6)


def nearest_rank(sorted_values: list[float], q: float) -> float:
    """The q-quantile by the nearest-rank method: a value that was seen, never an interpolation."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


class Distribution:
    """Count, min, max, sum exactly; a bounded uniform sample for the quantiles."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.values: list[float] = []
        self.count = 0
        self.total = 0.0
        self.low = math.inf
        self.high = -math.inf
        self._rng: random.Random | None = None
        """Made when the sample is full (seeding one costs more than most distributions ever need)."""

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        if value < self.low:  # noqa: PLR1730 - min()/max() are two calls per reply and session
            self.low = value
        if value > self.high:  # noqa: PLR1730
            self.high = value
        if len(self.values) < self.limit:
            self.values.append(value)
        else:
            if self._rng is None:
                self._rng = random.Random(0)  # noqa: S311 - sampling, not security; fixed seed: reproducible reports
            j = self._rng.randrange(self.count)
            if j < self.limit:
                self.values[j] = value

    def summary(self) -> Summary | None:
        if not self.count:
            return None
        ordered = sorted(self.values)
        return Summary(
            self.count,
            self.low,
            statistics.median(ordered),
            nearest_rank(ordered, 0.95),
            self.high,
            self.total / self.count,
            self.count > len(self.values),
        )


class Timeline:
    """Sessions started per time bucket; the bucket width grows so that at most ``max_buckets`` exist."""

    def __init__(self, max_buckets: int) -> None:
        self.max_buckets = max_buckets
        self.width_index = 0
        self.buckets: dict[int, int] = {}
        self.first: float | None = None

    @property
    def width(self) -> int:
        return TIMELINE_WIDTHS[self.width_index]

    def add(self, ts: float) -> None:
        if self.first is None:
            self.first = ts
        key = math.floor(ts / self.width)
        self.buckets[key] = self.buckets.get(key, 0) + 1
        while self._span() > self.max_buckets and self.width_index < len(TIMELINE_WIDTHS) - 1:
            self._coarsen()

    def _span(self) -> int:
        return max(self.buckets) - min(self.buckets) + 1 if self.buckets else 0

    def _coarsen(self) -> None:
        old = self.width
        self.width_index += 1
        merged: dict[int, int] = {}
        for key, n in self.buckets.items():
            new_key = math.floor(key * old / self.width)
            merged[new_key] = merged.get(new_key, 0) + n
        self.buckets = merged

    def display(self, max_rows: int = 60) -> tuple[int, float | None, list[int]]:
        """(bucket seconds, start of the first bucket, counts) with at most ``max_rows`` buckets."""
        if not self.buckets:
            return self.width, None, []
        while self._span() > max_rows and self.width_index < len(TIMELINE_WIDTHS) - 1:
            self._coarsen()
        low, high = min(self.buckets), max(self.buckets)
        span = high - low + 1
        if span > max_rows:
            # wider than the widest standard bucket allows (a damaged capture's times, years apart):
            # buckets as wide as it takes, never a list as long as the span
            factor = -(-span // max_rows)
            counts = [0] * (-(-span // factor))
            for key, n in self.buckets.items():
                counts[(key - low) // factor] += n
            return self.width * factor, float(low * self.width), counts
        return self.width, float(low * self.width), [self.buckets.get(k, 0) for k in range(low, high + 1)]


@dataclass(frozen=True, slots=True)
class ProtocolRow:
    """Traffic of one mail protocol."""

    protocol: str
    sessions: int
    packets: int
    payload_bytes: int
    tls_sessions: int
    tls_packets: int
    tls_bytes: int
    decrypted_sessions: int
    ipv6_sessions: int

    @property
    def tls_share(self) -> float:
        """Share of the payload bytes carried inside TLS."""
        return self.tls_bytes / self.payload_bytes if self.payload_bytes else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "sessions": self.sessions,
            "packets": self.packets,
            "payload_bytes": self.payload_bytes,
            "tls_sessions": self.tls_sessions,
            "tls_packets": self.tls_packets,
            "tls_bytes": self.tls_bytes,
            "tls_share": round(self.tls_share, 4),
            "decrypted_sessions": self.decrypted_sessions,
            "ipv6_sessions": self.ipv6_sessions,
        }


@dataclass(frozen=True, slots=True)
class HierarchyRow:
    """One line of the protocol hierarchy (like ``tshark -z io,phs``)."""

    level: int
    name: str
    packets: int
    bytes: int | None
    """Frame bytes for the first level, TCP (or, for ``dns (udp)``, UDP) payload bytes below, None when
    not known."""

    def to_json(self) -> dict[str, Any]:
        return {"level": self.level, "name": self.name, "packets": self.packets, "bytes": self.bytes}


@dataclass(frozen=True)
class Statistics:
    """Everything ``mailtrace stats`` reports, as plain data."""

    capture: dict[str, Any]
    protocols: tuple[ProtocolRow, ...]
    hierarchy: tuple[HierarchyRow, ...]
    servers: tuple[tuple[str, str, int], ...]
    """(server endpoint, protocol, sessions), most sessions first."""
    clients: tuple[tuple[str, int], ...]
    commands: dict[str, dict[str, int]]
    smtp_replies: dict[str, dict[str, int]]
    """``classes`` (2yz ...), ``categories`` (x0z ...), ``codes`` (250 ...), ``enhanced`` (2.1.5 ...)."""
    pop3_responses: dict[str, int]
    imap_responses: dict[str, dict[str, int]]
    messages: dict[str, Any]
    auth: dict[str, Any]
    addresses: dict[str, list[tuple[str, int]]]
    durations: dict[str, Summary]
    latency: dict[str, dict[str, Summary]]
    timeline: dict[str, Any]
    spam: dict[str, Any]
    approximate: tuple[str, ...] = ()
    """Sections whose counters were pruned (more distinct keys than ``StatsLimits.max_keys``)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Other sections added by the command (e.g. ``findings`` counts)."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "capture": self.capture,
            "protocols": [p.to_json() for p in self.protocols],
            "hierarchy": [h.to_json() for h in self.hierarchy],
            "servers": [{"server": s, "protocol": p, "sessions": n} for s, p, n in self.servers],
            "clients": [{"client": c, "sessions": n} for c, n in self.clients],
            "commands": self.commands,
            "smtp_replies": self.smtp_replies,
            "pop3_responses": self.pop3_responses,
            "imap_responses": self.imap_responses,
            "messages": self.messages,
            "auth": self.auth,
            "addresses": {
                k: [{"value": v, "count": n} for v, n in rows] for k, rows in self.addresses.items()
            },
            "durations": {k: v.to_json() for k, v in self.durations.items()},
            "latency": {
                p: {verb: s.to_json() for verb, s in verbs.items()} for p, verbs in self.latency.items()
            },
            "timeline": self.timeline,
            "spam": self.spam,
            "approximate": list(self.approximate),
        }
        out.update(self.extra)
        return out

    def rows(self) -> Iterator[tuple[str, str, str, Any]]:
        """Flat (section, item, metric, value) rows for CSV."""
        for key, value in self.capture.items():
            yield "capture", "", key, "; ".join(value) if isinstance(value, list) else value
        for p in self.protocols:
            for key, value in p.to_json().items():
                if key != "protocol":
                    yield "protocols", p.protocol, key, value
        for h in self.hierarchy:
            yield "hierarchy", "  " * h.level + h.name, "packets", h.packets
            if h.bytes is not None:
                yield "hierarchy", "  " * h.level + h.name, "bytes", h.bytes
        for server, protocol, n in self.servers:
            yield "servers", server, protocol, n
        for client, n in self.clients:
            yield "clients", client, "sessions", n
        for protocol, verbs in self.commands.items():
            for verb, n in verbs.items():
                yield "commands", protocol, verb, n
        for group, counts in self.smtp_replies.items():
            for key, n in counts.items():
                yield "smtp_replies", group, key, n
        for key, n in self.pop3_responses.items():
            yield "pop3_responses", "", key, n
        for group, counts in self.imap_responses.items():
            for key, n in counts.items():
                yield "imap_responses", group, key, n
        yield from _flatten("messages", self.messages)
        yield from _flatten("auth", self.auth)
        for kind, rows in self.addresses.items():
            for value, n in rows:
                yield "addresses", kind, value, n
        for protocol, duration in self.durations.items():
            for key, value in duration.to_json().items():
                yield "durations", protocol, key, value
        for protocol, by_verb in self.latency.items():
            for verb, latency in by_verb.items():
                for key, value in latency.to_json().items():
                    yield "latency", f"{protocol} {verb}", key, value
        width, start, counts = (
            self.timeline["bucket_seconds"],
            self.timeline["start"],
            self.timeline["counts"],
        )
        for i, n in enumerate(counts):
            yield "timeline", str(_r(start + i * width)) if start is not None else str(i), "sessions", n
        yield from _flatten("spam", self.spam)
        yield from _flatten("findings", self.extra.get("findings", {}))


def _flatten(section: str, value: Any, item: str = "") -> Iterator[tuple[str, str, str, Any]]:
    if isinstance(value, dict):
        for key, inner in value.items():
            if isinstance(inner, (dict, list)):
                yield from _flatten(section, inner, f"{item}.{key}" if item else str(key))
            else:
                yield section, item, str(key), inner
    elif isinstance(value, list):
        for entry in value:
            if isinstance(entry, dict) and "value" in entry and "count" in entry:
                yield section, item, str(entry["value"]), entry["count"]
            elif isinstance(entry, (list, tuple)) and len(entry) == 2:
                yield section, item, str(entry[0]), entry[1]
            else:
                yield section, item, "", entry
    else:
        yield section, item, "", value


class _Proto:
    """Running totals of one protocol."""

    __slots__ = (
        "decrypted",
        "ipv6",
        "packets",
        "payload",
        "sessions",
        "tls_bytes",
        "tls_packets",
        "tls_sessions",
    )

    def __init__(self) -> None:
        self.sessions = self.packets = self.payload = 0
        self.tls_sessions = self.tls_packets = self.tls_bytes = 0
        self.decrypted = self.ipv6 = 0


class StatsCollector:
    """A session consumer that counts; :meth:`result` gives the :class:`Statistics`."""

    def __init__(self, limits: StatsLimits | None = None) -> None:
        self.limits = limits = limits or StatsLimits()
        k, samples = limits.max_keys, limits.max_samples
        self.capture: CaptureStats | None = None
        self.elapsed = 0.0
        self.protocols: dict[str, _Proto] = {}
        self.servers = BoundedCounter(k)
        self.server_protocol: dict[str, str] = {}
        self.clients = BoundedCounter(k)
        self.commands: dict[str, BoundedCounter] = {}
        self.smtp_classes = BoundedCounter(k)
        self.smtp_categories = BoundedCounter(k)
        self.smtp_codes = BoundedCounter(k)
        self.smtp_enhanced = BoundedCounter(k)
        self.pop3 = BoundedCounter(k)
        self.imap_tagged = BoundedCounter(k)
        self.imap_untagged = BoundedCounter(k)
        self.imap_continuations = 0
        self.message_count = 0
        self.messages_complete = 0
        self.message_origins = BoundedCounter(k)
        self.message_sizes = Distribution(samples)
        self.attachment_count = 0
        self.attachment_bytes = 0
        self.attachment_types = BoundedCounter(k)
        self.attachment_sizes = Distribution(samples)
        self.b64_parts = 0
        self.b64_encoded = 0
        self.b64_decoded = 0
        self.auth_attempts = 0
        self.auth_outcomes = BoundedCounter(k)
        self.auth_mechanisms = BoundedCounter(k)
        self.auth_users = BoundedCounter(k)
        self.auth_cleartext = 0
        self.senders = BoundedCounter(k)
        self.recipients = BoundedCounter(k)
        self.sender_domains = BoundedCounter(k)
        self.recipient_domains = BoundedCounter(k)
        self.header_from = BoundedCounter(k)
        self.durations: dict[str, Distribution] = {}
        self.latency: dict[str, dict[str, Distribution]] = {}
        self.timeline = Timeline(limits.max_buckets)
        self.spf = BoundedCounter(k)
        self.dkim = BoundedCounter(k)
        self.dmarc = BoundedCounter(k)
        self.arc = BoundedCounter(k)
        self.dkim_domains = BoundedCounter(k)
        self.spam_flagged = 0
        self.messages_with_verdicts = 0
        self.rejections = BoundedCounter(k)
        self.greylist_deferrals = 0
        self.greylist = GreylistTracker(RuleContext(FindingsConfig()))
        """The findings' greylisting rule, run here for its counts (its findings are not kept)."""
        self.relay_denied = 0
        self.unknown_recipients = 0
        self.sessions = 0

    # ------------------------------------------------------------------ consumer interface
    def session(self, s: Session, facts: SessionFacts | None = None) -> None:
        """Count one session; ``facts``: its :class:`SessionFacts` when the findings already made them."""
        if facts is None or facts.session is not s:
            facts = SessionFacts(s)
        self.sessions += 1
        self._traffic(s, facts)
        self._commands(s)
        self._replies(s)
        self._messages(s, facts)
        self._auth(s, facts)
        self._envelopes(s)
        self._greylisting(s, facts)
        durations = self.durations.get(s.protocol)
        if durations is None:
            durations = self.durations[s.protocol] = Distribution(self.limits.max_samples)
        durations.add(s.duration)
        self.timeline.add(s.start)

    def end(self, stats: CaptureStats | None = None, elapsed: float = 0.0) -> None:
        self.capture = stats
        self.elapsed = elapsed

    # ------------------------------------------------------------------ per session
    def _traffic(self, s: Session, facts: SessionFacts) -> None:
        p = self.protocols.setdefault(s.protocol, _Proto())
        p.sessions += 1
        p.packets += s.packets
        p.payload += s.bytes_client + s.bytes_server
        if ":" in s.client.ip:
            p.ipv6 += 1
        if s.decrypted:
            p.decrypted += 1
        start = facts.tls_frame
        if start is not None:
            p.tls_sessions += 1
            rows, payload = s.rows_from(start)
            p.tls_packets += rows + s.rows_elided
            p.tls_bytes += payload
        server = str(s.server)
        self.servers.add(server)
        self.server_protocol.setdefault(server, s.protocol)
        self.clients.add(s.client.ip)

    def _commands(self, s: Session) -> None:
        counter = self.commands.setdefault(s.protocol, BoundedCounter(self.limits.max_keys))
        for c in s.commands:
            if c.verb:
                counter.add(f"UID {c.verb}" if c.uid else c.verb)

    def _replies(self, s: Session) -> None:
        latency = self.latency.setdefault(s.protocol, {})
        smtp = s.protocol == "smtp"
        for r in s.replies:
            status = r.status
            if smtp:
                if len(status) == 3 and status.isdigit():
                    self.smtp_classes.add(f"{status[0]}yz")
                    self.smtp_categories.add(f"x{status[1]}z")
                    self.smtp_codes.add(status)
                    enhanced = enhanced_code(r.lines[0] if r.lines else "")
                    if enhanced and enhanced[0] == status[0]:
                        self.smtp_enhanced.add(enhanced)
                    if status[0] in "45" and r.lines:
                        self._rejection(r.answers, status, r.text)
            elif s.protocol == "pop3":
                self.pop3.add(status)
            elif status == "*":
                words = (r.lines[0] if r.lines else "").split()
                word = words[1] if len(words) > 1 and words[0].isdigit() else (words[0] if words else "")
                self.imap_untagged.add(word.upper())
            elif status == "+":
                self.imap_continuations += 1
            else:
                self.imap_tagged.add(status)
            final = status not in ("*", "+") and not (smtp and status == "334")
            if final and r.answers is not None and r.latency is not None:
                # From the command to the first packet of its reply (Wireshark's response time), not
                # to the end of a long multi-line reply.
                sent = r.ts - r.latency
                first_ts = s.frame_time(r.first_frame)  # a bisection: a reply is a few of a session's rows
                first = r.ts if first_ts is None or first_ts > r.ts else first_ts
                verb = r.answers or "(continuation)"
                times = latency.get(verb)
                if times is None:  # not setdefault: that would make a Distribution for every reply
                    if len(latency) >= self.limits.max_latency_verbs and r.answers is not None \
                            and not any(c.known and c.verb == verb for c in s.commands):
                        verb = OTHER_VERBS
                        times = latency.get(verb)
                    if times is None:
                        times = latency[verb] = Distribution(self.limits.max_samples)
                times.add(max(0.0, first - sent))

    def _rejection(self, answers: str | None, code: str, text: str) -> None:
        if answers == "RCPT" and RELAY_TEXT.search(text):
            self.relay_denied += 1
            return
        if answers == "RCPT" and code.startswith("5") and UNKNOWN_USER.search(text):
            self.unknown_recipients += 1
            return
        if answers == "RCPT" and code in ("450", "451"):
            self.greylist_deferrals += 1
        category = spam_category(text)
        if category is not None:
            self.rejections.add(category)

    def _messages(self, s: Session, facts: SessionFacts) -> None:
        # messages past the session's limit are counted, by origin and completeness, not listed: they
        # count here too (their sizes and parts are not known)
        self.message_count += s.messages_dropped
        self.messages_complete += s.messages_dropped_complete
        for origin, n in s.messages_dropped_by_origin.items():
            self.message_origins.add(origin, n)
        for m in s.messages:
            summary = m.summary
            self.message_count += 1
            if getattr(summary, "complete", False):
                self.messages_complete += 1
            self.message_origins.add(m.origin)
            size = getattr(summary, "bytes", None)
            if isinstance(size, int):
                self.message_sizes.add(size)
            attachments = getattr(summary, "attachments", ()) or ()
            # an attached e-mail's bytes hold the files inside it, listed too: their bytes are counted once
            embedded = [f"{_field(a, 'path')}." for a in attachments
                        if is_embedded_message(str(_field(a, "content_type") or "").lower())]
            for attachment in attachments:
                self.attachment_count += 1
                ctype = _field(attachment, "content_type")
                nbytes = _field(attachment, "bytes")
                self.attachment_types.add(str(ctype or "unknown").lower())
                if isinstance(nbytes, int) and not str(_field(attachment, "path") or "").startswith(tuple(embedded)):
                    self.attachment_bytes += nbytes
                    self.attachment_sizes.add(nbytes)
            self._base64(summary)
            v = facts.verdicts(m)
            if not v.empty:
                self.messages_with_verdicts += 1
                for counter, results in (
                    (self.spf, v.spf),
                    (self.dkim, v.dkim),
                    (self.dmarc, v.dmarc),
                    (self.arc, v.arc),
                ):
                    for result in dict.fromkeys(results):
                        counter.add(result)
                for domain, _selector in v.dkim_signatures:
                    self.dkim_domains.add(domain)
                if v.spam_flag:
                    self.spam_flagged += 1
            sender = getattr(summary, "from_", None)
            if isinstance(sender, str) and sender:
                self.header_from.add(_address(sender))

    def _base64(self, summary: object) -> None:
        root = getattr(summary, "parts", None)
        walk = getattr(root, "walk", None)
        if not callable(walk):
            return
        for part in walk():
            if getattr(part, "encoding", None) == "base64" and getattr(part, "md5", None) is not None \
                    and not is_embedded_message(str(getattr(part, "content_type", ""))):  # hashed as sent, not decoded
                encoded, decoded = getattr(part, "encoded_bytes", None), getattr(part, "decoded_bytes", None)
                if isinstance(encoded, int) and isinstance(decoded, int):
                    self.b64_parts += 1
                    self.b64_encoded += encoded
                    self.b64_decoded += decoded

    def _auth(self, s: Session, facts: SessionFacts) -> None:
        for a in s.auth:
            self.auth_attempts += 1
            self.auth_outcomes.add(LOGIN_OUTCOMES[a.success])
            self.auth_mechanisms.add(f"{s.protocol} {a.mechanism}")
            if a.sent_username:
                self.auth_users.add(a.sent_username)
            if facts.in_clear(a.first_frame):
                self.auth_cleartext += 1
        for outcome in LOGIN_OUTCOMES.values():  # past the session's limit: tallied, not kept
            n = s.logins_dropped.get(outcome, 0)
            if n:
                self.auth_attempts += n
                self.auth_outcomes.add(outcome, n)
                if facts.tls_frame is None:  # the session never used TLS: they too were in the clear
                    self.auth_cleartext += n

    def _greylisting(self, s: Session, facts: SessionFacts) -> None:
        if s.protocol == "smtp":
            for _finding in self.greylist.observe(s, facts.rcpt_outcomes):
                pass  # the findings collector reports them; here only the tracker's counts matter

    def _envelopes(self, s: Session) -> None:
        if s.protocol != "smtp":
            return
        for c in s.commands:
            if c.verb == "MAIL":
                address = parse_address(c.argument, "FROM")[0] or "<>"
                self.senders.add(address)
                self.sender_domains.add(domain_of(address) or "(none)")
            elif c.verb == "RCPT":
                address = parse_address(c.argument, "TO")[0]
                self.recipients.add(address)
                self.recipient_domains.add(domain_of(address) or "(none)")

    # ------------------------------------------------------------------ result
    def result(self) -> Statistics:
        top = self.limits.top
        cap = self.capture
        mail_packets = sum(p.packets for p in self.protocols.values())
        capture: dict[str, Any] = {
            "files": [f.name for f in cap.files] if cap else [],
            "unreadable": [{"name": f.name, "error": f.error} for f in cap.files if f.error is not None]
            if cap else [],
            "packets": cap.packets if cap else None,
            "bytes": cap.bytes if cap else None,
            "tcp_packets": cap.tcp_packets if cap else None,
            "mail_packets": mail_packets,
            "sessions": self.sessions,
            "start": _r(cap.start) if cap and cap.start is not None else None,
            "end": _r(cap.end) if cap and cap.end is not None else None,
            "duration": _r(cap.end - cap.start)
            if cap and cap.start is not None and cap.end is not None
            else None,
            "analysis_seconds": round(self.elapsed, 3),
        }
        protocols = tuple(
            ProtocolRow(
                name,
                p.sessions,
                p.packets,
                p.payload,
                p.tls_sessions,
                p.tls_packets,
                p.tls_bytes,
                p.decrypted,
                p.ipv6,
            )
            for name, p in sorted(self.protocols.items())
        )
        width, start, counts = self.timeline.display()
        counters = {
            "servers": self.servers,
            "clients": self.clients,
            "senders": self.senders,
            "recipients": self.recipients,
            "smtp_codes": self.smtp_codes,
            "auth_users": self.auth_users,
        }
        return Statistics(
            capture=capture,
            protocols=protocols,
            hierarchy=tuple(self._hierarchy(protocols)),
            servers=tuple((s, self.server_protocol.get(s, "?"), n) for s, n in self.servers.top(top)),
            clients=tuple(self.clients.top(top)),
            commands={p: dict(c.top()) for p, c in sorted(self.commands.items()) if len(c)},
            smtp_replies={
                "classes": _ordered(self.smtp_classes, [f"{d}yz" for d in "12345"]),
                "categories": _ordered(self.smtp_categories, [f"x{d}z" for d in "012345"]),
                "codes": dict(sorted(self.smtp_codes.counts.items())),
                "enhanced": dict(sorted(self.smtp_enhanced.counts.items())),
            },
            pop3_responses=dict(self.pop3.top()),
            imap_responses={
                "tagged": _ordered(self.imap_tagged, ["OK", "NO", "BAD"]),
                "untagged": dict(self.imap_untagged.top()),
                "continuation": {"+": self.imap_continuations} if self.imap_continuations else {},
            },
            messages={
                "count": self.message_count,
                "complete": self.messages_complete,
                "by_origin": dict(self.message_origins.top()),
                "size": _summary_json(self.message_sizes),
                "attachments": {
                    "count": self.attachment_count,
                    "bytes": self.attachment_bytes,
                    "size": _summary_json(self.attachment_sizes),
                    "types": dict(self.attachment_types.top(top)),
                },
                "base64": (
                    {
                        "parts": self.b64_parts,
                        "encoded_bytes": self.b64_encoded,
                        "decoded_bytes": self.b64_decoded,
                        "overhead_bytes": self.b64_encoded - self.b64_decoded,
                        "overhead_percent": round(
                            (self.b64_encoded - self.b64_decoded) / self.b64_decoded * 100, 2
                        )
                        if self.b64_decoded
                        else None,
                    }
                    if self.b64_parts
                    else None
                ),
            },
            auth={
                "attempts": self.auth_attempts,
                "outcomes": dict(self.auth_outcomes.top()),
                "mechanisms": dict(self.auth_mechanisms.top()),
                "cleartext": self.auth_cleartext,
                "users": self.auth_users.top(top),
            },
            addresses={
                "senders": self.senders.top(top),
                "recipients": self.recipients.top(top),
                "sender_domains": self.sender_domains.top(top),
                "recipient_domains": self.recipient_domains.top(top),
                "header_from": self.header_from.top(top),
            },
            durations={p: s for p, d in sorted(self.durations.items()) if (s := d.summary()) is not None},
            latency={
                p: {v: s for v, d in sorted(verbs.items()) if (s := d.summary()) is not None}
                for p, verbs in sorted(self.latency.items())
                if verbs
            },
            timeline={"bucket_seconds": width, "start": start, "counts": counts},
            spam={
                "messages_with_verdicts": self.messages_with_verdicts,
                "spf": dict(self.spf.top()),
                "dkim": dict(self.dkim.top()),
                "dmarc": dict(self.dmarc.top()),
                "arc": dict(self.arc.top()),
                "dkim_domains": self.dkim_domains.top(top),
                "spam_flagged": self.spam_flagged,
                "rejections": dict(self.rejections.top()),
                "relay_denied": self.relay_denied,
                "unknown_recipients": self.unknown_recipients,
                "greylist_deferrals": self.greylist_deferrals,
                "greylisting": {
                    "deferrals": self.greylist_deferrals,
                    "retried_accepted": self.greylist.retried,
                    "not_retried": len(self.greylist.deferred),
                },
                "dnsbl": _dnsbl_json(cap.context if cap is not None else None),
            },
            approximate=tuple(name for name, c in counters.items() if c.approximate),
        )

    def _hierarchy(self, protocols: Iterable[ProtocolRow]) -> Iterator[HierarchyRow]:
        cap = self.capture
        rows = list(protocols)
        mail = sum(p.packets for p in rows)
        if cap is not None:
            yield HierarchyRow(0, "frames", cap.packets, cap.bytes)
            yield HierarchyRow(1, "tcp", cap.tcp_packets, None)
        level = 2 if cap is not None else 0
        for p in rows:
            yield HierarchyRow(level, p.protocol, p.packets, p.payload_bytes)
            if p.tls_sessions:
                yield HierarchyRow(level + 1, "tls", p.tls_packets, p.tls_bytes)
        if cap is None:
            return
        context = cap.context
        other_tcp = cap.tcp_packets - mail
        if context is not None:
            for name, packets, nbytes in (
                ("dns (tcp)", context.tcp_dns_packets, context.tcp_dns_bytes),
                ("ident", context.ident_packets, context.ident_bytes),
            ):
                if packets:
                    yield HierarchyRow(2, name, packets, nbytes)
                    other_tcp -= packets
        yield HierarchyRow(2, "other tcp", max(0, other_tcp), None)
        not_tcp = max(0, cap.packets - cap.tcp_packets)
        yield HierarchyRow(1, "not tcp", not_tcp, None)
        if context is not None and context.udp_packets:
            yield HierarchyRow(2, "dns (udp)", context.udp_packets, context.udp_bytes)
            if not_tcp > context.udp_packets:
                yield HierarchyRow(2, "other", not_tcp - context.udp_packets, None)


def _dnsbl_json(context: ContextStats | None) -> dict[str, Any] | None:
    """DNS blocklist look-ups the context layer saw; None when it was off (no DNS decoded)."""
    if context is None:
        return None
    zones = sorted(context.dnsbl_zones.items(), key=lambda kv: (-kv[1][0], kv[0]))
    return {
        "lookups": context.dnsbl_lookups,
        "listed": context.dnsbl_listed,
        "not_listed": context.dnsbl_not_listed,
        "unanswered": context.dnsbl_unanswered,
        "other": context.dnsbl_other,
        "by_zone": {zone: {"lookups": n, "listed": listed, "not_listed": clean}
                    for zone, (n, listed, clean) in zones},
    }


def _ordered(counter: BoundedCounter, order: list[str]) -> dict[str, int]:
    out = {k: counter.counts[k] for k in order if k in counter.counts}
    out.update({k: n for k, n in counter.top() if k not in out})
    return out


def _summary_json(d: Distribution) -> dict[str, Any] | None:
    s = d.summary()
    return s.to_json() if s is not None else None


def _field(obj: object, name: str) -> object:
    """An attribute of the new MIME summary's Attachment, or a key of the interim one's dicts."""
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


_ADDRESS_KEY = 256
"""From values up to this length are parsed once per process (:func:`_known_address`)."""


def _address(text: str) -> str:
    """The address of a From value, lower-cased (the value itself when it has none)."""
    return _known_address(text) if len(text) <= _ADDRESS_KEY else _parse_address(text)


def _parse_address(text: str) -> str:
    address = plain_mailbox(text)
    if address is None:
        address = parseaddr(text)[1]
    return address.lower() if address else text.strip()


_known_address = functools.lru_cache(maxsize=4096)(_parse_address)
"""``parseaddr`` is slow and the same senders come back message after message."""


def stats_document(stats: Statistics) -> dict[str, Any]:
    """The ``mailtrace stats --format json`` document."""
    return {"format": FORMAT_NAME, "version": FORMAT_VERSION, **stats.to_json()}
