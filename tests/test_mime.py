"""The message pipeline against ground truth: the stdlib, the lab captures' facts, the corpus.

Messages are cut out of the captures by a deliberately simple test-only extractor (whole TCP
streams by sequence number, then DATA/BDAT/RETR/literal framing). It only has to be right for
clean captures: every message it finds is used only when its SHA-256 equals the one recorded in
the ground truth, so a wrong cut can make a check skip, never pass.
"""

from __future__ import annotations

import dataclasses
import email
import email.message
import email.policy
import gzip
import hashlib
import importlib.util
import io
import json
import os
import random
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import dpkt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mailtrace.mime as mime
from mailtrace.mime import (
    EMBEDDED_MESSAGE_TYPES,
    MessageSummarizer,
    MessageSummary,
    MimeLimits,
    PartStart,
    summarize,
    summary_to_json,
)
from tests.support import CollectingWriter


def shared_dir() -> Path:
    return Path(os.environ.get("MAILTRACE_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))


SHARED = shared_dir()
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared data not found at {SHARED}")


# --------------------------------------------------------------------------- test-only extraction


def _frames(path: Path) -> Iterator[tuple[int, bytes]]:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    f = io.BytesIO(raw)
    try:
        reader: Any = dpkt.pcap.Reader(f)
    except ValueError:
        f.seek(0)
        reader = dpkt.pcapng.Reader(f)
    linktype = reader.datalink()
    try:
        for _, buf in reader:
            yield linktype, buf
    except (dpkt.NeedData, dpkt.UnpackError, ValueError):
        return


def _tcp_of(linktype: int, buf: bytes) -> tuple[bytes, bytes, Any] | None:
    try:
        if linktype == 1:
            ip = dpkt.ethernet.Ethernet(buf).data
        elif linktype in (0, 108):
            ip = dpkt.loopback.Loopback(buf).data
        elif linktype == 113:
            ip = dpkt.sll.SLL(buf).data
        elif linktype in (12, 101, 228, 229):
            ip = dpkt.ip.IP(buf) if buf[0] >> 4 == 4 else dpkt.ip6.IP6(buf)
        else:
            return None
    except (dpkt.UnpackError, IndexError):
        return None
    if isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)) and isinstance(ip.data, dpkt.tcp.TCP):
        return bytes(ip.src), bytes(ip.dst), ip.data
    return None


def tcp_streams(path: Path) -> list[bytes]:
    """Each direction of each connection as one byte string (in order, up to the first hole)."""
    segments: dict[tuple[bytes, int, bytes, int], dict[str, Any]] = {}
    for linktype, buf in _frames(path):
        got = _tcp_of(linktype, buf)
        if got is None:
            continue
        src, dst, tcp = got
        state = segments.setdefault((src, tcp.sport, dst, tcp.dport), {"isn": None, "data": {}})
        if tcp.flags & dpkt.tcp.TH_SYN:
            state["isn"] = tcp.seq + 1
        if tcp.data:
            state["data"].setdefault(tcp.seq, bytes(tcp.data))
    out = []
    for state in segments.values():
        if not state["data"]:
            continue
        base = state["isn"] if state["isn"] is not None else min(state["data"])
        stream = bytearray()
        for off, payload in sorted(((s - base) % 2**32, p) for s, p in state["data"].items()):
            if off > len(stream):
                break
            stream += payload[len(stream) - off :]
        out.append(bytes(stream))
    return out


def _unstuff(body: bytes) -> bytes:
    if body.startswith(b".."):
        body = body[1:]
    return body.replace(b"\r\n..", b"\r\n.")


def message_candidates(path: Path) -> list[bytes]:
    """Every byte string that may be a message in the capture (DATA, BDAT, RETR/TOP, literals)."""
    found: list[bytes] = []
    for data in tcp_streams(path):
        for m in re.finditer(rb"(?im)^DATA\r?\n", data):
            end = data.find(b"\r\n.\r\n", m.end())
            if end >= 0:
                found.append(_unstuff(data[m.end() : end + 2]))
        for m in re.finditer(rb"(?m)^\+OK[^\r\n]*\r\n", data):
            end = data.find(b"\r\n.\r\n", m.end())
            if end >= 0:
                found.append(_unstuff(data[m.end() : end + 2]))
        for m in re.finditer(rb"~?\{(\d+)\+?\}\r\n", data):
            found.append(data[m.end() : m.end() + int(m.group(1))])
        chunks = bytearray()
        pos = 0
        for m in re.finditer(rb"(?im)^BDAT +(\d+)( +LAST)? *\r\n", data):
            if m.start() < pos:
                continue
            size = int(m.group(1))
            chunks += data[m.end() : m.end() + size]
            pos = m.end() + size
            if m.group(2):
                found.append(bytes(chunks))
                chunks = bytearray()
    return [m for m in found if m]


