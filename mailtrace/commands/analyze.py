"""``mailtrace analyze``: captures → annotated session tables, or the JSON report."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

import click

from mailtrace.capture.reader import CaptureFile
from mailtrace.commands.common import build_config, capture_options, load_keylog, open_all
from mailtrace.pipeline import Analyzer
from mailtrace.render.json import JsonReportWriter, jsonl_writer
from mailtrace.session import Session


@click.command()
@click.argument("captures", nargs=-1, required=True, metavar="CAPTURE...")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "jsonl"]), default="text", show_default=True,
              help="text: annotated session tables; json: one report document; jsonl: one session per line.")
@capture_options
def analyze(captures: tuple[str, ...], fmt: str, ports: tuple[str, ...], show_secrets: bool, no_sniff: bool,
            keylog_path: str | None) -> None:
    """Analyse capture files (pcap, pcapng, also .gz/.bz2/.xz; - for stdin)."""
    config = build_config(ports, show_secrets, no_sniff)
    keylog = load_keylog(keylog_path)
    files = open_all(captures)
    analyzer = Analyzer(config, keylog=keylog)
    started = time.monotonic()
    out = click.get_text_stream("stdout")
    if fmt == "json":
        writer = JsonReportWriter(out, show_secrets=show_secrets)
        writer.begin()
        for session in sessions(analyzer, files):
            writer.session(session)
        writer.end(analyzer.stats)
    elif fmt == "jsonl":
        write = jsonl_writer(out, show_secrets)
        for session in sessions(analyzer, files):
            write(session)
    else:
        from mailtrace.render.terminal import TerminalRenderer

        renderer = TerminalRenderer(out, show_secrets=show_secrets)
        for session in sessions(analyzer, files):
            renderer.session(session)
        renderer.summary(analyzer.stats, time.monotonic() - started)
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
