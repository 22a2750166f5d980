"""Reading the spam-defence and trace headers of a message summary.

The message summary is produced by :mod:`mailtrace.mime`; all that is used here is its
``headers`` tuple of top-level ``(name, value)`` pairs (values as sent, folding kept), read
defensively so an older or newer summary without it simply yields nothing.

Parsed here, each as small as the lecture needs:

* ``Authentication-Results`` (RFC 8601): ``method=result`` pairs per authserv-id;
* ``Received-SPF`` (RFC 7208 §9.1): the result word;
* ``DKIM-Signature`` (RFC 6376): signing domain ``d=`` and selector ``s=``;
* ``ARC-Seal`` / ``ARC-Authentication-Results`` (RFC 8617): instance count and chain validation ``cv=``;
* SpamAssassin / rspamd / Microsoft style ``X-Spam-*`` verdicts;
* ``Received`` (RFC 5321 §4.4): the from/by hosts, the address in brackets, the date.
"""

from __future__ import annotations

import email.utils
import itertools
import re
from collections.abc import Iterable, KeysView
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from mailtrace.findings.facts import is_public_ip, looks_like_hostname, org_domain
from mailtrace.numbers import parse_decimal

FOLD = re.compile(r"(?:\r\n?|\n)[ \t]+")
"""A folding line break and the blanks after it (CR LF, LF or a lone CR): written with the line break first
rather than as ``\r?\n[ \t]+|\r[ \t]+`` (the same matches), so the regex engine skips to the next CR or LF
instead of trying both alternatives at every character."""
COMMENT = re.compile(r"\([^()]*\)")
RESINFO = re.compile(r"^\s*([A-Za-z0-9_.-]+)(?:/[0-9]+)?\s*=\s*([A-Za-z0-9_-]+)")
TAG = re.compile(r"^\s*([A-Za-z0-9_]+)\s*=\s*(.*?)\s*$", re.DOTALL)
FROM_CLAUSE = re.compile(
    r"^\s*from\s+((?:[^\s;]+|(?!\s+(?:by|via|with|id|for)\s|\n\Z)\s)*)", re.IGNORECASE | re.DOTALL
)
"""The ``from`` clause: up to the first `` by``, `` via``, `` with``, `` id``, `` for``, ``;`` or the end (before a
final LF, as ``$``). The same match as ``^\\s*from\\s+(.*?)(?=\\s+by\\s|...|;|$)`` (tests/test_findings_headers.py),
but words are skipped whole and the look-ahead is tried at blanks only, not at every character (5 times faster)."""
PAREN = re.compile(r"\(([^()]*)\)")
BY_HOST = re.compile(r"\bby\s+([^\s;()]+)", re.IGNORECASE)
BRACKET_IP = re.compile(r"\[(?:IPv6:)?([0-9A-Fa-f:.]+)\]")
PAREN_IP = re.compile(r"\(\s*(\d{1,3}(?:\.\d{1,3}){3})\s*\)")
SPAM_STATUS = re.compile(r"^\s*(yes|no)\b(?:.*?\bscore=(-?[0-9.]+))?", re.IGNORECASE | re.DOTALL)
NUMBER = re.compile(r"^\s*(-?[0-9]+(?:\.[0-9]+)?)")

FAIL_RESULTS = frozenset({"fail", "softfail", "permerror", "temperror", "policy"})
"""Results that count against a message (SPF softfail included: it is the common spoofing signal)."""


def unfold(value: str) -> str:
    if "\n" not in value and "\r" not in value:
        return value.strip()  # nothing folded (most fields): two C scans instead of the regex
    return FOLD.sub(" ", value).strip()


class Headers:
    """The top-level header fields of a message summary, indexed by lower-cased name, values unfolded."""

    __slots__ = ("_by_name",)

    def __init__(self, summary: object) -> None:
        self._by_name: dict[str, list[str]] = {}
        for item in getattr(summary, "headers", None) or ():
            if isinstance(item, tuple) and len(item) == 2:
                self._by_name.setdefault(str(item[0]).lower(), []).append(unfold(str(item[1])))

    @classmethod
    def of(cls, source: object) -> Headers:
        return source if isinstance(source, Headers) else cls(source)

    def get(self, name: str) -> list[str]:
        return self._by_name.get(name.lower(), [])

    def names(self) -> KeysView[str]:
        """The lower-cased names of the fields present."""
        return self._by_name.keys()


def header_values(source: object, name: str) -> list[str]:
    """All values of one top-level header (of a summary or a :class:`Headers`), unfolded, in order."""
    return Headers.of(source).get(name)


def strip_comments(text: str) -> str:
    previous = None
    while previous != text:
        previous, text = text, COMMENT.sub(" ", text)
    return text


