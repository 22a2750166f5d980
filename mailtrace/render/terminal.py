"""The terminal views: a captioned packet table per session (default) and one line per session (--list).

The table reads like a textbook Wireshark trace: columns No. | Time | Source | Destination | Proto |
Info, with a caption row before each step (from :mod:`mailtrace.render.captions`) that starts with
the phase name. No. is the capture's frame number and Time counts seconds from the capture's first
packet, so every row can be found in Wireshark (the header names the ``tcp.stream eq N`` filter).

Renderers read the session model only; they never look at packets. Each session is written as soon
as it arrives, so memory stays flat and a long capture shows results while it is read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import IO, Any

from rich.cells import cell_len, set_cell_size
from rich.text import Span, Text

from mailtrace.capture.decode import TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, linktype_text
from mailtrace.extract import missing_known
from mailtrace.filters import STATUSES, SessionFilter, sealed, session_status
from mailtrace.model import Anomaly as AnomalyEvent
from mailtrace.model import (
    AuthAttempt,
    BodyData,
    Command,
    Direction,
    GapEvent,
    MessageEnd,
    Note,
    Opaque,
    Phase,
    Reply,
    TlsStart,
)
from mailtrace.pipeline import CaptureStats
from mailtrace.protocols.sasl import hashcat_line
from mailtrace.render.captions import Step, steps
from mailtrace.render.catalog import fmt_num, has, localize_number, text
from mailtrace.render.context import ContextBlock, check_text, context_blocks, row_info, row_proto
from mailtrace.render.explain import ReplyExplanation, explain_challenge, explain_smtp_reply, once_each
from mailtrace.render.output import Output, clean, utc
from mailtrace.render.rows import (
    PacketGroup,
    group_rows,
    left_out,
    note_text,
    partial_label,
    placeholder_text,
    protocol_column,
    retransmission_mark,
)
from mailtrace.session import MessageRecord, PacketRow, Session, SessionLimits

LATENCY_SHOWN = 0.1
"""Replies slower than this (seconds) show how long the server took."""
NARROW = 100
"""Below this width the table's columns are one space apart instead of two."""
PHASE_WIDTH = 11
"""Width of the phase name that starts a caption row (``negotiation``; the catalogue's longest)."""

_FLAG_NAMES = ((TCP_FIN, "FIN"), (TCP_SYN, "SYN"), (TCP_RST, "RST"), (0x08, "PSH"), (TCP_ACK, "ACK"),
               (0x20, "URG"), (0x40, "ECE"), (0x80, "CWR"))

def phase_width(lang: str) -> int:
    """Width of the label column of caption rows: the longest phase name in the language."""
    labels = [text("phase." + p.value, lang) for p in Phase] + [text("phase.dns", lang), text("phase.ident", lang)]
    return max(PHASE_WIDTH, *(len(label) for label in labels))


def tcp_flags(flags: int) -> str:
    """Flags in Wireshark's order and spelling: ``SYN, ACK``; ``FIN, PSH, ACK``."""
    return ", ".join(name for bit, name in _FLAG_NAMES if flags & bit)


def seconds(value: float) -> str:
    """A duration short and exact enough to read: ``0.033``, ``4.50``, ``125``."""
    if round(value, 3) < 10:  # the unit is chosen after rounding: 9.9996 is "10.00", not "10.000"
        return f"{value:.3f}"
    if round(value, 2) < 100:
        return f"{value:.2f}"
    return f"{value:.0f}"


def duration(value: float, lang: str = "en") -> str:
    """A session's or capture's length with its unit: ``32.14 s`` up to 1,000 s, then minutes, hours
    and days (a capture spliced from two years, or one frame with a wrong clock, is ``5,118 d``, not
    ``442200620 s``). It fits the list's duration column (8 cells)."""
    if round(value) < 1000:  # each unit is chosen after rounding: 999.6 s is "16.7 min", not "1000 s"
        return localize_number(seconds(value), lang) + " s"
    for unit, length in (("min", 60), ("h", 3600)):
        if round(value / length, 1) < 100:
            return localize_number(f"{value / length:.1f}", lang) + " " + unit
    days = value / 86_400
    return localize_number(f"{days:.1f}" if round(days, 1) < 100 else f"{days:,.0f}", lang) + " d"


class TimeBase:
    """Where Time 0 is: the first packet of the capture file a session came from."""

    def __init__(self, stats: CaptureStats | None) -> None:
        self.stats = stats

    def origin(self, session: Session) -> float:
        if self.stats is not None:
            for f in reversed(self.stats.files):
                if f.name == session.file and f.start is not None:
                    return f.start
        return session.start


# --------------------------------------------------------------------------- session header


def status_word(session: Session, lang: str) -> str:
    return text("ui.status." + session_status(session), lang)


def header_facts(session: Session, lang: str) -> list[tuple[str, str]]:
    """The facts of the header line, each with the style it is shown in."""
    t = _t(lang)
    facts: list[tuple[str, str]] = [
        (utc(session.start) + " UTC", ""),
        (duration(session.duration, lang), ""),
        (t("ui.close." + session.close) if has("ui.close." + session.close, lang) else session.close, ""),
    ]
    status = session_status(session)
    facts.append((t("ui.status." + status), "status." + status))
    facts.append((user_text(session, lang), ""))
    facts.append((tls_text(session, lang), "tls" if session.tls != "none" else ""))
    if session.messages or not sealed(session):
        facts.append((t("ui.messages", n=session.message_total), ""))
    else:
        facts.append((t("ui.messages_sealed"), "tls"))
    facts.append((t("ui.packets.count", n=session.packets), ""))
    if session.gaps:
        facts.append((t("ui.gaps", n=len(session.gaps)), "gap"))
    if session.anomalies:
        facts.append((t("ui.anomalies", n=len(session.anomalies)), "anomaly"))
    return facts


def login_outcome(session: Session) -> str | None:
    """``ok`` (an attempt was accepted), ``failed`` (refused), ``unknown`` (the reply is not in the
    capture), None without attempts. Without an accepted attempt the last one decides; an exchange the
    client cancelled ("*") is no attempt: the server checked nothing."""
    attempts = [a for a in session.auth if not a.cancelled]
    if session.logins_dropped.get("succeeded"):  # an accepted one past the session's limit
        return "ok"
    if not attempts:
        return None
    if any(a.success for a in attempts):
        return "ok"
    return "unknown" if attempts[-1].success is None else "failed"


def user_text(session: Session, lang: str) -> str:
    user = session.user
    if user is None:
        return text("ui.login_sealed" if sealed(session) else "ui.no_login", lang)
    outcome = login_outcome(session)
    if outcome == "failed":
        return text("ui.user_failed", lang, user=user)
    if outcome == "unknown":
        return text("ui.user_unknown", lang, user=user)
    return text("ui.user", lang, user=user)


