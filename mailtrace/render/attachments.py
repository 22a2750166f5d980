"""``--embed-attachments``: keep small attachments' bytes so the HTML report can offer them as downloads.

The collector is a message sink (:class:`mailtrace.session.MessageSink`): the session builder hands
it every message's bytes as they stream. It keeps a message only up to ``max_message`` bytes,
then, when the message ends, takes its attachments (leaf parts with a file name or
``Content-Disposition: attachment``) with the standard library's ``email`` parser, and the e-mails
attached to it from where the message summary places them, and keeps each
decoded payload of at most ``max_each`` bytes, until ``max_total`` bytes are held. The report takes
a session's files when the session arrives, so memory is bounded by ``max_total``.

The hashes are those of the decoded content, as in the message summary, so the report pairs each
kept file with the summary's attachment row by SHA-256. Nothing here runs unless the option is
given: captures carry malware and personal data.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
from dataclasses import dataclass
from email.message import EmailMessage, Message
from typing import TYPE_CHECKING

from mailtrace.mime import MessageSummary, is_embedded_message
from mailtrace.render.html import EmbeddedFile

if TYPE_CHECKING:
    from mailtrace.session import MessageRecord, SessionBuilder


@dataclass(frozen=True, slots=True)
class EmbedLimits:
    max_each: int = 2 * 1024 * 1024
    """Largest attachment (decoded) that is embedded."""
    max_total: int = 8 * 1024 * 1024
    """All embedded attachments of a report together (decoded; base64 in the page adds a third)."""
    max_message: int = 32 * 1024 * 1024
    """Largest message whose attachments are looked at (bytes as carried)."""


class _Sink:
    def __init__(self, owner: AttachmentCollector, key: tuple[str, int]) -> None:
        self.owner = owner
        self.key = key
        self.buf = bytearray()
        self.too_big = False

    def write(self, data: bytes) -> None:
        if self.too_big:
            return
        if len(self.buf) + len(data) > self.owner.limits.max_message:
            self.too_big = True
            self.buf = bytearray()
            return
        self.buf += data

    def close(self, record: MessageRecord) -> None:
        if not self.too_big and self.buf:
            self.owner.add(self.key, record.index, bytes(self.buf), record.summary)
        self.buf = bytearray()


class AttachmentCollector:
    """Message sink factory that keeps small attachments per (capture file, TCP stream, message)."""

    def __init__(self, limits: EmbedLimits | None = None) -> None:
        self.limits = limits or EmbedLimits()
        self.held = 0
        self.skipped = 0
        """Attachments not kept: too big, or over the report's total."""
        self._files: dict[tuple[str, int], dict[int, list[EmbeddedFile]]] = {}

    def __call__(self, builder: SessionBuilder, name: str) -> _Sink:
        del name
        return _Sink(self, (builder.file, builder.stream))

    def add(self, key: tuple[str, int], index: int, message: bytes, summary: MessageSummary | None = None) -> None:
        """Keep the attachments of one message: its leaves, found by the stdlib, and the e-mails attached to
        it, cut from ``message`` where ``summary`` places them (the stdlib re-serialises an attached e-mail;
        the summary's hashes are of its bytes as sent)."""
        try:
            msg = email.message_from_bytes(message, policy=email.policy.default)
        except Exception:
            return
        for part in _leaves(msg):
            payload = _payload(part)
            if payload is None:
                continue
            try:
                filename = part.get_filename()
            except Exception:
                filename = None
            self._keep(key, index, filename, part.get_content_type(), payload)
        for name, content_type, payload in _attached_emails(message, summary):
            self._keep(key, index, name, content_type, payload)

    def _keep(self, key: tuple[str, int], index: int, filename: str | None, content_type: str, payload: bytes) -> None:
        if len(payload) > self.limits.max_each or self.held + len(payload) > self.limits.max_total:
            self.skipped += 1
            return
        self.held += len(payload)
        self._files.setdefault(key, {}).setdefault(index, []).append(
            EmbeddedFile(
                filename=filename,
                content_type=content_type,
                size=len(payload),
                md5=hashlib.md5(payload).hexdigest(),
                sha256=hashlib.sha256(payload).hexdigest(),
                data=payload,
            )
        )

    def take(self, file: str, stream: int) -> dict[int, list[EmbeddedFile]]:
        """The files of one session's messages, by message index; forgotten here once taken."""
        return self._files.pop((file, stream), {})


def _leaves(msg: Message) -> list[Message]:
    out = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        try:
            is_attachment = (isinstance(part, EmailMessage) and part.is_attachment()) or bool(
                part.get_filename()
            )
        except Exception:
            is_attachment = False
        if is_attachment:
            out.append(part)
    return out


def _attached_emails(message: bytes, summary: MessageSummary | None) -> list[tuple[str | None, str, bytes]]:
    """(file name, content type, bytes as sent) of every e-mail attached to ``message`` whose bytes there
    hash as the summary says (a message cut by the capture keeps only what it has)."""
    if summary is None:
        return []
    listed = {a.path: a for a in summary.attachments if is_embedded_message(a.content_type)}
    out = []
    for part in summary.parts.walk():
        attachment = listed.get(part.path)
        if attachment is None:
            continue
        start = part.offset + part.header_bytes
        data = message[start : start + part.encoded_bytes]
        if hashlib.sha256(data).hexdigest() == attachment.sha256:
            out.append((attachment.filename, attachment.content_type, data))
    return out


def _payload(part: Message) -> bytes | None:
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        return None
    return payload if isinstance(payload, bytes) else None
