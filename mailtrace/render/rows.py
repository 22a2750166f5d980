"""Lines of a session's packet table, shared by the terminal and HTML views.

A message carried by many segments is one line (its size and subject), with the peer's pure ACKs
between those segments folded in: the same rule in every view, so both show the same lines.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Container, Iterable
from dataclasses import dataclass, field

from mailtrace.extract import expected_partial, header_only
from mailtrace.model import Anomaly, Command, Event, GapEvent, MessageEnd, Note, Opaque, Phase, Reply, TlsStart
from mailtrace.render.catalog import outcome_counts, text
from mailtrace.session import MessageRecord, PacketRow, Session, SessionLimits

__all__ = ["PROXY_PROTOCOLS", "PacketGroup", "group_rows", "left_out", "note_text", "partial_label", "placeholder_text",
           "protocol_column", "retransmission_mark"]


PROXY_PROTOCOLS = {"http-connect": "HTTP", "socks": "SOCKS"}
"""The Protocol column of a proxied session's handshake rows, by ``Session.tunnel``."""


def protocol_column(session: Session, item: PacketGroup, *, unended: Container[int] = ()) -> str:
    """A line's Protocol column, as Wireshark names what its packets carry: ``IMF`` for a message's end (or
    a body whose end is past the row limit: ``unended`` first frames), the mail protocol for its commands,
    replies and body, the TLS version for TLS records, ``HTTP``/``SOCKS`` for a proxy's handshake, ``TCP``
    for control packets, retransmitted copies and pieces of a TLS record a later frame completes."""
    events = item.events
    row = item.row
    if any(isinstance(e, MessageEnd) for e in events) or (item.body and any(f in unended for f in item.frames)):
        return "IMF"
    if item.body or any(isinstance(e, (Command, Reply)) for e in events):
        return session.protocol.upper()
    if any(isinstance(e, Opaque) or (isinstance(e, Note) and e.text.startswith("TLS ")) for e in events):
        return tls_protocol(session)
    if not events and row.frame in session.retransmissions:
        return "TCP"  # only a copy of bytes already seen, as Wireshark shows a retransmission
    proxy = PROXY_PROTOCOLS.get(session.tunnel or "")
    if proxy is not None and row.phase is Phase.SETUP and row.payload_len:
        return proxy  # the proxy's handshake (HTTP CONNECT, SOCKS) before the mail protocol begins
    if row.phase is Phase.TLS and not row.decrypted \
            and all(isinstance(e, (Anomaly, GapEvent, TlsStart)) for e in events):
        # TLS bytes: a record a later frame completes (Wireshark's "TCP segment of a reassembled PDU": the
        # first piece of a ClientHello longer than a segment too), or one cut short
        return tls_protocol(session) if any(isinstance(e, (Anomaly, GapEvent)) for e in events) else "TCP"
    if any(isinstance(e, Note) for e in events) or row.payload_len:
        return session.protocol.upper()
    return "TCP"


def tls_protocol(session: Session) -> str:
    """The TLS version as Wireshark's Protocol column names it (``TLSv1.2``)."""
    version = str((session.tls_info or {}).get("version") or "")
    return version.replace("TLS ", "TLSv").replace("SSL ", "SSLv") if version else "TLS"


def left_out(s: Session, limits: SessionLimits, lang: str = "en") -> list[tuple[str, dict[str, object]]]:
    """What the analyzer counted of a session but did not keep, as the notes under its table say it:
    ``(key, parameters)`` of the catalogue's ``ui.<key>`` (terminal) and ``html.<key>`` messages."""
    notes: list[tuple[str, dict[str, object]]] = []
    if s.rows_elided:
        notes.append(("rows_elided", {"n": s.rows_elided, "limit": limits.max_rows, "all": limits.max_rows_all}))
    if s.events_dropped:
        notes.append(("events_dropped", {"n": s.events_dropped, "limit": limits.max_events,
                                         "all": limits.max_events_all}))
    if s.listed_dropped:
        notes.append(("listed_dropped", {"n": s.listed_dropped, "all": limits.max_listed_bytes_all}))
    if s.messages_dropped:
        notes.append(("messages_dropped", {"n": s.messages_dropped, "limit": limits.max_messages}))
    if s.logins_dropped_total:
        notes.append(("logins_dropped", {"n": s.logins_dropped_total, "limit": limits.max_logins,
                                         "outcomes": outcome_counts(s.logins_dropped, lang)}))
    if s.notes_dropped:
        notes.append(("notes_dropped", {"n": s.notes_dropped, "limit": limits.max_notes}))
    if s.anomalies_dropped:
        notes.append(("anomalies_dropped", {"n": s.anomalies_dropped, "limit": limits.max_anomalies}))
    return notes


def partial_label(session: Session, record: MessageRecord, lang: str = "en") -> str | None:
    """``partial by request (TOP: the header and 3 body lines)`` for a message the client asked only part
    of (POP3 TOP, an IMAP header or byte-range fetch); None when it is complete or bytes were lost."""
    if not expected_partial(session, record):
        return None
    if record.origin == "pop3-top":
        lines = record.detail.get("lines")
        return text("ui.partial.top", lang, n=lines) if isinstance(lines, int) else text("ui.partial", lang)
    if header_only(record):
        return text("ui.partial.header", lang)
    return text("ui.partial.range", lang)


