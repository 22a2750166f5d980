"""The message detail view (``render/message.py``, ``analyze --headers``): real values, plain text."""

from __future__ import annotations

import io
import re
from pathlib import Path

from click.testing import CliRunner
from rich.cells import cell_len
from rich.console import Console

from mailtrace.capture.reader import open_capture
from mailtrace.cli import main
from mailtrace.config import Config
from mailtrace.envelope import compare_envelope
from mailtrace.pipeline import Analyzer
from mailtrace.render.message import message_details, safe_text
from mailtrace.session import Session
from tests.mailcaps import smtp_capture
from tests.support import run_cli, sample

WIDTH = 120


def sessions_of(path: Path) -> list[Session]:
    return list(Analyzer(Config()).run([open_capture(str(path))]))


def render(session: Session, index: int = 0, *, width: int = WIDTH, color: bool = False) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, color_system="truecolor" if color else None, force_terminal=color,
                      legacy_windows=False)
    console.print(message_details(session, session.messages[index], width=width, color=color))
    return out.getvalue()


def squash(text: str) -> str:
    """Blanks collapsed, so assertions do not depend on column padding."""
    return re.sub(r"[ \t]+", " ", text)


def words(text: str) -> str:
    """All white space (line breaks too) collapsed: for cells that wrap onto continuation lines."""
    return " ".join(text.split())


# --------------------------------------------------------------------------- smtp-submission-auth


def test_submission_message_in_detail() -> None:
    session = sessions_of(sample("smtp-submission-auth.pcap"))[0]
    text = render(session)
    flat = squash(text)
    assert "\x1b" not in text
    assert flat.startswith("Message 1 of session 1 · SMTP DATA · frames 29–38 · 127.0.0.11:34188 → 127.0.0.26:587")
    assert "Subject Grüße aus Köln – Quartalsbericht Q3 📊" in flat
    # the header table: the subject as sent (RFC 2047), decoded below it, and what the field means
    assert "Subject =?utf-8?b?R3LDvMOfZSBhdXMgS8O2bG4g4oCTIFF1YXJ0YWxzYmVyaWNodCBR?= =?utf-8?b?MyDwn5OK?=" in flat
    assert "= Grüße aus Köln – Quartalsbericht Q3 📊" in flat
    assert "↳ Short topic of the message, written by the author." in flat
    assert "Header fields (9, in the order sent)" in flat
    assert "Size 10,528 bytes · complete" in flat
    assert "SHA-256 8a086c2a0199584ecb4c71c5fcab66ca4918212babb9e895cf290f944907899f" in flat
    # the MIME tree in document order, with sizes, overhead and hashes
    assert "MIME structure (4 parts, 2 attachments)" in flat
    tree = flat[flat.index("MIME structure"):flat.index("Envelope vs header")]
    assert tree.index("1.1 text/plain charset=utf-8, quoted-printable") < tree.index("1.2 image/png") \
        < tree.index("1.3 text/plain")
    assert "1.2 image/png base64, attachment “chart.png”" in tree
    assert "9,196 bytes as sent → 6,718 decoded (base64 overhead +36.9 %)" in tree
    assert "md5 0c1cb2e059a5288e410b0d948eb78202" in tree
    assert "sha256 ef6fd627d96174299987caa2e1ede4f22427f2f1ad6f4248b09ccf2faf215457" in tree
    assert "1.3 text/plain base64, attachment “Übersicht.txt”" in tree  # RFC 2231 name decoded
    assert "104 bytes as sent → 73 decoded (base64 overhead +42.5 %)" in tree
    assert "sha256 72c3d22df390eadca2b2af292b3bbf95e70092dfeb3230e8febf473c091ee7c4" in tree
    assert "174 bytes as sent → 146 decoded" in tree  # quoted-printable: no overhead figure
    # envelope vs header: nosuch@ is in Cc and in the envelope, but the server refused it
    assert "MAIL FROM bob@remote.example" in flat and "same address" in flat
    assert "carol@remote.example yes, 250 To" in flat
    assert "dave@remote.example yes, 250 Cc" in flat
    assert "nosuch@remote.example yes, 550 Cc rejected by the server: not delivered" in flat
    assert "Bcc (in the envelope, in no To/Cc field): none" in flat
    assert "Parser defects: none" in flat


