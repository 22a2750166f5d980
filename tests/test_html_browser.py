"""The HTML report in a real headless Chromium (Debian's package, driven by Playwright).

Each page must load from file:// with no console error and no request but its own, list every
session of the JSON report, sort and filter, open a section, and never run what a capture holds.
Screenshots are kept in tests/artifacts/.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mt_html_capture as cap
import pytest
from mt_html_check import ARTIFACTS, html_report, json_report, samples_dir

pytestmark = pytest.mark.browser

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="browser tests need the playwright package (pip install playwright)"
)


def chromium_path() -> str:
    path = (
        os.environ.get("MAILTRACE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    if not path:
        pytest.skip("browser tests need Debian's chromium (apt-get install chromium); set MAILTRACE_CHROMIUM")
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=executable,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield b
        b.close()


@dataclass
class Loaded:
    page: Any
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def assert_clean(self, url: str) -> None:
        assert self.errors == [], self.errors
        assert [c for c in self.console if c.startswith(("error", "warning"))] == [], self.console
        assert self.requests == [url], self.requests  # the page itself, nothing else
        assert self.dialogs == []


def load(browser: Any, path: Path, *, scheme: str = "light", downloads: bool = False) -> Loaded:
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, color_scheme=scheme, accept_downloads=downloads
    )
    page = context.new_page()
    loaded = Loaded(page)
    page.on("console", lambda m: loaded.console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: loaded.errors.append(str(e)))
    page.on("request", lambda r: loaded.requests.append(r.url))
    page.on("dialog", lambda d: (loaded.dialogs.append(d.message), d.dismiss()))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return loaded


def visible_ids(page: Any) -> list[int]:
    return [
        int(x)
        for x in page.eval_on_selector_all(
            "#session-index tbody tr:not(.hidden)", "rows => rows.map(r => r.dataset.sid)"
        )
    ]


def shot(page: Any, name: str, selector: str | None = None) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    if selector:
        page.locator(selector).screenshot(path=str(ARTIFACTS / name))
    else:
        page.screenshot(path=str(ARTIFACTS / name), full_page=False)
    assert (ARTIFACTS / name).stat().st_size > 1000


def endpoint(e: dict[str, Any]) -> str:
    """As the page shows it (and as Wireshark writes it): [v6]:port, v4:port."""
    return f"[{e['ip']}]:{e['port']}" if ":" in e["ip"] else f"{e['ip']}:{e['port']}"


SAMPLES = [
    "mixed-all",
    "smtp-submission-auth",
    "smtp-errors",
    "pop3-session",
    "imap-session",
    "smtp-starttls",
    "tls-implicit",
    "ipv6",
    "smtp-relay-seed-story",
]


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_report_in_browser(browser: Any, name: str, tmp_path: Path) -> None:
    pcap = samples_dir() / f"{name}.pcap"
    extra = ["--tls-keylog", str(pcap.with_suffix(".keylog"))] if pcap.with_suffix(".keylog").exists() else []
    expected = json_report(str(pcap), *extra)["sessions"]
    out = tmp_path / f"{name}.html"
    html_report(out, str(pcap), *extra)
    loaded = load(browser, out)
    page = loaded.page

    # every session of the JSON report is in the index, in order
    ids = [s["id"] for s in expected]
    assert visible_ids(page) == ids
    assert page.inner_text("#count") == f"{len(ids)} of {len(ids)} sessions"

    # sort: by packets (ascending, then descending), then back by number
    page.click("#session-index th button[data-key='10']")
    by_packets = [s["id"] for s in sorted(expected, key=lambda s: s["packets"])]
    assert visible_ids(page) == by_packets
    page.click("#session-index th button[data-key='10']")
    assert visible_ids(page) == [s["id"] for s in sorted(expected, key=lambda s: -s["packets"])]
    assert page.get_attribute("#session-index th:nth-child(11)", "aria-sort") == "descending"
    page.click("#session-index th button[data-key='0']")
    assert visible_ids(page) == ids

    # filter: by protocol, then by text (a server port), then cleared
    proto = expected[0]["protocol"]
    page.select_option("#proto-filter", proto)
    assert visible_ids(page) == [s["id"] for s in expected if s["protocol"] == proto]
    page.select_option("#proto-filter", "")
    needle = endpoint(expected[-1]["client"])
    page.fill("#filter", needle.upper())  # case does not matter
    want = [s["id"] for s in expected if needle in endpoint(s["client"]) or needle in endpoint(s["server"])]
    assert visible_ids(page) == want
    page.fill("#filter", "no-such-session-anywhere")
    assert visible_ids(page) == []
    assert page.inner_text("#count") == f"0 of {len(ids)} sessions"
    page.fill("#filter", "")
    assert visible_ids(page) == ids

    # a section opens from its index link, and shows the frames of the JSON report
    last = expected[-1]
    assert page.eval_on_selector(f"#s{last['id']}", "d => d.open") is False
    page.click(f"#session-index a[data-open='s{last['id']}']")
    assert page.eval_on_selector(f"#s{last['id']}", "d => d.open") is True
    for c in last["commands"][:5]:
        assert page.is_visible(f"#s{last['id']}-f{c['frame']}")
    assert page.is_visible(f"#s{last['id']} svg.ladder")
    shot(page, f"{name}-section.png", f"#s{last['id']}")
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, f"{name}.png")
    loaded.assert_clean(out.as_uri())


@pytest.mark.parametrize("show_secrets", [False, True])
def test_hostile_capture_runs_nothing(browser: Any, tmp_path: Path, show_secrets: bool) -> None:
    pcap = cap.write_pcap(tmp_path / "hostile.pcap", cap.hostile_smtp(), cap.hostile_imap(), cap.hostile_findings())
    out = tmp_path / "hostile.html"
    html_report(out, str(pcap), "--embed-attachments", *(["--show-secrets"] if show_secrets else []))
    loaded = load(browser, out, downloads=True)
    page = loaded.page
    page.click("#expand-all")
    assert page.eval_on_selector_all("details.session", "ds => ds.every(d => d.open)")
    # every inner view too: headers, Received chain, MIME tree, envelope, explained extensions
    page.evaluate("document.querySelectorAll('details').forEach(d => { d.open = true; })")
    page.select_option("#sev-filter", "low")
    page.wait_for_timeout(300)
    # the injected scripts and handlers would have set this (values 1..25 in mt_html_capture)
    assert page.evaluate("typeof window.__pwned") == "undefined"
    findings = page.text_content("#findings-table") or ""
    assert "<script>window.__pwned=15</script>" in findings  # a finding detail quoting the server, as text
    assert "<SCRIPT>WINDOW.__PWNED=16</SCRIPT>" in (page.text_content("#statistics") or "")
    # and the hostile text is on the page, as text
    body = page.text_content("body") or ""
    assert "<script>window.__pwned=1</script>" in body
    assert "<img src=x onerror=window.__pwned=11>" in body
    assert (cap.SECRET in body) is show_secrets  # the AUTH PLAIN password, a script itself
    assert (
        page.evaluate("document.querySelectorAll('img, iframe, object, embed, link, base, form').length") == 0
    )
    assert page.evaluate("document.querySelectorAll('script:not([type])').length") == 1
    assert page.evaluate(
        "Array.from(document.querySelectorAll('a[href]')).every(a => a.getAttribute('href').startsWith('#'))"
    )
    assert page.evaluate(
        "Array.from(document.querySelectorAll('*')).every(e => !Array.from(e.attributes)"
        ".some(a => a.name.startsWith('on')))"
    )

    # the policy is in force: an image (even data:) is refused and reported, nothing is fetched
    violation = page.evaluate("""() => new Promise(resolve => {
        document.addEventListener('securitypolicyviolation', e => resolve(e.violatedDirective), {once: true});
        const img = document.createElement('img');
        img.src = 'data:image/gif;base64,R0lGODlhAQABAAAAACw=';
        document.body.appendChild(img);
        setTimeout(() => resolve('none'), 2000);
    })""")
    assert violation.startswith("img-src")

    # an embedded attachment is saved only on a click, under a harmless name, with the captured bytes
    button = page.locator("button.dl").first
    with page.expect_download() as info:
        button.click()
    download = info.value
    name = download.suggested_filename
    assert name.startswith("img_src_x_onerror") and not set(name) & set("<>/\\\"' =")
    saved = tmp_path / "saved.bin"
    download.save_as(saved)
    assert saved.read_bytes() == cap.ATTACHMENT_BYTES
    shot(page, f"hostile{'-secrets' if show_secrets else ''}.png", "#s1")
    assert page.evaluate("typeof window.__pwned") == "undefined"
    loaded.console = [c for c in loaded.console if "img-src" not in c]  # the violation we provoked
    loaded.assert_clean(out.as_uri())


@pytest.mark.parametrize("sections", [None, 2])
def test_download_json_is_the_json_report(browser: Any, tmp_path: Path, sections: int | None) -> None:
    pcap = samples_dir() / "mixed-all.pcap"
    expected = json_report(str(pcap))
    out = tmp_path / "r.html"
    html_report(out, str(pcap), *(["--max-sections", str(sections)] if sections is not None else []))
    loaded = load(browser, out, downloads=True)
    with loaded.page.expect_download() as info:
        loaded.page.click("#download-json")
    saved = tmp_path / "r.json"
    info.value.save_as(saved)
    doc = json.loads(saved.read_text())
    if sections is not None:  # sessions without a section are named, not silently missing
        ids = [s["id"] for s in expected["sessions"]]
        assert doc.pop("html_omitted_sessions") == ids[sections:]
        expected["sessions"] = expected["sessions"][:sections]
    # findings and statistics are in both; only the wall-clock time of each run differs
    assert {"findings", "stats"} <= doc.keys() and doc["findings"]
    for report in (doc, expected):
        assert isinstance(report["stats"]["capture"].pop("analysis_seconds"), float)
    assert doc == expected
    loaded.assert_clean(out.as_uri())


def test_print_and_dark_mode(browser: Any, tmp_path: Path) -> None:
    pcap = samples_dir() / "smtp-submission-auth.pcap"
    out = tmp_path / "r.html"
    html_report(out, str(pcap))
    loaded = load(browser, out, scheme="dark")
    page = loaded.page
    bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert bg == "rgb(15, 20, 25)"
    shot(page, "dark.png")
    page.emulate_media(media="print", color_scheme="light")
    assert page.evaluate("getComputedStyle(document.querySelector('.controls')).display") == "none"
    # printing opens every section, and closes them again afterwards
    page.evaluate("window.dispatchEvent(new Event('beforeprint'))")
    assert page.eval_on_selector_all("details.session", "ds => ds.every(d => d.open)")
    page.evaluate("window.dispatchEvent(new Event('afterprint'))")
    assert page.eval_on_selector_all("details.session", "ds => ds.every(d => !d.open)")
    pdf = page.pdf(format="A4")
    assert pdf.startswith(b"%PDF") and len(pdf) > 10_000
    (ARTIFACTS / "print.pdf").write_bytes(pdf)
    loaded.assert_clean(out.as_uri())


def test_frame_links_open_their_section(browser: Any, tmp_path: Path) -> None:
    pcap = samples_dir() / "smtp-errors.pcap"
    expected = json_report(str(pcap))["sessions"]
    anomaly = next((s, a) for s in expected for a in s["anomalies"])
    out = tmp_path / "r.html"
    html_report(out, str(pcap))
    loaded = load(browser, out)
    page = loaded.page
    sid, frame = anomaly[0]["id"], anomaly[1]["frame"]
    page.goto(f"{out.as_uri()}#s{sid}-f{frame}")
    page.wait_for_timeout(100)
    assert page.eval_on_selector(f"#s{sid}", "d => d.open") is True
    assert page.is_visible(f"#s{sid}-f{frame}")
    assert loaded.errors == [] and loaded.dialogs == []


def test_modified_click_on_a_frame_link_leaves_the_page_as_it_is(browser: Any, tmp_path: Path) -> None:
    """Ctrl-click asks the browser for a new tab: the page itself neither opens the section nor scrolls."""
    pcap = samples_dir() / "mixed-all.pcap"
    first = json_report(str(pcap))["findings"][0]
    out = tmp_path / "r.html"
    html_report(out, str(pcap))
    loaded = load(browser, out)
    page = loaded.page
    link = f"#findings-table a[href='#s{first['session']}-f{first['frames'][-1]}']"
    page.locator(link).scroll_into_view_if_needed()  # where the click itself would scroll to
    before = page.evaluate("window.scrollY")
    with page.context.expect_page() as opened:
        page.click(link, modifiers=["Control"])
    tab = opened.value
    tab.wait_for_load_state()
    assert tab.url.endswith(f"#s{first['session']}-f{first['frames'][-1]}")
    assert tab.eval_on_selector(f"#s{first['session']}", "d => d.open") is True  # the new tab opens it
    page.wait_for_timeout(100)
    assert page.eval_on_selector(f"#s{first['session']}", "d => d.open") is False
    assert page.evaluate("window.scrollY") == before
    assert "#" not in page.url
    page.click(link)  # a plain click still opens it here
    page.wait_for_timeout(100)
    assert page.eval_on_selector(f"#s{first['session']}", "d => d.open") is True
    assert loaded.errors == [] and loaded.dialogs == []


def test_findings_and_statistics_in_browser(browser: Any, tmp_path: Path) -> None:
    pcap = samples_dir() / "mixed-all.pcap"
    expected = json_report(str(pcap))
    out = tmp_path / "r.html"
    html_report(out, str(pcap))
    loaded = load(browser, out)
    page = loaded.page
    rows = "#findings-table tbody tr:not(.hidden)"
    assert len(page.query_selector_all(rows)) == len(expected["findings"]) > 0
    # the severity filter keeps that severity and the higher ones
    page.select_option("#sev-filter", "medium")
    want = [f for f in expected["findings"] if f["severity"] in ("high", "medium")]
    assert len(page.query_selector_all(rows)) == len(want)
    assert page.inner_text("#sev-count") == f"{len(want)} of {len(expected['findings'])} findings"
    page.select_option("#sev-filter", "")
    # a finding's frame link opens its session at that packet row
    first = expected["findings"][0]
    frame = first["frames"][-1]
    page.click(f"#findings-table a[href='#s{first['session']}-f{frame}']")
    page.wait_for_timeout(100)
    assert page.eval_on_selector(f"#s{first['session']}", "d => d.open") is True
    assert page.is_visible(f"#s{first['session']}-f{frame}")
    assert page.is_visible(f"#s{first['session']} table.findings")
    # the index filter finds sessions by finding id
    page.fill("#filter", "user-enumeration")
    assert visible_ids(page) == sorted({f["session"] for f in expected["findings"] if f["id"] == "user-enumeration"})
    page.fill("#filter", "")
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "findings.png", "#findings")
    assert page.eval_on_selector_all("#statistics svg.chart", "svgs => svgs.length") >= 8
    shot(page, "statistics.png", "#statistics")
    loaded.assert_clean(out.as_uri())
