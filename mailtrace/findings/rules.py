"""The per-session rules: one small function per finding kind, each reading one finished session.

A rule takes the session, its :class:`~mailtrace.findings.facts.SessionFacts` and a
:class:`RuleContext` and yields findings. Rules never see packets and never keep state between
sessions; what must be remembered across sessions lives in :mod:`mailtrace.findings.cross`. The
only shared state a rule may touch is :meth:`RuleContext.once`, which reports a property of a
server (not of a session) once per server.

:data:`RULES` lists them explicitly, one line per rule.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from email.utils import getaddresses, parseaddr

from mailtrace.findings.facts import (
    PASSWORD_MECHANISMS,
    STARTTLS_VERBS,
    SessionFacts,
    domain_of,
    in_domains,
    org_domain,
    plain_mailbox,
    reply_failed,
    reply_ok,
)
from mailtrace.findings.headers import (
    ChainProblem,
    Headers,
    chain_problems,
    date_seconds,
    header_values,
    received_chain,
)
from mailtrace.findings.model import CATALOGUE, Finding, FindingsConfig, Severity
from mailtrace.mime import MAX_LINE_CHARS, long_lines_defect
from mailtrace.model import AuthAttempt, Command, Reply
from mailtrace.protocols.smtp import parse_address
from mailtrace.session import MessageRecord, Session

HIGH, MEDIUM, LOW, INFO = Severity.HIGH, Severity.MEDIUM, Severity.LOW, Severity.INFO

NO_SECRET_MECHANISMS = frozenset(
    {"EXTERNAL", "ANONYMOUS", "GSSAPI", "GS2-KRB5", "KERBEROS_V4", "KERBEROS_V5"}
)
"""Mechanisms that send no reusable secret: never a cleartext-credentials finding."""
CLEARTEXT_PASSWORD = PASSWORD_MECHANISMS | {"USER", "PASS"}
"""Mechanisms (and POP3 USER/PASS, IMAP LOGIN = ``LOGIN``) whose secret is readable on the wire."""
TOKEN_MECHANISMS = frozenset({"XOAUTH2", "OAUTHBEARER", "XOAUTH"})
"""Of those, the ones whose secret is an OAuth bearer token, not the password."""
AUTH_VERBS = frozenset({"USER", "PASS", "APOP", "AUTH", "AUTHENTICATE", "LOGIN", ""})
HARMLESS_AFTER_REFUSAL = frozenset({"QUIT", "LOGOUT", "NOOP", "RSET", "EHLO", "HELO", "CAPA", "CAPABILITY"})

RELAY_TEXT = re.compile(
    r"relay(?:ing)?\s+(?:access\s+)?(?:is\s+)?(?:denied|not\s+(?:permitted|allowed)|prohibited|refused)"
    r"|unable\s+to\s+relay|not\s+permitted\s+to\s+relay|we\s+do\s+not\s+relay|no\s+relay"
    r"|\b5\.7\.(?:54|64)\b|relay\s+not\s+permitted|cannot\s+relay",
    re.IGNORECASE,
)
ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")
UNKNOWN_USER = re.compile(
    r"user\s+unknown|unknown\s+user|no\s+such\s+(?:user|mailbox|recipient)|mailbox\s+(?:unavailable|not\s+found)"
    r"|does\s+not\s+exist|unknown\s+(?:recipient|mailbox|address)|invalid\s+(?:recipient|mailbox)"
    r"|recipient\s+(?:not\s+found|unknown)|address\s+rejected:\s+user\s+unknown|\b5\.1\.[01]\b",
    re.IGNORECASE,
)
GREYLIST_TEXT = re.compile(
    r"gr[ae]y[- ]?list|try\s+again\s+later|please\s+retry|come\s+back\s+later", re.IGNORECASE
)

SPAM_CATEGORIES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(rx, re.IGNORECASE))
    for name, rx in (
        ("greylisting", r"gr[ae]y[- ]?list"),
        (
            "dnsbl",
            r"spamhaus|spamcop|sorbs|barracuda|uceprotect|block\s*list|black\s*list|dnsbl|\brbl\b"
            r"|blocked\s+using|listed\s+(?:at|in|on|by)",
        ),
        ("spf", r"\bspf\b|sender\s+policy\s+framework|not\s+designated?\b"),
        ("dmarc", r"\bdmarc\b"),
        ("dkim", r"\bdkim\b"),
        (
            "content",
            r"\bspam\b|content\s+rejected|message\s+content|virus|malware|infected|junk|bulk\s+mail"
            r"|\bscore\b|\bbanned\b",
        ),
        (
            "sender-domain",
            r"domain\s+not\s+found|sender\s+address\s+rejected:\s+domain|domain\s+of\s+sender\s+address"
            r"|sender\s+domain|unverified\s+sender|\b[45]\.1\.8\b|unroutable",
        ),
        (
            "client-host",
            r"client\s+host\s+rejected|reverse\s+(?:dns|hostname|lookup)|cannot\s+find\s+your\s+hostname"
            r"|helo\s+command\s+rejected|\bptr\b",
        ),
        (
            "auth-required",
            r"not\s+logged\s+in|authentication\s+required|must\s+(?:authenticate|log\s*in)"
            r"|\b5\.7\.57\b|\b5\.7\.0\b.*auth",
        ),
        ("sender-policy", r"sender\s+address\s+rejected|sender\s+blocked|access\s+denied|\b5\.7\.1\b"),
        ("rate-limit", r"rate\s+limit|too\s+many\s+(?:connections|messages|recipients)|\bthrottl"),
        ("error-limit", r"too\s+many\s+errors|too\s+many\s+(?:bad|invalid|unknown)\s+commands"),
    )
)
"""What a refusal says about the defence behind it; the first pattern that matches names it."""

Rule = Callable[[Session, SessionFacts, "RuleContext"], Iterable[Finding]]


class RuleContext:
    """What a rule may use besides the session: the settings and a once-per-key memory."""

    def __init__(self, config: FindingsConfig, seen: set[tuple[str, ...]] | None = None) -> None:
        self.config = config
        self._seen = seen if seen is not None else set()

    def once(self, *key: str) -> bool:
        """True the first time a key is seen (bounded: past the limit every key counts as new)."""
        if key in self._seen:
            return False
        if len(self._seen) < self.config.max_tracked:
            self._seen.add(key)
        return True

    def finding(
        self,
        id_: str,
        severity: Severity,
        session: Session | int | None,
        frames: Iterable[int],
        title: str,
        detail: str,
        ts: float | None = None,
    ) -> Finding:
        kind = CATALOGUE[id_]
        assert severity in kind.severities, (id_, severity)
        unique = sorted({f for f in frames if f})
        sid = session.id if isinstance(session, Session) else session
        return Finding(
            id=id_,
            severity=severity,
            session=sid,
            frames=tuple(unique[: self.config.max_frames]),
            title=title,
            detail=detail,
            reference=kind.reference_for(session.protocol if isinstance(session, Session) else None),
            ts=ts,
        )


def proto(s: Session) -> str:
    return s.protocol.upper()


def quote(text: str, limit: int = 512) -> str:
    """Quote what a peer sent, whitespace folded; whole up to RFC 5321's 512-octet line (a finding is
    evidence: the views wrap it, never cut it), beyond that cut with an ellipsis."""
    text = " ".join(text.split())
    return '"' + (text if len(text) <= limit else text[: limit - 1] + "…") + '"'


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


@dataclass(frozen=True, slots=True)
class Exchange:
    command: Command
    reply: Reply | None


def exchanges(s: Session) -> list[Exchange]:
    """Commands with the final replies that answer them (RFC 5321/1939 order; IMAP by tag)."""
    out: list[Exchange] = []
    if s.protocol == "imap":
        tagged = {
            r.tag: r for r in reversed(s.replies) if r.tag is not None and r.status in ("OK", "NO", "BAD")
        }
        return [Exchange(c, tagged.get(c.tag) if c.tag is not None else None) for c in s.commands if c.verb]
    queues: dict[str, list[Reply]] = {}
    for reply in s.replies:
        if reply.answers is not None and not (s.protocol == "smtp" and reply.status in ("334",)):
            queues.setdefault(reply.answers, []).append(reply)
    taken: dict[str, int] = {}
    for command in s.commands:
        if not command.verb:
            continue
        queue = queues.get(command.verb, [])
        i = taken.get(command.verb, 0)
        while i < len(queue) and queue[i].frame < command.frame:
            i += 1
        answer = queue[i] if i < len(queue) else None
        taken[command.verb] = i + 1 if answer is not None else i
        out.append(Exchange(command, answer))
    return out


# --------------------------------------------------------------------------- credentials and TLS


def mechanism_class(attempt: AuthAttempt) -> str | None:
    """``password`` (readable secret), ``challenge`` (hash/challenge-response) or None (no secret)."""
    mech = attempt.mechanism.upper()
    if mech in NO_SECRET_MECHANISMS:
        return None
    if mech in CLEARTEXT_PASSWORD:
        return "password"
    return "challenge"  # CRAM-MD5, DIGEST-MD5, APOP, NTLM, SCRAM-*: user name visible, hash crackable


def auth_frames(f: SessionFacts, attempt: AuthAttempt) -> list[int]:
    """The login command, its continuation lines and the verdict."""
    commands = f.session.commands
    ordered = f.command_frames
    if ordered is not None:
        commands = commands[
            bisect.bisect_left(ordered, attempt.first_frame) : bisect.bisect_right(ordered, attempt.frame)
        ]
    frames = [
        c.frame for c in commands if attempt.first_frame <= c.frame <= attempt.frame and c.verb in AUTH_VERBS
    ]
    return [attempt.first_frame, *frames, attempt.frame]


def outcome(attempt: AuthAttempt) -> str:
    if attempt.cancelled:
        return "cancelled by the client"
    return {True: "succeeded", False: "failed", None: "outcome not seen"}[attempt.success]


def cleartext_credentials(s: Session, f: SessionFacts, ctx: RuleContext) -> Iterator[Finding]:
    by_user: dict[str, list[AuthAttempt]] = {}
    for attempt in f.logins:  # an exchange cancelled ("*") before any secret sent no password
        # a command line the server read as the user name or password (QUIT after 334) is no credential
        if mechanism_class(attempt) is None or not (attempt.sent_username or attempt.sent_secret):
            continue
        if not f.in_clear(attempt.first_frame):
            continue
        by_user.setdefault(attempt.sent_username or "", []).append(attempt)
    for user, attempts in by_user.items():
        password = any(mechanism_class(a) == "password" for a in attempts)
        secret_sent = any(a.sent_secret for a in attempts)
        mechs = ", ".join(dict.fromkeys(_mech_name(f, a) for a in attempts))
        frames: list[int] = []
        for a in attempts:
            if len(frames) >= ctx.config.max_frames:
                break
            frames += auth_frames(f, a)
        who = f"user {user}" if user else "an unnamed user"
        outcomes = ", ".join(f"{n} {o}" for o, n in _count(outcome(a) for a in attempts).items())
        before = " before STARTTLS" if f.tls_frame is not None else ""
        if password and not secret_sent:
            # AUTH LOGIN stopped after the user name (the client gave up, or the capture ends there)
            title = f"{proto(s)} user name {user} sent in cleartext"
            detail = (
                f"Login with {mechs}{before} over an unencrypted connection ({outcomes}): anyone on the path "
                "can read the user name. The capture holds no password for it (the exchange stopped, or the "
                "capture ends, before the password step); the client was about to send it the same way."
            )
        elif password and all(a.mechanism.upper() in TOKEN_MECHANISMS for a in attempts
                              if mechanism_class(a) == "password"):
            title = f"{proto(s)} access token of {who} sent in cleartext"
            detail = (
                f"Login with {mechs}{before} over an unencrypted connection ({outcomes}): anyone on the path "
                "can read the user name and the OAuth bearer token, and log in with it until it expires."
            )
        elif password:
            title = f"{proto(s)} password of {who} sent in cleartext"
            detail = (
                f"Login with {mechs}{before} over an unencrypted connection ({outcomes}): anyone on the path "
                "can read the user name and the password."
            )
        else:
            title = f"{proto(s)} challenge-response login of {who} without TLS"
            detail = (
                f"Login with {mechs}{before} over an unencrypted connection ({outcomes}): the user name is "
                "visible and the exchange allows an offline dictionary attack on the password."
            )
        if ctx.config.show_secrets:
            secrets = [a.sent_secret for a in attempts if a.sent_secret]
            if secrets:
                detail += " Secret seen: " + ", ".join(quote(x) for x in dict.fromkeys(secrets)) + "."
        yield ctx.finding(
            "cleartext-credentials", HIGH if password and secret_sent else MEDIUM, s, frames, title, detail,
            attempts[0].ts,
        )


def _mech_name(f: SessionFacts, attempt: AuthAttempt) -> str:
    """How the login looked on the wire: ``USER/PASS``, ``APOP``, ``LOGIN``, ``AUTH PLAIN`` ...

    The command is looked up where the login began (an IMAP ``LOGIN`` sent with literals ends frames
    later); IMAP has no ``AUTH``: its SASL command is ``AUTHENTICATE``, and a ``LOGIN`` attempt whose
    command is not found is the ``LOGIN`` command (``AUTHENTICATE LOGIN`` is always found)."""
    mech = attempt.mechanism.upper()
    if mech in ("USER", "APOP"):
        return "USER/PASS" if mech == "USER" else mech
    found = f.login_command(attempt)
    command = found.verb if found is not None else ""
    if f.session.protocol == "imap":
        if command == "LOGIN" or (command != "AUTHENTICATE" and mech == "LOGIN"):
            return "LOGIN"
        return f"AUTHENTICATE {mech}"
    return f"{command or 'AUTH'} {mech}"


def _count(items: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return out


def starttls_not_used(s: Session, f: SessionFacts, ctx: RuleContext) -> Iterator[Finding]:
    offer = f.offer
    if offer is None or not offer.starttls or f.tls_frame is not None or s.tls != "none":
        return
    if any(c.verb in STARTTLS_VERBS for c in s.commands):
        return
    later = [
        c for c in s.commands if c.frame > offer.frame and c.verb and c.verb not in HARMLESS_AFTER_REFUSAL
    ]
    if not later:
        return
    logins = f.logins
    sensitive = bool(logins) or bool(s.messages)
    severity = MEDIUM if sensitive else LOW
    if not ctx.once("starttls-not-used", s.client.ip, str(s.server), severity.value):
        return
    carried = []
    if logins:
        carried.append(plural(len(logins), "login"))
    if s.messages:
        carried.append(plural(s.message_total, "message"))
    what = (" and carried " + " and ".join(carried) + " in cleartext") if carried else ""
    verb = "STLS" if s.protocol == "pop3" else "STARTTLS"
    other = LOW if sensitive else MEDIUM
    yield ctx.finding(
        "starttls-not-used",
        severity,
        s,
        [offer.frame, later[0].frame],
        f"{s.client.ip} did not use the {verb} that {s.server} offers",
        f"The server advertised {verb}, but the client stayed unencrypted{what}; opportunistic TLS only "
        f"protects when the client takes it ({_once_per_pair(sensitive, 'logins or messages', other)}).",
        later[0].ts,
    )


def _once_per_pair(sensitive: bool, what: str, other: Severity) -> str:
    """Says how often a finding made once per client address, server and severity is made: once for the
    first session of the pair that carried ``what``, once for the first that did not (the other
    severity). Merging them would need the finding to wait for the end of the capture; findings are
    made as each session ends (the per-session panels and ``live`` show them at once)."""
    if sensitive:
        return (f"reported once per client and server for sessions that carried {what}; "
                f"a session without them gets its own finding, as {other.value}")
    return (f"reported once per client and server for sessions without {what}; "
            f"a session that carries them gets its own finding, as {other.value}")


def starttls_refused_cleartext(s: Session, f: SessionFacts, ctx: RuleContext) -> Iterator[Finding]:
    for ex in f.exchanges:
        if ex.command.verb not in STARTTLS_VERBS or ex.reply is None or not reply_failed(ex.reply):
            continue
        refused = ex.reply
        if f.tls_frame is not None and f.tls_frame < refused.frame:
            continue
        after = [c for c in s.commands if c.frame > refused.frame and c.verb not in HARMLESS_AFTER_REFUSAL]
        if not after:
            continue
        auth = [a for a in f.logins if a.first_frame > refused.frame and f.in_clear(a.first_frame)]
        messages = f.messages_in_clear_after(refused.frame)
        severity = HIGH if auth or messages else MEDIUM
        carried = [plural(len(auth), "login")] if auth else []
        carried += [plural(messages, "message")] if messages else []
        yield ctx.finding(
            "starttls-refused-cleartext",
            severity,
            s,
            [ex.command.frame, refused.frame, after[0].frame],
            f"{s.server} refused {ex.command.verb}; {s.client.ip} went on in cleartext",
            f"The server answered {ex.command.verb} with {refused.status} {quote(refused.text)} and the "
            f"client continued without TLS ({after[0].verb or 'data'} at frame {after[0].frame}"
            + (", then " + " and ".join(carried) if carried else "")
            + "). An attacker on the path can "
            "force this by stripping STARTTLS (STRIPTLS); MTA-STS or DANE make a sender insist on TLS.",
            refused.ts,
        )
        return


def starttls_stripped(s: Session, f: SessionFacts, ctx: RuleContext) -> Iterator[Finding]:
    """The EHLO reply carries STARTTLS overwritten (``XXXXXXXA``, ``STARTTLX``): removed on the path."""
    offer = f.offer
    if offer is None or not offer.starttls_stripped:
        return
    logins = [a for a in f.logins if a.first_frame > offer.frame and f.in_clear(a.first_frame)]
    messages = f.messages_in_clear_after(offer.frame)
    severity = HIGH if logins else MEDIUM
    if not ctx.once("starttls-stripped", s.client.ip, str(s.server), severity.value):
        return
    masked = ", ".join(quote(k) for k in offer.starttls_masked)
    later = [c for c in s.commands if c.frame > offer.frame and c.verb]
    frames = [offer.frame] + ([later[0].frame] if later else []) + [a.first_frame for a in logins[:3]]
    if f.tls_frame is not None and f.tls_frame > offer.frame:
        went_on = f"the client asked for STARTTLS anyway and TLS began at frame {f.tls_frame}"
    else:
        carried = [plural(len(logins), "login")] if logins else []
        carried += [plural(messages, "message")] if messages else []
        went_on = "the client, which could not see the offer, stayed in cleartext" + (
            " and sent " + " and ".join(carried) if carried else "")
    yield ctx.finding(
        "starttls-stripped",
        severity,
        s,
        frames,
        f"STARTTLS of {s.server} masked on the path to {s.client.ip}"
        + ("; a login followed in cleartext" if logins and f.tls_frame is None else ""),
        f"The EHLO reply lists {masked} where the STARTTLS keyword belongs: a middlebox overwrote it — the "
        "footprint of a firewall's ESMTP inspection (Cisco ASA/PIX write XXXXXXXA) or of a STRIPTLS attack; "
        f"{went_on}. MTA-STS or DANE make a sender insist on TLS "
        f"({_once_per_pair(bool(logins), 'logins', MEDIUM if logins else HIGH)}).",
        later[0].ts if later else s.start,
    )


def starttls_injection(s: Session, f: SessionFacts, ctx: RuleContext) -> Iterator[Finding]:
    for anomaly in s.anomalies:
        if anomaly.kind != "starttls-injection":
            continue
        command = next(
            (c for c in reversed(s.commands) if c.verb in STARTTLS_VERBS and c.frame <= anomaly.frame), None
        )
        frames = [anomaly.frame] + ([command.frame] if command else [])
        yield ctx.finding(
            "starttls-injection",
            HIGH,
            s,
            frames,
            f"Plaintext sent after {command.verb if command else 'STARTTLS'} by {s.client.ip}",
            anomaly.detail.rstrip(".") + ".",
            anomaly.ts,
        )


def auth_before_tls(s: Session, f: SessionFacts, ctx: RuleContext) -> Iterator[Finding]:
    offer = f.offer
    if offer is None or not offer.password_login:
        return
    if not ctx.once("auth-before-tls", s.protocol, str(s.server)):
        return
    what = ", ".join(offer.password_ways)
    if offer.starttls:
        command = "STLS" if s.protocol == "pop3" else "STARTTLS"  # POP3's name for it (RFC 2595)
        tls = f"it offers {command} too, but does not require it first"
    elif offer.starttls_stripped:
        tls = (
            f"its STARTTLS arrived masked as {', '.join(offer.starttls_masked)} (a middlebox on the path "
            "removed it, see starttls-stripped), and it does not require TLS first"
        )
    else:
        tls = "it does not offer STARTTLS at all"
    yield ctx.finding(
        "auth-before-tls",
        LOW,
        s,
        [offer.frame],
        f"{proto(s)} server {s.server} offers {what} before TLS",
        f"The server advertises password authentication ({what}) on the unencrypted channel; {tls}. A "
        "client may send its password in cleartext (reported once per server).",
        None,
    )


def weak_tls(s: Session, f: SessionFacts, ctx: RuleContext) -> Iterator[Finding]:
    info = s.tls_info or {}
    version = str(info.get("version") or "")
    cipher = str(info.get("cipher") or "")
    problems: list[str] = []
    severity = MEDIUM
    if version and re.search(r"SSL|TLS ?1\.[01]\b|TLSv1(?:\.[01])?$", version, re.IGNORECASE):
        problems.append(f"{version} is obsolete (RFC 8996)")
        if "SSL" in version.upper():
            severity = HIGH
    upper = cipher.upper()
    if cipher and re.search(r"NULL|EXPORT|_anon_|ANON|RC4|_DES_|DES40|3DES|DES_CBC|_MD5$", upper):
        problems.append(f"cipher {cipher} is weak")
        if re.search(r"NULL|EXPORT|ANON|RC4", upper):
            severity = HIGH
    if problems and ctx.once("weak-tls", str(s.server), version, cipher):
        frame = info.get("first_frame")
        yield ctx.finding(
            "weak-tls",
            severity,
            s,
            [frame] if isinstance(frame, int) else [],
            f"{proto(s)} TLS with {s.server}: " + "; ".join(problems),
            "The TLS session negotiated " + " and ".join(problems) + "; an attacker may "
            "decrypt or tamper with it (reported once per server and parameters).",
            s.start,
        )


# --------------------------------------------------------------------------- SMTP probing and relaying


def user_enumeration(s: Session, f: SessionFacts, ctx: RuleContext) -> Iterator[Finding]:
    probes = [ex for ex in f.exchanges if ex.command.verb in ("VRFY", "EXPN")]
    if not probes:
        return
    disclosed = [ex for ex in probes if ex.reply is not None and _discloses(ex.reply)]
    frames = [fr for ex in probes for fr in (ex.command.frame, ex.reply.frame if ex.reply else 0)]
    verbs = "/".join(dict.fromkeys(ex.command.verb for ex in probes))
    names = ", ".join(
        dict.fromkeys(ex.command.argument.strip() for ex in probes if ex.command.argument.strip())
    )
    if disclosed:
        examples = "; ".join(
            f"{ex.command.verb} {ex.command.argument.strip()} → {ex.reply.status} {quote(ex.reply.text)}"
            for ex in disclosed[:3]
            if ex.reply
        )
        yield ctx.finding(
            "user-enumeration",
            MEDIUM,
            s,
            frames,
            f"{verbs} probing by {s.client.ip}: {s.server} discloses users",
            f"{plural(len(probes), 'probe')} ({names}); the server answered {len(disclosed)} with user "
            f"information ({examples}). Disable VRFY/EXPN or answer 252.",
            probes[0].command.ts,
        )
    else:
        yield ctx.finding(
            "user-enumeration",
            LOW,
            s,
            frames,
            f"{verbs} probing by {s.client.ip}",
            f"{plural(len(probes), 'probe')} ({names}); the server disclosed nothing (refused or answered "
            "252).",
            probes[0].command.ts,
        )


def _discloses(reply: Reply) -> bool:
    """A VRFY/EXPN reply that tells whether a user exists: 250/251/551/553, or 550 'user unknown'."""
    code = reply.status
    if code in ("250", "251", "551", "553"):
        return True
    return code == "550" and bool(UNKNOWN_USER.search(reply.text))


@dataclass(frozen=True, slots=True)
class RcptOutcome:
    """A RCPT and its reply, with the envelope it belonged to."""

    command: Command
    reply: Reply | None
    address: str
    mail_from: str | None
    authenticated: bool


def rcpt_outcomes(s: Session, pairs: list[Exchange]) -> list[RcptOutcome]:
    """Every RCPT of an SMTP session in order, with the MAIL FROM in force and whether AUTH succeeded
    (``pairs``: the session's :func:`exchanges`; read them from :class:`SessionFacts`, which pairs once)."""
    if s.protocol != "smtp":
        return []
    out: list[RcptOutcome] = []
    mail_from: str | None = None
    ok_auth = [a.frame for a in s.auth if a.success]
    for ex in pairs:
        verb = ex.command.verb
        if verb == "MAIL":
            mail_from = (
                parse_address(ex.command.argument, "FROM")[0]
                if ex.reply is None or reply_ok(ex.reply)
                else None
            )
        elif verb in ("RSET", "EHLO", "HELO"):
            mail_from = None
        elif verb == "RCPT":
            address = parse_address(ex.command.argument, "TO")[0]
            out.append(
                RcptOutcome(
                    ex.command, ex.reply, address, mail_from, any(fr < ex.command.frame for fr in ok_auth)
                )
            )
    return out


def is_relay_refusal(reply: Reply, domain: str | None, local: frozenset[str]) -> bool:
    if not reply_failed(reply):
        return False
    if RELAY_TEXT.search(reply.text):
        return True
    enhanced = ENHANCED.match(reply.lines[0] if reply.lines else "")
    return bool(
        enhanced
        and enhanced.group(0).strip() == "5.7.1"
        and domain
        and local
        and not in_domains(domain, local)
        and not re.search(r"sender|spam|blocked", reply.text, re.I)
    )


def is_local(domain: str, local: frozenset[str], given: bool) -> bool:
    """Whether the server serves a recipient domain: listed, a bare host name, or (guessed) the same brand."""
    if (
        "." not in domain
        or domain in ("localhost", "localdomain")
        or domain.endswith((".localhost", ".localdomain"))
    ):
        return True
    if in_domains(domain, local):
        return True
    if given:
        return False
    brand = org_domain(domain).split(".")[0]
    return any(org_domain(d).split(".")[0] == brand for d in local)


def local_domains(f: SessionFacts, ctx: RuleContext) -> tuple[frozenset[str], bool]:
    """(domains the server serves, whether they were given rather than guessed)."""
    if ctx.config.local_domains:
        return ctx.config.local_domains, True
    return f.guessed_local_domains, False


def open_relay_attempt(s: Session, f: SessionFacts, ctx: RuleContext) -> Iterator[Finding]:
    local, given = local_domains(f, ctx)
    if not local:
        return
    relayed = [
        r
        for r in f.rcpt_outcomes
        if not r.authenticated
        and r.reply is not None
        and r.reply.status in ("250", "251")
        and (d := domain_of(r.address))
        and not is_local(d, local, given)
    ]
    if not relayed:
        return
    guessed = (f"the served domains were guessed from the server's name ({', '.join(sorted(local))}): confirm "
               "with --local-domains")
    if not f.client_public:
        severity = INFO
        why = (
            f"the client {s.client.ip} has a private or loopback address: servers normally relay for their "
            "own network (mynetworks), so this is expected if the client is trusted"
        ) + ("" if given else "; " + guessed)
    elif given:
        severity = HIGH
        why = "the client is on a public address and did not authenticate: this server is an open relay"
    else:
        severity = MEDIUM
        why = "the client is on a public address and did not authenticate; " + guessed
    targets = ", ".join(dict.fromkeys(r.address for r in relayed[:5])) + (" …" if len(relayed) > 5 else "")
    yield ctx.finding(
        "open-relay-attempt",
        severity,
        s,
        [fr for r in relayed for fr in (r.command.frame, r.reply.frame if r.reply else 0)],
        f"{s.server} accepted {plural(len(relayed), 'recipient')} outside its domains from {s.client.ip}",
        f"Without authentication the server accepted mail for {targets}; {why}.",
        relayed[0].command.ts,
    )


def relay_denied(s: Session, f: SessionFacts, ctx: RuleContext) -> Iterator[Finding]:
    local, _given = local_domains(f, ctx)
    denied = [
        r
        for r in f.rcpt_outcomes
        if r.reply is not None and is_relay_refusal(r.reply, domain_of(r.address), local)
    ]
    if not denied:
        return
    first = denied[0]
    assert first.reply is not None
    targets = ", ".join(dict.fromkeys(r.address for r in denied[:5])) + (" …" if len(denied) > 5 else "")
    yield ctx.finding(
        "relay-denied",
        LOW,
        s,
        [fr for r in denied for fr in (r.command.frame, r.reply.frame if r.reply else 0)],
        f"{s.server} refused to relay for {s.client.ip} ({plural(len(denied), 'recipient')})",
        f"Relaying to {targets} was refused ({first.reply.status} {quote(first.reply.text)}): someone "
        "tried to use the server as a relay, and the defence worked.",
        first.command.ts,
    )


# --------------------------------------------------------------------------- messages


def smtp_messages(s: Session) -> list[tuple[MessageRecord, str | None]]:
    """Messages a client sent by SMTP, with their envelope sender (when the transaction is known)."""
    if s.protocol != "smtp":
        return []
    out: list[tuple[MessageRecord, str | None]] = []
    by_index: dict[int, str | None] = {}
    for tx in s.record.get("transactions", []):
        if isinstance(tx, dict) and isinstance(tx.get("message"), int):
            by_index[tx["message"]] = tx.get("mail_from")
    for m in s.messages:
        out.append((m, by_index.get(m.index)))
    return out


def envelope_mismatch(s: Session, f: SessionFacts, ctx: RuleContext) -> Iterator[Finding]:
    for message, mail_from in smtp_messages(s):
        if not mail_from:
            continue  # null sender (bounce) or unknown envelope
        header_from = header_values(f.headers(message), "From") or (
            [str(message.summary.from_)] if getattr(message.summary, "from_", None) else []
        )
        if not header_from:
            continue
        plain = plain_mailbox(header_from[0]) if len(header_from) == 1 else None
        addresses = [plain] if plain is not None else [a for _n, a in getaddresses(header_from) if "@" in a]
        if not addresses:
            continue
        env_domain = domain_of(mail_from)
        hdr_domain = domain_of(addresses[0])
        if (
            not env_domain
            or not hdr_domain
            or "." not in env_domain
            or "." not in hdr_domain
            or org_domain(env_domain) == org_domain(hdr_domain)
        ):
            continue
        signed = [d for d, _s in f.verdicts(message).dkim_signatures]
        aligned = any(org_domain(d) == org_domain(hdr_domain) for d in signed)
        severity = INFO if aligned else LOW
        why = (
            "a DKIM signature of the From domain aligns it (DMARC can still pass)"
            if aligned
            else "no DKIM signature of the From domain aligns it, so DMARC fails unless SPF of the From "
            "domain passes; mailing lists, forwarders and bulk senders do this legitimately, spoofers too"
        )
        yield ctx.finding(
            "envelope-mismatch",
            severity,
            s,
            [message.first_frame],
            f"Message {message.index + 1}: MAIL FROM {env_domain} vs From {hdr_domain}",
            f"Envelope sender <{mail_from}> and header From <{addresses[0]}> are in different domains; "
            f"{why}.",
            s.start,
        )


_NAME_ADDRESS = re.compile(r"[\w.+-]+@([\w-]+(?:\.[\w-]+)+)")


def _address_in_name(name: str) -> re.Match[str] | None:
    """An address written into a display name. Searched in a window around each ``@`` (the first 16): the
    pattern backtracks at every start, so over a whole 64 KiB name it took seconds a message."""
    at = name.find("@")
    for _ in range(16):
        if at < 0:
            return None
        found = _NAME_ADDRESS.search(name[max(0, at - 256) : at + 256])
        if found is not None:
            return found
        at = name.find("@", at + 1)
    return None


def display_name_spoof(s: Session, f: SessionFacts, ctx: RuleContext) -> Iterator[Finding]:
    for message in s.messages:
        values = header_values(f.headers(message), "From") or (
            [str(message.summary.from_)] if getattr(message.summary, "from_", None) else []
        )
        if not values or values[0].count("@") < 2:
            continue  # an address shown in the name and the real one need an "@" each (parseaddr is slow)
        name, address = parseaddr(values[0])
        shown = _address_in_name(name or "")
        real = domain_of(address)
        if shown and real and org_domain(shown.group(1)) != org_domain(real):
            yield ctx.finding(
                "display-name-spoof",
                MEDIUM,
                s,
                [message.first_frame],
                f"Message {message.index + 1}: From shows {shown.group(0)} but is {address}",
                f"The display name of the From header contains the address {shown.group(0)}, while the "
                f"message comes from <{address}>: mail programs that show only the name make the message "
                "look as if it came from elsewhere.",
                s.start,
            )


def received_chain_suspicious(s: Session, f: SessionFacts, ctx: RuleContext) -> Iterator[Finding]:
    cfg = ctx.config
    for message in s.messages:
        problems = chain_problems(
            received_chain(f.headers(message)), s.end, cfg.clock_skew, cfg.future_tolerance
        )
        date_future = _date_in_future(f.headers(message), s.end, cfg.future_tolerance)
        if date_future:
            problems.append(ChainProblem(-1, date_future, True))
        if not problems:
            continue
        strong = any(p.strong for p in problems)
        yield ctx.finding(
            "received-chain-suspicious",
            MEDIUM if strong else LOW,
            s,
            [message.first_frame, message.last_frame],
            f"Message {message.index + 1} ({message.origin}): trace headers do not add up",
            "; ".join(p.text for p in problems[:3]) + ".",
            s.start,
        )


def _date_in_future(headers: Headers, seen: float, tolerance: float) -> str | None:
    for value in header_values(headers, "Date")[:1]:
        ts = date_seconds(value)
        if ts is None:
            return None
        if ts - seen > tolerance:
            days = (ts - seen) / 86_400
            return (
                f"the Date header is {days:.0f} days after the capture saw the message"
                if days >= 2
                else f"the Date header is {(ts - seen) / 3600:.0f} hours after the capture saw the message"
            )
    return None


MIXED_LOOKALIKES = frozenset({"<LF>.<CR><LF>", "<CR><LF>.<LF>", "<CR>.<CR><LF>", "<CR><LF>.<CR>", "<LF>.<CR>",
                              "<CR>.<LF>"})
"""End-of-data look-alikes that mix line endings: deliberate, unlike a client sending bare LF throughout."""


def smtp_smuggling(s: Session, f: SessionFacts, ctx: RuleContext) -> Iterator[Finding]:
    for anomaly in s.anomalies:
        if anomaly.kind != "smtp-smuggling":
            continue
        smtp = s.record.get("smtp")
        patterns = smtp.get("smuggling_patterns") if isinstance(smtp, dict) else None
        if not isinstance(patterns, list) or not patterns:
            patterns = anomaly.detail.split(" (", 1)[0].split(": ", 1)[-1].split(", ")
        mixed = any(p in MIXED_LOOKALIKES for p in patterns)
        accepted = next((a for a in s.anomalies if a.kind == "smuggling-accepted" and a.frame >= anomaly.frame),
                        None)
        answer = next((r for r in s.replies if r.answers in (".", "BDAT") and r.frame >= anomaly.frame), None)
        severity = HIGH if mixed or accepted is not None else MEDIUM
        frames = [anomaly.frame] + ([answer.frame] if answer else [])
        if accepted is not None:
            frames.append(accepted.frame)
            tail = (f" The server's replies show it took the look-alike for the end of data (frame {accepted.frame}): "
                    "the rest of the body ran as commands, a second, smuggled message.")
        elif answer is not None and reply_ok(answer):
            tail = (f" The server accepted the message ({answer.status}): if it also treats the look-alike as the "
                    "end, the rest of the body runs as a second, spoofed message.")
        else:
            tail = ""
        yield ctx.finding(
            "smtp-smuggling",
            severity,
            s,
            sorted(set(frames)),
            f"End-of-data look-alike sent by {s.client.ip} to {s.server}",
            anomaly.detail.rstrip(".") + "." + tail,
            anomaly.ts,
        )


# --------------------------------------------------------------------------- protocol violations

VIOLATIONS: dict[str, tuple[Severity, str]] = {
    "unknown-command": (LOW, "unknown commands"),
    "unsolicited-reply": (LOW, "replies that answer no command"),
    "unsolicited-response": (LOW, "responses that answer no command"),
    "unknown-tag": (LOW, "tagged responses for unknown tags"),
    "unexpected-continuation": (LOW, "continuation requests with no command waiting"),
    "rcpt-without-mail": (LOW, "RCPT before MAIL"),
    "mail-without-helo": (LOW, "MAIL before HELO/EHLO"),
    "auth-after-auth": (LOW, "AUTH after a successful login"),
    "command-as-sasl-response": (LOW, "commands sent where the server waited for a SASL response"),
    "pass-without-user": (LOW, "POP3 PASS without a successful USER"),
    "literal-without-continuation": (LOW, "IMAP literals sent without waiting for '+'"),
    "literal-plus-misused": (LOW, "IMAP non-synchronizing literals the server did not offer"),
    "data-without-mail": (LOW, "DATA/BDAT outside a transaction"),
    "nested-mail": (LOW, "MAIL inside an open transaction"),
    "syntax": (LOW, "malformed command arguments"),
    "invalid-reply": (LOW, "malformed replies"),
    "invalid-reply-code": (LOW, "reply codes outside RFC 5321"),
    "invalid-response": (LOW, "malformed responses"),
    "invalid-command": (LOW, "malformed commands"),
    "bdat-invalid": (MEDIUM, "invalid BDAT chunk sizes"),
    "bdat-chunk-short": (LOW, "BDAT chunks shorter than announced"),
    "undefined-reply-code": (LOW, "reply codes no RFC defines"),
    "size-exceeded": (LOW, "messages over the size limit the server announced"),
    "data-before-354": (LOW, "messages sent before the server's 354"),
    "empty-command": (LOW, "empty command lines"),
    "garbage": (MEDIUM, "binary data where commands belong"),
    "line-too-long": (LOW, "lines over the length limit"),
    "line-over-rfc-limit": (LOW, "command or reply lines over RFC 5321's 512 octets"),
    "pipeline-overflow": (MEDIUM, "too many commands without replies"),
    "too-many-tags": (MEDIUM, "too many IMAP commands in flight"),
    "duplicate-tag": (LOW, "IMAP tags reused while in flight"),
}
"""Dissector anomalies that are a peer breaking the protocol (capture artefacts are not listed)."""


def protocol_violation(s: Session, f: SessionFacts, ctx: RuleContext) -> Iterator[Finding]:
    greeting = f.greeting
    if greeting is not None:
        early = [c for c in s.commands if c.frame < greeting.first_frame]
        if early:
            yield ctx.finding(
                "protocol-violation",
                MEDIUM,
                s,
                [early[0].frame, greeting.frame],
                f"{s.client.ip} spoke before the {proto(s)} greeting",
                f"{early[0].verb or 'data'} was sent at frame {early[0].frame}, before the server's "
                f"greeting at frame {greeting.frame}: real clients wait; spam bots that talk first are what "
                "pregreet tests (Postfix postscreen) catch.",
                early[0].ts,
            )
    by_kind: dict[str, list[int]] = {}
    first_detail: dict[str, str] = {}
    for anomaly in s.anomalies:
        if anomaly.kind in VIOLATIONS:
            by_kind.setdefault(anomaly.kind, []).append(anomaly.frame)
            first_detail.setdefault(
                anomaly.kind, f"{anomaly.direction.value} at frame {anomaly.frame}: {anomaly.detail}"
            )
    counts = {kind: len(frames) for kind, frames in by_kind.items()}
    if s.protocol == "smtp":
        no_rcpt = _data_without_rcpt(s)
        if no_rcpt:
            by_kind["data-without-rcpt"] = no_rcpt
            counts["data-without-rcpt"] = len(no_rcpt)
        smtp = s.record.get("smtp")
        bare_lf = smtp.get("bare_lf", 0) if isinstance(smtp, dict) else 0
        if isinstance(bare_lf, int) and bare_lf:
            by_kind["bare-lf"] = []
            counts["bare-lf"] = bare_lf
    long = [m for m in s.messages if m.summary.long_lines]
    if long:
        by_kind["long-message-line"] = [m.first_frame for m in long]
        counts["long-message-line"] = len(long)
        worst = max(long, key=lambda m: m.summary.longest_line)
        first_detail["long-message-line"] = (
            f"message {worst.index + 1} ({worst.origin}, frame {worst.first_frame}): "
            f"{long_lines_defect(worst.summary.long_lines, worst.summary.longest_line)}"
        )
    for kind, frames in by_kind.items():
        severity, what = VIOLATIONS.get(kind, EXTRA_VIOLATIONS.get(kind, (LOW, kind)))
        yield ctx.finding(
            "protocol-violation",
            severity,
            s,
            frames,
            f"{proto(s)}: {what} ({counts[kind]}×)",
            f"{kind}: {_violation_why(kind)}"
            + (f" First: {first_detail[kind]}." if kind in first_detail else ""),
            s.start,
        )


EXTRA_VIOLATIONS: dict[str, tuple[Severity, str]] = {
    "data-without-rcpt": (LOW, "DATA with no RCPT sent"),
    "bare-lf": (LOW, "command lines ended by a bare LF"),
    "long-message-line": (LOW, f"messages with lines over {MAX_LINE_CHARS} characters"),
}


def _violation_why(kind: str) -> str:
    return {
        "unknown-command": "commands the protocol does not define (probing, or a client for another "
        "protocol).",
        "unsolicited-reply": "the server sent replies no command asked for; pairing after them is uncertain.",
        "unsolicited-response": "the server sent responses no command asked for.",
        "rcpt-without-mail": "RFC 5321 §4.1.4 requires MAIL before RCPT.",
        "mail-without-helo": "RFC 5321 §4.1.4: a client must open the session with EHLO or HELO before MAIL.",
        "auth-after-auth": "RFC 4954 §4: after a successful AUTH no more AUTH commands may be issued.",
        "pass-without-user": "RFC 1939 §7: PASS may only follow a successful USER.",
        "literal-without-continuation": "RFC 3501 §4.3: after a synchronizing literal's {n} the client must "
        "wait for the server's '+'; a server that refuses then reads the literal's bytes as commands.",
        "literal-plus-misused": "RFC 7888: {n+} only where the server offers LITERAL+ (or LITERAL- up to 4096 "
        "octets).",
        "data-without-mail": "RFC 5321 §4.1.4 requires MAIL and RCPT before DATA/BDAT.",
        "data-without-rcpt": "DATA without any RCPT in the transaction (RFC 5321 §3.3).",
        "nested-mail": "MAIL inside an open transaction without RSET (RFC 5321 §4.1.4).",
        "bare-lf": "RFC 5321 §2.3.8 requires CRLF; bare LF is a building block of SMTP smuggling.",
        "long-message-line": f"RFC 5322 §2.1.1 and RFC 5321 §4.5.3.1.6 allow {MAX_LINE_CHARS} characters "
        "before CRLF; relays may wrap, cut or refuse longer lines, and a filter that trusts the limit "
        "can be evaded.",
        "pipeline-overflow": "a client sends a flood of commands without reading replies.",
        "garbage": "binary bytes on a text protocol: a scan, another protocol, or an exploit attempt.",
        "bdat-chunk-short": "RFC 3030 §2: a BDAT chunk is exactly as long as announced; the server "
        "answered before the rest came.",
        "undefined-reply-code": "RFC 5321 §4.2 and its extensions define the codes a client can act on; "
        "other codes are read only by their first digit.",
        "size-exceeded": "RFC 1870 §6.2: the server announced a fixed maximum; a larger message should "
        "have been refused.",
    }.get(kind, "the peer does not follow the protocol.")


def _data_without_rcpt(s: Session) -> list[int]:
    out: list[int] = []
    rcpts = 0
    in_tx = False
    for c in s.commands:
        if c.verb == "MAIL":
            in_tx, rcpts = True, 0
        elif c.verb == "RCPT":
            rcpts += 1
        elif c.verb in ("RSET", "EHLO", "HELO"):
            in_tx, rcpts = False, 0
        elif c.verb in ("DATA", "BDAT"):
            if in_tx and rcpts == 0:
                out.append(c.frame)
            if c.verb == "DATA":
                in_tx = False
    return out


# --------------------------------------------------------------------------- spam defences


def spam_category(text: str) -> str | None:
    for name, pattern in SPAM_CATEGORIES:
        if pattern.search(text):
            return name
    return None


def spam_rejected(s: Session, f: SessionFacts, ctx: RuleContext) -> Iterator[Finding]:
    if s.protocol != "smtp":
        return
    local, _given = local_domains(f, ctx)
    hits: list[tuple[str, Reply]] = []
    for reply in s.replies:
        if (
            not reply_failed(reply)
            or reply.answers in ("VRFY", "EXPN", "AUTH", "STARTTLS")
            or not reply.lines
        ):
            continue
        if reply.answers == "RCPT" and (RELAY_TEXT.search(reply.text) or UNKNOWN_USER.search(reply.text)):
            continue  # relay-denied and user-enumeration tell these
        category = spam_category(reply.text)
        if category is None or (category == "sender-policy" and is_relay_refusal(reply, None, local)):
            continue
        hits.append((category, reply))
    if not hits:
        return
    categories = ", ".join(dict.fromkeys(c for c, _r in hits))
    texts = "; ".join(f"{r.status} {quote(r.text)}" for _c, r in hits[:3])
    yield ctx.finding(
        "spam-rejected",
        INFO,
        s,
        [r.frame for _c, r in hits],
        f"{s.server} refused {s.client.ip}: {categories}",
        f"{plural(len(hits), 'refusal')} by spam/abuse defences ({categories}): {texts}.",
        hits[0][1].ts,
    )


def spam_verdict(s: Session, f: SessionFacts, ctx: RuleContext) -> Iterator[Finding]:
    for message in s.messages:
        v = f.verdicts(message)
        if v.empty:
            continue
        failures = v.failures()
        severity = LOW if failures else INFO
        subject = getattr(message.summary, "subject", None)
        about = f" ({quote(subject, 40)})" if subject else ""
        detail = v.text() + ("; against it: " + ", ".join(failures) if failures else "")
        yield ctx.finding(
            "spam-verdict",
            severity,
            s,
            [message.first_frame],
            f"Message {message.index + 1}{about}: "
            + (", ".join(failures) if failures else "spam-defence verdicts"),
            f"Headers {', '.join(v.headers)}: {detail}.",
            s.start,
        )


def context_dns(s: Session, f: SessionFacts, ctx: RuleContext) -> Iterator[Finding]:
    """What the session's DNS context shows (mailtrace.context.checks): rDNS, HELO, the MX a relay used."""
    for check in s.context_checks:
        values = check.values
        client = values.get("client", s.client.ip)
        if check.check == "fcrdns" and not check.ok:
            receiving = s.protocol == "smtp" and s.server.port == 25 and not any(a.success for a in s.auth)
            if check.result == "no-ptr":
                title = f"{client} has no reverse DNS name"
                answer = values.get("rcode") or "nothing"
                detail = (f"The server looked up the name of {client} (PTR) and got {answer}: many receivers "
                          "refuse or score mail from addresses without reverse DNS.")
            else:
                title = f"{client}: reverse DNS {values.get('name')} is not forward-confirmed"
                detail = (f"{client} has the PTR name {values.get('name')}, but that name resolves to "
                          f"{values.get('addresses')}: the name is not confirmed (iprev fails).")
            yield ctx.finding("reverse-dns-mismatch", Severity.LOW if receiving else Severity.INFO, s,
                              check.frames, title, detail, s.start)
        elif check.check == "helo" and not check.ok:
            yield ctx.finding(
                "reverse-dns-mismatch", Severity.INFO, s, check.frames,
                f"{client} says HELO {quote(values.get('helo', ''))}, but its DNS name is {values.get('name')}",
                "The name a client gives in HELO/EHLO should be its own; a different one is common for user "
                "agents, but from a mail server it is a forgery signal that spam filters score.",
                s.start)
        elif check.check == "mx-route" and check.result == "not-mx":
            yield ctx.finding(
                "relay-not-to-mx", Severity.LOW, s, check.frames,
                f"Relay for {values.get('domain')} went to {values.get('address')}, not to its MX",
                f"The client looked up the MX of {values.get('domain')} ({values.get('hosts')}) but connected to "
                f"{values.get('address')}: a smarthost, a stale route or a redirected delivery.",
                s.start)


RULES: tuple[Rule, ...] = (
    cleartext_credentials,
    starttls_not_used,
    starttls_refused_cleartext,
    starttls_stripped,
    starttls_injection,
    auth_before_tls,
    weak_tls,
    user_enumeration,
    open_relay_attempt,
    relay_denied,
    envelope_mismatch,
    display_name_spoof,
    received_chain_suspicious,
    smtp_smuggling,
    protocol_violation,
    spam_rejected,
    spam_verdict,
    context_dns,
)
