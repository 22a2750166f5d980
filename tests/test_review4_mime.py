"""Review 4 of the message pipeline: over-long header fields are cut, not dropped (#1), and
encoded-words in unknown charsets are decoded like the stdlib does, with a defect (#6)."""

from __future__ import annotations

import email
import email.policy
import json
import tracemalloc
from pathlib import Path

import pytest

from mailtrace.mime import (
    MessageSummarizer,
    MessageSummary,
    MimeLimits,
    field_cut_defect,
    summarize,
    summary_to_json,
)
from mailtrace.render.message import defect_text
from tests.mailcaps import extract_cli, smtp_capture
from tests.support import report

CAP = MimeLimits().max_field_bytes  # 64 KiB


def stdlib(raw: bytes) -> email.message.EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    return msg


def chunked(raw: bytes, size: int, limits: MimeLimits = MimeLimits()) -> MessageSummary:
    s = MessageSummarizer(limits)
    for i in range(0, len(raw), size):
        s.feed(raw[i : i + size])
    return s.close()


def no_surrogates(summary: MessageSummary) -> None:
    text = json.dumps(summary_to_json(summary), ensure_ascii=False)
    text.encode("utf-8")  # strict: a surrogate escape raises
    for name, value in summary.headers:
        (name + value).encode("utf-8")
    assert "\\udc" not in text


# --------------------------------------------------------------------------- #1 long header fields

BIG_FROM = (b"From: ceo@bank.example (" + b" " * (270 * 1024) + b")\r\nTo: b@y.test\r\nSubject: pay now\r\n"
            b"\r\nbody\r\n")


@pytest.mark.parametrize("size", [None, 1460, 65536])
def test_a_padded_from_is_still_the_author(size: int | None) -> None:
    s = summarize(BIG_FROM) if size is None else chunked(BIG_FROM, size)
    assert s.from_ == str(stdlib(BIG_FROM)["from"]) == "ceo@bank.example"
    assert [n for n, _ in s.headers] == ["From", "To", "Subject"]
    value = s.header_values("from")[0]
    assert value.startswith("ceo@bank.example (   ") and len("From: " + value) == CAP
    field = len(b"From: ceo@bank.example (") + 270 * 1024 + len(b")\r\n")
    assert field_cut_defect("From", field, CAP) in s.defects
    assert "header field From cut to 65,536 of 276,507 bytes" in s.defects and "header too long" in s.defects
    assert s.subject == "pay now" and s.to == ("b@y.test",)


def test_a_huge_subject_keeps_its_first_part() -> None:
    subject = "S" * 307_200
    raw = b"From: a@x.test\r\nSubject: " + subject.encode() + b"\r\n\r\nbody\r\n"
    s = summarize(raw)
    assert str(stdlib(raw)["subject"]) == subject
    assert s.subject is not None and subject.startswith(s.subject) and len(s.subject) == CAP - len("Subject: ")
    assert s.from_ == "a@x.test"
    assert field_cut_defect("Subject", len(subject) + 11, CAP) in s.defects


def test_a_big_field_before_from_to_subject_is_listed_cut() -> None:
    raw = (b"X-Big: " + b"B" * (300 * 1024) + b"\r\nFrom: a@x.test\r\nTo: b@y.test\r\nSubject: after big\r\n"
           b"\r\nbody\r\n")
    s = summarize(raw)
    assert [n for n, _ in s.headers] == ["X-Big", "From", "To", "Subject"]
    assert (s.from_, s.to, s.subject) == ("a@x.test", ("b@y.test",), "after big")
    assert field_cut_defect("X-Big", 300 * 1024 + 9, CAP) in s.defects