def _split_semicolons(text: str) -> list[str]:
    """Split on ``;`` outside double quotes."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == ";" and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def tag_list(value: str) -> dict[str, str]:
    """A DKIM/ARC tag list ``a=b; c=d`` (RFC 6376 §3.2), tags lower-cased, spaces removed from values."""
    out: dict[str, str] = {}
    for part in value.split(";"):
        match = TAG.match(part)
        if match:
            out.setdefault(match.group(1).lower(), re.sub(r"\s+", "", match.group(2)))
    return out


@dataclass(frozen=True, slots=True)
class AuthResult:
    """One ``method=result`` of an Authentication-Results header."""

    authserv: str
    method: str
    result: str


def parse_authentication_results(value: str) -> list[AuthResult]:
    """The ``method=result`` pairs of one header (RFC 8601 §2.2).

    Microsoft's servers leave out the authserv-id (``spf=none (…) smtp.helo=x; example.org;
    dkim=none …``): a first part that is already a ``method=result`` is read as one, with an empty
    authserv-id, and parts that are not (the bare domain) are skipped.
    """
    parts = _split_semicolons(strip_comments(value))
    first = parts[0].strip().split()[0] if parts and parts[0].strip() else ""
    out: list[AuthResult] = []
    if "=" in first:  # no authserv-id: a domain name has no "="
        authserv, results = "", parts
    else:
        authserv, results = first, parts[1:]
    for part in results:
        match = RESINFO.match(part)
        if match and match.group(1).lower() != "none":
            out.append(AuthResult(authserv, match.group(1).lower(), match.group(2).lower()))
    return out


@dataclass(frozen=True, slots=True)
class Verdicts:
    """The spam-defence verdicts one message carries."""

    spf: tuple[str, ...] = ()
    dkim: tuple[str, ...] = ()
    dmarc: tuple[str, ...] = ()
    arc: tuple[str, ...] = ()
    """``arc=`` results of Authentication-Results and ``cv=`` of ARC-Seal."""
    other: tuple[tuple[str, str], ...] = ()
    """Other Authentication-Results methods (``iprev``, ``auth``, ``bimi`` ...)."""
    dkim_signatures: tuple[tuple[str, str], ...] = ()
    """(domain, selector) of each DKIM-Signature."""
    arc_instances: int = 0
    authserv: tuple[str, ...] = ()
    spam_flag: bool | None = None
    spam_score: float | None = None
    spam_source: str | None = None
    """The header the spam flag/score came from."""
    headers: tuple[str, ...] = field(default=())
    """Names of the headers the verdicts came from."""

    @property
    def empty(self) -> bool:
        return not self.headers

    def failures(self) -> list[str]:
        out = [
            f"{name}={r}"
            for name, results in (
                ("spf", self.spf),
                ("dkim", self.dkim),
                ("dmarc", self.dmarc),
                ("arc", self.arc),
            )
            for r in dict.fromkeys(results)
            if r in FAIL_RESULTS
        ]
        if self.spam_flag:
            out.append(
                f"{self.spam_source or 'spam filter'}: spam"
                + (f" (score {self.spam_score:g})" if self.spam_score is not None else "")
            )
        return out

    def to_json(self) -> dict[str, Any]:
        """The ``verdicts`` object of a message in the JSON report (docs/json-format.md)."""
        return {
            "spf": list(self.spf),
            "dkim": list(self.dkim),
            "dmarc": list(self.dmarc),
            "arc": list(self.arc),
            "dkim_signatures": [{"domain": d, "selector": s} for d, s in self.dkim_signatures],
            "arc_instances": self.arc_instances,
            "other": [{"method": m, "result": r} for m, r in self.other],
            "authserv": list(self.authserv),
            "spam_flag": self.spam_flag,
            "spam_score": self.spam_score,
            "spam_source": self.spam_source,
            "failures": self.failures(),
            "headers": list(self.headers),
        }

    def text(self) -> str:
        """One line for a person: ``spf=pass dkim=pass (d=example.org s=sel1) dmarc=pass``."""
        bits: list[str] = []
        for name, results in (
            ("spf", self.spf),
            ("dkim", self.dkim),
            ("dmarc", self.dmarc),
            ("arc", self.arc),
        ):
            if results:
                bits.append(f"{name}=" + "/".join(dict.fromkeys(results)))
        if self.dkim_signatures:
            bits.append("signed by " + ", ".join(f"d={d} s={s}" for d, s in self.dkim_signatures))
        if self.arc_instances:
            bits.append(f"ARC sets: {self.arc_instances}")
        if self.spam_flag is not None or self.spam_score is not None:
            flag = "" if self.spam_flag is None else ("spam" if self.spam_flag else "not spam")
            score = "" if self.spam_score is None else f"score {self.spam_score:g}"
            bits.append(f"{self.spam_source}: " + ", ".join(b for b in (flag, score) if b))
        return "; ".join(bits) if bits else "no verdicts"


VERDICT_HEADERS = frozenset({
    "authentication-results", "arc-authentication-results", "received-spf", "dkim-signature", "arc-seal",
    "x-spam-status", "x-spam-flag", "x-spam", "x-spam-score", "x-spamscore", "x-rspamd-score",
})
"""The header fields :func:`verdicts` reads (a message with none of them carries no verdict)."""
NO_VERDICTS = Verdicts()


def verdicts(source: object) -> Verdicts:
    """Collect the spam-defence verdicts of one message (its summary or its :class:`Headers`)."""
    if isinstance(source, Headers):
        if VERDICT_HEADERS.isdisjoint(source.names()):
            return NO_VERDICTS
    else:
        names = {str(item[0]).lower() for item in getattr(source, "headers", None) or ()
                 if isinstance(item, tuple) and len(item) == 2}
        if names.isdisjoint(VERDICT_HEADERS):
            return NO_VERDICTS  # the common case, without unfolding every field
    summary = Headers.of(source)
    spf: list[str] = []
    dkim: list[str] = []
    dmarc: list[str] = []
    arc: list[str] = []
    other: list[tuple[str, str]] = []
    authserv: list[str] = []
    found: list[str] = []
    for value in header_values(summary, "Authentication-Results") + header_values(
        summary, "ARC-Authentication-Results"
    ):
        results = parse_authentication_results(re.sub(r"^\s*i\s*=\s*\d+\s*;", "", value))
        for r in results:
            {"spf": spf, "dkim": dkim, "dmarc": dmarc, "arc": arc}.get(r.method, []).append(r.result)
            if r.method not in ("spf", "dkim", "dmarc", "arc"):
                other.append((r.method, r.result))
            if r.authserv and r.authserv not in authserv:
                authserv.append(r.authserv)
    for name in ("Authentication-Results", "ARC-Authentication-Results"):
        if header_values(summary, name):
            found.append(name)
    for value in header_values(summary, "Received-SPF"):
        word = value.split(None, 1)[0].lower() if value.split() else ""
        if word:
            spf.append(word)
            found.append("Received-SPF")
    signatures: list[tuple[str, str]] = []
    for value in header_values(summary, "DKIM-Signature"):
        tags = tag_list(value)
        signatures.append((tags.get("d", "?").lower(), tags.get("s", "?")))
        found.append("DKIM-Signature")
    seals = header_values(summary, "ARC-Seal")
    for value in seals:
        cv = tag_list(value).get("cv")
        if cv:
            arc.append(cv.lower())
        found.append("ARC-Seal")
    flag, score, source = _spam_flag(summary)
    if source:
        found.append(source)
    return Verdicts(
        spf=tuple(spf),
        dkim=tuple(dkim),
        dmarc=tuple(dmarc),
        arc=tuple(arc),
        other=tuple(other),
        dkim_signatures=tuple(signatures),
        arc_instances=len(seals),
        authserv=tuple(authserv),
        spam_flag=flag,
        spam_score=score,
        spam_source=source,
        headers=tuple(dict.fromkeys(found)),
    )


def _number(text: str) -> float | None:
    match = NUMBER.match(text)
    return parse_decimal(match.group(1)) if match else None


def _spam_flag(summary: object) -> tuple[bool | None, float | None, str | None]:
    for name in ("X-Spam-Status", "X-Spam-Flag", "X-Spam", "X-Spam-Score", "X-SpamScore", "X-Rspamd-Score"):
        values = header_values(summary, name)
        if not values:
            continue
        value = values[0]
        if name == "X-Spam-Status":
            match = SPAM_STATUS.match(value)
            if match:
                score = parse_decimal(match.group(2)) if match.group(2) else None
                return match.group(1).lower() == "yes", score, name
        elif name in ("X-Spam-Flag", "X-Spam"):
            word = value.strip().lower()
            if word in ("yes", "no", "true", "false"):
                return word in ("yes", "true"), None, name
        else:
            score = _number(value)
            if score is not None:
                return None, score, name
    return None, None, None


# --------------------------------------------------------------------------- Received chain


@dataclass(frozen=True, slots=True)
class Hop:
    """One Received header: who handed the message to whom, when."""

    index: int
    """0 for the topmost (newest) header."""
    from_name: str | None
    """The name the sender gave (HELO/EHLO), or an address literal."""
    from_rdns: str | None
    """The name the receiver found for the sender's address, when it wrote one."""
    from_ip: str | None
    by: str | None
    ts: float | None
    raw: str


