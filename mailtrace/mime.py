"""The message pipeline: the bytes of one e-mail message in, a :class:`MessageSummary` out.

A dissector hands over the bytes of a message as the protocol carries them (SMTP DATA/BDAT,
POP3 RETR/TOP, IMAP FETCH/APPEND literals, already dot-unstuffed) in chunks of any size.
:class:`MessageSummarizer` turns them into headers, a MIME part tree, attachment hashes and
defects, in one pass and with memory bounded by :class:`MimeLimits`.

Why not just ``email.message_from_bytes``: it keeps the whole message (several times over) and
runs at about a tenth of the speed the analyzer needs. So the work is split:

* **Header blocks** are cut into ``(name, value)`` fields exactly the way
  ``email.feedparser`` does, and their values are interpreted with the stdlib's own helpers
  (``email.utils.decode_params``, ``collapse_rfc2231_value``, ``policy.default.header_factory``
  for anything with RFC 2047 encoded-words, display addresses that need it, ...).
* **Bodies** are never split into lines. Boundary lines are found with ``bytes.find`` on the
  delimiter, base64 is decoded block-wise with ``pybase64`` (the same results as the stdlib's
  ``binascii.a2b_base64``, five times as fast; the stdlib decodes the odd cases) and quoted-printable with
  ``binascii.a2b_qp``, carrying the few bytes that straddle two blocks, and decoded bytes go
  straight into ``hashlib``.

The rules of ``email.feedparser`` are kept where they decide what bytes a part contains: lines
end at CR LF, LF or a lone CR; the line break before a boundary line belongs to the boundary; a
boundary of any enclosing multipart ends the inner parts (the outermost match wins); repeated
delimiter lines do not create empty parts; ``message/*`` bodies are parsed as messages;
``multipart/digest`` children default to ``message/rfc822``. The decoded bytes and hashes of
every part therefore equal ``part.get_payload(decode=True)`` of the stdlib on well-formed mail.
Deliberate differences (documented in docs/messages.md): raw 8-bit header bytes are decoded as
UTF-8 or windows-1252 rather than replaced, base64 with one dangling character keeps what could
be decoded instead of falling back to the encoded text, ``x-uuencode`` bodies are hashed as sent,
encoded-words in unknown charsets never leave surrogate escapes, header fields over
``MimeLimits.max_field_bytes`` keep their first bytes.

An embedded e-mail (``message/rfc822``, ``message/global``) is both: its body is parsed as a message
like the stdlib does (so the attachments inside are found) and, byte for byte as it stands between its
header block and the line break that belongs to the next boundary, hashed as one file and listed as an
attachment. Its content is the body as sent, whatever Content-Transfer-Encoding says: the stdlib has no
decoded bytes for it (``get_payload(decode=True)`` is None) but parses the body as sent as the embedded
message, and so does the part tree here; the file and the parts listed under it must describe the same
bytes (a message/rfc822 labelled base64 that is not, a known scanner evasion, still yields the message).

Nothing here raises on message content: every oddity becomes a string in ``defects`` (the
stdlib's defect class names where the stdlib has one).
"""

from __future__ import annotations

import binascii
import builtins
import codecs
import enum
import functools
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from email import errors as email_errors
from email import policy as email_policy
from email import utils as email_utils
from typing import Any, NamedTuple, Protocol

from pybase64 import b64decode as _b64decode

from mailtrace.model import ByteBudget

__all__ = [
    "Attachment",
    "MessageSummarizer",
    "MessageSummary",
    "MimeLimits",
    "Part",
    "PartStart",
    "PartWriter",
    "decode_header_bytes",
    "summarize",
    "summary_to_json",
]


# --------------------------------------------------------------------------- public values


@dataclass(frozen=True, slots=True)
class MimeLimits:
    """Every buffer of the message pipeline has a limit here; hitting one adds a defect."""

    max_header_bytes: int = 256 * 1024
    """Header block kept per entity; fields starting beyond it are dropped with the defect "header too
    long", except one field of each ``RESERVED_FIELDS`` name (From, To, Subject, Content-Type ...)."""
    max_parts: int = 1000
    """MIME entities described per message; later ones are scanned for boundaries only."""
    max_depth: int = 50
    """Nesting of multipart and message/* containers; deeper ones are opaque leaves."""
    max_kept_bytes: int = 64 * 1024
    """Bytes of the message kept in ``MessageSummary.kept`` for display."""
    max_line: int = 1 << 20
    """Longest line held while waiting for its end; longer lines are processed in pieces."""
    max_headers: int = 1000
    """Top-level header fields listed in ``MessageSummary.headers``."""
    max_preview_bytes: int = 8 * 1024
    """Decoded bytes of the main text part kept for ``MessageSummary.text_preview``."""
    max_field_bytes: int = 64 * 1024
    """Bytes kept of one header field (name, value and folding); a longer field keeps its first bytes
    with the defects ``field_cut_defect(...)`` and "header too long"."""


OVERHEAD_ENCODINGS = frozenset({"base64", "quoted-printable"})
"""Transfer encodings whose overhead a part reports (``Part.overhead_percent``)."""

EMBEDDED_MESSAGE_TYPES = frozenset({"message/rfc822", "message/global"})
"""Types whose body is a whole e-mail (RFC 2046 5.2.1, RFC 6532 3.5): besides being parsed as a message, the
body is hashed as one file and always listed as an attachment, inline or not: a forwarded or bounced e-mail is
evidence whether or not the sender labelled it, and it is never part of the message's own text."""

MAX_EMBEDDED_WRITTEN = 3
"""Attached e-mails nested deeper than this are listed and hashed but not handed to the ``on_part`` hook:
each level holds the bytes of the ones inside it, so ``extract`` would write a message nested 50 deep 50 times
over (a 25 MB message, 1.25 GB). The leaves inside them are still handed over."""


def is_embedded_message(content_type: str) -> bool:
    """Whether a content type names an attached e-mail (:data:`EMBEDDED_MESSAGE_TYPES`), also with a comment
    after it (``message/rfc822 (forwarded)``, RFC 2045 5.1), which the stdlib keeps in the type."""
    return content_type.partition("(")[0].strip() in EMBEDDED_MESSAGE_TYPES


@dataclass(frozen=True, slots=True, kw_only=True)
class Part:
    """One MIME entity of a message: a leaf with content, or a container with children."""

    path: str
    """Position in the tree: ``1`` is the message itself, ``1.2`` its second child, and so on."""
    content_type: str
    """Lower-cased ``type/subtype`` as the stdlib reports it (defaults applied)."""
    charset: str | None
    """The ``charset`` parameter, lower-cased; None when absent."""
    encoding: str | None
    """Content-Transfer-Encoding, lower-cased; None when the header is absent."""
    filename: str | None
    """File name from Content-Disposition or Content-Type (RFC 2231 / RFC 2047 decoded)."""
    disposition: str | None
    """``inline``, ``attachment`` or whatever was sent, lower-cased; None when absent."""
    offset: int
    """Where the entity's header block starts, counted from the first byte of the message."""
    header_bytes: int
    """Size of the header block including the blank line that ends it."""
    encoded_bytes: int
    """Size of the body as sent (without the line break that belongs to the next boundary)."""
    decoded_bytes: int
    """Size of the decoded content of a leaf, or of an embedded e-mail (``EMBEDDED_MESSAGE_TYPES``: its body as
    sent, the same bytes ``encoded_bytes`` counts); 0 for other containers."""
    md5: str | None
    """MD5 of the decoded content (hex); None for containers other than embedded e-mails."""
    sha256: str | None
    """SHA-256 of the decoded content (hex); None for containers other than embedded e-mails."""
    is_attachment: bool
    """A leaf with a file name or ``Content-Disposition: attachment``, or an embedded e-mail."""
    complete: bool
    """False when the message ended (gap, cut capture) before this entity did."""
    children: tuple[Part, ...]
    """Sub-entities of a multipart, or the one encapsulated message of a message/* part."""
    defects: tuple[str, ...]
    """Problems found in this entity (stdlib defect class names or short phrases)."""

    @property
    def is_leaf(self) -> bool:
        """Content without described sub-entities. An embedded e-mail has content (its hashes) and children
        (the message parsed); it is a container here, as ``is_multipart()`` says in the stdlib."""
        return self.md5 is not None and not self.children

    @property
    def overhead_percent(self) -> float | None:
        """What the transfer encoding added, for base64 and quoted-printable leaves:
        (encoded - decoded) / decoded * 100; None for other encodings, containers and empty content."""
        if self.encoding not in OVERHEAD_ENCODINGS or not self.is_leaf or self.decoded_bytes == 0 \
                or is_embedded_message(self.content_type):  # hashed as sent: its encoding was not undone
            return None
        return (self.encoded_bytes - self.decoded_bytes) / self.decoded_bytes * 100.0

    def walk(self) -> list[Part]:
        """This part and all below it, in document order (like ``Message.walk``)."""
        out: list[Part] = []
        stack = [self]
        while stack:
            part = stack.pop()
            out.append(part)
            stack.extend(reversed(part.children))
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Attachment:
    """A leaf part with a file name or ``Content-Disposition: attachment``, or an embedded e-mail
    (``EMBEDDED_MESSAGE_TYPES``; ``bytes`` and the hashes are of the message as sent, see Part.decoded_bytes)."""

    path: str
    """Path of the part in the tree (see Part.path)."""
    filename: str | None
    """Decoded file name; None for an unnamed ``disposition: attachment`` part."""
    content_type: str
    """Lower-cased ``type/subtype``."""
    encoding: str | None
    """Content-Transfer-Encoding, lower-cased."""
    bytes: int
    """Decoded size."""
    encoded_bytes: int
    """Size as sent."""
    md5: str
    """MD5 of the decoded content (hex)."""
    sha256: str
    """SHA-256 of the decoded content (hex)."""
    complete: bool
    """False when the message ended before the attachment did."""

    @property
    def overhead_percent(self) -> float | None:
        """Transfer-encoding overhead for base64: (encoded - decoded) / decoded * 100."""
        if self.encoding != "base64" or self.bytes == 0 or is_embedded_message(self.content_type):
            return None
        return (self.encoded_bytes - self.bytes) / self.bytes * 100.0


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageSummary:
    """What the pipeline knows about one message once it has ended."""

    bytes: int
    """Total bytes fed."""
    sha256: str
    """SHA-256 of all bytes fed (hex)."""
    md5: str
    """MD5 of all bytes fed (hex)."""
    complete: bool
    """False when the carrier lost or cut part of the message."""
    missing_bytes: int
    """Bytes the carrier knows it did not see."""
    truncated: bool
    """True when the message was longer than ``MimeLimits.max_kept_bytes`` (``kept`` is a prefix)."""
    subject: str | None
    """Subject decoded for display (RFC 2047, raw 8-bit as UTF-8 or windows-1252)."""
    subject_raw: str | None
    """Subject as sent, folding kept."""
    from_: str | None
    """From as a display string, e.g. ``Alice Example <alice@local.example>``."""
    to: tuple[builtins.str, ...]
    """Addresses of the first To header as display strings."""
    cc: tuple[builtins.str, ...]
    """Addresses of the first Cc header as display strings."""
    date: str | None
    """Date header as sent (unfolded)."""
    message_id: str | None
    """Message-ID as sent (unfolded)."""
    headers: tuple[tuple[builtins.str, builtins.str], ...]
    """Top-level header fields in order, values as sent (folding kept), capped."""
    parts: Part
    """The MIME tree; its root is the message itself."""
    attachments: tuple[Attachment, ...]
    """Every attachment, in document order, nested messages included."""
    defects: tuple[builtins.str, ...]
    """All defects; those of nested parts carry ``(part N.N)``."""
    kept: builtins.bytes
    """The first ``max_kept_bytes`` bytes of the message, for display."""
    text_preview: str | None
    """Start of the main text part (text/plain, else text/html), decoded with its charset."""
    long_lines: int = 0
    """Lines over RFC 5322's 998 characters (CRLF not counted), headers and body alike."""
    longest_line: int = 0
    """Characters of the longest such line (0 when there is none)."""

    def header_values(self, name: builtins.str) -> list[builtins.str]:
        """All values of one top-level header field (case-insensitive), in order."""
        key = name.lower()
        return [v for k, v in self.headers if k.lower() == key]


