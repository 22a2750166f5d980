"""The fast regexes of mailtrace.findings.headers match exactly what their plain forms match."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from mailtrace.findings.headers import FOLD, FROM_CLAUSE, parse_received, unfold

PLAIN_FROM_CLAUSE = re.compile(
    r"^\s*from\s+(.*?)(?=\s+by\s|\s+via\s|\s+with\s|\s+id\s|\s+for\s|;|$)", re.IGNORECASE | re.DOTALL
)
PLAIN_FOLD = re.compile(r"\r?\n[ \t]+|\r[ \t]+")

TOKENS = st.sampled_from([
    "from", "FROM", "by", "By", "via", "with", "WITH", "id", "for", "fo", "byx", ";", "(", ")", "[", "]",
    " ", "  ", "\t", "\n", "\r", "\r\n", "\u2003", "\x0b", "a", "mx.example.org", "10.0.0.1", "é", "x;y",
])
TEXT = st.lists(TOKENS, max_size=24).map("".join)


@settings(max_examples=3000, deadline=None)
@given(TEXT)
def test_from_clause_as_the_plain_pattern(text: str) -> None:
    for candidate in (text, "from " + text, " from\t" + text):
        plain, fast = PLAIN_FROM_CLAUSE.match(candidate), FROM_CLAUSE.match(candidate)
        assert (plain is None) == (fast is None)
        if plain is not None and fast is not None:
            assert (plain.group(1), plain.end()) == (fast.group(1), fast.end())


@settings(max_examples=2000, deadline=None)
@given(TEXT)
def test_fold_as_the_plain_pattern(text: str) -> None:
    assert FOLD.sub(" ", text) == PLAIN_FOLD.sub(" ", text)


def test_received_hop() -> None:
    hop = parse_received("from client14.example.org (client14.example.com [10.58.140.197])\r\n\tby mx2.example.com"
                         " (Postfix) with ESMTPSA id 2DAFF606B9;\r\n\tTue, 14 Nov 2023 22:13:20 +0000\n")
    assert (hop.from_name, hop.from_rdns, hop.from_ip, hop.by) == (
        "client14.example.org", "client14.example.com", "10.58.140.197", "mx2.example.com")
    assert unfold("a\r\n\tb\n c\r d\r\ne") == "a b c d\r\ne"
