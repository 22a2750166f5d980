"""Command line: options → Config, sources → Analyzer, sessions → a renderer. No parsing here.

Errors the user can fix are one line on stderr with what to do next, and exit status 2; a report
that was produced (even from a damaged capture) exits 0. Each sub-command is a module in
``mailtrace.commands`` registered here with one line in ``COMMANDS``.
"""

from __future__ import annotations

import atexit
import gc
import importlib
import io
import os
import sys
import threading

import click

from mailtrace import __version__

COMMANDS = {
    "analyze": "mailtrace.commands.analyze",
    "live": "mailtrace.commands.live",
    "interfaces": "mailtrace.commands.interfaces",
    "stats": "mailtrace.commands.stats",
    "extract": "mailtrace.commands.extract",
    "report": "mailtrace.commands.report",
    "flows": "mailtrace.commands.flows",
}
"""Sub-command name → the module that defines a click command of that name (imported when used)."""

GC_YOUNG_THRESHOLD = 100_000
"""Allocations between two collections of the youngest generation (CPython's default is 700).

A capture becomes millions of small objects that live as long as their session (packet rows, events,
stream pieces), and almost none of them are in reference cycles: with the default, the collector
traversed them again and again, 7-12 % of the dissecting process's CPU on the benchmark. A larger
first generation keeps what it collects the same, in fewer, larger passes. At 20,000 the dissecting
process still spent 0.35-0.45 s of CPU collecting on the benchmark (18 passes, one of them over the older
generation): each pass reads the headers of the old objects the young ones point to, spread over a
heap of a hundred megabytes, so the time is cache misses (callgrind counts only 1.5 % of the
instructions). At 100,000: 0.06-0.08 s, and the same peak RSS (the little cyclic garbage waits longer)."""


class LazyGroup(click.Group):
    """Imports a sub-command's module only when it runs: ``mailtrace analyze`` does not load jinja2 or
    scapy, and ``mailtrace --version`` loads nothing (click's documented lazy-loading pattern)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMANDS.get(cmd_name)
        if module is None:
            return None
        command = getattr(importlib.import_module(module), cmd_name)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="mailtrace")
def main() -> None:
    """Analyse SMTP, POP3 and IMAP in packet captures: sessions, phases, logins and messages."""
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)
    for stream in (sys.stdout, sys.stderr):
        # bytes from the wire that are not UTF-8 live on as lone surrogates: print them as \udcNN
        # rather than fail half-way through a report, whatever the terminal's encoding
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")


def run() -> None:
    """The console script and ``python -m mailtrace``: :func:`main`, then an exit without the
    interpreter's teardown.

    A big run ends holding its report's data, millions of small objects, and the interpreter would
    free them one by one after the report is written (~0.07 s on the benchmark capture) in a process
    that is ending anyway. Exit handlers still run and the standard streams are flushed first; with
    another thread still running (live capture), or when flushing fails (a closed pipe), the normal
    exit takes over. Tests call :func:`main` in-process and keep the normal exit.
    """
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    else:  # pragma: no cover - click's standalone mode always ends with SystemExit
        code = 0
    if not isinstance(code, int | None) or threading.active_count() > 1:
        sys.exit(code)
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        sys.exit(code)
    os._exit(code or 0)


if __name__ == "__main__":  # pragma: no cover
    run()