def tls_text(session: Session, lang: str) -> str:
    if session.tls == "none":
        return text("ui.no_tls", lang)
    info = session.tls_info or {}
    parts = [str(info[k]) for k in ("version", "cipher") if info.get(k)]
    if info.get("sni"):
        parts.append(text("tls.sni", lang, sni=info["sni"]))
    parts.append(text("ui.decrypted" if session.decrypted else "ui.not_decrypted", lang))
    mode = text("ui.tls.mode." + session.tls, lang)
    return f"{mode}: " + ", ".join(parts)


def tls_offered(info: dict[str, Any], lang: str) -> str:
    """What the ClientHello offered: its versions (GREASE left out) and how many cipher suites."""
    versions = [str(v) for v in info.get("client_versions") or ()]
    n = info.get("cipher_suites_offered")
    if not versions and not n:
        return ""
    shown = ", ".join(versions) or "?"
    count = n if isinstance(n, int) else 0
    return text("ui.tls.offered", lang, versions=shown, n=count)


MAX_SAN_SHOWN = 3
"""subjectAltName entries shown in the header; the rest are counted."""


def tls_details(session: Session, lang: str) -> list[tuple[str, str]]:
    """The TLS facts the JSON and HTML reports have, compactly, each with its style: handshake time,
    bytes, ALPN, the server certificate (subject, issuer, validity, SAN, chain length), alerts."""
    info = session.tls_info
    if session.tls == "none" or not isinstance(info, dict):
        return []
    out: list[tuple[str, str]] = []
    duration = info.get("handshake_seconds")
    if isinstance(duration, (int, float)):
        shown = localize_number(f"{duration * 1000:.1f} ms" if duration < 1 else f"{seconds(duration)} s", lang)
        out.append((text("ui.tls.handshake", lang, duration=shown), ""))
    offered = tls_offered(info, lang)
    if offered:
        out.append((offered, ""))
    if info.get("resumed"):
        out.append((text("ui.tls.resumed", lang), ""))
    sizes = info.get("bytes")
    if isinstance(sizes, dict) and (sizes.get("client") or sizes.get("server")):
        out.append((text("ui.tls.bytes", lang, client=fmt_num(sizes.get('client') or 0, lang),
                        server=fmt_num(sizes.get('server') or 0, lang)), ""))
    if info.get("alpn_selected"):
        out.append((text("ui.tls.alpn", lang, alpn=info["alpn_selected"]), ""))
    elif info.get("alpn"):
        out.append((text("ui.tls.alpn_offered", lang, alpn=", ".join(map(str, info["alpn"]))), ""))
    certs = [c for c in info.get("certificates") or () if isinstance(c, dict)]
    server = [c for c in certs if c.get("sent_by") != "client"]
    if server:
        out += _certificate(server[0], len(server), session.start, lang)
    elif info.get("version") == "TLS 1.3" and not info.get("decrypted") and info.get("established"):
        out.append((text("ui.tls.no_cert", lang), "dim"))
    client = [c for c in certs if c.get("sent_by") == "client"]
    if client:
        out.append((text("ui.tls.client_cert", lang, subject=client[0].get("subject") or "?"), ""))
    for alert in info.get("alerts") or ():
        if isinstance(alert, dict) and alert.get("description") != "close_notify":
            side = text("side." + str(alert.get("direction")), lang) \
                if has("side." + str(alert.get("direction")), lang) else str(alert.get("direction"))
            level, description = alert.get("level") or "?", alert.get("description") or "?"
            line = text("ui.tls.alert", lang, level=level, description="" if description == level else description,
                        side=side)
            out.append((" ".join(line.split()),  # an encrypted alert: "encrypted" once, not level and name
                        "tone.fail" if level == "fatal" else "tone.warn"))
    return out


def _certificate(cert: dict[str, Any], chain: int, when: float, lang: str) -> list[tuple[str, str]]:
    """The server's own certificate: subject, issuer (or self-signed), validity, SAN; the chain's length."""
    subject = str(cert.get("subject") or "?")
    issuer = str(cert.get("issuer") or "?")
    out = [(text("ui.tls.cert", lang, subject=subject), "tls")]
    out.append((text("ui.tls.self_signed", lang) if issuer == subject else text("ui.tls.issuer", lang, issuer=issuer),
                ""))
    start, end = str(cert.get("not_before") or ""), str(cert.get("not_after") or "")
    if start or end:
        validity = text("ui.tls.valid", lang, start=start[:10] or "?", end=end[:10] or "?")
        style = ""
        moment = utc(when, millis=False).replace(" ", "T") + "Z"  # the same ISO form as the dates
        if end and moment > end:
            validity += " (" + text("ui.tls.expired", lang) + ")"
            style = "tone.warn"
        elif start and moment < start:
            validity += " (" + text("ui.tls.not_yet", lang) + ")"
            style = "tone.warn"
        out.append((validity, style))
    names = [str(n) for n in cert.get("san") or ()]
    if names:
        shown = ", ".join(names[:MAX_SAN_SHOWN])
        if len(names) > MAX_SAN_SHOWN:
            shown += " " + text("ui.tls.more", lang, n=len(names) - MAX_SAN_SHOWN)
        out.append((text("ui.tls.san", lang, names=shown), ""))
    out.append((text("ui.tls.chain", lang, n=chain), ""))
    return out


def _t(lang: str) -> Callable[..., str]:
    def t(key: str, **params: object) -> str:
        return text(key, lang, **params)

    return t


# --------------------------------------------------------------------------- Info cells


def _collapse(rows: tuple[PacketRow, ...], hide_acks: bool) -> list[PacketGroup]:
    """Lines for display (:func:`group_rows`); ``hide_acks`` leaves out the pure ACKs not folded in."""
    return [g for g in group_rows(rows) if not (hide_acks and g.body == 0 and g.row.is_pure_ack)]


def _line_bytes(reply: Reply) -> int:
    """The wire length of a response's first line (``+OK 6668 octets`` and its CRLF)."""
    words = [w for w in (reply.tag, reply.status, *reply.lines[:1]) if w]
    return len(" ".join(words).encode("utf-8", "surrogateescape")) + 2


