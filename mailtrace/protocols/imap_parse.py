"""The IMAP data grammar (RFC 3501 §9, RFC 9051): values, FETCH items, ENVELOPE, BODYSTRUCTURE.

The dissector (:mod:`mailtrace.protocols.imap`) frames lines and literals; this module only reads
what a complete command or response says. An assembled line is a list of *pieces*: text between
literals (``bytes``) and the literals themselves (:class:`Literal`), so a literal is a value wherever
it appears — an ENVELOPE subject, a LOGIN password, a mailbox name — never a line end to search for.

Values are plain Python: an atom is a ``str``, a quoted string or a literal is ``bytes`` (or a
:class:`Literal` whose bytes were too many to keep), NIL is ``None`` and a parenthesised list is a
``list``. Nothing here raises on malformed input: a parse that cannot finish returns what it has.
"""

from __future__ import annotations

import base64
import binascii
import email.errors
import email.header
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

from mailtrace.numbers import parse_count


@dataclass(frozen=True, slots=True)
class Literal:
    """A literal of an assembled line: ``{n}``, ``{n+}``, ``~{n}`` (literal8) or ``~{n+}``."""

    size: int
    data: bytes | None
    """The bytes, when all of them were kept (small literals); None for message bodies and big ones."""
    binary: bool = False
    sync: bool = True
    missing: int = 0
    """Bytes of the literal the capture lost (a gap inside it)."""

    @property
    def marker(self) -> str:
        return f"{'~' if self.binary else ''}{{{self.size}{'' if self.sync else '+'}}}"


Piece = bytes | Literal
Value = str | bytes | None | Literal | list["Value"]

# An atom may carry a bracketed section with spaces (BODY[HEADER.FIELDS (FROM TO)]) and a partial <n.m>.
# A quoted string is read possessively (it has only one reading): a run of plain characters is one step,
# so a 64 KB quoted string takes 0.1 ms, not 6.5 ms.
_TOKEN = re.compile(
    rb'[ \t]*(?:(?P<open>\()|(?P<close>\))'
    rb'|"(?P<quoted>(?:[^"\\\r\n]++|\\.)*+)"'
    rb'|(?P<atom>[^ \t()"\[\]{}\r\n]*\[[^\]]*\](?:<[0-9.]+>)?|[^ \t()"{}\r\n]+))'
)
_UNESCAPE = re.compile(rb"\\(.)")


def parse_values(pieces: list[Piece], start: int = 0) -> list[Value]:
    """All values of an assembled line, from byte ``start`` of its first piece."""
    out: list[Value] = []
    stack: list[list[Value]] = [out]
    for index, piece in enumerate(pieces):
        if isinstance(piece, Literal):
            stack[-1].append(piece.data if piece.data is not None else piece)
            continue
        pos = start if index == 0 else 0
        end = len(piece)
        while pos < end:
            match = _TOKEN.match(piece, pos)
            if match is None or match.end() == pos:
                # a stray character ('{', ']', bare CR): skip it rather than give up
                pos += 1
                continue
            pos = match.end()
            kind = match.lastgroup
            if kind == "open":
                inner: list[Value] = []
                stack[-1].append(inner)
                stack.append(inner)
            elif kind == "close":
                if len(stack) > 1:
                    stack.pop()
            elif kind == "quoted":
                stack[-1].append(_UNESCAPE.sub(rb"\1", match.group("quoted")))
            elif kind == "atom":
                atom = match.group("atom").decode("utf-8", "replace")
                stack[-1].append(None if atom.upper() == "NIL" else atom)
    return out


