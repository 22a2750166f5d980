"""The HTML report without a browser: same data as the JSON report, safe markup, limits, CLI behaviour."""

from __future__ import annotations

import base64
import dataclasses
import gc
import gzip
import hashlib
import io
import json
import re
import weakref
from pathlib import Path
from typing import Any

import mt_html_capture as cap
import pytest
from mt_html_check import (
    check_safe,
    embedded_capture,
    embedded_extra,
    embedded_files,
    embedded_sessions,
    html_report,
    index_ids,
    json_report,
    run,
    samples_dir,
    shared_dir,
    without_run_time,
)

from mailtrace.capture.reader import open_capture
from mailtrace.commands.common import build_config
from mailtrace.pipeline import Analyzer
from mailtrace.render import html as html_mod
from mailtrace.render.html import HtmlLimits, HtmlReport, safe_filename, script_json
from mailtrace.render.svg import clean_text

SAMPLES = [
    "smtp-submission-auth",
    "smtp-errors",
    "smtp-relay-seed-story",
    "smtp-starttls",
    "pop3-session",
    "imap-session",
    "ipv6",
    "mixed-all",
    "tls-implicit",
]


def sessions_of(path: Path, **config: Any) -> tuple[Analyzer, list[Any]]:
    analyzer = Analyzer(dataclasses.replace(build_config(), **config))
    return analyzer, list(analyzer.run([open_capture(str(path))]))


def render(path: Path, out: Path, **kw: Any) -> str:
    analyzer = Analyzer(build_config())
    report = HtmlReport(out, **kw)
    for s in analyzer.run([open_capture(str(path))]):
        report.session(s)
    report.end(analyzer.stats)
    return out.read_text("utf-8")


# --------------------------------------------------------------------------- real captures


@pytest.mark.parametrize("name", SAMPLES)
def test_report_embeds_the_json_report(name: str, tmp_path: Path) -> None:
    """One source of truth: every session of the JSON report is in the index, with its section and data."""
    pcap = samples_dir() / f"{name}.pcap"
    extra = []
    keylog = pcap.with_suffix(".keylog")
    if keylog.exists():
        extra = ["--tls-keylog", str(keylog)]
    expected = json_report(str(pcap), *extra)
    html = html_report(tmp_path / "r.html", str(pcap), *extra)
    check_safe(html)
    ids = [s["id"] for s in expected["sessions"]]
    assert ids, "sample without sessions"
    assert index_ids(html) == ids
    assert embedded_sessions(html) == expected["sessions"]
    assert embedded_capture(html) == expected["capture"]
    for s in expected["sessions"]:
        assert f'<details class="session" id="s{s["id"]}"' in html
        assert f"tcp.stream eq {s['stream']}" in html
        for c in s["commands"][:50]:  # the packet table shows the frames the JSON names
            assert f'id="s{s["id"]}-f{c["frame"]}"' in html
    assert f">{expected['capture']['packets']:,}<" in html
    # "Protocol details" tables are the protocols' own records: the context, its checks and the
    # retransmissions (shown on the rows) were dumped there as raw JSON
    assert set(re.findall(r'<table class="kv"><caption>([^<]*)</caption>', html)) <= {"smtp", "pop3", "imap"}


def test_tls_sections_show_the_handshake(tmp_path: Path) -> None:
    pcap = samples_dir() / "smtp-starttls.pcap"
    keylog = pcap.with_suffix(".keylog")
    expected = json_report(str(pcap), "--tls-keylog", str(keylog))
    html = html_report(tmp_path / "r.html", str(pcap), "--tls-keylog", str(keylog))
    infos = [s["tls_info"] for s in expected["sessions"] if s["tls_info"]]
    assert infos
    for info in infos:
        assert f">{info['cipher']}<" in html
        assert f">{info['version']}<" in html
    assert "TLS begins here (STARTTLS accepted)" in html
    assert "decrypted with the key log" in html


def test_secrets_redacted_unless_asked(tmp_path: Path) -> None:
    pcap = samples_dir() / "pop3-session.pcap"
    facts = json.loads(pcap.with_name("pop3-session.facts.json").read_text())
    passwords = set(re.findall(r'"password": "([^"]+)"', json.dumps(facts)))
    assert passwords
    html = html_report(tmp_path / "r.html", str(pcap))
    for pw in passwords:
        assert pw not in html
    assert "hidden (--show-secrets shows it)" in html
    assert "Credentials in cleartext" in html
    shown = html_report(tmp_path / "s.html", str(pcap), "--show-secrets")
    assert any(pw in shown for pw in passwords)
    assert "Secrets are shown in this report" in shown


def test_cleartext_credentials_counted(tmp_path: Path) -> None:
    expected = json_report(str(samples_dir() / "pop3-session.pcap"))
    attempts = sum(len(s["auth"]) for s in expected["sessions"] if s["tls"] == "none")
    html = html_report(tmp_path / "r.html", str(samples_dir() / "pop3-session.pcap"))
    m = re.search(r'Credentials in cleartext</div><div class="v">(\d+)<', html)
    assert m is not None and int(m.group(1)) == attempts > 0


