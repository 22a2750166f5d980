"""HTML report gaps: message data as one row, part overhead in the JSON, accurate message badges,
the extract hint for encrypted sessions, and singular/plural in the page's words."""

from __future__ import annotations

import dataclasses
import json
import re
import struct
from pathlib import Path

from mailcaps import MSS, attachment, dot_stuff, mime_message
from mailcaps import smtp_capture as mail_capture
from pcapgen import Capture, Tcp

from mailtrace.capture.reader import open_capture
from mailtrace.commands.common import build_config
from mailtrace.commands.extract import encrypted_hint
from mailtrace.mime import summarize, summary_to_json
from mailtrace.model import Direction, Phase
from mailtrace.pipeline import Analyzer
from mailtrace.render.html import HtmlLimits, HtmlReport, plural
from mailtrace.render.rows import group_rows
from mailtrace.session import PacketRow
from tests.support import run_cli

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
MESSAGE = mime_message([b"Content-Type: text/plain\r\n\r\nhello",
                        attachment(b'filename="a.bin"', bytes(range(256)) * 20)])


def render(path: Path, out: Path, **kw: object) -> str:
    analyzer = Analyzer(build_config())
    report = HtmlReport(out, **kw)  # type: ignore[arg-type]
    for s in analyzer.run([open_capture(str(path))]):
        report.session(s)
    report.end(analyzer.stats)
    return out.read_text("utf-8")


def table_rows(html: str) -> dict[int, str]:
    """Frame → the text of its packet-table row (tags stripped)."""
    table = html[html.index('<table class="grid packets'):]
    table = table[: table.index("</table>")]
    rows = {}
    for frame, body in re.findall(r'<tr id="s\d+-f(\d+)"[^>]*>(.*?)</tr>', table, re.S):
        rows[int(frame)] = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)).strip()
    return rows


def acked_smtp(tmp_path: Path) -> Path:
    """One SMTP message in MSS segments, the server ACKing every second one (frames known)."""
    cap = Capture()
    conv = Tcp(cap).handshake()  # frames 1-3
    for who, data in [("s", b"220 mx ESMTP\r\n"), ("c", b"EHLO c\r\n"), ("s", b"250 mx\r\n"),
                      ("c", b"MAIL FROM:<alice@example.com>\r\n"), ("s", b"250 ok\r\n"),
                      ("c", b"RCPT TO:<bob@example.org>\r\n"), ("s", b"250 ok\r\n"),
                      ("c", b"DATA\r\n"), ("s", b"354 go\r\n")]:  # frames 4-12
        (conv.c if who == "c" else conv.s)(data)
    body = dot_stuff(MESSAGE)
    for n, i in enumerate(range(0, len(body), MSS)):  # 6 segments: frames 13, 14, (ack 15), 16, 17, (ack 18), 19, 20
        conv.c(body[i : i + MSS])
        if n % 2 == 1:
            conv.ack("s")
    conv.s(b"250 queued\r\n").c(b"QUIT\r\n").s(b"221 bye\r\n").fin()
    return cap.write(tmp_path / "acked.pcap")


# --------------------------------------------------------------------------- 1. message data as one row


def test_message_segments_are_one_row_as_in_the_terminal(tmp_path: Path) -> None:
    pcap = acked_smtp(tmp_path)
    html = render(pcap, tmp_path / "r.html")
    rows = table_rows(html)
    expected = ("message “test” from Alice <alice@example.com>, 7,396 bytes in 6 segments (frames 13–20), "
                "2 ACKs folded in, 1 attachment")
    assert expected in rows[13].replace("&lt;", "<").replace("&gt;", ">")
    assert " IMF " in f" {rows[13]} "
    assert "end of message (smtp-data, complete)" in rows[13]
    assert set(rows).isdisjoint({14, 15, 16, 17, 18, 19, 20})  # folded into row 13
    for frame in (14, 15, 18, 20):  # links to folded frames still land on the line
        assert f'<span id="s1-f{frame}" class="fold"></span>' in html
    length = sum(len(dot_stuff(MESSAGE)[i : i + MSS]) for i in range(0, len(dot_stuff(MESSAGE)), MSS))
    assert re.search(rf'<tr id="s1-f13"[^>]*data-frames="13-20">.*?<td class="n">{length}</td>', html)
    # the ladder folds the same run into one arrow
    assert f"message data: 6 segments, {length:,} bytes" in html
    # the same words as the terminal view
    term = run_cli("analyze", "--width", "250", str(pcap)).stdout
    assert expected in term