@cache
def messages_by_sha256(path: Path) -> dict[str, bytes]:
    return {hashlib.sha256(m).hexdigest(): m for m in message_candidates(path)}


def input_messages_by_sha256(path: Path) -> dict[str, bytes]:
    """Like messages_by_sha256, but also keyed by the hash without a trailing blank line.

    swaks sends its input plus one CRLF; the lab facts record the hash of the input.
    """
    out = dict(messages_by_sha256(path))
    for raw in messages_by_sha256(path).values():
        if raw.endswith(b"\r\n\r\n"):
            out.setdefault(hashlib.sha256(raw[:-2]).hexdigest(), raw)
    return out


# --------------------------------------------------------------------------- stdlib reference


def stdlib_leaves(raw: bytes) -> list[tuple[str, str, int, str | None, str | None]]:
    """(content type, md5, size, filename, disposition) of every non-multipart part, per the stdlib."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    out = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        data = part.get_payload(decode=True) or b""
        out.append(
            (
                part.get_content_type(),
                hashlib.md5(data).hexdigest(),
                len(data),
                part.get_filename(),
                part.get_content_disposition(),
            )
        )
    return out


def my_leaves(summary: MessageSummary) -> list[tuple[str, str, int, str | None, str | None]]:
    return [
        (p.content_type, p.md5 or "", p.decoded_bytes, p.filename, p.disposition)
        for p in summary.parts.walk()
        if p.is_leaf
    ]


def stdlib_addresses(msg: email.message.EmailMessage, name: str) -> tuple[str, ...]:
    header = msg[name]
    if header is None:
        return ()
    return tuple(str(a) for a in header.addresses)


def assert_like_stdlib(raw: bytes, summary: MessageSummary | None = None) -> None:
    summary = summary or summarize(raw)
    assert my_leaves(summary) == stdlib_leaves(raw)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    subject = msg["subject"]
    if subject is not None and "\ufffd" not in str(subject):  # raw 8-bit: we decode, it replaces
        assert summary.subject == str(subject)
    assert summary.to == stdlib_addresses(msg, "to")


# --------------------------------------------------------------------------- lab captures


def lab_facts() -> list[Path]:
    return sorted((SHARED / "samples-src" / "captures").glob("*.facts.json"))


def _fact_messages(facts: Path) -> Iterator[dict[str, Any]]:
    data = json.loads(facts.read_text())
    for session in data.get("sessions", []):
        for key in ("messages", "retrieved", "fetched", "appended"):
            for message in session.get(key) or []:
                if isinstance(message, dict) and message.get("sha256_as_sent"):
                    yield message


@needs_shared
def test_lab_capture_messages_match_facts() -> None:
    checked = 0
    for facts in lab_facts():
        pcap = facts.with_name(facts.name.replace(".facts.json", ".pcap"))
        found = input_messages_by_sha256(pcap)
        for fact in _fact_messages(facts):
            raw = found.get(fact["sha256_as_sent"])
            if raw is None:
                continue  # inside TLS, or framing the simple extractor does not handle
            summary = summarize(raw)
            assert fact["sha256_as_sent"] in (summary.sha256, hashlib.sha256(raw[:-2]).hexdigest())
            assert summary.subject == fact["subject"]
            assert summary.message_id == fact.get("message_id", summary.message_id)
            if fact.get("from"):
                assert summary.from_ == fact["from"]
            want = [(a["filename"], a["sha256"], a["size"]) for a in fact.get("attachments", [])]
            got = [(a.filename, a.sha256, a.bytes) for a in summary.attachments]
            assert got == want
            assert_like_stdlib(raw, summary)
            checked += 1
    assert checked >= 7, "the lab captures should yield several plaintext messages"


@needs_shared
def test_rfc2231_name_and_png_from_submission() -> None:
    pcap = SHARED / "samples-src" / "captures" / "smtp-submission-auth.pcap"
    raw = messages_by_sha256(pcap)["8a086c2a0199584ecb4c71c5fcab66ca4918212babb9e895cf290f944907899f"]
    summary = summarize(raw)
    names = {a.filename: a for a in summary.attachments}
    assert names["Übersicht.txt"].sha256 == "72c3d22df390eadca2b2af292b3bbf95e70092dfeb3230e8febf473c091ee7c4"
    png = names["chart.png"]
    assert png.sha256 == "ef6fd627d96174299987caa2e1ede4f22427f2f1ad6f4248b09ccf2faf215457"
    assert png.overhead_percent is not None and 30 < png.overhead_percent < 40
    assert summary.subject == "Grüße aus Köln – Quartalsbericht Q3 📊"
    assert summary.cc == ("Dave Example <dave@remote.example>", "Nobody <nosuch@remote.example>")
    assert summary.defects == ()


# --------------------------------------------------------------------------- the corpus


def corpus_expectations() -> list[Path]:
    return sorted((SHARED / "corpus").glob("*/*/expected.json"))


def _capture_of(expected: Path, data: dict[str, Any]) -> Path:
    return SHARED / "corpus" / data["file"]


@needs_shared
def test_corpus_messages_match_expected() -> None:
    """Subjects, leaf parts (type, size, MD5) and attachment hashes of every extractable message."""
    messages = attachments = 0
    for expected in corpus_expectations():
        data = json.loads(expected.read_text())
        capture = _capture_of(expected, data)
        if not capture.exists():
            continue
        found = messages_by_sha256(capture)
        mine_attachments: set[str] = set()
        for session in data["sessions"]:
            for fact in (session.get("tshark") or {}).get("messages_from_follow") or []:
                raw = found.get(fact["sha256"])
                if raw is None:
                    continue
                summary = summarize(raw)
                mine_attachments |= {a.sha256 for a in summary.attachments}
                assert summary.bytes == fact["bytes"]
                if "subject_decoded" in fact and "\ufffd" not in fact["subject_decoded"]:
                    assert summary.subject == fact["subject_decoded"]
                want = [(p["content_type"], p["decoded_bytes"], p["md5"]) for p in fact["parts"]]
                got = [(p.content_type, p.decoded_bytes, p.md5) for p in summary.parts.walk() if p.is_leaf]
                assert got == want, expected
                # the ground truth counts leaves; an embedded e-mail is listed as well (docs/messages.md)
                leaf_attachments = [a for a in summary.attachments if a.content_type not in EMBEDDED_MESSAGE_TYPES]
                assert len(leaf_attachments) == fact["attachment_count"]
                assert_like_stdlib(raw, summary)
                messages += 1
        for session in data["sessions"]:
            listed = (session.get("summary") or {}).get("attachments", {}).get("value") or []
            if listed and set(listed) <= mine_attachments:
                attachments += len(listed)
    assert messages >= 100
    assert attachments >= 5


@needs_shared
def test_every_extractable_corpus_message_matches_the_stdlib() -> None:
    """Whatever the extractor cuts out (garbage included) must summarise like the stdlib parses."""
    count = 0
    for capture in sorted((SHARED / "corpus").glob("*/*/*.pcap*")):
        for raw in messages_by_sha256(capture).values():
            assert_like_stdlib(raw)
            count += 1
    assert count >= 150


# --------------------------------------------------------------------------- generator messages


def _generator() -> Any:
    path = SHARED / "tools" / "gen_mail_pcap.py"
    spec = importlib.util.spec_from_file_location("gen_mail_pcap", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@needs_shared
def test_generator_messages_match_the_stdlib() -> None:
    gen = _generator()
    rng = random.Random(7)
    for i in range(25):
        raw, _, _ = gen.make_message(rng, rng.randint(600, 120_000), 1.7e9, i, "10.1.2.3", "mx.example")
        assert_like_stdlib(raw)
        lf = raw.replace(b"\r\n", b"\n")
        assert_like_stdlib(lf)
        assert [a.sha256 for a in summarize(lf).attachments] == [a.sha256 for a in summarize(raw).attachments]


# --------------------------------------------------------------------------- streaming


def _feed_in_pieces(raw: bytes, cuts: list[int]) -> MessageSummary:
    summarizer = MessageSummarizer()
    last = 0
    for cut in sorted(set(cuts)):
        summarizer.feed(raw[last:cut])
        last = cut
    summarizer.feed(raw[last:])
    return summarizer.close()


@pytest.fixture
def unbatched(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scan after every feed, so that every split reaches the scanner as it was fed."""
    monkeypatch.setattr(mime, "_BLOCK", 1)


