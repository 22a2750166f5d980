"""The JSON report (a contract: docs/json-format.md; add keys, never rename).

``--format json`` streams one document: the header, each session as it is finished, then the
capture summary — so memory stays flat however many sessions a capture holds. ``--format jsonl``
writes one session object per line.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

from mailtrace.findings.headers import verdicts
from mailtrace.jsontext import encode, encode_indented
from mailtrace.messageflows import FlowEntries
from mailtrace.mime import summary_to_json
from mailtrace.model import Anomaly, AuthAttempt, Command, Direction, Phase, Reply
from mailtrace.pipeline import CaptureStats
from mailtrace.protocols.sasl import hashcat_line
from mailtrace.protocols.smtp_codes import enhanced_code
from mailtrace.render.context import check_json, context_json
from mailtrace.session import MessageRecord, Session

FORMAT_NAME = "mailtrace-report"
FORMAT_VERSION = 1


def _round(ts: float) -> float:
    """``round(ts, 6)``, the rounding of every time stamp in the report.

    ``round`` with digits converts to decimal and back (0.7 µs); a capture's time stamps are mostly whole
    microseconds already, the double nearest to ``n / 10**6``, which it returns unchanged: that is checked with
    two float operations first. (Below 2**31 a double is within 0.12 µs of its nearest microsecond multiple, so
    nothing else can round to it; tests/test_json_round.py compares both on any float.)"""
    if -2147483648.0 < ts < 2147483648.0 and round(ts * 1e6) / 1e6 == ts:
        return ts
    return round(ts, 6)


def command_json(c: Command) -> dict[str, Any]:
    out: dict[str, Any] = {"frame": c.frame, "ts": _round(c.ts), "verb": c.verb, "argument": c.argument}
    if c.tag is not None:
        out["tag"] = c.tag
    if c.uid:
        out["uid"] = True
    if not c.known:
        out["known"] = False
    if c.sent_as is not None:
        out["verb_as_sent"] = c.sent_as
    return out


def reply_json(r: Reply) -> dict[str, Any]:
    """One reply; ``answers_frame`` is the frame of the command it answers, where the dissector says."""
    lines = r.lines
    latency = r.latency
    out: dict[str, Any] = {"frame": r.frame, "ts": _round(r.ts), "status": r.status, "text": r.text,
                           "answers": r.answers, "answers_frame": r.answers_frame,
                           "latency": round(latency, 6) if latency is not None else None}
    if r.lines_dropped:
        out["lines_dropped"] = r.lines_dropped
    if r.tag is not None:
        out["tag"] = r.tag
    if r.answers_lost:
        out["answers_lost"] = True
    if lines and r.status.isdigit():
        enhanced = enhanced_code(lines[0])
        if enhanced is not None:
            out["enhanced"] = enhanced
    if len(lines) > 1:
        out["lines"] = list(lines)
    return out


def auth_json(a: AuthAttempt, show_secrets: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"mechanism": a.mechanism, "username": a.username, "success": a.success,
                           "frame": a.frame, "first_frame": a.first_frame}
    if a.domain is not None:
        out["domain"] = a.domain
    for key, value in a.extra.items():
        if key not in out:
            out[key] = value
    if show_secrets and a.secret is not None:
        out["password"] = a.secret
        line = hashcat_line(a)
        if line:
            out["hashcat"] = line
    return out


def message_json(m: MessageRecord) -> dict[str, Any]:
    out: dict[str, Any] = {"index": m.index, "origin": m.origin, "first_frame": m.first_frame,
                           "last_frame": m.last_frame}
    out.update(summary_to_json(m.summary))
    found = verdicts(m.summary)
    out["verdicts"] = None if found.empty else found.to_json()
    if m.detail:
        out["carrier"] = m.detail
    return out


_PHASE = {phase: phase.value for phase in Phase}
_DIRECTION = {direction: direction.value for direction in Direction}
"""An enum's ``.value`` is a Python-level descriptor: a dict lookup is several times cheaper."""


STREAM_ENTRIES = 2_000
"""A session entry whose long arrays (commands, replies, logins, messages, anomalies) together hold more
than this many entries is encoded a piece at a time (:func:`write_session`): one IMAP session of 150,000
commands and replies made 32 MiB of dicts and two copies of 31 MiB of JSON text at once."""


