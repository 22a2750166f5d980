"""``mailtrace analyze``: captures → annotated session tables, or the JSON report.

Sessions flow from the Analyzer to a list of consumers (the chosen renderer, and whatever else the
options ask for: an HTML report, findings, statistics). Each consumer sees every session once, as it
finishes, and then ``end()`` with the capture totals — so nothing needs the whole capture in memory.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import Any, Protocol

import click

from mailtrace.capture.reader import CaptureFile
from mailtrace.commands.common import build_config, capture_options, load_keylog, open_all
from mailtrace.commands.html_option import html_consumer, html_options
from mailtrace.pipeline import Analyzer, CaptureStats
from mailtrace.render.json import JsonReportWriter, jsonl_writer
from mailtrace.session import Session


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


@click.command()
@click.argument("captures", nargs=-1, required=True, metavar="CAPTURE...")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "jsonl"]), default="text", show_default=True,
              help="text: annotated session tables; json: one report document; jsonl: one session per line.")
@html_options
@capture_options
def analyze(  # noqa: PLR0917 - click passes every option as an argument
        captures: tuple[str, ...], fmt: str, html_path: str | None, embed_attachments: bool,
        ports: tuple[str, ...], show_secrets: bool, no_sniff: bool, keylog_path: str | None) -> None:
    """Analyse capture files (pcap, pcapng, also .gz/.bz2/.xz; - for stdin)."""
    config = build_config(ports, show_secrets, no_sniff)
    keylog = load_keylog(keylog_path)
    html, config = html_consumer(html_path, embed_attachments=embed_attachments, show_secrets=show_secrets,
                                 config=config)
    files = open_all(captures)
    analyzer = Analyzer(config, keylog=keylog)
    started = time.monotonic()
    out = click.get_text_stream("stdout")
    consumers: list[SessionConsumer] = []
    if fmt == "json":
        consumers.append(JsonConsumer(JsonReportWriter(out, show_secrets=show_secrets)))
    elif fmt == "jsonl":
        consumers.append(JsonlConsumer(show_secrets))
    else:
        from mailtrace.render.terminal import TerminalRenderer

        consumers.append(TerminalRenderer(out, show_secrets=show_secrets))
    if html is not None:
        html.stats = analyzer.stats
        consumers.append(html)
    for session in sessions(analyzer, files):
        for consumer in consumers:
            consumer.session(session)
    elapsed = time.monotonic() - started
    for consumer in consumers:
        consumer.end(analyzer.stats, elapsed)
    for f in analyzer.stats.files:
        for problem in f.problems:
            click.echo(f"mailtrace: {f.name}: {problem}", err=True)


def sessions(analyzer: Analyzer, files: list[CaptureFile]) -> Iterator[Session]:
    """The analyzer's sessions; Ctrl-C ends the run with status 130 and no traceback."""
    try:
        yield from analyzer.run(files)
    except KeyboardInterrupt:
        click.echo("mailtrace: interrupted", err=True)
        sys.exit(130)