def test_padding_fields_cannot_push_the_author_out_of_the_header() -> None:
    """Many fields just under the field limit fill the header budget; the first From, Subject, To and
    Content-Type after them are still kept, other fields beyond the budget are dropped."""
    pad = b"".join(b"X-Pad-%d: " % i + b"p" * 60_000 + b"\r\n" for i in range(6))
    raw = (pad + b"X-After: dropped\r\nFrom: ceo@bank.example\r\nSubject: urgent\r\nTo: b@y.test\r\n"
           b"Content-Type: text/html\r\nFrom: second@x.test\r\n\r\n<p>x</p>\r\n")
    for s in (summarize(raw), chunked(raw, 1460)):
        names = [n for n, _ in s.headers]
        assert "X-After" not in names and names[-4:] == ["From", "Subject", "To", "Content-Type"]
        assert (s.from_, s.subject, s.to) == ("ceo@bank.example", "urgent", ("b@y.test",))
        assert s.parts.content_type == "text/html" and "header too long" in s.defects
        assert not any(d.startswith("header field") for d in s.defects)  # nothing was cut, only dropped


def test_a_part_header_field_is_cut_and_its_content_type_kept() -> None:
    raw = (b"From: a@x.test\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nX-Junk: "
           + b"j" * (300 * 1024) + b"\r\nContent-Type: application/pdf; name=r.pdf\r\n\r\n%PDF\r\n--b--\r\n")
    s = summarize(raw)
    leaf = s.parts.children[0]
    assert (leaf.content_type, leaf.filename, leaf.decoded_bytes) == ("application/pdf", "r.pdf", 4)
    assert field_cut_defect("X-Junk", 300 * 1024 + 10, CAP) + " (part 1.1)" in s.defects
    assert stdlib(raw).get_payload()[0].get_content_type() == "application/pdf"


@pytest.mark.parametrize("size", [None, 1460, 65536])
def test_a_line_over_max_line_is_cut_with_the_same_defects_however_it_arrives(size: int | None) -> None:
    raw = b"From: a@x.test\r\nSubject: big header\r\nX-Big: " + b"A" * (1 << 20) + b"\r\nX-After: kept\r\n\r\nb\r\n"
    s = summarize(raw) if size is None else chunked(raw, size)
    assert "line too long" in s.defects  # before: only when the line arrived in pieces
    assert field_cut_defect("X-Big", (1 << 20) + 9, CAP) in s.defects
    assert [n for n, _ in s.headers] == ["From", "Subject", "X-Big", "X-After"]
    assert s.header_values("x-after") == ["kept"]


def test_huge_reserved_fields_stay_bounded_in_memory() -> None:
    """Ten 2 MB lines, each of a field name that is kept beyond the header budget, streamed."""
    names = [b"From", b"To", b"Cc", b"Subject", b"Sender", b"Reply-To", b"Date", b"Message-ID",
             b"Content-Type", b"References"]
    raw = b"".join(n + b": " + b"v" * (2 << 20) + b"\r\n" for n in names) + b"\r\nbody\r\n"
    limits = MimeLimits()
    tracemalloc.start()
    s = chunked(raw, 1460, limits)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 3 * limits.max_line + 4 * limits.max_kept_bytes
    assert [n for n, _ in s.headers] == [n.decode() for n in names]
    assert sum(d.startswith("header field ") for d in s.defects) == len(names)


def test_the_cut_defect_reads_in_german() -> None:
    assert defect_text(field_cut_defect("From", 276_507, CAP), "de") == (
        "Header-Feld From auf 65.536 von 276.507 Bytes gekürzt")
    assert defect_text(field_cut_defect("X-Big", 1_048_585, CAP) + " (part 1.2)") == (
        "header field X-Big cut to 65,536 of 1,048,585 bytes (part 1.2)")


# --------------------------------------------------------------------------- #6 unknown charsets

WEIRD = (b"From: =?x-unknown?B?w6RyZ2Vy?= <a@x.test>\r\nTo: =?utf-8?B?/w==?= <b@y.test>\r\n"
         b"Subject: =?x-unknown?Q?caf=C3=A9?=\r\nMIME-Version: 1.0\r\n"
         b"Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\nContent-Type: application/octet-stream\r\n"
         b"Content-Disposition: attachment; filename=\"=?x-other?B?w6RyZ2Vy?=.txt\"\r\n\r\none\r\n--o--\r\n")


