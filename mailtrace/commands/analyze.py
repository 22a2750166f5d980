"""``mailtrace analyze``: captures → annotated session tables, or the JSON report.

Sessions flow from the Analyzer to a list of consumers (the chosen renderer, and whatever else the
options ask for: an HTML report, findings, statistics). Each consumer sees every session once, as it
finishes, and then ``end()`` with the capture totals — so nothing needs the whole capture in memory.
The session filters (``--session``, ``-p``, ``--host``, ``--port N``, ``--user``, ``--since``,
``--until``, ``--status``) sit in front of all consumers, so every view, the findings and the JSON
agree (docs/terminal.md).

Exit status: 0 whenever a report was produced (even from a damaged capture), 2 for a problem the
user can fix, 130 when interrupted — and, only with ``--fail-on SEVERITY``, 3 when a finding of
that severity or higher was made (docs/findings.md, "Exit status").
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import IO, TYPE_CHECKING, Any, Protocol

import click

from mailtrace.capture.reader import CaptureFile
from mailtrace.commands.common import (
    build_config,
    capture_options,
    fail,
    jobs_option,
    lang_option,
    load_keylog,
    open_all,
    resolve_lang,
)
from mailtrace.commands.html_option import html_consumer, html_options
from mailtrace.commands.report_data import (
    ReportData,
    findings_collector,
    findings_options,
    listen_for_dns,
    say_problems,
)
from mailtrace.filters import PROTOCOLS, STATUSES, SessionFilter, parse_host, parse_ids, parse_time
from mailtrace.findings import FindingsCollector, Severity
from mailtrace.forked import ForkedRunError, forked_sessions, want_fork
from mailtrace.numbers import is_count
from mailtrace.pipeline import Analyzer, CaptureStats
from mailtrace.render.json import JsonReportWriter, dumps, jsonl_writer
from mailtrace.render.output import Output
from mailtrace.render.progress import Progress
from mailtrace.session import Session
from mailtrace.stats import StatsCollector

if TYPE_CHECKING:  # jinja2 and the templates load only when a report is written
    from mailtrace.render.html import HtmlReport

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
    def __init__(self, show_secrets: bool, *, lang: str = "en", context: bool = True,
                 stream: IO[str] | None = None) -> None:
        self.write = jsonl_writer(sys.stdout if stream is None else stream, show_secrets, lang=lang,
                                  context=context)

    def session(self, session: Session) -> None:
        self.write(session)

    def end(self, stats: CaptureStats, elapsed: float) -> None:
        pass


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

    def __init__(self, findings: FindingsCollector, stream: IO[str] | None = None) -> None:
        self.findings = findings
        self.stream = sys.stdout if stream is None else stream

    def session(self, session: Session) -> None:
        pass

    def end(self, stats: CaptureStats, elapsed: float) -> None:
        for finding in self.findings.to_json():
            self.stream.write(dumps(finding) + "\n")


class MessageDetails:
    """``--headers``: after each session's table, the detail view of each of its messages, laid out as the
    rest of the text output (``--width`` or the terminal's, never wrapped when piped; ``--color``)."""

    def __init__(self, output: Output, lang: str = "en") -> None:
        from mailtrace.render.findings import output_console

        self.output = output
        self.console = output_console(output)
        self.lang = lang

    def session(self, session: Session) -> None:
        from mailtrace.render.findings import print_unpadded
        from mailtrace.render.message import message_details

        with self.output.block():  # the session's table ends with a blank line: one after each message too
            for record in session.messages:
                print_unpadded(self.console, message_details(session, record, width=self.output.width,
                                                             color=self.output.color, lang=self.lang))
                self.console.print()

    def end(self, stats: CaptureStats, elapsed: float) -> None:
        pass


@dataclass(frozen=True)
class Views:
    """What a run shows, as its options say: what ``analyze`` and ``live`` share (live leaves the file-only
    views — list, follow, filters, --headers, --stats, --findings-only — at their defaults)."""

    fmt: str = "text"
    show_secrets: bool = False
    lang: str = "en"
    context: bool = True
    """False: ``--no-context`` (no context rows; empty JSON ``context`` lists)."""
    explain: bool = True
    findings_only: bool = False
    as_list: bool = False
    follow: bool = False
    with_stats: bool = False
    with_headers: bool = False
    hide_acks: bool = False
    many_files: bool = False
    session_filter: SessionFilter | None = None


def build_consumers(views: Views, *, analyzer: Analyzer, findings: FindingsCollector, output: Output,
                    html: HtmlReport | None = None) -> tuple[list[SessionConsumer], list[dict[str, Any]]]:
    """The consumers of a run, in the order each session must reach them, and the ``extra`` dicts of its
    reports (JSON, HTML), which get the ``findings``, ``stats`` and ``flows`` keys at the end.

    ``analyze`` and ``live`` both build their views here, so they make the same report of the same
    sessions. The findings collector is the first consumer (made once per session, whatever the views:
    the exit status, the printed findings and both reports read it) and hears the DNS context.
    """
    listen_for_dns(analyzer, findings)
    out = output.stream
    consumers: list[SessionConsumer] = [findings]
    report_data = ReportData(findings) if views.fmt == "json" or html is not None else None
    if report_data is not None:
        consumers.append(report_data)  # before the reports it completes
    if views.fmt == "json":
        assert report_data is not None
        json = JsonConsumer(JsonReportWriter(out, show_secrets=views.show_secrets, lang=views.lang,
                                             context=views.context))
        report_data.targets.append(json.extra)
        consumers.append(SessionsLeftOut(json) if views.findings_only else json)
    elif views.fmt == "jsonl":
        consumers.append(FindingLines(findings, out) if views.findings_only else
                         JsonlConsumer(views.show_secrets, lang=views.lang, context=views.context, stream=out))
    elif views.follow:
        from mailtrace.render.follow import FollowRenderer

        consumers.append(FollowRenderer(output, stats=analyzer.stats, lang=views.lang, show_secrets=views.show_secrets))
    else:
        from mailtrace.render.findings import FindingsRenderer, StatsRenderer, output_console
        from mailtrace.render.terminal import ListRenderer, TerminalRenderer

        if views.as_list:
            consumers.append(ListRenderer(output, stats=analyzer.stats, session_filter=views.session_filter,
                                          many_files=views.many_files, lang=views.lang))
        elif not views.findings_only:
            consumers.append(TerminalRenderer(output, stats=analyzer.stats, show_secrets=views.show_secrets,
                                              hide_acks=views.hide_acks, session_filter=views.session_filter,
                                              many_files=views.many_files, lang=views.lang,
                                              show_context=views.context, explain=views.explain))
            if views.with_headers:
                consumers.append(MessageDetails(output, views.lang))
        consumers.append(FindingsRenderer(output, findings, feed=False, lang=views.lang, first=views.findings_only))
        if views.with_stats:
            stats = report_data.stats if report_data is not None else StatsCollector()
            consumers.append(StatsRenderer(output_console(output), stats, findings=findings,
                                           feed=report_data is None, lang=views.lang))
    if html is not None:
        assert report_data is not None
        html.stats = analyzer.stats
        report_data.targets.append(html.extra)
        consumers.append(html)
    return consumers, report_data.targets if report_data is not None else []


def _split_ports(values: tuple[str, ...]) -> tuple[tuple[str, ...], frozenset[int]]:
    """``--port`` takes both forms: ``2526=smtp`` says what a port speaks, a bare ``25`` filters."""
    rules = tuple(v for v in values if "=" in v)
    wanted: set[int] = set()
    for value in values:
        if "=" in value:
            continue
        text = value.strip()
        if not is_count(text, 5) or not 0 < int(text) < 65536:
            fail(f"--port {value}: expected a port number (filter) or PORT=PROTOCOL (e.g. 2526=smtp)")
        wanted.add(int(text))
    return rules, frozenset(wanted)


def build_filter(*, ids: tuple[str, ...], protocols: tuple[str, ...], hosts: tuple[str, ...],
                 ports: frozenset[int], users: tuple[str, ...], since: str | None, until: str | None,
                 statuses: tuple[str, ...]) -> SessionFilter:
    """The filter of the command line; a bad value ends the run with a one-line error."""
    try:
        return SessionFilter(
            ids=parse_ids(ids), protocols=frozenset(p.lower() for p in protocols),
            hosts=tuple(parse_host(h) for h in hosts), ports=ports, users=users,
            since=parse_time(since) if since is not None else None,
            until=parse_time(until) if until is not None else None,
            statuses=frozenset(s.lower() for s in statuses),
        )
    except ValueError as exc:
        fail(str(exc))


@click.command()
@click.argument("captures", nargs=-1, required=True, metavar="CAPTURE...")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "jsonl"]), default="text",
              show_default=True,
              help="text: annotated session tables, then the findings; json: one report document (with "
                   "\"findings\" and \"stats\"); jsonl: one session per line.")
