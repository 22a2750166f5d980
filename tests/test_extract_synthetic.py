"""``mailtrace extract`` on synthetic captures: options, the output directory's rules, memory limits,
lost packets, many messages in flight, and hostile senders (names, MIME structure) — nothing may be
written outside DIR and nothing may crash."""

from __future__ import annotations

import email
import email.policy
import json
import os
import tracemalloc
from dataclasses import replace
from pathlib import Path

import pytest

from mailtrace import extract as extract_module
from mailtrace.commands.extract import id_ranges
from mailtrace.config import Config
from mailtrace.extract import (
    ExtractError,
    Extractor,
    expected_partial,
    header_only,
    incomplete_reason,
    missing_known,
)
from mailtrace.filters import parse_ids
from mailtrace.mime import MimeLimits
from mailtrace.render.message import message_details
from mailtrace.session import Session
from tests.mailcaps import (
    MSS,
    attachment,
    created_outside,
    dot_stuff,
    extract_cli,
    extract_in_process,
    files_under,
    index_of,
    interleaved,
    mime_message,
    sha256,
    smtp_capture,
    smtp_steps,
    snapshot,
)
from tests.pcapgen import Capture, Tcp
from tests.support import run_cli, sample
from tests.term_pcap import write_pcap
from tests.term_render import analyze

PNG = bytes(range(256)) * 40


def simple_capture(tmp_path: Path, *messages: bytes, name: str = "capture.pcap") -> Path:
    return smtp_capture(list(messages)).write(tmp_path / name)


def one_attachment_message(data: bytes = PNG, name: bytes = b'filename="chart.png"') -> bytes:
    return mime_message([b"Content-Type: text/plain\r\n\r\nhello", attachment(name, data, b"image/png")])


# --------------------------------------------------------------------------- options and errors


def test_messages_only_and_attachments_only(tmp_path: Path) -> None:
    raw = one_attachment_message()
    pcap = simple_capture(tmp_path, raw)
    result = extract_cli(tmp_path / "m", pcap, args=("--messages-only",))
    assert result.exit_code == 0, result.stderr
    assert files_under(tmp_path / "m") == {"index.json", "s0001-m01.eml"}
    assert index_of(tmp_path / "m")["messages"][0]["attachments"] == []
    result = extract_cli(tmp_path / "a", pcap, args=("--attachments-only",))
    assert result.exit_code == 0, result.stderr
    assert files_under(tmp_path / "a") == {"index.json", "s0001-m01", "s0001-m01/chart.png"}
    entry = index_of(tmp_path / "a")["messages"][0]
    assert entry["eml"] is None and entry["sha256"] == sha256(raw)
    assert (tmp_path / "a" / "s0001-m01" / "chart.png").read_bytes() == PNG
    both = extract_cli(tmp_path / "b", pcap, args=("--messages-only", "--attachments-only"))
    assert both.exit_code == 2 and "exclude each other" in both.stderr and len(both.stderr.splitlines()) == 1
    assert not (tmp_path / "b").exists()


def test_session_and_protocol_filters(tmp_path: Path) -> None:
    out = tmp_path / "s2"
    assert extract_cli(out, sample("smtp-submission-auth.pcap"), args=("--session", "2")).exit_code == 0
    assert files_under(out) == {"index.json", "s0002-m01.eml", "s0002-m01", "s0002-m01/chart.png",
                                "s0002-m01/Übersicht.txt"}
    assert [e["session"] for e in index_of(out)["messages"]] == [2]
    out = tmp_path / "pop"
    assert extract_cli(out, sample("mixed-all.pcap"), args=("-p", "pop3")).exit_code == 0
    entries = index_of(out)["messages"]
    assert entries and {e["protocol"] for e in entries} == {"pop3"}
    assert index_of(out)["options"]["protocols"] == ["pop3"]
    out = tmp_path / "two"
    assert extract_cli(out, sample("mixed-all.pcap"), args=("-p", "pop3", "--protocol", "imap")).exit_code == 0
    assert {e["protocol"] for e in index_of(out)["messages"]} == {"pop3", "imap"}
    assert not [p for p in (tmp_path / "two").iterdir() if p.name.startswith(".")]  # no staging left behind
    out = tmp_path / "upper"  # as analyze -p, the protocol's case does not matter
    assert extract_cli(out, sample("mixed-all.pcap"), args=("-p", "POP3")).exit_code == 0
    assert index_of(out)["options"]["protocols"] == ["pop3"] and index_of(out)["messages"] == entries


