"""Command line: options → Config, sources → Analyzer, sessions → a renderer. No parsing here.

Errors the user can fix are one line on stderr with what to do next, and exit status 2; a report
that was produced (even from a damaged capture) exits 0.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import IO

import click

from mailtrace import __version__
from mailtrace.capture.reader import CaptureError, CaptureFile, open_capture
from mailtrace.config import Config, parse_port_rule
from mailtrace.pipeline import Analyzer
from mailtrace.render.json import JsonReportWriter, jsonl_writer
from mailtrace.session import Session
from mailtrace.tls import KeyLog

EXIT_USAGE = 2


def fail(message: str) -> None:
    click.echo(f"mailtrace: {message}", err=True)
    sys.exit(EXIT_USAGE)


def build_config(ports: tuple[str, ...], show_secrets: bool, no_sniff: bool) -> Config:
    config = Config()
    port_map = dict(config.ports)
    for text in ports:
        try:
            port, rule = parse_port_rule(text)
        except ValueError as exc:
            fail(f"--port: {exc}")
        port_map[port] = rule
    return replace(config, ports=port_map, show_secrets=show_secrets, sniff_other_ports=not no_sniff,
                   dissector=replace(config.dissector, show_secrets=show_secrets))


def load_keylog(path: str | None) -> KeyLog | None:
    if path is None:
        return None
    try:
        return KeyLog.from_file(path)
    except OSError as exc:
        fail(f"--tls-keylog {path}: {exc.strerror or exc}")
    return None  # pragma: no cover - fail() exits


def open_all(paths: tuple[str, ...]) -> list[CaptureFile]:
    """Open every capture; report the ones that cannot be read; exit 2 if none can."""
    captures: list[CaptureFile] = []
    errors: list[str] = []
    for path in paths:
        try:
            captures.append(open_capture(path))
        except CaptureError as exc:
            errors.append(str(exc))
    for error in errors:
        click.echo(f"mailtrace: {error}", err=True)
    if not captures:
        sys.exit(EXIT_USAGE)
    return captures


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="mailtrace")
def main() -> None:
    """Analyse SMTP, POP3 and IMAP in packet captures: sessions, phases, logins and messages."""


@main.command()
@click.argument("captures", nargs=-1, required=True, metavar="CAPTURE...")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "jsonl"]), default="text", show_default=True,
              help="text: annotated session tables; json: one report document; jsonl: one session per line.")
@click.option("--port", "ports", multiple=True, metavar="PORT=PROTO",
              help="Treat a server port as smtp, pop3, imap (or smtps, pop3s, imaps). Repeatable.")
@click.option("--show-secrets", is_flag=True, help="Show passwords and tokens seen in cleartext.")
@click.option("--no-sniff", is_flag=True, help="Only look at the mail ports; skip content detection elsewhere.")
@click.option("--tls-keylog", "keylog_path", type=click.Path(dir_okay=False), metavar="FILE",
              help="NSS key log (SSLKEYLOGFILE) to decrypt TLS sessions.")
def analyze(captures: tuple[str, ...], fmt: str, ports: tuple[str, ...], show_secrets: bool,
            no_sniff: bool, keylog_path: str | None) -> None:
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
        for session in _sessions(analyzer, files):
            writer.session(session)
        writer.end(analyzer.stats)
    elif fmt == "jsonl":
        write = jsonl_writer(out, show_secrets)
        for session in _sessions(analyzer, files):
            write(session)
    else:
        from mailtrace.render.terminal import TerminalRenderer

        renderer = TerminalRenderer(out, show_secrets=show_secrets)
        for session in _sessions(analyzer, files):
            renderer.session(session)
        renderer.summary(analyzer.stats, time.monotonic() - started)
    for f in analyzer.stats.files:
        for problem in f.problems:
            click.echo(f"mailtrace: {f.name}: {problem}", err=True)


def _sessions(analyzer: Analyzer, files: list[CaptureFile]) -> Iterator[Session]:
    try:
        yield from analyzer.run(files)
    except KeyboardInterrupt:
        click.echo("mailtrace: interrupted", err=True)
        sys.exit(130)


def _stderr() -> IO[str]:
    return click.get_text_stream("stderr")


if __name__ == "__main__":  # pragma: no cover
    main()
