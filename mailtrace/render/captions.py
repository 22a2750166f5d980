"""Captions: group a session's rows into the steps a textbook trace shows, each with a caption.

Shared by the terminal and HTML views (one source of truth for what a step is called). A step is a
run of rows under one caption, e.g. "TCP connection set up from the user agent ... (SYN, SYN/ACK,
ACK)" or "recipient transferred and accepted".
"""

from __future__ import annotations

from dataclasses import dataclass

from mailtrace.model import Phase
from mailtrace.session import PacketRow, Session


@dataclass(frozen=True)
class Step:
    """Rows under one caption."""

    phase: Phase
    caption: str
    rows: tuple[PacketRow, ...]


def steps(session: Session, *, lang: str = "en") -> list[Step]:
    """The captioned steps of a session, in row order (interim: one step per phase block)."""
    del lang
    return [Step(block.phase, block.phase.value, tuple(session.rows[block.first_row : block.last_row + 1]))
            for block in session.phases]