@cache
def _submission_message() -> bytes:
    pcap = SHARED / "samples-src" / "captures" / "smtp-submission-auth.pcap"
    return messages_by_sha256(pcap)["8a086c2a0199584ecb4c71c5fcab66ca4918212babb9e895cf290f944907899f"]


@needs_shared
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_split_invariance_on_a_real_multipart_message(unbatched: None, data: st.DataObject) -> None:
    raw = _submission_message()
    whole = summarize(raw)
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=40))
    assert _feed_in_pieces(raw, cuts) == whole


@needs_shared
def test_one_byte_feeds_and_big_feeds_agree(unbatched: None) -> None:
    raw = _submission_message()
    whole = summarize(raw)
    summarizer = MessageSummarizer()
    for i in range(len(raw)):
        summarizer.feed(raw[i : i + 1])
    assert summarizer.close() == whole
    for boundary in [m.start() for m in re.finditer(rb"--", raw)]:
        for delta in (-2, -1, 0, 1, 2, 3):
            assert _feed_in_pieces(raw, [boundary + delta]) == whole


# --------------------------------------------------------------------------- API details

SIMPLE = (
    b"From: Alice Example <alice@local.example>\r\n"
    b"To: Bob <bob@remote.example>, carol@remote.example\r\n"
    b"Subject: =?iso-8859-1?q?Gr=FC=DFe?=\r\n"
    b"Date: Thu, 26 Nov 2026 13:22:27 +0000\r\n"
    b"Message-ID: <x1@local.example>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n'
    b"\r\n"
    b"preamble\r\n"
    b"--b1\r\n"
    b"Content-Type: text/plain; charset=iso-8859-1\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Sch=F6ne Gr=FC=DFe=\r\n"
    b" aus K=F6ln\r\n"
    b"--b1\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Disposition: attachment; filename*=utf-8''%C3%9Cbersicht.bin\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"AAECAwQFBgcICQ==\r\n"
    b"--b1--\r\n"
    b"epilogue\r\n"
)


