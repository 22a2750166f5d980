"""``mailtrace report``: captures → one self-contained HTML report (see docs/html-report.md)."""

from __future__ import annotations

import dataclasses
import time

import click

from mailtrace.commands.analyze import sessions
from mailtrace.commands.common import build_config, capture_options, load_keylog, open_all
from mailtrace.commands.html_option import open_report
from mailtrace.pipeline import Analyzer
from mailtrace.render.html import HtmlLimits, fmt_bytes

_DEFAULTS = HtmlLimits()


@click.command()
@click.argument("captures", nargs=-1, required=True, metavar="CAPTURE...")
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    metavar="FILE",
    help="Where to write the report (- for standard output).",
)
@click.option("--title", metavar="TEXT", help="Title of the report (default: the capture file names).")
@click.option(
    "--max-rows",
    type=click.IntRange(10),
    default=_DEFAULTS.max_rows,
    show_default=True,
    help="Packet rows shown per session.",
)
@click.option(
    "--max-sections",
    type=click.IntRange(0),
    default=_DEFAULTS.max_sections,
    show_default=True,
    help="Sessions with a detail section; later ones are listed in the index only.",
)
@click.option(
    "--max-size",
    type=click.IntRange(1, 1024),
    default=_DEFAULTS.max_bytes // (1024 * 1024),
    show_default=True,
    metavar="MIB",
    help="MiB of session sections (with their data) in the page; later sessions are in the index only.",
)
@click.option(
    "--embed-attachments",
    is_flag=True,
    help="Embed attachments of up to 2 MiB each (8 MiB in all) as downloads behind a button. "
    "Off by default: captures carry malware and personal data.",
)
@capture_options
def report(
    captures: tuple[str, ...],
    output: str,
    title: str | None,
    max_rows: int,
    max_sections: int,
    max_size: int,
    embed_attachments: bool,
    ports: tuple[str, ...],
    show_secrets: bool,
    no_sniff: bool,
    keylog_path: str | None,
) -> None:
    """Write one self-contained HTML report: overview, session index, per-session packet tables,
    sequence diagrams, logins, messages and anomalies. It loads nothing from the network."""
    config = build_config(ports, show_secrets, no_sniff)
    keylog = load_keylog(keylog_path)
    limits = dataclasses.replace(
        HtmlLimits(), max_rows=max_rows, max_sections=max_sections, max_bytes=max_size * 1024 * 1024
    )
    html, collector = open_report(
        output, show_secrets=show_secrets, embed_attachments=embed_attachments, title=title, limits=limits
    )
    if collector is not None:
        config = dataclasses.replace(config, message_sink=collector)
    analyzer = Analyzer(config, keylog=keylog)
    html.stats = analyzer.stats
    started = time.monotonic()
    files = open_all(captures)
    try:
        for session in sessions(analyzer, files):
            html.session(session)
        html.end(analyzer.stats, time.monotonic() - started)
    finally:
        html.discard()
    for f in analyzer.stats.files:
        for problem in f.problems:
            click.echo(f"mailtrace: {f.name}: {problem}", err=True)
    if output != "-":
        click.echo(
            f"mailtrace: wrote {output} ({analyzer.stats.sessions} sessions, {fmt_bytes(html.written)})",
            err=True,
        )
