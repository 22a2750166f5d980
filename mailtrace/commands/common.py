"""What the sub-commands share: building the Config, opening captures, one-line errors."""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import NoReturn

import click

from mailtrace.capture.reader import CaptureError, CaptureFile, open_capture
from mailtrace.config import Config, parse_port_rule
from mailtrace.tls import KeyLog

EXIT_USAGE = 2


def fail(message: str) -> NoReturn:
    """A problem the user can fix: one line on stderr, exit status 2, no traceback."""
    click.echo(f"mailtrace: {message}", err=True)
    sys.exit(EXIT_USAGE)


def build_config(ports: tuple[str, ...] = (), show_secrets: bool = False, no_sniff: bool = False) -> Config:
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


def open_all(paths: tuple[str, ...]) -> list[CaptureFile]:
    """Open every capture; report the ones that cannot be read; exit 2 if none can."""
    captures: list[CaptureFile] = []
    for path in paths:
        try:
            captures.append(open_capture(path))
        except CaptureError as exc:
            click.echo(f"mailtrace: {exc}", err=True)
    if not captures:
        sys.exit(EXIT_USAGE)
    return captures


def capture_options(f: click.decorators.FC) -> click.decorators.FC:
    """Options every command that reads captures takes."""
    return _capture_options(f, secrets=True)


def input_options(f: click.decorators.FC) -> click.decorators.FC:
    """The capture options of a command that shows no secrets: --port, --no-sniff, --tls-keylog."""
    return _capture_options(f, secrets=False)


def _capture_options(f: click.decorators.FC, *, secrets: bool) -> click.decorators.FC:
    f = click.option("--tls-keylog", "keylog_path", type=click.Path(dir_okay=False), metavar="FILE",
                     help="NSS key log (SSLKEYLOGFILE) to decrypt TLS sessions.")(f)
    f = click.option("--no-sniff", is_flag=True,
                     help="Only look at the mail ports; skip content detection on other ports.")(f)
    if secrets:
        f = click.option("--show-secrets", is_flag=True, help="Show passwords and tokens seen in cleartext.")(f)
    return click.option("--port", "ports", multiple=True, metavar="PORT=PROTO",
                     help="Treat a server port as smtp, pop3, imap (or smtps, pop3s, imaps). Repeatable.")(f)
