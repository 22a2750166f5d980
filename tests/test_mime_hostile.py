"""Hostile and malformed messages: never an exception, bounded memory, stdlib results where defined.

The centre piece is a differential fuzzer: hypothesis builds MIME messages with random nesting,
boundaries, transfer encodings, line endings (CR LF, LF, lone CR, mixed), missing and repeated
delimiters, noise in base64 and broken quoted-printable, and checks every leaf against
``email.message_from_bytes(..., policy=default)`` + ``get_payload(decode=True)``, fed whole and
in random pieces.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import hashlib
import quopri
import random
import tracemalloc
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mailtrace.mime as mime
from mailtrace.mime import MessageSummarizer, MessageSummary, MimeLimits, summarize

ODD_BASE64 = ("one base64 character too many", -1)
"""Where the stdlib gives up on base64 and returns the encoded text, we keep what decoded."""


def leaves(s: MessageSummary) -> list[tuple[str, str, int]]:
    return [
        (
            p.content_type,
            *(ODD_BASE64 if "InvalidBase64LengthDefect" in p.defects else (p.md5 or "", p.decoded_bytes)),
        )
        for p in s.parts.walk()
        if p.is_leaf
    ]


def stdlib_leaves(raw: bytes) -> list[tuple[str, str, int]]:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    out = []
    for part in msg.walk():
        if not part.is_multipart():
            data = part.get_payload(decode=True) or b""
            if any(type(d).__name__ == "InvalidBase64LengthDefect" for d in part.defects):
                out.append((part.get_content_type(), *ODD_BASE64))
            else:
                out.append((part.get_content_type(), hashlib.md5(data).hexdigest(), len(data)))
    return out


def stdlib_defects(raw: bytes) -> set[str]:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    names = set()
    for part in msg.walk():
        if not part.is_multipart():
            part.get_payload(decode=True)  # base64 defects are found while decoding
        names |= {type(d).__name__ for d in part.defects}
    return names


def my_defect_names(s: MessageSummary) -> set[str]:
    return {d.split(" (part ")[0] for d in s.defects}


def no_internal_error(s: MessageSummary) -> None:
    assert not [d for d in s.defects if d.startswith("internal error")]


def feed_chunks(raw: bytes, sizes: Iterator[int], limits: MimeLimits | None = None) -> MessageSummary:
    s = MessageSummarizer(limits or MimeLimits())
    pos = 0
    while pos < len(raw):
        step = next(sizes)
        s.feed(raw[pos : pos + step])
        pos += step
    return s.close()


# --------------------------------------------------------------------------- the fuzzer

TOKEN = st.text(alphabet="abcXYZ0129'()+_,-./:=?", min_size=1, max_size=12).filter(
    lambda b: not b.endswith(" ")
)
TEXT_LINE = st.text(alphabet="abc -=.", max_size=20)


@st.composite
def base64_body(draw: st.DrawFn) -> bytes:
    data = draw(st.binary(max_size=300))
    width = draw(st.sampled_from([76, 64, 4, 7, 10_000]))
    text = base64.b64encode(data)
    lines = [text[i : i + width] for i in range(0, len(text), width)] or [b""]
    noisy = []
    for line in lines:
        if draw(st.integers(0, 9)) == 0:  # stray bytes the decoder must skip
            at = draw(st.integers(0, len(line)))
            noise = draw(st.sampled_from([b" ", b"\t", b"!", b"*", b"\x00", b"\xff"]))
            noisy.append(line[:at] + noise + line[at:])
        else:
            noisy.append(line)
    if draw(st.integers(0, 14)) == 0 and len(text) >= 8:  # padding in the middle ends decoding early
        noisy.insert(1, b"QQ==")
    return b"\n".join(noisy)


@st.composite
def qp_body(draw: st.DrawFn) -> bytes:
    data = draw(st.binary(max_size=200))
    text = quopri.encodestring(data)
    if draw(st.booleans()):
        text += draw(st.sampled_from([b"=", b"=4", b"==", b"=ZZ", b"= \n", b"=\r\nx"]))
    return text


@st.composite
def leaf(draw: st.DrawFn, eol: bytes) -> bytes:
    cte = draw(st.sampled_from([None, "7bit", "base64", "quoted-printable", "BASE64", "8bit"]))
    headers = [
        b"Content-Type: " + draw(st.sampled_from([b"text/plain", b"application/pdf", b"image/png", b"bogus"]))
    ]
    if draw(st.booleans()):
        headers.append(b'Content-Disposition: attachment; filename="' + draw(TOKEN).encode() + b'"')
    if cte is not None:
        headers.append(b"Content-Transfer-Encoding: " + cte.encode())
    if cte and cte.lower() == "base64":
        body = draw(base64_body())
    elif cte == "quoted-printable":
        body = draw(qp_body())
    else:
        body = b"\n".join(t.encode() for t in draw(st.lists(TEXT_LINE, max_size=4)))
    blank = b"" if draw(st.integers(0, 19)) == 0 else eol  # sometimes no header/body separator
    if body.startswith(b"From "):  # a "From " line ending a header block: see docs/messages.md
        body = b">" + body
    return eol.join(headers) + eol + blank + body.replace(b"\n", eol)


@st.composite
def entity(draw: st.DrawFn, depth: int, eol: bytes) -> bytes:
    kind = draw(st.sampled_from(["leaf", "multipart", "message"])) if depth < 3 else "leaf"
    if kind == "leaf":
        return draw(leaf(eol))
    if kind == "message":
        inner = draw(entity(depth + 1, eol))
        return b"Content-Type: message/rfc822" + eol + eol + b"Subject: inner" + eol + inner
    boundary = draw(TOKEN).encode()
    sub = draw(st.sampled_from([b"mixed", b"alternative", b"digest"]))
    head = b"Content-Type: multipart/" + sub + b'; boundary="' + boundary + b'"' + eol + eol
    body = [draw(TEXT_LINE).encode()] if draw(st.booleans()) else []  # preamble
    for _ in range(draw(st.integers(0, 3))):
        delim = b"--" + boundary + draw(st.sampled_from([b"", b"  ", b"\t"]))
        body.append(delim)
        if draw(st.integers(0, 9)) == 0:
            body.append(b"--" + boundary)  # repeated delimiter lines
        body.append(draw(entity(depth + 1, eol)))
    ending = draw(st.sampled_from(["close", "close", "none", "wrong"]))
    if ending == "close":
        body.append(b"--" + boundary + b"--")
        if draw(st.booleans()):
            body.append(draw(TEXT_LINE).encode())  # epilogue
    elif ending == "wrong":
        body.append(b"--not-" + boundary + b"--")
    return head + eol.join(body)


@st.composite
def message(draw: st.DrawFn) -> bytes:
    eol = draw(st.sampled_from([b"\r\n", b"\n", b"\r"]))
    top = b"From: a@b.example" + eol + b"Subject: fuzz" + eol + b"MIME-Version: 1.0" + eol
    raw = top + draw(entity(0, eol))
    if draw(st.booleans()):
        raw += eol
    if draw(st.integers(0, 9)) == 0:  # mixed line endings
        raw = raw.replace(b"\r\n", b"\n", draw(st.integers(0, 5)))
    return raw


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=message(), seed=st.integers(0, 2**32))
def test_fuzzed_structures_decode_like_the_stdlib(raw: bytes, seed: int) -> None:
    whole = summarize(raw)
    no_internal_error(whole)
    assert leaves(whole) == stdlib_leaves(raw)
    structural = {
        "StartBoundaryNotFoundDefect", "CloseBoundaryNotFoundDefect", "MissingHeaderBodySeparatorDefect",
    }  # fmt: skip
    assert stdlib_defects(raw) & structural <= my_defect_names(whole)
    rng = random.Random(seed)
    sizes = iter(lambda: rng.choice([1, 2, 3, 5, 64, 1000]), None)
    old = mime._BLOCK
    mime._BLOCK = 1
    try:
        assert feed_chunks(raw, sizes) == whole
    finally:
        mime._BLOCK = old


class _CheckedSummarizer(MessageSummarizer):
    """Checks after every delimiter line that the active delimiters kept are those a fresh look finds."""

    def _boundary(self, at: int, level: int, *, close: bool, line_end: int, eol: bytes = b"") -> None:
        super()._boundary(at, level, close=close, line_end=line_end, eol=eol)
        kept = list(self._active)
        self._update_active()
        assert kept == self._active


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=message())
def test_active_delimiters_kept_equal_recomputed(raw: bytes) -> None:
    """After the delimiter of a next part, the active delimiters are not looked for again (nothing that
    had one ended): they equal what looking again gives."""
    summarizer = _CheckedSummarizer()
    summarizer.feed(raw)
    assert summarizer.close() == summarize(raw)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.integers(1, 50))
def test_random_bytes_never_raise(raw: bytes, step: int) -> None:
    s = feed_chunks(
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n" + raw, iter(lambda: step, None)
    )
    no_internal_error(s)
    no_internal_error(summarize(raw))


# --------------------------------------------------------------------------- the decoders alone


@settings(max_examples=200, deadline=None)
@given(
    st.binary(max_size=200).map(base64.b64encode),
    st.binary(max_size=12),
    st.lists(st.integers(0, 400), max_size=6),
)
def test_base64_stream_equals_decode_b(encoded: bytes, noise: bytes, cuts: list[int]) -> None:
    from email._encoded_words import decode_b  # the stdlib's own fallback chain

    text = encoded[: len(encoded) // 2] + noise + encoded[len(encoded) // 2 :]
    want, defects = decode_b(b"".join(text.splitlines()))
    if any(type(d).__name__ == "InvalidBase64LengthDefect" for d in defects):
        return  # the stdlib returns the *encoded* text there; we keep what decodes (documented)
    dec = mime._Base64()
    got = bytearray()
    last = 0
    for cut in sorted({c for c in cuts if c <= len(text)}):
        got += dec.feed(text[last:cut])
        last = cut
    got += dec.feed(text[last:])
    got += dec.close()
    assert bytes(got) == want
    assert bool(dec.defects) == bool(defects)  # which defect exactly can differ on odd padding


@settings(max_examples=500, deadline=None)
@given(
    st.binary(max_size=3000),
    st.lists(st.tuples(st.integers(0, 5000), st.sampled_from([b"\r\n", b"\n", b"\r", b" ", b"\t", b"-", b"_", b".",
                                                              b"*", b"\x00", b"\x80", b"\xff", b"\r\n\r\n"])),
             max_size=10),
    st.integers(0, 3),
)
def test_the_fast_base64_decoder_is_binascii(data: bytes, noise: list[tuple[int, bytes]], drop: int) -> None:
    """The common block (no ``=``, no carried quantum) is decoded with pybase64: for every such block,
    noise and odd lengths included, it gives what ``binascii.a2b_base64`` gives, or fails as it does."""
    text = base64.encodebytes(data).replace(b"=", b"")
    text = text[: len(text) - drop] if drop else text
    for place, piece in sorted(noise, reverse=True):
        text = text[:place] + piece + text[place:]
    try:
        want: bytes | None = binascii.a2b_base64(text)
    except binascii.Error:
        want = None
    try:
        got: bytes | None = mime._b64decode(text)
    except binascii.Error:
        got = None
    assert got == want


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(0, 400), max_size=6), st.binary(max_size=8))
def test_quoted_printable_stream_equals_quopri(data: bytes, cuts: list[int], junk: bytes) -> None:
    text = quopri.encodestring(data) + junk.replace(b"\r", b"")
    dec = mime._QuotedPrintable()
    got = bytearray()
    last = 0
    for cut in sorted({c for c in cuts if c <= len(text)}):
        got += dec.feed(text[last:cut])
        last = cut
    got += dec.feed(text[last:])
    got += dec.close()
    assert bytes(got) == quopri.decodestring(text)


# --------------------------------------------------------------------------- named hostile cases

HEAD = b"From: a@b.example\r\nSubject: hostile\r\n"


def multipart(boundary: bytes, *parts: bytes, close: bool = True) -> bytes:
    body = b"".join(b"--" + boundary + b"\r\n" + p + b"\r\n" for p in parts)
    return (
        HEAD
        + b'Content-Type: multipart/mixed; boundary="'
        + boundary
        + b'"\r\n\r\n'
        + body
        + (b"--" + boundary + b"--\r\n" if close else b"")
    )


PART = b"Content-Type: text/plain\r\n\r\nhello"


def test_missing_start_boundary() -> None:
    raw = HEAD + b'Content-Type: multipart/mixed; boundary="zz"\r\n\r\nno parts at all\r\n'
    s = summarize(raw)
    assert "StartBoundaryNotFoundDefect" in s.defects
    assert leaves(s) == stdlib_leaves(raw)


def test_missing_close_boundary() -> None:
    raw = multipart(b"b", PART, PART, close=False)
    s = summarize(raw)
    assert "CloseBoundaryNotFoundDefect" in s.defects
    assert leaves(s) == stdlib_leaves(raw)


def test_mismatched_boundary() -> None:
    raw = multipart(b"right", PART).replace(b"--right\r\n", b"--wrong\r\n")
    s = summarize(raw)
    assert "StartBoundaryNotFoundDefect" in s.defects
    assert leaves(s) == stdlib_leaves(raw)


def test_no_boundary_parameter() -> None:
    raw = HEAD + b"Content-Type: multipart/mixed\r\n\r\n--x\r\nbody\r\n"
    s = summarize(raw)
    assert "NoBoundaryInMultipartDefect" in s.defects
    assert leaves(s) == stdlib_leaves(raw)


def test_outer_boundary_ends_inner_parts() -> None:
    inner = b'Content-Type: multipart/alternative; boundary="in"\r\n\r\n--in\r\n' + PART
    raw = multipart(b"out", inner, PART)
    s = summarize(raw)
    assert "CloseBoundaryNotFoundDefect (part 1.1)" in s.defects
    assert leaves(s) == stdlib_leaves(raw)


def test_preamble_epilogue_and_repeated_delimiters() -> None:
    raw = multipart(b"b", PART, PART).replace(b"\r\n\r\n--b", b"\r\n\r\npreamble\r\n--b\r\n--b", 1)
    raw += b"epilogue --b\r\n"
    s = summarize(raw)
    assert len(s.parts.children) == 2
    assert leaves(s) == stdlib_leaves(raw)


def test_hundred_deep_nesting_is_capped() -> None:
    depth = 100
    raw = HEAD
    for i in range(depth):
        raw += (
            b'Content-Type: multipart/mixed; boundary="b'
            + str(i).encode()
            + b'"\r\n\r\n--b'
            + str(i).encode()
            + b"\r\n"
        )
    raw += PART + b"\r\n"
    for i in reversed(range(depth)):
        raw += b"--b" + str(i).encode() + b"--\r\n"
    s = summarize(raw)
    no_internal_error(s)
    assert "nesting too deep (part " + ".".join(["1"] * 51) + ")" in s.defects
    assert max(p.path.count(".") for p in s.parts.walk()) == 50
    deep = summarize(raw, MimeLimits(max_depth=1000))
    assert leaves(deep) == stdlib_leaves(raw)


def test_too_many_parts() -> None:
    raw = multipart(b"b", *([PART] * 50))
    s = summarize(raw, MimeLimits(max_parts=10))
    assert "too many parts" in s.defects
    assert len(s.parts.walk()) == 10


def test_ten_megabyte_header_line_is_bounded() -> None:
    line = b"X-Long: " + b"a" * (10 * 1024 * 1024) + b"\r\n"
    raw = HEAD + line + b"Content-Type: text/plain\r\n\r\nbody\r\n"
    limits = MimeLimits()
    tracemalloc.start()
    s = feed_chunks(raw, iter(lambda: 1460, None), limits)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 3 * limits.max_line + 4 * limits.max_kept_bytes
    assert "line too long" in s.defects and "header too long" in s.defects
    assert s.parts.content_type == "text/plain" and s.parts.decoded_bytes == 6
    assert s.subject == "hostile"


def test_ten_megabyte_line_without_header_is_body() -> None:
    raw = b"y" * (10 * 1024 * 1024)
    s = feed_chunks(raw, iter(lambda: 65536, None))
    assert "MissingHeaderBodySeparatorDefect" in s.defects
    assert s.parts.decoded_bytes == len(raw)


def _big_base64_message(mb: int) -> tuple[bytes, bytes, str]:
    block = bytes(range(256)) * 3 * 1024  # 768 KiB, encodes to lines of 76
    encoded = base64.encodebytes(block).replace(b"\n", b"\r\n")
    head = HEAD + b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n--B\r\n'
    head += b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    digest = hashlib.sha256()
    for _ in range(mb * 1024 // 768):
        digest.update(block)
    return head, encoded, digest.hexdigest()


def test_hundred_megabyte_base64_part_streams_in_bounded_memory() -> None:
    head, encoded, want = _big_base64_message(100)
    count = 100 * 1024 // 768
    s = MessageSummarizer()
    tracemalloc.start()
    s.feed(head)
    for _ in range(count):
        for i in range(0, len(encoded), 65536):
            s.feed(encoded[i : i + 65536])
    s.feed(b"\r\n--B--\r\n")
    summary = s.close()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert summary.attachments == () and summary.parts.children[0].sha256 == want
    assert peak < 8 * 1024 * 1024


def test_twenty_megabyte_base64_part_streams_in_bounded_memory() -> None:
    head, encoded, want = _big_base64_message(20)
    s = MessageSummarizer()
    tracemalloc.start()
    s.feed(head)
    for _ in range(20 * 1024 // 768):
        for i in range(0, len(encoded), 1460):
            s.feed(encoded[i : i + 1460])
    s.feed(b"\r\n--B--\r\n")
    summary = s.close()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert summary.parts.children[0].sha256 == want
    assert peak < 4 * 1024 * 1024


def test_bad_base64() -> None:
    body = b"Content-Transfer-Encoding: base64\r\n\r\nQUJD$$RE*VG\r\nR0g=\r\nQUJD\r\n"
    raw = multipart(b"b", body)
    s = summarize(raw)
    assert "InvalidBase64CharactersDefect (part 1.1)" in s.defects
    assert leaves(s) == stdlib_leaves(raw)
    odd = summarize(multipart(b"b", b"Content-Transfer-Encoding: base64\r\n\r\nQUJDR"))
    assert "InvalidBase64LengthDefect (part 1.1)" in odd.defects


def test_wrong_and_unknown_charsets() -> None:
    raw = (
        HEAD + b"Content-Type: text/plain; charset=x-no-such-charset\r\n\r\nGr\xfc\xdfe\r\n"
    )  # latin-1 bytes
    s = summarize(raw)
    assert "unknown charset 'x-no-such-charset'" in s.defects
    assert s.text_preview == "Grüße\r\n"
    wrong = summarize(HEAD + b"Content-Type: text/plain; charset=utf-8\r\n\r\nGr\xfc\xdfe\r\n")
    assert wrong.text_preview is not None and "\ufffd" in wrong.text_preview
    assert summarize(HEAD + b"Content-Type: text/plain; charset=base64\r\n\r\nx\r\n").text_preview == "x\r\n"


def test_nul_bytes() -> None:
    raw = b"Subject: a\x00b\r\nTo: x@y.example\r\n\r\nbody\x00with\x00nul\r\n"
    s = summarize(raw)
    assert s.subject == "a\x00b"
    assert leaves(s) == stdlib_leaves(raw)


def test_no_header_body_separator() -> None:
    raw = b"Subject: x\r\nthis line is body\r\nmore\r\n"
    s = summarize(raw)
    assert "MissingHeaderBodySeparatorDefect" in s.defects
    assert leaves(s) == stdlib_leaves(raw)
    only_headers = summarize(b"Subject: only headers")
    assert only_headers.subject == "only headers" and only_headers.parts.decoded_bytes == 0


@pytest.mark.parametrize("eol", [b"\r\n", b"\n", b"\r"])
def test_line_endings(eol: bytes) -> None:
    raw = multipart(b"b", PART, b"Content-Transfer-Encoding: base64\r\n\r\nAAECAwQF").replace(b"\r\n", eol)
    s = summarize(raw)
    assert leaves(s) == stdlib_leaves(raw)
    assert s.parts.children[1].md5 == hashlib.md5(bytes(range(6))).hexdigest()
    assert s.subject == "hostile"


def test_duplicate_headers() -> None:
    raw = b"Subject: one\r\nSubject: two\r\nTo: a@x.example\r\nTo: b@x.example\r\n\r\nbody\r\n"
    s = summarize(raw)
    assert s.subject == "one" and s.to == ("a@x.example",)
    assert "duplicate subject header" in s.defects and "duplicate to header" in s.defects
    assert s.header_values("subject") == ["one", "two"]


def test_raw_eight_bit_headers_are_decoded_sensibly() -> None:
    s = summarize(b"Subject: Gr\xc3\xbc\xc3\x9fe =?utf-8?q?aus_K=C3=B6ln?=\r\n\r\n")
    assert s.subject == "Grüße aus Köln"
    cp1252 = summarize(b"Subject: See What\x92s Next\r\n\r\n")
    assert cp1252.subject == "See What’s Next"
    name = summarize(b'Content-Type: text/plain; name="\xc3\x9cbersicht.txt"\r\n\r\nx')
    assert name.attachments[0].filename == "Übersicht.txt"


def test_hostile_parameters_stay_linear() -> None:
    params = b"; " + b'a="' + b";" * 200_000 + b'"'
    raw = (
        b"Content-Type: text/plain"
        + params
        + b"\r\nContent-Disposition: attachment"
        + b"; x=1" * 5000
        + b"\r\n\r\nx"
    )
    s = summarize(raw)
    assert "too many parameters" in s.defects
    no_internal_error(s)


def test_bare_cr_header_block_stays_linear() -> None:
    raw = b"a: b\r" * 40_000 + b"\rbody"
    s = summarize(raw)
    assert s.parts.decoded_bytes == 4 and "header too long" not in s.defects
