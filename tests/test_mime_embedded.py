"""Embedded e-mails (message/rfc822, message/global): listed as attachments with the size and hashes of the
message exactly as it stands in the carrying message, handed to the part hook, streamed, split-invariant.

Every expected value is computed here from the bytes the test put into the message, never read back from
the summary's own offsets."""

from __future__ import annotations

import base64
import email
import email.errors
import email.policy
import hashlib
import random
import tracemalloc
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, assume, given, settings

import mailtrace.mime as mime
from mailtrace.mime import (
    MessageSummarizer,
    MessageSummary,
    MimeLimits,
    Part,
    PartStart,
    summarize,
    summary_to_json,
)
from tests.support import CollectingWriter
from tests.test_mime_hostile import message as fuzzed_message


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def part(summary: MessageSummary, path: str) -> Part:
    return next(p for p in summary.parts.walk() if p.path == path)


def forward(embedded: bytes, *, head: bytes = b'Content-Type: message/rfc822\r\n'
            b'Content-Disposition: attachment; filename="fwd.eml"\r\n', eol: bytes = b"\r\n",
            close: bool = True) -> bytes:
    """A multipart/mixed message: a text part, then ``embedded`` as the body of a part with ``head``. The line
    break after ``embedded`` is the closing delimiter's (RFC 2046), so the attached e-mail is ``embedded``."""
    raw = (b"From: a@b.example\r\nSubject: outer\r\nMIME-Version: 1.0\r\n"
           b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
           b"--b\r\nContent-Type: text/plain\r\n\r\nplease look\r\n--b\r\n" + head + b"\r\n"
           + embedded + (b"\r\n--b--\r\n" if close else b""))
    return raw.replace(b"\r\n", eol)


INNER = b"From: x@y.example\r\nSubject: inner\r\n\r\nhello inner"

PDF = b"%PDF-1.4 not really\n" * 60

INNER_MULTIPART = (
    b"From: mallory@evil.example\r\nSubject: Your invoice\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="in"\r\n\r\n'
    b"--in\r\nContent-Type: text/plain\r\n\r\nsee the invoice\r\n"
    b'--in\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename="invoice.pdf"\r\n'
    b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(PDF).replace(b"\n", b"\r\n")
    + b"--in--"
)
"""An attached phishing mail with its own attachment; it ends with its close delimiter, whose line break then
belongs to the outer delimiter."""


# --------------------------------------------------------------------------- what is listed


def test_the_example_of_the_report() -> None:
    """The message of the feature request, as written there: the inner e-mail's last line break is the one
    before the close delimiter, so the attached e-mail is ``inner`` without it."""
    inner = b"From: x@y\r\nSubject: inner\r\n\r\nhello inner\r\n"
    msg = (b"From: a@b\r\nSubject: outer\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: text/plain\r\n\r\nbody\r\n--b\r\nContent-Type: message/rfc822\r\n"
           b"Content-Disposition: attachment; filename=fwd.eml\r\n\r\n" + inner + b"--b--\r\n")
    s = summarize(msg)
    attached = inner[:-2]
    assert [(a.path, a.filename, a.content_type, a.bytes, a.encoded_bytes, a.md5, a.sha256, a.complete)
            for a in s.attachments] == [
        ("1.2", "fwd.eml", "message/rfc822", len(attached), len(attached), md5(attached), sha256(attached), True)]
    embedded = part(s, "1.2")
    assert (embedded.decoded_bytes, embedded.md5, embedded.sha256) == (len(attached), md5(attached),
                                                                        sha256(attached))
    assert embedded.is_attachment and not embedded.is_leaf and embedded.overhead_percent is None
    # the parts inside are still there, as the stdlib parses them
    assert [(p.path, p.content_type, p.md5) for p in embedded.walk()] == [
        ("1.2", "message/rfc822", md5(attached)), ("1.2.1", "text/plain", md5(b"hello inner"))]