def test_colour_only_when_asked() -> None:
    session = sessions_of(sample("smtp-submission-auth.pcap"))[0]
    assert "\x1b[" in render(session, color=True)
    out = io.StringIO()
    Console(file=out, width=WIDTH, force_terminal=True, color_system="truecolor").print(
        message_details(session, session.messages[0], width=WIDTH, color=False))
    assert "\x1b[" not in out.getvalue()


def test_pop3_message_after_delivery() -> None:
    session = sessions_of(sample("pop3-session.pcap"))[0]
    flat = squash(render(session, 1))
    assert "Message 2 of session 1 · POP3 RETR" in flat
    assert "X-Original-To bob@remote.example ↳ private extension header (X-)" in words(flat)
    assert "Received chain (1 hop, in path order: hop 1 is nearest the sender)" in flat
    assert "from client.local.example [127.0.0.10]" in flat and "by mx.remote.example" in flat
    assert "199B716C612" in flat and "2026-11-26 13:22:37" in flat
    assert "Return-Path alice@local.example" in flat
    assert "bob@remote.example yes To" in flat
    assert "POP3 carries no envelope (the message was delivered before)" in flat
    top = squash(render(session, 0))
    assert "partial by request: POP3 TOP returns only the header and the first 3 body lines" in top


def test_analyze_headers_option() -> None:
    result = run_cli("analyze", "--headers", str(sample("smtp-relay-seed-story.pcap")))
    assert result.exit_code == 0, result.stderr
    out = squash(result.stdout)
    assert out.index("Session 1 ·") < out.index("Message 1 of session 1") < out.index("Session 2 ·") \
        < out.index("Message 1 of session 2")
    assert "↳ Trace field added by each relaying server" in out
    assert "6AQDMOpI000661" in out
    refused = run_cli("analyze", "--headers", "--format", "json", str(sample("smtp-relay-seed-story.pcap")))
    assert refused.exit_code == 2 and "--headers" in refused.stderr and refused.stdout == ""


# --------------------------------------------------------------------------- synthetic: what no capture has

CHAIN = (b"Received: from relay2.example.net (relay2.example.net [203.0.113.9]) by mx.example.org (Postfix)\r\n"
         b"\twith ESMTPS id AAA111 for <bob@example.org>; Mon, 1 Jan 2024 10:00:00 +0000\r\n"
         b"Received: this is not a trace field at all\r\n"
         b"Received: from laptop (dsl-5.example.com [192.0.2.5]) by relay2.example.net with ESMTPSA id BBB222;\r\n"
         b"\tMon, 1 Jan 2024 10:05:00 +0000\r\n"
         b"Received: from [10.1.2.3] by laptop with HTTP; Mon, 1 Jan 2024 09:59:00 +0000\r\n")


def synthetic(tmp_path: Path, message: bytes, **kwargs: object) -> Session:
    """The session of a one-message SMTP capture (kwargs: mail_from, rcpts as for smtp_steps)."""
    (session,) = sessions_of(smtp_capture([message], **kwargs).write(tmp_path / "view.pcap"))
    return session


def test_received_chain_in_path_order_with_notes(tmp_path: Path) -> None:
    message = CHAIN + b"From: a@example.com\r\nTo: bob@example.org\r\nSubject: hops\r\n\r\nhi\r\n"
    flat = squash(render(synthetic(tmp_path, message), width=100))
    table = flat[flat.index("Received chain (4 hops"):flat.index("MIME structure")]
    rows = re.split(r"\n ?(?=[1-4] )", table)[1:]  # each hop row with its continuation lines
    assert [r.split()[0] for r in rows] == ["1", "2", "3", "4"]
    first, second, third, fourth = (words(r) for r in rows)
    assert first.startswith("1 from [10.1.2.3] HTTP 2024-01-01 09:59:00 by laptop")
    assert "from laptop (dsl-5.example.com ESMTPSA" in second and "+360 s" in second  # 09:59 → 10:05
    assert "by relay2.example.net" in second
    assert third.startswith("3 this is not a trace field at all") and "⚠ unparseable hop" in third
    assert "⚠ no date" in third
    assert "-300 s" in fourth and "⚠ timestamp goes backwards (-300 s)" in fourth
    assert "from relay2.example.net" in fourth and "[203.0.113.9]" in fourth and "AAA111" in fourth
    assert "bob@example.org" in fourth


