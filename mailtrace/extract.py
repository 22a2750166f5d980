"""Writing messages and their attachments to disk, safely and without holding them in memory.

Attachment names come from the sender and are hostile by assumption: ``../../.bashrc``,
``CON``, names with NUL or right-to-left override characters, 5000-character names.
:func:`safe_filename` turns any of them into a plain file name; :class:`MessageFileSink` streams
one message to ``DIR/<session>-<n>.eml`` and each attachment's decoded bytes to
``DIR/<session>-<n>/<name>`` while the message goes by, and refuses any path outside ``DIR``.
"""

from __future__ import annotations

import json
import mimetypes
import pickle
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from mailtrace.envelope import smtp_transaction
from mailtrace.mime import (
    MessageSummarizer,
    MessageSummary,
    MimeLimits,
    PartStart,
    PartWriter,
    is_embedded_message,
)
from mailtrace.protocols.imap_parse import SectionRef, section_ref
from mailtrace.render.json import dumps
from mailtrace.session import MessageRecord, Session, SessionBuilder

__all__ = [
    "MAX_NAME_BYTES",
    "UNKNOWN_MISSING",
    "ExtractError",
    "ExtractOptions",
    "ExtractedMessage",
    "Extractor",
    "MessageFileSink",
    "expected_partial",
    "header_only",
    "incomplete_reason",
    "message_stem",
    "missing_known",
    "part_extension",
    "safe_filename",
]

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


def part_extension(content_type: str) -> str:
    """The extension of the name made for a part the sender did not name (``part-1.2.eml``).

    An embedded e-mail is always ``.eml``, the extension mail clients and forensic tools open: what ``mimetypes``
    answers depends on the platform's mime.types files and registry, and for message/global it is RFC 6532's
    ``.u8msg``, which hardly anything opens."""
    if is_embedded_message(content_type):
        return ".eml"
    return mimetypes.guess_extension(content_type) or ".bin"


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
        name = safe_filename(start.filename, f"part-{start.path}{part_extension(start.content_type)}", self._taken)
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


# --------------------------------------------------------------------------- mailtrace extract

EXTRACT_FORMAT = "mailtrace-extract"
EXTRACT_VERSION = 1
INDEX_NAME = "index.json"
MAX_OPEN_FILES = 64
"""Files held open at once while messages of many connections stream in parallel (the rest reopen)."""
_STAGING_PREFIX = ".mailtrace-partial-"


class ExtractError(Exception):
    """A problem with the output directory the user can fix (one line, exit status 2)."""


@dataclass(frozen=True, slots=True)
class ExtractOptions:
    """What ``mailtrace extract`` writes."""

    messages: bool = True
    """Write each message as ``<stem>.eml``."""
    attachments: bool = True
    """Write each attachment's decoded bytes to ``<stem>/<safe name>``."""
    sessions: frozenset[int] = frozenset()
    """Only these session ids (empty: all); ``mailtrace.filters.parse_ids`` reads them as ``analyze`` does."""
    protocols: frozenset[str] = frozenset()
    """Only these protocols (empty: all)."""
    overwrite: bool = False
    """Accept a non-empty directory; files of the same names are replaced (links are replaced, not followed)."""


def message_stem(session_id: int, index: int) -> str:
    """``s0003-m02``: session 3, its second message. Never derived from anything the sender chose."""
    return f"s{session_id:04d}-m{index + 1:02d}"


