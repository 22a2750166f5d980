"""The IMAP data grammar: values with literals, ENVELOPE, BODYSTRUCTURE, sections, mailbox names."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailtrace.protocols.imap_parse import (
    _TOKEN,
    Literal,
    SectionRef,
    bodystructure,
    decode_mailbox,
    describe_parts,
    envelope,
    fetch_items,
    parse_values,
    render,
    requested_sections,
    resp_code,
    section_ref,
)


def test_values_atoms_strings_nil_lists_and_literals() -> None:
    pieces = [b'a (\\Seen "quo\\"ted" NIL) ', Literal(3, b"abc"), b" {x} ", Literal(9, None), b" tail)"]
    assert parse_values(pieces) == ["a", ["\\Seen", b'quo"ted', None], b"abc", "x", Literal(9, None), "tail"]


def test_section_atoms_keep_their_brackets_and_spaces() -> None:
    values = parse_values([b"(BODY[HEADER.FIELDS (FROM TO)]<0> NIL BINARY[1.2] x)"])
    assert values == [["BODY[HEADER.FIELDS (FROM TO)]<0>", None, "BINARY[1.2]", "x"]]


@pytest.mark.parametrize(
    ("name", "ref", "kind"),
    [
        ("BODY[]", SectionRef("BODY", ""), "message"),
        ("BODY.PEEK[]<0.4096>", SectionRef("BODY", "", 0, 4096), "message"),
        ("BINARY[]", SectionRef("BINARY", ""), "message"),
        ("RFC822", SectionRef("RFC822", ""), "message"),
        ("RFC822.HEADER", SectionRef("RFC822.HEADER", ""), "header"),
        ("body[header.fields (From  Subject)]", SectionRef("BODY", "HEADER.FIELDS (FROM SUBJECT)"), "header"),
        ("BODY[TEXT]", SectionRef("BODY", "TEXT"), "text"),
        ("RFC822.TEXT", SectionRef("RFC822.TEXT", ""), "text"),
        ("BINARY[2]<100>", SectionRef("BINARY", "2", 100), "part"),
        ("BODY[1.2.MIME]", SectionRef("BODY", "1.2.MIME"), "part"),
    ],
)
def test_section_references(name: str, ref: SectionRef, kind: str) -> None:
    assert section_ref(name) == ref and ref.kind == kind


def test_not_sections() -> None:
    assert section_ref("FLAGS") is None and section_ref("BODYSTRUCTURE") is None and section_ref("BODY") is None


def test_requested_sections_of_a_fetch_command() -> None:
    refs = requested_sections(parse_values([b"1:* (UID BODY.PEEK[]<0.32> BINARY.PEEK[2])"]))
    assert [(r.label, r.length) for r in refs] == [("BODY[]<0>", 32), ("BINARY[2]", None)]


def test_envelope_with_encoded_words_groups_and_nil() -> None:
    raw = (
        b'("Mon, 1 Jan 2024 10:00:00 +0000" "=?utf-8?q?Gr=C3=BC=C3=9Fe?=" (("=?utf-8?b?SsO8cmdlbg==?=" NIL '
        b'"j" "example.org")) NIL NIL ((NIL NIL "team" NIL)(NIL NIL "a" "x.org")(NIL NIL NIL NIL)) '
        b'NIL NIL NIL "<id@x>")'
    )
    env = envelope(parse_values([raw])[0])
    assert env is not None
    assert env["subject"] == "Grüße" and env["from"] == ["Jürgen <j@example.org>"]
    assert env["to"] == ["team:", "a@x.org"] and env["sender"] == [] and env["message_id"] == "<id@x>"
    assert envelope(parse_values([b"(NIL NIL)"])[0]) is None


def test_bodystructure_single_part() -> None:
    parts = bodystructure(parse_values([b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 92)'])[0])
    assert parts == [
        {
            "part": "1",
            "type": "text/plain",
            "charset": "US-ASCII",
            "encoding": "7bit",
            "size": 3028,
            "lines": 92,
        }
    ]


@pytest.mark.parametrize("charset", ["ut\x00f-8", "utf-8\udcff", "rot13", "no-such-charset"])
def test_rfc2231_names_with_a_charset_python_rejects_fall_back_to_utf8(charset: str) -> None:
    """A server's BODYSTRUCTURE is hostile input: a charset name with a NUL made ``bytes.decode`` raise
    ValueError, which escaped the dissector (found by hypothesis)."""
    raw = ('("application" "octet-stream" NIL NIL NIL "base64" 10 NIL ("attachment" ("filename*" "'
           + charset + "''%C3%A9t%C3%A9.bin\")) NIL NIL)").encode("utf-8", "surrogateescape")
    parts = bodystructure(parse_values([raw])[0])
    assert parts[0]["filename"] == "été.bin"


def test_bodystructure_nested_message_and_rfc2231_names() -> None:
    raw = (
        b'(("text" "html" ("charset" "utf-8") NIL NIL "base64" 10 1 NIL ("inline" NIL) NIL NIL)'
        b'("message" "rfc822" NIL NIL NIL "7bit" 500 ("d" "Inner" NIL NIL NIL NIL NIL NIL NIL NIL) '
        b'(("text" "plain" NIL NIL NIL "7bit" 5 1)'
        b'("application" "pdf" ("name" "=?utf-8?q?R=C3=A9sum=C3=A9.pdf?=") NIL NIL "base64" 100 NIL '
        b'("attachment" ("filename*" "iso-8859-1\'\'%E9t%E9.pdf")) NIL NIL) "mixed") 20)'
        b' "mixed" ("boundary" "b1"))'
    )
    parts = bodystructure(parse_values([raw])[0])
    assert [(p["part"], p["type"]) for p in parts] == [
        ("", "multipart/mixed"),
        ("1", "text/html"),
        ("2", "message/rfc822"),
        ("2.TEXT", "multipart/mixed"),
        ("2.1", "text/plain"),
        ("2.2", "application/pdf"),
    ]
    assert parts[0]["boundary"] == "b1" and parts[1]["disposition"] == "inline" and parts[2]["subject"] == "Inner"
    assert parts[-1]["filename"] == "été.pdf"  # the disposition's RFC 2231 name wins over the type's name
    assert describe_parts(parts) == (
        "multipart/mixed: 1 text/html 10 B, 2 message/rfc822 500 B, "
        "2.1 text/plain 5 B, 2.2 application/pdf été.pdf 100 B"
    )


def test_mailbox_names_in_modified_utf7() -> None:
    assert decode_mailbox("&ZeVnLIqe-") == "日本語"
    assert decode_mailbox("Entw&APw-rfe") == "Entwürfe"
    assert decode_mailbox("Tom &- Jerry") == "Tom & Jerry"
    assert decode_mailbox("bad &%%%-") == "bad &%%%-"  # not valid: shown as sent


def test_response_codes() -> None:
    assert resp_code("[APPENDUID 38505 3955] APPEND completed") == (
        "APPENDUID",
        "38505 3955",
        "APPEND completed",
    )
    assert resp_code("[READ-ONLY] EXAMINE done") == ("READ-ONLY", "", "EXAMINE done")
    assert resp_code("no code") == (None, "", "no code")


def test_fetch_items_and_render() -> None:
    items = fetch_items(parse_values([b"(UID 7 FLAGS (\\Seen) RFC822.SIZE 44 BODY[] ", Literal(44, None), b")"]))
    assert items["UID"] == "7" and items["FLAGS"] == ["\\Seen"] and items["BODY[]"] == Literal(44, None)
    assert render(["a", b'q"', None, Literal(5, None, binary=True, sync=False)]) == '(a "q\\"" NIL ~{5+})'


@given(
    st.lists(
        st.binary(max_size=40) | st.builds(Literal, st.integers(0, 99), st.none() | st.binary(max_size=8)),
        max_size=6,
    )
)
def test_parsers_never_raise(pieces: list[bytes | Literal]) -> None:
    if pieces and not isinstance(pieces[0], bytes):
        pieces.insert(0, b"")
    values = parse_values(pieces)
    for value in values:
        envelope(value)
        bodystructure(value)
        render(value)
    fetch_items(values)
    requested_sections(values)


def test_broken_encoded_words_stay_as_sent() -> None:
    from mailtrace.protocols.imap_parse import decode_words

    assert decode_words("=?\ufffdtf-8?q?x?=") == "=?\ufffdtf-8?q?x?="  # the stdlib raises CharsetError here
    assert decode_words("=?x-unknown?q?a?=") is not None


# The token pattern as a backtracking regex reads it: _TOKEN reads quoted strings possessively (a 64 KB one
# in 0.1 ms, not 6.5 ms) and must read every line the same.
_PLAIN_TOKEN = re.compile(
    rb'[ \t]*(?:(?P<open>\()|(?P<close>\))'
    rb'|"(?P<quoted>(?:[^"\\\r\n]|\\.)*)"'
    rb'|(?P<atom>[^ \t()"\[\]{}\r\n]*\[[^\]]*\](?:<[0-9.]+>)?|[^ \t()"{}\r\n]+))'
)


def test_long_quoted_strings_escapes_and_a_stray_quote() -> None:
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