def _analyzed_with_messages(*args: str) -> set[int]:
    """The ids of the sessions with messages that ``analyze --format json ARGS`` shows."""
    result = run_cli("analyze", "--format", "json", *args)
    assert result.exit_code == 0, result.stderr
    return {s["id"] for s in json.loads(result.stdout)["sessions"] if s["messages"]}


@pytest.mark.parametrize("sessions", [("2-3",), ("1,4",), ("1,4", "5-9"), ("3",), (" 2 , 5 ",)])
def test_session_takes_what_analyze_takes(tmp_path: Path, sessions: tuple[str, ...]) -> None:
    """``--session`` reads ids, lists and ranges, repeatable, exactly as ``analyze --session`` does."""
    pcap = str(sample("mixed-all.pcap"))
    args = tuple(a for value in sessions for a in ("--session", value))
    result = extract_cli(tmp_path / "o", pcap, args=args)
    assert result.exit_code == 0, result.stderr
    index = index_of(tmp_path / "o")
    shown = _analyzed_with_messages(pcap, *args)
    assert shown and {e["session"] for e in index["messages"]} == shown
    assert index["options"]["sessions"] == sorted(parse_ids(sessions))  # the key keeps its shape: ids
    assert set(index) >= {"format", "version", "messages", "captures", "options", "totals"}
    assert result.stdout.startswith(f"Extracted {len(shown)} message")


@pytest.mark.parametrize("value", ["2-x", "3-1", "a", "1;2"])
def test_a_session_value_that_is_not_an_id_is_refused_before_writing(tmp_path: Path, value: str) -> None:
    result = extract_cli(tmp_path / "o", sample("mixed-all.pcap"), args=("--session", value))
    assert result.exit_code == 2 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(f"mailtrace: --session {value!r}: ")
    assert not (tmp_path / "o").exists()
    assert run_cli("analyze", str(sample("mixed-all.pcap")), "--session", value).exit_code == 2  # analyze too


def test_a_session_that_matches_nothing_is_a_note_not_a_success(tmp_path: Path) -> None:
    """As ``analyze --session 99`` (exit 0, "no session matches the filter"): exit 0, one note on stderr,
    no "Extracted …" summary; the index is written and lists no messages."""
    pcap = sample("mixed-all.pcap")
    result = extract_cli(tmp_path / "o", pcap, args=("--session", "99"))
    assert result.exit_code == 0
    assert result.stdout == ""
    index = tmp_path / "o" / "index.json"
    assert result.stderr.splitlines() == [
        "mailtrace: no session matches --session 99 (the captures hold 6 sessions, numbered 1 to 6; see "
        f"`mailtrace analyze`): nothing extracted ({index.resolve()} lists no messages)"]
    assert index_of(tmp_path / "o")["messages"] == [] and index_of(tmp_path / "o")["options"]["sessions"] == [99]
    assert files_under(tmp_path / "o") == {"index.json"}
    analyzed = run_cli("analyze", str(pcap), "--session", "99")
    assert analyzed.exit_code == 0 and "no session matches the filter" in analyzed.stdout
    # a session that exists but is cut away by -p is the same outcome: nothing matched the filters
    result = extract_cli(tmp_path / "p", pcap, args=("--session", "2", "-p", "pop3"))
    assert result.exit_code == 0 and result.stdout == ""
    assert result.stderr.startswith("mailtrace: no session matches --session 2 -p pop3: nothing extracted (")
    one = extract_cli(tmp_path / "one", simple_capture(tmp_path, one_attachment_message()), args=("--session", "4-5"))
    assert one.exit_code == 0 and "(the captures hold 1 session, numbered 1; see" in one.stderr


def test_sessions_that_do_not_exist_beside_ones_that_do(tmp_path: Path) -> None:
    """The sessions that exist are extracted (summary, exit 0); the others are named in a note on stderr."""
    result = extract_cli(tmp_path / "o", sample("smtp-submission-auth.pcap"), args=("--session", "2,7-9",
                                                                                        "--session", "11"))
    assert result.exit_code == 0
    assert result.stdout.startswith("Extracted 1 message from 1 session into ")
    assert result.stderr.splitlines() == ["mailtrace: --session 7-9,11: no such session (the captures hold 2 "
                                          "sessions, numbered 1 to 2; see `mailtrace analyze`)"]
    assert [e["session"] for e in index_of(tmp_path / "o")["messages"]] == [2]


