"""What an SMTP reply means, as lines to show under its row (the terminal view's and the HTML report's).

A failure code is read digit by digit (RFC 5321 §4.2.1) and by its enhanced status code (RFC 3463);
a positive answer to EHLO lists the extensions the server offers, each explained. Positive replies
(2yz/3yz) are read digit by digit too where a learner meets something new: every intermediate reply
(3yz: ``354`` start the message, ``334`` the next step of a login — the server waits for more) and the
completions that say more than "done" (``235`` authenticated, ``251``/``252`` about a recipient, ``211``/
``214``). The everyday completions — ``250``, the ``220`` greeting, the ``221`` goodbye, which the
captions already narrate — stay one row per reply (:data:`ORDINARY`). ``positive=True`` explains every
positive code the tables define, ``positive=False`` only failures and extensions. A generic
enhanced code (``5.0.0``, ``4.7.0``) adds nothing to the reply code: a failure shows it after the
reply code's meaning, a positive reply leaves it out. The sentences come from
:mod:`mailtrace.protocols.smtp_codes` and the view catalogue (``explain.*`` keys of
:mod:`mailtrace.render.catalog`), so a translated catalogue translates them too.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from dataclasses import dataclass

from mailtrace.model import Reply
from mailtrace.protocols.smtp_codes import explain_keyword, explain_reply
from mailtrace.render.catalog import text

__all__ = ["ORDINARY", "ReplyExplanation", "explain_challenge", "explain_smtp_reply"]

ORDINARY = frozenset({"220", "221", "250"})
"""Positive replies the table views leave unexplained by default: every session has them, and the
caption of their step already says what they mean (ready, accepted, goodbye)."""


@dataclass(frozen=True, slots=True)
class ReplyExplanation:
    """The lines that explain one reply."""

    kind: str
    """``failure`` (a 4yz/5yz reply), ``positive`` (a 2yz/3yz reply whose code the tables define) or
    ``extensions`` (the keywords of a positive EHLO reply)."""
    lines: tuple[str, ...]
    extensions: int = 0
    """``extensions``: the keywords explained, with those past :data:`MAX_EXTENSIONS_EXPLAINED` (counted in
    the last line) — not ``len(lines)``."""


MAX_CHALLENGE_SHOWN = 120


def sasl_challenge_text(token: str) -> str | None:
    """What a base64 SASL challenge says, when it is text (AUTH LOGIN's ``VXNlcm5hbWU6`` is "Username:",
    CRAM-MD5's is ``<id@host>``); None for an empty or binary one. Challenges are no secret."""
    token = token.strip()
    if not token or len(token) > 4 * MAX_CHALLENGE_SHOWN:
        return None
    try:
        raw = base64.b64decode(token, validate=True)
    except (binascii.Error, ValueError):
        return None
    try:
        decoded = raw.decode("ascii")
    except UnicodeDecodeError:
        return None
    if not decoded or not decoded.isprintable():
        return None
    return decoded if len(decoded) <= MAX_CHALLENGE_SHOWN else decoded[:MAX_CHALLENGE_SHOWN] + "…"


def explain_challenge(reply: Reply, lang: str = "en") -> ReplyExplanation | None:
    """A POP3/IMAP SASL continuation (``+ VXNlcm5hbWU6``) whose challenge is base64 text: what it says,
    as SMTP's 334 gets it."""
    if reply.status != "+" or not reply.lines:
        return None
    line = _challenge_line(reply.lines[0], lang)
    return ReplyExplanation("positive", (line,)) if line is not None else None


def _challenge_line(token: str, lang: str) -> str | None:
    challenge = sasl_challenge_text(token)
    return text("explain.challenge", lang, text=challenge) if challenge is not None else None


def once_each(found: list[ReplyExplanation], lang: str = "en") -> list[ReplyExplanation]:
    """The explanations of a row's replies, each told once: the same refusal repeated by fifty pipelined
    replies is one explanation with ``(×50)`` on its first line, not a hundred lines."""
    counts: dict[ReplyExplanation, int] = {}
    for explanation in found:
        counts[explanation] = counts.get(explanation, 0) + 1
    return [e if n == 1 else dataclasses.replace(e, lines=(text("repeat", lang, caption=e.lines[0], n=n), *e.lines[1:]))
            for e, n in counts.items()]


MAX_EXTENSIONS_EXPLAINED = 32
"""EHLO keywords explained under a reply when it has more than twice as many (real servers announce a
dozen or two; a hostile one can send 200,000 lines); the rest are counted."""


def explain_smtp_reply(reply: Reply, lang: str = "en", *,
                       positive: bool | None = None) -> ReplyExplanation | None:
    """The explanation of an SMTP reply, or None when there is nothing to explain.

    Failures (4yz/5yz) and the extensions of a positive EHLO reply are always explained. A 2yz/3yz reply
    is explained when the tables define its code (``354``, not ``299``) and ``positive`` says so: None
    (the views' default) for the codes outside :data:`ORDINARY`, True for all of them, False for none."""
    status = reply.status
    if len(status) != 3 or not status.isdigit():
        return None
    if reply.answers == "EHLO" and status.startswith("2"):
        keywords = reply.lines[1:]
        shown = keywords if len(keywords) <= 2 * MAX_EXTENSIONS_EXPLAINED else keywords[:MAX_EXTENSIONS_EXPLAINED]
        lines = []
        for line in shown:
            keyword, meaning = explain_keyword(line, lang)
            if meaning:
                lines.append(text("explain.extension", lang, keyword=keyword, meaning=meaning))
        if lines:
            rest = len(keywords) - len(shown) + reply.lines_dropped  # and those the dissector did not keep
            if rest:
                lines.append(text("more.like", lang, n=rest))
            return ReplyExplanation("extensions", tuple(lines), len(lines) - (1 if rest else 0) + rest)
    m = explain_reply(status, reply.lines[0] if reply.lines else "", lang)
    if m is None:
        return None
    failure = status[0] in "45"
    wanted = status not in ORDINARY if positive is None else positive
    if not failure and (not wanted or status[0] not in "23" or m.meaning is None):
        return None  # only a code the tables define, and an ordinary one only on request
    lines = [text("explain.reply", lang, code=m.code, outcome=m.outcome, category=m.category,
                  meaning=f" — {m.meaning}" if m.meaning else "")]
    if m.enhanced and m.enhanced_meaning and (failure or not m.generic):
        lines.append(text("explain.enhanced", lang, code=m.enhanced, meaning=m.enhanced_meaning))
    challenge = _challenge_line(reply.lines[0] if reply.lines else "", lang) if status == "334" else None
    if challenge is not None:
        lines.append(challenge)
    return ReplyExplanation("failure" if failure else "positive", tuple(lines))
