"""The message detail view: one message, everything its headers, trace fields and MIME structure say.

:func:`message_details` builds rich renderables for one :class:`~mailtrace.session.MessageRecord`
(and its :class:`~mailtrace.session.Session`, for the envelope): an overview, the full header table
with each field's meaning, the Received chain as hops in path order, the MIME tree with sizes,
encoding overhead and attachment hashes, envelope versus header (Bcc), and the parser's defects.
The terminal view (``analyze --headers``) prints it; the HTML report shows the same sections from the
same data (:func:`header_rows`, :func:`hop_cells`, :func:`part_overhead`, :func:`defect_text`).

Everything shown comes from the sender and is hostile by assumption: it is never parsed as rich
markup (only ``Text`` objects carry it), control, bidi and zero-width characters are shown as
escapes, and long values are cut with the number of characters left out.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from email import policy as email_policy

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from mailtrace.envelope import EnvelopeView, compare_envelope
from mailtrace.extract import expected_partial, incomplete_reason
from mailtrace.findings.headers import verdicts
from mailtrace.headerinfo import ENGLISH, explain
from mailtrace.mime import Attachment, Part
from mailtrace.received import Hop, received_chain
from mailtrace.render.catalog import Words, has, text, words
from mailtrace.session import MessageRecord, Session

__all__ = ["ORIGINS", "HeaderRow", "defect_text", "header_rows", "hop_cells", "message_details",
           "part_overhead", "safe_text"]

ORIGINS = {
    "smtp-data": "SMTP DATA",
    "smtp-bdat": "SMTP BDAT",
    "pop3-retr": "POP3 RETR",
    "pop3-top": "POP3 TOP",
    "imap-fetch": "IMAP FETCH",
    "imap-append": "IMAP APPEND",
}
"""How each carrier is named in the title line."""


_X_PRIVATE = ENGLISH["x-*"]
_UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff]")
"""Controls (ESC included), bidi and zero-width characters, separators and lone surrogates."""
_MAX_DECODE = 64 * 1024


@dataclass(frozen=True, slots=True)
class _Styles:
    title: str = ""
    heading: str = ""
    label: str = ""
    dim: str = ""
    warn: str = ""
    bad: str = ""
    good: str = ""
    private: str = ""


_COLOUR = _Styles(title="bold", heading="bold cyan", label="bold", dim="dim", warn="yellow", bad="bold red",
                  good="green", private="magenta")
_PLAIN = _Styles()


def safe_text(text: str, limit: int | None = None) -> str:
    """Text from a message made harmless for a terminal: escapes instead of control characters, cut at limit."""
    more = 0
    if limit is not None and len(text) > limit:
        more = len(text) - limit
        text = text[:limit]
    text = _UNSAFE.sub(_escape, text.replace("\t", " "))
    return text + (f"… (+{more:,} characters)" if more else "")


def _escape(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def message_details(session: Session, record: MessageRecord, *, width: int | None = None, color: bool = True,
                    lang: str = "en") -> RenderableType:
    """Everything about one message, as rich renderables (print with any Console).

    ``width`` is the console width the view is laid out for (long values are cut to a few lines of
    it); ``color`` False gives plain text with no styles at all.
    """
    st = _COLOUR if color else _PLAIN
    limit = max(400, (width or 100) * 6)
    t = words(lang, "msg.")
    parts: list[RenderableType] = [_title(session, record, st, t), _overview(session, record, st, limit, t)]
    parts += _headers(record, st, limit, lang, t)
    parts += _received(record, st, limit, t)
    parts += _mime(record, st, t, lang, partial=expected_partial(session, record))
    parts += _envelope(compare_envelope(session, record, lang), st, t)
    parts += _defects(record, st, t, lang)
    return Group(*parts)


# --------------------------------------------------------------------------- sections


def _heading(text: str, st: _Styles) -> Text:
    return Text("\n" + text, style=st.heading)


def _title(session: Session, record: MessageRecord, st: _Styles, t: Words) -> Text:
    carrier = ORIGINS.get(record.origin, record.origin)
    frames = (t("frame", frame=record.first_frame) if record.first_frame == record.last_frame
              else t("frames", first=record.first_frame, last=record.last_frame))
    text = Text(t("title", n=record.index + 1, session=session.id), style=st.title)
    sender = t("sent_by_" + record.direction.value)
    text.append(f" · {carrier} · {frames} · {session.client} → {session.server} ({sender})")
    return text


def _overview(session: Session, record: MessageRecord, st: _Styles, limit: int, t: Words) -> Table:
    s = record.summary
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style=st.label, no_wrap=True)
    grid.add_column()

    def row(label: str, value: str | Text | None) -> None:
        if value is None or value == "":
            return
        grid.add_row(Text(label), value if isinstance(value, Text) else Text(safe_text(value, limit)))

    row("Subject", s.subject)
    row("From", s.from_)
    row("To", ", ".join(s.to))
    row("Cc", ", ".join(s.cc))
    row("Date", s.date)
    seen = _frame_time(session, record.first_frame)
    if seen is not None:
        row(t("seen"), t("seen_value", when=_utc(seen)))
    row("Message-ID", s.message_id)
    size = Text(t("bytes", n=s.bytes))
    reason = incomplete_reason(session, record)
    if reason is None:
        size.append(" · " + t("complete"), style=st.good)
    else:
        # a part the client asked for (POP3 TOP, an IMAP header fetch) is no loss: a warning, not an error
        partial = expected_partial(session, record)
        size.append(" · " + t("partial" if partial else "incomplete", reason=reason),
                    style=st.warn if partial else st.bad)
    if s.truncated:
        size.append(" · " + t("truncated"), style=st.warn)
    row(t("size"), size)
    row("SHA-256", s.sha256)
    row("MD5", s.md5)
    found = verdicts(s)
    if not found.empty:  # the spam defences' say on it (Authentication-Results, DKIM-Signature, X-Spam-*)
        failing = found.failures()
        row(t("verdicts"), Text(safe_text(found.text(), limit), style=st.bad if failing else st.good))
    for key, value in record.detail.items():
        if value not in (None, 0, "", [], {}):
            row(t("carrier", key=key), str(value))
    return grid


@dataclass(frozen=True, slots=True)
class HeaderRow:
    """One header field as the detail views show it (values as sent: each view makes them safe)."""

    index: int
    """1-based position in the header, in the order sent."""
    name: str
    value: str
    """Unfolded (line breaks removed)."""
    decoded: str | None
    """RFC 2047 decoded, when that differs from the value."""
    meaning: str
    """What the field is for (in the view's language)."""
    private: bool
    """An ``X-`` field."""


def header_rows(record: MessageRecord, lang: str = "en", limit: int | None = None) -> list[HeaderRow]:
    """The message's header fields in the order sent (the first ``limit``), each with its decoded form and
    its meaning."""
    rows = []
    for i, (name, value) in enumerate(record.summary.headers[:limit], 1):
        private = name.strip().lower().startswith("x-")
        meaning = explain(name, lang)
        if private and meaning != _X_PRIVATE:
            meaning = "private extension (X-): " + meaning
        unfolded = value.replace("\r", "").replace("\n", "")
        rows.append(HeaderRow(i, name, unfolded, _decoded(name, unfolded), meaning, private))
    return rows


def _headers(record: MessageRecord, st: _Styles, limit: int, lang: str, t: Words) -> list[RenderableType]:
    headers = record.summary.headers
    if not headers:
        return [_heading(t("headers.none"), st)]
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, header_style=st.label)
    table.add_column("#", justify="right", style=st.dim, no_wrap=True)
    table.add_column(t("headers.field"), max_width=26, overflow="fold")
    table.add_column(t("headers.value"), overflow="fold")
    for row in header_rows(record, lang):
        cell = Text(safe_text(row.value, limit))
        if row.decoded is not None:
            cell.append("\n= " + safe_text(row.decoded, limit), style=st.good)
        cell.append("\n↳ " + row.meaning, style=st.private if row.private else st.dim)
        name_style = st.private if row.private else st.label
        table.add_row(Text(str(row.index)), Text(safe_text(row.name, 200), style=name_style), cell)
    title = t("headers.title", n=len(headers))
    if "too many header fields" in record.summary.defects:
        title += t("headers.cut")
    return [_heading(title, st), table]