class _InfoWriter:
    """Builds the Info cell of a display line."""

    def __init__(self, session: Session, lang: str, show_secrets: bool) -> None:
        self.session = session
        self.lang = lang
        self.show_secrets = show_secrets
        self.last_verb: str | None = None
        self.records: dict[tuple[int, str], list[MessageRecord]] = {}
        for record in session.messages:
            self.records.setdefault((record.last_frame, record.origin), []).append(record)
        self.continued: dict[int, int] = {}
        """Frame → the frame where the line that began in it was completed."""
        ends: set[tuple[int, str]] = set()
        self.literal_ends: set[int] = set()
        """Frames of the CRLF that closes an APPEND after its literal (no event of their own)."""
        appended = False
        lonely: dict[int, int] = {}
        spanning: list[Reply] = []
        for row in session.rows:
            if appended and row.direction is Direction.CLIENT and row.payload_len and not row.events:
                self.literal_ends.add(row.frame)
            if row.payload_len and row.direction is Direction.CLIENT:
                appended = False
            if row.payload_len and not row.events and not row.message_bytes:  # a row of its own (group_rows)
                lonely[row.frame] = row.payload_len
            for event in row.events or ():
                if isinstance(event, (Command, Reply)) and 0 < event.first_frame < event.frame:
                    self.continued.setdefault(event.first_frame, event.frame)
                    if isinstance(event, Reply):
                        spanning.append(event)
                elif isinstance(event, MessageEnd):
                    ends.add((event.frame, event.origin))
                    appended = event.origin == "imap-append"
        self.status_alone = {r.first_frame: r for r in spanning
                             if 0 <= lonely.get(r.first_frame, -9) - _line_bytes(r) <= 1}  # 1: a trailing blank
        """First frame → a response whose first line came alone in it, the rest in later segments (POP3
        ``+OK 6668 octets``, then the RETR body; ``+OK``, then the UIDL listing): the first line goes on
        its own row, as tshark shows it, not "17 bytes, continued in frame 43"; the rest on the last."""
        self.unended: dict[int, MessageRecord] = {}
        """First frame → a message whose end is on no listed row (past the row limit): its body row
        says what the message was, since no row with its end will."""
        for record in session.messages:
            if (record.last_frame, record.origin) not in ends:
                self.unended.setdefault(record.first_frame, record)

    def t(self, key: str, **params: object) -> str:
        return text(key, self.lang, **params)

    def proto(self, item: PacketGroup) -> str:
        return protocol_column(self.session, item, unended=self.unended)

    def info(self, item: PacketGroup) -> Text:
        row = item.row
        session = self.session
        client = row.direction is Direction.CLIENT
        out = Text()
        if row.decrypted:
            out.append(self.t("ui.decrypted.mark") + " ", "decrypted")
        pieces = self._pieces(item)
        readable = [p for p in pieces if p[2]]
        sport, dport = (session.client.port, session.server.port) if client else \
            (session.server.port, session.client.port)
        control = row.flags & (TCP_SYN | TCP_FIN | TCP_RST) and not row.payload_len
        if control:  # a SYN/FIN/RST shows its flags even when events ended on it
            out.append(f"{sport} → {dport} [{tcp_flags(row.flags)}]", "dim")
            if pieces:
                out.append(" | ", "dim")
        elif readable:
            out.append("C: " if client else "S: ", "client" if client else "server")
        elif not pieces:
            if not row.payload_len:
                out.append(f"{sport} → {dport} [{tcp_flags(row.flags)}]", "dim")
                return out
            if row.frame in self.literal_ends:
                out.append("C: " + self.t("ui.literal_end", verb="APPEND", n=row.payload_len), "dim")
                return out
            mark = retransmission_mark(session, row.frame, self.lang)
            if mark is not None:
                out.append(("C: " if client else "S: ") + self.t("ui.data", n=row.payload_len) + " " + mark, "dim")
                return out
            alone = self.status_alone.get(row.frame)
            if alone is not None:
                out.append("C: " if client else "S: ", "client" if client else "server")
                out.append_text(self._reply(alone, "first"))
                return out
            follow = self.continued.get(row.frame)
            key = "ui.continued" if follow is not None else "ui.data"
            out.append(("C: " if client else "S: ") + self.t(key, n=row.payload_len, frame=follow), "dim")
            return out
        for i, (piece, style, _) in enumerate(pieces[:MAX_INFO_PIECES]):
            if i:
                out.append(" | ", "dim")
            out.append_text(piece) if isinstance(piece, Text) else out.append(clean(piece), style)
        if len(pieces) > MAX_INFO_PIECES:
            out.append(" | " + self.t("ui.more_pieces", n=len(pieces) - MAX_INFO_PIECES), "dim")
        if row.payload_len and row.flags & (TCP_FIN | TCP_RST):
            out.append(f" [{tcp_flags(row.flags & (TCP_FIN | TCP_RST))}]", "dim")
        return out

    # ------------------------------------------------------------------ events
    def _pieces(self, item: PacketGroup) -> list[tuple[Text | str, str, bool]]:
        """(text, style, readable) per event; ``readable`` marks mail-protocol content (C:/S:)."""
        pieces: list[tuple[Text | str, str, bool]] = []
        body_what = next((e.what for e in item.events if isinstance(e, BodyData)), "message")
        ended = False
        notes: list[str] = []
        opaque = 0
        anomalies: dict[str, str] = {}
        """kind → its first detail: repeats of one kind share a piece, after the row's content."""
        repeats: Counter[str] = Counter()
        peer_gaps: list[tuple[Text | str, str, bool]] = []
        latency_tail = ""
        latency_anchor: tuple[Text | str, str, bool] | None = None

        def flush_notes() -> None:
            nonlocal opaque
            counted = Counter(notes)
            for note in dict.fromkeys(notes):
                n = counted[note]
                worded = note_text(note, self.lang)
                shown = worded if n == 1 else f"{worded} ×{n}"
                pieces.append((shown, "tls" if note.startswith("TLS") else "", False))
            notes.clear()
            if opaque:
                pieces.append((self.t("ui.opaque", n=opaque), "tls", False))
                opaque = 0

        start = item.frames[0] if item.frames else item.row.frame
        lead = 0
        """Pieces of the lines that began at or before the run's first body bytes: the body goes after
        them (``* 1 FETCH (BODY[TEXT] {5400})`` before its literal), the rest after the body."""
        for event in item.events:
            if isinstance(event, Note):
                if not event.text.startswith("IDLE woken: "):  # the reply itself is on the row
                    notes.append(event.text)
                continue
            if isinstance(event, Opaque):
                opaque += event.nbytes
                continue
            if notes or opaque:
                flush_notes()
            if isinstance(event, Command):
                pieces.append((self._command(event), "", True))
            elif isinstance(event, Reply):
                if self.status_alone.get(event.first_frame) is event:  # the first line has a row of its own
                    if len(event.lines) > 1:
                        pieces.append((self._reply(event, "rest"), "", True))
                    else:  # the line is all said: the latency, measured to the end, goes with what ended it
                        latency = self._latency(event)
                        latency_tail = f" ({latency})" if latency else ""
                        latency_anchor = pieces[-1] if pieces else None  # what ended it: the message, say
                    continue
                pieces.append((self._reply(event), "", True))
            if isinstance(event, (Command, Reply)):
                if len(pieces) == lead + 1 and 0 < event.first_frame <= start:
                    lead = len(pieces)
                continue
            if isinstance(event, AuthAttempt):
                tone = "tone.ok" if event.success else ("dim" if event.cancelled else "tone.fail")
                pieces.append((self._auth(event), tone, True))
            elif isinstance(event, MessageEnd):
                record = self._record(event)
                ended = True
                pieces.append((self._message(record, item), "message", True))
            elif isinstance(event, GapEvent):
                side = self.t("side.client" if event.direction is Direction.CLIENT else "side.server")
                gap = (self.t("ui.gap", n=event.nbytes, side=side), "gap", False)
                if event.direction is item.row.direction:
                    pieces.append(gap)
                else:  # the peer's bytes, found missing when this packet acknowledged them: after its own words
                    peer_gaps.append(gap)
            elif isinstance(event, AnomalyEvent):
                repeats[event.kind] += 1
                anomalies.setdefault(event.kind, event.detail)
            elif isinstance(event, TlsStart):
                continue
        flush_notes()
        pieces += peer_gaps
        unended = next((f for f in item.frames if f in self.unended), None) if item.body and not ended else None
        if unended is not None:  # the message's end is past the row limit: say here what it was
            record = self.unended.pop(unended)
            pieces.insert(0, (self._message(record, item, listed=False), "message", True))
        elif item.body and not ended:
            what = self.t("ui.what." + body_what) if has("ui.what." + body_what, self.lang) else body_what
            label = self.t("ui.body", what=what, n=item.body)
            if len(item.frames) > 1:
                label += " " + self.t("ui.segments", n=len(item.frames), first=item.frames[0],
                                      last=item.frames[-1])
            pieces.insert(lead, (label, "message", True))
        if latency_tail:  # on the piece the response ended with (a body label made above when none was)
            at = next((i for i, p in enumerate(pieces) if p is latency_anchor), None) if latency_anchor else \
                next((i for i, p in enumerate(pieces) if p[2]), None)
            if at is None:
                pieces.append((latency_tail.strip(), "dim", True))
            else:
                piece, style, readable = pieces[at]
                text_piece = piece if isinstance(piece, Text) else Text(clean(piece), style)
                pieces[at] = (text_piece + Text(latency_tail, "dim"), style, readable)
        for kind, detail in anomalies.items():
            n = repeats[kind]
            label = self.t("ui.anomaly.item", kind=kind if n == 1 else f"{kind} ×{n}", detail=detail)
            pieces.append((label, "anomaly", False))
        return pieces

    def explanations(self, item: PacketGroup) -> list[str]:
        """Lines under a row that explain it the way the lecture does (see :mod:`render.explain`)."""
        smtp = self.session.protocol == "smtp"
        found: list[ReplyExplanation] = []
        for event in item.events:
            if isinstance(event, Reply):
                explained = explain_smtp_reply(event, self.lang) if smtp else explain_challenge(event, self.lang)
                if explained is not None:
                    found.append(explained)
        return [line for explained in once_each(found, self.lang) for line in explained.lines]

    def _command(self, c: Command) -> Text:
        if c.verb:
            self.last_verb = c.verb
        words = [w for w in (c.tag, c.shown_verb, c.argument) if w]
        line = " ".join(words)
        if not self.show_secrets:  # the dissectors' placeholder for a secret, in the language
            line = placeholder_text(line, self.lang)
        return Text(clean(line), "client")

    def _reply(self, r: Reply, part: str = "all") -> Text:
        """The reply as its row shows it; ``part`` ``first``/``rest`` when its first line has a row of its
        own (:attr:`status_alone`): the status and what it answers there, the other lines and the
        latency (measured to the reply's end) on the last row."""
        status = r.status
        lines = list(r.lines[:MAX_INFO_LINES]) if part == "all" else list(r.lines[:1])
        more = max(0, len(r.lines) - MAX_INFO_LINES) + r.lines_dropped if part != "first" else 0
        if self.session.protocol == "imap" and r.tag:
            status = f"{r.tag} {status}"
        first = lines[0] if lines else ""
        body = " | ".join([first, *lines[1:]]) if first else " | ".join(lines[1:])
        out = Text()
        if part == "rest":
            if r.status[:1].isdigit():  # an SMTP reply: every line carried its code, as tshark shows it
                out.append(clean(r.status) + " ", "code." + r.status[0])
            out.append(clean(" | ".join(r.lines[1:MAX_INFO_LINES])), "server")
        else:
            code_style = "code." + r.status[0] if r.status[:1].isdigit() else _word_style(r)
            out.append(clean(status), code_style)
            if body:
                out.append(clean((" " if first else " | ") + body), "server")
        if more > 0:
            out.append(" | " + self.t("ui.more_lines", n=more), "dim")
        extras = []
        if part == "rest":
            pass
        elif r.answers not in (None, "", ".", self.last_verb) and r.status != "*":
            extras.append(self.t("ui.answers", verb=r.answers))
        elif r.answers_lost:
            extras.append(self.t("ui.answers_lost"))
        latency = self._latency(r) if part != "first" else None
        if latency:
            extras.append(latency)
        if extras:
            out.append(" (" + ", ".join(extras) + ")", "dim")
        return out

    def _latency(self, r: Reply) -> str | None:
        """``after 2.000 s`` when the reply's latency is worth showing."""
        if r.latency is None or r.latency < LATENCY_SHOWN:
            return None
        return self.t("ui.latency", seconds=localize_number(seconds(r.latency), self.lang))

    def _auth(self, a: AuthAttempt) -> str:
        user = a.username or "?"
        if a.cancelled and not a.success:  # "*" (RFC 4954 §4): no login was refused, none was tried
            return self.t("ui.login.cancelled")
        key = "ui.login.ok" if a.success else ("ui.login.fail" if a.success is False else "ui.login.unknown")
        label = self.t(key, user=user)
        if self.show_secrets and a.secret is not None:
            label += ", " + text(SECRET_KINDS.get(a.mechanism.upper(), "ui.password"), self.lang, secret=a.secret)
            line = hashcat_line(a)
            if line is not None:
                label += ", " + text("ui.hashcat", self.lang, line=line)
        return label

    def _record(self, event: MessageEnd) -> MessageRecord | None:
        bucket = self.records.get((event.frame, event.origin))
        return bucket.pop(0) if bucket else None

    def _message(self, record: MessageRecord | None, item: PacketGroup, listed: bool = True) -> Text:
        """The message row: subject, sender, size, segments, attachments, problems. ``listed=False``:
        the message's later segments are past the row limit, so the segments shown are not all of it."""
        parts = [self.t("ui.message")]
        if record is None:
            return Text(parts[0], "message")
        summary = record.summary
        parts.append(self.t("ui.quoted", text=summary.subject) if summary.subject else self.t("ui.no_subject"))
        if summary.from_:
            parts.append(self.t("ui.from", sender=summary.from_))
        details = [self.t("ui.size", n=summary.bytes)]
        if len(item.frames) > 1 and listed:
            details[-1] += " " + self.t("ui.segments", n=len(item.frames), first=item.frames[0],
                                        last=item.frames[-1])
        if item.acks:
            details.append(self.t("ui.acks_folded", n=len(item.acks)))
        if summary.attachments:
            details.append(self.t("ui.attachments", n=len(summary.attachments)))
        out = Text(clean(" ".join(parts) + ", " + ", ".join(details)), "message")
        for problem, style in self._message_problems(record):
            out.append(", ", "message")
            out.append(clean(problem), style)
        return out

    def _message_problems(self, record: MessageRecord) -> list[tuple[str, str]]:
        """What is wrong with a message, for its row: cut short (how much is missing), MIME defects.

        A part the client asked for (POP3 TOP, an IMAP header or byte-range fetch) is incomplete by
        design: it is said plainly, without the warning sign.
        """
        summary = record.summary
        out: list[tuple[str, str]] = []
        if not summary.complete:
            partial = partial_label(self.session, record, self.lang)
            if partial is not None:
                out.append((partial, "message"))
            else:
                missing = summary.missing_bytes
                amount = (self.t("ui.missing", n=missing) if missing_known(missing)
                          else text("ui.missing_unknown", self.lang) if missing else "")
                out.append(("⚠ " + self.t("ui.incomplete") + (f" ({amount})" if amount else ""), "tone.warn"))
        if summary.defects:
            out.append(("⚠ " + text("ui.defects", self.lang, n=len(summary.defects)), "tone.warn"))
        return out


