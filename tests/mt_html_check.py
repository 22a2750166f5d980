"""Helpers of the HTML report tests: run the CLI, read the page's embedded data, check its safety."""

from __future__ import annotations

import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mailtrace.cli import main

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "tests" / "artifacts"


def shared_dir() -> Path:
    return Path(os.environ.get("MAILTRACE_SHARED") or REPO / ".." / "shared").resolve()


def samples_dir() -> Path:
    root = shared_dir() / "samples-src" / "captures"
    if not root.is_dir():
        pytest.skip(f"shared sample captures not found at {root} (set MAILTRACE_SHARED)")
    return root


def run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def json_report(*args: str) -> dict[str, Any]:
    result = run("analyze", "--format", "json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def html_report(out: Path, *args: str) -> str:
    result = run("report", "-o", str(out), *args)
    assert result.exit_code == 0, result.output
    return out.read_text("utf-8")


def _data_block(html: str, block_id: str) -> Any:
    m = re.search(rf'<script type="application/json" id="{block_id}">(.*?)</script>', html, re.S)
    assert m is not None, block_id
    return json.loads(m.group(1))


def embedded_sessions(html: str) -> list[dict[str, Any]]:
    sessions: list[dict[str, Any]] = _data_block(html, "session-data")
    return sessions


def embedded_files(html: str) -> dict[str, str]:
    files: dict[str, str] = _data_block(html, "attachment-data")
    return files


def embedded_capture(html: str) -> dict[str, Any]:
    capture: dict[str, Any] = _data_block(html, "capture-data")
    return capture


def embedded_extra(html: str) -> dict[str, Any]:
    """The report's other top-level keys (findings, stats, filter, ...) as the page embeds them."""
    extra: dict[str, Any] = _data_block(html, "report-extra")
    return extra


def without_run_time(report: dict[str, Any]) -> dict[str, Any]:
    """A report (or its extra keys) without the one value that differs between two runs: the analysis time."""
    stats = report.get("stats")
    if isinstance(stats, dict):
        capture = dict(stats["capture"])
        assert isinstance(capture.pop("analysis_seconds"), float)
        report = {**report, "stats": {**stats, "capture": capture}}
    return report


def index_ids(html: str) -> list[int]:
    table = html[html.index('id="session-index"') : html.index("</table>", html.index('id="session-index"'))]
    return [int(x) for x in re.findall(r'<tr data-sid="(\d+)"', table)]


ALLOWED_TAGS = {
    "html",
    "head",
    "meta",
    "title",
    "style",
    "body",
    "header",
    "h1",
    "h2",
    "h3",
    "h4",
    "nav",
    "a",
    "main",
    "section",
    "div",
    "span",
    "p",
    "strong",
    "code",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "caption",
    "details",
    "summary",
    "ul",
    "li",
    "figure",
    "figcaption",
    "svg",
    "g",
    "rect",
    "line",
    "path",
    "text",
    "label",
    "input",
    "select",
    "option",
    "button",
    "script",
    "br",
}
DATA_SCRIPT_TYPES = {"application/json"}


class SafetyChecker(HTMLParser):
    """Records everything in the page that could load or run something."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.scripts: list[dict[str, str | None]] = []
        self.styles = 0
        self.csp: str | None = None
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        a = dict(attrs)
        if tag not in ALLOWED_TAGS:
            self.problems.append(f"unexpected element <{tag}> {attrs}")
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"event handler attribute {name}={value!r} on <{tag}>")
            if name in (
                "src",
                "srcset",
                "action",
                "formaction",
                "xlink:href",
                "background",
                "poster",
                "style",
            ):
                self.problems.append(f"attribute {name}={value!r} on <{tag}>")
            if name == "href" and not (value or "").startswith("#"):
                self.problems.append(f"link that leaves the page: {value!r}")
        if tag == "script":
            self.scripts.append(a)
            if a.get("type") not in DATA_SCRIPT_TYPES and not a.get("nonce"):
                self.problems.append(f"script without nonce: {attrs}")
        if tag == "style":
            self.styles += 1
            if not a.get("nonce"):
                self.problems.append("style without nonce")
        if tag == "meta" and (a.get("http-equiv") or "").lower() == "content-security-policy":
            self.csp = a.get("content")
        if tag == "meta" and (a.get("http-equiv") or "").lower() == "refresh":
            self.problems.append("meta refresh")


def check_safe(html: str) -> SafetyChecker:
    """The page's structure is ours alone: fixed tags, no handlers, no loads, one nonce'd script."""
    checker = SafetyChecker()
    checker.feed(html)
    checker.close()
    assert not checker.problems, checker.problems[:10]
    assert checker.csp is not None and "default-src 'none'" in checker.csp
    assert "script-src 'nonce-" in checker.csp and "unsafe-inline" not in checker.csp
    code = [s for s in checker.scripts if s.get("type") not in DATA_SCRIPT_TYPES]
    assert len(code) == 1, code
    nonce = code[0]["nonce"]
    assert nonce and f"'nonce-{nonce}'" in checker.csp
    assert checker.styles == 1
    return checker