def test_id_ranges_writes_ids_as_session_takes_them() -> None:
    assert id_ranges([9, 1, 4, 5, 6, 7, 4]) == "1,4-7,9"
    assert id_ranges([3]) == "3" and id_ranges([]) == ""
    assert parse_ids([id_ranges([1, 2, 3, 8, 10, 11])]) == {1, 2, 3, 8, 10, 11}


def test_non_empty_directory_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = extract_cli(out, sample("smtp-submission-auth.pcap"))
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1
    assert "is not empty" in result.stderr and "--overwrite" in result.stderr
    assert files_under(out) == {"notes.txt"}
    afile = tmp_path / "file"
    afile.write_text("x")
    result = extract_cli(afile, sample("smtp-submission-auth.pcap"))
    assert result.exit_code == 2 and "not a directory" in result.stderr
    result = extract_cli(out, sample("smtp-submission-auth.pcap"), args=("--overwrite",))
    assert result.exit_code == 0
    assert (out / "notes.txt").read_text() == "mine"  # --overwrite replaces our names only
    assert "s0001-m01.eml" in files_under(out)


def test_missing_capture_and_bad_port(tmp_path: Path) -> None:
    result = extract_cli(tmp_path / "o", tmp_path / "nope.pcap")
    assert result.exit_code == 2 and "nope.pcap" in result.stderr
    result = extract_cli(tmp_path / "o", sample("ipv6.pcap"), args=("--port", "x=smtp"))
    assert result.exit_code == 2 and "--port" in result.stderr


def test_overwrite_replaces_planted_links_without_following_them(tmp_path: Path) -> None:
    pcap = simple_capture(tmp_path, one_attachment_message())
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    victim_dir = tmp_path / "victim"
    victim_dir.mkdir()
    (victim_dir / "chart.png").write_text("precious too")
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(victim, out / "s0001-m01.eml")
    os.symlink(victim_dir, out / "s0001-m01")
    os.symlink(victim, out / "index.json")
    before = snapshot(tmp_path)
    result = extract_cli(out, pcap, args=("--overwrite",))
    assert result.exit_code == 0, result.stderr
    assert victim.read_text() == "precious"
    assert (victim_dir / "chart.png").read_text() == "precious too"
    for name in ("s0001-m01.eml", "s0001-m01", "index.json"):
        assert not (out / name).is_symlink()
    assert (out / "s0001-m01" / "chart.png").read_bytes() == PNG
    assert not created_outside(before, tmp_path, out)


def test_output_directory_that_is_a_dangling_link(tmp_path: Path) -> None:
    os.symlink(tmp_path / "nowhere", tmp_path / "link")
    with pytest.raises(ExtractError, match="dangling"):
        Extractor(tmp_path / "link")
    assert not (tmp_path / "nowhere").exists()


# --------------------------------------------------------------------------- memory and streaming


def test_message_over_the_memory_limit_is_written_whole(tmp_path: Path) -> None:
    """Beyond MimeLimits.max_kept_bytes the summary comes from the stream (truncated); the .eml is whole."""
    payload = os.urandom(300_000)
    raw = one_attachment_message(payload, b'filename="big.bin"')
    pcap = simple_capture(tmp_path, raw)
    limits = MimeLimits(max_kept_bytes=16 * 1024)
    extractor, sessions = extract_in_process(tmp_path / "small", pcap, config=Config(mime=limits))
    summary = sessions[0].messages[0].summary
    assert summary.truncated and summary.bytes == len(raw)  # sessions drop the kept bytes themselves
    assert summary.sha256 == sha256(raw)
    assert [a.sha256 for a in summary.attachments] == [sha256(payload)]  # decoded from the stream
    entry = index_of(tmp_path / "small")["messages"][0]
    assert entry["truncated"] and extractor.totals.truncated == 1
    assert (tmp_path / "small" / "s0001-m01.eml").read_bytes() == raw
    assert (tmp_path / "small" / "s0001-m01" / "big.bin").read_bytes() == payload
    _, roomy = extract_in_process(tmp_path / "roomy", pcap, config=Config(mime=MimeLimits(max_kept_bytes=1 << 20)))
    assert not roomy[0].messages[0].summary.truncated  # the same message under a limit above its size


