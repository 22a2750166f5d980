"""What an SMTP reply means, as lines to show under its row (the terminal view's and the HTML report's).

A failure code is read digit by digit (RFC 5321 §4.2.1) and by its enhanced status code (RFC 3463);
a positive answer to EHLO lists the extensions the server offers, each explained. The sentences
come from :mod:`mailtrace.protocols.smtp_codes` and the view catalogue (``explain.*`` keys of
:mod:`mailtrace.render.catalog`), so a translated catalogue translates them too.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailtrace.model import Reply
from mailtrace.protocols.smtp_codes import explain_keyword, explain_reply
from mailtrace.render.catalog import text

__all__ = ["ReplyExplanation", "explain_smtp_reply"]


@dataclass(frozen=True, slots=True)
class ReplyExplanation:
    """The lines that explain one reply."""

    kind: str
    """``failure`` (a 4yz/5yz reply) or ``extensions`` (the keywords of a positive EHLO reply)."""
    lines: tuple[str, ...]


def explain_smtp_reply(reply: Reply, lang: str = "en") -> ReplyExplanation | None:
    """The explanation of an SMTP reply, or None when there is nothing to explain (2yz/3yz, not EHLO)."""
    status = reply.status
    if len(status) != 3 or not status.isdigit():
        return None
    if reply.answers == "EHLO" and status.startswith("2"):
        lines = []
        for line in reply.lines[1:]:
            keyword, meaning = explain_keyword(line, lang)
            if meaning:
                lines.append(text("explain.extension", lang, keyword=keyword, meaning=meaning))
        return ReplyExplanation("extensions", tuple(lines)) if lines else None
    if status[0] not in "45":
        return None
    m = explain_reply(status, reply.lines[0] if reply.lines else "", lang)
    if m is None:
        return None
    lines = [text("explain.reply", lang, code=m.code, outcome=m.outcome, category=m.category,
                  meaning=f" — {m.meaning}" if m.meaning else "")]
    if m.enhanced and m.enhanced_meaning:
        lines.append(text("explain.enhanced", lang, code=m.enhanced, meaning=m.enhanced_meaning))
    return ReplyExplanation("failure", tuple(lines))