def prepare_directory(directory: Path, overwrite: bool) -> Path:
    """Create ``directory`` or check it is usable; returns it resolved. Raises ExtractError."""
    if directory.is_symlink() and not directory.exists():
        raise ExtractError(f"{directory} is a dangling symbolic link: give a directory")
    if directory.exists() and not directory.is_dir():
        raise ExtractError(f"{directory} exists and is not a directory: give a new or empty directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        root = directory.resolve()
        busy = next(root.iterdir(), None) is not None
    except OSError as exc:
        raise ExtractError(f"cannot use {directory}: {exc.strerror or exc}") from exc
    if busy and not overwrite:
        raise ExtractError(f"{directory} is not empty: give a new or empty directory, or add --overwrite "
                           f"to replace files of the same names")
    return root


class _FilePool:
    """Keeps at most ``limit`` files open; the least recently written one is closed and reopened later."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: dict[_PooledFile, BinaryIO] = {}

    def handle(self, f: _PooledFile) -> BinaryIO:
        handle = self.open.pop(f, None)
        if handle is None:
            if len(self.open) >= self.limit:
                oldest = next(iter(self.open))
                self.open.pop(oldest).close()
            handle = f.path.open("ab" if f.created else "xb")
            f.created = True
        self.open[f] = handle  # most recently used last
        return handle

    def release(self, f: _PooledFile) -> None:
        handle = self.open.pop(f, None)
        if handle is not None:
            handle.close()
        elif not f.created:
            f.path.open("xb").close()  # an empty part is an empty file
            f.created = True

    def close_all(self) -> None:
        while self.open:
            self.open.popitem()[1].close()


class _PooledFile:
    """A file in the staging folder written through the pool; counts its bytes."""

    __slots__ = ("created", "path", "pool", "size")

    def __init__(self, pool: _FilePool, path: Path) -> None:
        self.pool = pool
        self.path = path
        self.created = False
        self.size = 0

    def write(self, data: bytes, /) -> int:
        self.size += len(data)
        return self.pool.handle(self).write(data)

    def close(self) -> None:
        self.pool.release(self)


@dataclass(slots=True)
class _StagedAttachment:
    part: str
    name: str
    file: _PooledFile


@dataclass(frozen=True, slots=True)
class _Written:
    """What an ended message left in the staging folder: what its ``index.json`` entry needs."""

    eml: Path | None
    """Its .eml, when one was written."""
    folder: Path
    """The folder of its attachments."""
    attachments: tuple[tuple[str, str, int], ...]
    """(MIME part, file name, bytes) of each attachment written."""

    def discard(self) -> None:
        if self.eml is not None:
            self.eml.unlink(missing_ok=True)
        if self.attachments:
            shutil.rmtree(self.folder, ignore_errors=True)


class _StagedMessage:
    """The sink of one message: its .eml and its attachments, written under the staging folder.

    The session id (and so the final file names) is only known when the session ends; until then
    the files carry a sequence number and live in a folder only this run writes to.
    """

    def __init__(self, run: Extractor, key: tuple[str, int, int], seq: int, *, spill: bool = False) -> None:
        self.run = run
        self.key = key
        self.spill = spill
        """The session lists no more messages (``SessionLimits.max_messages``): the record waits on disk."""
        self.eml = _PooledFile(run.pool, run.staging / f"{seq}.eml") if run.options.messages else None
        self.folder = run.staging / str(seq)
        self.attachments: list[_StagedAttachment] = []
        self.taken: set[str] = set()

    def write(self, data: bytes) -> None:
        if self.eml is not None:
            self.eml.write(data)

    def on_part(self, start: PartStart) -> PartWriter | None:
        if not self.run.options.attachments or not start.is_attachment:
            return None
        if not self.attachments:
            self.folder.mkdir()
        name = safe_filename(start.filename, f"part-{start.path}{part_extension(start.content_type)}", self.taken)
        path = self.folder / name
        if path.parent != self.folder:  # safe_filename makes this impossible; checked all the same
            raise ValueError(f"not a plain file name: {name!r}")
        writer = _PooledFile(self.run.pool, path)
        self.attachments.append(_StagedAttachment(start.path, name, writer))
        return writer

    def close(self, record: MessageRecord) -> None:
        if self.eml is not None:
            self.eml.close()
        for a in self.attachments:
            a.file.close()  # normally closed by the summarizer already: then a no-op
        eml = self.eml.path if self.eml is not None and self.eml.created else None
        written = _Written(eml, self.folder, tuple((a.part, a.name, a.file.size) for a in self.attachments))
        self.run.staged(self.key, record, written, spill=self.spill)


class _Spill:
    """The ended messages of one session past those it lists, waiting on disk for the session to end:
    held in memory, a session of 50,000 messages took ``extract`` to 209 MiB."""

    def __init__(self, pool: _FilePool, path: Path) -> None:
        self.file = _PooledFile(pool, path)

    def add(self, record: MessageRecord, written: _Written) -> None:
        self.file.write(pickle.dumps((record, written), protocol=pickle.HIGHEST_PROTOCOL))

    def read(self) -> Iterator[tuple[MessageRecord, _Written]]:
        """The messages in the order they ended; the file is gone afterwards."""
        self.file.close()
        try:
            with self.file.path.open("rb") as f:
                while True:
                    try:
                        yield pickle.load(f)  # noqa: S301 - written above, in a folder only this run writes to
                    except EOFError:
                        return
        finally:
            self.file.path.unlink(missing_ok=True)


@dataclass(slots=True)
class ExtractTotals:
    """What a run wrote, for the summary line and ``index.json``."""

    sessions: int = 0
    """Sessions whose messages were looked at (after the filters)."""
    messages: int = 0
    """Messages listed in the index."""
    eml_files: int = 0
    attachments: int = 0
    bytes_written: int = 0
    incomplete: int = 0
    """Messages the capture does not hold whole (lost bytes, a reset, the capture's end)."""
    partial: int = 0
    """Messages that are part of one because the client asked for part (POP3 TOP, IMAP header fetches)."""
    truncated: int = 0
    incomplete_list: list[tuple[str, str]] = field(default_factory=list)
    """(message label, reason) of the first incomplete messages."""
    partial_list: list[tuple[str, str]] = field(default_factory=list)
    """(message label, reason) of the first messages partial by request."""
    sessions_seen: set[int] = field(default_factory=set)
    """Every session id the captures hold (filtered or not): an unknown ``--session`` is one not in it."""
    sessions_matched: int = 0
    """Sessions that passed the filters (``--session``, ``-p``), with messages or without."""
    encrypted: int = 0
    """Sessions (after the filters) that used TLS and could not be decrypted: their messages are not
    readable, so none of them can be extracted (``--tls-keylog`` gives the keys)."""


MAX_LISTED_INCOMPLETE = 20

UNKNOWN_MISSING = 1
"""The ``missing_bytes`` the dissectors give when bytes are missing but not how many (the end never came).

The model has no separate flag, so a message that really lost exactly one byte looks the same: the
views treat 1 as "an unknown amount" (docs/extract.md)."""


def missing_known(missing_bytes: int) -> bool:
    """``missing_bytes`` is a count (not zero, not the placeholder :data:`UNKNOWN_MISSING`)."""
    return missing_bytes > UNKNOWN_MISSING


def _fetched_section(record: MessageRecord) -> SectionRef | None:
    """The IMAP FETCH item that carried the message (``BODY.PEEK[HEADER]``, ``RFC822.HEADER``, …), parsed."""
    if record.origin != "imap-fetch":
        return None
    section = str(record.detail.get("section") or "").strip()
    if not section or "+" in section:  # BODY[HEADER]+BODY[TEXT] of one response: the whole message
        return None
    if section.upper() in ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        return SectionRef("BODY", section.upper())  # a bare section name
    return section_ref(section)


def header_only(record: MessageRecord) -> bool:
    """An IMAP fetch of the message's header alone, all of it or some fields: ``BODY[HEADER]``,
    ``BODY.PEEK[HEADER.FIELDS (SUBJECT)]``, ``BODY[HEADER.FIELDS.NOT (…)]``, ``RFC822.HEADER``, in any case."""
    ref = _fetched_section(record)
    return ref is not None and ref.kind == "header"


def _byte_range(session: Session, record: MessageRecord) -> bool:
    """An IMAP fetch of part of the message's bytes (``BODY[]<0.4096>``) that came back whole."""
    if record.origin != "imap-fetch" or record.summary.missing_bytes:
        return False
    ref = _fetched_section(record)
    if ref is None or ref.kind != "message":
        return False
    if record.detail.get("partial") or ref.origin is not None:
        return True
    return ref.item == "BODY" and session.close == "fin"


def expected_partial(session: Session, record: MessageRecord) -> bool:
    """The message is incomplete because the client asked for part of it (POP3 TOP, an IMAP header
    or byte-range fetch), not because anything was lost."""
    if record.summary.complete or _lost_bytes(session, record):
        return False  # a TOP whose reply lost bytes in a gap is incomplete, whatever was asked for
    return record.origin == "pop3-top" or header_only(record) or _byte_range(session, record)


def _lost_bytes(session: Session, record: MessageRecord) -> int:
    """Bytes a TCP gap took from the message (a hole is reported when it becomes certain, which can be
    after the message's last frame: up to the next message in that direction)."""
    later = [m.first_frame for m in session.messages if m.index > record.index and m.direction is record.direction]
    until = min(later) if later else session.last_frame + 1
    return sum(g.nbytes for g in session.gaps
               if g.direction is record.direction and record.first_frame <= g.frame < until)


def incomplete_reason(session: Session, record: MessageRecord) -> str | None:
    """Why a message is incomplete, in words; None when it is complete."""
    summary = record.summary
    if summary.complete:
        return None
    lost = _lost_bytes(session, record)
    if lost:
        missing = summary.missing_bytes if missing_known(summary.missing_bytes) else lost
        amount = "1 byte of it is" if missing == 1 else f"{missing:,} bytes of it are"
        return f"{amount} not in the capture (TCP gap)"
    if record.origin == "pop3-top":
        lines = record.detail.get("lines")
        return f"POP3 TOP returns only the header and the first {lines if lines is not None else 'N'} body lines"
    if header_only(record):
        ref = _fetched_section(record)
        if ref is not None and ref.section.startswith("HEADER.FIELDS"):
            return "IMAP fetched only some fields of the message header"
        return "IMAP fetched only the message header"
    if _byte_range(session, record):
        return "IMAP fetched only a byte range of the message (BODY[]<start.count>)"
    if session.close == "rst":
        return "the connection was reset before the message ended"
    if session.close == "open":
        return "the capture ended before the message did"
    if session.close == "timeout":
        return "the connection went idle before the message ended"
    return "the message's end was not seen"


class Extractor:
    """``mailtrace extract`` as a session consumer: stages messages while they stream, names them at the end.

    Use :meth:`sink_factory` as the Analyzer's ``sink_factory``, pass every finished session to
    :meth:`session`, then call :meth:`end` (or :meth:`abort`). Every path is checked to stay inside
    the output directory; files are created with ``O_EXCL`` in a staging folder this run made, and
    moved into place with ``rename``, which replaces a planted link instead of following it.
    """

    def __init__(self, directory: Path, options: ExtractOptions = ExtractOptions()) -> None:
        self.options = options
        self.root = prepare_directory(directory, options.overwrite)
        try:
            self.staging = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=self.root))
        except OSError as exc:
            raise ExtractError(f"cannot write to {directory}: {exc.strerror or exc}") from exc
        self.pool = _FilePool(MAX_OPEN_FILES)
        self.totals = ExtractTotals()
        self._seq = 0
        self._pending: dict[tuple[str, int, int], dict[int, tuple[MessageRecord, _Written]]] = {}
        """Ended messages by session and index, until their session ends (those it lists). A session is
        (file, tcp.stream, first frame): a connection the flow table ended early and took up again is a
        second session under the same stream number, and the first may still wait for the start order."""
        self._spills: dict[tuple[str, int, int], _Spill] = {}
        """Ended messages of a session past those it lists: on disk until the session ends."""
        self._spill_files = 0
        self._index = (self.staging / INDEX_NAME).open("w", encoding="utf-8")
        self._index.write(f'{{"format": "{EXTRACT_FORMAT}", "version": {EXTRACT_VERSION}, "messages": [')
        self._entries = 0

    # ------------------------------------------------------------------ while the capture is read
    def sink_factory(self, builder: SessionBuilder, origin: str) -> _StagedMessage | None:
        """Called by the session builder when a message's first bytes arrive."""
        if self.options.protocols and builder.protocol not in self.options.protocols:
            return None
        self._seq += 1
        return _StagedMessage(self, (builder.file, builder.stream, builder.first_frame), self._seq,
                              spill=builder.messages_full)

    def staged(self, key: tuple[str, int, int], record: MessageRecord, written: _Written, *, spill: bool) -> None:
        if not spill:
            self._pending.setdefault(key, {})[record.index] = (record, written)
            return
        store = self._spills.get(key)
        if store is None:
            self._spill_files += 1
            store = self._spills[key] = _Spill(self.pool, self.staging / f"spill-{self._spill_files}")
        store.add(record, written)

    # ------------------------------------------------------------------ as sessions finish
    def wanted(self, session: Session) -> bool:
        o = self.options
        return (not o.sessions or session.id in o.sessions) and (not o.protocols or session.protocol in o.protocols)

    def session(self, session: Session) -> None:
        self.totals.sessions_seen.add(session.id)
        key = (session.file, session.stream, session.first_frame)
        staged = self._pending.pop(key, {})
        spill = self._spills.pop(key, None)
        later = spill.read() if spill is not None else iter(())
        if not self.wanted(session):
            for _, written in staged.values():
                written.discard()
            for _, written in later:
                written.discard()
            return
        self.totals.sessions_matched += 1
        if session.tls != "none" and not session.decrypted:
            self.totals.encrypted += 1
        if session.messages:
            self.totals.sessions += 1
        for record in session.messages:
            kept = staged.pop(record.index, None)
            self._entry(session, record, kept[1] if kept is not None else None)
        for index in sorted(staged):  # defensive: a record the session does not list
            self._entry(session, *staged[index])
        for record, written in later:  # past the session's message limit: the record came with the message
            self._entry(session, record, written)

    def _entry(self, session: Session, record: MessageRecord, staged: _Written | None) -> None:
        t = self.totals
        summary = record.summary
        stem = message_stem(session.id, record.index)
        eml: dict[str, Any] | None = None
        attachments: list[dict[str, Any]] = []
        source: Path | None = None
        if staged is not None and staged.eml is not None:
            source = staged.eml
        elif self.options.messages and summary.bytes == 0:  # an empty message (DATA ended at once) is a message
            source = self.staging / f"{stem}.eml"
            source.open("xb").close()
        if source is not None:
            size = source.stat().st_size
            self._place(source, stem + ".eml")
            eml = {"path": stem + ".eml", "bytes": size, "sha256": summary.sha256, "md5": summary.md5}
            t.eml_files += 1
            t.bytes_written += size
        if staged is not None and staged.attachments:
            self._place(staged.folder, stem)
            by_part = {a.path: a for a in summary.attachments}
            for part, name, size in staged.attachments:
                info = by_part.get(part)
                attachments.append({
                    "path": f"{stem}/{name}",
                    "part": part,
                    "filename": info.filename if info else None,
                    "content_type": info.content_type if info else None,
                    "encoding": info.encoding if info else None,
                    "bytes": size,
                    "encoded_bytes": info.encoded_bytes if info else None,
                    "md5": info.md5 if info else None,
                    "sha256": info.sha256 if info else None,
                    "complete": info.complete if info else False,
                })
                t.attachments += 1
                t.bytes_written += size
        reason = incomplete_reason(session, record)
        requested = reason is not None and expected_partial(session, record)
        if reason is not None:
            label = f"{stem} (session {session.id}, {record.origin})"
            if requested:  # the client asked for part of the message: nothing is missing from the capture
                t.partial += 1
                if len(t.partial_list) < MAX_LISTED_INCOMPLETE:
                    t.partial_list.append((label, reason))
            else:
                t.incomplete += 1
                if len(t.incomplete_list) < MAX_LISTED_INCOMPLETE:
                    t.incomplete_list.append((label, reason))
        if summary.truncated:
            t.truncated += 1
        t.messages += 1
        entry = message_entry(session, record, eml=eml, attachments=attachments, incomplete=reason)
        entry["partial_by_request"] = requested
        self._index.write(("," if self._entries else "") + "\n" + dumps(entry))
        self._entries += 1

    def _place(self, source: Path, name: str) -> None:
        """Move a staged file or folder to ``root/name``, replacing (never following) what is there."""
        target = self.root / name
        if target.parent != self.root or name in ("", ".", ".."):
            raise ValueError(f"not a plain file name: {name!r}")
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.is_dir():
            shutil.rmtree(target)
        source.rename(target)

    # ------------------------------------------------------------------ the end
    def end(self, captures: list[dict[str, Any]]) -> Path:
        """Write ``index.json`` (captures, options, totals) and remove the staging folder."""
        self.pool.close_all()
        for staged in self._pending.values():
            for _, written in staged.values():
                written.discard()
        self._pending.clear()
        self._spills.clear()  # the staging folder, spills and all, goes below
        t = self.totals
        o = self.options
        tail = {
            "captures": captures,
            "options": {"messages": o.messages, "attachments": o.attachments, "sessions": sorted(o.sessions),
                        "protocols": sorted(o.protocols)},
            "totals": {"sessions": t.sessions, "messages": t.messages, "eml_files": t.eml_files,
                       "attachments": t.attachments, "bytes_written": t.bytes_written,
                       "incomplete": t.incomplete, "partial_by_request": t.partial, "truncated": t.truncated},
        }
        self._index.write("\n]")
        for key, value in tail.items():
            self._index.write(f", {json.dumps(key)}: " + dumps(value))
        self._index.write("}\n")
        self._index.close()
        self._place(self.staging / INDEX_NAME, INDEX_NAME)
        shutil.rmtree(self.staging, ignore_errors=True)
        return self.root / INDEX_NAME

    def abort(self) -> None:
        """Stop after an error or an interrupt: close everything and remove the staging folder."""
        self.pool.close_all()
        if not self._index.closed:
            self._index.close()
        shutil.rmtree(self.staging, ignore_errors=True)


