"""``--follow``: the raw conversation of a session, like Wireshark's Follow TCP Stream.

The transcript is the reassembled TCP payload of both directions as it was on the wire (kept by
the session builder only when ``--follow`` is asked). Consecutive bytes of one direction form a
block; every line shows the frame it starts in and who sent it (``C``/``S``, so colour is never
needed to tell them apart). Line ends are CR LF as the mail protocols want them; anything else is
made visible: a bare LF as ``␊``, a bare CR as ``␍``, other control characters as their Unicode
pictures (``␀``, ``␉``, ``␛``), format characters such as bidi overrides as ``\\u202e``, bytes
that are not UTF-8 as ``\\xff``. Lost bytes are a line of their own with their count, and bytes
after the switch to TLS are summarised instead of being shown as noise. Credentials are hidden as in
the other views (:mod:`mailtrace.render.redact`) unless ``--show-secrets`` is given.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.text import Text

from mailtrace.model import Direction, TlsStart
from mailtrace.pipeline import CaptureStats
from mailtrace.render.catalog import text
from mailtrace.render.output import Output
from mailtrace.render.redact import CredentialRedactor
from mailtrace.session import Session


@dataclass
class Block:
    """Consecutive bytes of one direction (or a hole in it)."""

    direction: Direction
    frame: int
    data: bytearray = field(default_factory=bytearray)
    gap: int = 0
    tls: bool = False
    decrypted: bool = False
    """Plaintext decrypted from the TLS records (with ``--tls-keylog``)."""
    starts: list[tuple[int, int]] = field(default_factory=list)
    """(offset in ``data``, frame) where each segment's bytes begin."""

    def frame_at(self, offset: int) -> int:
        """The frame that carried the byte at ``offset``."""
        frame = self.frame
        for start, seg_frame in self.starts:
            if start > offset:
                break
            frame = seg_frame
        return frame


def tls_boundary(session: Session) -> tuple[int, bool] | None:
    """The frame where TLS starts and whether that frame is TLS itself; None if never (or cleartext)."""
    if session.tls == "none" or any(a.kind == "plaintext-after-tls" for a in session.anomalies):
        return None
    midstream = any(a.kind == "mid-stream-tls" for a in session.anomalies)
    for row in session.rows:
        for event in row.events or ():
            if isinstance(event, TlsStart):
                return event.frame, event.mode == "implicit" or midstream
    return None


def blocks(session: Session) -> list[Block]:
    """The session's transcript as direction blocks (TLS bytes kept, but flagged). A session decrypted
    with a key log shows the plaintext in place of its TLS records, as Wireshark's Follow TLS Stream."""
    boundary = tls_boundary(session)
    plaintext = any(p.decrypted for p in session.transcript)
    out: list[Block] = []
    for piece in session.transcript:
        is_tls = not piece.decrypted and boundary is not None and (
            piece.frame > boundary[0] or (piece.frame == boundary[0] and boundary[1]))
        if is_tls and plaintext:
            continue  # the records' plaintext follows as pieces of its own
        if piece.gap:
            out.append(Block(piece.direction, piece.frame, gap=piece.gap))
            continue
        last = out[-1] if out else None
        if last is None or last.gap or last.direction is not piece.direction or last.tls != is_tls \
                or last.decrypted != piece.decrypted:
            last = Block(piece.direction, piece.frame, tls=is_tls, decrypted=piece.decrypted)
            out.append(last)
        last.starts.append((len(last.data), piece.frame))
        last.data += piece.data
    return out


_PICTURES = {0x7F: "␡"} | {b: chr(0x2400 + b) for b in range(0x20)}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PICTURE = re.compile(r"[\u2400-\u2421]")