def test_corpus_captures_render_safely(tmp_path: Path) -> None:
    """Every capture of the shared corpus (hostile ones included) gives a safe page with all its sessions."""
    corpus = shared_dir() / "corpus"
    if not corpus.is_dir():
        pytest.skip(f"shared corpus not found at {corpus} (set MAILTRACE_SHARED)")
    manifest = (corpus / "MANIFEST.tsv").read_text().splitlines()[1:]
    files = [corpus / line.split("\t")[1] for line in manifest if line.strip()]
    assert len(files) > 50
    for i, original in enumerate(files):
        path = original
        if path.suffix == ".gz":
            # read uncompressed: capture/reader.py leaves a .gz file's raw handle to the garbage
            # collector (GzipFile does not close its fileobj), an engine matter outside this test
            plain = tmp_path / path.stem
            plain.write_bytes(gzip.decompress(path.read_bytes()))
            path = plain
        out = tmp_path / f"{i}.html"
        html = render(path, out)
        check_safe(html)
        expected = json_report(str(path))
        assert index_ids(html) == [s["id"] for s in expected["sessions"]], path
        assert len(html) < 8 * 1024 * 1024, path


# --------------------------------------------------------------------------- hostile input


@pytest.fixture
def hostile_pcap(tmp_path: Path) -> Path:
    return cap.write_pcap(tmp_path / "hostile.pcap", cap.hostile_smtp(), cap.hostile_imap())


def test_hostile_capture_is_shown_as_text(hostile_pcap: Path, tmp_path: Path) -> None:
    html = html_report(tmp_path / "r.html", str(hostile_pcap), "--embed-attachments")
    check_safe(html)
    assert "window.__pwned" in html  # the hostile text is there, as text
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html  # the subject
    assert "&lt;img src=x onerror=window.__pwned=11&gt;" in html  # an IMAP mailbox name
    assert "<script>window" not in html and "<img" not in html and "<iframe" not in html
    assert cap.SECRET not in html and "s3cr3t" not in html  # AUTH PLAIN password, redacted
    assert "\\xff\\xfe" in html  # bytes that are not UTF-8 are shown, escaped
    # JSON data blocks cannot end their script element early
    for blob in re.findall(r'<script type="application/json"(?: [^>]*)?>(.*?)</script>', html, re.S):
        assert "<" not in blob
        json.loads(blob)


