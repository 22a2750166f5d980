"""Helpers of the POP3/IMAP dissector tests: shared captures, streams from the real pipeline, feeding.

Streams come from mailtrace's own pipeline (``SessionLimits(keep_transcript=True)``), so a test
feeds a dissector exactly what the engine would; synthetic conversations are written as
``C(b"...")`` / ``S(b"...")`` steps with one frame per step.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from mailtrace.capture.reader import open_capture
from mailtrace.config import Config
from mailtrace.model import (
    CLIENT,
    SERVER,
    BodyData,
    Chunk,
    Eof,
    Event,
    MessageData,
    MessageEnd,
    StreamGap,
    StreamItem,
)
from mailtrace.pipeline import Analyzer
from mailtrace.protocols.base import DissectorLimits
from mailtrace.session import Session, SessionLimits

Item = StreamItem


def shared_dir() -> Path:
    """The shared data folder: ``$MAILTRACE_SHARED`` or the repository's sibling ``shared``."""
    env = os.environ.get("MAILTRACE_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared"


def captures_dir() -> Path:
    return shared_dir() / "samples-src" / "captures"


def analyze(path: Path, *, show_secrets: bool = False) -> list[Session]:
    """Run a capture through the real pipeline, keeping every session's reassembled stream."""
    config = Config()
    config = replace(
        config,
        session=SessionLimits(keep_transcript=True),
        dissector=replace(config.dissector, show_secrets=show_secrets),
        show_secrets=show_secrets,
    )
    return list(Analyzer(config).run([open_capture(str(path))]))


def stream_items(session: Session) -> list[Item]:
    """The session's reassembled stream as the dissector was fed it (chunks and gaps, then EOF)."""
    items: list[Item] = []
    for piece in session.transcript:
        if piece.gap:
            items.append(StreamGap(piece.direction, piece.gap, piece.ts, piece.frame))
        else:
            items.append(Chunk(piece.direction, piece.data, piece.ts, piece.frame))
    last = session.transcript[-1] if session.transcript else None
    ts, frame = (last.ts, last.frame) if last else (0.0, 1)
    items += [Eof(CLIENT, ts, frame), Eof(SERVER, ts, frame)]
    return items


def feed(cls: Any, items: Iterable[Item], limits: DissectorLimits | None = None) -> tuple[list[Event], Any]:
    """Feed items to a fresh dissector; return all events (finish included) and the dissector."""
    dissector = cls(limits or DissectorLimits())
    events: list[Event] = []
    for item in items:
        events += dissector.feed(item)
    events += dissector.finish()
    return events, dissector


def resplit(items: Sequence[Item], sizes: Sequence[int]) -> list[Item]:
    """Every chunk cut into pieces whose lengths cycle through ``sizes`` (same frame and time each)."""
    out: list[Item] = []
    k = 0
    for item in items:
        if not isinstance(item, Chunk) or not sizes:
            out.append(item)
            continue
        data, pos = item.data, 0
        while pos < len(data):
            step = max(1, sizes[k % len(sizes)])
            k += 1
            out.append(Chunk(item.direction, data[pos : pos + step], item.ts, item.frame))
            pos += step
    return out


def split_at(items: Sequence[Item], index: int, offset: int) -> list[Item]:
    """Chunk ``index`` cut in two at ``offset``; the rest unchanged."""
    item = items[index]
    assert isinstance(item, Chunk)
    return [
        *items[:index],
        Chunk(item.direction, item.data[:offset], item.ts, item.frame),
        Chunk(item.direction, item.data[offset:], item.ts, item.frame),
        *items[index + 1 :],
    ]


def normalized(events: Sequence[Event]) -> tuple[list[Any], dict[int, int]]:
    """Events with the split-dependent ones folded: message bytes joined, BodyData summed per frame.

    A dissector reports the bytes of a message as they arrive, so how many MessageData/BodyData
    events it emits depends on how the stream was cut; everything else must be identical.
    """
    out: list[Any] = []
    body: dict[int, int] = {}
    data = bytearray()
    for event in events:
        if isinstance(event, MessageData):
            data += event.data
            continue
        if isinstance(event, BodyData):
            body[event.frame] = body.get(event.frame, 0) + event.nbytes
            continue
        if isinstance(event, MessageEnd):
            out.append(("message-bytes", bytes(data)))
            data.clear()
        out.append(event)
    if data:
        out.append(("message-bytes", bytes(data)))
    return out, body


def messages(events: Sequence[Event]) -> list[tuple[MessageEnd, bytes]]:
    """Each MessageEnd with the bytes the MessageData events before it carried."""
    found: list[tuple[MessageEnd, bytes]] = []
    data = bytearray()
    for event in events:
        if isinstance(event, MessageData):
            data += event.data
        elif isinstance(event, MessageEnd):
            found.append((event, bytes(data)))
            data.clear()
    return found


class Script:
    """A synthetic conversation: one frame per step, times 10 ms apart."""

    def __init__(self) -> None:
        self.items: list[Item] = []
        self.frame = 0

    def _next(self) -> tuple[int, float]:
        self.frame += 1
        return self.frame, 1000.0 + self.frame / 100

    def c(self, data: bytes) -> Script:
        frame, ts = self._next()
        self.items.append(Chunk(CLIENT, data, ts, frame))
        return self

    def s(self, data: bytes) -> Script:
        frame, ts = self._next()
        self.items.append(Chunk(SERVER, data, ts, frame))
        return self

    def gap(self, direction: Any, nbytes: int) -> Script:
        frame, ts = self._next()
        self.items.append(StreamGap(direction, nbytes, ts, frame))
        return self

    def end(self) -> list[Item]:
        frame, ts = self._next()
        return [*self.items, Eof(CLIENT, ts, frame), Eof(SERVER, ts, frame)]


def of_type(events: Iterable[Event], kind: type[Any]) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


INSERTS = (
    b"{5}\r\n",
    b"~{99}\r\n",
    b"{7+}\r\n",
    b"\r\n.\r\n",
    b"+OK\r\n",
    b"-ERR\r\n",
    b"+ \r\n",
    b"* 1 FETCH (BODY[] {3}\r\n",
    b"a OK\r\n",
    b"{4294967296}\r\n",
    b"\xff\xfe\x00",
    b"DONE\r\n",
)


def mutated(items: Sequence[Item], rng: Any) -> list[Item]:
    """A damaged copy of a real stream: slices lost (gaps), bytes flipped, hostile tokens inserted."""
    out: list[Item] = []
    for item in items:
        if not isinstance(item, Chunk) or rng.random() >= 0.15:
            out.append(item)
            continue
        data = bytearray(item.data)
        op = rng.randrange(4)
        if op == 0 and data:
            a = rng.randrange(len(data))
            b = min(len(data), a + rng.randrange(1, 300))
            out += [
                Chunk(item.direction, bytes(data[:a]), item.ts, item.frame),
                StreamGap(item.direction, b - a, item.ts, item.frame),
                Chunk(item.direction, bytes(data[b:]), item.ts, item.frame),
            ]
            continue
        if op == 1 and data:
            for _ in range(rng.randrange(1, 5)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif op == 2:
            at = rng.randrange(len(data) + 1)
            data[at:at] = rng.choice(INSERTS)
        elif op == 3:
            continue  # a chunk missing without a gap: framing the dissector cannot expect
        out.append(Chunk(item.direction, bytes(data), item.ts, item.frame))
    return out
