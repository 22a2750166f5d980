"""Lines of a session's packet table, shared by the terminal and HTML views.

A message carried by many segments is one line (its size and subject), with the peer's pure ACKs
between those segments folded in: the same rule in every view, so both show the same lines.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field

from mailtrace.model import Event
from mailtrace.render.catalog import text
from mailtrace.session import PacketRow, Session

__all__ = ["PacketGroup", "group_rows", "retransmission_mark"]


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