@pytest.mark.slow
def test_a_large_message_never_sits_in_memory(tmp_path: Path) -> None:
    """16 MB through the whole pipeline: peak Python memory stays well under the message size."""
    payload = os.urandom(12 * 1024 * 1024)
    raw = one_attachment_message(payload, b'filename="big.bin"')
    pcap = simple_capture(tmp_path, raw)
    del payload
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        extract_in_process(tmp_path / "out", pcap)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(raw) > 16_000_000
    assert peak < len(raw) // 2, peak
    assert sha256((tmp_path / "out" / "s0001-m01.eml").read_bytes()) == sha256(raw)


def test_many_messages_in_flight_share_a_few_open_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """More concurrent messages than MAX_OPEN_FILES: files are closed and reopened, bytes stay exact."""
    monkeypatch.setattr(extract_module, "MAX_OPEN_FILES", 2)
    messages = [one_attachment_message(bytes([i]) * (5000 + i * 1000), f'filename="f{i}.bin"'.encode())
                for i in range(5)]
    pcap = interleaved([smtp_steps([m]) for m in messages]).write(tmp_path / "c.pcap")
    out = tmp_path / "out"
    assert extract_cli(out, pcap).exit_code == 0
    entries = index_of(out)["messages"]
    assert len(entries) == 5
    for entry in entries:
        i = int(entry["client"]["ip"].rsplit(".", 1)[1]) - 1
        assert (out / entry["eml"]["path"]).read_bytes() == messages[i]
        (a,) = entry["attachments"]
        assert a["path"] == f"s{entry['session']:04d}-m01/f{i}.bin"
        assert (out / a["path"]).read_bytes() == bytes([i]) * (5000 + i * 1000)


def test_lost_segment_is_a_gap_not_zeros(tmp_path: Path) -> None:
    raw = one_attachment_message(os.urandom(6000))
    body = dot_stuff(raw)
    cap = Capture()
    conv = Tcp(cap).handshake()
    for who, data in smtp_steps([])[:3]:
        (conv.c if who == "c" else conv.s)(data)
    for line in (b"MAIL FROM:<a@example.com>\r\n", b"RCPT TO:<b@example.org>\r\n", b"DATA\r\n"):
        conv.c(line)
        conv.s(b"354 go\r\n" if line == b"DATA\r\n" else b"250 ok\r\n")
    segments = [body[i : i + MSS] for i in range(0, len(body), MSS)]
    for n, segment in enumerate(segments):
        conv.c(segment, drop=n == 2)
    conv.s(b"250 queued\r\n")
    conv.fin()
    out = tmp_path / "out"
    result = extract_cli(out, cap.write(tmp_path / "c.pcap"))
    assert result.exit_code == 0
    (entry,) = index_of(out)["messages"]
    written = (out / entry["eml"]["path"]).read_bytes()
    assert written == body[: 2 * MSS] + body[3 * MSS : -3]  # the hole is left out, never zero-filled
    assert not entry["complete"] and entry["missing_bytes"] == len(segments[2])
    assert entry["incomplete_reason"] == f"{len(segments[2]):,} bytes of it are not in the capture (TCP gap)"
    assert "bytes of it are not in the capture" in result.stdout


# --------------------------------------------------------------------------- hostile senders

HOSTILE_NAMES = [
    (b'filename="../../x"', "x"),
    (b'filename="/etc/passwd"', "passwd"),
    (b'filename="CON"', "_CON"),
    (b'filename="a\x00b.txt"', "ab.txt"),
    (b"filename*=utf-8''..%2F..%2Fevil%00.sh", "evil.sh"),
    (b'filename="' + b"n" * 5000 + b'.txt"', None),
    (b'filename=".."', "part-1.7.bin"),
    (b'filename="s0001-m01.eml"', "s0001-m01.eml"),
    (b'filename="\x1b[31mred\xe2\x80\xaetxt.exe"', "[31mredtxt.exe"),
    (b'filename="same"', "same"),
    (b'filename="SAME"', "SAME (2)"),
]


