"""The report's JSON text (mailtrace/jsontext.py): orjson where it can, the json module where it cannot,
the same values and the same separators either way."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
from typing import Any

import pytest

from mailtrace.jsontext import encode, encode_indented, encode_stdlib
from mailtrace.model import Direction


class Color(enum.StrEnum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int


VALUES: list[Any] = [
    {"id": 1, "ts": 1700000000.000104, "latency": 5e-05, "ok": True, "none": None, "list": [1, 2.5, "x"]},
    {"text": "caf\u00e9 \u2028 \x1f \" \\ \x7f", "tuple": (1, 2), "enum": Color.RED, "nested": {"a": [{}]}},
    {1: "int key", 2.5: "float key", None: "none key", False: "bool key"},
    {"set": {3}, "bytes": b"\x00", "point": Point(1), "date": datetime.datetime(2026, 11, 28, 3, 0)},
]


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else str(value)


@pytest.mark.parametrize("value", VALUES)
def test_both_encoders_give_the_same_values_compactly(value: Any) -> None:
    text = encode(value)
    assert json.loads(text) == json.loads(encode_stdlib(value)) == json.loads(json.dumps(value, default=_plain))
    assert ", " not in text.replace('", "', "") and '": ' not in text  # compact: no blank after a separator


@pytest.mark.parametrize("encoder", [encode, encode_stdlib])
def test_what_is_not_json_data_becomes_its_str(encoder: Any) -> None:
    value = {"set": {3}, "bytes": b"\x00", "point": Point(1), "date": datetime.date(2026, 11, 28),
             "direction": Direction.CLIENT}
    assert json.loads(encoder(value)) == {"set": "{3}", "bytes": "b'\\x00'", "point": "Point(x=1)",
                                          "date": "2026-11-28", "direction": "client"}


def test_what_orjson_refuses_is_written_all_the_same() -> None:
    """A lone surrogate (a byte from the wire that was not UTF-8), an integer beyond 64 bits, nesting
    deeper than orjson goes: the json module writes them, the surrogate as the text views show it."""
    assert json.loads(encode({"helo": "caf\udce9"})) == {"helo": "caf\\xe9"}
    assert encode({"helo": "caf\udce9"}).encode("utf-8")  # always valid UTF-8
    assert json.loads(encode({"size": 2**70})) == {"size": 2**70}
    deep: Any = []
    for _ in range(400):
        deep = [deep]
    assert json.loads(encode(deep)) == deep


def test_indented_text_has_the_same_values() -> None:
    """``mailtrace stats --format json`` indents its document: the same values, enum members as values."""
    value = {"direction": Direction.SERVER, "helo": "caf\udce9", "n": [1, 2]}
    text = encode_indented(value, 2)
    assert "\n  " in text and json.loads(text) == json.loads(encode(value)) == {
        "direction": "server", "helo": "caf\\xe9", "n": [1, 2]}