@click.option("--list", "as_list", is_flag=True, help="One line per session instead of the packet tables.")
@click.option("--follow", is_flag=True,
              help="The raw conversation of each session, like Wireshark's Follow TCP Stream.")
@click.option("--session", "ids", multiple=True, metavar="ID",
              help="Only these sessions: 3, 1,4 or 5-9. Repeatable.")
@click.option("-p", "--protocol", "protocols", multiple=True,
              type=click.Choice(PROTOCOLS, case_sensitive=False),
              help="Only sessions of this protocol. Repeatable.")
@click.option("--host", "hosts", multiple=True, metavar="ADDR",
              help="Only sessions with this client or server address (or network, 10.0.0.0/8). Repeatable.")
@click.option("--user", "users", multiple=True, metavar="NAME",
              help="Only sessions that name this user (shell patterns: 'bob*'). Repeatable.")
@click.option("--since", metavar="TIME",
              help="Only sessions still running at or after TIME (epoch seconds or ISO date, UTC).")
@click.option("--until", metavar="TIME",
              help="Only sessions that began at or before TIME (epoch seconds or ISO date, UTC).")
@click.option("--status", "statuses", multiple=True, type=click.Choice(STATUSES, case_sensitive=False),
              help="Only sessions that ended this way (see docs/terminal.md). Repeatable.")
