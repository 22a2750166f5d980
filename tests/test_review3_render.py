"""Review 3, render side: the German HTML statistics, German Info-column words and numbers, messages cut
short by request, and an AUTH exchange the client cancels with "*"."""

from __future__ import annotations

import html as html_mod
import re
from pathlib import Path

import pytest
from pcapgen import Capture, Tcp
from support import REPO, run_cli

SAMPLES = REPO / "samples"


def sample(name: str) -> str:
    path = SAMPLES / f"{name}.pcap"
    if not path.is_file():
        pytest.skip(f"sample {path} not found")
    return str(path)


def cli(*args: str) -> str:
    result = run_cli(*args)
    assert result.exit_code in (0, 1), result.stderr
    return str(result.stdout)


def page(tmp_path: Path, name: str, *args: str) -> str:
    out = tmp_path / f"{name}.html"
    result = run_cli("report", "-o", str(out), *args)
    assert result.exit_code == 0, result.stderr
    return out.read_text("utf-8")


def visible(html: str) -> str:
    """What a reader sees of the page (markup, data blocks and style left out), unescaped."""
    head = html.partition('<script type="application/json"')[0]
    head = re.sub(r"<style nonce=.*?</style>", "", head, flags=re.S)
    head = re.sub(r"<svg.*?</svg>", "", head, flags=re.S)  # charts: drawn by render/svg.py
    return html_mod.unescape(re.sub(r"<[^>]+>", " ", head))


def statistics(html: str) -> str:
    """The statistics section as a reader sees it."""
    return visible(html.partition('<section id="statistics"')[2].partition("</section>")[0])


def flat(text: str) -> str:
    """Text with its wrapping undone (a long row wraps even at a wide width)."""
    return " ".join(text.split())


# --------------------------------------------------------------------------- finding 4: German HTML statistics


def test_german_html_statistics_are_german_in_words_and_numbers(tmp_path: Path) -> None:
    html = page(tmp_path, "de", "--lang", "de", sample("mixed-all"))
    text, stats = visible(html), statistics(html)
    assert stats, "no statistics section"
    for english in ("The statistics of the JSON report", "reads a reply code digit by digit", "Latency: from a command",
                    "succeeded", "other tcp", "not tcp", " frames "):
        assert english not in stats, english
    assert "Die Statistik des JSON-Berichts" in stats
    assert "RFC 5321 §4.2.1 liest einen Antwortcode Ziffer für Ziffer" in stats
    assert "Antwortzeit: von einem Befehl bis zum ersten Paket der Antwort" in stats
    assert "erfolgreich 3" in stats
    assert "sonstiges TCP" in stats and "kein TCP" in stats and "Frames" in stats
    assert "(+36,95 % der dekodierten Größe)" in stats and "36.95" not in stats
    assert "57,7 KiB" in stats and "57.7 KiB" not in text
    # the index and the overview: durations and start offsets with a decimal comma
    assert "4,623 s" in text and "4.623 s" not in text
    assert "+0,712 s" in text and "+0.712 s" not in text


def test_english_html_statistics_keep_their_words(tmp_path: Path) -> None:
    stats = statistics(page(tmp_path, "en", sample("mixed-all")))
    assert "The statistics of the JSON report (“stats”, the same as  mailtrace stats ): counted" in stats
    assert "RFC 5321 §4.2.1 reads a reply code digit by digit" in stats
    assert "Latency: from a command to the first packet of the reply" in stats
    assert "succeeded 3" in stats and "other tcp" in stats and "(+36.95 % of the decoded size)" in stats
    assert "57.7 KiB" in stats


# --------------------------------------------------------------------------- finding 5: German Info column


def test_german_text_view_words_its_placeholders_and_fetch_summaries() -> None:
    out = flat(cli("analyze", "--no-color", "--lang", "de", "--width", "400", sample("imap-session")))
    assert "C: DPDO1 LOGIN carol [Passwort]" in out
    assert "C: [SASL-Antwort]" in out
    assert "E-Mail 1: „Welcome to remote.example“ von Alice Example <alice@local.example>" in out
    assert "Aufbau der E-Mail 2: multipart/mixed: 1 text/plain 174 B" in out
    for english in ("[password]", "[SASL response]", "message 1: “", "message 2 structure:"):
        assert english not in out, english
    pop3 = cli("analyze", "--no-color", "--lang", "de", "--width", "400", sample("pop3-session"))
    assert "C: PASS [Passwort]" in pop3 and "C: APOP bob [Digest]" in pop3
    assert "[password]" not in pop3 and "[digest]" not in pop3


def test_english_text_view_keeps_the_dissectors_words() -> None:
    out = flat(cli("analyze", "--no-color", "--width", "400", sample("imap-session")))
    assert "C: DPDO1 LOGIN carol [password]" in out
    assert "message 1: “Welcome to remote.example” from Alice Example <alice@local.example>" in out
    assert "message 2 structure: multipart/mixed:" in out


def test_german_html_packet_rows_word_placeholders_and_fetch_summaries(tmp_path: Path) -> None:
    text = visible(page(tmp_path, "de", "--lang", "de", sample("imap-session")))
    assert "C: DPDO1 LOGIN carol [Passwort]" in text
    assert "E-Mail 1: „Welcome to remote.example“ von Alice Example" in text
    assert "[password]" not in text and "message 1: “" not in text