def _decoded(name: str, value: str) -> str | None:
    """The value as a mail client shows it (RFC 2047 decoded), when that differs from what was sent."""
    if "=?" not in value or len(value) > _MAX_DECODE:
        return None
    try:
        text = str(email_policy.default.header_factory(name, value))
    except Exception:  # the stdlib header parser on hostile input
        return None
    return text if text.strip() != value.strip() else None


def _received(record: MessageRecord, st: _Styles, limit: int, t: Words) -> list[RenderableType]:
    values = record.summary.header_values("received")
    if not values:
        return []
    hops = received_chain(values)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, header_style=st.label)
    table.add_column(t("received.hop"), justify="right", no_wrap=True)
    table.add_column(t("received.route"), overflow="fold", min_width=24)
    table.add_column("with / id", overflow="fold")
    table.add_column("for", overflow="fold")
    table.add_column(t("received.time"), no_wrap=True)
    table.add_column(t("received.delay"), justify="right", no_wrap=True)
    for hop in hops:
        index, sender, by, with_, id_, for_, when, delay = hop_cells(hop, limit)
        parsed = hop.from_ is not None or hop.by is not None
        route = Text(f"from {sender or '?'}\nby {by or '?'}" if parsed else sender)
        for note in hop.notes:
            route.append("\n⚠ " + safe_text(note, 200), style=st.warn)
        table.add_row(Text(index), route, Text("\n".join(x for x in (with_, id_) if x)), Text(for_), Text(when),
                      Text(delay, style=st.bad if hop.delay is not None and hop.delay < 0 else ""))
    return [_heading(t("received.title", n=len(hops)), st), table]