@click.option("--no-acks", is_flag=True, help="Hide pure TCP ACKs in the packet tables.")
@click.option("--no-explain", is_flag=True,
              help="Do not explain SMTP reply codes (failures and the less common positive ones) and EHLO "
                   "extensions under their rows.")
@click.option("--color/--no-color", "color", default=None,
              help="Colour the text views (default: on a terminal, unless NO_COLOR is set).")
@click.option("--width", type=click.IntRange(40, 10_000), default=None, metavar="COLUMNS",
              help="Wrap the text views at this width (default: the terminal's; never when piped).")
@click.option("--findings-only", is_flag=True,
              help="Only the findings: no session tables (text), no session objects (json), one finding per "
                   "line (jsonl).")
@click.option("--fail-on", type=click.Choice([s.value for s in Severity]), default=None, metavar="SEVERITY",
              help="Exit with status 3 when a finding of this severity (info, low, medium, high) or higher "
                   "was "
                   "made — for CI pipelines. Without it the status is 0 whenever a report was produced.")
@findings_options
@click.option("--stats", "with_stats", is_flag=True, help="Text mode: print the statistics tables at the "
                                                          "end too.")
@click.option("--headers", "with_headers", is_flag=True,
              help="Text mode: after each session, every message in detail: all header fields with their "
                   "meaning, the Received chain, the MIME tree with attachment hashes, envelope vs header.")
@click.option("--no-context", is_flag=True,
              help="Hide the DNS lookups and ident probes made for each session (context rows; the JSON "
                   "\"context\" lists stay empty).")
