"""What the sub-commands share: building the Config, opening captures, one-line errors."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import NoReturn

import click

from mailtrace.capture.reader import CaptureError, CaptureFile, open_capture
from mailtrace.config import Config, parse_port_rule
from mailtrace.render.catalog import CATALOGS
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


def load_keylog(paths: str | Sequence[str] | None) -> KeyLog | None:
    """The key logs of ``--tls-keylog`` (repeatable), merged into one; None when none was given.

    Each file is read and checked on its own: one that cannot be read is an error, one without any
    secret gets its own warning (the others still decrypt)."""
    if paths is None or isinstance(paths, str):
        paths = () if paths is None else (paths,)
    merged: KeyLog | None = None
    for path in paths:
        try:
            keylog = KeyLog.from_file(path)
        except OSError as exc:
            fail(f"--tls-keylog {path}: {exc.strerror or exc}")
        except ValueError as exc:
            fail(f"--tls-keylog {path}: {exc}")
        if not len(keylog):
            what = f"none of its {keylog.skipped_lines} lines is" if keylog.skipped_lines else "it holds no lines"
            click.echo(f"mailtrace: --tls-keylog {path}: no TLS secrets found ({what} an NSS key log line such as "
                       "CLIENT_RANDOM <64 hex> <96 hex>); TLS sessions stay encrypted unless the capture's own "
                       "pcapng secrets decrypt them", err=True)
        if merged is None:
            merged = keylog
        else:
            merged.merge(keylog)
    return merged


def open_all(paths: tuple[str, ...]) -> list[CaptureFile]:
    """Open every capture; report the ones that cannot be read; exit 2 if none can.

    An unreadable input among readable ones stays in the list as a stand-in
    (:meth:`CaptureFile.unreadable`: no frames), so the report lists every input, that one with
    its ``error``."""
    captures: list[CaptureFile] = []
    for path in paths:
        try:
            captures.append(open_capture(path))
        except CaptureError as exc:
            click.echo(f"mailtrace: {exc}", err=True)
            captures.append(CaptureFile.unreadable(exc))
    if all(c.error is not None for c in captures):
        sys.exit(EXIT_USAGE)
    return captures


def capture_options(f: click.decorators.FC) -> click.decorators.FC:
    """Options every command that reads captures takes."""
    return _capture_options(f, secrets=True)


def input_options(f: click.decorators.FC) -> click.decorators.FC:
    """The capture options of a command that shows no secrets: --port, --no-sniff, --tls-keylog."""
    return _capture_options(f, secrets=False)


def _capture_options(f: click.decorators.FC, *, secrets: bool) -> click.decorators.FC:
    # a plain path: load_keylog says what is wrong with it in one line (a directory too, as a missing file)
    f = click.option("--tls-keylog", "keylog_path", type=click.Path(), metavar="FILE",
                     multiple=True, callback=_given_or_none,
                     help="NSS key log (SSLKEYLOGFILE) to decrypt TLS sessions. Repeatable: the secrets of "
                          "all key logs given are merged.")(f)
    f = click.option("--no-sniff", is_flag=True,
                     help="Only look at the mail ports; skip content detection on other ports.")(f)
    if secrets:
        f = click.option("--show-secrets", is_flag=True, help="Show passwords and tokens seen in cleartext.")(f)
    return click.option("--port", "ports", multiple=True, metavar="PORT=PROTO",
                     help="Treat a server port as smtp, pop3, imap (or smtps, pop3s, imaps). Repeatable.")(f)


def _given_or_none(_ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...] | None:
    """A repeatable option's values, or None when it was not given (as for a single-valued option)."""
    return value or None


def jobs_option(f: click.decorators.FC) -> click.decorators.FC:
    """``--jobs``: dissect and report in one process or in two."""
    return click.option("--jobs", "-j", "jobs", type=click.IntRange(1, 2), default=None, metavar="N",
                        help="1: one process; 2: one process dissects while another writes the report "
                             "(default: 2 on a machine with two or more cores, for captures of 4 MiB or "
                             "more).")(f)


LANG_ENV = "MAILTRACE_LANG"


def lang_option(f: click.decorators.FC) -> click.decorators.FC:
    """``--lang``: the language of captions, phase names and the other words of the text views."""
    return click.option("--lang", "lang", metavar="LANG", default=None,
                        help=f"Language of captions and labels: {', '.join(sorted(CATALOGS))} "
                             f"(default: ${LANG_ENV}, else en).")(f)


def resolve_lang(value: str | None) -> str:
    """``--lang``, else ``$MAILTRACE_LANG`` (``de``, ``de_DE.UTF-8`` and ``de-AT`` all mean German), else English.

    A language asked for on the command line that has no catalogue is an error; one from the
    environment falls back to English with a warning, so a stray setting never stops a report.
    """
    raw = value if value is not None else os.environ.get(LANG_ENV, "")
    code = raw.strip().split(".", 1)[0].replace("-", "_").split("_", 1)[0].lower()
    if not code:
        return "en"
    if code in CATALOGS:
        return code
    known = ", ".join(sorted(CATALOGS))
    if value is not None:
        fail(f"--lang {value}: no such language (use {known})")
    click.echo(f"mailtrace: {LANG_ENV}={raw}: no such language (use {known}); using en", err=True)
    return "en"
