"""``mailtrace stats``: statistics over captures — rich tables, JSON or CSV.

The same :class:`~mailtrace.stats.StatsCollector` fills the ``stats`` key of ``analyze --format
json``; the findings are run too, and counted (not listed) in a last table.
"""

from __future__ import annotations

import csv
import sys
import time

import click

from mailtrace.commands.analyze import sessions
from mailtrace.commands.common import (
    build_config,
    capture_options,
    jobs_option,
    lang_option,
    load_keylog,
    open_all,
    resolve_lang,
)
from mailtrace.commands.report_data import listen_for_dns
from mailtrace.findings import FindingsCollector, FindingsConfig
from mailtrace.pipeline import Analyzer
from mailtrace.render.json import dumps
from mailtrace.render.output import Output
from mailtrace.render.progress import Progress
from mailtrace.stats import DEFAULT_TOP, StatsCollector, StatsLimits, stats_document


@click.command()
@click.argument("captures", nargs=-1, required=True, metavar="CAPTURE...")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "csv"]),
    default="text",
    show_default=True,
    help="text: tables; json: one document; csv: section,item,metric,value rows.",
)
@click.option(
    "--top",
    type=click.IntRange(min=1),
    default=DEFAULT_TOP,
    show_default=True,
    metavar="N",
    help="Rows of the top-N tables (servers, clients, addresses).",
)
@click.option("--color/--no-color", "color", default=None,
              help="Colour the tables (default: on a terminal, unless NO_COLOR is set).")
@click.option("--width", type=click.IntRange(40, 10_000), default=None, metavar="COLUMNS",
              help="Lay the tables out at this width (default: the terminal's; never wrapped when piped).")
@capture_options
@jobs_option
@lang_option
def stats(
    *,
    captures: tuple[str, ...],
    fmt: str,
    top: int,
    color: bool | None,
    width: int | None,
    ports: tuple[str, ...],
    show_secrets: bool,
    no_sniff: bool,
    keylog_path: tuple[str, ...] | None,
    jobs: int | None,
    lang: str | None,
) -> None:
    """Statistics of capture files: protocols, peers, commands, replies, messages, timing, spam defences."""
    language = resolve_lang(lang)
    config = build_config(ports, show_secrets, no_sniff)
    keylog = load_keylog(keylog_path)
    files = open_all(captures)
    analyzer = Analyzer(config, keylog=keylog)
    collector = StatsCollector(StatsLimits(top=top))
    findings = FindingsCollector(FindingsConfig())
    listen_for_dns(analyzer, findings)  # DNSBL look-ups are findings too, counted in stats.findings
    out = sys.stdout
    output = Output.detect(color=color, width=width, stream=out, err=sys.stderr)
    started = time.monotonic()
    with Progress(output.err, enabled=output.err_isatty) as progress:
        for session in sessions(analyzer, files, progress, jobs, light_report=True):
            collector.session(session)
            findings.session(session)
    elapsed = time.monotonic() - started
    collector.end(analyzer.stats, elapsed)
    findings.end(analyzer.stats, elapsed)
    result = collector.result()
    result.extra["findings"] = findings.summary()
    if fmt == "json":
        out.write(dumps(stats_document(result), indent=2) + "\n")
    elif fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(("section", "item", "metric", "value"))
        writer.writerows(result.rows())
    else:
        from mailtrace.render.findings import output_console, print_unpadded, stats_renderables

        console = output_console(output)
        for renderable in stats_renderables(result, top=top, lang=language):
            print_unpadded(console, renderable)
    for f in analyzer.stats.files:
        for problem in f.problems:
            click.echo(f"mailtrace: {f.name}: {problem}", err=True)
