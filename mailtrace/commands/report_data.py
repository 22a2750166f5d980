"""The findings, statistics and message flows of a run, built one way for every report that carries them.

``analyze --format json`` puts them at the top level of the JSON report (``"findings"``, ``"stats"``,
``"flows"``); the HTML report (``analyze --html``, ``mailtrace report``) embeds the same keys and
draws its findings and statistics sections from them. Both get them from :class:`ReportData`, and
the command-line options that shape the findings (``--local-domains``, ``--failed-login-threshold``)
are declared once here, as is the findings collector's hook into the DNS context, so the two
reports of one capture say the same thing.
"""

from __future__ import annotations

from typing import Any

import click

from mailtrace.commands.common import fail
from mailtrace.findings import FindingsCollector, FindingsConfig
from mailtrace.findings.model import DEFAULT_FAILED_LOGIN_THRESHOLD
from mailtrace.messageflows import FlowCollector
from mailtrace.pipeline import Analyzer, CaptureStats
from mailtrace.session import Session
from mailtrace.stats import StatsCollector


def findings_options(f: click.decorators.FC) -> click.decorators.FC:
    """``--local-domains`` and ``--failed-login-threshold``: what the findings rules are told."""
    f = click.option("--failed-login-threshold", "--bruteforce-threshold", "failed_login_threshold",
                     type=click.IntRange(min=1), default=DEFAULT_FAILED_LOGIN_THRESHOLD, show_default=True,
                     metavar="N", help="Failed logins from one client, or against one user, over all sessions, "
                                       "that make an auth-bruteforce finding.")(f)
    return click.option("--local-domains", metavar="DOMAIN,...",
                        help="Mail domains the captured servers serve, for the open-relay check "
                             "(default: guessed from the servers' host names, and the findings say so).")(f)


def parse_domains(text: str | None) -> frozenset[str]:
    if not text:
        return frozenset()
    domains = frozenset(d.strip().strip(".").lower() for d in text.split(",") if d.strip().strip("."))
    for d in domains:
        if " " in d or "@" in d or ("." not in d and d != "localhost"):
            fail(f"--local-domains: {d!r} is not a domain name (use a.example,b.example)")
    return domains


def findings_collector(*, show_secrets: bool, local_domains: str | None,
                       failed_login_threshold: int) -> FindingsCollector:
    """The findings collector the options ask for (secrets go into findings only with --show-secrets)."""
    return FindingsCollector(FindingsConfig(show_secrets=show_secrets, local_domains=parse_domains(local_domains),
                                            failed_login_threshold=failed_login_threshold))


def listen_for_dns(analyzer: Analyzer, findings: FindingsCollector) -> None:
    """The DNS lookups the context layer attributes become findings (``dnsbl-lookup``)."""
    if analyzer.context is not None:
        analyzer.context.listeners.append(findings.context)


def report_extras(findings: FindingsCollector, stats: StatsCollector,
                  flows: FlowCollector | None = None) -> dict[str, Any]:
    """The ``findings``, ``stats`` (and ``flows``) keys of the JSON report; the collectors have seen the run's end."""
    result = stats.result()
    result.extra["findings"] = findings.summary()
    out: dict[str, Any] = {"findings": findings.to_json(), "stats": result.to_json()}
    if flows is not None:
        out["flows"] = flows.entries()  # written entry by entry (render/json.py), listed for HTML
    return out


class ReportData:
    """Session consumer: counts the statistics and follows the flows; at the end puts ``findings``,
    ``stats`` and ``flows`` into each target.

    The targets are the ``extra`` dicts of the reports (the JSON report's, the HTML report's), so
    place this consumer before them. The findings collector is fed by the command (once per
    session, whatever the views); this consumer only ends it, which is safe to do twice.
    """

    def __init__(self, findings: FindingsCollector, stats: StatsCollector | None = None,
                 flows: FlowCollector | None = None) -> None:
        self.findings = findings
        self.stats = stats or StatsCollector()
        self.flows = flows or FlowCollector()
        self.targets: list[dict[str, Any]] = []

    def session(self, session: Session) -> None:
        self.stats.session(session, self.findings.facts_of(session))
        self.flows.session(session)

    def end(self, stats: CaptureStats, elapsed: float) -> None:
        self.findings.end(stats, elapsed)
        self.stats.end(stats, elapsed)
        self.flows.end(stats, elapsed)
        extras = report_extras(self.findings, self.stats, self.flows)
        for target in self.targets:
            target.update(extras)


def say_problems(stats: CaptureStats, findings: FindingsCollector) -> None:
    """After a run: the capture files' problems and any findings rule that failed, on stderr."""
    for f in stats.files:
        for problem in f.problems:
            click.echo(f"mailtrace: {f.name}: {problem}", err=True)
    for error in findings.errors:
        click.echo(f"mailtrace: a findings rule failed (a bug, please report it): {error}", err=True)
