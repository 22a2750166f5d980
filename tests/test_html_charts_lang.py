"""The SVG drawings of the HTML report speak the report's language: their own words (tooltips, axis
labels, legends, the ladder's lifeline names) come from the catalogue and their numbers are written as
the language writes them (``6.791 Bytes (73,0 %)`` in German); the English report stays as it was."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mt_html_check import check_safe, html_report

from mailtrace.render.html_stats import stats_view
from mailtrace.render.svg import Arrow, Bar, Spread, ladder, share_bar, spread_chart, timeline_chart

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "mixed-all.pcap"

GERMAN_CHART_TEXTS = [
    # base64 overhead chart: legend and tooltip, German thousands dot and decimal comma
    "<title>dekodierter Inhalt: 6.791 Bytes (73,0 %)</title>",
    '<text class="lbl" x="14" y="39">dekodierter Inhalt: 6.791 Bytes (73,0 %)</text>',
    "<title>Base64-Aufschlag: 2.509 Bytes (27,0 %)</title>",
    # latency and duration spreads
    "<title>IMAP FETCH: 2 × · Median 871 µs · p95 1,07 ms · Maximum 1,07 ms</title>",
    "<title>SMTP Datenende: 3 × · Median 2,82 ms · p95 6,17 ms · Maximum 6,17 ms</title>",
    "<title>IMAP-Sitzung: 1 × · Median 4,62 s · p95 4,62 s · Maximum 4,62 s</title>",
    # timeline: title, tooltips (singular and plural), axis labels
    "<title>Begonnene Sitzungen im Zeitverlauf</title>",
    "<title>SMTP: 2 Sitzungen ab +0,6935 s</title>",
    "<title>POP3: 1 Sitzung ab +0,809 s</title>",
    "<title>IMAP: 1 Sitzung ab +0 s</title>",
    'text-anchor="middle">1 s</text>',
    # sequence diagram lifelines
    'text-anchor="middle">Client</text>',
    'text-anchor="middle">Server</text>',
]

ENGLISH_CHART_TEXTS = [
    "<title>decoded content: 6,791 bytes (73.0 %)</title>",
    '<text class="lbl" x="14" y="39">decoded content: 6,791 bytes (73.0 %)</text>',
    "<title>base64 overhead: 2,509 bytes (27.0 %)</title>",
    "<title>IMAP FETCH: 2 × · median 871 µs · p95 1.07 ms · max 1.07 ms</title>",
    "<title>SMTP end of data: 3 × · median 2.82 ms · p95 6.17 ms · max 6.17 ms</title>",
    "<title>IMAP session: 1 × · median 4.62 s · p95 4.62 s · max 4.62 s</title>",
    "<title>Sessions started over time</title>",
    "<title>SMTP: 2 sessions from +0.6935s</title>",
    "<title>POP3: 1 session from +0.809s</title>",
    "<title>IMAP: 1 session from +0s</title>",
    'text-anchor="middle">1s</text>',
    'text-anchor="middle">client</text>',
    'text-anchor="middle">server</text>',
]

ENGLISH_WORDS_IN_CHARTS = [
    "session(s)", " from +", "· median ", "· max ", " bytes (", "6,791", "2,509", "73.0 %", "27.0 %",
    "Sessions started over time", ">client<", ">server<", "decrypted with the TLS key log",
]


def _svgs(html: str) -> str:
    return "\n".join(re.findall(r"<svg\b.*?</svg>", html, flags=re.S))


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    if not SAMPLE.is_file():
        pytest.skip(f"sample capture not found: {SAMPLE}")
    out = tmp_path_factory.mktemp("charts")
    return {
        lang: html_report(out / f"{lang}.html", str(SAMPLE), "--lang", lang) for lang in ("en", "de")
    }


def test_german_charts_have_german_words_and_numbers(reports: dict[str, str]) -> None:
    de = reports["de"]
    check_safe(de)
    svgs = _svgs(de)
    for expected in GERMAN_CHART_TEXTS:
        assert expected in svgs, expected


def test_german_charts_keep_no_english_words(reports: dict[str, str]) -> None:
    svgs = _svgs(reports["de"])
    for word in ENGLISH_WORDS_IN_CHARTS:
        assert word not in svgs, word
    # no English decimal point in the numbers the charts write themselves (spreads, timeline, shares)
    for tip in re.findall(r"<title>([^<]*(?:Median|Sitzung ab|Bytes \()[^<]*)</title>", svgs):
        assert not re.search(r"\d\.\d", tip.replace("6.791", "").replace("2.509", "")), tip


def test_english_charts_unchanged(reports: dict[str, str]) -> None:
    svgs = _svgs(reports["en"])
    for expected in ENGLISH_CHART_TEXTS:
        assert expected in svgs, expected
    for word in ("Sitzung", "Median", "Maximum", "Bytes (", "Client<", "Server<", "73,0"):
        assert word not in svgs, word


def test_chart_builders_default_to_english_and_localize_german() -> None:
    spread = [Spread("SMTP DATA", 1234, 0.5, 1.5, 900.0)]
    en = str(spread_chart(spread, title="t"))
    de = str(spread_chart(spread, title="t", lang="de"))
    assert "SMTP DATA: 1234 × · median 500 ms · p95 1.5 s · max 15 min" in en
    assert "SMTP DATA: 1234 × · Median 500 ms · p95 1,5 s · Maximum 15 min" in de
    share = [Bar("a", 12345, "ok"), Bar("b", 5, "warn")]
    assert "a: 12,345 B (100.0 %)" in str(share_bar(share, title="t", unit=" B"))
    assert "a: 12.345 B (100,0 %)" in str(share_bar(share, title="t", unit=" B", lang="de"))
    starts = [(0.0, "smtp"), (5400.0, "smtp")]
    en_tl = str(timeline_chart(starts, 0.0, 5400.0, protocols=["smtp"]))
    de_tl = str(timeline_chart(starts, 0.0, 5400.0, protocols=["smtp"], lang="de"))
    for tick in (">0s<", ">16.67m<", ">50m<", ">1.111h<", "1 session from +1.462h<"):
        assert tick in en_tl, tick
    for tick in (">0 s<", ">16,67 min<", ">50 min<", ">1,111 h<", "1 Sitzung ab +1,462 h<"):
        assert tick in de_tl, tick


def test_ladder_words_follow_the_language_and_capture_text_stays_escaped() -> None:
    arrows = [Arrow("c2s", "EHLO <b>x</b>", 0.25, "greeting", 7)]
    en = str(ladder(arrows, client="1.2.3.4:5", server="<srv>", sid=1, decrypted=frozenset({7})))
    de = str(ladder(arrows, client="1.2.3.4:5", server="<srv>", sid=1, decrypted=frozenset({7}), lang="de"))
    assert ">client</text>" in en and ">server</text>" in en
    assert "<title>decrypted with the TLS key log: encrypted on the wire</title>" in en
    assert "frame 7, +0.250000 s: EHLO &lt;b&gt;x&lt;/b&gt;" in en
    assert "Sequence diagram: 1.2.3.4:5 and &lt;srv&gt;" in en
    assert ">Client</text>" in de and ">Server</text>" in de
    assert "<title>mit dem TLS-Key-Log entschlüsselt: auf der Leitung verschlüsselt</title>" in de
    assert "Frame 7, +0.250000 s: EHLO &lt;b&gt;x&lt;/b&gt;" in de
    assert "Sequenzdiagramm: 1.2.3.4:5 und &lt;srv&gt;" in de
    for page in (en, de):
        assert "<b>" not in page and "<srv>" not in page


def test_the_rest_of_a_long_list_is_named_in_the_language() -> None:
    senders = [{"value": f"u{i}@<x>.example", "count": 20 - i} for i in range(15)]
    stats = {"addresses": {"senders": senders}}
    en = str(stats_view(stats)["addresses"][0][1])
    de = str(stats_view(stats, lang="de")["addresses"][0][1])
    assert ">3 others</text>" in en and ">3 weitere Einträge</text>" in de
    one = {"addresses": {"senders": senders[:13]}}
    assert ">1 other</text>" in str(stats_view(one)["addresses"][0][1])
    assert ">1 weiterer Eintrag</text>" in str(stats_view(one, lang="de")["addresses"][0][1])
    assert "&lt;x&gt;" in de and "<x>" not in de