def headers_view(*args: str) -> str:
    """``analyze --headers`` as a pipe sees it, with an 80-column environment that must not matter."""
    result = CliRunner(env={"COLUMNS": "80"}).invoke(main, ["analyze", "--headers", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    out: str = result.stdout
    start = out.index("Message 1 of session 1")
    return out[start:out.index("\nSummary", start)]  # the detail view; the summary has the run time


def test_headers_view_follows_width_and_color(tmp_path: Path) -> None:
    message = CHAIN + b"From: a@example.com\r\nTo: bob@example.org\r\nSubject: hops\r\n\r\nhi\r\n"
    (tmp_path / "hops").mkdir()
    path = str(smtp_capture([message]).write(tmp_path / "hops" / "view.pcap"))
    # piped without --width: laid out whole, as the session tables are (not at $COLUMNS, not padded)
    piped = headers_view(path)
    chain = piped[piped.index("Received chain (4 hops"):piped.index("MIME structure")]
    assert chain.splitlines()[1].split()[-2:] == ["(UTC)", "delay"]
    assert "+360 s" in chain and "-300 s" in chain
    assert max(cell_len(line) for line in piped.splitlines()) > 80
    assert not any(line.endswith(" ") for line in piped.splitlines())
    assert "\x1b" not in piped
    # --width: the whole view fits, the chain keeps its delay column where there is room for it
    for width in (100, 60):
        view = headers_view("--width", str(width), path)
        assert max(cell_len(line) for line in view.splitlines()) <= width
        chain = view[view.index("Received chain (4 hops"):view.index("MIME structure")]
        assert ("+360 s" in chain) is (width == 100)
    # --color: styles in the detail view too
    coloured = headers_view("--color", path)
    assert "\x1b[" in coloured
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == piped


def test_bcc_and_header_only_recipients(tmp_path: Path) -> None:
    message = (b"From: Boss <boss@example.com>\r\nSender: assistant@example.com\r\nTo: team@example.org\r\n"
               b"Cc: Carol <carol@example.org>\r\nSubject: plans\r\n\r\nhi\r\n")
    session = synthetic(tmp_path, message, mail_from="bounces@example.net",
                        rcpts=(("carol@example.org", 250), ("spy@example.net", 250), ("gone@example.org", 550)))
    view = compare_envelope(session, session.messages[0])
    assert view.bcc == ("spy@example.net",)
    assert view.from_matches is False and view.sender == "assistant@example.com"
    flat = squash(render(session))
    assert "MAIL FROM bounces@example.net" in flat
    assert "differ: the envelope sender is not the author or Sender" in flat
    assert "spy@example.net yes, 250 — Bcc (envelope only)" in flat
    assert "gone@example.org yes, 550 — rejected by the server: not delivered (and in no To/Cc field)" in flat
    assert "team@example.org — To header only: not a recipient of this transaction" in flat
    assert "Bcc (in the envelope, in no To/Cc field): spy@example.net" in flat
    german = compare_envelope(session, session.messages[0], "de")
    assert [r.note for r in german.recipients] == [
        "", "Bcc (nur im Umschlag)", "vom Server abgewiesen: nicht zugestellt (und in keinem To/Cc-Feld)",
        "nur im Header: kein Empfänger dieser Transaktion"]


def test_hostile_text_is_shown_not_obeyed(tmp_path: Path) -> None:
    message = (b"From: a@example.com\r\nSubject: [bold red]markup[/] \x1b[2J\x1b]0;title\x07 \xe2\x80\xae"
               b"gnp.exe\r\nX-Name: raw \x00 nul \xff\xfe\r\nContent-Type: multipart/mixed; boundary=z\r\n\r\n"
               b"--z\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=\"\x1b[31mred.txt\"\r\n"
               b"\r\nx\r\n--z--\r\n")
    text = render(synthetic(tmp_path, message))
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text and "\x00" not in text
    assert "[bold red]markup[/]" in text
    assert "\\x1b[2J" in text and "\\u202e" in text and "\\x00" in text
    assert "\\x1b[31mred.txt" in text
    assert "raw \\x00 nul ÿþ" in text  # raw 8-bit header bytes read as windows-1252, NUL escaped
    text.encode("utf-8")


def test_defects_are_explained(tmp_path: Path) -> None:
    message = (b"Subject: broken\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n"
               b"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=a.bin\r\n\r\n"
               b"QUJD*\r\n")
    flat = squash(render(synthetic(tmp_path, message)))
    assert "Parser defects (" in flat
    assert "⚠ CloseBoundaryNotFoundDefect: a multipart is not closed (--boundary--): the message may be " \
           "cut off" in words(flat)
    assert "InvalidBase64CharactersDefect (part 1.1)" in flat


def test_safe_text_cuts_and_escapes() -> None:
    assert safe_text("a\tb\x1bc\u200bd") == "a b\\x1bc\\u200bd"
    assert safe_text("x" * 50, 10) == "x" * 10 + "… (+40 characters)"
    assert safe_text("\udcff") == "\\udcff"


def test_verdicts_line_in_the_detail_view() -> None:
    """zeek's pop3.pcap carries a DKIM signature of 1and1.co.uk and Received-SPF/X-SpamScore verdicts."""
    from tests.support import corpus

    result = run_cli("analyze", "--headers", "--no-color", str(corpus("zeek/pop3")))
    assert result.exit_code == 0, result.stderr
    lines = [line.split(None, 1)[1] for line in result.stdout.splitlines() if line.startswith("Verdicts ")]
    assert lines == ["signed by d=1and1.co.uk s=global1", "spf=pass; X-SpamScore: score 0",
                     "spf=pass; X-SpamScore: score -2"]


def test_detail_view_in_german() -> None:
    result = run_cli("analyze", "--headers", "--lang", "de", "--no-color", "--no-context",
                     str(sample("smtp-submission-auth.pcap")))
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert ("Nachricht 1 der Sitzung 1 · SMTP DATA · Frames 29–38 · 127.0.0.11:34188 → 127.0.0.26:587 "
            "(vom Client gesendet)") in out
    assert "Größe       10.528 Bytes · vollständig" in out  # German groups thousands with a dot
    for heading in ("Header-Felder (9, in gesendeter Reihenfolge)", "MIME-Struktur (", "Umschlag gegen Header",
                    "Parser-Defekte: keine"):
        assert heading in out, heading
    assert "│   9.196 Bytes gesendet → 6.718 dekodiert (Base64-Mehraufwand +36,9 %)" in out  # chart.png
    assert "1 multipart/mixed  (3 Teile, 10.020 Bytes)" in out
    for english in ("Message 1 of session", "Header fields (", "Envelope vs header", "Parser defects", "as sent"):
        assert english not in out, english


def test_lost_mail_command_is_not_the_null_sender() -> None:
    from tests.pcapgen import Capture, Tcp

    cap = Capture()
    t = Tcp(cap, server=("10.0.0.2", 25)).handshake()
    t.s(b"220 mx ESMTP\r\n").c(b"EHLO a\r\n").s(b"250 mx\r\n").c(b"MAIL FROM:<a@b.example>\r\n", drop=True)
    t.s(b"250 2.1.0 ok\r\n").c(b"RCPT TO:<c@d.example>\r\n").s(b"250 2.1.5 ok\r\n").c(b"DATA\r\n").s(b"354 go\r\n")
    t.c(b"From: a@b.example\r\nSubject: s\r\n\r\nhi\r\n.\r\n").s(b"250 2.0.0 queued\r\n").fin()
    import tempfile

    path = cap.write(Path(tempfile.mkdtemp()) / "lost.pcap")
    (session,) = Analyzer(Config()).run([open_capture(str(path))])
    view = compare_envelope(session, session.messages[0])
    assert view.mail_from is None and view.from_matches is None
    assert "the capture lost the MAIL command: the envelope sender is unknown" in view.notes
    assert not any("null sender" in n for n in view.notes)


def test_the_detail_view_is_set_off_from_the_next_session_and_the_stats_note_from_the_next_heading() -> None:
    """``--headers`` ran the last message's 'Parser defects: none' into the next session's header (and
    put two blank lines before each message); the statistics' bytes note ran into 'Mail protocols'."""
    from tests.support import run_cli, sample

    out = run_cli("analyze", "--headers", "--width", "120", str(sample("smtp-submission-auth.pcap"))).stdout
    assert "Parser defects: none\n\nSession 2 ·" in out and "Parser defects: none\n\nSummary" in out
    assert "\n\n\nMessage 1 of session" not in out and "\n\nMessage 1 of session 1" in out
    stats = run_cli("stats", str(sample("smtp-errors.pcap"))).stdout
    assert "(UDP payload for dns (udp))\n\nMail protocols" in stats
    assert re.search(r"\n bytes +14,279\n", stats)  # grouped in English too
