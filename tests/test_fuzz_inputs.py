"""What a fuzzing campaign found: numbers and times from the capture that Python refuses.

``str.isdigit()`` is true for ``²`` (which ``int()`` rejects) and ``int()`` refuses more than 4300
digits; a damaged pcapng's interface options can put packet times past the year 9999; a spam score can
be ``1.2.3``. Each must be an unread value, never a traceback, and a timeline across such times must
not allocate a bucket per year."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from tests.pcapgen import Capture, Tcp, _block
from tests.support import report, run_cli

SUP = "²".encode()
BIG = b"1" * 4301


def capture(tmp_path: Path, port: int, script: list[tuple[str, bytes]]) -> Path:
    cap = Capture()
    t = Tcp(cap, client=("10.0.0.1", 40000), server=("10.0.0.2", port)).handshake()
    for who, data in script:
        (t.c if who == "c" else t.s)(data)
    t.fin()
    return cap.write(tmp_path / "x.pcap")


CASES = {
    "smtp-bdat": (25, [("s", b"220 mx\r\n"), ("c", b"EHLO a\r\n"), ("s", b"250 mx\r\n"), ("c", b"BDAT %s LAST\r\n")]),
    "smtp-mail-size": (25, [("s", b"220 mx\r\n"), ("c", b"EHLO a\r\n"), ("s", b"250 mx\r\n"),
                            ("c", b"MAIL FROM:<a@b> SIZE=%s\r\n"), ("s", b"250 ok\r\n")]),
    "smtp-ehlo-size": (25, [("s", b"220 mx\r\n"), ("c", b"EHLO a\r\n"), ("s", b"250-mx\r\n250 SIZE %s\r\n")]),
    "smtp-ehlo-size-explained": (25, [("s", b"220 mx\r\n"), ("c", b"EHLO a\r\n"),
                                      ("s", b"250-mx\r\n250  SIZE %s\r\n")]),
    "pop3-list": (110, [("s", b"+OK\r\n"), ("c", b"LIST\r\n"), ("s", b"+OK\r\n1 %s\r\n.\r\n")]),
    "pop3-uidl": (110, [("s", b"+OK\r\n"), ("c", b"UIDL\r\n"), ("s", b"+OK\r\n%s x\r\n.\r\n")]),
    "pop3-stat": (110, [("s", b"+OK\r\n"), ("c", b"STAT\r\n"), ("s", b"+OK %s 1\r\n")]),
    "pop3-retr-octets": (110, [("s", b"+OK\r\n"), ("c", b"RETR 1\r\n"),
                               ("s", b"+OK %s octets\r\nSubject: x\r\n\r\ny\r\n.\r\n")]),
    "imap-status": (143, [("s", b"* OK\r\n"), ("c", b"a STATUS INBOX (MESSAGES)\r\n"),
                          ("s", b"* STATUS INBOX (MESSAGES %s)\r\na OK\r\n")]),
    "imap-fetch-partial": (143, [("s", b"* OK\r\n"), ("c", b"a FETCH 1 (BODY[]<%s>)\r\n"), ("s", b"a OK\r\n")]),
    "imap-exists": (143, [("s", b"* OK\r\n"), ("c", b"a SELECT INBOX\r\n"), ("s", b"* %s EXISTS\r\na OK\r\n")]),
}


@pytest.mark.parametrize("number", [SUP, BIG], ids=["superscript", "4301-digits"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_numbers_python_refuses_are_not_numbers(tmp_path: Path, case: str, number: bytes) -> None:
    port, script = CASES[case]
    path = capture(tmp_path, port, [(who, data % number if b"%s" in data else data) for who, data in script])
    [session] = report(path)["sessions"]
    assert session["protocol"] == {25: "smtp", 110: "pop3", 143: "imap"}[port]
    for args in (("analyze", "--no-color"), ("stats", "--no-color")):
        result = run_cli(*args, str(path))
        assert result.exit_code == 0, result.stderr
    assert run_cli("report", str(path), "-o", str(tmp_path / "r.html")).exit_code == 0


def test_a_spam_score_that_is_no_number(tmp_path: Path) -> None:
    path = capture(tmp_path, 25, [("s", b"220 mx\r\n"), ("c", b"EHLO a\r\n"), ("s", b"250 mx\r\n"),
                                  ("c", b"MAIL FROM:<a@b.example>\r\n"), ("s", b"250 ok\r\n"),
                                  ("c", b"RCPT TO:<c@d.example>\r\n"), ("s", b"250 ok\r\n"), ("c", b"DATA\r\n"),
                                  ("s", b"354 go\r\n"), ("c", b"X-Spam-Status: Yes, score=1.2.3\r\n\r\nx\r\n.\r\n"),
                                  ("s", b"250 ok\r\n")])
    doc = report(path)
    assert doc["sessions"][0]["messages"][0]["bytes"] > 0
    assert run_cli("stats", "--no-color", str(path)).exit_code == 0
    assert run_cli("analyze", "--headers", "--no-color", str(path)).exit_code == 0


def pcapng_with_seconds_resolution(path: Path, sessions: list[tuple[int, int]]) -> Path:
    """A pcapng whose interface says its timestamps count whole seconds (if_tsresol = 10^0): a
    timestamp field that was written in microseconds lands hundreds of thousands of years away."""
    blocks = [_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)),
              _block(1, struct.pack("<HHI", 1, 0, 262144) + struct.pack("<HHB3x", 9, 1, 0) + struct.pack("<HH", 0, 0))]
    for seconds, port in sessions:
        cap = Capture()
        Tcp(cap, client=("10.0.0.1", port), server=("10.0.0.2", 25)).handshake().s(b"220 mx\r\n").fin()
        for frame in cap.frames:
            body = struct.pack("<IIIII", 0, seconds >> 32, seconds & 0xFFFFFFFF, len(frame.data), len(frame.data))
            blocks.append(_block(6, body + frame.data + b"\0" * (-len(frame.data) % 4)))
    path.write_bytes(b"".join(blocks))
    return path


def test_packet_times_past_the_calendar(tmp_path: Path) -> None:
    path = pcapng_with_seconds_resolution(tmp_path / "far.pcapng", [(1 << 44, 40000)])
    text = run_cli("analyze", "--no-color", str(path))
    assert text.exit_code == 0, text.stderr
    assert "(epoch seconds)" in text.stdout
    for args in (("stats", "--no-color"), ("analyze", "--format", "json")):
        assert run_cli(*args, str(path)).exit_code == 0


def test_a_timeline_across_ages_stays_small(tmp_path: Path) -> None:
    path = pcapng_with_seconds_resolution(tmp_path / "span.pcapng", [(1, 40000), (10**16, 40001)])
    result = run_cli("stats", "--format", "json", str(path))
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout) < 100_000
