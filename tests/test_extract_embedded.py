"""An e-mail attached to an e-mail (a phishing report, a forward, a bounce) in a capture: ``mailtrace extract``
writes it byte for byte as a file next to the attachments inside it, index.json and ``analyze`` (table,
``--headers``, JSON, ``--html``) list it with its size and hashes."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from mailtrace.extract import MessageFileSink, part_extension
from tests.mailcaps import extract_cli, files_under, index_of, mime_message
from tests.pcapgen import Capture, Tcp
from tests.support import run_cli

PDF = b"%PDF-1.4 fake invoice\n" * 40
B64 = base64.encodebytes(PDF).replace(b"\n", b"\r\n")
PHISH = (
    b"From: Billing <billing@evil.example>\r\nTo: victim@corp.example\r\nSubject: Your invoice\r\n"
    b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="in"\r\n\r\n'
    b"--in\r\nContent-Type: text/plain\r\n\r\nplease pay the attached invoice\r\n"
    b'--in\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename="invoice.pdf"\r\n'
    b"Content-Transfer-Encoding: base64\r\n\r\n" + B64 + b"--in--"
)
"""The reported e-mail, exactly as it is attached (its last line break is the outer delimiter's)."""

BOUNCED = b"From: victim@corp.example\r\nSubject: re: invoice\r\n\r\nI paid."


def report(named: bytes = b'filename="../../phish report.eml"') -> bytes:
    """A user's report of a phishing mail, and a returned message without any name, in one message."""
    return mime_message([
        b"Content-Type: text/plain\r\n\r\nI think this is phishing.",
        b"Content-Type: message/rfc822\r\nContent-Disposition: attachment; " + named + b"\r\n\r\n" + PHISH,
        b"Content-Type: message/rfc822\r\n\r\n" + BOUNCED,
    ])  # fmt: skip


def capture(tmp_path: Path, message: bytes) -> Path:
    """One SMTP session delivering ``message``, made with pcapgen (the DATA body dot-stuffed, cut at 1000)."""
    cap = Capture()
    t = Tcp(cap, client=("192.0.2.10", 40001), server=("198.51.100.25", 25)).handshake()
    t.s(b"220 mx.corp.example ESMTP\r\n").c(b"EHLO reporter.corp.example\r\n").s(b"250 mx.corp.example\r\n")
    t.c(b"MAIL FROM:<user@corp.example>\r\n").s(b"250 ok\r\n").c(b"RCPT TO:<abuse@corp.example>\r\n").s(b"250 ok\r\n")
    t.c(b"DATA\r\n").s(b"354 go ahead\r\n")
    body = message.replace(b"\r\n.", b"\r\n..") + b".\r\n"
    for i in range(0, len(body), 1000):
        t.c(body[i : i + 1000])
    t.s(b"250 queued\r\n").c(b"QUIT\r\n").s(b"221 bye\r\n").fin()
    return cap.write(tmp_path / "report.pcap")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_extract_writes_the_attached_email_byte_for_byte(tmp_path: Path) -> None:
    raw = report()
    out = tmp_path / "out"
    result = extract_cli(out, capture(tmp_path, raw))
    assert result.exit_code == 0, result.stderr
    assert files_under(out) == {"index.json", "s0001-m01.eml", "s0001-m01", "s0001-m01/phish report.eml",
                                "s0001-m01/invoice.pdf", "s0001-m01/part-1.3.eml"}
    folder = out / "s0001-m01"
    assert (folder / "phish report.eml").read_bytes() == PHISH
    assert (folder / "invoice.pdf").read_bytes() == PDF
    assert (folder / "part-1.3.eml").read_bytes() == BOUNCED
    assert (out / "s0001-m01.eml").read_bytes() == raw
    index = index_of(out)
    listed = index["messages"][0]["attachments"]
    assert [(a["path"], a["part"], a["filename"], a["content_type"], a["bytes"], a["encoded_bytes"], a["sha256"],
             a["md5"], a["complete"]) for a in listed] == [
        ("s0001-m01/phish report.eml", "1.2", "../../phish report.eml", "message/rfc822", len(PHISH), len(PHISH),
         sha256(PHISH), hashlib.md5(PHISH).hexdigest(), True),
        ("s0001-m01/invoice.pdf", "1.2.1.2", "invoice.pdf", "application/pdf", len(PDF), len(B64) - 2, sha256(PDF),
         hashlib.md5(PDF).hexdigest(), True),
        ("s0001-m01/part-1.3.eml", "1.3", None, "message/rfc822", len(BOUNCED), len(BOUNCED), sha256(BOUNCED),
         hashlib.md5(BOUNCED).hexdigest(), True),
    ]  # fmt: skip
    assert index["totals"]["attachments"] == 3
    assert index["totals"]["bytes_written"] == len(raw) + len(PHISH) + len(PDF) + len(BOUNCED)


def test_message_file_sink_writes_it_too(tmp_path: Path) -> None:
    with MessageFileSink(tmp_path / "dir", "s", 1) as sink:
        for i in range(0, len(report()), 7):
            sink.feed(report()[i : i + 7])
        written = sink.close()
    assert [p.name for p in written.attachments] == ["phish report.eml", "invoice.pdf", "part-1.3.eml"]
    assert [p.read_bytes() for p in written.attachments] == [PHISH, PDF, BOUNCED]
    assert part_extension("message/global") == part_extension("message/rfc822") == ".eml"


def test_analyze_lists_it_in_every_view(tmp_path: Path) -> None:
    pcap = capture(tmp_path, report())
    result = run_cli("analyze", str(pcap), "--format", "json")
    assert result.exit_code == 0, result.stderr
    message = json.loads(result.stdout)["sessions"][0]["messages"][0]
    assert [(a["filename"], a["bytes"], a["sha256"]) for a in message["attachments"]] == [
        ("../../phish report.eml", len(PHISH), sha256(PHISH)), ("invoice.pdf", len(PDF), sha256(PDF)),
        (None, len(BOUNCED), sha256(BOUNCED))]
    table = run_cli("analyze", str(pcap))
    assert table.exit_code == 0 and "3 attachments" in table.stdout
    details = run_cli("analyze", str(pcap), "--headers", "--width", "200")
    assert details.exit_code == 0, details.stderr
    text = details.stdout
    assert "MIME structure (8 parts, 3 attachments)" in text
    assert "1.2 message/rfc822  attachment  “../../phish report.eml”" in text
    assert f"sha256 {sha256(PHISH)}" in text and f"sha256 {sha256(BOUNCED)}" in text
    html_path = tmp_path / "r.html"
    assert run_cli("analyze", str(pcap), "--html", str(html_path)).exit_code == 0
    html = html_path.read_text(encoding="utf-8")
    assert html.count(sha256(PHISH)) >= 2  # the MIME tree and the attachments table (and the embedded JSON)
    assert '<td class="mono fname">../../phish report.eml</td><td>message/rfc822</td>' in html  # attachments table
    assert "<strong>message/rfc822</strong> attachment" in html  # the MIME tree


def test_statistics_count_the_bytes_inside_an_attached_email_once(tmp_path: Path) -> None:
    """Three attachments are listed (the reported e-mail, the invoice inside it, the bounce), but the invoice's
    bytes are part of the reported e-mail's: the byte total and the sizes count them once."""
    result = run_cli("stats", "--format", "json", str(capture(tmp_path, report())))
    assert result.exit_code == 0, result.stderr
    attachments = json.loads(result.stdout)["messages"]["attachments"]
    assert attachments["count"] == 3
    assert attachments["types"] == {"message/rfc822": 2, "application/pdf": 1}
    assert attachments["bytes"] == len(PHISH) + len(BOUNCED)
    assert attachments["size"]["max"] == len(PHISH)


def test_the_html_report_offers_the_attached_emails_as_sent(tmp_path: Path) -> None:
    """--embed-attachments finds leaves with the stdlib, which would re-serialise an attached e-mail: the
    report cuts it from the message where the summary places it, so the download is the e-mail as sent."""
    from tests.mt_html_check import embedded_files, html_report

    html = html_report(tmp_path / "r.html", str(capture(tmp_path, report())), "--embed-attachments")
    kept = sorted(base64.b64decode(data) for data in embedded_files(html).values())
    assert kept == sorted([PHISH, PDF, BOUNCED])


def test_a_relay_that_re_encodes_an_attached_email_does_not_split_the_flow(tmp_path: Path) -> None:
    """Two hops of one message without a Message-ID: the second relay downgraded the attached e-mail's 8bit
    text to quoted-printable. Every decoded leaf is the same, so the body fingerprint joins the hops; the attached
    e-mail's own hash (of its bytes as sent) differs and must stay out of the fingerprint."""
    def message(encoding: bytes, text: bytes) -> bytes:
        return (b'From: a@example.org\r\nTo: b@example.net\r\nSubject: fwd\r\nMIME-Version: 1.0\r\n'
                b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee it\r\n'
                b"--b\r\nContent-Type: message/rfc822\r\n\r\nFrom: x@example.com\r\nSubject: inner\r\n"
                b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: " + encoding + b"\r\n\r\n"
                + text + b"\r\n--b--\r\n")
    cap = Capture()
    hops = [(message(b"8bit", "Grüße".encode()), "192.0.2.10", "198.51.100.25"),
            (message(b"quoted-printable", b"Gr=C3=BC=C3=9Fe"), "198.51.100.25", "203.0.113.5")]
    for i, (body, client, server) in enumerate(hops):
        t = Tcp(cap, client=(client, 40001 + i), server=(server, 25)).handshake()
        t.s(b"220 mx\r\n").c(b"EHLO h\r\n").s(b"250 mx\r\n").c(b"MAIL FROM:<a@example.org>\r\n").s(b"250 ok\r\n")
        t.c(b"RCPT TO:<b@example.net>\r\n").s(b"250 ok\r\n").c(b"DATA\r\n").s(b"354 go\r\n")
        t.c(body + b".\r\n").s(b"250 queued\r\n").c(b"QUIT\r\n").s(b"221 bye\r\n").fin()
    result = run_cli("analyze", "--format", "json", str(cap.write(tmp_path / "hops.pcap")))
    flows = json.loads(result.stdout)["flows"]
    assert [len(f["hops"]) for f in flows] == [2]