def test_hostile_attachment_names_stay_inside(tmp_path: Path) -> None:
    payloads = [os.urandom(100 + i) for i in range(len(HOSTILE_NAMES))]
    raw = mime_message([attachment(param, data) for (param, _), data in zip(HOSTILE_NAMES, payloads, strict=True)])
    pcap = simple_capture(tmp_path, raw)
    out = tmp_path / "deep" / "out"
    before = snapshot(tmp_path)
    result = extract_cli(out, pcap)
    assert result.exit_code == 0, result.stderr
    assert not created_outside(before, tmp_path, out)
    entry = index_of(out)["messages"][0]
    assert (out / entry["eml"]["path"]).read_bytes() == raw
    names = [a["path"].split("/", 1)[1] for a in entry["attachments"]]
    assert len(names) == len(HOSTILE_NAMES)
    for name, (_, expected), a, data in zip(names, HOSTILE_NAMES, entry["attachments"], payloads, strict=True):
        if expected is not None:
            assert name == expected
        assert "/" not in name and "\x00" not in name and len(name.encode()) <= 120
        assert (out / a["path"]).read_bytes() == data and a["sha256"] == sha256(data)
    assert names[5].endswith(".txt") and names[5].startswith("nnnn")
    assert entry["attachments"][0]["filename"] == "../../x"  # the name as sent stays in the index


def nested(depth: int) -> bytes:
    """multipart inside multipart, ``depth`` levels, with an attachment at the bottom."""
    inner = attachment(b'filename="deep.bin"', b"bottom")
    for level in range(depth):
        b = f"lvl{level}".encode()
        inner = (b'Content-Type: multipart/mixed; boundary="' + b + b'"\r\n\r\n--' + b + b"\r\n" + inner
                 + b"\r\n--" + b + b"--")
    return b"From: a@example.com\r\nSubject: deep\r\nMIME-Version: 1.0\r\n" + inner + b"\r\n"


HOSTILE_MIME = {
    "nested-100": nested(100),
    "nested-10": nested(10),
    "header-10MB": b"From: a@example.com\r\nX-Long: " + b"A" * (10 * 1024 * 1024)
                   + b"\r\nSubject: long\r\n\r\nbody\r\n",
    "bad-base64": mime_message([b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
                                b'Content-Disposition: attachment; filename="bad.bin"\r\n\r\n'
                                b"QUJD*RE$VG!\r\n=SGVsbG8=QQ\r\nA"]),
    "charsets": mime_message([b"Content-Type: text/plain; charset=x-no-such-charset\r\n\r\n\xff\xfe caf\xe9",
                              b"Content-Type: text/plain; charset=utf-8\r\n\r\ncaf\xe9 latin-1 bytes",
                              b'Content-Type: text/plain; charset="base64"\r\n\r\nnot a text codec',
                              b"Content-Type: text/plain; charset=\"utf-8\x00\"\r\n\r\nnul in charset"],
                             headers=b"X-Bad: =?x-unknown?q?caf=E9?= \xe9t\xe9\r\n"),
    "no-boundary": b"Subject: nb\r\nContent-Type: multipart/mixed\r\n\r\n--x\r\nbody\r\n",
    "unclosed": b'Subject: u\r\nContent-Type: multipart/mixed; boundary="q"\r\n\r\n--q\r\n'
                b'Content-Disposition: attachment; filename="cut.txt"\r\n\r\nno end',
}
"""Message bodies no well-behaved client sends (each ends with CRLF, as SMTP requires)."""


@pytest.mark.parametrize("kind", sorted(HOSTILE_MIME))
def test_hostile_mime_is_extracted_exactly(kind: str, tmp_path: Path) -> None:
    raw = HOSTILE_MIME[kind]
    raw = raw if raw.endswith(b"\r\n") else raw + b"\r\n"
    pcap = simple_capture(tmp_path, raw)
    out = tmp_path / "out"
    before = snapshot(tmp_path)
    result = extract_cli(out, pcap)
    assert result.exit_code == 0, result.stderr
    assert not created_outside(before, tmp_path, out)
    entry = index_of(out)["messages"][0]
    assert (out / entry["eml"]["path"]).read_bytes() == raw and entry["complete"]
    defects = " | ".join(entry["defects"])
    attachments = {a["path"].rsplit("/", 1)[1]: (out / a["path"]).read_bytes() for a in entry["attachments"]}
    if kind == "nested-100":
        assert "nesting too deep" in defects and attachments == {}
    elif kind == "nested-10":
        assert attachments == {"deep.bin": b"bottom"} and not defects
    elif kind == "header-10MB":
        assert "line too long" in defects and entry["subject"] == "long"
    elif kind == "bad-base64":
        assert "InvalidBase64CharactersDefect" in defects
        stdlib = email.message_from_bytes(raw, policy=email.policy.default).get_payload()[0]
        assert attachments["bad.bin"] == stdlib.get_payload(decode=True) == b"ABCDEFHello"
    elif kind == "charsets":
        assert "unknown charset 'x-no-such-charset' (part 1.1)" in defects
        assert "unknown charset 'base64' (part 1.3)" in defects
    elif kind == "no-boundary":
        assert "NoBoundaryInMultipartDefect" in defects
    elif kind == "unclosed":
        assert "CloseBoundaryNotFoundDefect" in defects and attachments == {"cut.txt": b"no end"}
    session_ids = {e["session"] for e in index_of(out)["messages"]}
    assert session_ids == {1}


