"""DotBody against a plain reference model, however the bytes are cut.

DotBody reads a dot-stuffed body in pieces and takes shortcuts for clean CRLF bodies (it skips the
look-alike search while no bare CR or LF has been seen). The reference below reads the whole body at
once, byte by byte, so any shortcut that misses a look-alike split across pieces, or a bare line
ending in an earlier piece, shows up as a difference.
"""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from mailtrace.protocols.base import DotBody

CR, LF = 13, 10
MARKER = b"\r\n.\r\n"


def reference(data: bytes, flushed: bool) -> tuple[bytes, int, int, int, list[str], int]:
    """(body, stuffed, bare LF, bare CR, look-alikes, LF bytes in the body) of ``data``, read in one go."""
    text = b"\r\n" + data  # the CRLF before the body counts for the marker
    if not flushed:
        text = text[: text.index(MARKER) + 2]
    bare_lf = sum(1 for i, c in enumerate(text) if c == LF and (i == 0 or text[i - 1] != CR))
    # a CR last in a flushed body never learns what follows it: not counted
    bare_cr = sum(1 for i, c in enumerate(text) if c == CR and i + 1 < len(text) and text[i + 1] != LF)
    names: list[str] = []
    for i, c in enumerate(text):
        if c != ord(".") or i == 0 or text[i - 1] not in (CR, LF):
            continue
        right = text[i + 1 : i + 3] if text[i + 1 : i + 3] == b"\r\n" else text[i + 1 : i + 2]
        if not right or right[0] not in (CR, LF):
            continue
        left = text[i - 2 : i] if text[i - 2 : i] == b"\r\n" else text[i - 1 : i]
        seq = left + b"." + right
        shown = seq.decode().replace("\r", "<CR>").replace("\n", "<LF>")
        if seq != MARKER and shown not in names:
            names.append(shown)
    body = text.replace(b"\r\n.", b"\r\n")[2:]
    return body, text.count(b"\r\n."), bare_lf, bare_cr, names, body.count(b"\n")


def read(pieces: list[bytes], flush: bool) -> tuple[bytes, int, int, int, list[str], int]:
    body = DotBody()
    out = []
    for piece in pieces:
        data, rest = body.feed(piece)
        out.append(data)
        if rest is not None:
            break
    if flush:
        out.append(body.flush())
    return b"".join(out), body.stuffed, body.bare_lf, body.bare_cr, body.smuggling, body.newlines


def cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = [0, *sorted({c % (len(data) + 1) for c in cuts}), len(data)]
    return [data[i:j] for i, j in itertools.pairwise(points)]


CLEAN = st.sampled_from([b"Subject: hi\r\n", b"end of a sentence.\r\n", b"..stuffed\r\n", b"\r\n",
                         b"QUFBQUFBQUFBQUFB\r\n" * 8, b"a line with a dot. in it\r\n"])
NOISE = st.binary(max_size=12).map(lambda b: bytes(b".\r\na"[x % 4] for x in b))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(CLEAN, CLEAN, NOISE), max_size=20), st.lists(st.integers(0, 10_000), max_size=12),
       st.booleans())
def test_dotbody_matches_the_reference_whatever_the_cuts(parts: list[bytes], cuts: list[int], flush: bool) -> None:
    body = b"".join(parts)
    end = (b"\r\n" + body).find(MARKER)
    if end >= 0:
        body = body[:end]  # the body ends at its first marker
    data = body if flush else body + MARKER
    assert read(cut(data, cuts), flush) == reference(data, flush)


CLEAN_CHUNK = b"QUFBQUFBQUFBQUFBQUFBQUFBQUFB. x\r\n" * 2048  # 64 KiB of CRLF lines, dots but no look-alike


def test_lookalike_after_clean_chunks_split_at_every_offset() -> None:
    """Clean pieces first (the search is skipped), then a look-alike cut at each of its offsets."""
    for lookalike in (b"\r\n.\n", b"\n.\r\n", b"\r.\r", b"\n.\n", b"\r\n.\rx"):
        tail = b"hi" + lookalike + b"more\r\n"
        data = CLEAN_CHUNK * 3 + tail + MARKER
        base = len(CLEAN_CHUNK) * 3
        for i in range(base - 3, base + len(tail) + 1):
            pieces = [CLEAN_CHUNK, CLEAN_CHUNK, data[2 * len(CLEAN_CHUNK) : i], data[i:]]
            assert read(pieces, False) == reference(data, False), (lookalike, i)


def test_bare_lf_in_an_earlier_piece_keeps_the_search_on() -> None:
    """A bare LF early on, then only CRLF lines, then a dot between a bare CR and a CRLF pieces later."""
    data = b"a\nb\r\n" + CLEAN_CHUNK + b"x\r.\r\ny\r\n" + MARKER
    pieces = cut(data, [3, 40, len(CLEAN_CHUNK), len(CLEAN_CHUNK) + 8])
    got = read(pieces, False)
    assert got == reference(data, False)
    assert got[4] == ["<CR>.<CR><LF>"] and got[2] == 1


def test_flushed_body_ending_in_a_dot_and_cr_after_clean_pieces() -> None:
    """No marker: a dot followed by a CR that is last in the body is still judged (final piece)."""
    data = CLEAN_CHUNK + b"x\r\n.\r"
    for i in range(len(CLEAN_CHUNK) - 2, len(data) + 1):
        got = read([data[:i], data[i:]], True)
        assert got == reference(data, True), i
        assert got[4] == ["<CR><LF>.<CR>"]


def test_stuffed_dots_and_marker_split_at_every_pair_of_offsets() -> None:
    """A line's leading dot is found by one scan that starts at the bytes already emitted: cut anywhere
    (even a CR, its LF and the dot into three pieces) it is still removed, and the marker still ends."""
    data = b"..a\r\n.b\r\n\r\n..\r\nx.\r\n.\r\ntail"
    for i in range(len(data) + 1):
        for j in range(i, len(data) + 1):
            pieces = [data[:i], data[i:j], data[j:]]
            assert read(pieces, False) == reference(data, False), (i, j)
            if MARKER not in b"\r\n" + data[:j]:  # a body cut before its marker, flushed
                assert read(pieces[:2], True) == reference(data[:j], True), (i, j)
