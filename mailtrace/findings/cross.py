"""Rules over several sessions: brute force and spraying, RCPT probing, greylisting, DNSBL look-ups.

Each tracker keeps a small summary per key (client address, user name, greylisting triple, DNSBL
query) — counts, a few frames, a capped set of names — never the sessions themselves. The number
of keys is capped by ``FindingsConfig.max_tracked``: past it the keys with the fewest events are
dropped (:class:`Keyed`), their events counted in ``untracked`` and said in the findings' details,
so memory stays flat on any capture.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from mailtrace.capture.decode import TCP_RST
from mailtrace.context.model import (
    ContextObservation,
    dnsbl_codes,
    dnsbl_lookup,
    dnsbl_query,  # noqa: F401 - moved there, still importable from here
)
from mailtrace.findings.facts import reply_ok
from mailtrace.findings.model import Finding, Severity
from mailtrace.findings.rules import GREYLIST_TEXT, UNKNOWN_USER, RcptOutcome, RuleContext, plural, quote
from mailtrace.model import Direction
from mailtrace.session import Session

MAX_NAMES = 1_000
"""Distinct user names / clients / addresses remembered per key."""
MAX_KEY_FRAMES = 50
MAX_SESSIONS = 50


@dataclass(slots=True)
class Tally:
    """Failures (or probes) seen for one key (slotted: a scan makes one per target, ~100,000 of them)."""

    count: int = 0
    first_ts: float = 0.0
    last_ts: float = 0.0
    frames: list[int] = field(default_factory=list)
    sessions: list[int] = field(default_factory=list)
    names: set[str] = field(default_factory=set)
    names_overflow: bool = False
    secrets: set[str] | None = None
    """Hashes of the passwords tried (made at the first one: most tallies never see one)."""
    success: tuple[int, int, str] | None = None
    """(session, frame, user) of a successful login after failures."""
    kinds: dict[str, int] | None = None
    """What the attempts were (``AttemptTracker``: refused, unanswered, closed)."""

    def add(self, ts: float, frame: int, session: int, name: str | None, secret: str | None = None) -> None:
        self.add_unnamed(1, ts, session)
        if len(self.frames) < MAX_KEY_FRAMES:
            self.frames.append(frame)
        if name is not None:
            if len(self.names) < MAX_NAMES:
                self.names.add(name)
            elif name not in self.names:
                self.names_overflow = True
        if secret is not None:
            if self.secrets is None:
                self.secrets = set()
            if len(self.secrets) < MAX_NAMES:
                self.secrets.add(hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()[:16])

    def add_unnamed(self, n: int, ts: float, session: int) -> None:
        """``n`` events known only by their count (logins past a session's limit, the last at ``ts``)."""
        if not self.count:
            self.first_ts = ts
        self.count += n
        self.last_ts = max(self.last_ts, ts)
        if session not in self.sessions and len(self.sessions) < MAX_SESSIONS:
            self.sessions.append(session)

    def names_text(self, limit: int = 5) -> str:
        names = sorted(self.names)
        more = len(names) - limit
        return ", ".join(names[:limit]) + (
            f" and {more}{'+' if self.names_overflow else ''} more" if more > 0 else ""
        )

    @property
    def span(self) -> float:
        return max(0.0, self.last_ts - self.first_ts)

    def session_id(self) -> int | None:
        return self.sessions[0] if len(self.sessions) == 1 else None

    def sessions_text(self) -> str:
        shown = ", ".join(str(s) for s in self.sessions[:10])
        return f"session{'s' if len(self.sessions) > 1 else ''} {shown}" + (
            " …" if len(self.sessions) > 10 else ""
        )


class Keyed:
    """A bounded dict of tallies. When it is full, the half with the fewest events is dropped (their events
    counted in ``untracked``): the keys that can reach a threshold stay, and filling the table with
    one-off keys first (a scan of 100,000 addresses) neither grows the memory nor blinds the rule."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.tallies: dict[str, Tally] = {}
        self.untracked = 0

    def get(self, key: str) -> Tally | None:
        tally = self.tallies.get(key)
        if tally is None:
            if len(self.tallies) >= self.limit:
                self._prune()
            tally = self.tallies[key] = Tally()
        return tally

    def _prune(self) -> None:
        ranked = sorted(self.tallies.items(), key=lambda kv: (-kv[1].count, kv[1].first_ts))
        keep = self.limit // 2  # and room for the key that asked
        self.untracked += sum(t.count for _, t in ranked[keep:])
        self.tallies = dict(ranked[:keep])


class LoginTracker:
    """``auth-bruteforce``: failed logins per client address and per user name, over all sessions."""

    def __init__(self, ctx: RuleContext) -> None:
        self.ctx = ctx
        self.by_client = Keyed(ctx.config.max_tracked)
        self.by_user = Keyed(ctx.config.max_tracked)

    def observe(self, s: Session) -> None:
        for a in s.auth:
            user = a.sent_username or "?"  # a command the server read as the name is no name tried
            if a.success is False and not a.cancelled:  # "*": the client gave up, nothing was checked
                for tally, name in (
                    (self.by_client.get(s.client.ip), user),
                    (self.by_user.get(user), s.client.ip),
                ):
                    if tally is not None:
                        tally.add(a.ts, a.frame, s.id, name, a.secret)
            elif a.success:
                for tally in (self.by_client.tallies.get(s.client.ip), self.by_user.tallies.get(user)):
                    if tally is not None and tally.count and tally.success is None:
                        tally.success = (s.id, a.frame, user)
        failed = s.logins_dropped.get("failed", 0) - s.logins_dropped.get("cancelled", 0)
        if failed > 0:  # past the session's limit: their users are not known, their number is
            tally = self.by_client.get(s.client.ip)
            if tally is not None:
                tally.add_unnamed(failed, s.end, s.id)
        if s.logins_dropped.get("succeeded"):  # an accepted login past the limit (its user is not kept)
            tally = self.by_client.tallies.get(s.client.ip)
            if tally is not None and tally.count and tally.success is None:
                tally.success = (s.id, s.last_frame, "?")

    def findings(self) -> Iterator[Finding]:
        n = self.ctx.config.failed_login_threshold
        flagged_users: set[str] = set()
        for client, t in self.by_client.tallies.items():
            if t.count < n:
                continue
            users = len(t.names)
            spraying = users >= n and t.count <= 3 * users
            same_password = spraying and t.secrets is not None and 0 < len(t.secrets) <= 2
            if spraying:
                title = f"Password spraying from {client}: {plural(users, 'user')} tried"
                what = f"{t.count} failed logins against {users} different users ({t.names_text()})" + (
                    ", mostly with the same password" if same_password else ""
                )
            else:
                title = f"Brute force from {client}: {t.count} failed logins"
                what = f"{t.count} failed logins for {t.names_text()}"
                if users == 1:
                    flagged_users.update(t.names)
            yield self._finding(t, title, what, "client")
        for user, t in self.by_user.tallies.items():
            if t.count < n or len(t.names) < 2 or user in flagged_users:
                continue
            yield self._finding(
                t,
                f"Brute force against user {user} from {plural(len(t.names), 'client')}",
                f"{t.count} failed logins for {user} from {t.names_text()}",
                "user",
            )

    def _finding(self, t: Tally, title: str, what: str, kind: str) -> Finding:
        rate = f" in {t.span:.0f} s" if t.span >= 1 else ""
        detail = f"{what}{rate} ({t.sessions_text()})."
        severity = Severity.MEDIUM
        if t.success is not None:
            severity = Severity.HIGH
            detail += (
                f" Then a login succeeded (user {t.success[2]}, session {t.success[0]}, frame "
                f"{t.success[1]}): the account may be compromised."
            )
            frames = [*t.frames[: self.ctx.config.max_frames - 1], t.success[1]]
        else:
            frames = t.frames
        detail += f" Threshold: {self.ctx.config.failed_login_threshold} failures per {kind}."
        untracked = self.by_client.untracked + self.by_user.untracked
        if untracked:
            detail += f" ({untracked} logins were past the tracking limit and not counted.)"
        return self.ctx.finding(
            "auth-bruteforce", severity, t.session_id(), frames, title, detail, t.first_ts
        )


class RcptProbeTracker:
    """``user-enumeration`` by RCPT: many recipients refused as unknown from one client."""

    def __init__(self, ctx: RuleContext) -> None:
        self.ctx = ctx
        self.by_client = Keyed(ctx.config.max_tracked)

    def observe(self, s: Session, outcomes: list[RcptOutcome]) -> None:
        for r in outcomes:
            if r.reply is not None and r.reply.status.startswith("5") and UNKNOWN_USER.search(r.reply.text):
                tally = self.by_client.get(s.client.ip)
                if tally is not None:
                    tally.add(r.command.ts, r.command.frame, s.id, r.address)

    def findings(self) -> Iterator[Finding]:
        n = self.ctx.config.rcpt_unknown_threshold
        for client, t in self.by_client.tallies.items():
            if t.count < n:
                continue
            yield self.ctx.finding(
                "user-enumeration",
                Severity.MEDIUM,
                t.session_id(),
                t.frames,
                f"RCPT probing by {client}: {plural(t.count, 'unknown recipient')}",
                f"{t.count} RCPT TO refused as unknown users ({t.names_text()}) in {t.sessions_text()}: the "
                f"server's answers tell which addresses exist. Threshold: {n}.",
                t.first_ts,
            )


class AttemptTracker:
    """``connection-scan``: connections to a mail port that carried no byte either way — refused with
    RST, SYNs nobody answered, or handshakes closed at once — per server endpoint over all sessions. One
    such session is nothing; hundreds are a port scan, and hundreds a second a SYN flood (RFC 4987)."""

    KINDS = ("refused", "unanswered", "closed")

    def __init__(self, ctx: RuleContext) -> None:
        self.ctx = ctx
        self.by_server = Keyed(ctx.config.max_tracked)

    def observe(self, s: Session) -> None:
        if s.commands or s.replies or s.messages or any(r.payload_len for r in s.rows):
            return
        answers = [r for r in s.rows if r.direction is Direction.SERVER]
        if not answers and s.rows_elided:
            return  # an answer may be among the packets the session did not keep
        if not answers:
            kind = "unanswered"
        elif any(r.flags & TCP_RST for r in answers):
            kind = "refused"
        else:
            kind = "closed"
        server = f"{s.server.ip}:{s.server.port}" if ":" not in s.server.ip else f"[{s.server.ip}]:{s.server.port}"
        tally = self.by_server.get(server)
        if tally is None:
            return
        tally.add(s.start, s.first_frame, s.id, s.client.ip)
        if tally.kinds is None:
            tally.kinds = dict.fromkeys(self.KINDS, 0)
        tally.kinds[kind] += 1

    def findings(self) -> Iterator[Finding]:
        config = self.ctx.config
        for server, t in self.by_server.tallies.items():
            if t.count < config.attempts_threshold:
                continue
            rate = t.count / t.span if t.span > 0 else float(t.count)
            counts = t.kinds or dict.fromkeys(self.KINDS, 0)
            # many RSTs say the port is closed (a scan finds that out); SYNs left unanswered or handshakes
            # dropped at once, hundreds a second, are what fills a listening server's backlog
            flood = rate >= config.flood_rate and counts["refused"] * 2 < t.count
            how = ", ".join(f"{counts[k]:,} {label}" for k, label in (
                ("refused", "refused with RST"), ("unanswered", "SYNs unanswered"),
                ("closed", "closed without a byte")) if counts[k])
            many = len(t.names) != 1 or t.names_overflow
            clients = f"{len(t.names):,}{'+' if t.names_overflow else ''} client{'s' if many else ''}"
            title = (f"SYN flood against {server}" if flood else f"Connection attempts to {server}") + \
                f": {t.count:,} without a mail dialog"
            span = f" in {t.span:.1f} s ({rate:,.0f} a second)" if t.span > 0 else ""
            meaning = ("a flood this fast can fill the backlog of half-open connections of a listening server"
                       if flood else "a port scan, or clients that gave up at once")
            detail = (f"{t.count:,} connections to {server} carried no byte of mail protocol{span}: {how}; "
                      f"from {clients} ({t.names_text()}): {meaning}. Threshold: {config.attempts_threshold} "
                      "per server port.")
            if self.by_server.untracked:
                detail += f" ({self.by_server.untracked} attempts were past the tracking limit.)"
            yield self.ctx.finding("connection-scan", Severity.MEDIUM if flood else Severity.LOW,
                                   t.session_id(), t.frames, title, detail, t.first_ts)


@dataclass
class Deferral:
    session: int
    frame: int
    ts: float
    status: str
    text: str


class GreylistTracker:
    """``greylisting``: a (client, sender, recipient) triple deferred with 4xx, then accepted on a retry."""

    def __init__(self, ctx: RuleContext) -> None:
        self.ctx = ctx
        self.deferred: dict[tuple[str, str, str], Deferral] = {}
        self.untracked = 0
        self.retried = 0

    def observe(self, s: Session, outcomes: list[RcptOutcome]) -> Iterator[Finding]:
        for r in outcomes:
            if r.reply is None or r.mail_from is None:
                continue
            key = (s.client.ip, r.mail_from.lower(), r.address.lower())
            status = r.reply.status
            if status in ("450", "451"):
                if key not in self.deferred:
                    if len(self.deferred) >= self.ctx.config.max_tracked:
                        self.untracked += 1
                        continue
                    self.deferred[key] = Deferral(s.id, r.reply.frame, r.reply.ts, status, r.reply.text)
            elif reply_ok(r.reply) and key in self.deferred and self.deferred[key].ts < r.reply.ts:
                first = self.deferred.pop(key)
                self.retried += 1
                yield self.ctx.finding(
                    "greylisting",
                    Severity.INFO,
                    s,
                    [first.frame, r.command.frame, r.reply.frame],
                    f"Greylisting: {s.client.ip} retried <{r.mail_from}> → <{r.address}> and was accepted",
                    f"First deferred in session {first.session} ({first.status} {quote(first.text)}), "
                    f"accepted {r.reply.ts - first.ts:.0f} s later in session {s.id}: the client is a real "
                    "MTA that queues and retries, which is what greylisting tests.",
                    first.ts,
                )

    def findings(self) -> Iterator[Finding]:
        for (client, sender, rcpt), d in self.deferred.items():
            if GREYLIST_TEXT.search(d.text):
                yield self.ctx.finding(
                    "greylisting",
                    Severity.INFO,
                    d.session,
                    [d.frame],
                    f"Greylisting: {client} deferred for <{sender}> → <{rcpt}>, no retry seen",
                    f"The server deferred the triple ({d.status} {quote(d.text)}); no retry appears in "
                    "the capture (spam software rarely retries; a real MTA retries after minutes).",
                    d.ts,
                )


# --------------------------------------------------------------------------- DNS blocklists


@dataclass(frozen=True, slots=True)
class DnsObservation:
    """One DNS query (and its answer, when seen) — the hook for the DNS dissector.

    The DNS layer (another issue) calls :meth:`FindingsCollector.dns` with one of these per
    query/response pair it sees; without DNS traffic no ``dnsbl-lookup`` finding is made.
    """

    frame: int
    ts: float
    resolver_client: str
    """Who asked (the mail server, usually)."""
    qname: str
    qtype: str = "A"
    answers: tuple[str, ...] = ()
    """A/AAAA/TXT answer data as text; empty for NXDOMAIN or no response seen."""
    rcode: str | None = None
    """``NOERROR``, ``NXDOMAIN`` ... or None when no response was seen."""


def dns_observation(o: ContextObservation) -> DnsObservation:
    """The findings' view of one DNS transaction seen by the context layer (mailtrace.context)."""
    return DnsObservation(frame=o.frame, ts=o.ts, resolver_client=o.host, qname=o.query or "",
                          qtype=o.qtype or "A", answers=tuple(r.data for r in o.answers), rcode=o.rcode)


class DnsblTracker:
    """``dnsbl-lookup``: a mail server asking a DNS blocklist about an address or a domain."""

    def __init__(self, ctx: RuleContext) -> None:
        self.ctx = ctx
        self.seen: set[tuple[str, str]] = set()
        self.lookups = 0
        self.listed = 0

    def observe(self, q: DnsObservation) -> Finding | None:
        parsed = dnsbl_lookup(q.qname, q.qtype)
        if parsed is None:
            return None
        subject, zone = parsed
        self.lookups += 1
        codes = dnsbl_codes(q.answers)
        if codes:
            self.listed += 1
        key = (subject, zone)
        if key in self.seen:
            return None
        if len(self.seen) < self.ctx.config.max_tracked:
            self.seen.add(key)
        if codes:
            return self.ctx.finding(
                "dnsbl-lookup",
                Severity.LOW,
                None,
                [q.frame],
                f"{subject} is listed on {zone} ({', '.join(codes)})",
                f"{q.resolver_client} looked up {subject} on the blocklist {zone} and got "
                f"{', '.join(codes)}: the address or domain is listed, and mail from it is likely refused.",
                q.ts,
            )
        outcome = "not listed" if q.rcode == "NXDOMAIN" else "no answer seen" if q.rcode is None else q.rcode
        return self.ctx.finding(
            "dnsbl-lookup",
            Severity.INFO,
            None,
            [q.frame],
            f"DNSBL look-up of {subject} on {zone}: {outcome}",
            f"{q.resolver_client} asked the blocklist {zone} about {subject} ({outcome}): a spam defence at "
            "work.",
            q.ts,
        )