SECRET_KINDS = {"APOP": "ui.digest", "CRAM-MD5": "ui.digest", "DIGEST-MD5": "ui.digest", "NTLM": "ui.nt_response",
                "XOAUTH2": "ui.token", "OAUTHBEARER": "ui.token"}
"""What the secret of a mechanism is when it is not the password itself (a digest of it, a token)."""


def _word_style(r: Reply) -> str:
    word = r.status.upper()
    if word == "*":
        head = r.lines[0].split(" ", 1)[0].upper() if r.lines else ""
        word = head
    if word in ("+OK", "OK", "+", "PREAUTH"):
        return "code.2"
    if word in ("-ERR", "NO", "BAD", "BYE"):
        return "code.5"
    return "server"


# --------------------------------------------------------------------------- the table view


MAX_INFO_LINES = 256
"""Lines of one reply the Info cell shows: a POP3 LIST of a big mailbox whole (the corpus has one of 201
lines), not a hostile EHLO reply of 200,000 lines; the rest are counted (the JSON report has up to 1,000 of a
reply's lines: ``smtp.MAX_REPLY_LINES``)."""
MAX_INFO_PIECES = 256
"""Commands, replies and notes one packet's Info cell shows: a relay's pipelined replies to a few hundred
recipients (the corpus has up to 9 a packet), not a 64 KiB segment of thousands of short responses; the
rest are counted."""
MIN_INFO_ROOM = 32
"""Cells the Info column keeps on a narrow terminal before long addresses are elided."""
MIN_HOST_CELLS = 15
"""An elided address keeps at least this many cells (an IPv4 address never needs eliding)."""
MIN_TIME_CELLS = 11
"""A narrow terminal takes decimals off the Time column only while it is wider than this (``1000.000000``)."""


