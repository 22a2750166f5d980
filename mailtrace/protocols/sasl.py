"""SASL exchanges (RFC 4422) as SMTP AUTH, POP3 AUTH and IMAP AUTHENTICATE carry them.

One :class:`SaslExchange` per attempt is fed the initial response, each server challenge and each
client response (all still base64, as on the wire) and works out who logged in: PLAIN, LOGIN,
CRAM-MD5, XOAUTH2, OAUTHBEARER, DIGEST-MD5, SCRAM-*, NTLM (user, domain, host from the type-3
message). Secrets are kept so ``--show-secrets`` can show them; nothing here prints anything.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from mailtrace.model import COMMAND_AS_RESPONSE_KEY, AuthAttempt, filled_by_command


def b64decode(text: str) -> bytes | None:
    """Lenient base64 (whitespace and missing padding tolerated); None if it is not base64."""
    cleaned = "".join(text.split())
    if not cleaned or cleaned in ("=", "*"):
        return b"" if cleaned == "=" else None
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return binascii.a2b_base64(cleaned.encode("ascii", "strict"), strict_mode=False)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None


def redact_lines(data: bytes, known_verbs: frozenset[str],
                 hide: Callable[[bytes, bytes, bytes], bytes | None] | None = None) -> bytes:
    """Client command lines quoted in a note (SMTP, POP3), credentials hidden as the command rows hide
    them: an ``AUTH`` initial response, the SASL lines after an ``AUTH`` until the next command, and
    what ``hide(verb_upper, verb, argument)`` returns for another command (POP3 ``PASS``, ``APOP``).
    Any of CRLF, bare LF and bare CR ends a line here, so nothing hides behind an odd line end."""
    out: list[bytes] = []
    in_sasl = False
    for piece in data.splitlines(keepends=True):
        line = piece.rstrip(b"\r\n")
        end = piece[len(line):]
        verb, _, argument = line.strip().partition(b" ")
        verb_u = verb.upper()
        known = verb_u.decode("latin-1") in known_verbs
        if known:
            in_sasl = False
        if verb_u == b"AUTH" and argument.strip():  # (a bare AUTH lists POP3's mechanisms: no exchange)
            mech, _, initial = argument.strip().partition(b" ")
            line = verb + b" " + mech + (b" [initial response]" if initial.strip() not in (b"", b"=") else b"")
            in_sasl = True
        elif known and hide is not None:
            line = hide(verb_u, verb, argument) or line
        elif in_sasl and not known and line.strip() not in (b"", b"*"):
            line = b"[SASL response]"
        out.append(line + end)
    return b"".join(out)


COMMAND_AS_RESPONSE = "command-as-sasl-response"
"""The anomaly kind of :func:`command_as_response`."""


def command_as_response(response: str, known_verbs: frozenset[str], *, exchange: str, challenge: str,
                        reference: str, tagged: bool = False) -> str | None:
    """The anomaly's detail when a client sent a command word where the server waited for a SASL
    response (``QUIT`` after ``334 VXNlcm5hbWU6``; ``a2 LOGOUT`` for IMAP, ``tagged``), else None. The
    server reads such a line as the base64 answer (a client ends an exchange with ``*``), so the user
    name or password it got is whatever those letters decode to, or the exchange fails on a line that
    is no base64. ``exchange`` names the command (``AUTH LOGIN``), ``challenge`` its prompt (``334``)."""
    words = response.split(None, 2)[1 if tagged else 0:]
    word = words[0].upper() if words else ""
    if word not in known_verbs:
        return None
    return (f"the client sent {'a tagged ' if tagged else ''}{word} where the server waited for its answer to "
            f"{exchange} (the {challenge} challenge): the server takes the line as the base64 answer, not as a "
            f'command; a client ends an exchange with a line of "*" ({reference})')


DIGEST_FIELD = re.compile(rb'([a-zA-Z-]+)=(?:"((?:[^"\\]|\\.)*)"|([^,]*))')


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


@dataclass
class SaslExchange:
    """State of one authentication attempt."""

    mechanism: str
    username: str | None = None
    secret: str | None = None
    domain: str | None = None
    host: str | None = None
    cancelled: bool = False
    challenges: list[bytes] = field(default_factory=list)
    responses: list[bytes] = field(default_factory=list)
    extra: dict[str, str] = field(default_factory=dict)
    _prompts_used: int = 0

    def initial(self, text: str | None) -> None:
        """The initial response sent with the command (``=`` means empty)."""
        if text is None or text == "":
            return
        self.client(text)

    def server(self, text: str) -> None:
        decoded = b64decode(text)
        self.challenges.append(decoded if decoded is not None else text.encode("utf-8", "replace"))

    def client(self, text: str, *, is_command: bool = False) -> None:
        """One client response. ``is_command``: the line was a command word the client meant for the
        protocol (:func:`command_as_response`); the server reads it as the answer all the same, so it
        is interpreted, and which field it filled is remembered: that field holds no credential."""
        if text.strip() == "*":
            self.cancelled = True
            return
        decoded = b64decode(text)
        if decoded is None:
            decoded = text.encode("utf-8", "replace")
            self.extra["not_base64"] = "yes"
        self.responses.append(decoded)
        before = (self.username, self.secret)
        self._interpret(decoded)
        if is_command:
            fields = [f for f in self.extra.get(COMMAND_AS_RESPONSE_KEY, "").split(",") if f != "response" and f]
            fields += [f for f, was, now in (("username", before[0], self.username), ("secret", before[1], self.secret))
                       if was != now and f not in fields]
            self.extra[COMMAND_AS_RESPONSE_KEY] = ",".join(fields) or "response"

    @property
    def sent_username(self) -> str | None:
        """The user name as the client gave it: None when it was a command the server decoded as one."""
        return None if filled_by_command(self.extra, "username") else self.username

    def hashcat(self) -> str | None:
        """A CRAM-MD5 exchange as hashcat input; None when its one response was a command, not a digest."""
        if self.mechanism != "CRAM-MD5" or not (self.username and self.secret and self.challenges) \
                or COMMAND_AS_RESPONSE_KEY in self.extra:
            return None
        return hashcat_cram_md5(self.username, self.challenges[-1].decode("latin-1"), self.secret)

    def attempt_extra(self) -> dict[str, str]:
        """The exchange's facts every protocol's login event carries (JSON ``auth[]`` keys)."""
        extra: dict[str, str] = {}
        if self.host:
            extra["host"] = self.host
        if self.cancelled:
            extra["cancelled"] = "yes"
        if COMMAND_AS_RESPONSE_KEY in self.extra:
            extra[COMMAND_AS_RESPONSE_KEY] = self.extra[COMMAND_AS_RESPONSE_KEY]
        return extra

    # ------------------------------------------------------------------ per mechanism
    def _interpret(self, data: bytes) -> None:
        mech = self.mechanism
        n = len(self.responses)
        if mech == "PLAIN" and n == 1:
            parts = data.split(b"\x00")
            if len(parts) >= 3:
                authz, authcid, password = parts[0], parts[1], b"\x00".join(parts[2:])
                self.username = _text(authcid)
                self.secret = _text(password)
                if authz:
                    self.extra["authzid"] = _text(authz)
            else:
                self.extra["malformed"] = "PLAIN response without two NUL separators"
        elif mech == "LOGIN":
            # A prompt answers for one response only; when prompts were lost, go by order (user, then password).
            fresh = len(self.challenges) > self._prompts_used
            prompt = _text(self.challenges[-1]).lower() if fresh else ""
            self._prompts_used = len(self.challenges)
            if "pass" in prompt or (self.username is not None and "user" not in prompt):
                self.secret = _text(data)
            else:
                self.username = _text(data)
        elif mech == "CRAM-MD5" and n == 1:
            user, _, digest = _text(data).rpartition(" ")
            self.username = user or _text(data)
            self.secret = digest
            if self.challenges:
                self.extra["challenge"] = _text(self.challenges[-1])
        elif mech == "XOAUTH2" and n == 1:
            for part in data.split(b"\x01"):
                if part.startswith(b"user="):
                    self.username = _text(part[5:])
                elif part.lower().startswith(b"auth="):
                    self.secret = _text(part[5:])
        elif mech == "OAUTHBEARER" and n == 1:
            head, *kvs = data.split(b"\x01")
            match = re.search(rb"(?:^|,)a=([^,]*)", head)
            if match:
                self.username = _text(match.group(1)).replace("=2C", ",").replace("=3D", "=")
            for kv in kvs:
                if kv.lower().startswith(b"auth="):
                    self.secret = _text(kv[5:])
        elif mech.startswith("SCRAM-") and n == 1:
            match = re.search(rb"(?:^|,)n=([^,]*)", data.split(b",", 2)[-1] if data.count(b",") >= 2 else data)
            if match:
                self.username = _text(match.group(1)).replace("=2C", ",").replace("=3D", "=")
        elif mech == "DIGEST-MD5" and n == 1:
            fields = {k: a or b for k, a, b in DIGEST_FIELD.findall(data)}
            if b"username" in fields:
                self.username = _text(fields[b"username"])
            if b"realm" in fields:
                self.domain = _text(fields[b"realm"])
            if b"response" in fields:
                self.secret = _text(fields[b"response"])
        elif mech == "NTLM":
            self._ntlm(data)
        elif (mech in ("ANONYMOUS",) and n == 1) or (mech == "EXTERNAL" and n == 1):
            self.username = _text(data) or None

    def _ntlm(self, data: bytes) -> None:
        if not data.startswith(b"NTLMSSP\x00") or len(data) < 12:
            return
        (msg_type,) = struct.unpack_from("<I", data, 8)
        if msg_type == 1:
            self.extra["ntlm"] = "negotiate"
        elif msg_type == 3 and len(data) >= 64:
            flags = struct.unpack_from("<I", data, 60)[0] if len(data) >= 64 else 0
            unicode = bool(flags & 0x01)

            def field_at(offset: int) -> bytes:
                length, _maxlen, start = struct.unpack_from("<HHI", data, offset)
                return data[start : start + length]

            def decode(raw: bytes) -> str:
                return raw.decode("utf-16-le", "replace") if unicode else raw.decode("latin-1")

            domain = decode(field_at(28))
            user = decode(field_at(36))
            host = decode(field_at(44))
            self.username = user or None
            self.domain = domain or None
            self.host = host or None
            nt = field_at(20)
            if nt:
                self.secret = binascii.hexlify(nt).decode()


def hashcat_cram_md5(user: str, challenge: str, digest: str) -> str:
    """A CRAM-MD5 exchange in hashcat's mode 16400 input format."""
    challenge_b64 = base64.b64encode(challenge.encode("utf-8", "surrogateescape")).decode()
    response_b64 = base64.b64encode(f"{user} {digest}".encode("utf-8", "surrogateescape")).decode()
    return f"$cram_md5${challenge_b64}${response_b64}"


def hashcat_line(a: AuthAttempt) -> str | None:
    """A login as hashcat input (CRAM-MD5: mode 16400, APOP: mode 20), as ``--format json`` has it: none
    for a user name or digest that was a command the server read as the answer."""
    line = a.extra.get("hashcat")
    if isinstance(line, str) and line:
        return line
    challenge = a.extra.get("challenge")
    if a.mechanism.upper() == "CRAM-MD5" and a.sent_username and a.sent_secret and isinstance(challenge, str):
        return hashcat_cram_md5(a.sent_username, challenge, a.sent_secret)
    return None