def test_hostile_data_in_every_field(
    hostile_pcap: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fields the MIME pipeline fills (attachments, part tree, headers, carrier, records) are escaped too."""
    evil = '<img src=x onerror="window.__pwned=1">\u202egpj.exe\x00'
    real = html_mod.session_json

    def hostile_json(s: Any, show_secrets: bool = False, **kw: Any) -> dict[str, Any]:
        data = real(s, show_secrets, **kw)
        for m in data["messages"]:
            m["attachments"] = [
                {
                    "filename": evil,
                    "content_type": evil,
                    "encoding": evil,
                    "bytes": 3,
                    "encoded_bytes": 4,
                    "md5": evil,
                    "sha256": evil,
                    evil: evil,
                }
            ]
            m["parts"] = {
                "path": "1",
                "content_type": evil,
                "filename": evil,
                "defects": [evil],
                "children": [{"path": evil, "content_type": "text/plain", "children": []}],
            }
            m["defects"] = [evil]
            m["carrier"] = {evil: evil}
        data["transactions"] = [{evil: evil, "x": [evil]}]
        data["new_protocol_facts"] = {evil: {evil: evil}}
        data["tls_info"] = {
            "version": evil,
            "cipher": evil,
            "certificates": [{"subject": evil, "san": [evil]}],
            "alerts": [{"level": evil, "description": evil}],
            "anomalies": [evil],
        }
        return data

    monkeypatch.setattr(html_mod, "session_json", hostile_json)
    analyzer, sessions = sessions_of(hostile_pcap)
    for s in sessions:
        for m in s.messages:
            m.summary = dataclasses.replace(m.summary, headers=((evil, evil), ("Subject", evil)))
    out = tmp_path / "r.html"
    report = HtmlReport(out)
    for s in sessions:
        report.session(s)
    report.end(analyzer.stats)
    html = out.read_text("utf-8")
    check_safe(html)
    assert "<img" not in html and "\u202e" not in html and "\x00" not in html
    assert "⟨U+202E⟩" in html and "␀" in html  # shown, not obeyed
    assert html.count("&lt;img src=x onerror=&#34;window.__pwned=1&#34;&gt;") > 20


def test_ten_megabyte_line_stays_bounded(tmp_path: Path) -> None:
    long_line = b"EHLO " + b"A" * (10 * 1024 * 1024) + b"\r\n"
    frames = cap.session_frames(
        [
            (cap.S, b"220 hi\r\n"),
            (cap.C, long_line),
            (cap.S, b"500 too long\r\n"),
            (cap.C, b"QUIT\r\n"),
            (cap.S, b"221 bye\r\n"),
        ]
    )
    pcap = cap.write_pcap(tmp_path / "long.pcap", frames)
    html = html_report(tmp_path / "r.html", str(pcap))
    check_safe(html)
    assert len(html) < 2 * 1024 * 1024
    assert "more packet rows are not shown" in html
    assert "more arrows are not drawn" in html


# --------------------------------------------------------------------------- limits and memory


def test_limits_are_applied_and_said(tmp_path: Path) -> None:
    pcap = samples_dir() / "mixed-all.pcap"
    expected = json_report(str(pcap))
    n = len(expected["sessions"])
    limits = HtmlLimits(
        max_rows=12, max_arrows=5, max_sections=3, max_session_json=20_000, max_index_rows=n - 1
    )
    html = render(pcap, tmp_path / "r.html", limits=limits)
    check_safe(html)
    assert html.count('<details class="session"') == 3
    assert "have no detail section because the report reached its size limits" in html
    assert "more packet rows are not shown (limit 12 per session)" in html
    assert "more arrows are not drawn (limit 5)" in html
    assert "1 further session is counted in the overview but not listed" in html  # n - 1 of n listed
    assert len(index_ids(html)) == n - 1
    assert f'id="ov-sessions">{n}<' in html
    big = [s for s in expected["sessions"][:3] if len(script_json(s)) > 20_000]
    assert len(embedded_sessions(html)) == 3 - len(big)


def test_byte_budget_turns_sections_into_index_rows(tmp_path: Path) -> None:
    pcap = samples_dir() / "mixed-all.pcap"
    html = render(pcap, tmp_path / "r.html", limits=HtmlLimits(max_bytes=60_000))
    sections = re.findall(r'<details class="session" id="s\d+"', html)
    assert 0 < len(sections) < len(index_ids(html))
    body = html[html.index('id="sections"') : html.index('id="about"')]
    assert len(body) < 60_000 + 2_000


def test_sessions_are_not_kept(tmp_path: Path) -> None:
    """The consumer renders each session when it arrives and keeps no reference to it."""
    analyzer = Analyzer(build_config())
    report = HtmlReport(tmp_path / "r.html")
    refs = []
    for s in analyzer.run([open_capture(str(samples_dir() / "mixed-all.pcap"))]):
        report.session(s)
        refs.append(weakref.ref(s))
        del s
    gc.collect()
    assert refs and all(r() is None for r in refs)
    report.end(analyzer.stats)


# --------------------------------------------------------------------------- command line


def test_analyze_html_is_one_more_consumer(tmp_path: Path) -> None:
    pcap = samples_dir() / "smtp-errors.pcap"
    out = tmp_path / "a.html"
    result = run("analyze", str(pcap), "--html", str(out))
    assert result.exit_code == 0, result.output
    assert "session 1" in result.stdout  # the terminal view is still printed
    html = out.read_text("utf-8")
    assert index_ids(html) == [s["id"] for s in json_report(str(pcap))["sessions"]]


def test_embed_needs_html(tmp_path: Path) -> None:
    result = run("analyze", str(samples_dir() / "smtp-errors.pcap"), "--embed-attachments")
    assert result.exit_code == 2
    assert "--embed-attachments needs --html" in result.stderr


def test_unwritable_output_fails_before_analysis(tmp_path: Path) -> None:
    result = run(
        "report", str(samples_dir() / "smtp-errors.pcap"), "-o", str(tmp_path / "no" / "such" / "r.html")
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("mailtrace: cannot write") and result.stderr.count("\n") == 1


def test_report_to_stdout(tmp_path: Path) -> None:
    result = run("report", str(samples_dir() / "smtp-errors.pcap"), "-o", "-")
    assert result.exit_code == 0
    assert result.stdout.startswith("<!DOCTYPE html>") and result.stdout.rstrip().endswith("</html>")


def test_failed_run_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "r.html"
    report = HtmlReport(out)
    report.session(sessions_of(samples_dir() / "smtp-errors.pcap")[1][0])
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(report, "_page_context", lambda stats: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        report.end(Analyzer(build_config()).stats)
    assert list(tmp_path.iterdir()) == []


def test_report_is_written_atomically(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    out.write_text("old report")
    html_report(out, str(samples_dir() / "smtp-errors.pcap"))
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]


# --------------------------------------------------------------------------- attachments


def test_attachments_embedded_only_when_asked(tmp_path: Path) -> None:
    data = b"%PDF-1.4\n" + bytes(range(256)) * 8
    pcap = cap.write_pcap(tmp_path / "a.pcap", cap.simple_smtp(data, name="../../etc/<b>q</b>.pdf"))
    plain = html_report(tmp_path / "p.html", str(pcap))
    assert embedded_files(plain) == {} and 'class="dl"' not in plain
    html = html_report(tmp_path / "e.html", str(pcap), "--embed-attachments")
    check_safe(html)
    files = embedded_files(html)
    assert len(files) == 1
    ((key, b64),) = files.items()
    assert base64.b64decode(b64) == data
    assert hashlib.sha256(data).hexdigest() in html
    name = re.search(rf'data-src="{key}" data-name="([^"]*)"', html)
    assert name is not None and name.group(1) == "etc_b_q_b_.pdf"


def test_attachment_size_cap(tmp_path: Path) -> None:
    big = bytes(range(256)) * (2 * 1024 * 1024 // 256 + 1)  # just over 2 MiB
    frames = cap.simple_smtp(big) + cap.simple_smtp(
        b"small one", name="small.txt", t0=1_700_000_200.0, cport=40200
    )
    pcap = cap.write_pcap(tmp_path / "a.pcap", frames)
    html = html_report(tmp_path / "e.html", str(pcap), "--embed-attachments")
    files = embedded_files(html)
    assert len(files) == 1
    assert base64.b64decode(next(iter(files.values()))) == b"small one"
    assert len(html) < 1_000_000  # the 2.7 MB of base64 are not in the page


# --------------------------------------------------------------------------- helpers


def test_script_json_cannot_close_its_element() -> None:
    value = {"a": "</script><!-- <script>alert(1)</script> ]]> & \u2028\u2029", "b": "\udcff"}
    out = script_json(value)
    assert "<" not in out and ">" not in out and "&" not in out and "\u2028" not in out
    back = json.loads(out)
    assert back["a"] == value["a"]


def test_clean_text_makes_controls_visible() -> None:
    assert clean_text("a\x00b\x1b[31m\u202egpj.exe\tc\n") == "a␀b␛[31m⟨U+202E⟩gpj.exe\tc\n"
    assert clean_text("caf\udce9") == "caf\\xe9"


def test_safe_filename() -> None:
    assert safe_filename("../../etc/passwd", "x") == "etc_passwd"
    assert safe_filename("<img src=x onerror=1>.txt", "x") == "img_src_x_onerror_1_.txt"
    assert safe_filename("\u202egpj.exe", "x") == "U+202E_gpj.exe"
    assert safe_filename("", "fallback.bin") == "fallback.bin"
    assert len(safe_filename("a" * 500, "x")) == 100


def test_write_to_a_stream() -> None:
    buf = io.StringIO()
    report = HtmlReport(buf, nonce="fixed")
    analyzer = Analyzer(build_config())
    report.end(analyzer.stats)
    html = buf.getvalue()
    assert "'nonce-fixed'" in html and "No session sections." in html
    check_safe(html)


@pytest.mark.parametrize("name", ["smtp-errors", "mixed-all"])
def test_times_are_wiresharks(name: str, tmp_path: Path) -> None:
    """Frame numbers and Time match tshark's for the same capture (Time 0 = the file's first packet)."""
    pcap = samples_dir() / f"{name}.pcap"
    tshark = {}
    for line in pcap.with_name(f"{name}.tshark.txt").read_text().splitlines():
        parts = line.split()
        if len(parts) > 2 and parts[0].isdigit():
            tshark[int(parts[0])] = float(parts[1])
    html = html_report(tmp_path / "r.html", str(pcap))
    rows = re.findall(
        r'<tr id="s\d+-f(\d+)"[^>]*>\s*<td class="n">\d+</td><td class="n" title="[^"]*">([\d.]+)</td>', html
    )
    assert len(rows) > 20
    for frame, shown in rows:
        assert abs(float(shown) - tshark[int(frame)]) < 2e-6, frame


def test_timeline_cap_is_said(tmp_path: Path) -> None:
    pcap = samples_dir() / "mixed-all.pcap"
    n = len(json_report(str(pcap))["sessions"])
    html = render(pcap, tmp_path / "r.html", limits=HtmlLimits(max_timeline=2))
    assert f"the first 2 sessions; {n - 2} later ones are counted above but not drawn." in html


def test_analyze_html_not_to_stdout() -> None:
    result = run("analyze", str(samples_dir() / "smtp-errors.pcap"), "--html", "-")
    assert result.exit_code == 2
    assert "mailtrace report -o -" in result.stderr


# --------------------------------------------------------------------------- findings, statistics, details


EXTRA_KEYS = ("findings", "stats", "flows")
"""The JSON report's top-level keys besides sessions and capture (and filter)."""


