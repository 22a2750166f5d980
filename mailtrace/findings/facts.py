"""Facts about one session that several rules need: where TLS began, what the server offered.

Computed once per session from the finished :class:`~mailtrace.session.Session` (its events and
rows), never from packets, so the rules stay small and agree with each other.
"""

from __future__ import annotations

import bisect
import ipaddress
import itertools
import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING

from mailtrace.model import AuthAttempt, Command, Reply, TlsStart
from mailtrace.session import MessageRecord, Session

if TYPE_CHECKING:
    from mailtrace.findings.headers import Headers, Verdicts
    from mailtrace.findings.rules import Exchange, RcptOutcome

CAPABILITY = re.compile(r"(?:^|\[)CAPABILITY ([^\]]*)", re.IGNORECASE)
HOSTNAME = re.compile(r"^(?=.{1,253}$)(?!-)[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+\.?$")
PASSWORD_MECHANISMS = frozenset({"PLAIN", "LOGIN", "XOAUTH2", "OAUTHBEARER", "XOAUTH"})
"""SASL mechanisms that carry a reusable password or bearer token."""
STARTTLS_VERBS = frozenset({"STARTTLS", "STLS"})
LOGIN_VERBS = frozenset({"AUTH", "AUTHENTICATE", "LOGIN", "USER", "PASS", "APOP"})
"""Commands that start a login (the command an :class:`AuthAttempt` begins with)."""
MASKED_STARTTLS = frozenset({"XXXXXXXA", "XXXXA"})
"""EHLO keywords known to stand for a masked STARTTLS: Cisco ASA/PIX ESMTP inspection writes
``250-XXXXXXXA`` where the server said ``250-STARTTLS``."""
_TWO_LEVEL_SUFFIXES = frozenset(
    {"co", "com", "net", "org", "ac", "gov", "edu", "or", "ne", "go", "gob", "nic"}
)


@dataclass(frozen=True, slots=True)
class Offer:
    """What the server advertised on the unencrypted channel (EHLO, CAPA, CAPABILITY)."""

    frame: int
    """Frame of the reply that advertised it (the first such reply)."""
    starttls: bool
    mechanisms: frozenset[str]
    """SASL mechanisms offered, upper-cased."""
    password_ways: tuple[str, ...]
    """Ways offered to send a reusable password: ``USER`` (POP3), ``LOGIN`` (IMAP without LOGINDISABLED),
    ``AUTH PLAIN``, ``AUTH LOGIN`` ..."""
    starttls_masked: tuple[str, ...] = ()
    """SMTP EHLO keywords that look like STARTTLS overwritten on the path (``XXXXXXXA``, ``STARTTLX``,
    ``XXXXXXXX``): see :func:`masked_starttls`."""

    @property
    def starttls_stripped(self) -> bool:
        """STARTTLS arrived masked and not in its own form: the client could not see the offer."""
        return bool(self.starttls_masked) and not self.starttls

    @property
    def password_login(self) -> bool:
        return bool(self.password_ways)


def masked_starttls(keyword: str) -> bool:
    """Whether an EHLO keyword is STARTTLS overwritten by a middlebox or an attacker (STRIPTLS).

    Firewalls with ESMTP inspection (Cisco ASA/PIX: ``XXXXXXXA``; others a line of X's) and STRIPTLS
    tools replace the keyword with one of the same length so the reply keeps its size: X's over some
    of its letters (``STARTTLX``, ``XXXRTTLS``), or one or two letters changed (``STARTTLZ``). Other
    masked keywords (``XXXXXXXB`` is Cisco's CHUNKING) are not STARTTLS, nor is an 8-letter keyword
    with nothing of STARTTLS left (``XXXXXXXX`` may mask CHUNKING, SMTPUTF8 or 8BITMIME as well).
    """
    word = keyword.upper()
    if word == "STARTTLS":
        return False
    if word in MASKED_STARTTLS:
        return True
    if len(word) != 8 or not word.isalnum():
        return False
    diffs = [c for c, s in zip(word, "STARTTLS", strict=True) if c != s]
    if len(diffs) == 8:  # nothing of STARTTLS is left: XXXXXXXX may as well be CHUNKING or SMTPUTF8 masked
        return False
    return all(c == "X" for c in diffs) or len(diffs) <= 2


