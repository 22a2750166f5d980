"""Session filters shared by every view and by the JSON report, and the status of a session.

A :class:`SessionFilter` is built once from the command line and asked about each finished
session; every criterion given must hold (AND), values repeated for one criterion are
alternatives (OR). Filtering happens after analysis, so session ids stay those of the whole
capture: ``--session 3`` is the third session whatever else is filtered.

The status of a session (``--status`` and the session list) is one of four words, decided in this
order (docs/terminal.md):

``partial``
    the capture does not hold the whole session: no TCP handshake at its start, bytes missing
    (gaps), or still open when the capture ended (or idle past the timeout);
``reset``
    ended by a TCP RST before an orderly end (QUIT/LOGOUT answered, or a TLS close_notify);
``failed``
    the server refused what the client came for: a negative greeting, a login that never
    succeeded, an SMTP session that began a transaction but got no message accepted, or a server
    that ended the session with 421;
``completed``
    everything else.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mailtrace.capture.decode import TCP_SYN
from mailtrace.model import Reply
from mailtrace.numbers import is_count
from mailtrace.protocols import BY_NAME
from mailtrace.session import Session

STATUSES = ("completed", "failed", "reset", "partial")
PROTOCOLS = tuple(BY_NAME)
"""The protocol names ``--protocol`` accepts: one per dissector in the registry."""
OPEN_CLOSES = frozenset({"open", "timeout"})
"""``Session.close`` values of a connection the capture did not see end."""

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


# --------------------------------------------------------------------------- status


def positive(reply: Reply) -> bool:
    """A reply that says yes: SMTP 2xx/3xx, POP3 ``+OK``/``+``, IMAP ``OK`` and continuations."""
    status = reply.status
    if status[:1].isdigit():
        return status[:1] in "23"
    if status == "*":
        head = reply.lines[0].split(" ", 1)[0].upper() if reply.lines else ""
        return head not in ("NO", "BAD", "BYE")
    return status.upper() in ("+OK", "+", "OK", "PREAUTH")


def greeting(session: Session) -> Reply | None:
    """The server's first reply, when it answers no command (the greeting)."""
    for reply in session.replies[:1]:
        if reply.answers is None:
            return reply
    return None


def orderly_end(session: Session) -> bool:
    """QUIT or LOGOUT was answered positively, or the TLS layer saw a close_notify."""
    for reply in reversed(session.replies):
        if reply.answers in ("QUIT", "LOGOUT") and positive(reply):
            return True
    info = session.tls_info or {}
    alerts = info.get("alerts") or []
    return any(isinstance(a, dict) and a.get("description") == "close_notify" for a in alerts)


def _message_accepted(session: Session) -> bool:
    """An SMTP message was accepted: a 2xx to the end of DATA, or to a BDAT ... LAST."""
    last_bdat = [c.frame for c in session.commands if c.verb == "BDAT" and "LAST" in c.argument.upper()]
    for reply in session.replies:
        if not reply.status.startswith("2"):
            continue
        if reply.answers == ".":
            return True
        if reply.answers == "BDAT" and any(frame <= reply.frame for frame in last_bdat):
            return True
    return False


def _refused(session: Session) -> bool:
    hello = greeting(session)
    if hello is not None and not positive(hello):
        return True
    logins = session.auth
    if logins and not any(a.success for a in logins) and any(a.success is False for a in logins) \
            and not session.logins_dropped.get("succeeded"):  # an accepted one past the session's limit
        return True
    if session.protocol == "smtp":
        if any(c.verb == "MAIL" for c in session.commands) and not _message_accepted(session):
            return True
        if any(r.answers is None and r.status == "421" for r in session.replies[1:]):
            return True
    return False


def sealed(session: Session) -> bool:
    """The session went into TLS and was not decrypted: its login and messages may be inside, unseen.
    Not a session whose traffic after STARTTLS was cleartext after all (a TLS-inspecting box)."""
    return session.tls != "none" and not session.decrypted and \
        not any(a.kind == "plaintext-after-tls" for a in session.anomalies)


def session_status(session: Session) -> str:
    """``partial``, ``reset``, ``failed`` or ``completed`` (see the module docstring)."""
    rows = session.rows
    if session.gaps or session.close in OPEN_CLOSES or (rows and not rows[0].flags & TCP_SYN):
        return "partial"
    if session.close == "rst" and not orderly_end(session):
        return "reset"
    if _refused(session):
        return "failed"
    return "completed"


# --------------------------------------------------------------------------- parsing options

