"""IMAP values (mailtrace/protocols/imap_parse.py): quoted strings, lists, atoms with sections."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from mailtrace.protocols.imap_parse import _TOKEN, parse_values

# The token pattern as a backtracking regex reads it: _TOKEN reads quoted strings possessively (a 64 KB one
# in 0.1 ms, not 6.5 ms) and must read every line the same.
_PLAIN_TOKEN = re.compile(
    rb'[ \t]*(?:(?P<open>\()|(?P<close>\))'
    rb'|"(?P<quoted>(?:[^"\\\r\n]|\\.)*)"'
    rb'|(?P<atom>[^ \t()"\[\]{}\r\n]*\[[^\]]*\](?:<[0-9.]+>)?|[^ \t()"{}\r\n]+))'
)


def test_values_of_a_line() -> None:
    line = b'* LIST (\\HasNoChildren) "/" "Sent \\"old\\"" NIL BODY[HEADER.FIELDS (FROM TO)]<0.10>'
    assert parse_values([line], 2) == ["LIST", ["\\HasNoChildren"], b"/", b'Sent "old"', None,
                                       "BODY[HEADER.FIELDS (FROM TO)]<0.10>"]
    assert parse_values([b'"' + b"a" * 70_000 + b'" x']) == [b"a" * 70_000, "x"]
    assert parse_values([b'"unterminated x']) == ["unterminated", "x"]  # the stray quote is skipped


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=20).map(lambda b: bytes(b'"\\ ()[]{}<>.0a\r\n\t'[x % 17] for x in b)),
       st.integers(min_value=0, max_value=20))
def test_the_token_regex_reads_what_a_backtracking_one_reads(line: bytes, pos: int) -> None:
    plain, possessive = _PLAIN_TOKEN.match(line, pos), _TOKEN.match(line, pos)
    assert (plain and (plain.span(), plain.lastgroup, plain.groups())) == \
        (possessive and (possessive.span(), possessive.lastgroup, possessive.groups()))