_PLACEHOLDERS = {
    "[password]": "ui.placeholder.password",
    "[SASL response]": "ui.placeholder.sasl",
    "[initial response]": "ui.placeholder.initial",
    "[digest]": "ui.placeholder.digest",
    "[credentials]": "ui.placeholder.credentials",
}
"""What the dissectors write in place of a secret (``PASS [password]``; mailtrace/protocols/*.py and
render/redact.py) → its words in the catalogue."""


def placeholder_text(line: str, lang: str = "en") -> str:
    """A redacted command line with the placeholder at its end in the language (``PASS [Passwort]``).
    Only for lines shown without ``--show-secrets``: with it the line is what the client sent."""
    if lang == "en":
        return line
    for placeholder, key in _PLACEHOLDERS.items():
        if line.endswith(placeholder):
            return line[: len(line) - len(placeholder)] + text(key, lang)
    return line


_ENVELOPE_NOTE = re.compile(r"message (\d+): “(.*)” from (.*)", re.S)
_STRUCTURE_NOTE = re.compile(r"message (\d+) structure: (.*)", re.S)
_MORE = re.compile(r"\+(\d{1,18}) more$")


def note_text(note: str, lang: str = "en") -> str:
    """An engine note in the language where it is one of the fixed summaries of an IMAP FETCH response
    (``message 1: “Hi” from Alice`` — ENVELOPE; ``message 2 structure: …`` — BODYSTRUCTURE, written by
    mailtrace/protocols/imap.py); other notes stay as the engine wrote them (English, docs/terminal.md)."""
    if lang == "en":
        return note
    m = _ENVELOPE_NOTE.fullmatch(note)
    if m is not None:
        return text("ui.note.envelope", lang, msg=m.group(1), subject=text("ui.quoted", lang, text=m.group(2)),
                    sender=m.group(3))
    m = _STRUCTURE_NOTE.fullmatch(note)
    if m is not None:
        parts = _MORE.sub(lambda more: text("ui.note.more", lang, n=int(more.group(1))), m.group(2))
        return text("ui.note.structure", lang, msg=m.group(1), parts=parts)
    return note


def retransmission_mark(session: Session, frame: int, lang: str = "en") -> str | None:
    """``[retransmission of frame 5]`` for a packet that only repeated bytes the stream already had (as
    Wireshark's [TCP Retransmission]); None for any other packet."""
    original = session.retransmissions.get(frame)
    if original is None:
        return None
    return text("ui.retransmission", lang, frame=original) if original else text("ui.retransmission.unknown", lang)


@dataclass(slots=True)
class PacketGroup:
    """One line of the packet table: a packet, or (as in the terminal view) a run of segments that
    carried one message's bytes in one direction, with the peer's pure ACKs in between folded in."""

    row: PacketRow
    """The first packet: its frame, time and direction are the line's."""
    rows: list[PacketRow]
    """The packets that carried data (``row`` first)."""
    events: list[Event]
    body: int = 0
    """Message bytes carried (0: not a message-data line)."""
    acks: list[PacketRow] = field(default_factory=list)
    """Pure ACKs of the other side folded into the line."""

    @property
    def frames(self) -> list[int]:
        return [r.frame for r in self.rows]

    def add(self, row: PacketRow) -> None:
        self.rows.append(row)
        self.events += row.events or ()
        self.body += row.message_bytes


def group_rows(rows: Iterable[PacketRow], breaks: Iterable[int] = ()) -> list[PacketGroup]:
    """Rows for the packet table: runs of message-data segments (one direction, the other side's
    pure ACKs between them) become one line, as the terminal view shows them.

    ``breaks`` are frames of rows drawn between the session's own (DNS/ident context): a run never
    spans one, so the table stays in frame order.
    """
    marks = sorted(breaks)
    out: list[PacketGroup] = []
    run: PacketGroup | None = None
    pending: list[PacketRow] = []

    def flush() -> None:
        nonlocal run
        if run is not None:
            out.append(run)
            run = None
        out.extend(PacketGroup(a, [a], list(a.events or ())) for a in pending)
        pending.clear()

    for row in rows:
        body = row.message_bytes > 0
        if run is not None:
            last = (pending or run.rows)[-1].frame
            i = bisect.bisect_right(marks, last)
            interrupted = i < len(marks) and marks[i] < row.frame
            if not interrupted:
                if body and row.direction is run.row.direction:
                    run.add(row)
                    run.acks += pending
                    pending.clear()
                    continue
                if row.is_pure_ack and row.direction is not run.row.direction:
                    pending.append(row)
                    continue
            flush()
        if body:
            run = PacketGroup(row, [row], list(row.events or ()), row.message_bytes)
            continue
        out.append(PacketGroup(row, [row], list(row.events or ())))
    flush()
    return out