_ISO_SHORT = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_time(text: str) -> float:
    """Epoch seconds (``1795699344.5``) or an ISO 8601 date/time; without a zone it is UTC."""
    value = text.strip()
    if not value:
        raise ValueError("an empty time: give epoch seconds or an ISO date (2026-11-26T13:22:24)")
    try:
        seconds = float(value) if value.isascii() else math.nan  # float() reads "٣" as 3 and "nan" as NaN
    except ValueError:
        pass
    else:
        if math.isfinite(seconds):
            return seconds
    iso = value.replace(" ", "T", 1) if not _ISO_SHORT.match(value) else value
    if iso.endswith(("Z", "z")):
        iso = iso[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        raise ValueError(f"{text!r} is neither epoch seconds nor an ISO date (2026-11-26T13:22:24)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _utc(seconds: float) -> str:
    """A time as the user may have typed it: ISO 8601 in UTC (epoch seconds when out of range)."""
    try:
        return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return repr(seconds)


MAX_SESSION_IDS = 1_000_000
"""Session ids ``--session`` may name in all (ranges included)."""


def parse_ids(texts: Iterable[str]) -> frozenset[int]:
    """``3``, ``1,4`` or ``5-9`` (repeatable) → the session ids."""
    ids: set[int] = set()
    for text in texts:
        for part in text.split(","):
            piece = part.strip()
            low, sep, high = piece.partition("-")
            # an empty value or piece ("", "1,,2") would select nothing or everything by accident
            if not is_count(low, 9) or (sep and not is_count(high, 9)):
                raise ValueError(f"{text!r}: expected a session id, a list (1,4) or a range (5-9)")
            first, last = int(low), int(high) if sep else int(low)
            if first < 1:
                raise ValueError(f"{text!r}: session ids start at 1")
            if last < first:
                raise ValueError(f"{text!r}: the range goes backwards")
            if len(ids) + last - first + 1 > MAX_SESSION_IDS:  # each id is kept: 1-999999999 took 13 GB
                raise ValueError(f"{text!r}: at most {MAX_SESSION_IDS:,} session ids can be named; "
                                 "give a smaller range")
            ids.update(range(first, last + 1))
    return frozenset(ids)


def parse_host(text: str) -> IpNetwork:
    """An address (``10.0.0.5``, ``2001:db8::1``) or a network (``10.0.0.0/8``)."""
    try:
        return ipaddress.ip_network(text.strip().strip("[]"), strict=False)
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address or network (10.0.0.5, 10.0.0.0/8, 2001:db8::/32)") \
            from None


# --------------------------------------------------------------------------- the filter


@dataclass(frozen=True)
class SessionFilter:
    """Which sessions a run shows; an empty filter lets everything through."""

    ids: frozenset[int] = frozenset()
    protocols: frozenset[str] = frozenset()
    hosts: tuple[IpNetwork, ...] = ()
    ports: frozenset[int] = frozenset()
    users: tuple[str, ...] = ()
    """Shell-style patterns (``bob``, ``*@example.org``), matched without regard to case."""
    since: float | None = None
    until: float | None = None
    statuses: frozenset[str] = frozenset()
    seen: dict[str, int] = field(default_factory=lambda: {"shown": 0, "hidden": 0}, compare=False)
    """How many sessions were shown and hidden so far (for the summary)."""

    def __post_init__(self) -> None:
        if self.since is not None and self.until is not None and self.since > self.until:
            # Every session would be hidden and the run would look like a capture without mail.
            raise ValueError(f"--since {_utc(self.since)} is later than --until {_utc(self.until)}: "
                             "no session can match; swap the two times")

    @property
    def active(self) -> bool:
        return bool(self.ids or self.protocols or self.hosts or self.ports or self.users
                    or self.since is not None or self.until is not None or self.statuses)

    def __call__(self, session: Session) -> bool:
        """Whether the session passes; counts the answer."""
        ok = self.matches(session)
        self.seen["shown" if ok else "hidden"] += 1
        return ok

    def matches(self, session: Session) -> bool:
        if self.ids and session.id not in self.ids:
            return False
        if self.protocols and session.protocol not in self.protocols:
            return False
        if self.ports and session.client.port not in self.ports and session.server.port not in self.ports:
            return False
        if self.hosts and not (_in(session.client.ip, self.hosts) or _in(session.server.ip, self.hosts)):
            return False
        if self.since is not None and session.end < self.since:
            return False
        if self.until is not None and session.start > self.until:
            return False
        if self.users and not _user_matches(session, self.users):
            return False
        return not (self.statuses and session_status(session) not in self.statuses)

    def describe(self) -> dict[str, object]:
        """The criteria in use, JSON-ready (the report records what it was filtered by)."""
        out: dict[str, object] = {}
        if self.ids:
            out["sessions"] = sorted(self.ids)
        if self.protocols:
            out["protocols"] = sorted(self.protocols)
        if self.hosts:
            out["hosts"] = [str(h) for h in self.hosts]
        if self.ports:
            out["ports"] = sorted(self.ports)
        if self.users:
            out["users"] = list(self.users)
        if self.since is not None:
            out["since"] = self.since
        if self.until is not None:
            out["until"] = self.until
        if self.statuses:
            out["statuses"] = sorted(self.statuses)
        return out


def _in(ip: str, networks: tuple[IpNetwork, ...]) -> bool:
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    return any(address.version == net.version and address in net for net in networks)


def session_users(session: Session) -> list[str]:
    """Every user name the session names: logins (successful or not) and protocol records."""
    names = [a.sent_username for a in session.auth if a.sent_username]
    names += [c.argument.split(" ", 1)[0] for c in session.commands
              if c.verb in ("USER", "APOP") and c.argument]
    if session.user:
        names.append(session.user)
    return names


def _user_matches(session: Session, patterns: tuple[str, ...]) -> bool:
    names = [n.casefold() for n in session_users(session)]
    return any(fnmatch.fnmatchcase(name, pattern.casefold()) for name in names for pattern in patterns)