class Deferred:
    """A long array of a session entry, encoded :data:`STREAM_ENTRIES` entries at a time when written
    (``session_json(..., deferred=True)``): ``make`` turns each item of ``items`` into its JSON value."""

    __slots__ = ("items", "make")

    def __init__(self, make: Callable[[Any], Any], items: Iterable[Any]) -> None:
        self.make = make
        self.items = items

    def chunks(self) -> Iterator[list[Any]]:
        chunk: list[Any] = []
        for item in self.items:
            chunk.append(self.make(item))
            if len(chunk) >= STREAM_ENTRIES:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


def _array(make: Callable[[Any], Any], items: Iterable[Any], deferred: bool) -> list[Any] | Deferred:
    return Deferred(make, items) if deferred else [make(item) for item in items]


def session_json(s: Session, show_secrets: bool = False, *, lang: str = "en", context: bool = True,
                 deferred: bool = False) -> dict[str, Any]:
    """The session object of the report (``context=False``: ``--no-context``, the context keys stay empty).

    ``deferred``: the long arrays are :class:`Deferred`, made while they are written (:func:`write_session`)."""
    record = dict(s.record)
    out: dict[str, Any] = {
        "id": s.id,
        "protocol": s.protocol,
        "client": {"ip": s.client.ip, "port": s.client.port},
        "server": {"ip": s.server.ip, "port": s.server.port},
        "tunnel": s.tunnel,
        "start": _round(s.start),
        "end": _round(s.end),
        "duration": round(s.duration, 6),
        "packets": s.packets,
        "stream": s.stream,
        "file": s.file,
        "first_frame": s.first_frame,
        "last_frame": s.last_frame,
        "tls": s.tls,
        "decrypted": s.decrypted,
        "close": s.close,
        "bytes": {"client": s.bytes_client, "server": s.bytes_server},
        "gaps": [{"direction": _DIRECTION[g.direction], "bytes": g.nbytes, "frame": g.frame} for g in s.gaps],
        "retransmissions": [{"frame": frame, "original": original or None}
                            for frame, original in sorted(s.retransmissions.items())],
        "phases": [{"name": _PHASE[p.phase], "first_frame": p.first_frame, "last_frame": p.last_frame}
                   for p in s.phases],
        # SASL responses are not commands
        "commands": _array(command_json, (c for c in s.commands if c.verb), deferred),
        "replies": _array(reply_json, s.replies, deferred),
        "helo": record.pop("helo", None),
        "user": s.user,
        "auth": _array(functools.partial(auth_json, show_secrets=show_secrets), s.auth, deferred),
        "transactions": record.pop("transactions", []),
        "messages": _array(message_json, s.messages, deferred),
        "anomalies": _array(anomaly_json, s.anomalies, deferred),
        "tls_info": s.tls_info,
        "context": [context_json(s, o, lang) for o in s.context] if context else [],
        "context_checks": [check_json(c, lang) for c in s.context_checks] if context else [],
    }
    record.pop("user", None)
    out.update(record)
    if s.notes:
        out["notes"] = list(s.notes)
    if s.rows_elided:
        out["rows_elided"] = s.rows_elided
    if s.events_dropped:
        out["events_dropped"] = s.events_dropped
    if s.listed_dropped:
        out["listed_dropped"] = s.listed_dropped
    if s.anomalies_dropped:
        out["anomalies_dropped"] = s.anomalies_dropped
    if s.notes_dropped:
        out["notes_dropped"] = s.notes_dropped
    if s.messages_dropped:
        out["messages_dropped"] = s.messages_dropped
        out["messages_dropped_by_origin"] = dict(s.messages_dropped_by_origin)
        out["messages_dropped_complete"] = s.messages_dropped_complete
    if s.logins_dropped:
        out["logins_dropped"] = dict(s.logins_dropped)
    if s.context_dropped and context:
        out["context_dropped"] = s.context_dropped
    return out


def anomaly_json(a: Anomaly) -> dict[str, Any]:
    return {"frame": a.frame, "kind": a.kind, "detail": a.detail, "direction": _DIRECTION[a.direction]}


def long_session(s: Session) -> bool:
    """Whether the session's entry is written a piece at a time (see :data:`STREAM_ENTRIES`)."""
    return len(s.commands) + len(s.replies) + len(s.auth) + len(s.messages) + len(s.anomalies) > STREAM_ENTRIES