def test_summary_fields() -> None:
    s = summarize(SIMPLE)
    assert s.subject == "Grüße"
    assert s.subject_raw == "=?iso-8859-1?q?Gr=FC=DFe?="
    assert s.from_ == "Alice Example <alice@local.example>"
    assert s.to == ("Bob <bob@remote.example>", "carol@remote.example")
    assert s.cc == ()
    assert s.date == "Thu, 26 Nov 2026 13:22:27 +0000"
    assert s.message_id == "<x1@local.example>"
    assert s.sha256 == hashlib.sha256(SIMPLE).hexdigest()
    assert s.md5 == hashlib.md5(SIMPLE).hexdigest()
    assert s.bytes == len(SIMPLE) and s.complete and not s.truncated
    assert s.text_preview == "Schöne Grüße aus Köln"
    assert [a.filename for a in s.attachments] == ["Übersicht.bin"]
    assert s.attachments[0].bytes == 10 and s.attachments[0].encoded_bytes == 16
    assert s.header_values("to") == ["Bob <bob@remote.example>, carol@remote.example"]
    assert s.headers[0] == ("From", "Alice Example <alice@local.example>")
    assert [p.path for p in s.parts.walk()] == ["1", "1.1", "1.2"]
    assert_like_stdlib(SIMPLE, s)


def test_json_form() -> None:
    js = summary_to_json(summarize(SIMPLE))
    assert set(js) == {
        "bytes", "complete", "missing_bytes", "truncated", "subject", "from", "to", "cc", "date",
        "message_id", "sha256", "attachments", "parts", "defects", "long_lines", "longest_line",
    }  # fmt: skip
    assert (js["long_lines"], js["longest_line"]) == (0, 0)
    assert set(js["attachments"][0]) == {
        "filename", "content_type", "encoding", "bytes", "encoded_bytes", "md5", "sha256",
    }  # fmt: skip
    assert js["parts"]["children"][1]["filename"] == "Übersicht.bin"
    json.dumps(js)


def test_incomplete_message() -> None:
    cut = SIMPLE[: SIMPLE.index(b"AAEC") + 6]
    s = MessageSummarizer()
    s.feed(cut)
    summary = s.close(complete=False, missing_bytes=120)
    assert not summary.complete and summary.missing_bytes == 120
    assert not summary.attachments[0].complete
    assert "CloseBoundaryNotFoundDefect" in summary.defects


def test_kept_bytes_are_capped() -> None:
    s = MessageSummarizer(mime.MimeLimits(max_kept_bytes=100))
    s.feed(SIMPLE)
    summary = s.close()
    assert summary.truncated and summary.kept == SIMPLE[:100]


