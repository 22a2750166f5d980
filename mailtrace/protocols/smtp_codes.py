"""What SMTP reply codes, enhanced status codes and EHLO keywords mean — the tables a lecture teaches.

RFC 5321 4.2.1 reads a reply code digit by digit: the first says how it went (1yz positive
preliminary … 5yz permanent failure), the second what it is about (x0z syntax, x1z information, x2z
connection, x5z mail system). RFC 3463 adds enhanced status codes (``5.1.1``: permanent, addressing,
bad destination mailbox); the IANA registry extends them. EHLO keywords name the extensions a server
offers. The strings are plain data keyed by language, so a translation is one more table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FIRST_DIGIT = {
    "en": {
        "1": "positive preliminary reply",
        "2": "positive completion",
        "3": "positive intermediate reply: the server waits for more",
        "4": "transient failure: try again later",
        "5": "permanent failure",
    },
}
SECOND_DIGIT = {
    "en": {
        "0": "syntax",
        "1": "information",
        "2": "connection",
        "3": "unspecified",
        "4": "unspecified",
        "5": "mail system",
    },
}
CODES = {  # RFC 5321 4.2.2/4.2.3, RFC 4954 (AUTH), RFC 3207 (STARTTLS), RFC 7504 (521/556), RFC 3030
    "en": {
        "211": "system status", "214": "help message", "220": "service ready",
        "221": "service closing the connection", "235": "authentication succeeded", "250": "requested action okay",
        "251": "user not local; will forward", "252": "cannot verify the user, but will accept the message",
        "334": "authentication: continue with the next step", "354": "start mail input; end with <CRLF>.<CRLF>",
        "421": "service not available, closing the connection", "432": "a password transition is needed",
        "450": "mailbox unavailable (busy, or temporarily blocked by policy)",
        "451": "local error in processing", "452": "insufficient system storage",
        "454": "temporary authentication failure / TLS not available", "455": "cannot accommodate the parameters",
        "500": "syntax error, command unrecognized", "501": "syntax error in parameters or arguments",
        "502": "command not implemented", "503": "bad sequence of commands",
        "504": "command parameter not implemented", "521": "host does not accept mail",
        "523": "encryption needed", "530": "authentication required", "534": "authentication mechanism too weak",
        "535": "authentication credentials invalid", "538": "encryption required for this mechanism",
        "550": "mailbox unavailable, or refused by policy", "551": "user not local",
        "552": "exceeded storage allocation", "553": "mailbox name not allowed", "554": "transaction failed",
        "555": "MAIL/RCPT parameters not recognized or not implemented", "556": "domain does not accept mail",
    },
}
ENHANCED_CLASS = {"en": {"2": "success", "4": "persistent transient failure", "5": "permanent failure"}}
ENHANCED = {  # RFC 3463 and the IANA "Enumerated Status Codes" registry (subject.detail)
    "en": {
        "0.0": "other undefined status",
        "1.0": "other address status", "1.1": "bad destination mailbox address",
        "1.2": "bad destination system address", "1.3": "bad destination mailbox address syntax",
        "1.4": "destination mailbox address ambiguous", "1.5": "destination address valid",
        "1.6": "destination mailbox has moved", "1.7": "bad sender's mailbox address syntax",
        "1.8": "bad sender's system address", "1.9": "message relayed to a non-compliant mailer",
        "1.10": "recipient address has a null MX",
        "2.0": "other or undefined mailbox status", "2.1": "mailbox disabled, not accepting messages",
        "2.2": "mailbox full", "2.3": "message length exceeds the administrative limit",
        "2.4": "mailing list expansion problem",
        "3.0": "other or undefined mail system status", "3.1": "mail system full",
        "3.2": "system not accepting network messages", "3.3": "system not capable of the selected features",
        "3.4": "message too big for the system", "3.5": "system incorrectly configured",
        "3.6": "requested priority was changed",
        "4.0": "other or undefined network or routing status", "4.1": "no answer from host",
        "4.2": "bad connection", "4.3": "directory server failure", "4.4": "unable to route",
        "4.5": "mail system congestion", "4.6": "routing loop detected", "4.7": "delivery time expired",
        "5.0": "other or undefined protocol status", "5.1": "invalid command", "5.2": "syntax error",
        "5.3": "too many recipients", "5.4": "invalid command arguments", "5.5": "wrong protocol version",
        "5.6": "authentication exchange line too long",
        "6.0": "other or undefined media error", "6.1": "media not supported",
        "6.2": "conversion required and prohibited", "6.3": "conversion required but not supported",
        "6.4": "conversion with loss performed", "6.5": "conversion failed", "6.6": "message content not available",
        "6.7": "non-ASCII addresses not permitted", "6.8": "UTF-8 string reply required",
        "6.9": "UTF-8 header message cannot be transferred",
        "7.0": "other or undefined security status", "7.1": "delivery not authorized, message refused",
        "7.2": "mailing list expansion prohibited", "7.3": "security conversion required but not possible",
        "7.4": "security features not supported", "7.5": "cryptographic failure",
        "7.6": "cryptographic algorithm not supported", "7.7": "message integrity failure",
        "7.8": "authentication credentials invalid", "7.9": "authentication mechanism too weak",
        "7.10": "encryption needed", "7.11": "encryption required for the requested authentication mechanism",
        "7.12": "a password transition is needed", "7.13": "user account disabled",
        "7.14": "trust relationship required", "7.15": "priority level too low",
        "7.16": "message too big for the specified priority", "7.17": "mailbox owner has changed",
        "7.18": "domain owner has changed", "7.19": "RRVS test cannot be completed",
        "7.20": "no passing DKIM signature found", "7.21": "no acceptable DKIM signature found",
        "7.22": "no valid author-matched DKIM signature found", "7.23": "SPF validation failed",
        "7.24": "SPF validation error", "7.25": "reverse DNS validation failed",
        "7.26": "multiple authentication checks failed", "7.27": "sender address has a null MX",
        "7.28": "mail flood detected", "7.29": "ARC validation failure", "7.30": "REQUIRETLS support required",
    },
}
EHLO_KEYWORDS = {  # RFC 5321 and the IANA "SMTP Service Extensions" registry
    "en": {
        "SIZE": "largest message the server accepts (RFC 1870)",
        "PIPELINING": "commands may be sent in batches without waiting for each reply (RFC 2920)",
        "8BITMIME": "8-bit message bodies accepted (RFC 6152)",
        "CHUNKING": "messages may be sent in chunks with BDAT (RFC 3030)",
        "BINARYMIME": "binary message bodies accepted with BDAT (RFC 3030)",
        "SMTPUTF8": "UTF-8 addresses and headers accepted (RFC 6531)",
        "DSN": "delivery status notifications on request (RFC 3461)",
        "STARTTLS": "the session can be upgraded to TLS (RFC 3207)",
        "AUTH": "the client may authenticate with these SASL mechanisms (RFC 4954)",
        "ENHANCEDSTATUSCODES": "replies carry enhanced status codes like 5.1.1 (RFC 2034)",
        "ETRN": "the client may ask the server to flush its queue for a domain (RFC 1985)",
        "ATRN": "authenticated turn: the roles of client and server can be swapped (RFC 2645)",
        "DELIVERBY": "the client may set a deadline for delivery (RFC 2852)",
        "EXPN": "mailing lists can be expanded (RFC 5321)",
        "VRFY": "user names can be verified (RFC 5321)",
        "HELP": "help is available (RFC 5321)",
        "VERB": "verbose mode (sendmail)",
        "ONEX": "one message per connection (sendmail)",
        "REQUIRETLS": "the message may demand TLS on every hop (RFC 8689)",
        "MT-PRIORITY": "message transfer priorities (RFC 6710)",
        "FUTURERELEASE": "messages can be held for later release (RFC 4865)",
        "LIMITS": "the server states its limits on recipients and transactions (RFC 9422)",
        "MTRK": "message tracking (RFC 3885)",
        "NO-SOLICITING": "no solicitations wanted (RFC 3865)",
        "XCLIENT": "a trusted proxy may pass the real client's attributes (Postfix)",
        "XFORWARD": "a trusted proxy may forward the original client's details (Postfix)",
        "TURN": "the roles of client and server can be swapped (obsolete, RFC 821)",
        "X-EXPS": "Microsoft Exchange authentication extension",
        "X-LINK2STATE": "Microsoft Exchange routing extension",
        "XEXCH50": "Microsoft Exchange message properties",
        "X-ANONYMOUSTLS": "Microsoft Exchange anonymous TLS",
    },
}
ENHANCED_CODE = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})\b")


@dataclass(frozen=True)
class ReplyMeaning:
    """A reply code read the way RFC 5321 and RFC 3463 teach it."""

    code: str
    outcome: str
    """What the first digit says (positive completion, transient failure, …)."""
    category: str
    """What the second digit says (syntax, connection, mail system, …)."""
    meaning: str | None
    """The meaning of the whole code, where RFC 5321 (or an extension) defines it."""
    enhanced: str | None = None
    """The enhanced status code at the start of the text, e.g. ``5.1.1``."""
    enhanced_meaning: str | None = None

    @property
    def short(self) -> str:
        """The most specific meaning: the enhanced code's, else the code's, else its class."""
        return self.enhanced_meaning or self.meaning or self.outcome


def enhanced_code(text: str) -> str | None:
    match = ENHANCED_CODE.match(text.strip())
    return ".".join(match.groups()) if match else None


def explain_reply(code: str, text: str = "", lang: str = "en") -> ReplyMeaning | None:
    """Explain an SMTP reply; None when ``code`` is not a three-digit reply code."""
    if len(code) != 3 or not code.isdigit():
        return None
    first, second = FIRST_DIGIT.get(lang, FIRST_DIGIT["en"]), SECOND_DIGIT.get(lang, SECOND_DIGIT["en"])
    codes = CODES.get(lang, CODES["en"])
    enhanced = enhanced_code(text)
    enhanced_meaning = None
    if enhanced is not None:
        table = ENHANCED.get(lang, ENHANCED["en"])
        klass, subject, detail = enhanced.split(".")
        enhanced_meaning = table.get(f"{subject}.{detail}") or table.get(f"{subject}.0")
        if enhanced_meaning is None:
            enhanced_meaning = ENHANCED_CLASS.get(lang, ENHANCED_CLASS["en"]).get(klass)
    return ReplyMeaning(code, first.get(code[0], "unknown class"), second.get(code[1], "unknown category"),
                        codes.get(code), enhanced, enhanced_meaning)


def explain_keyword(line: str, lang: str = "en") -> tuple[str, str | None]:
    """An EHLO line (``SIZE 10240000``, ``AUTH PLAIN LOGIN``) → (keyword, what it means, with the value)."""
    keyword, _, value = line.strip().partition(" ")
    keyword = keyword.upper()
    meaning = EHLO_KEYWORDS.get(lang, EHLO_KEYWORDS["en"]).get(keyword)
    if meaning is None and keyword.startswith("X"):
        meaning = "private extension"
    if meaning is not None and value:
        detail = None
        if keyword == "SIZE" and value.isdigit():
            detail = _size(int(value)) if int(value) else "no fixed limit"
        elif keyword == "AUTH":
            detail = value
        if detail is not None:
            head, ref, tail = meaning.partition(" (")
            meaning = f"{head}: {detail}" + (f" ({tail}" if ref else "")
    return keyword, meaning


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)  # pragma: no cover
