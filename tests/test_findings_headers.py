"""The shortcuts of the header and address readers of mailtrace.findings give what their plain forms give."""

from __future__ import annotations

import ipaddress
import re
from email.utils import getaddresses, parseaddr

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailtrace.findings.facts import is_public_ip, plain_mailbox
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


WORD = st.sampled_from(["bob", "Alice", "o'neil", "x+tag", "a-b", "9", "_", "é", "", "a b", "a\tb", "\\", '"', "(c)",
                        "[1]", ",", ";", ":", "<", ">", "@", "=?utf-8?q?x?="])
DOTTED = st.lists(st.one_of(WORD, st.just(".")), min_size=1, max_size=4).map("".join)
BLANK = st.sampled_from(["", " ", "  ", "\t", "\r\n "])
MAILBOX = st.one_of(
    st.tuples(BLANK, DOTTED, st.just("@"), DOTTED, BLANK).map("".join),  # bare
    st.tuples(BLANK, st.lists(WORD, max_size=3).map(" ".join), BLANK, st.just("<"), DOTTED, st.just("@"), DOTTED,
              st.just(">"), BLANK).map("".join),  # a name and an address in angle brackets
    st.tuples(BLANK, st.just('"'), st.lists(WORD, max_size=3).map(" ".join), st.just('"'), BLANK, st.just("<"),
              DOTTED, st.just("@"), DOTTED, st.just(">"), BLANK).map("".join),  # a quoted name
)


@settings(max_examples=5000, deadline=None)
@given(MAILBOX)
def test_plain_mailbox_as_parseaddr_reads_it(value: str) -> None:
    """:func:`plain_mailbox` names the address ``parseaddr`` and ``getaddresses`` find, or leaves the value to them."""
    plain = plain_mailbox(value)
    if plain is not None:
        assert parseaddr(value)[1] == plain
        assert [a for _n, a in getaddresses([value]) if "@" in a] == [plain]


@pytest.mark.parametrize(("value", "address"), [
    ("bob@example.org", "bob@example.org"), ("Bob Alice <bob.alice@example.net>", "bob.alice@example.net"),
    ('"Alice, Bob" <a+b@x.example>', "a+b@x.example"), ("  Bob<b@x.y>\t", "b@x.y"), ("Bob (work) <b@x.y>", None),
    ("a@b, c@d", None), ("<@route:b@x.y>", None), ("bob@", None), ("J. Doe <j@x.y>", None),
])
def test_plain_mailbox_examples(value: str, address: str | None) -> None:
    assert plain_mailbox(value) == address
    if address is not None:
        assert parseaddr(value)[1] == address


ADDRESS_PARTS = st.sampled_from(["0", "00", "1", "01", "10", "127", "172", "192", "255", "256", "999", "1000", "100",
                                 "64", "168", ".", ":", "::", "[", "]", " ", "IPv6:", "ipv6:", "a", "mx", "٣", "/24",
                                 "fe80", "%eth0", "-", "\u2003"])


def _by_ipaddress(text: str) -> bool | None:
    try:
        return ipaddress.ip_address(text.strip().strip("[]").removeprefix("IPv6:").removeprefix("ipv6:")).is_global
    except ValueError:
        return None


@settings(max_examples=5000, deadline=None)
@given(st.lists(ADDRESS_PARTS, max_size=9).map("".join))
def test_public_ip_as_ipaddress_says(text: str) -> None:
    """:func:`is_public_ip`'s shortcuts (host names, dotted quads) agree with ``ipaddress`` on any text."""
    assert is_public_ip.__wrapped__(text) is _by_ipaddress(text)


@pytest.mark.parametrize("text", ["10.58.140.197", "8.8.8.8", "100.64.0.1", "[192.0.2.1]", "0.0.0.0", "255.255.255.255",
                                  "256.1.1.1", "01.2.3.4", "1.2.3", "::1", "IPv6:2001:db8::1", "mx.example.org", "",
                                  " 1.2.3.4 ", "1.2.3.4/32", "fe80::1%eth0", "١.2.3.4"])
def test_public_ip_examples(text: str) -> None:
    assert is_public_ip.__wrapped__(text) is _by_ipaddress(text)
