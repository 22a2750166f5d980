"""Command line: options → Config, sources → Analyzer, sessions → a renderer. No parsing here.

Errors the user can fix are one line on stderr with what to do next, and exit status 2; a report
that was produced (even from a damaged capture) exits 0. Each sub-command is a module in
``mailtrace.commands`` registered here with one line.
"""

from __future__ import annotations

import click

from mailtrace import __version__
from mailtrace.commands.analyze import analyze
from mailtrace.commands.extract import extract
from mailtrace.commands.flows import flows
from mailtrace.commands.interfaces import interfaces
from mailtrace.commands.live import live
from mailtrace.commands.report import report
from mailtrace.commands.stats import stats


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="mailtrace")
def main() -> None:
    """Analyse SMTP, POP3 and IMAP in packet captures: sessions, phases, logins and messages."""


main.add_command(analyze)
main.add_command(live)
main.add_command(interfaces)
main.add_command(stats)
main.add_command(extract)
main.add_command(report)
main.add_command(flows)


if __name__ == "__main__":  # pragma: no cover
    main()