def test_hostile_messages_render_in_the_detail_view(tmp_path: Path) -> None:
    """The detail view of every hostile message renders (no exception) and stays bounded."""
    from io import StringIO

    from rich.console import Console

    messages = [m if m.endswith(b"\r\n") else m + b"\r\n" for m in HOSTILE_MIME.values()]
    pcap = simple_capture(tmp_path, *messages)
    _, sessions = extract_in_process(tmp_path / "out", pcap)
    (session,) = sessions
    assert len(session.messages) == len(messages)
    for record in session.messages:
        buffer = StringIO()
        Console(file=buffer, width=100, color_system=None).print(message_details(session, record, width=100,
                                                                                 color=False))
        text = buffer.getvalue()
        assert f"Message {record.index + 1} of session 1" in text
        assert len(text) < 200_000
    assert json.dumps(index_of(tmp_path / "out"))  # the index is valid JSON with every oddity in it


def test_disk_full_stops_with_one_line_and_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pcap = simple_capture(tmp_path, one_attachment_message())

    def full(self: object, data: bytes, /) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(extract_module._PooledFile, "write", full)
    out = tmp_path / "out"
    result = extract_cli(out, pcap)
    assert result.exit_code == 1
    assert result.stderr.strip() == f"mailtrace: writing to {out} failed: No space left on device"
    assert files_under(out) == set()  # the staging folder is gone, no index


def test_interrupt_removes_the_staging_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mailtrace.pipeline import Analyzer

    pcap = simple_capture(tmp_path, one_attachment_message(), one_attachment_message(b"second"))
    real = Analyzer.run

    def interrupted(self: Analyzer, captures: object) -> object:
        for n, session in enumerate(real(self, captures)):  # type: ignore[arg-type]
            yield session
            if n == 0:
                raise KeyboardInterrupt

    monkeypatch.setattr(Analyzer, "run", interrupted)
    out = tmp_path / "out"
    result = extract_cli(out, pcap)
    assert result.exit_code == 130 and "interrupted" in result.stderr
    assert not [p for p in out.iterdir() if p.name.startswith(".mailtrace-partial-")]
    assert "index.json" not in files_under(out)


# --------------------------------------------------------------------------- why a message is incomplete

HEADER = b"From: Alice <alice@example.org>\r\nSubject: Hello\r\n\r\n"


def _imap_fetches(tmp_path: Path) -> Path:
    """An IMAP session fetching a header's fields, a whole header (lower case), RFC822.HEADER and a byte range."""
    def fetch(tag: str, n: int, asked: str, answered: str, literal: bytes) -> list[tuple[str, bytes]]:
        return [("C", f"{tag} FETCH {n} ({asked})\r\n".encode()),
                ("S", f"* {n} FETCH ({answered} {{{len(literal)}}}\r\n".encode() + literal + b")\r\n"
                 + f"{tag} OK done\r\n".encode())]

    script: list[tuple[str, bytes]] = [
        ("S", b"* OK IMAP ready\r\n"), ("C", b"a1 LOGIN bob secret\r\n"), ("S", b"a1 OK logged in\r\n"),
        ("C", b"a2 SELECT INBOX\r\n"), ("S", b"* 3 EXISTS\r\na2 OK [READ-WRITE] done\r\n"),
        *fetch("a3", 1, "BODY.PEEK[HEADER.FIELDS (SUBJECT)]", "BODY[HEADER.FIELDS (SUBJECT)]",
               b"Subject: Hello\r\n\r\n"),
        *fetch("a4", 2, "body.peek[header]", "body[header]", HEADER),
        *fetch("a5", 3, "RFC822.HEADER", "RFC822.HEADER", HEADER),
        *fetch("a6", 1, "BODY.PEEK[]<0.20>", "BODY[]<0>", HEADER[:20]),
        ("C", b"a7 LOGOUT\r\n"), ("S", b"* BYE\r\na7 OK bye\r\n"),
    ]
    return write_pcap(tmp_path / "imap.pcap", list(script), server=("10.0.0.2", 143))