def section_of(html: str, sid: int) -> str:
    start = html.index(f'<details class="session" id="s{sid}"')
    return html[start : html.index("</details>\n", html.index('<div class="body">', start))]


def findings_table(html: str) -> str:
    start = html.index('id="findings-table"')
    return html[start : html.index("</table>", start)]


@pytest.mark.parametrize("name", ["pop3-session", "smtp-errors", "mixed-all", "smtp-starttls"])
def test_findings_and_stats_are_the_json_reports(name: str, tmp_path: Path) -> None:
    """The page embeds the JSON report's findings and stats, lists every finding most severe first, counts
    them by severity, and files each under its session's section."""
    pcap = samples_dir() / f"{name}.pcap"
    expected = json_report(str(pcap))
    html = html_report(tmp_path / "r.html", str(pcap))
    check_safe(html)
    extra = embedded_extra(html)
    assert without_run_time(extra) == without_run_time({k: expected[k] for k in EXTRA_KEYS})
    assert "<!--mailtrace:slot" not in html
    table = findings_table(html) if expected["findings"] else ""
    rows = re.findall(r'<tr class="sev-(\w+)" data-sev="\w+">', table)
    assert rows == [f["severity"] for f in expected["findings"]]
    ranks = ["high", "medium", "low", "info"]
    assert rows == sorted(rows, key=ranks.index)
    by_severity = expected["stats"]["findings"]["by_severity"]
    for sev in ranks:
        assert f'data-sev="{sev}">{by_severity[sev]} {sev}</span>' in html
    for f in expected["findings"]:
        assert html_mod.escape(f["title"]) in table
        if f["session"] is not None:
            own = section_of(html, f["session"])
            assert "<h4>Findings</h4>" in own and html_mod.escape(f["title"]) in own
            mine = [g for g in expected["findings"] if g["session"] == f["session"]]
            n = len(mine)
            assert f'{n} finding{"s" if n != 1 else ""} ({mine[0]["severity"]})</span>' in own  # the badge
    for s in expected["sessions"]:
        if not any(f["session"] == s["id"] for f in expected["findings"]):
            assert "<h4>Findings</h4>" not in section_of(html, s["id"])