@dataclass(frozen=True, slots=True, kw_only=True)
class PartStart:
    """What is known about a leaf or an embedded e-mail when its body begins; handed to the ``on_part`` hook.

    An embedded e-mail's start comes before those of the parts inside it, whose writers are then open at the
    same time as its own."""

    path: str
    """Position in the tree (see Part.path)."""
    content_type: str
    """Lower-cased ``type/subtype``."""
    filename: str | None
    """Decoded file name, unsanitised: never use it as a path as it is."""
    disposition: str | None
    """Lower-cased disposition."""
    encoding: str | None
    """Content-Transfer-Encoding, lower-cased."""
    is_attachment: bool
    """Has a file name or ``Content-Disposition: attachment``, or is an embedded e-mail."""



def _utf8_prefix(data: bytes, size: int) -> bytes:
    """The first ``size`` bytes, less a UTF-8 sequence the cut would split: a value cut inside "ä" no
    longer decodes as UTF-8 and would be read as windows-1252 whole (x + 40,000 "ä" became "xÃ¤Ã¤…")."""
    cut = data[:size]
    start = len(cut) - 1
    while start >= 0 and len(cut) - start < 4 and cut[start] & 0xC0 == 0x80:
        start -= 1  # back over continuation bytes to the sequence's lead byte
    if start >= 0:
        lead = cut[start]
        need = 2 if 0xC0 <= lead < 0xE0 else 3 if 0xE0 <= lead < 0xF0 else 4 if 0xF0 <= lead < 0xF8 else 1
        if len(cut) - start < need:
            return cut[:start]
    return cut

class PartWriter(Protocol):
    """Receives the decoded bytes of one leaf part or embedded e-mail, in order."""

    def write(self, data: bytes, /) -> object: ...

    def close(self) -> object: ...


PartHook = Callable[[PartStart], PartWriter | None]
"""Called for every leaf part and every embedded e-mail; returns where its decoded bytes should go, or None."""


def summary_to_json(summary: MessageSummary) -> dict[str, Any]:
    """The JSON form of a message (see docs/messages.md)."""
    return {
        "bytes": summary.bytes,
        "complete": summary.complete,
        "missing_bytes": summary.missing_bytes,
        "truncated": summary.truncated,
        "subject": summary.subject,
        "from": summary.from_,
        "to": list(summary.to),
        "cc": list(summary.cc),
        "date": summary.date,
        "message_id": summary.message_id,
        "sha256": summary.sha256,
        "attachments": [
            {
                "filename": a.filename,
                "content_type": a.content_type,
                "encoding": a.encoding,
                "bytes": a.bytes,
                "encoded_bytes": a.encoded_bytes,
                "md5": a.md5,
                "sha256": a.sha256,
            }
            for a in summary.attachments
        ],
        "parts": _part_to_json(summary.parts),
        "defects": list(summary.defects),
        "long_lines": summary.long_lines,
        "longest_line": summary.longest_line,
    }


def _part_to_json(part: Part) -> dict[str, Any]:
    overhead = part.overhead_percent
    return {
        "path": part.path,
        "content_type": part.content_type,
        "charset": part.charset,
        "encoding": part.encoding,
        "filename": part.filename,
        "disposition": part.disposition,
        "encoded_bytes": part.encoded_bytes,
        "decoded_bytes": part.decoded_bytes,
        "overhead_percent": None if overhead is None else round(overhead, 1),
        "md5": part.md5,
        "sha256": part.sha256,
        "defects": list(part.defects),
        "children": [_part_to_json(c) for c in part.children],
    }


def summarize(message: bytes, limits: MimeLimits = MimeLimits()) -> MessageSummary:
    """Summarise a message held in memory (convenience for tests and small tools)."""
    summarizer = MessageSummarizer(limits)
    summarizer.feed(message)
    return summarizer.close()


# --------------------------------------------------------------------------- header text


def decode_header_bytes(raw: bytes) -> str:
    """Raw header bytes to text: ASCII, else UTF-8, else windows-1252, else latin-1.

    Mail with unencoded 8-bit headers is common; the stdlib shows such bytes as U+FFFD. Valid
    UTF-8 is by far the most likely meaning, and windows-1252 is what the rest usually is.
    """
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        pass
    for codec in ("utf-8", "cp1252"):
        try:
            return raw.decode(codec)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")


_SURROGATE_RUN = re.compile("[\udc80-\udcff]+")
_ANY_SURROGATE = re.compile("[\ud800-\udfff]")


def _unsurrogate(text: str) -> str:
    """Undo surrogateescape (raw 8-bit bytes) the way decode_header_bytes decodes bytes: run by run, so
    the part already decoded right ("Jörg" from a UTF-8 encoded word) is not read again as 8-bit."""
    if text.isascii() or not _has_surrogates(text):  # isascii: the usual case, without encoding
        return text
    text = _SURROGATE_RUN.sub(lambda run: decode_header_bytes(bytes(ord(c) - 0xDC00 for c in run.group(0))),
                              text)
    return _ANY_SURROGATE.sub("\ufffd", text)  # no other lone surrogate may reach a writer


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _unfold(value: str) -> str:
    """What ``policy.default`` does before parsing a value: drop every CR and LF."""
    if "\r" in value or "\n" in value:
        return value.replace("\r", "").replace("\n", "")
    return value


_MAX_RENDER = 64 * 1024
"""Longest value handed to ``policy.default.header_factory`` (its parser is slow on huge input)."""


def _render(name: str, value: str) -> tuple[str, Any]:
    """``str()`` and the header object of ``policy.default`` for one unfolded value."""
    if len(value) > _MAX_RENDER:
        return value, None
    try:
        header = email_policy.default.header_factory(name, value)
    except Exception:  # the stdlib parser has had crash bugs; a message must never stop us
        return value, None
    return str(header), header


def _display_text(value: str) -> str:
    """Subject-like (unstructured) value for display, RFC 2047 decoded like policy.default."""
    if value.isascii() and "=?" not in value:
        return value  # policy.default returns such values unchanged (tests check this)
    return _render("subject", value)[0]


_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = rf"{_ATOM}(?:\.{_ATOM})*"
_ADDR_SPEC = rf"{_DOT_ATOM}@{_DOT_ATOM}"
_MAILBOX = re.compile(
    rf"[ \t]*(?:(?P<bare>{_ADDR_SPEC})|(?:(?P<name>{_ATOM}(?: {_ATOM})*)[ \t]*"
    rf"|\"(?P<quoted>[ !#-\[\]-~]*)\"[ \t]*)?<(?P<angle>{_ADDR_SPEC})>)[ \t]*(?:,|$)"
)
_SPECIALS = frozenset('()<>@,:;.\\"[]')


def _fast_addresses(value: str) -> tuple[str, ...] | None:
    """Display strings of a plain address list, as policy.default renders them; None if unsure."""
    if not value.isascii() or "=?" in value or not value.strip():
        return None
    out: list[str] = []
    pos = 0
    while pos < len(value):
        m = _MAILBOX.match(value, pos)
        if m is None or m.end() == pos:
            return None
        pos = m.end()
        if m["bare"] is not None:
            out.append(m["bare"])
            continue
        name = m["name"] if m["name"] is not None else (m["quoted"] or "")
        if not name:
            out.append(m["angle"])
        elif _SPECIALS.isdisjoint(name):
            out.append(f"{name} <{m['angle']}>")
        else:
            out.append(f'"{name}" <{m["angle"]}>')
        if m.group(0).endswith(",") and not value[pos:].strip():
            return None
    return tuple(out)


def _addresses(value: str) -> tuple[str, ...]:
    """Address list to display strings exactly as ``str(address)`` of policy.default."""
    fast = _fast_addresses(value)
    if fast is not None:
        return fast
    text, header = _render("to", value)
    addresses = getattr(header, "addresses", None)
    if addresses:  # unlike str(header), str(address) keeps undecodable bytes as surrogate escapes
        return tuple(_unsurrogate(str(a)) for a in addresses)
    return (text.strip(),) if text.strip() else ()


# --------------------------------------------------------------------------- header fields

_HEADER_LINE = re.compile(rb"From |[\x21-\x39\x3b-\x7e]*:|[\t ]")
"""``email.feedparser.headerRE`` on bytes: what may start a header (or continuation) line."""

_SINGLETONS = (
    "from", "sender", "reply-to", "to", "cc", "bcc", "message-id", "in-reply-to",
    "references", "subject", "date", "mime-version", "content-type",
    "content-transfer-encoding",
)  # fmt: skip
"""Fields RFC 5322 section 3.6 (and RFC 2045) allow at most once."""
_SINGLETON_SET = frozenset(_SINGLETONS)


def _split_fields(lines: list[bytes], defects: list[str]) -> list[tuple[str, bytes]]:
    """Header lines to ``(name, raw value)`` as ``FeedParser._parse_headers`` cuts them.

    The value is what ``policy.header_source_parse`` makes of the lines: text after the first
    colon, leading blanks removed, continuation lines appended, the final line break removed.
    """
    fields: list[tuple[str, bytes]] = []
    name: str | None = None
    value: list[bytes] = []
    for lineno, line in enumerate(lines):
        if line[:1] in (b" ", b"\t"):
            if name is None:
                defects.append("FirstHeaderLineIsContinuationDefect")
            else:
                value.append(line)
            continue
        if name is not None:
            # most fields are one line: no join
            fields.append((name, (value[0] if len(value) == 1 else b"".join(value)).rstrip(b"\r\n")))
            name = None
        if line.startswith(b"From "):
            if lineno != 0:
                defects.append("MisplacedEnvelopeHeaderDefect")
            continue
        head, colon, rest = line.partition(b":")
        if not colon or not head:
            defects.append("InvalidHeaderDefect")
            continue
        name = head.decode("ascii", "surrogateescape")
        value = [rest.lstrip(b" \t")]
    if name is not None:
        fields.append((name, (value[0] if len(value) == 1 else b"".join(value)).rstrip(b"\r\n")))
    return fields


