"""The statistics tables of ``stats`` and ``analyze --stats`` follow ``--lang``.

English stays what it always was; German takes every word from the catalogue (``stats.*`` and the
keys the HTML report's statistics share) and writes numbers the German way (59.066, 4,62 s).
"""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner
from rich.console import Console
from support import run_cli

from mailtrace.cli import main
from mailtrace.render import catalog
from mailtrace.render.catalog_de import DE
from mailtrace.render.findings import smtp_reply_matrix

MIXED = str(Path(__file__).resolve().parents[1] / "samples" / "mixed-all.pcap")

GERMAN = (
    "Mitschnitt\n",
    "Protokollhierarchie\n",
    "Mail-Protokolle\n",
    "Häufigste Server (Top 10)\n",
    "Häufigste Clients (Top 10)\n",
    "Befehle\n",
    "SMTP-Antworten nach Klasse und Kategorie (RFC 5321 §4.2.1)\n",
    "POP3-/IMAP-Antworten\n",
    "Nachrichten und Anhänge\n",
    "Anmeldungen\n",
    "Häufigste Adressen (Top 10)\n",
    "Sitzungsdauern und Antwortzeiten\n",
    "Sitzungen im Zeitverlauf (Intervalle zu 1 s)\n",
    "Spam-Abwehr\n",
    "Befunde\n",
    "Bytes: ganze Frames in der ersten Zeile, TCP-Nutzdaten darunter (UDP-Nutzdaten bei dns (udp))",
    "erstes Paket (UTC)",
    "sonstiges TCP",
    "kein TCP",
    "2yz positive Erledigung",
    "5yz dauerhaft negativ",
    "Verbindungen",
    "OK (mit Tag)",
    "+ (Fortsetzung)",
    "Datenende → Antwort",
    "EHLO → Antwort",
    "Sitzungsdauer ",
    "Verfahren smtp LOGIN",
    "Benutzer bob",
    "  erfolgreich",
    "Weiterleitung abgewiesen",
    "Absender (MAIL FROM)",
)

ENGLISH = (
    "Capture", "Protocol hierarchy", "Mail protocols", "Top servers", "Commands", "SMTP replies by class",
    "POP3 / IMAP responses", "Messages and attachments", "Logins", "Top addresses", "reply latency",
    "Sessions over time", "Spam defences", "Findings", "whole frames", "first packet", "last packet",
    "duration", "other tcp", "not tcp", "frames", "positive completion", "permanent negative", "connections",
    "tagged", "continuation", "end of data", "→ reply", "mechanism", "user bob", "succeeded", "attempts",
    "cleartext", "relaying refused", "senders", "recipients", "domains", "size median", "attachments",
    "decoded", "encoded", "overhead", "value", "count", "median", "max", "total", "class", "status",
    "server", "client", "sessions", "packets", "bytes", "protocol", "payload", "buckets", "finding",
    "high", "medium", "low", "info",
)
"""Words of the English tables; none may be left in the German ones (matched as whole words, case-sensitive)."""


def _stats(*args: str) -> str:
    result = run_cli("stats", *args, MIXED)
    assert result.exit_code == 0, result.output
    return str(result.stdout)


def _leftovers(out: str) -> list[str]:
    return [word for word in ENGLISH if re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", out)]


def test_stats_tables_in_german() -> None:
    out = _stats("--lang", "de")
    for words in GERMAN:
        assert words in out, words
    assert _leftovers(out) == []
    # counts of 1000 and more group their thousands with a dot, decimals take a comma
    assert re.search(r"\n Bytes +59\.066\n", out)
    assert re.search(r"\n Dauer +4,62 s\n", out)
    assert re.search(r"\n Frames +389 +100,0 % +57,7 KiB\n", out)
    assert re.search(r"\n   Aufschlag +2,5 KiB \(36,95 %\)\n", out)
    assert re.search(r"\n SMTP +Sitzungsdauer +4 +1,08 s +2,41 s +2,41 s\n", out)
    assert re.search(r"\n SMTP +AUTH → Antwort +1 +255 µs", out)  # the server's answer to the last SASL line
    assert re.search(r"\n Befund +hoch +mittel +niedrig +Info\n", out)
    # protocol names, commands, reply codes and header names stay as they are
    for kept in ("IMAP", "POP3", "SMTP", "TLS-Sitzungen", "IPv6", "250×17", "MAIL FROM", "RCPT TO", "x2z", "p95"):
        assert kept in out, kept


def test_stats_tables_in_english_are_unchanged() -> None:
    out = _stats()
    assert out == _stats("--lang", "en")
    for words in ("Capture\n", "Protocol hierarchy\n", "SMTP replies by class and category (RFC 5321 §4.2.1)\n",
                  "2yz positive completion", "OK (tagged)", "+ (continuation)", "end of data → reply",
                  "bytes: whole frames on the first line, TCP payload below it (UDP payload for dns (udp))"):
        assert words in out, words
    assert re.search(r"\n bytes +59,066\n", out)
    assert re.search(r"\n duration +4\.62 s\n", out)
    assert re.search(r"\n   overhead +2\.5 KiB \(36\.95 %\)\n", out)
    assert "Protokollhierarchie" not in out and "Sitzungen" not in out


def test_stats_follows_the_environment() -> None:
    result = CliRunner().invoke(main, ["stats", MIXED], env={"MAILTRACE_LANG": "de_DE.UTF-8"}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Protokollhierarchie\n" in result.stdout


def test_analyze_stats_in_german_ends_with_the_same_tables() -> None:
    result = run_cli("analyze", "--stats", "--lang", "de", MIXED)
    assert result.exit_code == 0, result.output
    out = str(result.stdout)
    tables = _stats("--lang", "de")
    assert out.endswith(tables)
    assert "Protokollhierarchie" in out and "Protocol hierarchy" not in out
    english = run_cli("analyze", "--stats", MIXED).stdout
    assert english.endswith(_stats()) and "Protocol hierarchy\n" in english


def _render(table: object) -> str:
    console = Console(width=200, color_system=None, record=True)
    console.print(table)
    return console.export_text()


def test_reply_matrix_in_german_groups_thousands() -> None:
    german = _render(smtp_reply_matrix({"250": 1234, "251": 1, "550": 2, "421": 5}, "de"))
    assert "2yz positive Erledigung" in german and "4yz vorübergehend negativ" in german
    assert "Mailsystem" in german and "Verbindungen" in german and "Klasse" in german and "Summe" in german
    assert "250×1.234 251×1" in german
    assert re.search(r"2yz positive Erledigung +1\.235 +1\.235 ", german)
    english = _render(smtp_reply_matrix({"250": 1234, "251": 1, "550": 2, "421": 5}))
    assert "250×1,234 251×1" in english and "2yz positive completion" in english and "total" in english


def test_every_statistics_word_has_its_own_german_translation() -> None:
    keys = [k for k in catalog.EN if k.startswith("stats.")]
    assert len(keys) > 60
    assert [k for k in keys if k not in DE] == []
    assert [k for k in keys if DE[k] == catalog.EN[k]] == []
