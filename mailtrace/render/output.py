"""Where and how the text views write: an injectable output environment (like httpie's Environment).

Views never look at ``sys.stdout``, the terminal size or the environment themselves; they get an
:class:`Output`. :meth:`Output.detect` builds the real one (terminal or pipe, ``NO_COLOR``,
``--color``/``--no-color``, ``--width``); tests build one over a ``StringIO`` at a fixed width
without colour.

Two rules follow from it. When ``width`` is None (stdout is not a terminal and no width was
asked for) nothing is wrapped or cut: every line is written whole. When a width is set, long
cells wrap with a hanging indent and still nothing is cut. Colour only ever repeats what the
text already says.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:  # rich loads when text is written, not for a JSON report
    from rich.console import Console
    from rich.text import Text

_ONE_FOR_ONE = {c: chr(0x2400 + c) for c in range(0x20)} | {0x09: " ", 0x7F: "␡"} | dict.fromkeys(
    (*range(0x80, 0xA0), *range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2066, 0x206A),
     0x2028, 0x2029, 0xFEFF), "�")
_SAFE = str.maketrans(_ONE_FOR_ONE)
_UNSAFE = re.compile("[" + "".join(f"\\u{c:04x}" for c in sorted(_ONE_FOR_ONE)) + "]")


def clean(text: str) -> str:
    """Peer-controlled text made safe for a terminal, one character for one.

    Control characters become their Unicode pictures (a bare CR shows as ``␍``, ESC as ``␛``, so
    no escape sequence from a capture ever reaches the terminal), a tab becomes a space, C1
    controls, bidi overrides and zero-width characters become ``�``. Every view passes model
    strings through this before they become rich Text (which would drop a CR silently).
    """
    # every character the table maps is unprintable to str.isprintable (Cc, Cf, Zl, Zp), which is ~30×
    # cheaper than translate; most text has none (a text view cleans every cell it writes)
    return text if text.isprintable() else text.translate(_SAFE)


MIN_INFO_WIDTH = 24
"""Narrowest a wrapped cell gets, however little room the fixed columns leave."""

THEME_STYLES = {
    "client": "cyan",
    "server": "magenta",
    "dim": "bright_black",
    "header": "bold",
    "title": "bold",
    "caption": "bold",
    "tone.ok": "green",
    "tone.warn": "yellow",
    "tone.fail": "bold red",
    "tone.info": "default",
    "code.2": "green",
    "code.3": "blue",
    "code.4": "yellow",
    "code.5": "bold red",
    "anomaly": "bold red",
    "gap": "bold yellow",
    "decrypted": "green",
    "tls": "blue",
    "message": "bold",
    "phase.setup": "bright_black",
    "phase.greeting": "cyan",
    "phase.negotiation": "blue",
    "phase.tls": "green",
    "phase.auth": "yellow",
    "phase.transfer": "magenta",
    "phase.teardown": "bright_black",
    "phase.context": "blue",
    "context": "bright_black",
    "status.completed": "green",
    "status.failed": "bold red",
    "status.reset": "yellow",
    "status.partial": "yellow",
    "control": "reverse",
}


@dataclass
class Output:
    """An output stream and what is known about it."""

    stream: IO[str]
    width: int | None = None
    """Wrap at this many columns; None never wraps (the stream is not a terminal)."""
    color: bool = False
    isatty: bool = False
    err: IO[str] | None = None
    """Where progress goes (stderr); None means nowhere."""
    err_isatty: bool = False
    interrupt: Callable[[], AbstractContextManager[None]] = field(default=nullcontext)
    """Wraps every write: a live progress display uses it to step aside while text is printed."""
    _console: Console | None = field(default=None, init=False, repr=False)

    @classmethod
    def detect(cls, *, color: bool | None = None, width: int | None = None, stream: IO[str] | None = None,
               err: IO[str] | None = None, environ: Mapping[str, str] | None = None) -> Output:
        """The real environment: colour on a terminal unless NO_COLOR/--no-color; wrapping only there."""
        env = os.environ if environ is None else environ
        out = sys.stdout if stream is None else stream
        errs = sys.stderr if err is None else err
        isatty = _isatty(out)
        if color is None:
            color = isatty and not env.get("NO_COLOR") and env.get("TERM") != "dumb"
        if width is None and isatty:
            width = shutil.get_terminal_size((120, 24)).columns
        return cls(out, width, color, isatty, errs, _isatty(errs))

    @property
    def console(self) -> Console:
        """A rich console over the stream (used for wrapping and for colour)."""
        if self._console is None:
            from rich.console import Console
            from rich.theme import Theme

            self._console = Console(
                file=self.stream, width=self.width or 10_000, theme=Theme(THEME_STYLES), force_terminal=self.color,
                color_system="standard" if self.color else None, no_color=not self.color, highlight=False,
                markup=False, emoji=False, soft_wrap=True, legacy_windows=False,
            )
        return self._console

    def write(self, line: Text | str) -> None:
        """One line (without its newline), with its styles when colour is on."""
        if isinstance(line, str):
            self.stream.write(clean(line) + "\n")
            return
        if not self.color:
            self._plain(line.plain)
            return
        if _UNSAFE.search(line.plain):  # a last guard: nothing from a capture may drive the terminal
            from rich.text import Text

            line = Text(clean(line.plain), style=line.style, spans=line.spans)
        self.stream.write(self._ansi(line) + "\n")

    def _plain(self, text: str) -> None:
        """An uncoloured line, given its characters (the same last guard as for coloured ones)."""
        self.stream.write((clean(text) if _UNSAFE.search(text) else text) + "\n")

    def _ansi(self, line: Text) -> str:
        """The line with ANSI styles; much cheaper than ``Console.print`` for one unwrapped line."""
        console = self.console
        system = console.color_system and console._color_system  # the console's own choice
        out = []
        for segment in line.render(console):
            style = segment.style
            out.append(style.render(segment.text, color_system=system) if style and system else segment.text)
        return "".join(out)

    def cells(self, prefix: Text, body: Text, *, indent: int | None = None) -> None:
        """``prefix`` then ``body``; with a width, the body wraps under itself (hanging indent)."""
        start = prefix.cell_len if indent is None else indent
        if self.width is None or (body.cell_len <= max(self.width - start, MIN_INFO_WIDTH)
                                  and "\n" not in body.plain):
            if self.color:
                self.write(prefix + body)
            else:  # the same characters without joining two Texts (most of a piped table's cost)
                self._plain(prefix.plain + body.plain)
            return
        from rich.text import Text

        room = max(self.width - start, MIN_INFO_WIDTH)
        lines = body.wrap(self.console, room, overflow="fold") if body.plain else [Text()]
        pad = Text(" " * start)
        for i, piece in enumerate(lines):
            piece.rstrip()
            self.write((prefix if i == 0 else pad) + piece)

    def pieces(self, parts: list[Text], *, separator: Text, indent: int = 0) -> None:
        """Parts joined by ``separator``; with a width, lines break between parts, and a part longer
        than a line (a TLS summary, a certificate's names) wraps on lines of its own."""
        from rich.text import Text

        if self.width is None:
            self.write(Text(" " * indent) + separator.join(parts))
            return
        line = Text(" " * indent)
        filled = False
        for part in parts:
            if filled and line.cell_len + separator.cell_len + part.cell_len > self.width:
                self.write(line)
                line = Text(" " * (indent + 2))
                filled = False
            if not filled and line.cell_len + part.cell_len > self.width:
                self.cells(line, part, indent=line.cell_len + 2)
                line = Text(" " * (indent + 2))
                continue
            if filled:
                line.append_text(separator)
            line.append_text(part)
            filled = True
        if filled:
            self.write(line)

    def paragraph(self, body: Text, *, indent: int = 0, hang: int = 0) -> None:
        """Free text; with a width it wraps, continuation lines indented by ``hang`` more."""
        from rich.text import Text

        self.cells(Text(" " * indent), body, indent=indent + hang)

    @contextmanager
    def block(self) -> Iterator[None]:
        """Group writes that belong together (a whole session) under one ``interrupt``."""
        with self.interrupt():
            yield
        self.stream.flush()


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def utc(ts: float, *, millis: bool = True) -> str:
    """Capture time as UTC text (``2026-11-26 13:22:24.092``); a damaged capture's time past the calendar
    (a pcapng timestamp resolution or offset gone wrong) as its epoch seconds."""
    try:
        moment = datetime.fromtimestamp(ts, UTC)
    except (OverflowError, OSError, ValueError):
        return f"{ts:.3f} (epoch seconds)" if millis else f"{ts:.0f} (epoch seconds)"
    return moment.strftime("%Y-%m-%d %H:%M:%S") + (f".{moment.microsecond // 1000:03d}" if millis else "")
