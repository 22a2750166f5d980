"""``mailtrace report``: captures → one self-contained HTML report (see docs/html-report.md)."""

from __future__ import annotations

import dataclasses
import time

import click

from mailtrace.commands.analyze import SessionConsumer, sessions
from mailtrace.commands.common import (
    build_config,
    capture_options,
    jobs_option,
    lang_option,
    load_keylog,
    open_all,
    resolve_lang,
)
from mailtrace.commands.html_option import open_report
from mailtrace.commands.report_data import (
    ReportData,
    findings_collector,
    findings_options,
    listen_for_dns,
    say_problems,
)
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
@click.option("--no-explain", is_flag=True,
              help="Do not explain SMTP reply codes (failures and the less common positive ones) and EHLO "
                   "extensions under their rows.")
@click.option(
    "--no-context",
    is_flag=True,
    help="Leave out the DNS lookups and ident probes made for each session (the JSON \"context\" lists stay "
    "empty).",
)
@findings_options
@lang_option
@capture_options
@jobs_option
def report(
    captures: tuple[str, ...],
    output: str,
    title: str | None,
    max_rows: int,
    max_sections: int,
    max_size: int,
    embed_attachments: bool,
    no_explain: bool,
    no_context: bool,
    local_domains: str | None,
    failed_login_threshold: int,
    lang: str | None,
    ports: tuple[str, ...],
    show_secrets: bool,
    no_sniff: bool,
    keylog_path: tuple[str, ...] | None,
    jobs: int | None,
) -> None:
    """Write one self-contained HTML report: overview, findings, statistics, session index, per-session
    packet tables, sequence diagrams, logins, messages and anomalies. It loads nothing from the network.

    The page embeds the JSON report (mailtrace analyze --format json with the same options), findings
    and statistics included."""
    language = resolve_lang(lang)
    config = build_config(ports, show_secrets, no_sniff)
    keylog = load_keylog(keylog_path)
    limits = dataclasses.replace(
        HtmlLimits(), max_rows=max_rows, max_sections=max_sections, max_bytes=max_size * 1024 * 1024
    )
    findings = findings_collector(
        show_secrets=show_secrets, local_domains=local_domains, failed_login_threshold=failed_login_threshold
    )
    html, collector = open_report(
        output,
        show_secrets=show_secrets,
        embed_attachments=embed_attachments,
        title=title,
        limits=limits,
        explain=not no_explain,
        lang=language,
        context=not no_context,
    )
    if collector is not None:
        config = dataclasses.replace(config, message_sink=collector)
    analyzer = Analyzer(config, keylog=keylog)
    listen_for_dns(analyzer, findings)
    html.stats = analyzer.stats
    started = time.monotonic()
    files = open_all(captures)
    data = ReportData(findings)
    data.targets.append(html.extra)
    # as analyze --format json --html: one findings run, the statistics, then the page
    consumers: list[SessionConsumer] = [findings, data, html]
    try:
        for session in sessions(analyzer, files, jobs=jobs):
            for consumer in consumers:
                consumer.session(session)
        elapsed = time.monotonic() - started
        for consumer in consumers:
            consumer.end(analyzer.stats, elapsed)
    finally:
        html.discard()
    say_problems(analyzer.stats, findings)
    if output != "-":
        n = analyzer.stats.sessions
        click.echo(
            f"mailtrace: wrote {output} ({n:,} session{'' if n == 1 else 's'}, {fmt_bytes(html.written)})",
            err=True,
        )