def test_header_only_fetches_are_named_in_every_imap_form(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = extract_cli(out, _imap_fetches(tmp_path))
    assert result.exit_code == 0, result.stderr
    entries = index_of(out)["messages"]
    assert [(e["carrier"]["section"], e["complete"], e["incomplete_reason"]) for e in entries] == [
        ("BODY[HEADER.FIELDS (SUBJECT)]", False, "IMAP fetched only some fields of the message header"),
        ("BODY[HEADER]", False, "IMAP fetched only the message header"),
        ("RFC822.HEADER", False, "IMAP fetched only the message header"),
        ("BODY[]<0>", False, "IMAP fetched only a byte range of the message (BODY[]<start.count>)"),
    ]
    assert (out / entries[1]["eml"]["path"]).read_bytes() == HEADER


@pytest.mark.parametrize(("section", "header"), [
    ("BODY[HEADER]", True),
    ("BODY.PEEK[HEADER]", True),
    ("body.peek[header.fields (subject from)]", True),
    ("BODY[HEADER.FIELDS.NOT (RECEIVED)]", True),
    ("RFC822.HEADER", True),
    ("rfc822.header", True),
    ("header", True),
    ("BODY[]", False),
    ("BODY[TEXT]", False),
    ("BODY[1.HEADER]", False),  # the header of an attached message is a part, not the message's header
    ("BODY[HEADER]+BODY[TEXT]", False),  # both halves in one response: the whole message
    ("RFC822", False),
])
def test_header_only_recognises_the_section_labels(tmp_path: Path, section: str, header: bool) -> None:
    (session,) = analyze(_imap_fetches(tmp_path))[0]
    record = replace(session.messages[1], detail={"section": section, "msg": 2})
    assert header_only(record) is header
    if header:
        assert expected_partial(session, record)
    reason = incomplete_reason(session, record)
    assert (reason == "IMAP fetched only the message header"
            or reason == "IMAP fetched only some fields of the message header") is header
    assert not header_only(replace(record, origin="pop3-retr"))


def test_unknown_amount_is_not_reported_as_one_byte(tmp_path: Path) -> None:
    """missing_bytes 1 is the placeholder for "an unknown amount": a gap's own size is said instead."""
    raw = one_attachment_message(os.urandom(3000))
    body = dot_stuff(raw)
    cap = Capture()
    conv = Tcp(cap).handshake()
    for who, data in smtp_steps([])[:3]:
        (conv.c if who == "c" else conv.s)(data)
    for line in (b"MAIL FROM:<a@example.com>\r\n", b"RCPT TO:<b@example.org>\r\n", b"DATA\r\n"):
        conv.c(line)
        conv.s(b"354 go\r\n" if line == b"DATA\r\n" else b"250 ok\r\n")
    segments = [body[i : i + MSS] for i in range(0, len(body), MSS)]
    for n, segment in enumerate(segments):
        conv.c(segment, drop=n == 1)
    conv.s(b"250 queued\r\n")
    conv.fin()
    (session,) = analyze(cap.write(tmp_path / "c.pcap"))[0]
    (record,) = session.messages
    lost = len(segments[1])
    assert record.summary.missing_bytes == lost
    assert incomplete_reason(session, record) == f"{lost:,} bytes of it are not in the capture (TCP gap)"
    unknown = replace(record, summary=replace(record.summary, missing_bytes=1))
    assert incomplete_reason(session, unknown) == f"{lost:,} bytes of it are not in the capture (TCP gap)"
    assert (missing_known(0), missing_known(1), missing_known(2)) == (False, False, True)


def test_messages_past_the_session_limit_wait_on_disk_and_are_written_whole(tmp_path: Path) -> None:
    """A session lists ``max_messages`` records; the rest waited in memory until their session ended
    (a session of 50,000 messages took ``extract`` to 209 MiB): they now wait in the staging folder
    and come out in order, with their attachments, beside an interleaved session and its own."""
    first = [one_attachment_message(bytes([i]) * (3000 + i), f'filename="a{i}.bin"'.encode()) for i in range(5)]
    second = [one_attachment_message(bytes([100 + i]) * 2000, f'filename="b{i}.bin"'.encode()) for i in range(4)]
    pcap = interleaved([smtp_steps(first), smtp_steps(second)]).write(tmp_path / "c.pcap")
    config = replace(Config(), session=replace(Config().session, max_messages=2))
    out = tmp_path / "out"
    held: list[int] = []
    session_ended = Extractor.session

    def count_held(self: Extractor, session: Session) -> None:
        held.append(len(self._pending.get((session.file, session.stream, session.first_frame), {})))
        session_ended(self, session)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Extractor, "session", count_held)
        _, sessions = extract_in_process(out, pcap, config=config)
    assert held == [2, 2]  # in memory: only the records the session lists
    assert [len(s.messages) for s in sessions] == [2, 2]
    assert [s.messages_dropped for s in sessions] == [3, 2]
    entries = index_of(out)["messages"]
    assert [(e["session"], e["index"]) for e in entries] == [(1, i) for i in range(5)] + [(2, i) for i in range(4)]
    for entry in entries:
        sent = (first if entry["session"] == 1 else second)[entry["index"]]
        assert (out / entry["eml"]["path"]).read_bytes() == sent
        assert entry["eml"]["sha256"] == sha256(sent)
        (a,) = entry["attachments"]
        name = f"{'a' if entry['session'] == 1 else 'b'}{entry['index']}.bin"
        assert a["path"] == f"s{entry['session']:04d}-m{entry['index'] + 1:02d}/{name}"
        assert (out / a["path"]).read_bytes() == (bytes([entry["index"]]) * (3000 + entry["index"])
                                                  if entry["session"] == 1 else bytes([100 + entry["index"]]) * 2000)
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == sorted(
        [e["eml"]["path"] for e in entries] + ["index.json"])  # no spill file and no staging folder left