@lang_option
@html_options
@capture_options
@jobs_option
def analyze(*, captures: tuple[str, ...], fmt: str, as_list: bool, follow: bool, ids: tuple[str, ...],
            protocols: tuple[str, ...], hosts: tuple[str, ...], users: tuple[str, ...], since: str | None,
            until: str | None, statuses: tuple[str, ...], no_acks: bool, no_explain: bool, color: bool | None,
            width: int | None, findings_only: bool, fail_on: str | None, local_domains: str | None,
            failed_login_threshold: int, with_stats: bool, with_headers: bool, no_context: bool, lang: str | None,
            ports: tuple[str, ...], show_secrets: bool, no_sniff: bool, keylog_path: tuple[str, ...] | None,
            html_path: str | None, embed_attachments: bool, jobs: int | None) -> None:
    """Analyse capture files (pcap, pcapng, also .gz/.bz2/.xz; - for stdin).

    --port takes PORT=PROTOCOL (what a port speaks) or a bare PORT (only sessions on that port).
    """
    if as_list and follow:
        fail("--list and --follow are two different views: choose one")
    if fmt != "text" and (as_list or follow):
        fail(f"--list and --follow are text views; they do not combine with --format {fmt}")
    if (follow or as_list) and findings_only:
        fail(f"{'--follow' if follow else '--list'} shows sessions; it does not combine with --findings-only")
    if with_headers and (fmt != "text" or findings_only or as_list or follow):
        fail("--headers prints the message details under the session tables: use it with the default text view "
             "and without --findings-only (mailtrace extract writes the messages themselves)")
    language = resolve_lang(lang)
    rules, port_filter = _split_ports(ports)
    session_filter = build_filter(ids=ids, protocols=protocols, hosts=hosts, ports=port_filter, users=users,
                                  since=since, until=until, statuses=statuses)
    config = build_config(rules, show_secrets, no_sniff)
    if follow:
        config = replace(config, session=replace(config.session, keep_transcript=True))
    findings = findings_collector(show_secrets=show_secrets, local_domains=local_domains,
                                  failed_login_threshold=failed_login_threshold)
    keylog = load_keylog(keylog_path)
    html, config = html_consumer(html_path, embed_attachments=embed_attachments, show_secrets=show_secrets,
                                 config=config, explain=not no_explain, lang=language, context=not no_context)
    files = open_all(captures)
    analyzer = Analyzer(config, keylog=keylog)
    started = time.monotonic()
    out = sys.stdout
    output = Output.detect(color=color, width=width, stream=out, err=sys.stderr)
    progress = Progress(output.err, enabled=output.err_isatty)
    if output.isatty:
        output.interrupt = progress.suspend
    views = Views(fmt=fmt, show_secrets=show_secrets, lang=language, context=not no_context, explain=not no_explain,
                  findings_only=findings_only, as_list=as_list, follow=follow, with_stats=with_stats,
                  with_headers=with_headers, hide_acks=no_acks, many_files=len(files) > 1,
                  session_filter=session_filter)
    consumers, targets = build_consumers(views, analyzer=analyzer, findings=findings, output=output, html=html)
    if session_filter.active:
        for target in targets:
            target["filter"] = session_filter.describe()
    with progress:
        for session in sessions(analyzer, files, progress, jobs,
                                light_report=fmt != "text" and html is None):
            if not session_filter(session):
                continue
            for consumer in consumers:
                consumer.session(session)
    if session_filter.active:
        for target in targets:
            target["filter"]["shown"] = session_filter.seen["shown"]
    elapsed = time.monotonic() - started
    findings.end(analyzer.stats, elapsed)
    for consumer in consumers:
        consumer.end(analyzer.stats, elapsed)
    say_problems(analyzer.stats, findings)
    if fail_on is not None and findings.at_least(Severity(fail_on)):
        sys.exit(EXIT_FINDINGS)


def sessions(analyzer: Analyzer, files: list[CaptureFile], progress: Progress | None = None,
             jobs: int | None = 1, *, light_report: bool = False) -> Iterator[Session]:
    """The analyzer's sessions; Ctrl-C ends the run with status 130 and no traceback.

    ``jobs`` is ``--jobs``: 1 dissects here, 2 in a forked child while this process writes the report
    (mailtrace/forked.py), None chooses by the machine and the captures' size. ``light_report``: the
    report is quick to write (JSON, statistics), so this process also summarises the messages.
    """
    try:
        if want_fork(jobs, analyzer, files):
            try:
                yield from forked_sessions(analyzer, files, progress.callback if progress is not None else None,
                                           summarize_here=light_report)
            except ForkedRunError as exc:
                fail(str(exc))
            return
        for capture in files:
            callback = progress.callback(capture) if progress is not None else None
            yield from analyzer.run_file(capture, callback)
    except KeyboardInterrupt:
        if progress is not None:
            progress.close()
        click.echo("mailtrace: interrupted", err=True)
        sys.exit(130)