def visible(line: str) -> str:
    """A line's characters with control and format characters made visible."""
    if line.isascii():
        return _CONTROL.sub(lambda m: _PICTURES[ord(m.group())], line)
    out = []
    for ch in line:
        code = ord(ch)
        if code < 0x20 or code == 0x7F:
            out.append(_PICTURES[code])
        elif code >= 0x80 and unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def lines(data: bytes, shown: Callable[[bytes], bytes] | None = None) -> list[tuple[int, str]]:
    """(offset, visible text) per line; CR LF ends a line silently, a bare LF shows as ``␊``.

    ``shown`` gives each line's bytes as they may be shown (credentials hidden)."""
    out: list[tuple[int, str]] = []
    start = 0
    size = len(data)
    while start < size:
        end = data.find(b"\n", start)
        if end < 0:
            raw, ending, after = data[start:], "", size
        elif end > start and data[end - 1] == 0x0D:
            raw, ending, after = data[start : end - 1], "", end + 1
        else:
            raw, ending, after = data[start:end], "␊", end + 1
        if shown is not None:
            raw = shown(raw)
        out.append((start, visible(raw.decode("utf-8", "backslashreplace")) + ending))
        start = after
    return out


class FollowRenderer:
    """Writes each session's conversation; nothing at the end (the output is the transcript)."""

    def __init__(self, output: Output, *, stats: CaptureStats | None = None, lang: str = "en",
                 show_secrets: bool = False) -> None:
        self.out = output
        self.lang = lang
        self.stats = stats
        self.show_secrets = show_secrets
        self._redactor: CredentialRedactor | None = None

    def t(self, key: str, **params: object) -> str:
        return text(key, self.lang, **params)

    def session(self, s: Session) -> None:
        with self.out.block():
            self.render(s)

    def end(self, stats: CaptureStats, elapsed: float) -> None:
        del stats, elapsed

    def render(self, s: Session) -> None:
        out = self.out
        title = Text()
        title.append(self.t("ui.session", id=s.id) + f" · {s.protocol.upper()} · ", "title")  # no peer text
        title.append(f"C {s.client}", "client")
        title.append(" → ")
        title.append(f"S {s.server}", "server")
        title.append(f" · tcp.stream eq {s.stream}", "title")
        out.paragraph(title, hang=2)
        parts = blocks(s)
        if not parts:
            out.write(Text("  " + self.t("ui.follow.empty"), "dim"))
            out.write("")
            return
        width = max(len(str(s.last_frame)), 3)
        self._redactor = None if self.show_secrets else CredentialRedactor(s.protocol)
        said_decrypted = False
        for block in parts:
            if block.decrypted and not said_decrypted:
                said_decrypted = True
                out.write(Text(" " * (width + 4) + self.t("ui.follow.decrypted"), "tls"))
            self._block(block, width)
        if s.transcript_truncated:
            out.write(Text(self.t("ui.follow.truncated", n=s.transcript_truncated), "dim"))
        out.write("")

    def _block(self, block: Block, width: int) -> None:
        client = block.direction is Direction.CLIENT
        side, style = ("C", "client") if client else ("S", "server")
        if block.gap:
            self._line(block.frame, width, side, style, Text(self.t("ui.follow.gap", n=block.gap), "gap"))
            return
        if block.tls:
            summary = Text(self.t("ui.follow.tls", n=len(block.data)), "tls")
            self._line(block.frame, width, side, style, summary)
            return
        shown = -1
        for offset, line in lines(bytes(block.data), self._shown(client)):
            frame = block.frame_at(offset)
            self._line(frame if frame != shown else None, width, side, style, _marked(line, style))
            shown = frame

    def _shown(self, client: bool) -> Callable[[bytes], bytes] | None:
        """How one side's lines may be shown: credentials hidden unless ``--show-secrets``."""
        redactor = self._redactor
        if redactor is None:
            return None
        if client:
            return redactor.client

        def server(line: bytes) -> bytes:
            redactor.server(line)
            return line

        return server

    def _line(self, frame: int | None, width: int, side: str, style: str, body: Text) -> None:
        number = f"{frame:>{width}}" if frame is not None else " " * width
        prefix = Text(f"{number} ", "dim")
        prefix.append(side, style)
        if not body.plain:
            self.out.write(prefix)
            return
        prefix.append("  ")
        self.out.cells(prefix, body, indent=width + 4)


def _marked(line: str, style: str) -> Text:
    """The line in its side's style, with the visible control pictures reversed out."""
    out = Text(line, style)
    for match in _PICTURE.finditer(line):
        out.stylize("control", match.start(), match.end())
    return out