def is_login(attempt: AuthAttempt) -> bool:
    """An attempt that sent something to check: every one but an exchange cancelled before any secret."""
    return not attempt.cancelled or bool(attempt.secret)


def reply_ok(reply: Reply) -> bool:
    """Whether a reply reports success, whatever the protocol."""
    status = reply.status.upper()
    return status.startswith("2") or status in ("+OK", "OK")


def reply_failed(reply: Reply) -> bool:
    status = reply.status.upper()
    return status[:1] in ("4", "5") or status in ("-ERR", "NO", "BAD")


def domain_of(address: str) -> str | None:
    """``<Bob@Example.ORG.>`` → ``example.org``; None without a domain."""
    text = address.strip().strip("<>").strip()
    if ":" in text and text.startswith("@"):  # source route @a,@b:user@c
        text = text.rsplit(":", 1)[1]
    local, at, domain = text.rpartition("@")
    if not at or not local:
        return None
    domain = domain.strip().strip(".").lower()
    return domain or None


_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = rf"{_ATEXT}(?:\.{_ATEXT})*"
_PLAIN_MAILBOX = re.compile(
    rf"[ \t]*(?:(?P<bare>{_DOT_ATOM}@{_DOT_ATOM})"
    rf"|(?:{_ATEXT}(?: {_ATEXT})*[ \t]*|\"[ !#-\[\]-~]*\"[ \t]*)?<(?P<angle>{_DOT_ATOM}@{_DOT_ATOM})>)[ \t]*"
)


def plain_mailbox(value: str) -> str | None:
    """The address of one plain mailbox (``a@b``, ``Name <a@b>``, ``"Name" <a@b>``), the one
    ``email.utils.parseaddr`` finds, without its parser (which reads a character at a time: about 25 µs a
    value); None for anything else (comments, groups, lists, escapes ...): ask ``parseaddr`` then."""
    match = _PLAIN_MAILBOX.fullmatch(value)
    return None if match is None else match["bare"] or match["angle"]


def org_domain(name: str) -> str:
    """A cheap organisational domain (no public suffix list): the last two labels, three for ``co.uk``."""
    labels = name.strip(".").lower().split(".")
    if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _TWO_LEVEL_SUFFIXES:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def in_domains(domain: str, domains: frozenset[str]) -> bool:
    """``a.example.org`` is in ``{example.org}``."""
    return any(domain == d or domain.endswith("." + d) for d in domains)


_DOTTED_QUAD = re.compile(r"(?:0|[1-9][0-9]{0,2})(?:\.(?:0|[1-9][0-9]{0,2})){3}")
"""An IPv4 address as ``ipaddress`` writes it (no leading zeros), its octets not yet checked against 255."""


@lru_cache(maxsize=8192)
def is_public_ip(text: str) -> bool | None:
    """True for a globally routable address, False for private/loopback/reserved, None if not an IP."""
    address = text.strip().strip("[]").removeprefix("IPv6:").removeprefix("ipv6:")
    # the usual cases without ipaddress's parsers and the exceptions they raise for a host name: an IPv6
    # address has colons, an IPv4 address starts with a digit
    if ":" not in address:
        if not address[:1].isdigit() or not address[:1].isascii():
            return None
        if _DOTTED_QUAD.fullmatch(address):
            octets = [int(octet) for octet in address.split(".")]
            if max(octets) <= 255:
                return ipaddress.IPv4Address(bytes(octets)).is_global
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    return ip.is_global


def looks_like_hostname(text: str) -> bool:
    return bool(HOSTNAME.match(text)) and is_public_ip(text) is None