_MIME_FIELDS = ("content-type", "content-disposition", "content-transfer-encoding")

RESERVED_FIELDS = frozenset(_SINGLETONS + _MIME_FIELDS)
"""Fields of which one is kept (cut to ``max_field_bytes``) even when it starts beyond ``max_header_bytes``:
padding a header must not hide the author, the subject or the MIME structure."""

_FIELD_HEAD = 128
"""Bytes of a field's first line remembered for naming it in a defect."""


def field_cut_defect(name: str, size: int, kept: int) -> str:
    """The defect phrase for a header field longer than ``MimeLimits.max_field_bytes``."""
    return f"header field {name} cut to {kept:,} of {size:,} bytes"


def _field_name(head: bytes) -> str:
    """The name of the field whose first line starts with ``head``, for a defect (no blanks, short)."""
    colon = -1 if head.startswith(b"From ") else head.find(b":")
    words = (head[:colon] if colon > 0 else head).split(None, 1) or [b"?"]
    text = words[0].decode("ascii", "replace")
    return text if len(text) <= 80 else text[:79] + "…"


_ENCODED_WORD = re.compile(rb"=\?([^?\s*]+)(?:\*[^?\s]*)?\?[bBqQ]\?[^?\s]*\?=")
"""An RFC 2047 encoded-word; group 1 is its charset."""


def _header_charsets(fields: list[tuple[str, bytes]], defects: list[str]) -> None:
    """"unknown charset 'x'" for encoded-words in a charset Python does not know (the stdlib's
    CharsetError); their text is decoded as UTF-8, else windows-1252, like raw 8-bit bytes."""
    for _, value in fields:
        if b"=?" not in value:
            continue
        for m in _ENCODED_WORD.finditer(value):
            charset = m.group(1).decode("ascii", "replace").lower()
            if charset == "unknown-8bit" or _known_charset(charset):
                continue
            defect = f"unknown charset {charset!r}"
            if defect not in defects:
                defects.append(defect)


def _mime_fields(fields: list[tuple[str, bytes]]) -> dict[str, bytes]:
    """First value of each MIME field (names compared like ``Message.get``: lower-cased, exact)."""
    found: dict[str, bytes] = {}
    for name, value in fields:
        key = name.lower()
        if key in _MIME_FIELDS and key not in found:
            found[key] = value
    return found


def _structural(raw: bytes, name: str) -> str:
    """A MIME header value as ``str(msg[name])`` gives it under policy.default."""
    value = _unfold(raw.decode("ascii", "surrogateescape"))
    if "=?" in value:
        return _render(name, value)[0]
    return value


def _split_params(value: str) -> list[str]:
    """``email.message._parseparam`` without its quadratic re-slicing (same output, tested)."""
    return [_clean_param(item) for item in _raw_params(value)]


def _raw_params(value: str) -> list[str]:
    """The items of a parameter list as ``_parseparam`` cuts them, before it strips and lower-cases them.

    A ``;`` ends a parameter unless the quotes before it (minus escaped ones) are unbalanced.
    """
    items = value.split(";")
    if '"' not in value:  # no quoting: every ';' separates
        return items
    if "\\" not in value and not any(item.count('"') & 1 for item in items):
        return items  # the usual name="value": quotes balanced in every item, so no ';' is quoted
    text = ";" + value
    n = len(text)
    out: list[str] = []
    start = 0
    while start < n and text[start] == ";":
        start += 1
        end = text.find(";", start)
        scanned, quotes = start, 0
        while end > start:
            quotes += text.count('"', scanned, end) - text.count('\\"', scanned, end)
            scanned = end
            if quotes % 2 == 0:
                break
            end = text.find(";", end + 1)
        if end < 0:
            end = n
        out.append(text[start:end])
        start = end
    return out


def _clean_param(item: str) -> str:
    if "=" in item:
        i = item.index("=")
        item = item[:i].strip().lower() + "=" + item[i + 1 :].strip()
    return item.strip()


_MAX_PARAMS = 100
"""Parameters looked at per header; more is hostile (the stdlib would keep them all)."""


def _params(value: str, defects: list[str]) -> list[tuple[str, Any]]:
    """``Message._get_params_preserve`` for one header value."""
    pairs: list[tuple[str, str]] = []
    for item in _raw_params(value):
        # what _clean_param and then _get_params_preserve make of it, in one go
        pname, sep, pvalue = item.partition("=")
        pairs.append((pname.strip().lower().strip(), pvalue.strip()) if sep else (item.strip(), ""))
    if len(pairs) > _MAX_PARAMS:
        defects.append("too many parameters")
        pairs = pairs[:_MAX_PARAMS]
    if not any("*" in name for name, _ in pairs[1:]):
        # decode_params would unquote and re-quote each value; _param's unquote gives the same
        return list(pairs)
    try:
        return list(email_utils.decode_params(pairs))
    except Exception:  # defensive: RFC 2231 decoding of hostile input
        defects.append("undecodable parameters")
        return pairs


def _first_params(params: list[tuple[str, Any]]) -> dict[str, Any]:
    """The first value of each parameter name, lower-cased: what ``Message.get_param`` finds, for all
    names in one pass (see :func:`_param`)."""
    found: dict[str, Any] = {}
    for name, value in params:
        found.setdefault(name.lower(), value)
    return found


def _param(params: dict[str, Any], key: str) -> Any:
    """``Message.get_param(key)`` on parameters from :func:`_first_params`; None when absent."""
    value = params.get(key)
    if value is None:
        return None
    if isinstance(value, tuple):
        return value[0], value[1], email_utils.unquote(value[2])
    return email_utils.unquote(value)


def _collapse(value: Any) -> str:
    try:
        return str(email_utils.collapse_rfc2231_value(value))
    except Exception:  # defensive
        return str(value[2]) if isinstance(value, tuple) else str(value)


def _charset(value: Any) -> str | None:
    """``Message.get_content_charset`` on a raw parameter value."""
    if value is None:
        return None
    if isinstance(value, tuple):
        try:
            value = str(value[2].encode("raw-unicode-escape"), value[0] or "us-ascii")
        except (LookupError, UnicodeError):
            value = value[2]
    if not isinstance(value, str) or not value.isascii():
        return None
    return value.lower()


class _Info(NamedTuple):
    """The MIME facts of one entity's header block (shared between entities: see :func:`_mime_info`).
    A named tuple: one is made per header block read, several times faster than a frozen dataclass."""

    content_type: str
    charset: str | None
    encoding: str | None
    filename: str | None
    disposition: str | None
    boundary: bytes | None
    multipart_cte_ok: bool


_INFO_KEY = 512
"""MIME fields up to this many bytes in all are read once per process (:func:`_known_info`)."""


def _mime_info(fields: list[tuple[str, bytes]], default_type: str, defects: list[str]) -> _Info:
    """Content type, boundary, charset, file name ... as ``EmailMessage`` getters report them."""
    mime = _mime_fields(fields)
    raw_ct = mime.get("content-type")
    raw_cd = mime.get("content-disposition")
    raw_cte = mime.get("content-transfer-encoding")
    if sum(len(raw) for raw in (raw_ct, raw_cd, raw_cte) if raw is not None) <= _INFO_KEY:
        info, found = _known_info(raw_ct, raw_cd, raw_cte, default_type)
        defects.extend(found)
        return info
    return _read_info(raw_ct, raw_cd, raw_cte, default_type, defects)


@functools.lru_cache(maxsize=1024)
def _known_info(raw_ct: bytes | None, raw_cd: bytes | None, raw_cte: bytes | None,
                default_type: str) -> tuple[_Info, tuple[str, ...]]:
    """:func:`_read_info` remembered, with its defects: most parts of most messages say
    ``text/plain; charset=utf-8`` or the like, and reading parameters is slow in Python."""
    defects: list[str] = []
    info = _read_info(raw_ct, raw_cd, raw_cte, default_type, defects)
    return info, tuple(defects)


def _read_info(raw_ct: bytes | None, raw_cd: bytes | None, raw_cte: bytes | None, default_type: str,
               defects: list[str]) -> _Info:
    ct_params: dict[str, Any] = {}
    content_type = default_type
    if raw_ct is not None:
        ct_value = _structural(raw_ct, "content-type")
        main = ct_value.partition(";")[0].strip().lower()
        content_type = main if main.count("/") == 1 else "text/plain"
        ct_params = _first_params(_params(ct_value, defects))
    cd_params: dict[str, Any] = {}
    disposition = None
    if raw_cd is not None:
        cd_value = _structural(raw_cd, "content-disposition")
        disposition = cd_value.partition(";")[0].strip().lower()
        cd_params = _first_params(_params(cd_value, defects))
    encoding = None
    if raw_cte is not None:
        encoding = _structural(raw_cte, "content-transfer-encoding").lower()
    name = _param(cd_params, "filename")
    if name is None:
        name = _param(ct_params, "name")
    filename = _unsurrogate(_collapse(name).strip()) if name is not None else None
    boundary = None
    raw_boundary = _param(ct_params, "boundary")
    if raw_boundary is not None:
        text = _collapse(raw_boundary).rstrip()
        boundary = text.encode("utf-8", "surrogateescape")
    return _Info(
        content_type=_unsurrogate(content_type),
        charset=_charset(_param(ct_params, "charset")),
        encoding=encoding,
        filename=filename,
        disposition=_unsurrogate(disposition) if disposition is not None else None,
        boundary=boundary,
        multipart_cte_ok=(encoding or "8bit") in ("7bit", "8bit", "binary"),
    )


# --------------------------------------------------------------------------- decoders


class _Decoder(Protocol):
    defects: list[str]

    def feed(self, data: bytes) -> bytes: ...

    def close(self) -> bytes: ...


class _Identity:
    """7bit, 8bit, binary and anything unknown: the content is the body as sent."""

    __slots__ = ("defects",)

    def __init__(self) -> None:
        self.defects: list[str] = []

    def feed(self, data: bytes) -> bytes:
        return data

    def close(self) -> bytes:
        return b""


_B64_KEEP = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
_B64_DELETE = bytes(sorted(set(range(256)) - set(_B64_KEEP)))
_PAD_RUN = re.compile(rb"=+")
_MAX_TAIL = 64 * 1024
"""Longest partial line a decoder waits on before decoding it in pieces."""


