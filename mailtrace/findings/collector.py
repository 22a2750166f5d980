"""The findings collector: a session consumer that runs every rule on each session as it streams.

Per-session rules run when a session arrives (:meth:`FindingsCollector.check` returns that
session's findings at once, for renderers that show them beside the session); the cross-session
trackers keep small bounded summaries and report in :meth:`FindingsCollector.end`. The findings
kept are capped (``FindingsConfig.max_findings``): past the cap the least severe are dropped first
and everything is still counted.
"""

from __future__ import annotations

from typing import Any

from mailtrace.context.model import DNS, ContextObservation
from mailtrace.findings.cross import (
    AttemptTracker,
    DnsblTracker,
    DnsObservation,
    GreylistTracker,
    LoginTracker,
    RcptProbeTracker,
    dns_observation,
)
from mailtrace.findings.facts import SessionFacts
from mailtrace.findings.model import CATALOGUE, Finding, FindingsConfig, Severity
from mailtrace.findings.rules import RULES, RuleContext
from mailtrace.pipeline import CaptureStats
from mailtrace.session import Session

ORDER = (Severity.HIGH, Severity.MEDIUM, Severity.LOW, Severity.INFO)


class FindingsCollector:
    """Consumes sessions (``session``/``end``) and the DNS hook (``dns``); holds the findings."""

    def __init__(self, config: FindingsConfig | None = None) -> None:
        self.config = config or FindingsConfig()
        self.ctx = RuleContext(self.config)
        self.logins = LoginTracker(self.ctx)
        self.probes = RcptProbeTracker(self.ctx)
        self.greylist = GreylistTracker(self.ctx)
        self.attempts = AttemptTracker(self.ctx)
        self.dnsbl = DnsblTracker(self.ctx)
        self._kept: dict[Severity, list[Finding]] = {s: [] for s in Severity}
        self._size = 0
        self.dropped = 0
        self.counts: dict[str, dict[str, int]] = {}
        """Finding id → severity → number found (dropped ones included)."""
        self.errors: list[str] = []
        """Rules that raised (a bug in mailtrace): rule name, session, exception. Reported, never fatal."""
        self.sessions = 0
        self.finished = False
        self._facts: SessionFacts | None = None
        """The facts of the session checked last (see :meth:`facts_of`)."""

    # ------------------------------------------------------------------ consumer interface
    def session(self, session: Session) -> None:
        self.check(session)

    def end(self, stats: CaptureStats | None = None, elapsed: float = 0.0) -> None:
        """The capture is over: the cross-session rules report. Safe to call more than once."""
        if self.finished:
            return
        self.finished = True
        for tracker in (self.logins, self.probes, self.greylist, self.attempts):
            try:
                for finding in tracker.findings():
                    self._add(finding)
            except Exception as exc:  # one broken rule must not lose the report
                self.errors.append(f"{type(tracker).__name__}: {exc!r}")

    # ------------------------------------------------------------------ inputs
    def check(self, session: Session) -> list[Finding]:
        """Run the per-session rules and feed the cross-session trackers; the session's findings."""
        self.sessions += 1
        facts = self._facts = SessionFacts(session)
        out: list[Finding] = []
        for rule in RULES:
            try:
                out.extend(rule(session, facts, self.ctx))
            except Exception as exc:  # one broken rule must not lose the report
                self.errors.append(f"{rule.__name__}: session {session.id}: {exc!r}")
        try:
            outcomes = facts.rcpt_outcomes
            self.logins.observe(session)
            self.attempts.observe(session)
            self.probes.observe(session, outcomes)
            out.extend(self.greylist.observe(session, outcomes))
        except Exception as exc:  # one broken rule must not lose the report
            self.errors.append(f"cross-session trackers: session {session.id}: {exc!r}")
        for finding in out:
            self._add(finding)
        return out

    def facts_of(self, session: Session) -> SessionFacts:
        """The facts of ``session``: those the rules just derived when it is the session checked last (the
        statistics read the same ones, so nothing is derived twice), else new ones."""
        facts = self._facts
        return facts if facts is not None and facts.session is session else SessionFacts(session)

    def dns(self, query: DnsObservation) -> Finding | None:
        """Hook for the DNS layer: one DNS query/response seen in the capture."""
        finding = self.dnsbl.observe(query)
        if finding is not None:
            self._add(finding)
        return finding

    def context(self, observation: ContextObservation) -> None:
        """Listener for the context layer (``Analyzer.context.listeners``): DNS transactions → :meth:`dns`."""
        if observation.kind == DNS:
            self.dns(dns_observation(observation))

    # ------------------------------------------------------------------ results
    def _add(self, finding: Finding) -> None:
        by_severity = self.counts.setdefault(finding.id, {})
        by_severity[finding.severity.value] = by_severity.get(finding.severity.value, 0) + 1
        if self._size >= self.config.max_findings:
            lowest = next((s for s in reversed(ORDER) if self._kept[s]), None)
            if lowest is None or not lowest < finding.severity:
                self.dropped += 1
                return
            self._kept[lowest].pop()
            self._size -= 1
            self.dropped += 1
        self._kept[finding.severity].append(finding)
        self._size += 1

    def findings(self) -> list[Finding]:
        """Kept findings, most severe first, then in capture order."""
        out: list[Finding] = []
        for severity in ORDER:
            out.extend(sorted(self._kept[severity], key=_order))
        return out

    def max_severity(self) -> Severity | None:
        return next((s for s in ORDER if any(v.get(s.value) for v in self.counts.values())), None)

    def at_least(self, severity: Severity) -> int:
        """How many findings (dropped ones included) have this severity or a higher one."""
        return sum(n for v in self.counts.values() for s, n in v.items() if Severity(s).rank >= severity.rank)

    def to_json(self) -> list[dict[str, Any]]:
        return [f.to_json() for f in self.findings()]

    def summary(self) -> dict[str, Any]:
        """Counts for the statistics: by severity, by id, and how many were not kept."""
        by_severity = {s.value: 0 for s in ORDER}
        for per_id in self.counts.values():
            for severity, n in per_id.items():
                by_severity[severity] += n
        return {
            "total": sum(by_severity.values()),
            "by_severity": by_severity,
            "by_id": {k: dict(v) for k, v in sorted(self.counts.items()) if k in CATALOGUE},
            "dropped": self.dropped,
            "dnsbl_lookups": self.dnsbl.lookups,
        }


def _order(f: Finding) -> tuple[int, int, float]:
    return (f.session if f.session is not None else 1 << 62, f.frames[0] if f.frames else 0, f.ts or 0.0)
