"""Security and spam-defence findings over the sessions of a capture (docs/findings.md).

* :mod:`.model` — :class:`Severity`, :class:`Finding` (``to_json``), the :data:`CATALOGUE` of ids,
  :class:`FindingsConfig`;
* :mod:`.facts` — what several rules need to know about a session (where TLS began, what the
  server offered in the clear, its names);
* :mod:`.headers` — spam-defence verdicts and the Received chain of a message summary;
* :mod:`.rules` — one function per finding kind over one session, listed in ``RULES``;
* :mod:`.cross` — bounded trackers for the rules over several sessions (brute force, RCPT probing,
  greylisting, DNSBL look-ups through the :class:`DnsObservation` hook);
* :mod:`.collector` — :class:`FindingsCollector`, the session consumer that runs them all.
"""

from mailtrace.findings.collector import FindingsCollector
from mailtrace.findings.cross import DnsObservation
from mailtrace.findings.model import CATALOGUE, Finding, FindingKind, FindingsConfig, Severity

__all__ = [
    "CATALOGUE",
    "DnsObservation",
    "Finding",
    "FindingKind",
    "FindingsCollector",
    "FindingsConfig",
    "Severity",
]
