"""A response whose first line came alone in its segment shows it on that row, as tshark does.

suricata-verify's pop3-02-bug-7709 sends ``+OK 6668 octets`` in frame 34 and the message in frames
35-43: frame 34 read "17 bytes, continued in frame 43" and the status line sat on the message's row."""

from __future__ import annotations

from pathlib import Path

from tests.pcapgen import Capture, Tcp
from tests.support import corpus, run_cli


def _rows(capture: str) -> dict[int, str]:
    text = run_cli("analyze", "--no-color", "--width", "400", str(corpus(capture))).stdout
    rows: dict[int, str] = {}
    for line in text.splitlines():
        words = line.split(maxsplit=5)
        if len(words) == 6 and words[0].isdigit():
            rows[int(words[0])] = words[5]
    return rows


def test_pop3_retr_status_and_message_get_their_own_rows() -> None:
    rows = _rows("suricata-verify/pop3-02-bug-7709")
    assert rows[34] == "S: +OK 6668 octets"
    assert rows[35].startswith('S: message “回复: 回复: 测试1下” from "cece@tt.com" <cece@tt.com>, '
                               "6,670 bytes in 7 segments")
    assert rows[30] == "S: +OK"  # UIDL: the status alone, the listing in frame 32 with the latency
    assert rows[32].startswith("S: 1 test.tt.com.cmailserver.1 | 2 ") and rows[32].endswith("(after 0.210 s)")


def test_a_listing_split_after_its_status_line() -> None:
    rows = _rows("zeek/bad-list-retr-crafted")
    assert (rows[10], rows[14]) == ("S: +OK 2 messages (320 octets)", "S: 1 120 | 2 200")
    assert rows[17] == "S: +OK message follows"
    assert rows[19].startswith("S: message “Crafted email” from zeek@zeek.org, 109 bytes")


def test_a_line_split_inside_itself_still_says_where_it_continues() -> None:
    """Frame 6 of smtp-long-command holds the first 2,576 bytes of a 4,097-byte EHLO: no status line."""
    assert _rows("suricata-verify/smtp-long-command")[6] == "C: 2,576 bytes, continued in frame 7"


def _synthetic_rows(tmp_path: Path, port: int, exchange: list[tuple[str, bytes, float]]) -> dict[int, str]:
    """Rows of a session whose segments are (side, bytes, seconds before them)."""
    cap = Capture()
    t = Tcp(cap, client=("10.0.0.1", 40000), server=("10.0.0.2", port)).handshake()
    for side, data, wait in exchange:
        t.ts += wait
        (t.c if side == "c" else t.s)(data)
    t.fin()
    path = cap.write(tmp_path / "x.pcap")
    text = run_cli("analyze", "--no-color", "--width", "400", str(path)).stdout
    return {int(w[0]): w[5] for w in (line.split(maxsplit=5) for line in text.splitlines())
            if len(w) == 6 and w[0].isdigit()}


def test_a_slow_retr_keeps_its_latency_on_the_row_where_the_message_ends(tmp_path: Path) -> None:
    message = b"Subject: slow\r\n\r\nbody\r\n.\r\n"
    rows = _synthetic_rows(tmp_path, 110, [("s", b"+OK ready\r\n", 0), ("c", b"RETR 1\r\n", 0),
                                           ("s", b"+OK 23 octets\r\n", 0.01), ("s", message, 2.0)])
    assert rows[6] == "S: +OK 23 octets"  # the status row: no latency yet, the response goes on
    assert rows[7].startswith("S: message “slow”") and rows[7].endswith("(after 2.012 s)")


def test_the_rest_of_an_smtp_reply_keeps_its_code(tmp_path: Path) -> None:
    rows = _synthetic_rows(tmp_path, 25, [("s", b"220 hi\r\n", 0), ("c", b"EHLO a\r\n", 0),
                                          ("s", b"250-mx.example\r\n", 0.01), ("s", b"250 SIZE 1000\r\n", 0.5)])
    assert rows[6].startswith("S: 250 mx.example")
    assert rows[7].startswith("S: 250 SIZE 1000 (after 0.512 s)")


def test_the_latency_goes_with_the_response_it_measures_not_the_next_one(tmp_path: Path) -> None:
    """RETR and QUIT pipelined; the message's end and ``+OK bye`` in one segment: RETR's latency is on
    the message, QUIT's on its own reply."""
    message = b"Subject: slow\r\n\r\nbody\r\n.\r\n"
    rows = _synthetic_rows(tmp_path, 110, [("s", b"+OK ready\r\n", 0), ("c", b"RETR 1\r\nQUIT\r\n", 0),
                                           ("s", b"+OK 23 octets\r\n", 0.01), ("s", message + b"+OK bye\r\n", 2.0)])
    assert rows[7] == "S: message “slow”, 23 bytes (after 2.012 s) | +OK bye (after 2.012 s)"
