"""What a fuzzing campaign found: numbers and times from the capture that Python refuses.

``str.isdigit()`` is true for ``²`` (which ``int()`` rejects) and ``int()`` refuses more than 4300
digits; a damaged pcapng's interface options can put packet times past the year 9999; a spam score can
be ``1.2.3``. Each must be an unread value, never a traceback, and a timeline across such times must
not allocate a bucket per year."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

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


# ---------------------------------------------------------------------------- second campaign
FUZZ = Path(__file__).resolve().parent / "fuzz"


def test_a_thousand_nested_tunnels_do_not_recurse_until_python_stops(tmp_path: Path) -> None:
    from tests.pcapgen import gre, ipip
    for wrap in (ipip, gre):
        def nested(ip: bytes, _src: str, _dst: str, wrap: Any = wrap) -> bytes:
            for _ in range(1000):
                ip = wrap(ip)
            return ip
        cap = Capture(linktype=101)
        Tcp(cap, server=("10.0.0.2", 25), wrap_ip=nested).handshake().s(b"220 mx\r\n").fin()
        path = cap.write(tmp_path / "nested.pcap")
        doc = report(path)
        assert doc["sessions"] == []  # deeper than MAX_TUNNEL_DEPTH: counted, not followed
    shallow = Capture(linktype=101)
    Tcp(shallow, server=("10.0.0.2", 25), wrap_ip=lambda ip, _s, _d: ipip(ipip(ip))).handshake() \
        .s(b"220 mx\r\n").fin()
    [session] = report(shallow.write(tmp_path / "two.pcap"))["sessions"]
    assert session["tunnel"] == "ipip"


def test_duplicate_fragments_and_one_byte_probes_stay_linear(tmp_path: Path) -> None:
    import time

    from tests.pcapgen import fragments, ip_packet, tcp_segment
    cap = Capture()
    payload = b"x" * 8 * 4000
    datagram = ip_packet("10.0.0.1", "10.0.0.2", 6, tcp_segment(40000, 25, 1, 1, 0x18, payload))
    parts = fragments(datagram, 8)
    for i, frag in enumerate(parts[:-2] + parts[-1:]):  # one hole near the end
        cap.add_ip(1_700_000_000.0 + i * 1e-6, frag)
    for i in range(20_000):
        cap.add_ip(1_700_000_001.0 + i * 1e-6, parts[0])
    t = Tcp(cap, server=("10.0.0.2", 110), ts=1_700_000_002.0)
    t.handshake().s(b"+OK ready\r\n")
    start = t.seq["c"]
    for _ in range(6000):
        t.c(b"x")
    for i in range(6000):  # zero-window probes and retransmissions of single old bytes
        t._emit("c", 0x10, b"x", seq=start + i)
    path = cap.write(tmp_path / "slow.pcap")
    began = time.monotonic()
    result = run_cli("analyze", "--list", str(path))
    assert result.exit_code == 0, result.stderr
    assert time.monotonic() - began < 20  # minutes before: re-joining 8,000 parts per copy, walking 6,000 pieces


def test_broken_certificates_and_a_suite_the_version_lacks() -> None:
    for name in ("tls12-cert-duplicate-extension", "tls12-cert-invalid-version", "tls12-cert-name-keyerror",
                 "tls12-cert-x400-san", "tls12-cert-negative-serial-warning"):
        result = run_cli("analyze", "--format", "json", str(FUZZ / f"{name}.pcap"))
        assert result.exit_code == 0, (name, result.stderr)
        assert "Warning" not in result.stderr
        [session] = __import__("json").loads(result.stdout)["sessions"]
        assert session["tls"] == "implicit"
    ccm = FUZZ / "tls12-hello-with-tls13-ccm-suite"
    result = run_cli("analyze", "--tls-keylog", str(ccm) + ".keylog", str(ccm) + ".pcap")
    assert result.exit_code == 0, result.stderr


def test_a_huge_count_in_a_note_read_back_by_the_german_view(tmp_path: Path) -> None:
    path = str(FUZZ / "imap-bodystructure-more-5000-digits.pcap")
    for args in (("analyze", "--lang", "de", "--no-color"), ("report", "--lang", "de", "-o", str(tmp_path / "r.html"))):
        result = run_cli(*args, path)
        assert result.exit_code == 0, result.stderr


def test_odd_option_values_are_one_line_errors() -> None:
    from tests.support import sample
    path = str(sample("pop3-session.pcap"))
    for args, said in ((("--session", "1-999999999"), "at most 1,000,000 session ids can be named"),
                       (("--since", "nan"), "is neither epoch seconds nor an ISO date"),
                       (("--since", "inf"), "is neither epoch seconds nor an ISO date"),
                       (("--until", "٣"), "is neither epoch seconds nor an ISO date"),
                       (("--tls-keylog", "/dev/zero"), "that is no key log")):
        result = run_cli("analyze", "--list", *args, path)
        assert result.exit_code == 2 and said in result.stderr, (args, result.stderr)
