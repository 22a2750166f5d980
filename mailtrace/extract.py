"""Writing messages and their attachments to disk, safely and without holding them in memory.

Attachment names come from the sender and are hostile by assumption: ``../../.bashrc``,
``CON``, names with NUL or right-to-left override characters, 5000-character names.
:func:`safe_filename` turns any of them into a plain file name; :class:`MessageFileSink` streams
one message to ``DIR/<session>-<n>.eml`` and each attachment's decoded bytes to
``DIR/<session>-<n>/<name>`` while the message goes by, and refuses any path outside ``DIR``.
"""

from __future__ import annotations

import mimetypes
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from mailtrace.mime import MessageSummarizer, MessageSummary, MimeLimits, PartStart, PartWriter

__all__ = ["MAX_NAME_BYTES", "ExtractedMessage", "MessageFileSink", "safe_filename"]

MAX_NAME_BYTES = 120
"""Longest file name written, in UTF-8 bytes (file systems allow 255; leave room for numbering)."""

_MAX_EXTENSION_BYTES = 16
_RESERVED = re.compile(r"(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$)", re.IGNORECASE)
"""Windows device names: reserved with or without an extension (``nul.txt`` is the device too)."""
_NOT_ON_WINDOWS = str.maketrans(dict.fromkeys('<>:"|?*', "_"))
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
"""Controls (NUL, newlines), format characters (bidi overrides), surrogates, unassigned."""


def safe_filename(name: str | None, fallback: str, taken: set[str]) -> str:
    """A file name derived from ``name`` that is safe on Linux, macOS and Windows and not in ``taken``.

    No directory part, no ``..``, no leading dot, no control or bidi characters, no Windows
    device name, at most MAX_NAME_BYTES of UTF-8 with the extension kept. Collisions (compared
    case-insensitively, as on Windows and macOS) become ``name (2).ext``. The result is added to
    ``taken``.
    """
    base = _clean(name or "") or _clean(fallback) or "attachment"
    folded = {t.casefold() for t in taken}
    stem, ext = _split_extension(base)
    candidate = _fit(stem, ext, "")
    number = 2
    while candidate.casefold() in folded:
        candidate = _fit(stem, ext, f" ({number})")
        number += 1
    taken.add(candidate)
    return candidate


def _clean(name: str) -> str:
    text = unicodedata.normalize("NFC", name)
    text = re.split(r"[/\\]", text)[-1]  # the last path component only
    text = "".join(ch for ch in text if unicodedata.category(ch) not in _DROPPED_CATEGORIES)
    text = text.translate(_NOT_ON_WINDOWS)
    text = re.sub(r"\.{2,}", ".", text)
    text = text.strip(" .")  # leading dots hide files; Windows drops trailing dots and blanks
    if _RESERVED.fullmatch(text.split(".")[0].rstrip(" ")):
        text = "_" + text
    return text


def _split_extension(name: str) -> tuple[str, str]:
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or " " in ext or len(ext.encode()) > _MAX_EXTENSION_BYTES:
        return name, ""
    return stem, "." + ext


def _fit(stem: str, ext: str, suffix: str) -> str:
    """stem + suffix + ext within MAX_NAME_BYTES, cutting the stem at a character boundary."""
    room = MAX_NAME_BYTES - len(ext.encode()) - len(suffix.encode())
    cut = stem.encode()[:room].decode("utf-8", "ignore").rstrip(" .")
    return (cut or "attachment") + suffix + ext


def _token(text: str) -> str:
    """A session label reduced to characters that are harmless in a file name."""
    return re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9._-]", "_", text)).lstrip(".")[:64] or "session"


@dataclass(frozen=True, slots=True)
class ExtractedMessage:
    """What one MessageFileSink wrote."""

    summary: MessageSummary
    """The message summary (computed while writing)."""
    eml: Path
    """The message as carried, byte for byte."""
    attachments: tuple[Path, ...]
    """One file per attachment, decoded, in document order."""


class MessageFileSink:
    """Streams one message to ``DIR/<session>-<n>.eml`` and its attachments to ``DIR/<session>-<n>/``.

    Feed it the message bytes as they arrive; nothing is held in memory beyond the summarizer's
    limits. Existing files are never overwritten: a taken name gets a number.
    """

    def __init__(
        self,
        directory: Path,
        session: str,
        number: int,
        *,
        limits: MimeLimits | None = None,
        attachments: bool = True,
    ) -> None:
        self._root = directory.resolve()
        self._root.mkdir(parents=True, exist_ok=True)
        self._stem = f"{_token(session)}-{number}"
        self._taken: set[str] = set()
        self._written: list[Path] = []
        self._open_files: list[BinaryIO] = []
        self.eml_path, self._eml = self._create(self._root, self._stem + ".eml", set())
        hook = self._open_part if attachments else None
        self._summarizer = MessageSummarizer(limits or MimeLimits(), on_part=hook)

    def feed(self, data: bytes) -> None:
        """Next bytes of the message."""
        self._eml.write(data)
        self._summarizer.feed(data)

    def close(self, *, complete: bool = True, missing_bytes: int = 0) -> ExtractedMessage:
        """Finish the files; ``complete=False`` when the carrier lost part of the message."""
        try:
            summary = self._summarizer.close(complete=complete, missing_bytes=missing_bytes)
        finally:
            self._eml.close()
            for f in self._open_files:
                f.close()
        return ExtractedMessage(summary=summary, eml=self.eml_path, attachments=tuple(self._written))

    def __enter__(self) -> MessageFileSink:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._eml.closed:
            self.close(complete=kind is None)

    def _open_part(self, start: PartStart) -> PartWriter | None:
        if not start.is_attachment:
            return None
        folder = self._inside(self._root / self._stem)
        folder.mkdir(exist_ok=True)
        folder = self._inside(folder)  # a link planted in its place must not lead outside
        extension = mimetypes.guess_extension(start.content_type) or ".bin"
        name = safe_filename(start.filename, f"part-{start.path}{extension}", self._taken)
        path, handle = self._create(folder, name, self._taken)
        self._written.append(path)
        self._open_files.append(handle)
        return handle

    def _create(self, folder: Path, name: str, taken: set[str]) -> tuple[Path, BinaryIO]:
        """Open a new file in folder: never overwriting, never through a planted link.

        ``xb`` is O_CREAT|O_EXCL, which fails on any existing entry, dangling links included.
        """
        folder = self._inside(folder)
        for _ in range(1000):
            path = folder / name
            if path.parent != folder or name in ("", ".", ".."):
                raise ValueError(f"not a plain file name: {name!r}")
            try:
                return path, path.open("xb")
            except FileExistsError:
                taken.add(name)
                name = safe_filename(name, "attachment", taken)
        raise FileExistsError(f"no free file name for {name!r} in {folder}")

    def _inside(self, path: Path) -> Path:
        resolved = path.resolve()
        if not resolved.is_relative_to(self._root):
            raise ValueError(f"refusing to write outside {self._root}: {path}")
        return resolved