_DATE_KEY = 64
"""Longest date text :func:`date_seconds` remembers (a real one is about 31 characters)."""


def date_seconds(text: str) -> float | None:
    """The epoch seconds of an RFC 5322 date (``parsedate_to_datetime``), None when it cannot be read.

    The Received and Date headers of a capture's messages name the same few seconds over and over, so
    short texts are parsed once (:func:`_cached_date_seconds`)."""
    return _cached_date_seconds(text) if len(text) <= _DATE_KEY else _date_seconds(text)


def _date_seconds(text: str) -> float | None:
    try:
        return email.utils.parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


_cached_date_seconds = lru_cache(maxsize=4096)(_date_seconds)


def parse_received(value: str, index: int = 0) -> Hop:
    text = unfold(value)
    head, _, date_text = text.rpartition(";")
    ts: float | None = None
    if head:
        ts = date_seconds(date_text.strip())
    else:
        head = text
    from_name = rdns = ip = None
    match = FROM_CLAUSE.match(head)
    if match:
        clause = match.group(1)
        first = clause.split(None, 1)[0] if clause.split() else ""
        if first and not first.startswith("("):
            from_name = first
        ip_match = BRACKET_IP.search(clause) or PAREN_IP.search(clause)
        if ip_match:
            ip = ip_match.group(1)
        for inner in PAREN.findall(clause):
            word = inner.split(None, 1)[0] if inner.split() else ""
            if looks_like_hostname(word):
                rdns = word
                break
        if ip is None and from_name and is_public_ip(from_name) is not None:
            ip = from_name.strip("[]")
    by_match = BY_HOST.search(head[match.end() :] if match else head)
    return Hop(index, from_name, rdns, ip, by_match.group(1) if by_match else None, ts, text)


