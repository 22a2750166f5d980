"""JSON text for the reports: compact, always valid UTF-8, the same whichever encoder makes it.

orjson makes it where it can: the JSON report of a big capture is tens of megabytes, and the standard
library's encoder took a tenth of the report process's time on the benchmark (0.33 → 0.19 s for the
sessions' entries, bench/README.md). What orjson refuses goes to the standard library's encoder with
the same separators and the same output: text with lone surrogates (bytes from the wire that were not
UTF-8, decoded with ``surrogateescape``), integers beyond 64 bits, nesting deeper than orjson's limit
(a hostile MIME tree). An enum member is written as its value; anything else that is not plain JSON data
(sets, bytes, dataclasses, dates) becomes ``str(value)`` in both, as ``json.dumps(default=str)`` makes it.

The two encoders differ only in how they spell some numbers (``1e-05`` and ``1e-5``, ``NaN`` and
``null``); the parsed values are the same, and a report's text is the same from run to run.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")


def _stdlib(value: Any) -> str:
    # no check for circular references (a report is a tree; the check is a dict operation per container)
    return valid_utf8(json.dumps(value, ensure_ascii=False, default=_default, check_circular=False,
                                 separators=(",", ":")))


def _default(value: Any) -> Any:
    """What is not JSON data: an enum member as its value (as orjson writes it), anything else as ``str``."""
    return value.value if isinstance(value, enum.Enum) else str(value)


def _make_encode() -> Callable[[Any], str]:
    try:
        import orjson
    except ImportError:  # pragma: no cover - a dependency: the fallback is for a platform without its wheel
        return _stdlib
    dumps = orjson.dumps
    # dataclasses and dates go to ``default`` (str) as the standard library sends them; keys that are not
    # strings become strings as there
    options = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME

    def encode(value: Any) -> str:
        try:
            return dumps(value, default=str, option=options).decode()
        except TypeError:  # orjson.JSONEncodeError: surrogates, huge integers, deep nesting
            return _stdlib(value)

    return encode


encode: Callable[[Any], str] = _make_encode()
"""``encode(value)``: compact JSON text of ``value`` (``json.dumps`` with ``default=str`` and ``,`` ``:`` as
separators, lone surrogates written as ``\\xNN``)."""


def encode_indented(value: Any, indent: int) -> str:
    """JSON text of ``value`` indented for a reader (``mailtrace stats --format json``), by the standard
    library's encoder, the rest as :func:`encode` makes it."""
    return valid_utf8(json.dumps(value, ensure_ascii=False, indent=indent, default=_default, check_circular=False))


def encode_stdlib(value: Any) -> str:
    """:func:`encode` by the standard library's encoder alone (the tests hold the two to the same values)."""
    return _stdlib(value)


def valid_utf8(text: str) -> str:
    """JSON text from ``json.dumps(..., ensure_ascii=False)`` with its lone surrogates written as ``\\xNN``.

    Text from the wire is decoded with ``surrogateescape``, so a byte that is not UTF-8 survives as a
    lone surrogate; it is written as the four characters ``\\xNN`` (the way the text views show it)
    instead of making the output unwritable."""
    if text.isascii():  # constant time (CPython keeps the flag); the search below reads every character
        return text
    return _SURROGATE.sub(_escaped_byte, text) if _SURROGATE.search(text) else text


def _escaped_byte(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else "\\ufffd"