def test_an_attachment_inside_the_attached_email_stays_listed() -> None:
    raw = forward(INNER_MULTIPART)
    s = summarize(raw)
    assert [(a.path, a.filename, a.bytes, a.sha256) for a in s.attachments] == [
        ("1.2", "fwd.eml", len(INNER_MULTIPART), sha256(INNER_MULTIPART)),
        ("1.2.1.2", "invoice.pdf", len(PDF), sha256(PDF)),
    ]
    assert [p.path for p in s.parts.walk()] == ["1", "1.1", "1.2", "1.2.1", "1.2.1.1", "1.2.1.2"]
    assert not s.defects
    js = summary_to_json(s)
    assert js["attachments"][0] == {
        "filename": "fwd.eml", "content_type": "message/rfc822", "encoding": None, "bytes": len(INNER_MULTIPART),
        "encoded_bytes": len(INNER_MULTIPART), "md5": md5(INNER_MULTIPART), "sha256": sha256(INNER_MULTIPART),
    }  # fmt: skip
    tree = js["parts"]["children"][1]
    assert (tree["decoded_bytes"], tree["sha256"], len(tree["children"])) == (
        len(INNER_MULTIPART), sha256(INNER_MULTIPART), 1)


def test_the_attached_email_is_what_the_stdlib_parses() -> None:
    """The bytes written for the embedded e-mail, parsed on their own, give the stdlib's tree of it."""
    writers: dict[str, CollectingWriter] = {}
    s = MessageSummarizer(on_part=lambda start: writers.setdefault(start.path, CollectingWriter()))
    raw = forward(INNER_MULTIPART)
    s.feed(raw)
    s.close()
    stdlib = email.message_from_bytes(raw, policy=email.policy.default)
    alone = email.message_from_bytes(bytes(writers["1.2"].data), policy=email.policy.default)
    assert _leaves(alone) == _leaves(stdlib.get_payload(1).get_payload(0)) == [
        ("text/plain", b"see the invoice"), ("application/pdf", PDF)]


@pytest.mark.parametrize("head", [
    b"Content-Type: message/rfc822\r\n",  # a bounce's returned message: no disposition, no name
    b"Content-Type: message/rfc822\r\nContent-Disposition: inline\r\n",
    b"Content-Type: message/global\r\n",  # RFC 6532
    b'Content-Type: MESSAGE/Global; name="x.u8msg"\r\n',
])  # fmt: skip
def test_every_embedded_email_is_listed_inline_or_not(head: bytes) -> None:
    s = summarize(forward(INNER, head=head))
    assert [(a.path, a.bytes, a.sha256) for a in s.attachments] == [("1.2", len(INNER), sha256(INNER))]
    assert s.attachments[0].content_type in ("message/rfc822", "message/global")


@pytest.mark.parametrize("kind", [b"message/delivery-status", b"message/disposition-notification",
                                  b"message/partial; id=x; number=1", b"text/rfc822-headers"])
def test_other_message_types_are_not_embedded_emails(kind: bytes) -> None:
    """Only a whole e-mail is listed: delivery reports, receipts, fragments and header copies are not."""
    s = summarize(forward(INNER, head=b"Content-Type: " + kind + b"\r\n"))
    assert s.attachments == ()
    assert part(s, "1.2").sha256 is None or part(s, "1.2").is_leaf


def test_top_level_and_digest_children() -> None:
    """A message whose own body is an e-mail (the corpus' MIME evasion sample has one) and the children of a
    multipart/digest, which are message/rfc822 without saying so."""
    top = b'Content-Type: message/rfc822\r\nContent-Disposition: attachment; filename="a.txt"\r\n\r\n'
    s = summarize(b"From: a@b\r\n" + top + INNER)
    assert [(a.path, a.filename, a.sha256) for a in s.attachments] == [("1", "a.txt", sha256(INNER))]
    one, two = b"Subject: one\r\n\r\nfirst", b"Subject: two\r\n\r\nsecond\r\n"
    digest = (b'From: list@x\r\nContent-Type: multipart/digest; boundary="d"\r\n\r\n'
              b"--d\r\n\r\n" + one + b"\r\n--d\r\n\r\n" + two + b"\r\n--d--\r\n")
    s = summarize(digest)
    assert [(a.path, a.filename, a.content_type, a.sha256) for a in s.attachments] == [
        ("1.1", None, "message/rfc822", sha256(one)), ("1.2", None, "message/rfc822", sha256(two))]


@pytest.mark.parametrize("eol", [b"\r\n", b"\n", b"\r"])
def test_the_delimiters_line_break_is_never_the_embedded_emails(eol: bytes) -> None:
    """Whoever read it: the line break after a text body, after a header line, after a close delimiter."""
    for embedded in (INNER, INNER_MULTIPART, b"Subject: only a header"):
        s = summarize(forward(embedded, eol=eol))
        expected = embedded.replace(b"\r\n", eol)
        assert (s.attachments[0].bytes, s.attachments[0].sha256) == (len(expected), sha256(expected))
        assert part(s, "1.2").encoded_bytes == len(expected)