def test_pop3_cleartext_finding_links_the_pass_frame(tmp_path: Path) -> None:
    pcap = samples_dir() / "pop3-session.pcap"
    expected = json_report(str(pcap))
    html = html_report(tmp_path / "r.html", str(pcap))
    finding = next(f for f in expected["findings"] if f["id"] == "cleartext-credentials" and "bob" in f["title"])
    session = next(s for s in expected["sessions"] if s["id"] == finding["session"])
    pass_frame = next(c["frame"] for c in session["commands"] if c["verb"] == "PASS")
    assert pass_frame in finding["frames"]
    link = f'<a href="#s{session["id"]}-f{pass_frame}">{pass_frame}</a>'
    assert link in findings_table(html) and link in section_of(html, session["id"])
    assert f'id="s{session["id"]}-f{pass_frame}"' in html  # the row the link goes to


def test_secrets_in_findings_only_with_show_secrets(tmp_path: Path) -> None:
    pcap = samples_dir() / "pop3-session.pcap"
    shown = json_report(str(pcap), "--show-secrets")
    details = " ".join(f["detail"] for f in shown["findings"] if f["id"] == "cleartext-credentials")
    assert "bob-pop3-Secret" in details
    html = html_report(tmp_path / "s.html", str(pcap), "--show-secrets")
    assert "bob-pop3-Secret" in findings_table(html)
    hidden = html_report(tmp_path / "h.html", str(pcap))
    assert "bob-pop3-Secret" not in hidden


def test_report_takes_the_findings_options(tmp_path: Path) -> None:
    pcap = samples_dir() / "mixed-all.pcap"
    options = ["--local-domains", "remote.example", "--failed-login-threshold", "1"]
    default = embedded_extra(html_report(tmp_path / "d.html", str(pcap)))["findings"]
    html = html_report(tmp_path / "r.html", str(pcap), *options)
    assert embedded_extra(html)["findings"] == json_report(str(pcap), *options)["findings"] != default


def test_analyze_html_embeds_what_the_json_report_says(tmp_path: Path) -> None:
    """analyze --format json --html: one run, so the page's findings, stats and filter are the printed ones."""
    pcap = samples_dir() / "mixed-all.pcap"
    out = tmp_path / "a.html"
    result = run("analyze", "--format", "json", "--session", "1,5-6", str(pcap), "--html", str(out))
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    html = out.read_text("utf-8")
    extra = embedded_extra(html)
    assert extra == {k: printed[k] for k in ("filter", *EXTRA_KEYS)}
    assert printed["filter"] == {"sessions": [1, 5, 6], "shown": 3}
    assert "Only the sessions that match" in html
    assert embedded_sessions(html) == printed["sessions"]


@pytest.mark.parametrize("view", [[], ["--stats"], ["--follow"], ["--list"], ["--findings-only"]])
def test_every_view_makes_the_findings_once(view: list[str], tmp_path: Path) -> None:
    pcap = samples_dir() / "mixed-all.pcap"
    out = tmp_path / "a.html"
    result = run("analyze", str(pcap), *view, "--html", str(out))
    assert result.exit_code == 0, result.output
    expected = json_report(str(pcap))
    assert without_run_time(embedded_extra(out.read_text("utf-8"))) == without_run_time(
        {k: expected[k] for k in EXTRA_KEYS}
    )
    if "--follow" not in view:
        assert result.stdout.count("Findings: ") == 1


def test_statistics_section(tmp_path: Path) -> None:
    pcap = samples_dir() / "mixed-all.pcap"
    stats = json_report(str(pcap))["stats"]
    html = html_report(tmp_path / "r.html", str(pcap))
    section = html[html.index('<section id="statistics"') : html.index('<section id="sections"')]
    matrix = section[section.index('<table class="grid matrix">') : section.index("</table>", section.index("matrix"))]
    for cls, n in stats["smtp_replies"]["classes"].items():  # row totals: the class counts
        row = matrix[matrix.index(f">{cls}</span>") :]
        assert re.search(r"<td class=\"n\"><strong>(\d+)</strong>", row).group(1) == str(n)  # type: ignore[union-attr]
    for cat in stats["smtp_replies"]["categories"]:
        assert f">{cat}<" in matrix
    for code in stats["smtp_replies"]["codes"]:
        assert f'<td class="mono">{code}</td>' in section
    assert "5.1.8</td><td class=\"n\">1</td><td>bad sender&#39;s system address" in section
    for protocol, verbs in stats["commands"].items():
        for verb in verbs:
            assert f">{verb}</text>" in section, (protocol, verb)
    for sender in stats["addresses"]["senders"]:
        assert f"{sender['value']}: {sender['count']}</title>" in section
    b64 = stats["messages"]["base64"]
    assert f"(+{b64['overhead_percent']} % of the decoded size)" in section
    assert f"base64 overhead: {b64['overhead_bytes']:,} bytes" in section
    assert "<title>Reply latency per command (median, p95, max)</title>" in section
    assert section.count("<svg") >= 8


