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
    embedded_files,
    embedded_sessions,
    html_report,
    index_ids,
    json_report,
    run,
    samples_dir,
    shared_dir,
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

    def hostile_json(s: Any, show_secrets: bool = False) -> dict[str, Any]:
        data = real(s, show_secrets)
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
    assert "further sessions are counted in the overview but not listed" in html
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