def as_text(value: Value) -> str | None:
    """A string-ish value as text (astring/nstring); None for NIL, lists and unkept literals."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    return None


def as_int(value: Value) -> int | None:
    text = as_text(value)
    return parse_count(text) if text is not None else None


def render(value: Value, limit: int = 400) -> str:
    """A value back in IMAP syntax, for display (literals that were not kept shown as ``{n}``)."""
    if value is None:
        return "NIL"
    if isinstance(value, str):
        return value
    if isinstance(value, Literal):
        return value.marker
    if isinstance(value, bytes):
        text = value.decode("utf-8", "replace")
        if len(text) > limit:
            text = text[:limit] + "…"
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return "(" + " ".join(render(v, limit) for v in value) + ")"


# --------------------------------------------------------------------------- mailbox names


def decode_mailbox(name: str) -> str:
    """Modified UTF-7 (RFC 3501 §5.1.3) to text: ``&AMQ-`` → ``Ä``; names that are not valid stay as sent."""
    if "&" not in name:
        return name
    out: list[str] = []
    pos = 0
    while pos < len(name):
        amp = name.find("&", pos)
        if amp < 0:
            out.append(name[pos:])
            break
        out.append(name[pos:amp])
        dash = name.find("-", amp)
        if dash < 0:
            return name
        chunk = name[amp + 1 : dash]
        if not chunk:
            out.append("&")
        else:
            try:
                raw = base64.b64decode(chunk.replace(",", "/") + "=" * (-len(chunk) % 4), validate=True)
                out.append(raw.decode("utf-16-be"))
            except (binascii.Error, UnicodeDecodeError, ValueError):
                return name
        pos = dash + 1
    return "".join(out)


# --------------------------------------------------------------------------- header text


def decode_words(raw: bytes | str | None) -> str | None:
    """RFC 2047 encoded-words to text (ENVELOPE subjects and names come encoded)."""
    if raw is None:
        return None
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    if "=?" not in text:
        return text
    try:
        return str(email.header.make_header(email.header.decode_header(text)))
    except (ValueError, LookupError, UnicodeError, email.errors.MessageError):  # e.g. CharsetError on b"\xfftf-8"
        return text


def _param_pairs(value: Value) -> dict[str, str]:
    """A body-fld-param list ("name" "value" ...) as a dict with lower-case names, RFC 2231 decoded."""
    if not isinstance(value, list):
        return {}
    raw: list[tuple[str, str]] = []
    for i in range(0, len(value) - 1, 2):
        key, val = as_text(value[i]), as_text(value[i + 1])
        if key is not None and val is not None:
            raw.append((key.lower(), val))
    out: dict[str, str] = {}
    for key, val in raw:
        if key.endswith("*"):
            base = key.rstrip("*").split("*")[0]
            out[base] = _rfc2231(val)
        else:
            out.setdefault(key, decode_words(val) or val)
    return out


def _rfc2231(value: str) -> str:
    """``utf-8''%C3%9Cbersicht.txt`` → ``Übersicht.txt`` (RFC 2231 extended parameter value)."""
    if value.count("'") < 2:
        return urllib.parse.unquote(value)
    charset, _lang, encoded = value.split("'", 2)
    raw = urllib.parse.unquote_to_bytes(encoded)
    try:
        return raw.decode(charset or "utf-8", "replace")
    except (LookupError, ValueError):  # unknown, not a text codec, or a name Python rejects (a NUL in it)
        return raw.decode("utf-8", "replace")


# --------------------------------------------------------------------------- ENVELOPE


def _addresses(value: Value) -> list[str]:
    out: list[str] = []
    if not isinstance(value, list):
        return out
    for addr in value:
        if not isinstance(addr, list) or len(addr) < 4:
            continue
        name, mailbox, host = decode_words(as_text(addr[0])), as_text(addr[2]), as_text(addr[3])
        if host is None:  # RFC 3501 group syntax: start (mailbox = group name) or end marker
            if mailbox is not None:
                out.append(f"{mailbox}:")
            continue
        address = f"{mailbox or ''}@{host}"
        out.append(f"{name} <{address}>" if name else address)
    return out


def envelope(value: Value) -> dict[str, Any] | None:
    """ENVELOPE (date subject from sender reply-to to cc bcc in-reply-to message-id) as a dict."""
    if not isinstance(value, list) or len(value) < 10:
        return None
    return {
        "date": as_text(value[0]),
        "subject": decode_words(as_text(value[1])),
        "from": _addresses(value[2]),
        "sender": _addresses(value[3]),
        "reply_to": _addresses(value[4]),
        "to": _addresses(value[5]),
        "cc": _addresses(value[6]),
        "bcc": _addresses(value[7]),
        "in_reply_to": as_text(value[8]),
        "message_id": as_text(value[9]),
    }


# --------------------------------------------------------------------------- BODYSTRUCTURE

MAX_PARTS = 500
MAX_DEPTH = 40


def bodystructure(value: Value) -> list[dict[str, Any]]:
    """BODY/BODYSTRUCTURE as a flat list of parts in IMAP section numbering (``1``, ``2.1``...).

    Multipart containers are listed too (``multipart/mixed`` with the section of their position;
    the outermost one has section ``""``). Leaves carry type, size, encoding, and the file name and
    disposition when present (RFC 2231 names decoded).
    """
    parts: list[dict[str, Any]] = []
    if isinstance(value, list):
        _walk(value, "", parts, 0, top=True)
    return parts


def _walk(body: list[Value], section: str, parts: list[dict[str, Any]], depth: int, *, top: bool = False,
          inner: bool = False) -> None:
    if len(parts) >= MAX_PARTS or depth > MAX_DEPTH or not body:
        return
    if isinstance(body[0], list):  # multipart: 1*body SP subtype [ext]
        count = 0
        while count < len(body) and isinstance(body[count], list):
            count += 1
        children = body[:count]
        subtype = as_text(body[count]) if count < len(body) else None
        entry: dict[str, Any] = {"part": f"{section}.TEXT" if inner else section,
                                 "type": f"multipart/{(subtype or 'mixed').lower()}"}
        if count + 1 < len(body):
            params = _param_pairs(body[count + 1])
            if "boundary" in params:
                entry["boundary"] = params["boundary"]
        parts.append(entry)
        for i, child in enumerate(children, 1):
            if isinstance(child, list):
                _walk(child, f"{section}.{i}" if section else str(i), parts, depth + 1)
        return
    if top and not section:
        section = "1"
    mtype, subtype = (as_text(body[0]) or "?").lower(), (as_text(body[1]) if len(body) > 1 else None) or "?"
    entry = {"part": section, "type": f"{mtype}/{subtype.lower()}"}
    params = _param_pairs(body[2]) if len(body) > 2 else {}
    if "charset" in params:
        entry["charset"] = params["charset"]
    if len(body) > 3 and as_text(body[3]):
        entry["id"] = as_text(body[3])
    if len(body) > 4 and as_text(body[4]):
        entry["description"] = decode_words(as_text(body[4]))
    if len(body) > 5 and as_text(body[5]):
        entry["encoding"] = (as_text(body[5]) or "").lower()
    size = as_int(body[6]) if len(body) > 6 else None
    if size is not None:
        entry["size"] = size
    ext = 7
    nested: list[Value] | None = None
    if mtype == "text":
        ext = 8
        if len(body) > 7 and as_int(body[7]) is not None:
            entry["lines"] = as_int(body[7])
    elif mtype == "message" and subtype.lower() in ("rfc822", "global") and len(body) > 9:
        env = envelope(body[7])
        if env is not None:
            entry["subject"] = env["subject"]
        nested = body[8] if isinstance(body[8], list) else None
        ext = 10
    # extension data: md5, disposition, language, location
    if len(body) > ext + 1:
        dsp = body[ext + 1]
        if isinstance(dsp, list) and dsp:
            kind = as_text(dsp[0])
            if kind:
                entry["disposition"] = kind.lower()
            dparams = _param_pairs(dsp[1]) if len(dsp) > 1 else {}
            if "filename" in dparams:
                entry["filename"] = dparams["filename"]
    if "filename" not in entry and "name" in params:
        entry["filename"] = params["name"]
    parts.append(entry)
    if nested:
        # the parts of an attached message are numbered under it: 2.1, 2.2... (a single part is 2.1)
        if isinstance(nested[0], list):
            _walk(nested, section, parts, depth + 1, inner=True)
        else:
            _walk(nested, f"{section}.1", parts, depth + 1)


def describe_parts(parts: list[dict[str, Any]], limit: int = 6) -> str:
    """A one-line caption of a part list: ``multipart/mixed: 1 text/plain 174 B, 2 image/png a.png 96 B``."""
    leaves = [p for p in parts if not str(p.get("type", "")).startswith("multipart/")]
    top = parts[0]["type"] if parts and str(parts[0].get("type", "")).startswith("multipart/") else None
    shown = []
    for p in leaves[:limit]:
        bits = [str(p.get("part", "")), str(p.get("type", ""))]
        if p.get("filename"):
            bits.append(str(p["filename"]))
        if p.get("size") is not None:
            bits.append(f"{p['size']} B")
        shown.append(" ".join(b for b in bits if b))
    if len(leaves) > limit:
        shown.append(f"+{len(leaves) - limit} more")
    return (f"{top}: " if top else "") + ", ".join(shown)


# --------------------------------------------------------------------------- FETCH

SECTION = re.compile(r"^(BODY|BINARY)(?:\.PEEK)?\[([^\]]*)\](?:<(\d{1,18})(?:\.(\d{1,18}))?>)?$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class SectionRef:
    """What a FETCH data item names: ``BODY[1.2]<0.100>`` → item BODY, section ``1.2``, partial (0, 100)."""

    item: str
    """``BODY``, ``BINARY``, ``RFC822``, ``RFC822.HEADER`` or ``RFC822.TEXT``."""
    section: str
    """Upper-cased section: ``""`` (whole message), ``HEADER``, ``TEXT``, ``1.2``, ``HEADER.FIELDS (...)``."""
    origin: int | None = None
    length: int | None = None

    @property
    def kind(self) -> str:
        """``message`` (the whole message), ``header`` (its header, or some fields), ``text`` or ``part``."""
        if self.item == "RFC822":
            return "message"
        if self.item == "RFC822.HEADER":
            return "header"
        if self.item == "RFC822.TEXT":
            return "text"
        if self.section == "":
            return "message"
        if self.section.startswith("HEADER"):
            return "header"
        if self.section == "TEXT":
            return "text"
        return "part"

    @property
    def label(self) -> str:
        if self.item.startswith("RFC822"):
            return self.item
        partial = f"<{self.origin}>" if self.origin is not None else ""
        return f"{self.item}[{self.section}]{partial}"


def section_ref(name: str) -> SectionRef | None:
    """A FETCH item name as a section reference, or None if it carries no message bytes."""
    upper = name.upper()
    if upper in ("RFC822", "RFC822.HEADER", "RFC822.TEXT"):
        return SectionRef(upper, "")
    match = SECTION.match(name)
    if match is None:
        return None
    section = " ".join(match.group(2).upper().split())
    origin = int(match.group(3)) if match.group(3) else None
    length = int(match.group(4)) if match.group(4) else None
    return SectionRef(match.group(1).upper(), section, origin, length)


def fetch_items(values: list[Value]) -> dict[str, Value]:
    """The att-name/value pairs of a FETCH response's parenthesised list (names upper-cased)."""
    out: dict[str, Value] = {}
    items = values[0] if values and isinstance(values[0], list) else values
    for i in range(0, len(items) - 1, 2):
        name = items[i]
        if isinstance(name, str):
            out[name.upper()] = items[i + 1]
    return out


def requested_sections(values: list[Value]) -> list[SectionRef]:
    """The body sections a FETCH command asks for (``BODY.PEEK[]<0.4096>`` → partial (0, 4096))."""
    out: list[SectionRef] = []

    def walk(vals: list[Value]) -> None:
        for v in vals:
            if isinstance(v, list):
                walk(v)
            elif isinstance(v, str):
                ref = section_ref(v)
                if ref is not None:
                    out.append(ref)

    walk(values)
    return out


def flag_list(value: Value) -> list[str]:
    if isinstance(value, list):
        return [t for t in (as_text(v) for v in value) if t is not None]
    text = as_text(value)
    return [text] if text else []


RESP_CODE = re.compile(r"^\[([A-Za-z0-9.\-]+)(?: ([^\]]*))?\]\s*")


def resp_code(text: str) -> tuple[str | None, str, str]:
    """``[UIDVALIDITY 3857529045] UIDs valid`` → (``UIDVALIDITY``, ``3857529045``, ``UIDs valid``)."""
    match = RESP_CODE.match(text)
    if match is None:
        return None, "", text
    return match.group(1).upper(), match.group(2) or "", text[match.end() :]