def test_unended_body_run_says_its_bytes() -> None:
    def row(frame: int, direction: Direction, payload: int, body: int = 0, flags: int = 0x18) -> PacketRow:
        return PacketRow(frame, float(frame), direction, flags, payload, Phase.TRANSFER, body_bytes=body)

    c, s = Direction.CLIENT, Direction.SERVER
    rows = [row(1, c, 100, 100), row(2, s, 0, flags=0x10), row(4, c, 100, 100), row(5, c, 100, 100),
            row(6, s, 10), row(7, c, 50, 50)]
    groups = group_rows(rows, breaks=[3])  # a DNS packet (frame 3) drawn between 2 and 4: the run stops there
    assert [(g.frames, [a.frame for a in g.acks], g.body) for g in groups] == [
        ([1], [], 100), ([2], [], 0), ([4, 5], [], 200), ([6], [], 0), ([7], [], 50)]
    assert [(g.frames, [a.frame for a in g.acks], g.body) for g in group_rows(rows)] == [
        ([1, 4, 5], [2], 300), ([6], [], 0), ([7], [], 50)]


# --------------------------------------------------------------------------- 2. overhead_percent of parts


def test_parts_carry_their_transfer_encoding_overhead() -> None:
    qp = b"caf=C3=A9 " * 30
    message = mime_message([
        b"Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" + qp,
        b"Content-Type: text/plain\r\n\r\nplain seven bit",
        attachment(b'filename="a.bin"', bytes(range(256)) * 4),
        b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n",
    ])
    tree = summary_to_json(summarize(message))["parts"]
    assert tree["overhead_percent"] is None  # a container
    qp_part, plain, b64, empty = tree["children"]
    assert (b64["encoded_bytes"], b64["decoded_bytes"]) == (1402, 1024)
    assert b64["overhead_percent"] == 36.9  # (1402 - 1024) / 1024 * 100 = 36.91
    assert qp_part["decoded_bytes"] == 180 and qp_part["encoded_bytes"] == 300  # "caf=C3=A9 " → "café "
    assert qp_part["overhead_percent"] == 66.7  # (300 - 180) / 180 * 100 = 66.67
    assert plain["overhead_percent"] is None
    assert empty["decoded_bytes"] == 0 and empty["overhead_percent"] is None
    keys = list(b64)
    assert keys.index("overhead_percent") == keys.index("decoded_bytes") + 1  # added, nothing renamed


def test_json_report_parts_have_overhead(tmp_path: Path) -> None:
    pcap = mail_capture([MESSAGE]).write(tmp_path / "m.pcap")
    data = json.loads(run_cli("analyze", "--format", "json", str(pcap)).stdout)
    part = data["sessions"][0]["messages"][0]["parts"]["children"][1]
    assert part["encoding"] == "base64"
    assert (part["encoded_bytes"], part["decoded_bytes"]) == (7006, 5120)
    assert part["overhead_percent"] == 36.8  # (7006 - 5120) / 5120 * 100 = 36.84


# --------------------------------------------------------------------------- 3. the message badges


def test_large_message_badge_says_it_was_summarised_whole(tmp_path: Path) -> None:
    big = mime_message([attachment(b'filename="big.bin"', bytes(range(256)) * 400)])  # ~140 KB > 64 KiB
    html = render(mail_capture([big]).write(tmp_path / "big.pcap"), tmp_path / "r.html")
    assert "first part only" not in html
    assert ("larger than the in-memory limit: summarised from the stream (header fields, MIME tree and hashes "
            "cover the whole message)") in html


def test_top_is_partial_by_request_not_lost(tmp_path: Path) -> None:
    html = render(SAMPLES / "pop3-session.pcap", tmp_path / "r.html")
    assert "partial by request: POP3 TOP returns only the header and the first" in html
    assert "first part only" not in html
    small = mail_capture([MESSAGE]).write(tmp_path / "m.pcap")
    plain = render(small, tmp_path / "s.html")
    assert "partial by request" not in plain and "in-memory limit" not in plain


# --------------------------------------------------------------------------- 4. extract and TLS


def _tls_record(content_type: int, body: bytes) -> bytes:
    return struct.pack("!BHH", content_type, 0x0303, len(body)) + body


def _hello(kind: int) -> bytes:
    body = struct.pack("!H", 0x0303) + b"\x11" * 32 + b"\x00"
    body += (struct.pack("!H", 2) + b"\x13\x01" + b"\x01\x00") if kind == 1 else b"\x13\x01\x00"
    body += struct.pack("!H", 0)
    return _tls_record(22, bytes([kind]) + len(body).to_bytes(3, "big") + body)