def test_german_durations_in_session_headers_and_flows() -> None:
    out = cli("analyze", "--no-color", "--lang", "de", sample("imap-session"))
    header = out.splitlines()[1]
    assert "· 1,115 s ·" in header, header
    flows = cli("flows", "--no-color", "--lang", "de", sample("mixed-all"))
    assert "2 Stationen in 0,060 s" in flows
    assert re.search(r"SMTP DATA\s+0,060 s", flows)
    assert not re.search(r"\b0\.\d{3} s", flows)
    english = cli("flows", "--no-color", sample("mixed-all"))
    assert "2 hops in 0.060 s" in english


# --------------------------------------------------------------------------- finding 12: partial by request


def test_pop3_top_is_partial_by_request_not_incomplete(tmp_path: Path) -> None:
    table = cli("analyze", "--no-color", "--width", "400", sample("pop3-session"))
    row = next(line for line in table.splitlines() if "“Quarterly log excerpt”" in line and " 29 " in line)
    assert "736 bytes, partial by request (TOP: the header and 3 body lines)" in row
    assert "incomplete" not in row
    headers = cli("analyze", "--headers", "--session", "1", "--no-color", "--width", "400", sample("pop3-session"))
    assert "736 bytes · partial by request: POP3 TOP returns only the header and the first 3 body lines" in headers
    assert "INCOMPLETE" not in headers
    assert "not all of it fetched: the client asked for part of the message" in headers
    assert "incomplete: the message ended before this part did" not in headers
    text = visible(page(tmp_path, "pop3", sample("pop3-session")))
    assert "end of message (pop3-top, partial by request (TOP: the header and 3 body lines))" in text
    assert "(pop3-top, incomplete)" not in text
    german = cli("analyze", "--no-color", "--lang", "de", "--width", "400", sample("pop3-session"))
    assert "736 Bytes, auf Wunsch unvollständig (TOP: der Kopf und 3 Zeilen des Rumpfs)" in german


def test_imap_header_fetch_is_partial_by_request() -> None:
    out = cli("analyze", "--no-color", "--width", "400", sample("imap-session"))
    assert "partial by request (header only)" in out
    assert "incomplete (header only)" not in out


def test_lost_bytes_stay_incomplete(tmp_path: Path) -> None:
    cap = Capture()
    t = Tcp(cap, client=("10.9.0.1", 41000), server=("10.9.0.2", 110)).handshake()
    t.s(b"+OK ready\r\n").c(b"USER bob\r\n").s(b"+OK\r\n").c(b"PASS x\r\n").s(b"+OK in\r\n")
    t.c(b"RETR 1\r\n").s(b"+OK 200 octets\r\nSubject: lost\r\n\r\nfirst line\r\n")
    t.s(b"x" * 100 + b"\r\n", drop=True).s(b"last\r\n.\r\n").c(b"QUIT\r\n").s(b"+OK bye\r\n").fin()
    out = cli("analyze", "--no-color", "--width", "400", str(cap.write(tmp_path / "lost.pcap")))
    assert "⚠ incomplete" in out and "partial by request" not in out


# --------------------------------------------------------------------------- AUTH cancelled with "*"


def cancelled_auth(tmp_path: Path) -> str:
    cap = Capture()
    t = Tcp(cap, client=("10.2.0.4", 42000), server=("10.2.0.9", 25)).handshake()
    t.s(b"220 mx.example ESMTP\r\n").c(b"EHLO c.example\r\n").s(b"250-mx.example\r\n250 AUTH PLAIN\r\n")
    t.c(b"AUTH PLAIN\r\n").s(b"334 \r\n").c(b"*\r\n").s(b"501 5.7.0 Authentication aborted\r\n")
    t.c(b"QUIT\r\n").s(b"221 bye\r\n").fin()
    return str(cap.write(tmp_path / "cancel.pcap"))


def test_cancelled_auth_is_not_a_refused_login_in_the_text_view(tmp_path: Path) -> None:
    pcap = cancelled_auth(tmp_path)
    out = cli("analyze", "--no-color", "--width", "400", pcap)
    row = next(line for line in out.splitlines() if "S: 501 5.7.0 Authentication aborted" in line)
    assert "the client cancelled the authentication (*)" in row
    assert "refused" not in row and "login ?" not in row
    german = cli("analyze", "--no-color", "--lang", "de", "--width", "400", pcap)
    assert "der Client bricht die Authentisierung ab (*)" in german
    assert "Anmeldung ?: abgelehnt" not in german


def test_cancelled_auth_in_the_html_report(tmp_path: Path) -> None:
    pcap = cancelled_auth(tmp_path)
    text = visible(page(tmp_path, "cancel", pcap))
    assert "the client cancelled the authentication (*)" in text
    assert "cancelled by the client" in text  # the authentication table's outcome
    assert "login cancelled" in text and "login failed" not in text  # the index
    assert "login PLAIN: rejected" not in text
    german = visible(page(tmp_path, "cancel-de", "--lang", "de", pcap))
    assert "der Client bricht die Authentisierung ab (*)" in german and "vom Client abgebrochen" in german
