"""``mailtrace analyze``: captures → annotated session tables, or the JSON report.

Sessions flow from the Analyzer to a list of consumers (the chosen renderer, and whatever else the
options ask for: an HTML report, findings, statistics). Each consumer sees every session once, as it
finishes, and then ``end()`` with the capture totals — so nothing needs the whole capture in memory.

Exit status: 0 whenever a report was produced (even from a damaged capture), 2 for a problem the
user can fix, 130 when interrupted — and, only with ``--fail-on SEVERITY``, 3 when a finding of
that severity or higher was made (docs/findings.md, "Exit status").
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import Any, Protocol

import click

from mailtrace.capture.reader import CaptureFile
from mailtrace.commands.common import build_config, capture_options, fail, load_keylog, open_all
from mailtrace.findings import FindingsCollector, FindingsConfig, Severity
from mailtrace.findings.model import DEFAULT_FAILED_LOGIN_THRESHOLD
from mailtrace.pipeline import Analyzer, CaptureStats
from mailtrace.render.json import JsonReportWriter, dumps, jsonl_writer
from mailtrace.session import Session
from mailtrace.stats import StatsCollector

EXIT_FINDINGS = 3
"""``--fail-on``: a finding of the given severity or higher was made."""


class SessionConsumer(Protocol):
    """Something that takes the sessions of a run, then the totals."""

    def session(self, session: Session) -> None: ...

    def end(self, stats: CaptureStats, elapsed: float) -> None: ...


class JsonConsumer:
    def __init__(self, writer: JsonReportWriter) -> None:
        self.writer = writer
        self.extra: dict[str, Any] = {}
        writer.begin()

    def session(self, session: Session) -> None:
        self.writer.session(session)

    def end(self, stats: CaptureStats, elapsed: float) -> None:
        self.writer.end(stats, self.extra)


class JsonlConsumer:
    def __init__(self, show_secrets: bool) -> None:
        self.write = jsonl_writer(click.get_text_stream("stdout"), show_secrets)

    def session(self, session: Session) -> None:
        self.write(session)

    def end(self, stats: CaptureStats, elapsed: float) -> None:
        pass


class ReportExtras:
    """Puts the findings and the statistics into the JSON report; placed after their collectors."""

    def __init__(self, json: JsonConsumer, findings: FindingsCollector, stats: StatsCollector) -> None:
        self.json = json
        self.findings = findings
        self.stats = stats

    def session(self, session: Session) -> None:
        pass

    def end(self, stats: CaptureStats, elapsed: float) -> None:
        self.json.extra["findings"] = self.findings.to_json()
        result = self.stats.result()
        result.extra["findings"] = self.findings.summary()
        self.json.extra["stats"] = result.to_json()


class SessionsLeftOut:
    """``--findings-only`` with ``--format json``: the report keeps its shape, without session objects."""

    def __init__(self, inner: SessionConsumer) -> None:
        self.inner = inner

    def session(self, session: Session) -> None:
        pass

    def end(self, stats: CaptureStats, elapsed: float) -> None:
        self.inner.end(stats, elapsed)


class FindingLines:
    """``--findings-only`` with ``--format jsonl``: one finding object per line, written at the end."""

    def __init__(self, findings: FindingsCollector) -> None:
        self.findings = findings
        self.stream = click.get_text_stream("stdout")

    def session(self, session: Session) -> None:
        pass

    def end(self, stats: CaptureStats, elapsed: float) -> None:
        for finding in self.findings.to_json():
            self.stream.write(dumps(finding) + "\n")


class MessageDetails:
    """``--headers``: after each session's table, the detail view of each of its messages."""

    def __init__(self, stream: Any) -> None:
        from mailtrace.render.findings import make_console

        self.console = make_console(stream)

    def session(self, session: Session) -> None:
        from mailtrace.render.message import message_details

        for record in session.messages:
            self.console.print()
            self.console.print(message_details(session, record, width=self.console.width,
                                               color=self.console.is_terminal and not self.console.no_color))

    def end(self, stats: CaptureStats, elapsed: float) -> None:
        pass


def parse_domains(text: str | None) -> frozenset[str]:
    if not text:
        return frozenset()
    domains = frozenset(d.strip().strip(".").lower() for d in text.split(",") if d.strip().strip("."))
    for d in domains:
        if " " in d or "@" in d or ("." not in d and d != "localhost"):
            fail(f"--local-domains: {d!r} is not a domain name (use a.example,b.example)")
    return domains


