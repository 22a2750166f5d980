"""Context rows and captions: the DNS lookups and ident probes a session's hosts made for it.

Shared by the terminal table and the JSON report (and open to the HTML report): observations are
grouped into *blocks* — consecutive observations of one purpose that no packet of the session
separates — and each block gets a caption in the lecture's manner ("the MTA looks up the client's
name (PTR) → client.local.example and confirms it (A → 127.0.0.10)"). Every sentence comes from
:mod:`mailtrace.render.catalog`; the Info text of a row follows Wireshark's DNS summary so a row can
be matched with what Wireshark shows.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mailtrace.capture.decode import TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN
from mailtrace.context.model import DNS, IDENT, ContextCheck, ContextObservation, ContextRow, DnsRecord
from mailtrace.render.catalog import EN, text
from mailtrace.session import Session

SUBMISSION_PORTS = frozenset({587, 465})
FAMILY = {"client-ptr": "client", "client-name": "client"}
"""Purposes captioned together when they follow each other (a PTR lookup and its confirmation)."""
WIRESHARK_RCODES = {"NXDOMAIN": "No such name", "SERVFAIL": "Server failure", "REFUSED": "Refused",
                    "FORMERR": "Format error", "NOTIMP": "Not implemented"}
MAX_TXT = 60
"""Characters of a TXT record shown in a caption."""

_FLAGS = ((TCP_FIN, "FIN"), (TCP_SYN, "SYN"), (TCP_RST, "RST"), (0x08, "PSH"), (TCP_ACK, "ACK"))


@dataclass(frozen=True)
class ContextBlock:
    """Observations shown under one caption, with their packets in frame order."""

    kind: str
    """``dns`` or ``ident``: the label of the caption row."""
    key: str
    """Catalogue id of the caption (``context.client-ptr``): stable, for tests and styling."""
    caption: str
    tone: str
    """``info``, ``ok`` or ``warn`` (NXDOMAIN, an unanswered query, a failed check)."""
    observations: tuple[ContextObservation, ...]
    rows: tuple[tuple[ContextRow, ContextObservation], ...]

    @property
    def frame(self) -> int:
        return self.rows[0][0].frame if self.rows else self.observations[0].frame


def context_blocks(session: Session, *, lang: str = "en", boundaries: Sequence[int] = ()) -> list[ContextBlock]:
    """The session's context as captioned blocks, in frame order.

    ``boundaries`` are the frames of the session's own rows: observations with one of them in
    between go into separate blocks, so each block's rows can stand together in the table.
    """
    observations = sorted(session.context, key=lambda o: o.frame)
    marks = sorted(boundaries)
    groups: list[list[ContextObservation]] = []
    for o in observations:
        if groups and _joins(groups[-1], o, marks):
            groups[-1].append(o)
        else:
            groups.append([o])
    out = []
    for group in groups:
        key, caption, tone = context_caption(session, group, lang)
        rows = sorted(((row, o) for o in group for row in o.rows), key=lambda pair: pair[0].frame)
        out.append(ContextBlock(group[0].kind, key, caption, tone, tuple(group), tuple(rows)))
    return out


def _joins(group: list[ContextObservation], o: ContextObservation, marks: list[int]) -> bool:
    last = group[-1]
    if o.kind != last.kind or o.kind == IDENT or o.role != last.role:
        return False
    same = (FAMILY.get(o.purpose, o.purpose), o.subject if o.purpose not in FAMILY else "") == \
        (FAMILY.get(last.purpose, last.purpose), last.subject if last.purpose not in FAMILY else "")
    if not same:
        return False
    start, end = group[0].frame, o.frame
    return not any(start < m < end for m in _between(marks, start, end))


def _between(marks: list[int], start: int, end: int) -> list[int]:
    return marks[bisect_right(marks, start) : bisect_left(marks, end)]


# --------------------------------------------------------------------------- captions


def who(session: Session, o: ContextObservation, lang: str) -> str:
    """The asking host in the session's terms: the MTA, the server, the user agent, the client.

    In a relay session (its client looked up the MX) both sides are MTAs: the sending and the
    receiving one.
    """
    relay = any(x.purpose in ("mx", "mx-host") for x in session.context)
    if o.role == "server":
        if session.protocol != "smtp":
            return text("context.who.server", lang)
        return text("context.who.receiving_mta" if relay else "context.who.mta", lang)
    if relay:
        return text("context.who.sending_mta", lang)
    if session.protocol in ("pop3", "imap") or session.server.port in SUBMISSION_PORTS:
        return text("context.who.user_agent", lang)
    return text("context.who.client", lang)


def context_caption(session: Session, group: Sequence[ContextObservation], lang: str = "en") -> tuple[str, str, str]:
    """(catalogue key, caption, tone) of a group of observations of one purpose."""
    first = group[0]
    asker = who(session, first, lang)
    if first.kind == IDENT:
        outcome = first.outcome or "no-response"
        key = "context.ident." + outcome
        tone = "info" if outcome in ("rst", "answered") else "warn"
        return key, text(key, lang, who=asker, reply=first.reply or "", port=113), tone
    tone = "warn" if any(o.rcode not in ("NOERROR",) for o in group) else "info"
    purpose = first.purpose or "other"
    if purpose in FAMILY:
        return _client_caption(session, group, asker, lang, tone)
    if purpose == "mx":
        hosts = _join([_mx_records(o, lang) for o in group], lang)
        return "context.mx", text("context.mx", lang, who=asker, name=first.subject, results=hosts), tone
    if purpose == "dnsbl":
        results = _results(group, lang, dnsbl=True)
        return "context.dnsbl", text("context.dnsbl", lang, who=asker, zone=first.subject,
                                     client=session.client.ip, results=results), tone
    key = "context." + purpose
    if not _known(key):
        key = "context.other"
    return key, text(key, lang, who=asker, name=first.subject or first.query or "?",
                     results=_results(group, lang)), tone


def _client_caption(session: Session, group: Sequence[ContextObservation], asker: str, lang: str,
                    tone: str) -> tuple[str, str, str]:
    ptrs = [o for o in group if o.purpose == "client-ptr"]
    forwards = [o for o in group if o.purpose == "client-name"]
    client = session.client.ip
    if not ptrs:
        name = forwards[0].subject
        return "context.client-name", text("context.client-name", lang, who=asker, name=name,
                                           results=_results(forwards, lang)), tone
    names = [r.data for o in ptrs for r in o.answers if r.rtype == "PTR"]
    result = ", ".join(dict.fromkeys(names)) if names else _answer(ptrs[0], lang)
    caption = text("context.client-ptr", lang, who=asker, result=result)
    key = "context.client-ptr"
    if forwards:
        confirmed = any(client in o.addresses() for o in forwards)
        suffix = "context.confirms" if confirmed else "context.contradicts"
        caption += text(suffix, lang, results=_results(forwards, lang), client=client)
        if not confirmed:
            tone = "warn"
    return key, caption, tone


def _known(key: str) -> bool:
    return key in EN


def _results(group: Sequence[ContextObservation], lang: str, *, dnsbl: bool = False) -> str:
    """``AAAA → no address, A → 127.0.0.25``; repeats counted (``AAAA → no address (×3)``)."""
    pieces = [text("context.result", lang, qtype=o.qtype or "?", answer=_answer(o, lang, dnsbl=dnsbl))
              for o in group]
    return _join(pieces, lang)


def _join(pieces: list[str], lang: str) -> str:
    counted = Counter(pieces)
    shown = []
    for piece in dict.fromkeys(pieces):
        n = counted[piece]
        shown.append(piece if n == 1 else text("repeat", lang, caption=piece, n=n))
    return ", ".join(shown)


def _answer(o: ContextObservation, lang: str, *, dnsbl: bool = False) -> str:
    if o.rcode is None:
        return text("context.noreply", lang)
    if o.rcode == "NXDOMAIN":
        return text("context.dnsbl.clean" if dnsbl else "context.nxdomain", lang)
    if o.rcode != "NOERROR":
        return text("context.rcode", lang, rcode=o.rcode)
    if o.cut:  # a frame cut by the snap length: what is missing may be the very answer asked for
        shown = [_record(r, lang) for r in o.answers]
        return ", ".join([*shown, text("context.cut", lang)])
    if not o.answers:
        return text("context.nodata.address" if o.qtype in ("A", "AAAA") else "context.nodata", lang)
    if dnsbl:
        codes = [r.data for r in o.answers if r.rtype == "A"]
        if codes:
            return text("context.dnsbl.listed", lang, codes=", ".join(codes))
    return ", ".join(_record(r, lang) for r in o.answers)


def _record(r: DnsRecord, lang: str) -> str:
    if r.rtype == "MX":
        return text("context.mx.record", lang, host=r.data, preference=r.preference)
    if r.rtype in ("TXT", "SPF"):
        shown = r.data if len(r.data) <= MAX_TXT else r.data[: MAX_TXT - 1] + "…"
        return f"“{shown}”"
    if r.rtype == "CNAME":
        return text("context.cname", lang, name=r.data)
    return r.data


def _mx_records(o: ContextObservation, lang: str) -> str:
    records = sorted((r for r in o.answers if r.rtype == "MX"), key=lambda r: r.preference or 0)
    if not records:
        return _answer(o, lang)
    return ", ".join(_record(r, lang) for r in records)


# --------------------------------------------------------------------------- rows


def row_proto(row: ContextRow, o: ContextObservation) -> str:
    if o.kind == DNS:
        return "DNS"
    return "IDENT" if row.text else "TCP"


def row_info(row: ContextRow, o: ContextObservation, lang: str = "en") -> str:
    """The Info cell of a context row, as Wireshark summarises the packet."""
    if o.kind == IDENT:
        if row.text:
            side = "ui.ident.reply" if row.response else "ui.ident.request"
            return text(side, lang, text=row.text)
        flags = ", ".join(name for bit, name in _FLAGS if row.flags & bit)
        return f"{row.sport} → {row.dport} [{flags}]"
    ident = f"0x{o.dns_id or 0:04x}"
    question = f"{o.qtype or '?'} {o.query or '<root>'}"
    if not row.response:
        return text("ui.dns.query", lang, id=ident, question=question)
    records = " ".join(f"{r.rtype} {r.text}" for r in (*o.answers, *o.additional))
    status = WIRESHARK_RCODES.get(o.rcode or "", "")
    body = " ".join(part for part in (status, question, records) if part)
    return text("ui.dns.response", lang, id=ident, body=body)


# --------------------------------------------------------------------------- checks


def check_text(check: ContextCheck, lang: str = "en") -> str:
    return text(f"check.{check.check}.{check.result}", lang, **check.values)


# --------------------------------------------------------------------------- JSON


def context_json(session: Session, o: ContextObservation, lang: str = "en") -> dict[str, Any]:
    """One observation of ``sessions[].context`` (docs/json-format.md)."""
    _, caption, _ = context_caption(session, [o], lang)
    out: dict[str, Any] = {
        "frame": o.frame,
        "ts": round(o.ts, 6),
        "kind": o.kind,
        "host": o.host,
        "query": o.query,
        "qtype": o.qtype,
        "answers": o.answer_texts,
        "rcode": o.rcode,
        "caption": caption,
        "purpose": o.purpose,
        "role": o.role,
        "about": o.subject,
        "peer": o.peer,
        "transport": o.transport,
        "frames": [row.frame for row in o.rows],
        "response_frame": o.response_frame,
    }
    if o.kind == DNS:
        out["id"] = o.dns_id
        out["cut"] = o.cut
        if o.additional:
            out["additional"] = [r.text if r.rtype == "MX" else f"{r.name} {r.rtype} {r.data}" for r in o.additional]
        records = [{"name": r.name, "type": r.rtype, "data": r.data} | (
            {"preference": r.preference} if r.preference is not None else {}) for r in o.answers]
        if records:
            out["records"] = records
    else:
        out["outcome"] = o.outcome
        out["reply"] = o.reply
    return out


def check_json(check: ContextCheck, lang: str = "en") -> dict[str, Any]:
    out: dict[str, Any] = {"check": check.check, "result": check.result, "ok": check.ok,
                           "frames": list(check.frames), "text": check_text(check, lang)}
    out.update(check.values)
    return out
