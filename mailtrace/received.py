"""The path a message took, read from its Received header fields (RFC 5321 section 4.4).

Every mail server that relays a message puts a Received field on top of it, so the header block
lists the hops newest first. :func:`received_chain` turns those values into :class:`Hop` records
in path order (the sender's first server first), with the time each hop took and notes about
what looks wrong. Received fields are free-form in practice; parsing is best-effort and never
raises.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC
from email import utils as email_utils

__all__ = ["Hop", "parse_received", "received_chain"]

_KEYWORDS = ("from", "by", "via", "with", "id", "for")
_IP_IN_BRACKETS = re.compile(r"\[(?:IPv6:)?([0-9A-Fa-f:.]+)\]")
_BARE_IPV4 = re.compile(r"(?<![\d.])(\d{1,3}(?:\.\d{1,3}){3})(?![\d.])")


@dataclass(frozen=True, slots=True, kw_only=True)
class Hop:
    """One relay step: server ``by`` received the message from ``from_``."""

    index: int
    """Position in the path: 1 is the hop nearest the sender."""
    from_: str | None
    """Name the sending host announced (its HELO/EHLO), as written after ``from``."""
    from_detail: str | None
    """The comment after it, usually ``reverse-dns [address]`` as the receiver saw it."""
    from_ip: str | None
    """Address of the sending host as the receiving server recorded it."""
    by: str | None
    """The receiving server."""
    via: str | None
    """Link type, rarely used (``via UUCP``)."""
    with_: str | None
    """Protocol: SMTP, ESMTP, ESMTPS (TLS), ESMTPSA (TLS and AUTH), LMTP, HTTP, ..."""
    id: str | None
    """Queue ID the receiving server gave the message: the key to its logs."""
    for_: str | None
    """Recipient this copy was accepted for (angle brackets removed)."""
    date: str | None
    """Date-time text after the last semicolon."""
    timestamp: float | None
    """That date as epoch seconds; None if missing or unparseable."""
    delay: float | None
    """Seconds since the previous hop's timestamp; None for the first hop or unknown times."""
    notes: tuple[str, ...]
    """Things worth a second look: time going backwards, unparseable fields, odd addresses."""
    raw: str
    """The field value as sent, unfolded."""


def received_chain(values: Sequence[str]) -> tuple[Hop, ...]:
    """Received values as they appear in the header (newest first) to hops in path order."""
    hops = [parse_received(v) for v in reversed(values)]
    out: list[Hop] = []
    previous: float | None = None
    for i, hop in enumerate(hops):
        notes = list(hop.notes)
        delay = None
        if hop.timestamp is not None and previous is not None:
            delay = hop.timestamp - previous
            if delay < 0:
                notes.append(f"timestamp goes backwards ({delay:+.0f} s)")
        if hop.timestamp is not None:
            previous = hop.timestamp
        following = hops[i + 1] if i + 1 < len(hops) else None
        if _private(hop.from_ip) and following is not None and _public(following.from_ip):
            notes.append("private address claimed by public hop")
        out.append(replace(hop, index=i + 1, delay=delay, notes=tuple(notes)))
    return tuple(out)


def parse_received(value: str) -> Hop:
    """One Received value to a Hop (index 1, no delay: received_chain fills those in)."""
    raw = " ".join(value.split())
    clauses, date = _split_date(raw)
    fields = _clauses(clauses)
    timestamp = _timestamp(date)
    notes = []
    if fields.get("from") is None and fields.get("by") is None:
        notes.append("unparseable hop")
    if timestamp is None:
        notes.append("unparseable date" if date else "no date")
    from_, from_detail = fields.get("from"), fields.get("from_detail")
    return Hop(
        index=1,
        from_=from_,
        from_detail=from_detail,
        from_ip=_address_of(from_, from_detail),
        by=fields.get("by"),
        via=fields.get("via"),
        with_=fields.get("with"),
        id=fields.get("id"),
        for_=fields["for"].strip("<>") if fields.get("for") else None,
        date=date,
        timestamp=timestamp,
        delay=None,
        notes=tuple(notes),
        raw=raw,
    )


def _split_date(raw: str) -> tuple[str, str | None]:
    """Cut at the last semicolon outside comments: clauses before it, the date after it."""
    depth = 0
    cut = -1
    for i, ch in enumerate(raw):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        elif ch == ";" and depth == 0:
            cut = i
    if cut < 0:
        return raw, None
    return raw[:cut], raw[cut + 1 :].strip() or None


def _tokens(text: str) -> list[tuple[str, bool]]:
    """Words and (comments), each with a flag telling which it is."""
    out: list[tuple[str, bool]] = []
    word: list[str] = []
    comment: list[str] = []
    depth = 0
    for ch in text:
        if depth:
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
                if depth == 0:
                    out.append(("".join(comment).strip(), True))
                    comment = []
                    continue
            comment.append(ch)
        elif ch == "(":
            if word:
                out.append(("".join(word), False))
                word = []
            depth = 1
        elif ch.isspace():
            if word:
                out.append(("".join(word), False))
                word = []
        else:
            word.append(ch)
    if word:
        out.append(("".join(word), False))
    if comment:
        out.append(("".join(comment).strip(), True))
    return out


def _clauses(text: str) -> dict[str, str]:
    """The first word after each keyword; the comment after ``from``'s word as ``from_detail``."""
    fields: dict[str, str] = {}
    tokens = _tokens(text)
    i = 0
    while i < len(tokens):
        word, is_comment = tokens[i]
        key = word.lower()
        if is_comment or key not in _KEYWORDS or key in fields or i + 1 >= len(tokens):
            i += 1
            continue
        value, value_is_comment = tokens[i + 1]
        if value_is_comment or value.lower() in _KEYWORDS:
            i += 1
            continue
        fields[key] = value
        i += 2
        if key == "from" and i < len(tokens) and tokens[i][1]:
            fields["from_detail"] = tokens[i][0]
            i += 1
    return fields


def _address_of(name: str | None, detail: str | None) -> str | None:
    """The sender's address: in brackets in the comment, else a bare one, else an IP literal name."""
    for text in (detail, name):
        if not text:
            continue
        for pattern in (_IP_IN_BRACKETS, _BARE_IPV4):
            for m in pattern.finditer(text):
                try:
                    return str(ipaddress.ip_address(m.group(1)))
                except ValueError:
                    continue
    return None


def _timestamp(date: str | None) -> float | None:
    if not date:
        return None
    try:
        when = email_utils.parsedate_to_datetime(date)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, origin unknown (RFC 5322 section 3.3)
        when = when.replace(tzinfo=UTC)
    try:
        return when.timestamp()
    except (OverflowError, ValueError, OSError):
        return None


def _private(address: str | None) -> bool:
    if address is None:
        return False
    ip = ipaddress.ip_address(address)
    return ip.is_private or ip.is_loopback or ip.is_link_local


def _public(address: str | None) -> bool:
    return address is not None and ipaddress.ip_address(address).is_global