def test_message_details(tmp_path: Path) -> None:
    """The terminal's --headers view in the page: header meanings, MIME tree, envelope vs header."""
    html = html_report(tmp_path / "r.html", str(samples_dir() / "smtp-submission-auth.pcap"))
    check_safe(html)
    assert "Message 1</strong> · SMTP DATA · frames" in html
    assert "<th>Subject</th><td class=\"mono\">=?utf-8?b?R3LDvMOfZSBhdXMgS8O2bG4g4oCTIFF1YXJ0YWxzYmVyaWNodCBR?=" in html
    assert '<div class="decoded">= Grüße aus Köln – Quartalsbericht Q3 📊</div>' in html
    assert "Short topic of the message, written by the author." in html
    assert "MIME structure (4 parts, 2 attachments)" in html
    assert "9,196 bytes as sent → 6,718 decoded (base64 overhead +36.9 %)" in html
    md5, sha256 = "0c1cb2e059a5288e410b0d948eb78202", "ef6fd627d96174299987caa2e1ede4f22427f2f1ad6f4248b09ccf2faf215457"
    assert f"md5 {md5}<br>sha256 {sha256}" in html
    assert "<th>MAIL FROM</th><td class=\"mono\">bob@remote.example</td>" in html
    assert re.search(r"nosuch@remote.example</td><td><span class=\"pill bad\">yes, 550</span></td><td>Cc</td>"
                     r"<td class=\"badtext\">rejected by the server", html)
    assert "Bcc (in the envelope, in no To/Cc field): none" in html
    relay = html_report(tmp_path / "relay.html", str(samples_dir() / "smtp-relay-seed-story.pcap"))
    assert "Received chain (1 hop, in path order: hop 1 is nearest the sender)" in relay
    assert "from client.local.example [127.0.0.10]<br>by mail.local.example" in relay


def test_reply_codes_and_extensions_explained(tmp_path: Path) -> None:
    pcap = samples_dir() / "smtp-errors.pcap"
    html = html_report(tmp_path / "r.html", str(pcap))
    assert "↳ 550: permanent failure · mail system — mailbox unavailable, or refused by policy" in html
    assert "↳ 5.1.1: bad destination mailbox address" in html
    assert re.search(r"what the \d+ extensions offered mean</summary>", html)
    assert "↳ PIPELINING: commands may be sent in batches" in html
    plain = html_report(tmp_path / "p.html", str(pcap), "--no-explain")
    assert "↳ 550" not in plain and "extensions offered mean" not in plain