@pytest.mark.parametrize("max_messages", [10_000, 0], ids=["listed", "spilled"])
def test_a_connection_taken_up_again_keeps_its_two_sessions_files_apart(tmp_path: Path, max_messages: int) -> None:
    """Staged messages were keyed by file and stream: the first session of a connection the flow table
    ended early and took up again got the second one's .eml, the second none."""
    from tests.mailcaps import taken_up_again

    pcap = taken_up_again(tmp_path / "again.pcap")
    config = replace(Config(), flow=replace(Config().flow, max_open=2),
                     session=replace(Config().session, max_messages=max_messages))
    out = tmp_path / "out"
    extract_in_process(out, pcap, config=config)
    entries = index_of(out)["messages"]
    assert [(e["session"], e["subject"]) for e in entries] == [(2, "B-first"), (5, "B-again")]
    for e in entries:
        assert (out / e["eml"]["path"]).read_bytes().startswith(b"Subject: " + e["subject"].encode())


def test_spill_files_of_sessions_that_end_in_turn_never_share_a_name(tmp_path: Path) -> None:
    """Spill files were named from the number open and the last message begun: after one session's was
    read, a third session's took the name of a second's still open, and the run failed."""
    cap = Capture()
    convs = [Tcp(cap, client=(f"10.0.0.{i + 1}", 40000 + i), isn_client=1000 + i * 7919).handshake()
             for i in range(3)]
    for t in convs:
        t.s(b"220 mx\r\n").c(b"EHLO c\r\n").s(b"250 mx\r\n").c(b"MAIL FROM:<a@b>\r\n").s(b"250 ok\r\n")
        t.c(b"RCPT TO:<c@d>\r\n").s(b"250 ok\r\n").c(b"DATA\r\n").s(b"354 go\r\n")
    for i, t in enumerate(convs):  # three messages begun, each over 64 KiB: the sinks are made now
        data = b"Subject: %d\r\n\r\n" % i + (b"%d" % i * 60 + b"\r\n") * 1200
        for k in range(0, len(data), 1400):
            t.c(data[k : k + 1400])
    x, y, z = convs
    for t in (x, y):
        t.c(b".\r\n").s(b"250 queued\r\n")
    x.c(b"QUIT\r\n").s(b"221 bye\r\n").fin()  # reported: its spill is read
    z.c(b".\r\n").s(b"250 queued\r\n")
    for t in (y, z):
        t.c(b"QUIT\r\n").s(b"221 bye\r\n").fin()
    for n, frame in enumerate(cap.frames):
        frame.ts = 1_700_000_000 + n * 0.001
    config = replace(Config(), session=replace(Config().session, max_messages=0))
    out = tmp_path / "out"
    extract_in_process(out, cap.write(tmp_path / "c.pcap"), config=config)
    entries = index_of(out)["messages"]
    assert [(e["session"], e["subject"]) for e in entries] == [(1, "0"), (2, "1"), (3, "2")]