def test_an_empty_embedded_email() -> None:
    raw = forward(b"").replace(b"\r\n\r\n\r\n--b--", b"\r\n\r\n--b--")  # the delimiter right after the header
    s = summarize(raw)
    assert [(a.bytes, a.sha256) for a in s.attachments] == [(0, sha256(b""))]


# --------------------------------------------------------------------------- transfer encodings


def test_a_message_rfc822_labelled_base64_that_is_not() -> None:
    """A known scanner evasion: the stdlib parses the body as sent, finds the malware inside, and so does the
    tree here; the attached e-mail is those bytes too (decoding them as base64 would give noise)."""
    evil = (b"From: attacker@evil.example\r\nSubject: Inner\r\nContent-Type: application/octet-stream\r\n"
            b'Content-Disposition: attachment; filename="malware.exe"\r\n\r\nEICAR-LIKE-PAYLOAD')
    head = b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n"
    s = summarize(forward(evil, head=head))
    assert [(a.filename, a.encoding, a.bytes, a.sha256) for a in s.attachments] == [
        (None, "base64", len(evil), sha256(evil)), ("malware.exe", None, 18, sha256(b"EICAR-LIKE-PAYLOAD"))]
    assert "transfer encoding of embedded message ignored (part 1.2)" in s.defects