def _elided(host: str, cells: int) -> str:
    """``2001:470:e5bf:dead:4957:2174:e82c:4887`` → ``2001:470:…e82c:4887``: the ends stay readable."""
    keep = cells - 1
    tail = keep // 2
    return host[: keep - tail] + "…" + host[len(host) - tail:]


def _elided_apart(hosts: set[str], cells: int) -> dict[str, str]:
    """Each host longer than ``cells`` → elided, widened until no two hosts read the same
    (``2001:db8:…:1`` could be the client and the server)."""
    longest = max(map(len, hosts), default=0)
    while True:
        shown = {h: _elided(h, cells) for h in hosts if len(h) > cells}
        readings = [shown.get(h, h) for h in hosts]
        if len(set(readings)) == len(readings) or cells >= longest:
            return shown
        cells += 1


class _Columns:
    """Column widths of one session's table (fitted to its content)."""

    def __init__(self, session: Session, lang: str, origin: float, protos: list[str], *,
                 narrow: bool, extra_hosts: list[str] | None = None, frames: list[int] | None = None,
                 times: list[float] | None = None, width: int | None = None) -> None:
        t = _t(lang)
        self.sep = " " if narrow else "  "
        self.titles = (t("col.no"), t("col.time"), t("col.source"), t("col.destination"), t("col.proto"),
                       t("col.info"))
        last = max([session.rows[-1].frame if session.rows else session.last_frame, *(frames or ())])
        self.no = max(len(self.titles[0]), len(str(last)))
        # the latest row, not the session's end: a frame with a wrong clock is left out of the end (clock-jump)
        latest = max((row.ts for row in session.rows), default=session.end)
        stamps = [ts - origin for ts in (session.end, latest, *(times or ()))]
        self.decimals = 6
        """Of the Time column: fewer on a narrow terminal when the times are long (a capture spliced from
        two years: ``136729843.603726`` is 16 cells, ``136729843.6`` leaves the Info column its room)."""
        self.time = max(len(self.titles[1]), *(len(self.clock(t)) for t in stamps))
        hosts = (session.client.ip, session.server.ip, *(extra_hosts or ()))
        self.source = max(len(self.titles[2]), *(len(h) for h in hosts))
        self.destination = max(len(self.titles[3]), *(len(h) for h in hosts))
        self.proto = max(len(self.titles[4]), *(len(p) for p in protos)) if protos else len(self.titles[4])
        self.shown: dict[str, str] = {}
        """Addresses too long for a narrow terminal → elided in the middle, as Wireshark's elide mode does
        (the session header gives them whole)."""
        while width is not None and width - self.info_start < MIN_INFO_ROOM and self.decimals > 1 and \
                self.time > MIN_TIME_CELLS:
            self.decimals -= 1
            self.time = max(len(self.titles[1]), *(len(self.clock(t)) for t in stamps))
        if width is not None and width - self.info_start < MIN_INFO_ROOM:
            others = self.info_start - self.source - self.destination
            cap = max(MIN_HOST_CELLS, len(self.titles[2]), len(self.titles[3]), (width - MIN_INFO_ROOM - others) // 2)
            self.shown = _elided_apart(set(hosts), cap)
            if self.shown:
                self.source = max(len(self.titles[2]), *(len(self.shown.get(h, h)) for h in hosts))
                self.destination = max(len(self.titles[3]), *(len(self.shown.get(h, h)) for h in hosts))

    def clock(self, seconds: float) -> str:
        """A row's Time (seconds since the file's first packet)."""
        return f"{seconds:.{self.decimals}f}"

    @property
    def info_start(self) -> int:
        return self.no + self.time + self.source + self.destination + self.proto + 5 * len(self.sep)

    def heading(self) -> Text:
        no, time, src, dst, proto, info = self.titles
        sep = self.sep
        return Text(f"{no:>{self.no}}{sep}{time:>{self.time}}{sep}{src:<{self.source}}{sep}"
                    f"{dst:<{self.destination}}{sep}{proto:<{self.proto}}{sep}{info}", "header")

    def prefix(self, *, frame: int, time: str, src: str, dst: str, src_style: str, dst_style: str,
               proto: str) -> Text:
        # one Text with two spans rather than four appends: a row's prefix is made for every packet
        sep = self.sep
        if self.shown:
            src, dst = self.shown.get(src, src), self.shown.get(dst, dst)
        head = f"{frame:>{self.no}}{sep}{time:>{self.time}}{sep}"
        source = f"{src:<{self.source}}"
        target = f"{dst:<{self.destination}}"
        at_source = len(head)
        at_target = at_source + len(source) + len(sep)
        return Text(f"{head}{source}{sep}{target}{sep}{proto:<{self.proto}}{sep}",
                    spans=[Span(at_source, at_source + len(source), src_style),
                           Span(at_target, at_target + len(target), dst_style)])


class TerminalRenderer:
    """The default view: per session a header and a captioned packet table; a summary at the end."""

    session_limits = SessionLimits()
    """The limits the analyzer kept sessions within (named in the notes on what a session left out)."""

    def __init__(self, output: Output | IO[str], *, stats: CaptureStats | None = None,
                 show_secrets: bool = False, hide_acks: bool = False, lang: str = "en",
                 session_filter: SessionFilter | None = None, many_files: bool = False,
                 show_context: bool = True, explain: bool = True) -> None:
        # a bare text stream (as live capture passes it) gets the environment detected for it
        output = output if isinstance(output, Output) else Output.detect(stream=output)
        self.out = output
        self.show_secrets = show_secrets
        self.hide_acks = hide_acks
        self.lang = lang
        self.show_context = show_context
        self.phase_width = phase_width(lang)
        self.many_files = many_files
        self.explain = explain
        self.time = TimeBase(stats)
        self.summary = Summary(output, lang, session_filter)

    def session(self, s: Session) -> None:
        with self.out.block():
            self.render(s)
        self.summary.add(s)

    def end(self, stats: CaptureStats, elapsed: float) -> None:
        with self.out.block():
            self.summary.write(stats, elapsed)

    # ------------------------------------------------------------------ one session
    def render(self, s: Session) -> None:
        out = self.out
        lang = self.lang
        origin = self.time.origin(s)
        writer = _InfoWriter(s, lang, self.show_secrets)
        captioned = [(step, _collapse(step.rows, self.hide_acks and not step.key.startswith("setup")))
                     for step in steps(s, lang=lang)]
        blocks = context_blocks(s, lang=lang, boundaries=[r.frame for r in s.rows]) if self.show_context else []
        protos = [writer.proto(item) for _, items in captioned for item in items]
        protos += [row_proto(row, o) for block in blocks for row, o in block.rows]
        context_rows = [row for block in blocks for row, _ in block.rows]
        cols = _Columns(s, lang, origin, protos, narrow=out.width is not None and out.width < NARROW,
                        extra_hosts=[h for row in context_rows for h in (row.src, row.dst)],
                        frames=[row.frame for row in context_rows], times=[row.ts for row in context_rows],
                        width=out.width)
        self._header(s)
        out.write(cols.heading())
        pending = list(reversed(blocks))
        for step, items in captioned:
            if not items:
                continue
            while pending and pending[-1].frame < items[0].row.frame:
                self._block(s, pending.pop(), cols, origin)
            self._caption(step)
            for item in items:
                if pending and pending[-1].frame < item.row.frame:
                    while pending and pending[-1].frame < item.row.frame:
                        self._block(s, pending.pop(), cols, origin)
                    self._caption(step, resumed=True)
                self._row(s, item, writer, cols, origin)
        while pending:
            self._block(s, pending.pop(), cols, origin)
        for note in s.notes:
            out.paragraph(Text(clean(text("ui.note", lang, text=note)), "dim"), indent=0, hang=2)
        if self.show_context:
            for check in s.context_checks:
                line = text("ui.check", lang, text=check_text(check, lang))
                out.paragraph(Text(clean(line), "dim" if check.ok else "tone.warn"), indent=0, hang=2)
            if s.context_dropped:
                out.paragraph(Text(text("ui.context_dropped", lang, n=s.context_dropped), "dim"))
        for key, params in left_out(s, self.session_limits, lang):
            out.paragraph(Text(text("ui." + key, lang, **params), "dim"))
        out.write("")

    def _header(self, s: Session) -> None:
        lang = self.lang
        title = Text()
        title.append(text("ui.session", lang, id=s.id), "title")
        title.append(" · ", "dim")
        title.append(s.protocol.upper(), "title")
        title.append(" · ", "dim")
        title.append(str(s.client), "client")
        title.append(" → ")
        title.append(str(s.server), "server")
        title.append(" · ", "dim")
        title.append(f"tcp.stream eq {s.stream}", "title")
        if s.tunnel:
            title.append(" · " + clean(text("ui.via", lang, tunnel=s.tunnel)), "dim")
        if self.many_files:
            title.append(" · " + clean(text("ui.file", lang, name=s.file)), "dim")
        self.out.paragraph(title, hang=2)
        facts = [Text(clean(fact), style) for fact, style in header_facts(s, lang)]
        self.out.pieces(facts, separator=Text(" · ", "dim"), indent=2)
        details = tls_details(s, lang)
        if details:
            label = Text(text("ui.tls.details", lang) + ":", "tls")
            parts = [Text(clean(fact), style) for fact, style in details]
            self.out.pieces([label + Text(" ") + parts[0], *parts[1:]], separator=Text(" · ", "dim"), indent=2)

    def _caption(self, step: Step, *, resumed: bool = False) -> None:
        phase = step.phase.value
        caption = text("context.resume", self.lang, caption=step.caption) if resumed else step.caption
        self._caption_row(text("phase." + phase, self.lang), "phase." + phase, caption)

    def _caption_row(self, label: str, style: str, caption: str) -> None:
        width = self.phase_width
        prefix = Text(f"{label:<{width}} ", style)
        self.out.cells(prefix, Text(clean(caption), "caption"), indent=width + 1)

    def _block(self, s: Session, block: ContextBlock, cols: _Columns, origin: float) -> None:
        """A context block: its caption (labelled ``dns`` or ``ident``) and its packets."""
        self._caption_row(text("phase." + block.kind, self.lang), "phase.context", block.caption)
        for row, o in block.rows:
            own = {s.client.ip: "client", s.server.ip: "server"}
            prefix = cols.prefix(frame=row.frame, time=cols.clock(row.ts - origin), src=row.src, dst=row.dst,
                                 src_style=own.get(row.src, "dim"), dst_style=own.get(row.dst, "dim"),
                                 proto=row_proto(row, o))
            self.out.cells(prefix, Text(clean(row_info(row, o, self.lang)), "context"), indent=cols.info_start)

    def _row(self, s: Session, item: PacketGroup, writer: _InfoWriter, cols: _Columns, origin: float) -> None:
        row = item.row
        client = row.direction is Direction.CLIENT
        src, dst = (s.client.ip, s.server.ip) if client else (s.server.ip, s.client.ip)
        styles = ("client", "server") if client else ("server", "client")
        prefix = cols.prefix(frame=row.frame, time=cols.clock(row.ts - origin), src=src, dst=dst,
                             src_style=styles[0], dst_style=styles[1], proto=writer.proto(item))
        self.out.cells(prefix, writer.info(item), indent=cols.info_start)
        if self.explain:
            blank = Text(" " * cols.info_start)
            for line in writer.explanations(item):
                self.out.cells(blank, Text(clean(line), "dim"), indent=cols.info_start)


# --------------------------------------------------------------------------- summary


class Summary:
    """Totals after the sessions: files, packets, sessions per protocol, messages, gaps, anomalies, speed."""

    def __init__(self, output: Output, lang: str = "en", session_filter: SessionFilter | None = None) -> None:
        self.out = output
        self.lang = lang
        self.filter = session_filter
        self.protocols: Counter[str] = Counter()
        self.messages = 0
        self.gaps = 0
        self.gap_bytes = 0
        self.anomalies: Counter[str] = Counter()
        self.sealed = 0

    def add(self, s: Session) -> None:
        self.protocols[s.protocol] += 1
        self.sealed += sealed(s)
        self.messages += s.message_total
        self.gaps += len(s.gaps)
        self.gap_bytes += sum(g.nbytes for g in s.gaps)
        for a in s.anomalies:
            self.anomalies[a.kind] += 1

    def write(self, stats: CaptureStats, elapsed: float) -> None:
        lang = self.lang
        t = _t(lang)
        out = self.out
        shown = sum(self.protocols.values())
        if not shown:
            key = "ui.no_match" if self.filter is not None and self.filter.active and stats.sessions \
                else "ui.no_sessions"
            out.write(Text(t(key), "dim"))
            out.write("")
        out.write(Text(t("ui.summary"), "title"))
        lines: list[tuple[str, str]] = []
        for f in stats.files:
            if f.error is not None:  # an input that could not be read: its reason, not empty counts
                lines.append((t("ui.files") if not lines else "", clean(t("ui.unreadable", name=f.name,
                                                                          error=f.error))))
                continue
            span = duration((f.end or 0.0) - f.start, lang) if f.start is not None else "-"
            value = f"{f.name}: {f.filetype}, {t('ui.packets.count', n=f.packets)}, {t('ui.bytes', n=f.bytes)}, {span}"
            if f.snapped:
                value += ", " + t("ui.snapped", n=f.snapped)
            for problem in f.problems:
                value += "; " + t("ui.damaged", problem=problem)
            lines.append((t("ui.files") if not lines else "", clean(value)))
        skipped = []
        if stats.unknown_linktype:
            skipped.append(t("ui.skipped.linktype", n=stats.unknown_linktype,
                             types=", ".join(linktype_text(x) for x in sorted(stats.unknown_linktypes))))
        if stats.truncated_headers:
            skipped.append(t("ui.skipped.headers", n=stats.truncated_headers))
        if skipped:
            lines.append((t("ui.skipped.label"), "; ".join(skipped)))
        lines.append((t("ui.packets"), t("ui.packets.value", packets=fmt_num(stats.packets, lang),
                                          tcp=fmt_num(stats.tcp_packets, lang),
                                          mail=fmt_num(stats.mail_packets, lang))))
        per = ", ".join(f"{p} {fmt_num(n, lang)}" for p, n in sorted(self.protocols.items()))
        per = f" ({per})" if per else ""
        value = f"{fmt_num(stats.sessions, lang)}{per}"
        flt = self.filter
        if flt is not None and flt.active:
            shown_text = t("ui.shown", shown=flt.seen["shown"], hidden=flt.seen["hidden"], per=per)
            value = f"{fmt_num(stats.sessions, lang)}; {shown_text}"
        lines.append((t("ui.sessions"), value))
        lines.append((t("ui.messages.label"), fmt_num(self.messages, lang)))
        gaps = t("ui.none") if not self.gaps else f"{fmt_num(self.gaps, lang)} ({t('ui.bytes', n=self.gap_bytes)})"
        lines.append((t("ui.gaps.label"), gaps))
        anomalies = t("ui.none") if not self.anomalies else f"{fmt_num(sum(self.anomalies.values()), lang)} (" + \
            ", ".join(f"{k} {fmt_num(n, lang)}" for k, n in sorted(self.anomalies.items(),
                                                                   key=lambda kv: (-kv[1], kv[0]))) + ")"
        lines.append((t("ui.anomalies.label"), anomalies))
        if self.sealed:
            lines.append((t("ui.sealed.label"), t("ui.sealed", n=self.sealed)))
        rate = localize_number(f"{stats.packets / elapsed:,.0f}", lang) if elapsed > 0 else "-"
        lines.append((t("ui.elapsed"), t("ui.elapsed.value", seconds=localize_number(f"{elapsed:.2f}", lang),
                                         rate=rate)))
        width = max(len(label) for label, _ in lines) + 2
        for label, value in lines:
            out.cells(Text(f"  {label:<{width}}", "dim"), Text(value))


# --------------------------------------------------------------------------- the list view


def _shortened(name: str, suffix: str, width: int, short: str = "") -> str:
    """``name + suffix`` in ``width`` cells: the name loses its end to "…" first (the suffix says
    whether the login failed); where the suffix leaves the name too little room, ``short`` stands for it
    (``carol ✗``, not ``carol (fail…``). Cells, not characters: a CJK character takes two."""
    if cell_len(name) + cell_len(suffix) <= width:
        return name + suffix
    room = width - cell_len(suffix) - 1
    if room < 3 and short:
        if cell_len(name) + cell_len(short) <= width:
            return name + short
        suffix, room = short, width - cell_len(short) - 1
    if room < 3:
        name, suffix, room = name + suffix, "", width - 1
    return set_cell_size(name, room).rstrip() + "…" + suffix


class ListRenderer:
    """``--list``: one line per session, streamed as sessions finish; the summary at the end.

    Piped, every session is one whole line (grep-able, with the full start time). On a terminal the
    start column holds the time of day under a date line, anomaly kinds that do not fit go on an
    indented line below, and below ``LIST_WIDE`` columns each session takes two lines.
    """

    WIDTHS = (4, 5, 21, 21, 8, 8, 12, 9, 4)
    ROOMY_USER = 14
    """The user column where there is room (piped, or a terminal wide enough): "carol (failed)" fits.
    On a terminal a name longer than its column is shortened."""
    RIGHT = frozenset({0, 5, 8})
    KEYS = ("id", "proto", "client", "server", "start", "duration", "user", "status", "messages", "anomalies")

    def __init__(self, output: Output, *, stats: CaptureStats | None = None, lang: str = "en",
                 session_filter: SessionFilter | None = None, many_files: bool = False,
                 explain: bool = True) -> None:
        self.out = output
        self.lang = lang
        self.summary = Summary(output, lang, session_filter)
        self.started = False
        self.many_files = many_files
        self.stats = stats
        self.file: str | None = None
        self.day: str | None = None
        width = output.width
        anomalies = len(self._t("list.anomalies"))
        needed = sum(self.WIDTHS) + 2 * len(self.WIDTHS) + anomalies
        self.wide = width is None or width >= needed
        self.roomy = width is None or width >= needed + self.ROOMY_USER - self.WIDTHS[6]
        self.full_time = width is None

    def _t(self, key: str, **params: object) -> str:
        return text(key, self.lang, **params)

    def _cells(self, cells: list[str], styles: list[str], widths: tuple[int, ...]) -> Text:
        line = Text()
        for i, (raw, width) in enumerate(zip(cells, widths, strict=True)):
            cell = clean(raw)
            line.append(f"{cell:>{width}}" if i in self.RIGHT else f"{cell:<{width}}", styles[i])
            line.append("  ")
        return line

    def _widths(self) -> tuple[int, ...]:
        widths = list(self.WIDTHS)
        if self.full_time:
            widths[4] = 23
        if self.roomy:
            widths[6] = self.ROOMY_USER
        for i, key in enumerate(self.KEYS[: len(widths)]):  # a translation's longer words get their room
            title = self._t("list." + key)
            widths[i] = max(widths[i], len(title.replace(" (UTC)", "") if i == 4 else title))
        widths[7] = max(widths[7], *(len(self._t("ui.status." + s)) for s in STATUSES))
        return tuple(widths)

    def _heading(self) -> None:
        titles = [self._t("list." + k) for k in self.KEYS]
        if not self.full_time:
            titles[4] = titles[4].replace(" (UTC)", "")
        widths = self._widths()
        if self.wide:
            self.out.write(self._cells(titles[:9], ["header"] * 9, widths) + Text(titles[9], "header"))
        else:
            first = self._cells([titles[i] for i in (0, 1, 2, 3, 7, 8)], ["header"] * 6,
                                tuple(widths[i] for i in (0, 1, 2, 3, 7, 8)))
            first.rstrip()
            self.out.write(first)

    def session(self, s: Session) -> None:
        with self.out.block():
            if not self.started:
                self.started = True
                self._heading()
            self._separators(s)
            self._session(s)
        self.summary.add(s)

    def _separators(self, s: Session) -> None:
        if self.many_files and s.file != self.file:
            self.file = s.file
            self.out.write(Text("── " + clean(self._t("ui.file", name=s.file)), "dim"))
        day = utc(s.start)[:10]
        if not self.full_time and day != self.day:
            self.day = day
            self.out.write(Text(f"── {day} (UTC)", "dim"))

    def _session(self, s: Session) -> None:
        status = session_status(s)
        kinds = Counter(a.kind for a in s.anomalies)
        kind_text = ", ".join(k if n == 1 else f"{k} ×{n}" for k, n in kinds.items())
        user = s.user or ("? (TLS)" if sealed(s) else "-")
        outcome = login_outcome(s) if s.user else None
        suffix = short = ""
        if outcome == "failed":
            suffix, short = " (" + self._t("ui.status.failed") + ")", " ✗"
        elif outcome == "unknown":
            suffix = " (?)"
        widths = self._widths()
        if self.wide and not self.full_time:  # a terminal: the line must fit (piped, it stays whole)
            user = _shortened(clean(user), clean(suffix), widths[6], short)
        else:
            user += suffix
        start = utc(s.start) if self.full_time else utc(s.start, millis=False)[11:]
        cells = [str(s.id), s.protocol, str(s.client), str(s.server), start,
                 duration(s.duration, self.lang), user,
                 self._t("ui.status." + status), str(s.message_total) if s.messages or not sealed(s) else "?"]
        styles = ["", "", "client", "server", "", "", "", "status." + status, ""]
        line = self._cells(cells, styles, widths) if self.wide else None
        if line is not None and (self.out.width is None or line.cell_len <= self.out.width):
            if not kinds:
                self.out.write(line + Text("-", "dim"))
                return
            full = f"{len(s.anomalies)}: {kind_text}"
            width = self.out.width
            if width is None or line.cell_len + len(full) <= width:
                self.out.write(line + Text(clean(full), "anomaly"))
                return
            self.out.write(line + Text(str(len(s.anomalies)), "anomaly"))
            self.out.paragraph(Text(clean(kind_text), "anomaly"), indent=widths[0] + widths[1] + 4)
            return
        indent = widths[0] + widths[1] + 4
        who = user if s.user else self._t("ui.login_sealed" if sealed(s) else "ui.no_login")
        facts = Text()
        if len(cells[2]) > widths[2] or len(cells[3]) > widths[3]:
            # IPv6 endpoints overflow their columns: they get the line, status and messages go below
            first = self._cells(cells[:2], styles[:2], widths[:2])
            first.append(clean(cells[2]), "client")
            first.append(" → ")
            first.append(clean(cells[3]), "server")
            self.out.paragraph(first, hang=indent)
            facts.append(cells[7], styles[7])
            facts.append(" · " + self._t("ui.messages", n=s.message_total) if cells[8] != "?" else "")
            facts.append(" · ")
        else:
            picks = (0, 1, 2, 3, 7, 8)
            first = self._cells([cells[i] for i in picks], [styles[i] for i in picks],
                                tuple(widths[i] for i in picks))
            first.rstrip()
            self.out.write(first)
        facts.append(clean(f"{start} · {cells[5]} · {who}"))
        if kinds:
            facts.append(" · ", "dim")
            facts.append(clean(self._t("ui.anomalies", n=len(s.anomalies)) + f": {kind_text}"), "anomaly")
        self.out.paragraph(facts, indent=indent, hang=2)

    def end(self, stats: CaptureStats, elapsed: float) -> None:
        with self.out.block():
            if self.started:
                self.out.write("")
            self.summary.write(stats, elapsed)
