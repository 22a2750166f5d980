"""``--html FILE`` and ``--embed-attachments``: the HTML report as one more consumer of a command."""

from __future__ import annotations

import dataclasses
import sys
from typing import TYPE_CHECKING

import click

from mailtrace.commands.common import fail
from mailtrace.config import Config

if TYPE_CHECKING:  # jinja2 and the templates load only when a report is written
    from mailtrace.render.attachments import AttachmentCollector
    from mailtrace.render.html import HtmlLimits, HtmlReport


def html_options(f: click.decorators.FC) -> click.decorators.FC:
    f = click.option("--embed-attachments", is_flag=True,
                     help="With --html: embed attachments up to 2 MiB each (8 MiB in all) as downloads.")(f)
    return click.option("--html", "html_path", metavar="FILE",
                        help="Also write a self-contained HTML report to FILE (see mailtrace report).")(f)


def open_report(path: str, *, show_secrets: bool, embed_attachments: bool, title: str | None = None,
                limits: HtmlLimits | None = None, lang: str = "en", explain: bool = True,
                context: bool = True) -> tuple[HtmlReport, AttachmentCollector | None]:
    """The HTML consumer and, with --embed-attachments, the message sink that feeds it files.

    ``lang`` is the language of captions, explanations and header meanings (as the text views);
    ``context=False`` (``--no-context``) leaves the sessions' context lists empty, as in the JSON report.
    """
    from mailtrace.render.attachments import AttachmentCollector
    from mailtrace.render.html import HtmlReport

    collector = AttachmentCollector() if embed_attachments else None
    try:
        target = sys.stdout if path == "-" else path
        report = HtmlReport(target, show_secrets=show_secrets, title=title, limits=limits,
                            attachments=collector, lang=lang, explain=explain, context=context)
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror or exc}")
    return report, collector


def html_consumer(path: str | None, *, embed_attachments: bool, show_secrets: bool, config: Config,
                  lang: str = "en", explain: bool = True, context: bool = True) -> tuple[HtmlReport | None, Config]:
    """For ``--html``: the report consumer (None without the option) and the config it needs.

    Set ``report.stats = analyzer.stats`` once the Analyzer exists (Time 0 of the tables), and
    append ``report.extra`` to a :class:`~mailtrace.commands.report_data.ReportData`'s targets
    (the findings and statistics of the JSON report).
    """
    if path is None:
        if embed_attachments:
            fail("--embed-attachments needs --html FILE")
        return None, config
    if path == "-":
        fail("--html -: standard output carries the analysis; use mailtrace report -o - for the page alone")
    report, collector = open_report(path, show_secrets=show_secrets, embed_attachments=embed_attachments,
                                    lang=lang, explain=explain, context=context)
    if collector is not None:
        config = dataclasses.replace(config, message_sink=collector)
    return report, config
