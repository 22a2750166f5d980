"""A base64 part that decoded to nothing (empty, or cut off by the capture) has no overhead percentage:
the statistics say null, and the views that print it show the bytes alone (found by fuzzing: the HTML
report failed on it with a TypeError)."""

from __future__ import annotations

from pathlib import Path

from tests.pcapgen import Capture, Tcp
from tests.support import report, run_cli

MESSAGE = (b"Subject: empty\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
           b"--b\r\nContent-Type: application/octet-stream; name=x.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           b"--b--\r\n")


def _capture(tmp_path: Path) -> Path:
    cap = Capture()
    t = Tcp(cap).handshake()
    t.s(b"220 hi\r\n").c(b"EHLO a\r\n").s(b"250 ok\r\n").c(b"MAIL FROM:<a@b>\r\n").s(b"250 ok\r\n")
    t.c(b"RCPT TO:<c@d>\r\n").s(b"250 ok\r\n").c(b"DATA\r\n").s(b"354 go\r\n").c(MESSAGE + b".\r\n")
    t.s(b"250 ok\r\n").c(b"QUIT\r\n").s(b"221 bye\r\n").fin()
    return cap.write(tmp_path / "empty-b64.pcap")


def test_stats_and_reports_with_a_base64_part_that_decoded_to_nothing(tmp_path: Path) -> None:
    path = _capture(tmp_path)
    base64 = report(path)["stats"]["messages"]["base64"]
    assert base64["parts"] == 1 and base64["decoded_bytes"] == 0 and base64["overhead_percent"] is None
    stats = run_cli("stats", str(path))
    assert stats.exit_code == 0 and "None" not in stats.stdout
    html = tmp_path / "r.html"
    done = run_cli("report", str(path), "-o", str(html))
    assert done.exit_code == 0 and html.stat().st_size > 0
    assert "None %" not in html.read_text(encoding="utf-8")
