"""``mailtrace flows``: follow each message across the sessions of the captures (docs/context-and-flows.md).

Reads the captures like ``analyze``, feeds every session to a :class:`FlowCollector` and prints
the flows at the end: as text (one path of hops per message) or as JSON (``{"format":
"mailtrace-flows", "version": 1, "flows": [...]}`` — the same objects as the analyze report's
top-level ``flows``).
"""

from __future__ import annotations

import sys

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
from mailtrace.messageflows import FlowCollector
from mailtrace.pipeline import Analyzer
from mailtrace.render.json import dumps
from mailtrace.render.output import Output
from mailtrace.render.progress import Progress


@click.command()
@click.argument("captures", nargs=-1, required=True, metavar="CAPTURE...")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: each message as a path of hops; json: the flows as one document.")
@click.option("--multi-hop", is_flag=True,
              help="Text: only messages carried by more than one session (not those only downloaded again).")
@click.option("--color/--no-color", "color", default=None,
              help="Colour the text (default: on a terminal, unless NO_COLOR is set).")
@click.option("--width", type=click.IntRange(40, 10_000), default=None, metavar="COLUMNS",
              help="Wrap the text at this width (default: the terminal's; never when piped).")
@lang_option
@capture_options
@jobs_option
def flows(*, captures: tuple[str, ...], fmt: str, multi_hop: bool, color: bool | None, width: int | None,
          lang: str | None, ports: tuple[str, ...], show_secrets: bool, no_sniff: bool,
          keylog_path: tuple[str, ...] | None, jobs: int | None) -> None:
    """Follow each message across hops: submission, relay, retrieval (POP3/IMAP), APPEND.

    Messages are joined by Message-ID, or by a fingerprint of their body when they have none.
    """
    language = resolve_lang(lang)
    config = build_config(ports, show_secrets, no_sniff)
    analyzer = Analyzer(config, keylog=load_keylog(keylog_path))
    files = open_all(captures)
    out = sys.stdout
    output = Output.detect(color=color, width=width, stream=out, err=sys.stderr)
    collector = FlowCollector()
    progress = Progress(output.err, enabled=output.err_isatty)
    with progress:
        for session in sessions(analyzer, files, progress, jobs, light_report=True):
            collector.session(session)
    if fmt == "json":
        document = {"format": "mailtrace-flows", "version": 1,
                    "flows": collector.json(),
                    "skipped": collector.skipped, "dropped": collector.dropped}
        out.write(dumps(document) + "\n")
    else:
        from mailtrace.render.flows import FlowsRenderer

        FlowsRenderer(output, lang=language, multi_only=multi_hop).write(collector)
    for f in analyzer.stats.files:
        for problem in f.problems:
            click.echo(f"mailtrace: {f.name}: {problem}", err=True)