class SessionFacts:
    """Derived facts about one session (lazy, each computed at most once)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._headers: dict[int, Headers] = {}
        self._verdicts: dict[int, Verdicts] = {}

    # ------------------------------------------------------------------ commands
    @cached_property
    def command_frames(self) -> list[int] | None:
        """Frames of the commands, ascending; None if the dissector emitted them out of frame order."""
        frames = [c.frame for c in self.session.commands]
        return frames if all(a <= b for a, b in itertools.pairwise(frames)) else None

    @cached_property
    def verb_at(self) -> dict[int, str]:
        """The first command verb at each frame."""
        out: dict[int, str] = {}
        for c in self.session.commands:
            if c.verb:
                out.setdefault(c.frame, c.verb)
        return out

    def login_command(self, attempt: AuthAttempt) -> Command | None:
        """The command a login began with (``AUTH``, IMAP ``LOGIN`` or ``AUTHENTICATE``, ``USER`` ...).

        A command sent in several segments (an IMAP ``LOGIN`` with literals) is recorded at the frame
        of its last line, with ``first_frame`` where it began; the attempt's ``first_frame`` is the
        latter, so the command is the first login command from there that began at or before it."""
        commands = self.session.commands
        ordered = self.command_frames
        start = bisect.bisect_left(ordered, attempt.first_frame) if ordered is not None else 0
        for c in itertools.islice(commands, start, None):
            if c.frame > attempt.frame and ordered is not None:
                break
            if c.verb in LOGIN_VERBS and c.first_frame <= attempt.first_frame <= c.frame:
                return c
        return None

    @cached_property
    def exchanges(self) -> list[Exchange]:
        """:func:`~mailtrace.findings.rules.exchanges` of the session, paired once for every rule that reads them."""
        from mailtrace.findings.rules import exchanges

        return exchanges(self.session)

    @cached_property
    def rcpt_outcomes(self) -> list[RcptOutcome]:
        """:func:`~mailtrace.findings.rules.rcpt_outcomes` of the session: the relay rules, the trackers and the
        statistics all read them."""
        from mailtrace.findings.rules import rcpt_outcomes

        return rcpt_outcomes(self.session, self.exchanges)

    @cached_property
    def logins(self) -> list[AuthAttempt]:
        """The session's logins: its auth attempts without the exchanges cancelled before any secret."""
        return [a for a in self.session.auth if is_login(a)]

    # ------------------------------------------------------------------ messages
    def headers(self, message: MessageRecord) -> Headers:
        """The message's top-level headers, indexed once for all rules."""
        from mailtrace.findings.headers import Headers

        found = self._headers.get(message.index)
        if found is None:
            found = self._headers[message.index] = Headers(message.summary)
        return found

    def verdicts(self, message: MessageRecord) -> Verdicts:
        from mailtrace.findings.headers import verdicts

        found = self._verdicts.get(message.index)
        if found is None:
            # the summary itself when no rule indexed its headers: verdicts() then skips a message
            # without any verdict field before unfolding its fields
            headers = self._headers.get(message.index)
            found = verdicts(headers if headers is not None else message.summary)
            self._verdicts[message.index] = found
        return found

    # ------------------------------------------------------------------ TLS
    @cached_property
    def tls_frame(self) -> int | None:
        """First frame protected by TLS (or carried inside it), None when the session never used TLS.

        A session on an implicit-TLS port that carried cleartext has its ``TlsStart`` but ``tls`` "none"
        (the ``plaintext-after-tls`` anomaly): its bytes crossed the wire unencrypted."""
        s = self.session
        if s.tls == "none":
            return None
        for event in s.row_events():
            if isinstance(event, TlsStart):
                return event.frame
        for reply in s.replies:
            if reply.answers in STARTTLS_VERBS and reply_ok(reply):
                return reply.frame
        return s.first_frame  # TLS without a known start: treat everything as protected

    def in_clear(self, frame: int) -> bool:
        """Whether bytes at this frame crossed the wire unencrypted."""
        start = self.tls_frame
        return start is None or frame < start

    def messages_in_clear_after(self, frame: int) -> int:
        """Messages begun after ``frame`` that crossed unencrypted, with those past the session's limit
        (``messages_dropped``): they came after every listed one, so they count when the last listed one
        does and TLS never began (had it begun after that one, where they were is not known)."""
        s = self.session
        listed = [m for m in s.messages if m.first_frame > frame and self.in_clear(m.first_frame)]
        later = s.messages_dropped if listed and listed[-1] is s.messages[-1] and self.tls_frame is None else 0
        return len(listed) + later

    # ------------------------------------------------------------------ greeting and names
    @cached_property
    def greeting(self) -> Reply | None:
        """The server's greeting, when the capture has it."""
        s = self.session
        if not s.replies or s.replies[0].answers is not None:
            return None
        first = s.replies[0]
        status = first.status.upper()
        word = (first.lines[0] if first.lines else "").split(" ", 1)[0].upper()
        if (
            (s.protocol == "smtp" and status in ("220", "421", "554"))
            or (s.protocol == "pop3" and status in ("+OK", "-ERR"))
            or (s.protocol == "imap" and status == "*" and word in ("OK", "PREAUTH", "BYE"))
        ):
            return first
        return None

    @cached_property
    def server_names(self) -> tuple[str, ...]:
        """Host names the SMTP server calls itself (greeting, EHLO reply)."""
        s = self.session
        names: list[str] = []
        if s.protocol != "smtp":
            return ()
        texts = []
        if self.greeting is not None and self.greeting.lines:
            texts.append(self.greeting.lines[0])
        texts += [r.lines[0] for r in s.replies if r.answers in ("EHLO", "HELO") and reply_ok(r) and r.lines]
        for text in texts:
            word = text.split(" ", 1)[0].strip()
            if looks_like_hostname(word) and word.lower() not in names:
                names.append(word.lower().strip("."))
        return tuple(names)

    @cached_property
    def guessed_local_domains(self) -> frozenset[str]:
        """The server's names, their parents and organisational domains (``mx.remote.example`` → both)."""
        out: set[str] = set()
        for name in self.server_names:
            out.add(name)
            labels = name.split(".")
            if len(labels) >= 3:
                out.add(".".join(labels[1:]))
            out.add(org_domain(name))
        return frozenset(out)

    @cached_property
    def client_public(self) -> bool:
        return bool(is_public_ip(self.session.client.ip))

    # ------------------------------------------------------------------ capabilities
    @cached_property
    def offer(self) -> Offer | None:
        """Capabilities advertised in the clear (before TLS); None when none were seen."""
        s = self.session
        frame = 0
        starttls = False
        masked: list[str] = []
        mechanisms: set[str] = set()
        ways: list[str] = []
        seen = False
        for reply in s.replies:
            if not self.in_clear(reply.frame):
                break
            words = _capability_words(s.protocol, reply)
            if words is None:
                continue
            if not seen:
                seen, frame = True, reply.frame
            upper = [w.upper() for w in words]
            if s.protocol == "smtp":
                for line in upper:
                    keyword, _, rest = line.partition(" ")
                    if keyword == "STARTTLS":
                        starttls = True
                    elif masked_starttls(keyword):
                        masked.append(keyword)
                    elif keyword == "AUTH":
                        mechanisms.update(rest.split())
                    elif keyword.startswith("AUTH="):  # the pre-RFC 2554 form some servers still send
                        mechanisms.update([keyword[5:], *rest.split()])
            elif s.protocol == "pop3":
                for line in upper:
                    keyword, _, rest = line.partition(" ")
                    if keyword == "STLS":
                        starttls = True
                    elif keyword == "USER":
                        ways.append("USER")
                    elif keyword == "SASL":
                        mechanisms.update(rest.split())
            else:
                tokens = " ".join(upper).split()
                starttls = starttls or "STARTTLS" in tokens
                mechanisms.update(t[5:] for t in tokens if t.startswith("AUTH="))
                if "LOGINDISABLED" not in tokens:
                    ways.append("LOGIN")
        if not seen:
            return None
        verb = "AUTHENTICATE" if s.protocol == "imap" else "AUTH"
        ways += [f"{verb} {m}" for m in sorted(mechanisms & PASSWORD_MECHANISMS)]
        return Offer(frame, starttls, frozenset(mechanisms), tuple(dict.fromkeys(ways)),
                     tuple(dict.fromkeys(masked)))


def _capability_words(protocol: str, reply: Reply) -> list[str] | None:
    """The capability lines/words of a reply, or None if it advertises none."""
    if protocol == "smtp":
        if reply.answers == "EHLO" and reply_ok(reply):
            return [line.strip() for line in reply.lines[1:] if line.strip()]
        return None
    if protocol == "pop3":
        if reply.answers == "CAPA" and reply_ok(reply):
            return [line.strip() for line in reply.lines[1:] if line.strip()]
        return None
    words: list[str] = []
    found = False
    for line in reply.lines:
        match = CAPABILITY.search(line)
        if match:
            found = True
            words.append(match.group(1))
    return words if found else None