def test_part_hook_receives_decoded_bytes() -> None:
    seen: list[tuple[PartStart, CollectingWriter]] = []

    def hook(start: PartStart) -> CollectingWriter:
        seen.append((start, CollectingWriter()))
        return seen[-1][1]

    s = MessageSummarizer(on_part=hook)
    s.feed(SIMPLE)
    summary = s.close()
    assert [start.path for start, _ in seen] == ["1.1", "1.2"]
    assert seen[1][0].is_attachment and seen[1][0].filename == "Übersicht.bin"
    assert bytes(seen[1][1].data) == bytes(range(10)) and seen[1][1].closed
    assert hashlib.sha256(seen[0][1].data).hexdigest() == summary.parts.children[0].sha256


def test_feed_after_close_is_a_programming_error() -> None:
    s = MessageSummarizer()
    s.close()
    with pytest.raises(ValueError, match="after close"):
        s.feed(b"x")


# --------------------------------------------------------------------------- header helpers

_WORD = st.text(alphabet="abcxyzABC019!#$%&'*+/=?^_`{|}~-", min_size=1, max_size=6)
_QUOTED = st.text(alphabet=" abcXY.,;:@<>()[]!#-~", max_size=10)


@st.composite
def _mailbox(draw: st.DrawFn) -> str:
    local = ".".join(draw(st.lists(_WORD, min_size=1, max_size=3)))
    domain = ".".join(draw(st.lists(_WORD, min_size=1, max_size=3)))
    addr = f"{local}@{domain}"
    form = draw(st.sampled_from(["bare", "angle", "name", "quoted"]))
    if form == "bare":
        return addr
    if form == "angle":
        return f"<{addr}>"
    if form == "name":
        return " ".join(draw(st.lists(_WORD, min_size=1, max_size=3))) + f" <{addr}>"
    return f'"{draw(_QUOTED)}" <{addr}>'


@settings(max_examples=150, deadline=None)
@given(st.lists(_mailbox(), min_size=1, max_size=3), st.sampled_from([", ", ",", " , "]))
def test_fast_address_rendering_equals_policy_default(boxes: list[str], sep: str) -> None:
    value = sep.join(boxes)
    fast = mime._fast_addresses(value)
    header = email.policy.default.header_factory("to", value)
    if fast is not None:
        assert fast == tuple(str(a) for a in header.addresses)


@settings(max_examples=150, deadline=None)
@given(
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126) | st.sampled_from("\t"), max_size=40)
)
def test_plain_subject_fast_path_equals_policy_default(value: str) -> None:
    assert mime._display_text(value) == str(email.policy.default.header_factory("subject", value))


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet='ab=;" \\*\t', max_size=30))
def test_parameter_split_equals_stdlib(value: str) -> None:
    stdlib_parseparam: Any = vars(email.message)["_parseparam"]
    assert mime._split_params(value) == stdlib_parseparam(value)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab=;\"\\ *'%", max_size=30), st.sampled_from(["name", "filename", "boundary"]))
def test_parameters_equal_email_message_getters(params: str, key: str) -> None:
    msg = email.message.Message()
    msg["Content-Type"] = "application/x-test; " + params
    msg["Content-Disposition"] = "attachment; " + params
    info = mime._mime_info(
        [
            ("Content-Type", msg["Content-Type"].encode()),
            ("Content-Disposition", msg["Content-Disposition"].encode()),
        ],
        "text/plain",
        [],
    )
    if key == "boundary":
        want = msg.get_boundary()
        assert (info.boundary.decode() if info.boundary is not None else None) == want
    else:
        assert info.filename == msg.get_filename()


def _long_lines_by_split(data: bytes) -> tuple[int, int]:
    """The obvious way: every line, its characters without the CR of a CRLF (the last line too)."""
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    chars = [len(line) - line.endswith(b"\r") for line in lines]
    long = [n for n in chars if n > 998]
    return len(long), max(long, default=0)