class _Base64:
    """Streaming base64 with the exact results of the stdlib's ``decode_b`` fallback chain.

    ``a2b_base64`` (non-strict) skips bytes outside the alphabet and stops at the first
    complete padding; ``=`` that does not complete a quantum is ignored. Whole lines are decoded
    at once when they hold a multiple of four characters (the usual case); otherwise the
    alphabet characters are extracted and the remainder of a quantum is carried.
    """

    __slots__ = ("_bad", "_done", "_quad", "_tail", "defects")

    def __init__(self) -> None:
        self.defects: list[str] = []
        self._tail = b""
        self._quad = b""
        self._done = False
        self._bad = False

    def feed(self, data: bytes) -> bytes:
        if self._tail:
            data = self._tail + data
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            if len(data) < _MAX_TAIL:
                self._tail = data
                return b""
            cut = len(data)
        self._tail = data[cut:]
        return self._decode(data[:cut] if cut < len(data) else data)

    def close(self) -> bytes:
        out = self._decode(self._tail) if self._tail else b""
        self._tail = b""
        if not self._done:
            pending = self._quad.rstrip(b"=")
            if len(pending) in (2, 3):
                self.defects.append("InvalidBase64PaddingDefect")
                out += binascii.a2b_base64(pending + b"=" * (4 - len(pending)))
            elif len(pending) == 1:
                self.defects.append("InvalidBase64LengthDefect")
        if self._bad:
            self.defects.insert(0, "InvalidBase64CharactersDefect")
        return out

    def _decode(self, seg: bytes) -> bytes:
        if self._done:
            if not self._bad and seg.translate(None, b"\r\n"):
                self._bad = True
            return b""
        if not self._quad and b"=" not in seg:
            try:
                out = _b64decode(seg)  # as binascii.a2b_base64 for a block without "=", in SIMD
            except binascii.Error:
                pass  # not a whole number of quanta: take the careful path
            else:
                if not self._bad:
                    self._check_alphabet(seg, len(out) // 3 * 4)
                return out
        return self._careful(seg)

    def _check_alphabet(self, seg: bytes, valid: int) -> None:
        """Flag bytes outside the alphabet other than line breaks (the stdlib reports them)."""
        other = len(seg) - valid
        if other == 0 or _regular_lines(seg, other):
            return
        newlines = seg.count(b"\n")
        if other != newlines and other != newlines + seg.count(b"\r"):
            self._bad = True

    def _careful(self, seg: bytes) -> bytes:
        clean = seg.translate(None, _B64_DELETE)
        if not self._bad and len(clean) + seg.count(b"\r") + seg.count(b"\n") != len(seg):
            self._bad = True
        data = self._quad + clean
        if b"=" not in data:
            whole = len(data) & ~3
            self._quad = data[whole:]
            return binascii.a2b_base64(data[:whole]) if whole else b""
        return self._with_padding(data)

    def _with_padding(self, data: bytes) -> bytes:
        out: list[bytes] = []
        valid = b""
        pos = 0
        for run in _PAD_RUN.finditer(data):
            start, end = run.span()
            chunk = valid + data[pos:start]
            whole = len(chunk) & ~3
            if whole:
                out.append(binascii.a2b_base64(chunk[:whole]))
            valid = chunk[whole:]
            pos = end
            quad = len(valid)
            if quad == 3 or (quad == 2 and end - start >= 2):
                out.append(binascii.a2b_base64(valid + b"=" * (4 - quad)))
                self._done = True
                self._quad = b""
                if end - start > 4 - quad or end < len(data):
                    self._bad = True
                return b"".join(out)
            if quad == 2 and end == len(data):
                self._quad = valid + b"="  # the next character decides what this '=' means
                return b"".join(out)
            self._bad = True  # an '=' that completes nothing: ignored, but not strict base64
        chunk = valid + data[pos:]
        whole = len(chunk) & ~3
        if whole:
            out.append(binascii.a2b_base64(chunk[:whole]))
        self._quad = chunk[whole:]
        return b"".join(out)


def _regular_lines(seg: bytes, other: int) -> bool:
    """Lines of one width, each ending in the same line break, and nothing else outside the
    alphabet: checked on every width-th byte instead of counting line breaks."""
    width = seg.find(b"\n") + 1
    if width < 2 or len(seg) % width:
        return False
    lines = len(seg) // width
    eol = 2 if seg[width - 2] == 0x0D else 1
    if other != lines * eol or seg[width - 1 :: width] != b"\n" * lines:
        return False
    return eol == 1 or seg[width - 2 :: width] == b"\r" * lines


class _QuotedPrintable:
    """Streaming ``quopri.decodestring``: ``a2b_qp`` on whole lines (no escape spans an LF)."""

    __slots__ = ("_tail", "defects")

    def __init__(self) -> None:
        self.defects: list[str] = []
        self._tail = b""

    def feed(self, data: bytes) -> bytes:
        if self._tail:
            data = self._tail + data
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            if len(data) < _MAX_TAIL:
                self._tail = data
                return b""
            cut = _qp_cut(data)
        self._tail = data[cut:]
        return binascii.a2b_qp(data[:cut])

    def close(self) -> bytes:
        tail, self._tail = self._tail, b""
        return binascii.a2b_qp(tail) if tail else b""


def _qp_cut(data: bytes) -> int:
    """A cut in a long line without LF that splits no ``=XX`` escape."""
    cut = len(data)
    while cut > 2 and b"=" in data[cut - 2 : cut]:
        cut -= 1
    return cut if cut > 2 else len(data)


def _decoder(encoding: str | None, defects: list[str]) -> _Decoder:
    if encoding == "base64":
        return _Base64()
    if encoding == "quoted-printable":
        return _QuotedPrintable()
    if encoding in ("x-uuencode", "uuencode", "uue", "x-uue"):
        defects.append("uuencoded content hashed as sent")
    return _Identity()


class _HookError(Exception):
    """An exception of the caller's part hook or writer: passed on, never taken for a parser bug."""

    def __init__(self, original: Exception) -> None:
        super().__init__(str(original))
        self.original = original


class _Content:
    """Decodes and hashes the content of one leaf (or of a preamble that may become one)."""

    __slots__ = ("decoder", "md5", "preview", "preview_room", "sha256", "size", "writer")

    def __init__(self, decoder: _Decoder, writer: PartWriter | None, preview_room: int) -> None:
        self.decoder = decoder
        self.md5 = hashlib.md5()
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.writer = writer
        self.preview_room = preview_room
        self.preview: bytearray | None = bytearray() if preview_room > 0 else None

    def feed(self, data: bytes) -> None:
        out = self.decoder.feed(data)
        if out:
            self._take(out)

    def close(self) -> None:
        out = self.decoder.close()
        if out:
            self._take(out)
        if self.writer is not None:
            writer, self.writer = self.writer, None
            try:
                writer.close()
            except Exception as exc:
                raise _HookError(exc) from exc

    def _take(self, out: bytes) -> None:
        self.size += len(out)
        self.md5.update(out)
        self.sha256.update(out)
        if self.writer is not None:
            try:
                self.writer.write(out)
            except Exception as exc:
                raise _HookError(exc) from exc
        if self.preview is not None and len(self.preview) < self.preview_room:
            self.preview += out[: self.preview_room - len(self.preview)]


# --------------------------------------------------------------------------- entities


class _Kind(enum.Enum):
    HEADERS = "headers"  # header block not finished yet
    LEAF = "leaf"
    MESSAGE = "message"  # message/*: one encapsulated message follows
    MULTIPART = "multipart"


class _MState(enum.Enum):
    PREAMBLE = "preamble"
    PARTS = "parts"
    EPILOGUE = "epilogue"  # after the close delimiter, or after a missing start boundary


class _Entity:
    """Mutable bookkeeping of one entity while the message streams by."""

    __slots__ = (
        "body_end", "body_start", "children", "complete", "containers", "content", "default_type",
        "defects", "delim", "fresh", "ignored", "info", "kept", "kind", "lines", "mstate", "offset",
        "parent", "path", "raw_fed",
    )  # fmt: skip

    def __init__(self, *, path: str, parent: _Entity | None, offset: int, ignored: bool) -> None:
        self.path = path
        self.parent = parent
        self.offset = offset
        self.ignored = ignored
        self.containers: int = 0 if parent is None else parent.containers + 1
        digest = (
            parent is not None and parent.info is not None and parent.info.content_type == "multipart/digest"
        )
        self.default_type = "message/rfc822" if digest else "text/plain"
        self.kind = _Kind.HEADERS
        self.mstate = _MState.PREAMBLE
        self.lines: list[bytes] = []
        self.kept = 0
        self.fresh = False
        self.info: _Info | None = None
        self.delim: bytes | None = None
        self.content: _Content | None = None
        self.children: list[_Entity] = []
        self.defects: list[str] = []
        self.body_start = offset
        self.body_end = offset
        self.raw_fed = offset  # an embedded e-mail: message offset up to which its body went to ``content``
        self.complete = True

    def to_part(self) -> Part:
        info = self.info or _Info("text/plain", None, None, None, None, None, True)
        content = self.content
        return Part(
            path=self.path,
            content_type=info.content_type,
            charset=info.charset,
            encoding=info.encoding,
            filename=info.filename,
            disposition=info.disposition,
            offset=self.offset,
            header_bytes=self.body_start - self.offset,
            encoded_bytes=max(0, self.body_end - self.body_start),
            decoded_bytes=content.size if content is not None else 0,
            md5=content.md5.hexdigest() if content is not None else None,
            sha256=content.sha256.hexdigest() if content is not None else None,
            is_attachment=content is not None and _is_attachment(info),
            complete=self.complete,
            children=tuple([c.to_part() for c in self.children]) if self.children else (),
            defects=tuple(self.defects),
        )


def _is_attachment(info: _Info) -> bool:
    """The stdlib's ``get_filename() or get_content_disposition() == "attachment"``, and every embedded
    e-mail (see EMBEDDED_MESSAGE_TYPES)."""
    return bool(info.filename) or info.disposition == "attachment" or is_embedded_message(info.content_type)


_NEED = -1
"""``line_end`` of a delimiter match meaning: the bytes seen so far cannot decide; wait."""

_MAX_BOUNDARY_BLANKS = 1024
"""Blanks tolerated after a delimiter (the stdlib allows any number)."""


def _match_delim(data: bytes, at: int, delim: bytes, final: bool) -> tuple[bool, int] | None:
    """``boundaryre.match`` of email.feedparser on the line at ``data[at:]``: (is_close, line_end).

    ``line_end`` is ``_NEED`` when the line is not complete enough to decide.
    """
    n = len(data)
    wait = (False, _NEED)
    if n - at < len(delim):
        return wait if not final and delim.startswith(data[at:n]) else None
    if not data.startswith(delim, at):
        return None
    q = at + len(delim)
    close = False
    if q < n and data[q] == 0x2D:  # '-'
        if q + 1 >= n:
            return None if final else wait
        if data[q + 1] != 0x2D:
            return None
        close, q = True, q + 2
    limit = q + _MAX_BOUNDARY_BLANKS
    while q < n and data[q] in (0x20, 0x09):
        q += 1
        if q > limit:
            return None
    if q >= n:
        return (close, n) if final else wait
    if data[q] == 0x0A:
        return close, q + 1
    if data[q] == 0x0D:
        if q + 1 >= n:
            return (close, n) if final else wait
        return close, q + 2 if data[q + 1] == 0x0A else q + 1
    return None


def _eol_before(data: bytes, at: int) -> int:
    """Length of the line break that ends just before ``at`` (0, 1 or 2)."""
    if at <= 0:
        return 0
    if data[at - 1] == 0x0A:
        return 2 if at >= 2 and data[at - 2] == 0x0D else 1
    return 1 if data[at - 1] == 0x0D else 0


def _known_charset(charset: str) -> bool:
    """A text codec Python knows under this name."""
    try:
        info = codecs.lookup(charset)
    except Exception:  # LookupError mostly; odd names (NUL bytes ...) raise other errors
        return False
    return bool(getattr(info, "_is_text_encoding", True))  # False for base64, rot13, ...


def _decode_text(raw: bytes, charset: str | None) -> str:
    """Decoded text for display: the declared charset if it works, else UTF-8 / windows-1252."""
    if charset and _known_charset(charset):
        try:
            return raw.decode(charset, "replace")
        except Exception:  # exotic codecs can fail in odd ways
            return decode_header_bytes(raw)
    return decode_header_bytes(raw)


# --------------------------------------------------------------------------- the summarizer

_UNSEARCHED = (1 << 62, -1)
"""Search cache value that makes the next lookup search."""

_SMALL_PIECE = 1024
"""Fed pieces shorter than this are gathered in a bytearray while they wait for a block (see feed)."""
HEADER_FLOOR = 4 * 1024
"""Header bytes every message keeps whatever the run's budget has left (``waiting``: see
:meth:`MessageSummarizer._keep_header_line`; counted with :data:`HEADER_LINE_COST` a line). Past it, while
the run's summarisers hold more than their budget, later fields are dropped as past ``max_header_bytes``
("header too long"; the first of each RESERVED_FIELDS name is still kept): 2,000 messages open at once, each
in the middle of a 200 KB header block, held 641 MiB."""
HEADER_LINE_COST = 120
"""What a kept header line costs besides its bytes (the bytes object and its slot, and the field it becomes):
charged with them, to the floor and to the run's budget. Counted by bytes alone, 2,000 messages each in the
middle of a header block of 100-byte fields held 2.3 times their floors."""
_BLOCK = 64 * 1024
"""Small feeds are collected to this size before scanning (TCP hands over ~1.4 KB at a time), unless the
run's summarisers together gather more than their shared budget (``waiting``: 2,000 messages open at once
gathered 125 MiB); then each scans what it has as it comes."""

MAX_LINE_CHARS = 998
"""RFC 5322 §2.1.1 (and RFC 5321 §4.5.3.1.6 for SMTP): a line holds at most 998 characters before CRLF."""

_WINDOW = (MAX_LINE_CHARS + 2) // 2
"""A line over MAX_LINE_CHARS spans 999 bytes without LF, so it covers a whole aligned window of this size."""


def long_lines_defect(count: int, longest: int) -> str:
    """The defect phrase for lines over :data:`MAX_LINE_CHARS` (one phrase, however many lines)."""
    lines = "1 line" if count == 1 else f"{count:,} lines"
    return f"{lines} over {MAX_LINE_CHARS} characters (longest {longest:,})"


_EQUAL_WAIT = 8
"""Windows :class:`_LineLengths` steps through after a short run of equal lines before it looks for one again."""
_EQUAL_MAX = 1024
"""Lines of equal width looked at in one go (the strided copy :func:`_equal_lines` makes stays small)."""


def _equal_lines(data: bytes, lf: int, n: int) -> int:
    """The last LF of the run of lines as long as the one after ``data[lf]`` (an LF), all short; else ``lf``.

    Base64 and most generated text come in lines of one width: every width-th byte from ``lf`` on is an LF
    up to the run's end, which one strided copy and ``lstrip`` find at C speed (LFs at equal distances of
    at most _WINDOW bytes leave no room for a line over MAX_LINE_CHARS between them)."""
    width = data.find(b"\n", lf + 1, lf + 1 + _WINDOW) - lf
    if width <= 0:
        return lf
    stride = data[lf : min(n, lf + width * _EQUAL_MAX) : width]
    run = len(stride) - len(stride.lstrip(b"\n"))
    return lf + (run - 1) * width


class _LineLengths:
    """Counts lines over :data:`MAX_LINE_CHARS` without walking every line.

    Only aligned windows of :data:`_WINDOW` bytes are searched for an LF (one C-speed ``find`` per 499
    bytes); a window without one is inside a line long enough to measure exactly. Fed every byte of the
    message once, in order, in chunks of any size."""

    __slots__ = ("_cr", "_run", "long_lines", "longest")

    def __init__(self) -> None:
        self._run = 0  # bytes of the unfinished line so far (a CR before the LF included)
        self._cr = False  # the last byte fed was a CR
        self.long_lines = 0
        self.longest = 0

    def feed(self, data: bytes, start: int = 0) -> None:
        n = len(data)
        if start >= n:
            return
        find = data.find
        lf = find(b"\n", start)
        if lf < 0:
            self._run += n - start
            self._cr = data[n - 1] == 0x0D
            return
        cr = data[lf - 1] == 0x0D if lf > start else self._cr
        self._line(self._run + lf - start - cr)
        pos = lf + 1
        i = pos
        wait = 0  # windows to go before looking for equal lines again
        while i + _WINDOW <= n:
            hit = find(b"\n", i, i + _WINDOW)
            if hit >= 0:
                if wait:
                    wait -= 1
                    i += _WINDOW
                    continue
                # the line up to ``hit`` is short (a window without LF would have been before it): lines
                # start again after it, or after the run of equal lines that follows it
                last = _equal_lines(data, hit, n)
                if last - hit < _WINDOW * _EQUAL_WAIT:
                    wait = _EQUAL_WAIT  # no long run: plain windows for a while
                pos = i = last + 1
                continue
            begin = data.rfind(b"\n", pos, i) + 1 or pos
            end = find(b"\n", i + _WINDOW)
            if end < 0:  # the long line goes on in the next chunk
                self._run = n - begin
                self._cr = data[n - 1] == 0x0D
                return
            self._line(end - begin - (data[end - 1] == 0x0D))
            pos = i = end + 1
        last = data.rfind(b"\n", pos - 1)
        self._run = n - last - 1
        self._cr = data[n - 1] == 0x0D

    def close(self) -> None:
        """The message ends: its last line counts even without a line ending."""
        if self._run:
            self._line(self._run - self._cr)
            self._run = 0

    def _line(self, chars: int) -> None:
        if chars > MAX_LINE_CHARS:
            self.long_lines += 1
            self.longest = max(self.longest, chars)


class _FieldState:
    """Size and kept bytes of the header field being read line by line."""

    __slots__ = ("head", "keep", "kept", "size")

    def __init__(self, head: bytes, keep: bool) -> None:
        self.head = head  # the start of its first line, to name it
        self.keep = keep  # False: dropped whole (beyond max_header_bytes)
        self.size = 0  # bytes of its lines as sent, line breaks included
        self.kept = 0


class MessageSummarizer:
    """Streaming summary of one message: ``feed()`` chunks of any size, then ``close()``.

    ``on_part`` is called when a leaf part's body begins; if it returns a writer, the part's
    decoded bytes are written to it as they are decoded and it is closed when the part ends.
    Memory stays within ``limits`` whatever the message looks like.

    ``keep=False`` makes the summary a session keeps (:func:`mailtrace.session.kept_summary`) without
    first making what it drops: no ``kept`` bytes are copied, and ``text_preview`` is empty as there.
    ``message_md5=False`` leaves ``MessageSummary.md5`` empty, for reports that never show it (hashing
    every byte of the message is a tenth of the work here).
    """

    __slots__ = ("_active", "_base", "_blank", "_bol", "_buf", "_closed", "_data", "_defects", "_embedded",
                 "_entities", "_failed", "_fast_limit", "_field", "_headers_held", "_hits", "_keep", "_kept",
                 "_kept_room", "_lf", "_limits", "_lines", "_md5", "_on_part", "_preview_dropped", "_reserved",
                 "_root", "_root_fields", "_sha256", "_skip_line", "_stack", "_tail", "_total", "_undecided",
                 "_unscanned", "_waiting")

    def __init__(self, limits: MimeLimits = MimeLimits(), *, on_part: PartHook | None = None,
                 keep: bool = True, message_md5: bool = True, waiting: ByteBudget | None = None) -> None:
        self._limits = limits
        self._waiting = waiting if waiting is not None else ByteBudget(1 << 62)
        """Small feeds gathered for a block by all the summarisers of a run together (shared, see
        :data:`_BLOCK`; one of its own: no bound beyond the block)."""
        self._keep = keep
        self._preview_dropped = not keep and limits.max_kept_bytes > 0
        """keep=False drops the preview of any message with bytes (:meth:`_dropped_preview`): none is collected."""
        self._kept_room = limits.max_kept_bytes if keep else 0
        self._fast_limit = min(limits.max_header_bytes, limits.max_field_bytes)  # no field can be cut
        self._on_part = on_part
        self._buf: list[bytes | bytearray] = []  # bytes not decided yet (waiting for the rest of a line), in pieces
        self._unscanned = 0
        self._undecided = 0  # of them, what the last scan left (the rest are _unscanned)
        self._headers_held = 0  # header bytes kept, charged to ``waiting`` until close()
        self._base = 0  # message offset of the first byte of the data being scanned
        self._total = 0
        self._sha256 = hashlib.sha256()
        self._md5 = hashlib.md5() if message_md5 else None
        self._kept = bytearray()
        self._bol = True  # the byte before the scanned data ended a line (or there is none)
        self._skip_line = False  # inside an over-long header line whose rest is dropped
        self._field: _FieldState | None = None  # the header field being read line by line
        self._reserved: set[bytes] = set()  # RESERVED_FIELDS kept beyond max_header_bytes in this block
        self._lf: tuple[int, int] = _UNSEARCHED  # cached (search start, next LF) in the current data
        self._blank: tuple[int, int] = _UNSEARCHED  # cached (search start, next blank line)
        self._root = _Entity(path="1", parent=None, offset=0, ignored=False)
        self._root_fields: list[tuple[str, bytes]] = []
        self._stack: list[_Entity] = [self._root]
        self._active: list[tuple[int, bytes]] = []  # (stack index, delimiter), outermost first
        self._embedded: list[_Entity] = []  # open embedded e-mails whose raw body is being hashed, outermost first
        self._data: bytes | None = None  # the data being scanned (message offset ``_base``), during a scan only
        self._tail = b""  # the last (up to) two bytes before ``_base``: a line break an embedded e-mail waits on
        self._hits: dict[bytes, int] = {}
        self._entities = 1
        self._defects: list[str] = []
        self._lines = _LineLengths()
        self._closed = False
        self._failed = False

    # ------------------------------------------------------------------ public API

    def feed(self, data: bytes) -> None:
        """Add the next bytes of the message; any chunking gives the same summary."""
        if self._closed:
            raise ValueError("feed() after close()")
        if not data:
            return
        self._total += len(data)
        if self._failed or (not self._buf and len(data) >= _BLOCK):
            data = bytes(data)  # the same object when it is bytes already
            self._absorb(data)
            if not self._failed:
                self._scan(data, final=False)
            return
        # hashed with the rest of the block: fewer, larger hash updates; kept as the pieces they are, joined
        # once (one copy, none for a single piece) rather than copied in and out of a bytearray. Small pieces
        # (a segment at a time, or a byte at a time) go into one bytearray: as objects of their own they took
        # 20-40 times their size (tests/test_mime.py)
        buf = self._buf
        if len(data) >= _SMALL_PIECE:
            buf.append(bytes(data))
        elif buf and type(buf[-1]) is bytearray:
            buf[-1] += data
        else:
            buf.append(bytearray(data))
        self._unscanned += len(data)
        waiting = self._waiting
        waiting.held += len(data)
        # past the run's budget, scan what came as it comes, but only once it is as long as what the last scan
        # left undecided (a line still open): each scan reads that again, and a 3 MB header line fed by the
        # segment would otherwise be read 2,000 times
        if self._unscanned >= _BLOCK or (waiting.held > waiting.size and self._unscanned >= self._undecided):
            self._scan_buffer(final=False)

    def close(self, *, complete: bool = True, missing_bytes: int = 0) -> MessageSummary:
        """End of the message (``complete=False`` when the carrier lost or cut some of it)."""
        if self._closed:
            raise ValueError("close() called twice")
        self._closed = True
        self._scan_buffer(final=True)
        self._lines.close()
        try:
            if self._embedded:
                self._end_embedded_at_eof()
            self._unwind(0, self._total, b"", end=None, eof_incomplete=not complete)
        except _HookError as err:
            raise err.original from None
        except Exception as exc:  # a bug here must not lose the message
            self._fail(exc)
        try:
            return self._summary(complete, missing_bytes)
        finally:
            self._unlink_entities()
            self._waiting.held -= self._headers_held
            self._headers_held = 0

    def _unlink_entities(self) -> None:
        """Take the entity tree apart (a child points to its parent and back): its decoders and buffers are
        freed at once by reference counting instead of waiting, cycle by cycle, for the garbage collector."""
        stack = [self._root]
        while stack:
            entity = stack.pop()
            stack.extend(entity.children)
            entity.children = []
            entity.parent = None
        self._stack = [self._root]
        self._embedded = []

    # ------------------------------------------------------------------ scanning

    def _absorb(self, data: bytes, start: int = 0) -> None:
        """Bytes seen for the first time (``data[start:]``): into the message hashes, the kept prefix
        and the line lengths."""
        with memoryview(data) as view:
            fresh = view[start:] if start else view
            self._sha256.update(fresh)
            if self._md5 is not None:
                self._md5.update(fresh)
            room = self._kept_room - len(self._kept)
            if room > 0:
                self._kept += fresh[:room]
        self._lines.feed(data, start)

    def _scan_buffer(self, *, final: bool) -> None:
        data = bytes(self._buf[0]) if len(self._buf) == 1 else b"".join(self._buf)
        self._buf.clear()
        if self._unscanned:
            self._absorb(data, len(data) - self._unscanned)
            self._waiting.held -= self._unscanned
        self._unscanned = 0
        if not self._failed:
            self._scan(data, final=final)

    def _scan(self, data: bytes, *, final: bool) -> None:
        self._hits.clear()
        self._lf = self._blank = _UNSEARCHED
        self._data = data
        try:
            used = self._run(data, final)
            tail = (self._tail + data[max(0, used - 2) : used])[-2:]
            if self._embedded:
                # what was decided belongs to every embedded e-mail still open, but a line break it ends with would
                # be the boundary's if a delimiter line follows: it waits (in ``_tail``) for the next scan
                self._feed_embedded(self._base + used - _eol_before(tail, len(tail)))
            self._tail = tail
        except _HookError as err:
            self._failed = True
            raise err.original from None
        except Exception as exc:  # a bug here must not lose the message
            self._fail(exc)
            return
        finally:
            self._data = None
        if used > 0:
            self._bol = data[used - 1] in (0x0A, 0x0D)
        self._base += used
        undecided = len(data) - used
        self._waiting.held += undecided - self._undecided  # an open line waits, as the gathered bytes do
        self._undecided = undecided
        if used < len(data):
            self._buf.append(data[used:])

    def _fail(self, exc: Exception) -> None:
        self._failed = True
        self._buf.clear()  # already hashed: only not-yet-seen bytes are counted in _unscanned
        self._waiting.held -= self._undecided
        self._undecided = 0
        self._defects.append(f"internal error ({type(exc).__name__}); summary incomplete")

    def _run(self, data: bytes, final: bool) -> int:
        pos = 0
        n = len(data)
        while pos < n:
            top = self._stack[-1]
            kind, mstate, depth = top.kind, top.mstate, len(self._stack)
            if kind is _Kind.HEADERS:
                step = self._header_step(top, data, pos, final)
            else:
                step = self._body_step(top, data, pos, final)
            if step == pos:  # compared field by field: no tuples made per step
                now = self._stack[-1]
                if now is top and now.kind is kind and now.mstate is mstate and len(self._stack) == depth:
                    break  # nothing decided: wait for more data
            pos = step
        return pos

    # ------------------------------------------------------------------ header blocks

    def _line_end(self, data: bytes, pos: int, final: bool) -> tuple[int, int]:
        """End of the line at ``pos`` and the size of its line break; (-1, 0) if not known yet."""
        n = len(data)
        start, lf = self._lf
        if pos < start or 0 <= lf < pos:
            lf = data.find(b"\n", pos)
            self._lf = (pos, lf)
        cr = data.find(b"\r", pos, lf if lf >= 0 else n)
        if cr >= 0:
            if cr + 1 < n:
                return (cr + 2, 2) if data[cr + 1] == 0x0A else (cr + 1, 1)
            return (n, 1) if final else (-1, 0)
        if lf >= 0:
            return lf + 1, 1
        return (n, 0) if final else (-1, 0)

    def _header_block(self, ent: _Entity, data: bytes, pos: int) -> int:
        """Fast path: a whole header block up to a blank line, all plain header lines; else pos."""
        end = self._blank_line(data, pos)
        if end < 0 or end - pos > self._fast_limit:
            return pos
        waiting = self._waiting
        if waiting.held > waiting.size and self._headers_held + end - pos \
                + HEADER_LINE_COST * data.count(b"\n", pos, end) > HEADER_FLOOR:
            return pos  # past the run's budget and the floor: field by field (_keep_header_line decides)
        block = data[pos:end]
        body = end + (2 if data[end] == 0x0D else 1)
        if self._active and (block.startswith(b"--") or b"\n--" in block or b"\r--" in block):
            return pos  # a delimiter line may interrupt the block: go line by line
        lines = block.splitlines(keepends=True)
        if not all(map(_HEADER_LINE.match, lines)):
            return pos
        ent.fresh = False
        if not ent.ignored:
            ent.lines.extend(lines)
            ent.kept += len(block)
            cost = len(block) + HEADER_LINE_COST * len(lines)
            self._headers_held += cost
            waiting.held += cost
        self._end_headers(ent, self._base + body)
        return body

    def _blank_line(self, data: bytes, pos: int) -> int:
        """Start of the first blank line after an LF at or after pos (-1 if none); cached per scan."""
        start, found = self._blank
        if pos < start or 0 <= found < pos:
            crlf = data.find(b"\n\r\n", pos)
            lf = data.find(b"\n\n", pos, crlf + 2 if crlf >= 0 else len(data))
            found = (lf if lf >= 0 else crlf) + 1 if max(lf, crlf) >= 0 else -1
            self._blank = (pos, found)
        return found

    def _header_step(self, ent: _Entity, data: bytes, pos: int, final: bool) -> int:
        n = len(data)
        if not self._skip_line and not ent.lines:
            fast = self._header_block(ent, data, pos)
            if fast != pos:
                return fast
        end, brk = self._line_end(data, pos, final)
        if self._skip_line:
            stop = end if end >= 0 else n - 1 if data[n - 1] == 0x0D else n  # a CR may be half of CR LF
            if self._field is not None:
                self._field.size += stop - pos
            self._skip_line = end < 0
            return stop
        if end < 0:
            if n - pos <= self._held_line_limit(data, pos):
                return pos
            return self._long_header_line(ent, data, pos)
        line = data[pos:end]
        if self._active and line.startswith(b"--"):
            match = self._match_line(data, pos, final)
            if match is not None and match[2] == _NEED:
                return pos
            if match is not None:
                level, close, line_end = match
                if ent.fresh and ent.parent is self._stack[level]:
                    return line_end  # repeated delimiter lines make no empty parts
                self._end_headers(ent, self._base + pos)
                self._boundary(pos, level, close=close, line_end=line_end)
                return line_end
        if brk == len(line):  # an empty line ends the header block
            ent.fresh = False
            self._end_headers(ent, self._base + end)
            return end
        if _HEADER_LINE.match(line):
            ent.fresh = False
            if end - pos > self._limits.max_line:  # arrived whole: the same defect as when waiting for it
                ent.defects.append("line too long")
            self._keep_header_line(ent, line)
            return end
        ent.defects.append("MissingHeaderBodySeparatorDefect")
        self._end_headers(ent, self._base + pos)
        return pos

    def _held_line_limit(self, data: bytes, pos: int) -> int:
        """How long the header line at ``pos`` may wait for its end: ``max_line``, or, while the run's summarisers
        hold more than their budget, ``max_field_bytes`` (what a field keeps anyway: 1,000 messages at once each
        in the middle of a 300 KB header line held 290 MiB) — and only :data:`HEADER_FLOOR` when its first
        bytes already show a header field (a name and its colon, or a continuation), which is then kept cut
        there ("line too long"; 168 → 85 MiB in one process). A line that may be a boundary, or whose name goes
        on, waits as long as before: what it is decides the message's structure."""
        limits = self._limits
        waiting = self._waiting
        if waiting.held <= waiting.size:
            return limits.max_line
        limit = min(limits.max_line, limits.max_field_bytes)
        if limit > HEADER_FLOOR and not (self._active and data.startswith(b"--", pos)) \
                and _HEADER_LINE.match(data, pos, pos + HEADER_FLOOR):
            return HEADER_FLOOR
        return limit

    def _long_header_line(self, ent: _Entity, data: bytes, pos: int) -> int:
        """A line longer than it may wait (:meth:`_held_line_limit`), its end not seen yet: keep a prefix, drop
        the rest."""
        end = pos + self._held_line_limit(data, pos)
        if _HEADER_LINE.match(data, pos, end):
            ent.fresh = False
            ent.defects.append("line too long")
            self._keep_header_line(ent, data[pos:end])
            self._skip_line = True
            return end
        ent.defects.append("MissingHeaderBodySeparatorDefect")
        self._end_headers(ent, self._base + pos)
        return pos

    def _keep_header_line(self, ent: _Entity, line: bytes) -> None:
        """Keep a header line within the limits: a field that starts beyond ``max_header_bytes`` is
        dropped (unless it is the first of its RESERVED_FIELDS name to start there), a kept one is cut after
        ``max_field_bytes``."""
        if ent.ignored:
            return
        field = self._field
        if field is None or line[:1] not in (b" ", b"\t"):
            self._end_field(ent)
            waiting = self._waiting
            fits = ent.kept < self._limits.max_header_bytes and (
                self._headers_held < HEADER_FLOOR or waiting.held <= waiting.size)
            keep = fits or self._reserve(line)
            if not keep:
                self._header_too_long(ent)
            field = self._field = _FieldState(line[:_FIELD_HEAD], keep)
        field.size += len(line)
        if not field.keep:
            return
        room = self._limits.max_field_bytes - field.kept
        if room <= 0:
            return
        if len(line) > room:
            line = _utf8_prefix(line, room)
        ent.lines.append(line)
        ent.kept += len(line)
        field.kept += len(line)
        self._headers_held += len(line) + HEADER_LINE_COST
        self._waiting.held += len(line) + HEADER_LINE_COST

    def _reserve(self, line: bytes) -> bool:
        """Whether a field beyond the header budget is kept: the first of each RESERVED_FIELDS name."""
        colon = line.find(b":", 0, 64)
        name = line[:colon].lower() if colon > 0 else b""
        if name.decode("ascii", "replace") not in RESERVED_FIELDS or name in self._reserved:
            return False
        self._reserved.add(name)
        return True

    def _end_field(self, ent: _Entity) -> None:
        """The field read line by line has ended: a defect if it was cut."""
        field, self._field = self._field, None
        if field is not None and field.keep and field.kept < field.size:
            ent.defects.append(field_cut_defect(_field_name(field.head), field.size, field.kept))
            self._header_too_long(ent)

    @staticmethod
    def _header_too_long(ent: _Entity) -> None:
        if "header too long" not in ent.defects:
            ent.defects.append("header too long")

    def _end_headers(self, ent: _Entity, body_start: int) -> None:
        """The header block of ``ent`` is complete: decide what its body is."""
        ent.body_start = ent.body_end = body_start
        self._skip_line = False
        self._end_field(ent)
        self._reserved.clear()
        if ent.ignored:
            ent.kind = _Kind.LEAF
            return
        moved = None
        if len(ent.lines) > 1 and ent.lines[-1].startswith(b"From "):
            moved = ent.lines.pop()  # the stdlib takes a final "From " line for the body's first
        fields = _split_fields(ent.lines, ent.defects)
        ent.lines = []
        _header_charsets(fields, ent.defects)
        info = _mime_info(fields, ent.default_type, ent.defects)
        ent.info = info
        if ent is self._root:
            self._root_fields = fields
        maintype = info.content_type.partition("/")[0]
        container = maintype in ("message", "multipart") and info.content_type != "message/delivery-status"
        if container and ent.containers >= self._limits.max_depth:
            ent.defects.append("nesting too deep")
            container = False
        if container and maintype == "message":
            ent.kind = _Kind.MESSAGE
            if is_embedded_message(info.content_type):
                self._start_embedded(ent, info)
            self._push_child(ent, body_start)
        elif container and info.boundary is not None:
            ent.kind = _Kind.MULTIPART
            ent.delim = b"--" + info.boundary
            if not info.multipart_cte_ok:
                ent.defects.append("InvalidMultipartContentTransferEncodingDefect")
            ent.content = _Content(_decoder(info.encoding, ent.defects), None, 0)  # in case no part starts
            self._update_active()
        else:
            if container:
                ent.defects.append("NoBoundaryInMultipartDefect")
            self._start_leaf(ent, info)
            if moved is not None and ent.content is not None:
                ent.content.feed(moved)

    def _start_leaf(self, ent: _Entity, info: _Info) -> None:
        ent.kind = _Kind.LEAF
        writer = self._part_writer(ent, info)
        if info.charset is not None and not _known_charset(info.charset):
            ent.defects.append(f"unknown charset {info.charset!r}")
        room = self._limits.max_preview_bytes if info.content_type in ("text/plain", "text/html") else 0
        if self._preview_dropped and self._total:
            room = 0  # the summary drops it: no copies of text to decode and throw away
        ent.content = _Content(_decoder(info.encoding, ent.defects), writer, room)

    def _start_embedded(self, ent: _Entity, info: _Info) -> None:
        """An embedded e-mail's body begins (at ``ent.body_start``): hash it as it streams by.

        Its bytes are not handed over here but by :meth:`_feed_embedded`, from the data being scanned, once the
        scanner has decided them: the children parse the same bytes, and a line break only turns out to be the
        boundary's (not the message's) when the delimiter line after it is seen."""
        if not info.multipart_cte_ok:
            # base64, quoted-printable ...: RFC 2046 5.2.1 allows message/rfc822 only 7bit, 8bit and binary (RFC 6532
            # allows any for message/global). The stdlib parses the body as sent all the same, so does the part tree
            # here, and the content is the body as sent too (see the module docstring).
            ent.defects.append("transfer encoding of embedded message ignored")
        writer = self._part_writer(ent, info) if len(self._embedded) < MAX_EMBEDDED_WRITTEN else None
        ent.content = _Content(_Identity(), writer, 0)
        ent.raw_fed = ent.body_start
        self._embedded.append(ent)

    def _part_writer(self, ent: _Entity, info: _Info) -> PartWriter | None:
        """The ``on_part`` hook's writer for the content of ``ent`` (None without a hook)."""
        if self._on_part is None:
            return None
        start = PartStart(
            path=ent.path,
            content_type=info.content_type,
            filename=info.filename,
            disposition=info.disposition,
            encoding=info.encoding,
            is_attachment=_is_attachment(info),
        )
        try:
            return self._on_part(start)
        except Exception as exc:
            raise _HookError(exc) from exc

    def _feed_embedded(self, upto: int, embedded: list[_Entity] | None = None) -> None:
        """The bytes of the message up to offset ``upto`` into every open embedded e-mail's content.

        Called with offsets the scanner has decided: the end of what a scan used less a final line break, the
        start of the line break before a delimiter line, the end of the message; so no byte reaches an embedded
        e-mail that turns out to lie beyond its end. The bytes are those of the scan (``_data``, from ``_base``)
        and the line break held back before them (``_tail``). Nested ones all get the same bytes; their number
        is bounded by ``max_depth``. ``embedded``: only these (default: all open ones)."""
        data, tail = self._data or b"", self._tail
        for ent in self._embedded if embedded is None else embedded:
            start, stop = ent.raw_fed - self._base, upto - self._base  # negative: in the tail
            if stop <= start:
                continue
            if start < -len(tail) or stop > len(data):
                raise RuntimeError(f"embedded message bytes {ent.raw_fed}..{upto} are not at hand")
            content = ent.content
            if content is not None:
                if start < 0:
                    content.feed(tail[len(tail) + start : len(tail) + min(stop, 0)])
                if stop > 0:
                    start = max(start, 0)
                    content.feed(data if start == 0 and stop == len(data) else data[start:stop])
            ent.raw_fed = upto

    def _end_embedded_at_eof(self) -> None:
        """The message ends with embedded e-mails open: each gets the rest of the bytes, less the last line break
        where a leaf would lose it too (inside a multipart still expecting a delimiter, see :meth:`_strip_at_eof`:
        the stdlib gives that line break to the delimiter that never came), so that the bytes listed, parsed
        alone, give the stdlib's parts of the embedded message."""
        cut = self._total - _eol_before(self._tail, len(self._tail))
        whole = [ent for ent in self._embedded if not self._in_open_multipart(ent)]  # outermost first
        for ent in self._embedded:
            ent.body_end = max(ent.body_start, self._total if ent in whole else cut)
        if self._failed:
            return  # the bytes are gone; the summary says it is incomplete
        self._feed_embedded(cut)
        self._feed_embedded(self._total, whole)

    @staticmethod
    def _in_open_multipart(ent: _Entity) -> bool:
        """An enclosing multipart is between delimiters: the end of the message ends it without its delimiter."""
        parent = ent.parent
        while parent is not None:
            if parent.kind is _Kind.MULTIPART and parent.mstate is _MState.PARTS:
                return True
            parent = parent.parent
        return False

    def _line_break_before(self, at: int) -> int:
        """Length of the line break that ends just before ``_data[at]``, looking back into ``_tail``."""
        data = self._data or b""
        if at >= 2:
            return _eol_before(data, at)
        window = (self._tail + data[:at])[-2:]
        return _eol_before(window, len(window))

    def _push_child(self, parent: _Entity, offset: int) -> _Entity:
        ignored = parent.ignored or self._entities >= self._limits.max_parts
        if ignored and not parent.ignored and "too many parts" not in self._defects:
            self._defects.append("too many parts")
        path = f"{parent.path}.{len(parent.children) + 1}"
        child = _Entity(path=path, parent=parent, offset=offset, ignored=ignored)
        if not ignored:  # ignored entities are scanned for boundaries, never remembered
            self._entities += 1
            parent.children.append(child)
        self._stack.append(child)
        return child

    # ------------------------------------------------------------------ bodies

    def _body_step(self, ent: _Entity, data: bytes, pos: int, final: bool) -> int:
        n = len(data)
        if not self._active:
            self._emit(ent, data, pos, n)
            return n
        hit = self._next_candidate(data, pos)
        while hit >= 0:
            match = self._match_line(data, hit, final)
            if match is not None:
                level, close, line_end = match
                stop = max(pos, hit - _eol_before(data, hit))
                self._emit(ent, data, pos, stop)
                if line_end == _NEED:
                    return stop
                self._boundary(hit, level, close=close, line_end=line_end, eol=data[stop:hit])
                return line_end
            self._skip_candidate(data, hit)
            hit = self._next_candidate(data, pos)
        if not final:
            stop = self._hold_back(data, pos)
        elif self._strip_at_eof(ent):
            stop = max(pos, n - _eol_before(data, n))
        else:
            stop = n
        self._emit(ent, data, pos, stop)
        return n if final else stop

    def _hold_back(self, data: bytes, pos: int) -> int:
        """Where to stop emitting so that a line break or a delimiter's start at the end can wait."""
        n = len(data)
        last = max(data.rfind(b"\n", pos), data.rfind(b"\r", pos)) + 1
        if last == 0:
            last = pos if self._bol_at(data, pos) else -1
        if last == n:
            return max(pos, n - (1 if data[n - 1] == 0x0D else _eol_before(data, n)))
        if last >= 0 and data[last] == 0x2D:
            tail = data[last:n]
            if any(d.startswith(tail) for _, d in self._active):
                return max(pos, last - _eol_before(data, last))
        return n

    def _strip_at_eof(self, ent: _Entity) -> bool:
        """The stdlib also drops the last line break of a leaf inside a multipart at EOF."""
        return ent.kind is _Kind.LEAF and any(
            e.kind is _Kind.MULTIPART and e.mstate is _MState.PARTS for e in self._stack[:-1]
        )

    def _emit(self, ent: _Entity, data: bytes, start: int, stop: int) -> None:
        """Body bytes data[start:stop] of ``ent`` (content, preamble or epilogue)."""
        if stop <= start:
            return
        ent.body_end = self._base + stop
        content = ent.content
        if content is None or (ent.kind is _Kind.MULTIPART and ent.mstate is not _MState.PREAMBLE):
            return
        content.feed(data if start == 0 and stop == len(data) else data[start:stop])

    def _bol_at(self, data: bytes, at: int) -> bool:
        return self._bol if at == 0 else data[at - 1] in (0x0A, 0x0D)

    def _next_candidate(self, data: bytes, pos: int) -> int:
        """Earliest line start at or after pos where an active delimiter begins; -1 if none."""
        best = -1
        for _, delim in self._active:
            hit = self._hits.get(delim)
            if hit is None or 0 <= hit < pos:
                hit = self._find_at_line_start(data, delim, pos)
                self._hits[delim] = hit
            if hit >= 0 and (best < 0 or hit < best):
                best = hit
        return best

    def _find_at_line_start(self, data: bytes, delim: bytes, start: int) -> int:
        hit = data.find(delim, start)
        while hit >= 0 and not self._bol_at(data, hit):
            hit = data.find(delim, hit + 1)
        return hit

    def _skip_candidate(self, data: bytes, hit: int) -> None:
        for _, delim in self._active:
            if self._hits.get(delim) == hit:
                self._hits[delim] = self._find_at_line_start(data, delim, hit + 1)

    def _match_line(self, data: bytes, at: int, final: bool) -> tuple[int, bool, int] | None:
        """The outermost active multipart whose delimiter line starts at ``at``.

        Returns (stack index, is_close, line_end); line_end is ``_NEED`` if undecided yet.
        """
        for level, delim in self._active:
            result = _match_delim(data, at, delim, final)
            if result is not None:
                return level, result[0], result[1]
        return None

    # ------------------------------------------------------------------ boundaries

    def _boundary(self, at: int, level: int, *, close: bool, line_end: int, eol: bytes = b"") -> None:
        """A delimiter line of the multipart at stack index ``level`` spans data[at:line_end]."""
        # RFC 2046: the line break before a delimiter line is the delimiter's, also when the scanner read it as
        # the end of a header or delimiter line of the parts inside (an embedded multipart's close delimiter)
        end = None
        if self._embedded:
            end = self._base + at - self._line_break_before(at)
            self._feed_embedded(end)
        eol = self._unwind(level + 1, self._base + at, eol, end=end, eof_incomplete=False)
        owner = self._stack[level]
        if owner.mstate is _MState.PREAMBLE:
            if close:  # the stdlib keeps the preamble as the payload of a multipart without parts
                self._keep_preamble_eol(owner, eol)
                owner.defects.append("StartBoundaryNotFoundDefect")
                self._close_content(owner)
            else:
                owner.content = None  # a real preamble: not content
        if close:
            owner.mstate = _MState.EPILOGUE
        else:
            owner.mstate = _MState.PARTS
            self._push_child(owner, self._base + line_end).fresh = True
        if close or self._active[-1][0] > level:  # else the same delimiters are active (the usual next part)
            self._update_active()

    def _unwind(self, keep: int, at: int, eol: bytes, *, end: int | None, eof_incomplete: bool) -> bytes:
        """End every entity above stack index ``keep - 1`` at message offset ``at``.

        ``eol`` is the line break before the boundary line: it is dropped from a leaf and kept
        by a preamble that turns out to be a payload. ``end`` is where an embedded e-mail ending here ends
        (its bytes up to there have been fed; None: its end is set already). Returns ``eol`` when nothing
        was ended.
        """
        first = True
        while len(self._stack) > keep:
            top = self._stack[-1]
            if top.kind is _Kind.HEADERS:
                self._end_headers(top, at)
                continue
            self._stack.pop()
            if first:
                first = False
                if top.kind is _Kind.MULTIPART and top.mstate is _MState.PREAMBLE:
                    self._keep_preamble_eol(top, eol)
                eol = b""
            if top in self._embedded:
                if end is not None:
                    top.body_end = max(top.body_start, end)
            elif top.kind is not _Kind.LEAF:
                top.body_end = max(top.body_end, at - len(eol))
            if eof_incomplete:
                top.complete = False
            self._end_entity(top)
        return eol

    def _keep_preamble_eol(self, ent: _Entity, eol: bytes) -> None:
        if eol and ent.content is not None:
            ent.content.feed(eol)
            ent.body_end += len(eol)

    def _close_content(self, ent: _Entity) -> None:
        if ent.content is not None:
            ent.content.close()
            ent.defects.extend(ent.content.decoder.defects)

    def _end_entity(self, ent: _Entity) -> None:
        """``ent`` has ended (a boundary of an enclosing multipart, or the end of the message)."""
        if ent.kind is _Kind.LEAF:
            self._close_content(ent)
        elif ent.kind is _Kind.MESSAGE:
            if ent in self._embedded:
                self._embedded.remove(ent)
                self._close_content(ent)
        elif ent.kind is _Kind.MULTIPART:
            if ent.mstate is _MState.PREAMBLE:
                ent.defects.append("StartBoundaryNotFoundDefect")
                self._close_content(ent)
            elif ent.mstate is _MState.PARTS:
                ent.defects.append("CloseBoundaryNotFoundDefect")

    def _update_active(self) -> None:
        self._active = [
            (i, e.delim)
            for i, e in enumerate(self._stack)
            if e.delim is not None and e.kind is _Kind.MULTIPART and e.mstate is not _MState.EPILOGUE
        ]

    # ------------------------------------------------------------------ the result

    def _summary(self, complete: bool, missing_bytes: int) -> MessageSummary:
        root = self._root.to_part()
        top = _TopHeaders(self._root_fields, self._limits.max_headers)
        parts = root.walk()
        attachments = tuple(
            Attachment(
                path=p.path,
                filename=p.filename,
                content_type=p.content_type,
                encoding=p.encoding,
                bytes=p.decoded_bytes,
                encoded_bytes=p.encoded_bytes,
                md5=p.md5 or "",
                sha256=p.sha256 or "",
                complete=p.complete,
            )
            for p in parts
            if p.is_attachment
        )
        defects = self._defects + top.defects
        lines = self._lines
        if lines.long_lines:
            defects.append(long_lines_defect(lines.long_lines, lines.longest))
        for part in parts:
            if part.defects:
                where = "" if part.path == "1" else f" (part {part.path})"
                defects.extend(d + where for d in part.defects)
        return MessageSummary(
            bytes=self._total,
            sha256=self._sha256.hexdigest(),
            md5=self._md5.hexdigest() if self._md5 is not None else "",
            complete=complete,
            missing_bytes=missing_bytes,
            truncated=self._total > max(0, self._limits.max_kept_bytes),  # beyond what ``kept`` holds
            subject=top.subject,
            subject_raw=top.subject_raw,
            from_=top.from_,
            to=top.to,
            cc=top.cc,
            date=top.date,
            message_id=top.message_id,
            headers=top.headers,
            parts=root,
            attachments=attachments,
            defects=tuple(defects),
            kept=bytes(self._kept),
            text_preview=self._preview() if self._keep else self._dropped_preview(),
            long_lines=lines.long_lines,
            longest_line=lines.longest,
        )

    def _dropped_preview(self) -> str | None:
        """``text_preview`` as :func:`~mailtrace.session.kept_summary` leaves it: empty when the summary
        had kept bytes or a preview to drop."""
        if self._preview_dropped and self._total:
            return ""  # nothing was collected for it (see _start_leaf)
        return None if self._preview() is None else ""

    def _preview(self) -> str | None:
        """Start of the first text/plain leaf that is not an attachment, else of text/html."""
        found: dict[str, tuple[bytes, str | None]] = {}
        stack = [self._root]
        while stack:
            ent = stack.pop()
            stack.extend(reversed(ent.children))
            info, content = ent.info, ent.content
            if info is None or content is None or content.preview is None or ent.kind is not _Kind.LEAF:
                continue
            if not _is_attachment(info) and info.content_type not in found:
                found[info.content_type] = (bytes(content.preview), info.charset)
        for kind in ("text/plain", "text/html"):
            if kind in found:
                return _decode_text(*found[kind])
        return None


class _TopHeaders:
    """The display fields of the top-level header block."""

    def __init__(self, fields: list[tuple[str, bytes]], max_headers: int) -> None:
        self.defects: list[str] = []
        texts = [(name, decode_header_bytes(value)) for name, value in fields]
        if len(texts) > max_headers:
            self.defects.append("too many header fields")
        self.headers = tuple(texts[:max_headers])
        first: dict[str, str] = {}
        repeated: set[str] = set()
        for name, value in texts:
            key = name.lower()
            if key in first:
                repeated.add(key)
            else:
                first[key] = value
        if not repeated.isdisjoint(_SINGLETON_SET):  # Received repeats in most messages, singletons rarely
            self.defects.extend(f"duplicate {name} header" for name in _SINGLETONS if name in repeated)
        subject = first.get("subject")
        self.subject_raw = subject
        self.subject = _display_text(_unfold(subject)) if subject is not None else None
        sender = first.get("from")
        self.from_ = ", ".join(_addresses(_unfold(sender))) or None if sender is not None else None
        self.to = _addresses(_unfold(first["to"])) if "to" in first else ()
        self.cc = _addresses(_unfold(first["cc"])) if "cc" in first else ()
        self.date = _unfold(first["date"]).strip() if "date" in first else None
        self.message_id = _unfold(first["message-id"]).strip() if "message-id" in first else None


# The stdlib defect classes whose names appear in ``defects``; referenced here so that a rename
# in a future Python breaks the type check rather than silently changing our strings.
STDLIB_DEFECTS: tuple[type[email_errors.MessageDefect], ...] = (
    email_errors.StartBoundaryNotFoundDefect,
    email_errors.CloseBoundaryNotFoundDefect,
    email_errors.MissingHeaderBodySeparatorDefect,
    email_errors.NoBoundaryInMultipartDefect,
    email_errors.InvalidMultipartContentTransferEncodingDefect,
    email_errors.FirstHeaderLineIsContinuationDefect,
    email_errors.MisplacedEnvelopeHeaderDefect,
    email_errors.InvalidHeaderDefect,
    email_errors.InvalidBase64CharactersDefect,
    email_errors.InvalidBase64PaddingDefect,
    email_errors.InvalidBase64LengthDefect,
)