def test_the_language_reaches_every_new_part(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """lang flows to the explanations, header meanings and reply digits: a catalogue added for a language
    (as --lang de will) shows up in the page."""
    from mailtrace import headerinfo
    from mailtrace.protocols import smtp_codes
    from mailtrace.render import catalog

    monkeypatch.setitem(catalog.CATALOGS, "xx", {"explain.reply": "XX-REPLY {code}: {outcome}"})
    monkeypatch.setitem(headerinfo.CATALOGUES, "xx", {"subject": "XX-SUBJECT"})
    monkeypatch.setitem(smtp_codes.FIRST_DIGIT, "xx", {**smtp_codes.FIRST_DIGIT["en"], "5": "XX-PERMANENT"})
    html = render(samples_dir() / "smtp-errors.pcap", tmp_path / "r.html", lang="xx")
    assert "XX-REPLY 550: XX-PERMANENT" in html
    english = render(samples_dir() / "smtp-submission-auth.pcap", tmp_path / "e.html", lang="xx")
    assert "XX-SUBJECT" in english


def test_hostile_findings_statistics_and_details_are_text(tmp_path: Path) -> None:
    pcap = cap.write_pcap(tmp_path / "h.pcap", cap.hostile_findings(), cap.hostile_smtp())
    html = html_report(tmp_path / "r.html", str(pcap))
    check_safe(html)
    assert "<script>window" not in html and "<img" not in html and "<svg onload" not in html
    table = findings_table(html)
    assert "&lt;script&gt;window.__pwned=15&lt;/script&gt;" in table  # a finding's detail quotes the reply
    assert "unknown command &lt;script&gt;window.__pwned=16&lt;/script&gt;" in table
    assert "IMAP" not in table and "&lt;b&gt;mallory" not in table  # (the SMTP capture only)
    section = html[html.index('<section id="statistics"') : html.index('<section id="sections"')]
    assert "&lt;SCRIPT&gt;WINDOW.__PWNED=16&lt;/SCRIPT&gt;: 1</title>" in section  # command chart label
    assert "↳ X&lt;SCRIPT&gt;WINDOW.__PWNED=13&lt;/SCRIPT&gt;: private extension" in html
    assert "↳ 500: permanent failure · syntax" in html
    assert "from &lt;script&gt;window.__pwned=20&lt;/script&gt; (&#34;&gt;&lt;svg onload=window.__pwned=21&gt;" in html
    assert "<th>X-Evil</th><td class=\"mono\">&lt;script&gt;window.__pwned=24&lt;/script&gt;</td>" in html
    assert '<div class="decoded">= &lt;script&gt;window.  pwned=25&lt;/script&gt;</div>' in html  # Q: _ is a space
    assert "⚠ timestamp goes backwards (-60 s)" in html


def test_findings_limits_are_said(tmp_path: Path) -> None:
    pcap = samples_dir() / "mixed-all.pcap"
    expected = json_report(str(pcap))
    analyzer, sessions = sessions_of(pcap)
    from mailtrace.commands.report_data import ReportData
    from mailtrace.findings import FindingsCollector

    findings = FindingsCollector()
    data = ReportData(findings)
    room = len(script_json({"findings": expected["findings"], "flows": expected["flows"],
                            "html_omitted_keys": ["stats"]}))
    report = HtmlReport(tmp_path / "r.html", limits=HtmlLimits(max_findings=2, max_extra_json=room))
    data.targets.append(report.extra)
    for s in sessions:
        for consumer in (findings, data, report):
            consumer.session(s)
    for consumer in (data, report):
        consumer.end(analyzer.stats, 0.0)
    html = (tmp_path / "r.html").read_text("utf-8")
    check_safe(html)
    assert len(re.findall(r'<tr class="sev-', findings_table(html))) == 2
    assert f"{len(expected['findings']) - 2} more findings are in the JSON report (limit: 2 rows here)" in html
    extra = embedded_extra(html)
    assert extra["html_omitted_keys"] == ["stats"] and extra["findings"] == expected["findings"]


def test_report_in_german(tmp_path: Path) -> None:
    """report --lang de: captions, phase names, reply explanations, header meanings and the reply
    matrix in German (from the catalogues the text views use); the embedded JSON is analyze's."""
    from mailtrace.headerinfo import explain
    from mailtrace.protocols.smtp_codes import explain_reply
    from mailtrace.render.catalog import text as catalog_text

    pcap = samples_dir() / "smtp-submission-auth.pcap"
    html = html_report(tmp_path / "de.html", str(pcap), "--lang", "de")
    check_safe(html)
    assert embedded_sessions(html) == json_report(str(pcap), "--lang", "de")["sessions"]
    assert f'<span class="phase">{catalog_text("phase.setup", "de")}</span>' in html
    assert re.search(rf'<text class="band-lbl" x="86" y="\d+">{catalog_text("phase.setup", "de")}</text>', html)
    assert html.startswith('<!DOCTYPE html>\n<html lang="de">')
    m = explain_reply("550", "5.1.1 <nosuch@remote.example>: Recipient address rejected", "de")
    assert m is not None and m.outcome != explain_reply("550", "", "en").outcome  # type: ignore[union-attr]
    assert catalog_text("explain.reply", "de", code="550", outcome=m.outcome, category=m.category,
                        meaning=f" — {m.meaning}") in html
    assert html_mod.escape(explain("subject", "de")) in html and explain("subject", "de") != explain("subject")


def flows_section(html: str) -> str:
    start = html.index('<section id="flows"')
    return html[start : html.index("</section>", start)]


@pytest.mark.parametrize("name", ["smtp-relay-seed-story", "mixed-all"])
def test_flows_section_draws_the_json_reports_flows(name: str, tmp_path: Path) -> None:
    """Every flow of several hops is drawn with its hops in order, each linked to its session's section,
    with the delay and the Received verdict the JSON report gives."""
    pcap = samples_dir() / f"{name}.pcap"
    expected = json_report(str(pcap))
    multi = [f for f in expected["flows"] if len(f["hops"]) > 1]
    assert multi, "both captures have a message relayed over two hops"
    html = html_report(tmp_path / "r.html", str(pcap))
    check_safe(html)
    assert '<a href="#flows">Message flows</a>' in html
    section = flows_section(html)
    assert f"{len(expected['flows'])} messages followed, {len(multi)} of them over several hops" in section \
        or f"{len(expected['flows'])} message followed, {len(multi)} of them over several hops" in section
    blocks = section.split('<div class="flow">')[1:]
    assert len(blocks) == len(multi)  # messages seen once are in the JSON only, since multi-hop flows exist
    for block, flow in zip(blocks, multi, strict=True):
        assert html_mod.escape(flow["message_id"]) in block
        sessions = re.findall(r'<td class="n"><a href="#s(\d+)">\d+</a></td>', block)
        assert [int(s) for s in sessions] == [h["session"] for h in flow["hops"]]
        for hop in flow["hops"]:
            assert f'id="s{hop["session"]}"' in html  # the link goes to a section that exists
            path = f'{hop["client"]["ip"]}:{hop["client"]["port"]} → {hop["server"]["ip"]}:{hop["server"]["port"]}'
            assert path in block
        if flow["received_chain_matches"]:
            assert "the Received chain matches the hops in the capture" in block
            assert "✓</div>" in block


def test_relay_flow_shows_the_received_line_the_relay_added(tmp_path: Path) -> None:
    pcap = samples_dir() / "smtp-relay-seed-story.pcap"
    block = flows_section(html_report(tmp_path / "r.html", str(pcap)))
    assert "<td class=\"n\">79.4 ms</td>" in block  # the relay left 0.079 s after the submission
    assert "Received: from client.local.example [127.0.0.10] by mail.local.example ✓" in block


def packet_table_of(html: str, sid: int) -> str:
    start = html.index('<table class="grid packets', html.index(f'id="s{sid}"'))
    return html[start : html.index("</table>", start)]


def test_context_rows_stand_between_the_sessions_own_packets(tmp_path: Path) -> None:
    """As in the terminal view: the lookups and the ident probe the hosts made for the session are rows
    of its table, in frame order, under captions labelled dns / ident; --no-context leaves them out."""
    pcap = samples_dir() / "smtp-relay-seed-story.pcap"
    first = json_report(str(pcap))["sessions"][0]
    context_frames = [c["frame"] for c in first["context"]]
    assert context_frames, "sendmail looked up the client and probed ident"
    table = packet_table_of(html_report(tmp_path / "r.html", str(pcap)), first["id"])
    rows = [(int(f), kind) for f, kind in re.findall(rf'<tr id="s{first["id"]}-f(\d+)" class="(\w+)">', table)]
    frames = [f for f, _ in rows]
    assert frames == sorted(frames)
    shown_context = [f for f, kind in rows if kind == "context"]
    assert set(context_frames) <= set(shown_context)
    labels = re.findall(r'<span class="phase">(\w+)</span>', table)
    assert labels[:4] == ["dns", "setup", "dns", "ident"]  # the PTR/A lookups and the probe after SYN/ACK
    assert "the MTA tries an ident probe (port 113) — refused with RST" in table
    assert "(continued)" in table  # MAIL FROM's reply comes after the sender-domain lookups
    bare = packet_table_of(html_report(tmp_path / "n.html", str(pcap), "--no-context"), first["id"])
    assert 'class="context"' not in bare and '<span class="phase">dns</span>' not in bare


def test_a_message_cut_by_a_reset_says_the_amount_missing_is_unknown(tmp_path: Path) -> None:
    """smtp-errors: the client resets the connection in the middle of DATA; how much of the message never
    came cannot be known, and the page must not say '1 bytes missing'."""
    pcap = samples_dir() / "smtp-errors.pcap"
    cut = [(s["id"], m) for s in json_report(str(pcap))["sessions"] for m in s["messages"] if not m["complete"]]
    assert [m["missing_bytes"] for _, m in cut] == [1]
    html = html_report(tmp_path / "r.html", str(pcap))
    section = section_of(html, cut[0][0])
    assert "incomplete, bytes missing (amount unknown)" in section
    assert "1 bytes missing" not in html


def test_record_values_read_as_text_not_json(tmp_path: Path) -> None:
    """Protocol details, transactions and the TLS block showed JSON (``{"messages": null}``,
    ``[{"state": …}]``, ``{}``), Python field names and English yes/no in the German page; the index
    showed ``implicit``/``starttls`` codes, 0 messages for a session whose messages TLS hid, and the
    latency table 0.0 ms for delays the chart showed in microseconds."""
    mixed = str(samples_dir() / "mixed-all.pcap")
    page = html_report(tmp_path / "en.html", mixed)
    details = page[page.index("<h4>Protocol details"):] if "<h4>Protocol details" in page else page
    cells = re.findall(r'<td class="mono">([^<]*)</td>', details)
    assert cells and not [c for c in cells if c.startswith(("{&#34;", "[{&#34;", "{}", "[{}]")) or c == "null"]
    assert "state not authenticated · frame 8 · trigger greeting OK; state authenticated" in page
    assert "<th>mail from</th>" in page and "<th>mail_from</th>" not in page
    assert re.search(r"<td class=\"n\">\d+ µs</td>", page)  # the latency table, as the chart says it
    german = html_report(tmp_path / "de.html", mixed, "--lang", "de")
    assert "<td class=\"mono\">nein</td>" in german and "<td class=\"mono\">no</td>" not in german
    tls = samples_dir() / "tls-implicit.pcap"
    german_tls = html_report(tmp_path / "tls.html", str(tls), "--lang", "de",
                             "--tls-keylog", str(tls.with_suffix(".keylog")))
    assert "implizites TLS" in german_tls and ">implicit<" not in german_tls
    sealed = html_report(tmp_path / "sealed.html", str(samples_dir() / "smtp-starttls.pcap"))
    assert re.search(r'<td class="n" data-v="0">\?</td>', sealed)  # not "0": the messages went inside TLS


@pytest.mark.parametrize("name", ["tls-implicit", "smtp-starttls", "mixed-all"])
def test_the_protocol_column_is_the_terminals(name: str, tmp_path: Path) -> None:
    """One rule names the Protocol column in both views (render.rows.protocol_column): the HTML table
    labelled TLS handshake rows with the mail protocol and application data 'TLS' where the terminal
    says TLSv1.3 (80 rows of tls-implicit differed)."""
    from tests.support import run_cli

    pcap = str(samples_dir() / f"{name}.pcap")
    page = tmp_path / "r.html"
    out = run_cli("analyze", "--no-context", "--width", "250", "--html", str(page), pcap).stdout
    terminal: dict[tuple[int, int], str] = {}
    session = 0
    for line in out.splitlines():
        head = re.match(r"Session (\d+) ", line)
        if head:
            session = int(head.group(1))
        row = re.match(r"\s*(\d+)\s+[\d.]+\s+\S+\s+\S+\s+(\S+)\s", line)
        if row and session:
            terminal[session, int(row.group(1))] = row.group(2)
    shown: dict[tuple[int, int], str] = {}
    for row in re.finditer(r'<tr[^>]*id="s(\d+)-f(\d+)"[^>]*>(.*?)</tr>', page.read_text("utf-8"), re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(3), re.S)
        shown[int(row.group(1)), int(row.group(2))] = re.sub(r"<[^>]+>", "", cells[4]).strip()
    assert terminal and shown.keys() == terminal.keys()
    assert {k: v for k, v in shown.items() if v != terminal[k]} == {}