def message_entry(session: Session, record: MessageRecord, *, eml: dict[str, Any] | None,
                  attachments: list[dict[str, Any]], incomplete: str | None) -> dict[str, Any]:
    """One ``messages[]`` object of index.json (docs/extract.md)."""
    summary = record.summary
    entry: dict[str, Any] = {
        "session": session.id,
        "message": record.index + 1,
        "index": record.index,
        "protocol": session.protocol,
        "origin": record.origin,
        "direction": record.direction.value,
        "capture": session.file,
        "stream": session.stream,
        "client": {"ip": session.client.ip, "port": session.client.port},
        "server": {"ip": session.server.ip, "port": session.server.port},
        "first_frame": record.first_frame,
        "last_frame": record.last_frame,
        "complete": summary.complete,
        "missing_bytes": summary.missing_bytes,
        "incomplete_reason": incomplete,
        "truncated": summary.truncated,
        "bytes": summary.bytes,
        "sha256": summary.sha256,
        "md5": summary.md5,
        "subject": summary.subject,
        "from": summary.from_,
        "to": list(summary.to),
        "cc": list(summary.cc),
        "date": summary.date,
        "message_id": summary.message_id,
        "eml": eml,
        "attachments": attachments,
        "defects": list(summary.defects),
    }
    transaction = smtp_transaction(session, record)
    if transaction is not None:
        entry["envelope"] = {"mail_from": transaction.get("mail_from"),
                             "rcpt_to": list(transaction.get("rcpt_to") or []),
                             "accepted": list(transaction.get("accepted") or []),
                             "queue_id": transaction.get("queue_id")}
    if record.detail:
        entry["carrier"] = record.detail
    return entry