def tls_capture(tmp_path: Path) -> Path:
    """One STARTTLS session on port 25, two implicit-TLS sessions on 465, one cleartext message."""
    cap = Capture()
    conv = Tcp(cap, client=("10.0.0.1", 40001)).handshake()
    for who, data in [("s", b"220 mx ESMTP\r\n"), ("c", b"EHLO c\r\n"), ("s", b"250-mx\r\n250 STARTTLS\r\n"),
                      ("c", b"STARTTLS\r\n"), ("s", b"220 go ahead\r\n"), ("c", _hello(1)), ("s", _hello(2)),
                      ("c", _tls_record(23, b"\x42" * 200)), ("s", _tls_record(23, b"\x43" * 60))]:
        (conv.c if who == "c" else conv.s)(data)
    conv.fin()
    for port in (40002, 40003):
        conv = Tcp(cap, client=("10.0.0.1", port), server=("10.0.0.2", 465), ts=1_700_000_010.0 + port).handshake()
        conv.c(_hello(1)).s(_hello(2)).c(_tls_record(23, b"\x44" * 300)).s(_tls_record(23, b"\x45" * 40)).fin()
    conv = Tcp(cap, client=("10.0.0.3", 40004), ts=1_700_000_100.0).handshake()
    for who, data in [("s", b"220 mx\r\n"), ("c", b"EHLO c\r\n"), ("s", b"250 mx\r\n"),
                      ("c", b"MAIL FROM:<a@example.com>\r\n"), ("s", b"250 ok\r\n"),
                      ("c", b"RCPT TO:<b@example.org>\r\n"), ("s", b"250 ok\r\n"), ("c", b"DATA\r\n"),
                      ("s", b"354 go\r\n"), ("c", dot_stuff(b"Subject: hi\r\n\r\nhello\r\n")), ("s", b"250 ok\r\n")]:
        (conv.c if who == "c" else conv.s)(data)
    conv.fin()
    return cap.write(tmp_path / "tls.pcap")


def test_extract_says_why_encrypted_sessions_give_nothing(tmp_path: Path) -> None:
    pcap = tls_capture(tmp_path)
    sessions = list(Analyzer(build_config()).run([open_capture(str(pcap))]))
    assert sorted((s.tls, s.decrypted) for s in sessions) == [
        ("implicit", False), ("implicit", False), ("none", False), ("starttls", False)]
    result = run_cli("extract", str(pcap), "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert "Extracted 1 message from 1 session" in result.stdout
    assert ("  3 sessions are encrypted (STARTTLS or implicit TLS) and were not decrypted: their messages "
            "cannot be read\n    give the TLS key log (SSLKEYLOGFILE of the client or server) with "
            "--tls-keylog FILE to extract their messages") in result.stdout
    empty = tmp_path / "empty.keys"
    empty.write_text("")
    again = run_cli("extract", str(pcap), "-o", str(tmp_path / "out2"), "--tls-keylog", str(empty))
    assert "the key log given with --tls-keylog has no keys that decrypt them" in again.stdout
    only = run_cli("extract", str(pcap), "-o", str(tmp_path / "out3"), "-p", "smtp", "--session", "4")
    assert "encrypted" not in only.stdout  # the filtered-out TLS sessions are not counted


def test_encrypted_hint_grammar() -> None:
    assert encrypted_hint(0, False) == []
    one = encrypted_hint(1, False)
    assert one[0] == ("  1 session is encrypted (STARTTLS or implicit TLS) and was not decrypted: its messages "
                      "cannot be read")
    assert one[1].endswith("--tls-keylog FILE to extract its messages")
    assert "decrypt it:" in encrypted_hint(1, True)[1] and "that connection " in encrypted_hint(1, True)[1]


# --------------------------------------------------------------------------- 5. singular and plural


def test_plural_helper() -> None:
    assert plural(1, "session") == "1 session"
    assert plural(0, "session") == "0 sessions"
    assert plural(1234, "byte") == "1,234 bytes"
    assert plural(2, "more message") == "2 more messages"


def test_one_of_a_kind_is_singular(tmp_path: Path) -> None:
    pcap = mail_capture([MESSAGE]).write(tmp_path / "m.pcap")
    html = render(pcap, tmp_path / "r.html")
    assert "1 of 1 session</span>" in html and "1 of 1 sessions" not in html
    assert "what the 1 extension offered means</summary>" in html
    assert "1 attachment<" in html and "1 attachments" not in html
    assert not re.search(r"\b1 (sessions|messages|attachments|packets|segments|parts|hops|bytes|rows)\b", html)
    rows = sum(1 for _ in Analyzer(build_config()).run([open_capture(str(pcap))]).__next__().rows)
    cut = render(pcap, tmp_path / "cut.html", limits=dataclasses.replace(HtmlLimits(), max_rows=rows - 1))
    assert "1 more packet row is not shown" in cut
    stub = render(pcap, tmp_path / "stub.html", limits=dataclasses.replace(HtmlLimits(), max_sections=0))
    assert "1 session has no detail section" in stub and "; it is listed above" in stub
