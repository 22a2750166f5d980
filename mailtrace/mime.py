"""Interim message summariser (replaced by the streaming MIME pipeline of the messages issue).

Keeps up to ``max_kept_bytes`` of the message and summarises the headers with the standard
library's ``email`` package.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class MimeLimits:
    max_kept_bytes: int = 4 * 1024 * 1024


@dataclass(frozen=True)
class MessageSummary:
    bytes: int
    sha256: str
    complete: bool
    missing_bytes: int
    truncated: bool
    subject: str | None
    from_: str | None
    to: tuple[str, ...]
    cc: tuple[str, ...]
    date: str | None
    message_id: str | None
    attachments: tuple[dict[str, Any], ...] = ()
    defects: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = field(default=())


class MessageSummarizer:
    def __init__(self, limits: MimeLimits = MimeLimits()) -> None:
        self.limits = limits
        self._kept = bytearray()
        self._size = 0
        self._hash = hashlib.sha256()

    def feed(self, data: bytes) -> None:
        self._size += len(data)
        self._hash.update(data)
        room = self.limits.max_kept_bytes - len(self._kept)
        if room > 0:
            self._kept += data[:room]

    def close(self, *, complete: bool = True, missing_bytes: int = 0) -> MessageSummary:
        msg = email.message_from_bytes(bytes(self._kept), policy=email.policy.default)

        def header(name: str) -> str | None:
            try:
                value = msg.get(name)
            except Exception:  # noqa: BLE001 - header parsing of hostile input
                return None
            return None if value is None else str(value)

        def addresses(name: str) -> tuple[str, ...]:
            value = header(name)
            return tuple(a.strip() for a in value.split(",")) if value else ()

        return MessageSummary(
            bytes=self._size, sha256=self._hash.hexdigest(), complete=complete, missing_bytes=missing_bytes,
            truncated=self._size > len(self._kept), subject=header("subject"), from_=header("from"),
            to=addresses("to"), cc=addresses("cc"), date=header("date"), message_id=header("message-id"),
            headers=tuple((str(k), str(v)) for k, v in msg.raw_items())[:1000],
        )


def summary_to_json(summary: MessageSummary) -> dict[str, Any]:
    return {
        "bytes": summary.bytes, "complete": summary.complete, "missing_bytes": summary.missing_bytes,
        "truncated": summary.truncated, "subject": summary.subject, "from": summary.from_,
        "to": list(summary.to), "cc": list(summary.cc), "date": summary.date, "message_id": summary.message_id,
        "sha256": summary.sha256, "attachments": list(summary.attachments), "defects": list(summary.defects),
    }