@pytest.mark.parametrize("seed", range(40))
def test_long_lines_counted_in_any_chunking(seed: int) -> None:
    """Lines over 998 characters (RFC 5322 §2.1.1) are counted exactly, whatever the chunks: lines of
    997..1001 characters, CRLF, bare LF and a CR split from its LF, large and small feeds alike."""
    rng = random.Random(seed)
    lines = []
    for _ in range(rng.randint(1, 60)):
        size = rng.choice([0, 76, 997, 998, 999, 1000, 1001, 1500, 70_000, rng.randint(0, 5000)])
        lines.append(b"x" * size + rng.choice([b"\r\n", b"\r\n", b"\n", b"\r"]))
    data = b"Subject: s\r\n\r\n" + b"".join(lines) + b"t" * rng.choice([0, 5, 999, 1200])
    summarizer = MessageSummarizer()
    at = 0
    while at < len(data):
        step = rng.choice([1, 2, 499, 1460, 65_536, 100_000, rng.randint(1, 4000)])
        summarizer.feed(data[at : at + step])
        at += step
    summary = summarizer.close()
    assert (summary.long_lines, summary.longest_line) == _long_lines_by_split(data)
    json_form = summary_to_json(summary)
    assert (json_form["long_lines"], json_form["longest_line"]) == _long_lines_by_split(data)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([0, 1, 2, 75, 76, 498, 499, 500, 501, 997, 998, 999, 1000, 1600]),
            st.integers(1, 300),
            st.sampled_from([b"\r\n", b"\n", b"\r"]),
        ),
        max_size=6,
    ),
    st.sampled_from([b"", b"t", b"t" * 999]),
    st.integers(1, 70_000),
)
def test_long_lines_counted_around_runs_of_equal_lines(runs: list[tuple[int, int, bytes]], end: bytes,
                                                       step: int) -> None:
    """Runs of lines of one width are passed over in strides (``_equal_lines``): the count stays exact
    at their edges, for widths on both sides of the window and of the limit, and in any chunking."""
    data = b"".join((b"x" * width + eol) * count for width, count, eol in runs) + end
    lines = mime._LineLengths()
    for at in range(0, len(data), step):
        lines.feed(data[at : at + step])
    lines.close()
    assert (lines.long_lines, lines.longest) == _long_lines_by_split(data)


@pytest.mark.parametrize("limits", [MimeLimits(), MimeLimits(max_kept_bytes=0), MimeLimits(max_kept_bytes=10),
                                    MimeLimits(max_preview_bytes=0)])
@pytest.mark.parametrize("message", [
    b"",
    b"\r\n",
    b"Subject: x\r\n",
    b"Content-Type: image/png\r\n\r\nabc",
    b"Subject: s\r\n\r\n" + b"x" * 70_000,
    b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nhi\r\n--b--\r\n",
])
def test_keep_false_is_the_kept_summary(limits: MimeLimits, message: bytes) -> None:
    """``keep=False`` (the forked report side) gives what ``kept_summary`` makes of the full summary, and
    ``message_md5=False`` differs from it only in the empty ``md5``."""
    from mailtrace.session import kept_summary

    full = MessageSummarizer(limits)
    light = MessageSummarizer(limits, keep=False)
    no_md5 = MessageSummarizer(limits, keep=False, message_md5=False)
    for summarizer in (full, light, no_md5):
        summarizer.feed(message)
    expected = kept_summary(full.close())
    assert light.close() == expected
    assert no_md5.close() == dataclasses.replace(expected, md5="")


def test_a_closed_summarizer_leaves_no_reference_cycles() -> None:
    """Its entity tree (children and parents) is taken apart at close: a message's decoders and buffers are
    freed by reference counting, not left to the cycle collector (39,000 objects per 600 benchmark sessions)."""
    import gc

    nested = SIMPLE.replace(b"--b1--", b'--b1\r\nContent-Type: multipart/alternative; boundary="b2"\r\n\r\n'
                                       b"--b2\r\n\r\ntext\r\n--b2--\r\n--b1--")
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what the collector finds stays in gc.garbage
    try:
        summarizer = MessageSummarizer()
        summarizer.feed(nested)
        summary = summarizer.close()
        del summarizer
        assert [p.content_type for p in summary.parts.children] == [
            "text/plain", "application/octet-stream", "multipart/alternative"]
        gc.collect()
        assert [o for o in gc.garbage if type(o).__module__.startswith("mailtrace")] == []
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def test_tiny_feeds_wait_for_their_block_in_little_memory() -> None:
    """A message fed a byte at a time (segments reach the summariser one by one under --follow, after TLS,
    or when the server talks during DATA) waits for its 64 KiB block as one buffer, not as 64,000 objects of
    their own (2.6 MB a message when they were)."""
    import tracemalloc

    body = b"Subject: x\r\n\r\n" + b"a" * (60 * 1024)
    summarizer = MessageSummarizer()
    tracemalloc.start()
    try:
        for i in range(len(body)):
            summarizer.feed(body[i : i + 1])
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < 256 * 1024
    assert summarizer.close().bytes == len(body)