def test_unknown_charset_in_an_encoded_word_is_decoded_like_the_stdlib_and_flagged() -> None:
    s = summarize(WEIRD)
    ref = stdlib(WEIRD)
    assert s.from_ == str(ref["from"]) == "ärger <a@x.test>"  # was "\udcc3\udca4rger <a@x.test>"
    assert any(type(d).__name__ == "CharsetError" for d in ref["from"].defects)
    assert s.subject == str(ref["subject"]) == "café"
    assert s.to == ("ÿ <b@y.test>",)  # undecodable UTF-8: windows-1252, like raw 8-bit header bytes
    assert "unknown charset 'x-unknown'" in s.defects and s.defects.count("unknown charset 'x-unknown'") == 1
    assert "unknown charset 'x-other' (part 1.1)" in s.defects
    assert s.attachments[0].filename == "ärger.txt"
    no_surrogates(s)
    assert defect_text("unknown charset 'x-unknown'", "de") == "unbekannter Zeichensatz 'x-unknown'"


def test_known_and_special_charsets_add_no_defect() -> None:
    raw = (b"From: =?utf-8?B?w6RyZ2Vy?= <a@x.test>\r\nSubject: =?unknown-8bit?q?=E4?= =?iso-8859-1*de?Q?=E4?=\r\n"
           b"X-Not-A-Word: =?nope\r\n\r\nx\r\n")
    s = summarize(raw)
    assert s.defects == () and s.from_ == "ärger <a@x.test>"


# --------------------------------------------------------------------------- end to end


def test_capture_end_to_end(tmp_path: Path) -> None:
    pcap = smtp_capture([BIG_FROM, WEIRD]).write(tmp_path / "review4.pcap")
    messages = report(pcap)["sessions"][0]["messages"]
    assert [m["from"] for m in messages] == ["ceo@bank.example", "ärger <a@x.test>"]
    assert "header field From cut to 65,536 of 276,507 bytes" in messages[0]["defects"]
    assert "unknown charset 'x-unknown'" in messages[1]["defects"]
    assert "\\udc" not in json.dumps(messages)
    result = extract_cli(tmp_path / "out", pcap)
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "out" / "s0001-m01.eml").read_bytes() == BIG_FROM  # written as sent, not cut
    assert (tmp_path / "out" / "s0001-m02.eml").read_bytes() == WEIRD


def test_a_field_cut_inside_a_utf8_character_still_decodes_as_utf8() -> None:
    from mailtrace.mime import _utf8_prefix

    value = ("x" + "ä" * 5).encode()
    for size in range(1, len(value) + 1):
        kept = _utf8_prefix(value, size)
        assert value.startswith(kept) and size - 3 <= len(kept) <= size
        kept.decode("utf-8")  # never a split sequence
    assert _utf8_prefix("a😀b".encode(), 4) == b"a"


def test_an_address_in_a_huge_display_name_is_found_without_backtracking_over_it() -> None:
    from mailtrace.findings.rules import _address_in_name

    found = _address_in_name("x" * 64_000 + " ceo@bank.example")
    assert found is not None and found.group(1) == "bank.example"
    assert _address_in_name("x" * 64_000) is None
    assert _address_in_name("PayPal <service@paypal.com>").group(1) == "paypal.com"  # type: ignore[union-attr]


def test_raw_bytes_are_decoded_run_by_run_and_no_surrogate_survives() -> None:
    """\"Jörg\" from a UTF-8 encoded word beside an unknown-charset one was read again as 8-bit
    (\"JÃ¶rg ä\")."""
    from mailtrace.mime import _unsurrogate

    assert _unsurrogate("J\u00f6rg \udce4 <a@x.test>") == "Jörg ä <a@x.test>"
    assert _unsurrogate("\udcc3\udca4rger") == "ärger"
    assert _unsurrogate("a\ud800b") == "a\ufffdb"