@click.command()
@click.argument("captures", nargs=-1, required=True, metavar="CAPTURE...")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "jsonl"]), default="text",
              show_default=True,
              help="text: annotated session tables, then the findings; json: one report document (with "
                   "\"findings\" and \"stats\"); jsonl: one session per line.")
@click.option("--findings-only", is_flag=True,
              help="Only the findings: no session tables (text), no session objects (json), one finding per "
                   "line (jsonl).")
@click.option("--fail-on", type=click.Choice([s.value for s in Severity]), default=None, metavar="SEVERITY",
              help="Exit with status 3 when a finding of this severity (info, low, medium, high) or higher "
                   "was "
                   "made — for CI pipelines. Without it the status is 0 whenever a report was produced.")
@click.option("--local-domains", metavar="DOMAIN,...",
              help="Mail domains the captured servers serve, for the open-relay check "
                   "(default: guessed from the servers' host names, and the findings say so).")
@click.option("--failed-login-threshold", "--bruteforce-threshold", "failed_login_threshold",
              type=click.IntRange(min=1), default=DEFAULT_FAILED_LOGIN_THRESHOLD, show_default=True,
              metavar="N", help="Failed logins from one client, or against one user, over all sessions, that "
                                "make an auth-bruteforce finding.")
@click.option("--stats", "with_stats", is_flag=True, help="Text mode: print the statistics tables at the "
                                                          "end too.")
@click.option("--headers", "with_headers", is_flag=True,
              help="Text mode: after each session, every message in detail: all header fields with their "
                   "meaning, the Received chain, the MIME tree with attachment hashes, envelope vs header.")
@capture_options
def analyze(*, captures: tuple[str, ...], fmt: str, findings_only: bool, fail_on: str | None,
            local_domains: str | None, failed_login_threshold: int, with_stats: bool, with_headers: bool,
            ports: tuple[str, ...],
            show_secrets: bool, no_sniff: bool, keylog_path: str | None) -> None:
    """Analyse capture files (pcap, pcapng, also .gz/.bz2/.xz; - for stdin)."""
    if with_headers and (fmt != "text" or findings_only):
        fail("--headers prints the message details under the session tables: use it with --format text and "
             "without --findings-only (mailtrace extract writes the messages themselves)")
    config = build_config(ports, show_secrets, no_sniff)
    findings = FindingsCollector(FindingsConfig(show_secrets=show_secrets,
                                                local_domains=parse_domains(local_domains),
                                                failed_login_threshold=failed_login_threshold))
    keylog = load_keylog(keylog_path)
    files = open_all(captures)
    analyzer = Analyzer(config, keylog=keylog)
    started = time.monotonic()
    out = click.get_text_stream("stdout")
    consumers: list[SessionConsumer] = []
    if fmt == "json":
        stats = StatsCollector()
        json = JsonConsumer(JsonReportWriter(out, show_secrets=show_secrets))
        consumers += [findings, stats, ReportExtras(json, findings, stats),
                      SessionsLeftOut(json) if findings_only else json]
    elif fmt == "jsonl":
        consumers.append(findings)
        consumers.append(FindingLines(findings) if findings_only else JsonlConsumer(show_secrets))
    else:
        from mailtrace.render.findings import FindingsRenderer, StatsRenderer, make_console

        if not findings_only:
            from mailtrace.render.terminal import TerminalRenderer

            consumers.append(TerminalRenderer(out, show_secrets=show_secrets))
            if with_headers:
                consumers.append(MessageDetails(out))
        console = make_console(out)
        consumers.append(FindingsRenderer(console, findings))
        if with_stats:
            consumers.append(StatsRenderer(console, StatsCollector(), findings=findings))
    for session in sessions(analyzer, files):
        for consumer in consumers:
            consumer.session(session)
    elapsed = time.monotonic() - started
    findings.end(analyzer.stats, elapsed)
    for consumer in consumers:
        consumer.end(analyzer.stats, elapsed)
    for f in analyzer.stats.files:
        for problem in f.problems:
            click.echo(f"mailtrace: {f.name}: {problem}", err=True)
    for error in findings.errors:
        click.echo(f"mailtrace: a findings rule failed (a bug, please report it): {error}", err=True)
    if fail_on is not None and findings.at_least(Severity(fail_on)):
        sys.exit(EXIT_FINDINGS)


def sessions(analyzer: Analyzer, files: list[CaptureFile]) -> Iterator[Session]:
    """The analyzer's sessions; Ctrl-C ends the run with status 130 and no traceback."""
    try:
        yield from analyzer.run(files)
    except KeyboardInterrupt:
        click.echo("mailtrace: interrupted", err=True)
        sys.exit(130)