@pytest.mark.parametrize("cte", [b"base64", b"quoted-printable", b"x-uuencode"])
def test_an_encoded_embedded_email_is_hashed_as_sent(cte: bytes) -> None:
    """The stdlib has no decoded bytes for a message/* part (``get_payload(decode=True)`` is None) and parses
    the encoded text as the message: so the content is the body as sent (docs/messages.md)."""
    encoded = base64.encodebytes(INNER).replace(b"\n", b"\r\n").rstrip(b"\r\n")
    raw = forward(encoded, head=b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: " + cte + b"\r\n")
    s = summarize(raw)
    assert (s.attachments[0].bytes, s.attachments[0].sha256) == (len(encoded), sha256(encoded))
    assert part(s, "1.2").defects == ("transfer encoding of embedded message ignored",)
    stdlib = email.message_from_bytes(raw, policy=email.policy.default)
    assert stdlib.get_payload(1).get_payload(decode=True) is None
    assert [p.get_payload(decode=True) for p in stdlib.get_payload(1).walk() if not p.is_multipart()] == [
        encoded]  # the stdlib's embedded message: the base64 text, not decoded
    assert [p.sha256 for p in s.parts.walk() if p.is_leaf] == [sha256(b"please look"), sha256(encoded)]


def test_seven_bit_eight_bit_binary_are_not_flagged() -> None:
    for cte in (b"7bit", b"8BIT", b"binary"):
        raw = forward(INNER, head=b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: " + cte + b"\r\n")
        s = summarize(raw)
        assert not s.defects and s.attachments[0].sha256 == sha256(INNER)


# --------------------------------------------------------------------------- the part hook


def test_the_part_hook_gets_the_embedded_email_then_its_parts() -> None:
    seen: dict[str, tuple[PartStart, CollectingWriter]] = {}

    def hook(start: PartStart) -> CollectingWriter:
        seen[start.path] = (start, CollectingWriter())
        return seen[start.path][1]

    s = MessageSummarizer(on_part=hook)
    s.feed(forward(INNER_MULTIPART))
    summary = s.close()
    assert list(seen) == ["1.1", "1.2", "1.2.1.1", "1.2.1.2"]
    start, writer = seen["1.2"]
    assert (start.content_type, start.filename, start.disposition, start.is_attachment) == (
        "message/rfc822", "fwd.eml", "attachment", True)
    assert bytes(writer.data) == INNER_MULTIPART and writer.closed
    assert bytes(seen["1.2.1.2"][1].data) == PDF and seen["1.2.1.2"][1].closed
    assert not seen["1.2.1.1"][0].is_attachment
    assert summary.attachments[0].sha256 == sha256(INNER_MULTIPART)


def test_an_unnamed_inline_embedded_email_is_an_attachment_for_the_hook() -> None:
    starts: list[PartStart] = []
    s = MessageSummarizer(on_part=starts.append)  # no writer: None
    s.feed(forward(INNER, head=b"Content-Type: message/rfc822\r\n"))
    s.close()
    assert [(p.path, p.filename, p.is_attachment) for p in starts] == [
        ("1.1", None, False), ("1.2", None, True), ("1.2.1", None, False)]


def test_a_writer_error_of_the_embedded_email_is_passed_on() -> None:
    class Broken(CollectingWriter):
        def write(self, data: bytes) -> None:
            raise OSError("disk full")

    s = MessageSummarizer(on_part=lambda start: Broken() if start.path == "1.2" else None)
    with pytest.raises(OSError, match="disk full"):
        s.feed(forward(INNER) + b"x" * 70_000)  # over one batch: scanned in feed()
        s.close()


# --------------------------------------------------------------------------- streaming


def _whole_and_split(raw: bytes) -> Iterator[MessageSummary]:
    for cut in range(len(raw) + 1):
        s = MessageSummarizer()
        s.feed(raw[:cut])
        s.feed(raw[cut:])
        yield s.close()
    s = MessageSummarizer()
    for i in range(len(raw)):
        s.feed(raw[i : i + 1])
    yield s.close()


NESTED = forward(
    b"Subject: level 1\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=one\r\n\r\n"
    b"--one\r\nContent-Type: message/rfc822\r\n\r\n" + INNER_MULTIPART
    + b"\r\n--one\r\nContent-Type: message/rfc822\r\n\r\nSubject: level 2\r\n\r\nbody\r\n\r\n--one--"
)


@pytest.mark.parametrize("eol", [b"\r\n", b"\n", b"\r"])
def test_split_invariance(monkeypatch: pytest.MonkeyPatch, eol: bytes) -> None:
    """The same summary whatever the feeds: cut at every offset, and byte by byte, each scanned as fed."""
    monkeypatch.setattr(mime, "_BLOCK", 1)
    raw = NESTED.replace(b"\r\n", eol)
    whole = summarize(raw)
    assert [a.path for a in whole.attachments] == ["1.2", "1.2.1.1", "1.2.1.1.1.2", "1.2.1.2"]
    second = (b"Subject: level 2\r\n\r\nbody\r\n").replace(b"\r\n", eol)
    assert whole.attachments[1].sha256 == sha256(INNER_MULTIPART.replace(b"\r\n", eol))
    assert whole.attachments[3].sha256 == sha256(second)  # a blank line before the delimiter's line break
    for summary in _whole_and_split(raw):
        assert summary == whole


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=fuzzed_message())
def test_fuzzed_embedded_emails_parse_like_the_stdlib_subtree(raw: bytes) -> None:
    """For random structures (line endings, missing and repeated delimiters, nesting): every embedded e-mail's
    hash is that of bytes which, parsed alone by the stdlib, give the leaves of the stdlib's own subtree.

    Except where a multipart inside lacks its own first or close delimiter: the stdlib makes the preamble of one
    the payload, with the line break before the outer delimiter that ends it (RFC 2046, and the content here,
    give it to that delimiter), and parsed alone the other one meets the end of the message, where the stdlib
    takes one more line break from its last leaf."""
    stdlib = email.message_from_bytes(raw, policy=email.policy.default)
    embedded = [p for p in stdlib.walk() if p.get_content_type() == "message/rfc822"]
    assume(embedded)
    s = summarize(raw)
    mine = [p for p in s.parts.walk() if p.content_type == "message/rfc822"]
    assert len(mine) == len(embedded)
    for ours, theirs in zip(mine, embedded, strict=True):
        start = ours.offset + ours.header_bytes
        body = raw[start : start + ours.encoded_bytes]
        assert ours.sha256 == sha256(body) and ours.decoded_bytes == len(body)
        assert any(a.path == ours.path and a.sha256 == ours.sha256 for a in s.attachments)
        inner = theirs.get_payload(0)
        quirks = (email.errors.StartBoundaryNotFoundDefect, email.errors.CloseBoundaryNotFoundDefect)
        if any(isinstance(d, quirks) for p in inner.walk() for d in p.defects):
            continue
        alone = email.message_from_bytes(body, policy=email.policy.default)
        assert _leaves(alone) == _leaves(inner), ours.path


def _leaves(msg: email.message.Message) -> list[tuple[str, bytes]]:
    return [(p.get_content_type(), p.get_payload(decode=True) or b"") for p in msg.walk() if not p.is_multipart()]


def test_a_big_embedded_email_streams_in_bounded_memory() -> None:
    """A 24 MB e-mail attached to another, fed in 64 KiB chunks: hashed as it goes, memory a few MB."""
    line = base64.b64encode(bytes(range(57)))
    head = forward(b"Subject: big\r\nContent-Type: application/zip\r\nContent-Transfer-Encoding: base64\r\n\r\n",
                   close=False)
    embedded = hashlib.sha256(b"Subject: big\r\nContent-Type: application/zip\r\nContent-Transfer-Encoding: base64"
                              b"\r\n\r\n")
    block = (line + b"\r\n") * 800
    s = MessageSummarizer()
    tracemalloc.start()
    try:
        s.feed(head)
        for _ in range(24_000_000 // len(block) + 1):
            s.feed(block)
            embedded.update(block)
        s.feed(line + b"\r\n--b--\r\n")
        embedded.update(line)
        summary = s.close()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, peak
    assert summary.attachments[0].sha256 == embedded.hexdigest()
    assert summary.attachments[0].bytes == summary.attachments[0].encoded_bytes > 24_000_000


# --------------------------------------------------------------------------- hostile


def test_nested_a_hundred_deep() -> None:
    """message/rfc822 in message/rfc822, 100 levels: the first max_depth are parsed and listed, the next one is
    an opaque leaf (listed all the same), nothing below is described; every hash is of its level's body."""
    bottom = b"Subject: bottom\r\n\r\nthe end\r\n"
    levels = [bottom]
    for _ in range(100):
        levels.append(b"Content-Type: message/rfc822\r\n\r\n" + levels[-1])
    raw = b"From: a@b\r\n" + levels[-1]
    s = summarize(raw)
    assert not [d for d in s.defects if d.startswith("internal error")]
    depth = MimeLimits().max_depth
    assert len(s.attachments) == depth + 1
    for n, a in enumerate(s.attachments):
        assert a.path == ".".join(["1"] * (n + 1))
        assert a.sha256 == sha256(levels[-2 - n]), n  # at the end of the message: its last line break is kept
    assert "nesting too deep" in part(s, s.attachments[-1].path).defects
    assert summarize(raw, MimeLimits(max_parts=10)).attachments[-1].path == ".".join(["1"] * 10)


def test_nested_in_multiparts_a_hundred_deep() -> None:
    raw = INNER
    for n in range(100):
        raw = (f'Content-Type: multipart/mixed; boundary="m{n}"\r\n\r\n--m{n}\r\n'.encode()
               + b"Content-Type: message/rfc822\r\n\r\n" + raw + f"\r\n--m{n}--".encode())
    s = summarize(b"From: a@b\r\n" + raw + b"\r\n")
    assert not [d for d in s.defects if d.startswith("internal error")]
    listed = s.attachments
    assert listed and all(a.content_type == "message/rfc822" for a in listed)
    # the outermost embedded e-mail is everything between its header and the first closing delimiter's line break
    outer = raw.split(b"Content-Type: message/rfc822\r\n\r\n", 1)[1].rsplit(b"\r\n--m99--", 1)[0]
    assert listed[0].sha256 == sha256(outer)


def test_a_cut_message() -> None:
    """The capture ends inside the attached e-mail: everything that came is its content, marked incomplete."""
    raw = forward(INNER_MULTIPART)
    cut = raw.index(b"--in--") - 10
    s = MessageSummarizer()
    s.feed(raw[:cut])
    summary = s.close(complete=False, missing_bytes=100)
    received = INNER_MULTIPART[: cut - raw.index(INNER_MULTIPART)]
    first = summary.attachments[0]
    assert (first.path, first.complete, first.bytes, first.sha256) == ("1.2", False, len(received), sha256(received))
    assert [a.path for a in summary.attachments] == ["1.2", "1.2.1.2"]


def test_missing_boundaries() -> None:
    """No closing delimiter at all: the embedded e-mail runs to the end of the message, less the last line
    break, which the stdlib gives the delimiter that never came (as it takes it from the leaf inside)."""
    embedded = INNER_MULTIPART.replace(b"--in--", b"")
    s = summarize(forward(embedded, close=False) + b"\r\n")
    assert s.attachments[0].sha256 == sha256(embedded)
    assert "CloseBoundaryNotFoundDefect" in s.defects
    # not inside a multipart: nothing claims the last line break
    s = summarize(b"From: a@b\r\nContent-Type: message/rfc822\r\n\r\n" + embedded + b"\r\n")
    assert s.attachments[0].sha256 == sha256(embedded + b"\r\n")
    # an outer delimiter inside the embedded e-mail ends it, as it ends every part inside
    raw = forward(b"Subject: x\r\n\r\nbefore\r\n--b\r\nContent-Type: text/plain\r\n\r\nafter")
    s = summarize(raw)
    assert s.attachments[0].sha256 == sha256(b"Subject: x\r\n\r\nbefore")
    assert [p.path for p in s.parts.walk()] == ["1", "1.1", "1.2", "1.2.1", "1.3"]


def test_random_cuts_of_a_hostile_mix() -> None:
    rng = random.Random(5)
    raw = NESTED.replace(b"\r\n", b"\n", 7) + b"--b\r\n--b--\r\n"
    whole = summarize(raw)
    assert [a.path for a in whole.attachments] == ["1.2", "1.2.1.1", "1.2.1.1.1.2", "1.2.1.2"]
    for _ in range(200):
        cuts = sorted(rng.sample(range(len(raw)), 6))
        s = MessageSummarizer()
        last = 0
        for c in [*cuts, len(raw)]:
            s.feed(raw[last:c])
            last = c
        assert s.close() == whole


# --------------------------------------------------------------------------- found by review


def test_a_comment_after_the_type_does_not_hide_an_attached_email() -> None:
    """``message/rfc822 (forwarded)`` is a valid Content-Type (RFC 2045 5.1) and is parsed as a message: it is
    listed, hashed and handed to the hook as well, or a comment would hide a forwarded e-mail from extract."""
    inner = b"Subject: s\r\n\r\nhi"
    for ctype in (b"message/rfc822", b"message/rfc822 (forwarded)", b"message/rfc822(x)", b"message/global (y)"):
        raw = (b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: " + ctype
               + b"\r\nContent-Disposition: attachment; filename=fwd.eml\r\n\r\n" + inner + b"\r\n--b--\r\n")
        written: dict[str, CollectingWriter] = {}
        s = MessageSummarizer(on_part=lambda start, seen=written: seen.setdefault(start.path, CollectingWriter()))
        s.feed(raw)
        summary = s.close()
        assert [(a.path, a.sha256) for a in summary.attachments] == [("1.1", hashlib.sha256(inner).hexdigest())], ctype
        assert bytes(written["1.1"].data) == inner, ctype


def test_attached_emails_nested_deeper_than_three_are_not_written_again() -> None:
    """Each level of a nested attached e-mail holds the bytes of the levels inside it: extract wrote a message
    nested 49 deep 50 times over. All are listed and hashed; only the outer MAX_EMBEDDED_WRITTEN go to the hook."""
    inner = b"Subject: core\r\n\r\ncore"
    for level in range(6):
        inner = b"Subject: level %d\r\nContent-Type: message/rfc822\r\n\r\n" % level + inner
    written: dict[str, CollectingWriter] = {}
    s = MessageSummarizer(on_part=lambda start: written.setdefault(start.path, CollectingWriter()))
    s.feed(b"Content-Type: message/rfc822\r\n\r\n" + inner)
    summary = s.close()
    listed = [a.path for a in summary.attachments]
    assert len(listed) == 7
    assert sorted(written, key=len) == [*listed[: mime.MAX_EMBEDDED_WRITTEN], "1.1.1.1.1.1.1.1"]  # and the core leaf


def test_statistics_and_overhead_leave_an_attached_email_labelled_base64_alone() -> None:
    """An attached e-mail is hashed as sent, whatever its Content-Transfer-Encoding says: it is no decoded base64
    part, and has no encoding overhead."""
    inner = b"Subject: s\r\n\r\nhi"
    raw = (b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n" + inner + b"\r\n--b--\r\n")
    summary = summarize(raw)
    [attachment] = summary.attachments
    assert attachment.overhead_percent is None and summary.parts.children[0].overhead_percent is None
    from mailtrace.stats import StatsCollector

    stats = StatsCollector()
    stats._base64(summary)
    assert stats.b64_parts == 0
