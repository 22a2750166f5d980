"""The output environment (terminal or pipe, colour, width) and the progress bar."""

from __future__ import annotations

import io
from pathlib import Path

from rich.text import Text

from mailtrace.capture.reader import open_capture
from mailtrace.render.output import Output, clean
from mailtrace.render.progress import MIN_BYTES, Progress


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_detect_a_pipe() -> None:
    out = Output.detect(stream=io.StringIO(), err=io.StringIO(), environ={})
    assert (out.isatty, out.color, out.width, out.err_isatty) == (False, False, None, False)
    assert Output.detect(stream=io.StringIO(), color=True, width=90, environ={}).color


def test_detect_a_terminal_and_no_color() -> None:
    tty = Output.detect(stream=FakeTty(), err=FakeTty(), environ={"TERM": "xterm"})
    assert tty.isatty and tty.color and tty.err_isatty
    assert tty.width is not None and tty.width > 0
    assert not Output.detect(stream=FakeTty(), environ={"NO_COLOR": "1"}).color
    assert not Output.detect(stream=FakeTty(), environ={"TERM": "dumb"}).color
    assert not Output.detect(stream=FakeTty(), color=False, environ={}).color
    assert Output.detect(stream=FakeTty(), width=77, environ={}).width == 77


def test_cells_wrap_under_themselves_and_pipes_do_not() -> None:
    body = Text("one two three four five six seven eight nine ten eleven twelve thirteen fourteen")
    stream = io.StringIO()
    Output(stream, width=40).cells(Text("prefix: "), body)
    lines = stream.getvalue().splitlines()
    assert len(lines) > 1 and all(len(line) <= 40 for line in lines)
    assert all(line.startswith(" " * 8) for line in lines[1:])
    assert " ".join(" ".join(lines).split()) == "prefix: " + body.plain
    piped = io.StringIO()
    Output(piped).cells(Text("prefix: "), body)
    assert piped.getvalue() == "prefix: " + body.plain + "\n"


def test_pieces_break_between_parts_and_wrap_a_part_longer_than_a_line() -> None:
    """A session header's TLS summary is one part of 76 characters: at 40 columns it ran past the edge."""
    parts = [Text("0.061 s"), Text("reset"),
             Text("implicit TLS: TLS 1.3, TLS_AES_256_GCM_SHA384, SNI mx.remote.example"), Text("29 packets")]
    stream = io.StringIO()
    Output(stream, width=40).pieces(parts, separator=Text(" · "), indent=2)
    assert stream.getvalue().splitlines() == [
        "  0.061 s · reset",
        "    implicit TLS: TLS 1.3,",
        "      TLS_AES_256_GCM_SHA384, SNI",
        "      mx.remote.example",
        "    29 packets",
    ]
    piped = io.StringIO()
    Output(piped).pieces(parts, separator=Text(" · "), indent=2)
    assert piped.getvalue() == "  " + " · ".join(p.plain for p in parts) + "\n"


def test_clean_maps_every_character_as_its_table_says() -> None:
    """``clean`` skips the table for text ``str.isprintable`` accepts: no character the table maps may be
    printable, and every character of Unicode must come out as the table alone would give it."""
    from mailtrace.render.output import _SAFE

    for start in range(0, 0x110000, 64):
        chunk = "".join(chr(c) for c in range(start, start + 64))
        for ch in chunk:
            assert clean(ch) == ch.translate(_SAFE), hex(ord(ch))
        assert clean("ab" + chunk) == ("ab" + chunk).translate(_SAFE)


def test_clean_is_one_for_one() -> None:
    raw = "a\x1b[31mb\rc\x00\td\u202ee\x85f"
    assert clean(raw) == "a␛[31mb␍c␀ d�e�f"
    assert len(clean(raw)) == len(raw)
    stream = io.StringIO()
    Output(stream, color=True).write(Text(raw, "client"))
    assert "\x1b[31m" not in stream.getvalue() and "␛[31m" in stream.getvalue()


def test_progress_only_for_long_files_on_a_terminal(tmp_path: Path, captures: Path) -> None:
    small = open_capture(str(captures / "smtp-relay-seed-story.pcap"))
    small.stream.close()
    assert small.size is not None and small.size < MIN_BYTES
    with Progress(FakeTty(), enabled=True) as progress:
        assert progress.callback(small) is None
    big = tmp_path / "big.pcap"
    big.write_bytes((captures / "smtp-relay-seed-story.pcap").read_bytes())
    with big.open("ab") as f:
        f.truncate(MIN_BYTES + 1)  # sparse tail: only the size matters here
    capture = open_capture(str(big))
    assert Progress(io.StringIO(), enabled=False).callback(capture) is None
    err = FakeTty()
    with Progress(err, enabled=True) as progress:
        update = progress.callback(capture)
        assert update is not None
        frames = capture.frames()
        next(frames)
        next(frames)  # the position moves on as frames are taken (the file is memory-mapped)
        position = capture.position()
        frames.close()
        assert position is not None and 24 < position < MIN_BYTES
        update(16384)
        with progress.suspend():
            pass
    assert "big.pcap" in err.getvalue()