def write_session(write: Callable[[str], object], s: Session, show_secrets: bool = False, *, lang: str = "en",
                  context: bool = True) -> None:
    """``write(dumps(session_json(s, ...)))`` with the same text, but a long session's arrays are made and
    encoded :data:`STREAM_ENTRIES` entries at a time: what it holds at once does not grow with them."""
    if not long_session(s):
        write(encode(session_json(s, show_secrets, lang=lang, context=context)))
        return
    entry = session_json(s, show_secrets, lang=lang, context=context, deferred=True)
    started = False  # the entry's "{" is written
    plain: dict[str, Any] = {}  # consecutive keys encoded together, the braces of their object dropped

    def flush() -> None:
        nonlocal started, plain
        if plain:
            write(("," if started else "{") + encode(plain)[1:-1])
            started = True
            plain = {}

    for key, value in entry.items():
        if not isinstance(value, Deferred):
            plain[key] = value
            continue
        flush()
        write(("," if started else "{") + encode(key) + ":[")
        started = True
        first = True
        for chunk in value.chunks():
            write(("" if first else ",") + encode(chunk)[1:-1])
            first = False
        write("]")
    flush()
    write("}")


def capture_json(stats: CaptureStats) -> dict[str, Any]:
    return {
        "files": [{"name": f.name, "format": f.filetype or None, "packets": f.packets, "bytes": f.bytes,
                   "start": _round(f.start) if f.start is not None else None,
                   "end": _round(f.end) if f.end is not None else None,
                   "truncated": f.truncated, "problems": f.problems, "snapped": f.snapped,
                   "error": f.error} for f in stats.files],
        "packets": stats.packets,
        "bytes": stats.bytes,
        "start": _round(stats.start) if stats.start is not None else None,
        "end": _round(stats.end) if stats.end is not None else None,
        "truncated": stats.truncated,
        "snapped": stats.snapped,
        "skipped": {"non_ip": stats.non_ip, "unknown_linktype": stats.unknown_linktype,
                    "truncated_headers": stats.truncated_headers},
        "tcp_packets": stats.tcp_packets,
        "mail_packets": stats.mail_packets,
        "sessions": stats.sessions,
        "context": _context_stats(stats),
    }


def _context_stats(stats: CaptureStats) -> dict[str, int]:
    c = stats.context
    if c is None:
        return {}
    return {"dns": c.dns, "ident": c.ident, "attributed": c.attributed, "unattributed": c.unattributed,
            "non_mail": c.non_mail, "unanswered": c.unanswered, "dropped": c.dropped}


def dumps(value: Any, indent: int | None = None) -> str:
    """JSON text that is always valid UTF-8 (see :mod:`mailtrace.jsontext`): compact, or indented by
    ``indent`` for a reader (the standard library's encoder)."""
    return encode(value) if indent is None else encode_indented(value, indent)


class JsonReportWriter:
    """Writes the report incrementally: header, sessions one by one, then the trailer."""

    def __init__(self, stream: IO[str], *, show_secrets: bool = False, indent: int | None = None,
                 lang: str = "en", context: bool = True) -> None:
        self.stream = stream
        self.show_secrets = show_secrets
        self.indent = indent
        self.lang = lang
        self.context = context
        self.count = 0

    def begin(self) -> None:
        self.stream.write(f'{{"format":"{FORMAT_NAME}","version":{FORMAT_VERSION},"sessions":[')

    def session(self, s: Session) -> None:
        self.stream.write(("," if self.count else "") + "\n")
        if self.indent is None:
            write_session(self.stream.write, s, self.show_secrets, lang=self.lang, context=self.context)
        else:
            self.stream.write(dumps(session_json(s, self.show_secrets, lang=self.lang, context=self.context),
                                    self.indent))
        self.count += 1

    def end(self, stats: CaptureStats, extra: dict[str, Any] | None = None) -> None:
        self.stream.write("\n],\"capture\":" + dumps(capture_json(stats), self.indent))
        for key, value in (extra or {}).items():
            self.stream.write(f",{json.dumps(key)}:")
            self._value(value)
        self.stream.write("}\n")

    def _value(self, value: Any) -> None:
        """``dumps(value)``, written; a long array entry by entry (the flows and findings of a big capture
        are tens of megabytes of JSON: never one string), the same text as ``dumps`` would make of it."""
        write = self.stream.write
        if isinstance(value, FlowEntries):
            items: Iterable[str] = value.texts()
        elif isinstance(value, list) and self.indent is None:
            items = (dumps(item) for item in value)
        else:
            write(dumps(value, self.indent))
            return
        write("[")
        for index, item in enumerate(items):
            write("," + item if index else item)
        write("]")


def jsonl_writer(stream: IO[str], show_secrets: bool = False, *, lang: str = "en",
                 context: bool = True) -> Callable[[Session], None]:
    def write(s: Session) -> None:
        write_session(stream.write, s, show_secrets, lang=lang, context=context)
        stream.write("\n")
        stream.flush()

    return write
