"""Numbers read from capture text.

``str.isdigit()`` is true for ``²`` and other characters ``int()`` refuses, and Python refuses to
convert more than 4300 digits; a capture may hold either where a count belongs (``BDAT ² LAST``,
``+OK 99999…9 octets``). Every count a dissector or view reads from the wire goes through here.
"""

from __future__ import annotations

MAX_DIGITS = 18
"""Longer digit strings are not counts (2**63 has 19 digits): they read as "not a number"."""


def parse_count(text: str, max_digits: int = MAX_DIGITS) -> int | None:
    """The value of ``text`` if it is ASCII digits only (at most ``max_digits``), else None."""
    if 0 < len(text) <= max_digits and text.isascii() and text.isdigit():
        return int(text)
    return None


def is_count(text: str, max_digits: int = MAX_DIGITS) -> bool:
    """Whether :func:`parse_count` gives a number."""
    return parse_count(text, max_digits) is not None


def parse_decimal(text: str) -> float | None:
    """A decimal number as headers write them (``-3.2``, ``5``); None for ``1.2.3`` or ``.``."""
    if not text or len(text) > 32 or not text.isascii():
        return None
    try:
        return float(text)
    except ValueError:
        return None