def hop_cells(hop: Hop, limit: int) -> list[str]:
    """A hop as display cells: index, sender (with its address), by, with, id, for, time (UTC), delay."""
    cut = min(limit, 200)
    if hop.from_ is None and hop.by is None:
        sender = safe_text(hop.raw, cut)
    else:
        sender = safe_text(hop.from_ or "", cut)
        detail = hop.from_detail or ""
        if hop.from_ip and hop.from_ip in (hop.from_ or ""):
            pass  # an address literal: nothing to add
        elif hop.from_ip and detail.split(" ")[0].lower() in ("", (hop.from_ or "").lower(), f"[{hop.from_ip}]"):
            sender += f" [{hop.from_ip}]"  # the usual case: the name the server saw is the one announced
        elif detail:
            sender += f" ({safe_text(detail, cut)})"
    when = _utc(hop.timestamp) if hop.timestamp is not None else safe_text(hop.date or "—", cut)
    delay = "" if hop.delay is None else f"{hop.delay:+,.0f} s"
    return [str(hop.index), sender, safe_text(hop.by or "", cut), safe_text(hop.with_ or "", cut),
            safe_text(hop.id or "", cut), safe_text(hop.for_ or "", cut), when, delay]


def _mime(record: MessageRecord, st: _Styles, t: Words, lang: str, *, partial: bool = False) -> list[RenderableType]:
    """The MIME tree; ``partial``: the client asked for part of the message (POP3 TOP, an IMAP header
    fetch), so a part that ends early is cut by request, not by a loss."""
    root = record.summary.parts
    by_path = {a.path: a for a in record.summary.attachments}

    def label(part: Part) -> Text:
        return _part_label(part, by_path.get(part.path), st, t, lang, partial=partial)

    tree = Tree(label(root), guide_style=st.dim)
    stack: list[tuple[Part, Tree]] = [(root, tree)]
    while stack:
        part, node = stack.pop()
        added = [(child, node.add(label(child))) for child in part.children]
        stack.extend(reversed(added))
    n, total = len(record.summary.attachments), len(root.walk())
    return [_heading(t("mime.title", parts=t("mime.parts", n=total), attachments=t("mime.attachments", n=n)), st),
            tree]


def _part_label(part: Part, attachment: Attachment | None, st: _Styles, t: Words, lang: str, *,
                partial: bool = False) -> Text:
    label = Text(part.path + " ", style=st.dim)
    label.append(safe_text(part.content_type, 200), style=st.label)
    facts = []
    if part.charset:
        facts.append(f"charset={safe_text(part.charset, 100)}")
    if part.encoding:
        facts.append(safe_text(part.encoding, 100))
    if part.disposition:
        facts.append(safe_text(part.disposition, 100))
    if facts:
        label.append("  " + ", ".join(facts))
    if part.filename is not None:
        label.append("  “" + safe_text(part.filename, 300) + "”", style=st.private)
    if part.is_leaf:
        label.append("\n" + t("part.sizes", encoded=part.encoded_bytes, decoded=part.decoded_bytes), style=st.dim)
        overhead = part_overhead(part, attachment)
        if overhead is not None:
            label.append(" " + t("part.overhead", percent=overhead), style=st.dim)
    elif part.children:
        label.append("  " + t("part.container", n=len(part.children), bytes=part.encoded_bytes), style=st.dim)
    if attachment is not None:
        label.append(f"\nmd5    {attachment.md5}\nsha256 {attachment.sha256}")
    if not part.complete:
        label.append("\n" + t("part.partial" if partial else "part.incomplete"), style=st.warn if partial else st.bad)
    for defect in part.defects:
        label.append("\n⚠ " + defect_text(defect, lang), style=st.warn)
    return label


def part_overhead(part: Part, attachment: Attachment | None = None) -> float | None:
    """Percent the transfer encoding added to a leaf part (base64 only; None otherwise)."""
    if attachment is not None:
        return attachment.overhead_percent
    if part.encoding != "base64" or part.decoded_bytes == 0:
        return None
    return (part.encoded_bytes - part.decoded_bytes) / part.decoded_bytes * 100.0