def received_chain(source: object) -> list[Hop]:
    return [parse_received(v, i) for i, v in enumerate(header_values(source, "Received"))]


def _names(hop: Hop) -> set[str]:
    out: set[str] = set()
    for name in (hop.from_name, hop.from_rdns):
        if name and looks_like_hostname(name.strip("[]")):
            out.add(org_domain(name))
    return out


@dataclass(frozen=True, slots=True)
class ChainProblem:
    """Something that does not add up in a Received chain."""

    index: int
    """Hop index (0 = topmost header), -1 for the Date header."""
    text: str
    strong: bool
    """True for dates (hard to explain innocently), False for the weaker hop-continuity signal."""


def chain_problems(
    hops: Iterable[Hop], seen_ts: float | None, skew: float, future: float = 86_400.0
) -> list[ChainProblem]:
    """What does not add up in a Received chain.

    * time runs backwards: a header claims a date more than ``skew`` seconds later than the newer
      header above it (every hop adds its header on top);
    * a date more than ``future`` seconds after the moment the capture saw the message;
    * (weak) a private-network hop below a public one that it does not connect to: the hop that
      received the message from a public address names a sender whose domain is not the domain of
      the host that, per the header below, handled the message — the sign of headers written by the
      sender to make the message look as if it came from inside an organisation. Large providers
      that use several domains internally trip it too, so it is never a strong signal.
    """
    chain = list(hops)
    problems: list[ChainProblem] = []
    for newer, older in itertools.pairwise(chain):
        if newer.ts is not None and older.ts is not None and older.ts - newer.ts > skew:
            problems.append(
                ChainProblem(
                    older.index,
                    f"Received header {older.index + 1} (by {older.by or '?'}) is dated "
                    f"{_span(older.ts - newer.ts)} after the newer header above it (by {newer.by or '?'}): "
                    "time runs backwards",
                    True,
                )
            )
        if (
            older.from_ip
            and newer.from_ip
            and is_public_ip(older.from_ip) is False
            and is_public_ip(newer.from_ip)
            and older.by
            and looks_like_hostname(older.by)
        ):
            names = _names(newer)
            if names and org_domain(older.by) not in names:
                problems.append(
                    ChainProblem(
                        older.index,
                        f"hop {older.index + 1} claims a private address ({older.from_ip}) handled by "
                        f"{older.by}, but the public hop above it received the message from "
                        f"{newer.from_name or newer.from_rdns} [{newer.from_ip}]: the lower headers may "
                        "have been written by the sender",
                        False,
                    )
                )
    if seen_ts is not None:
        for hop in chain:
            if hop.ts is not None and hop.ts - seen_ts > future:
                problems.append(
                    ChainProblem(
                        hop.index,
                        f"Received header {hop.index + 1} (by {hop.by or '?'}) is dated "
                        f"{_span(hop.ts - seen_ts)} after the capture saw the message",
                        True,
                    )
                )
    return problems


def _span(seconds: float) -> str:
    if seconds >= 2 * 86_400:
        return f"{seconds / 86_400:.0f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.0f} hours"
    return f"{seconds:.0f} s"