def _envelope(view: EnvelopeView, st: _Styles, t: Words) -> list[RenderableType]:
    out: list[RenderableType] = [_heading(t("envelope.title"), st)]
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style=st.label, no_wrap=True)
    grid.add_column()
    label = {"smtp": "MAIL FROM", "delivery": "Return-Path"}.get(view.source)
    if label is not None:
        sender = "<>" if view.mail_from == "" else safe_text(view.mail_from or "—", 300)
        grid.add_row(Text(label), Text(sender))
    grid.add_row(Text("From"), Text(safe_text(", ".join(view.header_from) or "—", 300)))
    if view.sender:
        grid.add_row(Text("Sender"), Text(safe_text(view.sender, 300)))
    if view.from_matches is not None:
        verdict = (Text(t("envelope.same"), style=st.good) if view.from_matches else
                   Text(t("envelope.differ_sender" if view.sender else "envelope.differ"), style=st.warn))
        grid.add_row(Text(""), verdict)
    out.append(grid)
    if view.recipients:
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, header_style=st.label)
        table.add_column(t("envelope.recipient"), overflow="fold")
        table.add_column("RCPT TO" if view.source == "smtp" else "Delivered-To", no_wrap=True)
        table.add_column(t("envelope.header"), no_wrap=True)
        table.add_column(t("envelope.meaning"), overflow="fold")
        for r in view.recipients:
            if not r.in_envelope:
                envelope = Text("—", style=st.dim)
            elif r.reply is not None:
                envelope = Text(t("envelope.yes_reply", reply=r.reply), style=st.good if r.accepted else st.bad)
            else:
                envelope = Text(t("envelope.yes"))
            note_style = st.bad if r.accepted is False else st.warn if r.note else ""
            table.add_row(Text(safe_text(r.address, 300)), envelope,
                          Text(", ".join(r.header_fields) or "—"), Text(r.note, style=note_style))
        out.append(table)
    bcc = view.bcc
    if view.source == "smtp":
        out.append(Text(t("envelope.bcc", bcc=", ".join(safe_text(b, 300) for b in bcc) if bcc else t("none"))))
    for note in view.notes:
        out.append(Text(note, style=st.dim))
    return out


def _defects(record: MessageRecord, st: _Styles, t: Words, lang: str) -> list[RenderableType]:
    defects = record.summary.defects
    if not defects:
        return [_heading(t("defects.none"), st)]
    out: list[RenderableType] = [_heading(t("defects.title", n=len(defects)), st)]
    for defect in defects[:100]:
        out.append(Text("⚠ " + defect_text(defect, lang), style=st.warn))
    if len(defects) > 100:
        out.append(Text(t("defects.more", n=len(defects) - 100), style=st.dim))
    return out


def defect_text(defect: str, lang: str = "en") -> str:
    """A parser defect, made safe, in the view's language: a stdlib defect name with its meaning in plain
    words, the summarizer's own phrases worded anew (``(part 1.2)`` kept as the part's path)."""
    phrase, sep, part = defect.partition(" (part ")
    where = f" ({text('defect.part', lang)} {part}" if sep else ""
    key = "defect." + phrase
    if phrase.endswith("Defect") and has(key, lang):
        shown = f"{phrase}{where}: {text(key, lang)}"
    else:
        if has(key, lang):
            shown = text(key, lang)
        elif (m := _CHARSET.fullmatch(phrase)) is not None:
            shown = text("defect.unknown charset", lang, charset=m.group(1))
        elif (m := _LONG_LINES.fullmatch(phrase)) is not None:
            count, limit, longest = (int(g.replace(",", "")) for g in m.groups())
            shown = text("defect.long lines", lang, n=count, limit=limit, longest=longest)
        elif (m := _FIELD_CUT.fullmatch(phrase)) is not None:
            kept, size = (int(g.replace(",", "")) for g in m.groups()[1:])
            shown = text("defect.field cut", lang, name=m.group(1), kept=kept, size=size)
        else:
            shown = phrase
        shown += where
    return safe_text(shown, 300)


_CHARSET = re.compile(r"unknown charset ('.*')")
_LONG_LINES = re.compile(r"([\d,]+) lines? over (\d+) characters \(longest ([\d,]+)\)")
_FIELD_CUT = re.compile(r"header field (\S+) cut to ([\d,]+) of ([\d,]+) bytes")
"""The phrases of :func:`mailtrace.mime.long_lines_defect`, :func:`mailtrace.mime.field_cut_defect` and the
unknown-charset defect, read back."""


# --------------------------------------------------------------------------- helpers


def _utc(ts: float) -> str:
    try:
        return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return f"{ts:.0f}"


def _frame_time(session: Session, frame: int) -> float | None:
    for row in session.rows:
        if row.frame == frame:
            return row.ts
        if row.frame > frame:
            break
    return None
