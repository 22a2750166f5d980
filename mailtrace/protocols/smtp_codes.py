"""What SMTP reply codes, enhanced status codes and EHLO keywords mean — the tables a lecture teaches.

RFC 5321 4.2.1 reads a reply code digit by digit: the first says how it went (1yz positive
preliminary … 5yz permanent failure), the second what it is about (x0z syntax, x1z information, x2z
connection, x5z mail system). RFC 3463 adds enhanced status codes (``5.1.1``: permanent, addressing,
bad destination mailbox); the IANA registry extends them. EHLO keywords name the extensions a server
offers. The strings are plain data keyed by language, so a translation is one more table.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from mailtrace.numbers import parse_count

FIRST_DIGIT = {
    "de": {
        "1": "positive Vorab-Antwort",
        "2": "positive Erledigung",
        "3": "positive Zwischenantwort: der Server wartet auf mehr",
        "4": "vorübergehender Fehler: später erneut versuchen",
        "5": "dauerhafter Fehler",
    },
    "en": {
        "1": "positive preliminary reply",
        "2": "positive completion",
        "3": "positive intermediate reply: the server waits for more",
        "4": "transient failure: try again later",
        "5": "permanent failure",
    },
}
SECOND_DIGIT = {
    "de": {"0": "Syntax", "1": "Information", "2": "Verbindung", "3": "nicht festgelegt", "4": "nicht festgelegt",
           "5": "Mailsystem"},
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
    "de": {
        "211": "Systemstatus", "214": "Hilfetext", "220": "Dienst bereit", "221": "Dienst beendet die Verbindung",
        "235": "Authentisierung erfolgreich", "250": "Aktion ausgeführt",
        "251": "Empfänger nicht lokal; wird weitergeleitet",
        "252": "Benutzer nicht überprüfbar, Nachricht wird aber angenommen",
        "334": "Authentisierung: weiter mit dem nächsten Schritt",
        "354": "Beginn der Nachrichteneingabe; Ende mit <CRLF>.<CRLF>",
        "421": "Dienst nicht verfügbar, Verbindung wird geschlossen",
        "450": "Postfach nicht verfügbar (belegt oder vorübergehend gesperrt)",
        "451": "lokaler Verarbeitungsfehler", "452": "zu wenig Speicherplatz",
        "454": "vorübergehender Authentisierungsfehler / TLS nicht verfügbar",
        "500": "Syntaxfehler, Befehl unbekannt", "501": "Syntaxfehler in Parametern oder Argumenten",
        "502": "Befehl nicht implementiert", "503": "falsche Befehlsreihenfolge",
        "504": "Befehlsparameter nicht implementiert", "530": "Authentisierung erforderlich",
        "535": "Zugangsdaten ungültig", "550": "Postfach nicht verfügbar oder per Richtlinie abgelehnt",
        "551": "Benutzer nicht lokal", "552": "Speicherzuteilung überschritten", "553": "Postfachname nicht erlaubt",
        "554": "Transaktion fehlgeschlagen", "432": "ein Passwortwechsel ist nötig",
        "455": "Parameter können nicht berücksichtigt werden", "521": "Host nimmt keine E-Mails an",
        "523": "Verschlüsselung nötig", "534": "Authentisierungsverfahren zu schwach",
        "538": "dieses Verfahren erfordert Verschlüsselung",
        "555": "MAIL/RCPT-Parameter unbekannt oder nicht implementiert", "556": "Domain nimmt keine E-Mails an",
    },
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
DEFINED_CODES = frozenset({
    # RFC 5321 §4.2.2/§4.2.3
    "211", "214", "220", "221", "250", "251", "252", "354", "421", "450", "451", "452", "455",
    "500", "501", "502", "503", "504", "550", "551", "552", "553", "554", "555",
    "235", "334", "432", "454", "530", "534", "535", "538",  # RFC 4954 (AUTH); 454/530 also RFC 3207
    "253", "458", "459",  # RFC 1985 (ETRN)
    "453",  # RFC 2645 (ATRN: no mail)
    "521", "556",  # RFC 7504 (null MX, no mail)
    "523",  # RFC 5248 (the registry pairs it with 5.7.10, encryption needed)
})
"""The reply codes RFC 5321 and the SMTP extensions define; any other code is not SMTP (``299``, ``270``)."""
ENHANCED_CLASS = {
    "de": {"2": "Erfolg", "4": "vorübergehender Fehler", "5": "dauerhafter Fehler"},
    "en": {"2": "success", "4": "persistent transient failure", "5": "permanent failure"}}
ENHANCED = {  # RFC 3463 and the IANA "Enumerated Status Codes" registry (subject.detail)
    "de": {
        "0.0": "sonstiger, nicht festgelegter Status",
        "1.0": "sonstiger Adressstatus", "1.1": "ungültige Empfänger-Postfachadresse",
        "1.2": "ungültige Empfänger-Systemadresse", "1.3": "ungültige Syntax der Empfängeradresse",
        "1.4": "Empfängeradresse mehrdeutig", "1.5": "Empfängeradresse gültig",
        "1.6": "Empfängerpostfach ist umgezogen", "1.7": "ungültige Syntax der Absenderadresse",
        "1.8": "ungültige Absender-Systemadresse", "1.9": "Nachricht an ein nicht konformes Mailsystem weitergeleitet",
        "1.10": "die Empfängeradresse hat einen Null-MX",
        "2.0": "sonstiger Postfachstatus", "2.1": "Postfach gesperrt, nimmt keine Nachrichten an",
        "2.2": "Postfach voll", "2.3": "Nachricht länger als das administrative Limit",
        "2.4": "Problem beim Auflösen der Verteilerliste",
        "3.0": "sonstiger Status des Mailsystems", "3.1": "Mailsystem voll",
        "3.2": "System nimmt keine Nachrichten aus dem Netz an",
        "3.3": "System beherrscht die gewählten Funktionen nicht",
        "3.4": "Nachricht zu groß für das System", "3.5": "System falsch konfiguriert",
        "3.6": "gewünschte Priorität wurde geändert",
        "4.0": "sonstiger Netz- oder Routingstatus", "4.1": "keine Antwort vom Host",
        "4.2": "schlechte Verbindung", "4.3": "Fehler des Verzeichnisservers", "4.4": "nicht zustellbar (kein Weg)",
        "4.5": "Mailsystem überlastet", "4.6": "Routing-Schleife erkannt", "4.7": "Zustellfrist abgelaufen",
        "5.0": "sonstiger Protokollstatus", "5.1": "ungültiger Befehl", "5.2": "Syntaxfehler",
        "5.3": "zu viele Empfänger", "5.4": "ungültige Befehlsargumente", "5.5": "falsche Protokollversion",
        "5.6": "Zeile des Authentisierungsaustauschs zu lang",
        "6.0": "sonstiger Medienfehler", "6.1": "Medium nicht unterstützt",
        "6.2": "Konvertierung nötig, aber verboten", "6.3": "Konvertierung nötig, aber nicht unterstützt",
        "6.4": "Konvertierung mit Verlust durchgeführt", "6.5": "Konvertierung fehlgeschlagen",
        "6.6": "Nachrichteninhalt nicht verfügbar", "6.7": "Nicht-ASCII-Adressen nicht erlaubt",
        "6.8": "UTF-8-Antwort erforderlich", "6.9": "Nachricht mit UTF-8-Kopfzeilen nicht übertragbar",
        "7.0": "sonstiger Sicherheitsstatus", "7.1": "Zustellung nicht erlaubt, Nachricht abgelehnt",
        "7.2": "Auflösen der Verteilerliste verboten", "7.3": "Sicherheitskonvertierung nötig, aber nicht möglich",
        "7.4": "Sicherheitsfunktionen nicht unterstützt", "7.5": "kryptografischer Fehler",
        "7.6": "kryptografischer Algorithmus nicht unterstützt", "7.7": "Integritätsprüfung fehlgeschlagen",
        "7.8": "Zugangsdaten ungültig", "7.9": "Authentisierungsverfahren zu schwach",
        "7.10": "Verschlüsselung nötig", "7.11": "das Authentisierungsverfahren erfordert Verschlüsselung",
        "7.12": "ein Passwortwechsel ist nötig", "7.13": "Benutzerkonto gesperrt",
        "7.14": "Vertrauensbeziehung erforderlich", "7.15": "Priorität zu niedrig",
        "7.16": "Nachricht zu groß für die angegebene Priorität", "7.17": "Inhaber des Postfachs hat gewechselt",
        "7.18": "Inhaber der Domain hat gewechselt", "7.19": "RRVS-Prüfung nicht durchführbar",
        "7.20": "keine gültige DKIM-Signatur gefunden", "7.21": "keine akzeptable DKIM-Signatur gefunden",
        "7.22": "keine gültige DKIM-Signatur des Autors gefunden", "7.23": "SPF-Prüfung fehlgeschlagen",
        "7.24": "Fehler bei der SPF-Prüfung", "7.25": "Reverse-DNS-Prüfung fehlgeschlagen",
        "7.26": "mehrere Authentisierungsprüfungen fehlgeschlagen", "7.27": "die Absenderadresse hat einen Null-MX",
        "7.28": "Mailflut erkannt", "7.29": "ARC-Prüfung fehlgeschlagen", "7.30": "REQUIRETLS-Unterstützung nötig",
    },
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
    "de": {
        "SIZE": "größte Nachricht, die der Server annimmt (RFC 1870)",
        "PIPELINING": "Befehle dürfen gebündelt gesendet werden, ohne auf jede Antwort zu warten (RFC 2920)",
        "8BITMIME": "8-Bit-Nachrichtentexte werden angenommen (RFC 6152)",
        "CHUNKING": "Nachrichten dürfen mit BDAT in Stücken gesendet werden (RFC 3030)",
        "SMTPUTF8": "UTF-8-Adressen und -Kopfzeilen werden angenommen (RFC 6531)",
        "DSN": "Zustellbenachrichtigungen auf Wunsch (RFC 3461)",
        "STARTTLS": "die Sitzung kann auf TLS umgestellt werden (RFC 3207)",
        "AUTH": "der Client darf sich mit diesen SASL-Verfahren anmelden (RFC 4954)",
        "ENHANCEDSTATUSCODES": "Antworten tragen erweiterte Statuscodes wie 5.1.1 (RFC 2034)",
        "ETRN": "der Client darf den Server bitten, seine Warteschlange für eine Domain abzuarbeiten (RFC 1985)",
        "EXPN": "Verteilerlisten können aufgelöst werden (RFC 5321)",
        "VRFY": "Benutzernamen können überprüft werden (RFC 5321)",
        "HELP": "Hilfe ist verfügbar (RFC 5321)",
        "DELIVERBY": "der Client darf eine Frist für die Zustellung setzen (RFC 2852)",
        "VERB": "ausführliche Ausgabe (sendmail)",
        "BINARYMIME": "binäre Nachrichtentexte werden mit BDAT angenommen (RFC 3030)",
        "REQUIRETLS": "die Nachricht darf TLS auf jeder Etappe verlangen (RFC 8689)",
        "ATRN": "authentisiertes TURN: Client und Server können die Rollen tauschen (RFC 2645)",
        "ONEX": "eine Nachricht pro Verbindung (sendmail)",
        "MT-PRIORITY": "Prioritäten für die Übertragung (RFC 6710)",
        "FUTURERELEASE": "Nachrichten können zur späteren Freigabe zurückgehalten werden (RFC 4865)",
        "LIMITS": "der Server nennt seine Grenzen für Empfänger und Transaktionen (RFC 9422)",
        "MTRK": "Nachrichtenverfolgung (RFC 3885)",
        "NO-SOLICITING": "keine Werbung erwünscht (RFC 3865)",
        "XCLIENT": "ein vertrauenswürdiger Proxy darf die Angaben des echten Clients übergeben (Postfix)",
        "XFORWARD": "ein vertrauenswürdiger Proxy darf die Angaben des ursprünglichen Clients weiterreichen (Postfix)",
        "TURN": "Client und Server können die Rollen tauschen (veraltet, RFC 821)",
        "X-EXPS": "Authentisierungserweiterung von Microsoft Exchange",
        "X-LINK2STATE": "Routing-Erweiterung von Microsoft Exchange",
        "XEXCH50": "Nachrichteneigenschaften von Microsoft Exchange",
        "X-ANONYMOUSTLS": "anonymes TLS von Microsoft Exchange",
    },
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
    def generic(self) -> bool:
        """The enhanced code says nothing specific (``x.0.0``, ``x.7.0``: "other or undefined … status")."""
        return self.enhanced is not None and self.enhanced.rsplit(".", 1)[-1] == "0"

    @property
    def short(self) -> str:
        """The most specific meaning: the enhanced code's, else the code's, else its class.

        A generic enhanced code (``503 5.0.0``, ``454 4.7.0``) is less specific than the reply code it
        comes with, so then the reply code's meaning wins (``bad sequence of commands``)."""
        if self.generic and self.meaning:
            return self.meaning
        return self.enhanced_meaning or self.meaning or self.outcome


def is_defined_code(code: str) -> bool:
    """Whether RFC 5321 (or an SMTP extension) defines the reply code ``code``."""
    return code in DEFINED_CODES


def enhanced_code(text: str) -> str | None:
    """The enhanced status code (RFC 3463) a reply line begins with. Servers send the same few reply lines
    over and over (the report and the statistics both ask for every one): short lines are searched once."""
    return _known_enhanced_code(text) if len(text) <= _CACHED_LINE else _enhanced_code(text)


def _enhanced_code(text: str) -> str | None:
    match = ENHANCED_CODE.match(text.strip())
    return ".".join(match.groups()) if match else None


_known_enhanced_code = functools.lru_cache(maxsize=4096)(_enhanced_code)
_CACHED_LINE = 256
"""Reply lines up to this length are remembered by :data:`_known_enhanced_code`."""


def explain_reply(code: str, text: str = "", lang: str = "en") -> ReplyMeaning | None:
    """Explain an SMTP reply; None when ``code`` is not a three-digit reply code."""
    if len(code) != 3 or not code.isdigit():
        return None
    first, second = _table(FIRST_DIGIT, lang), _table(SECOND_DIGIT, lang)
    codes = _table(CODES, lang)
    enhanced = enhanced_code(text)
    enhanced_meaning = None
    if enhanced is not None:
        table = _table(ENHANCED, lang)
        klass, subject, detail = enhanced.split(".")
        enhanced_meaning = table.get(f"{subject}.{detail}") or table.get(f"{subject}.0")
        if enhanced_meaning is None:
            enhanced_meaning = _table(ENHANCED_CLASS, lang).get(klass)
    return ReplyMeaning(code, first.get(code[0], "unknown class"), second.get(code[1], "unknown category"),
                        codes.get(code), enhanced, enhanced_meaning)


def explain_keyword(line: str, lang: str = "en") -> tuple[str, str | None]:
    """An EHLO line (``SIZE 10240000``, ``AUTH PLAIN LOGIN``) → (keyword, what it means, with the value)."""
    keyword, _, value = line.strip().partition(" ")
    keyword = keyword.upper()
    meaning = _table(EHLO_KEYWORDS, lang).get(keyword)
    if meaning is None and keyword.startswith("X"):
        meaning = "private Erweiterung" if lang == "de" else "private extension"
    if meaning is not None and value:
        detail = None
        size = parse_count(value) if keyword == "SIZE" else None
        if size is not None:
            detail = _size(size, lang) if size else ("keine feste Grenze" if lang == "de" else "no fixed limit")
        elif keyword == "AUTH":
            detail = value
        if detail is not None:
            head, ref, tail = meaning.partition(" (")
            meaning = f"{head}: {detail}" + (f" ({tail}" if ref else "")
    return keyword, meaning


def _table(tables: dict[str, dict[str, str]], lang: str) -> dict[str, str]:
    """The table of ``lang`` with English behind it for the entries not translated yet."""
    english = tables["en"]
    own = tables.get(lang)
    return english if own is None or own is english else {**english, **own}


def _size(n: int, lang: str = "en") -> str:
    """``9.8 MiB``; German writes the decimal comma (``9,8 MiB``), as the views' other numbers do."""
    value = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            if unit == "bytes":
                return f"{n} Bytes" if lang == "de" else f"{n} bytes"
            shown = f"{value:,.1f}"
            return (shown.translate(_GERMAN_SEPARATORS) if lang == "de" else shown) + f" {unit}"
        value /= 1024
    return str(n)  # pragma: no cover


_GERMAN_SEPARATORS = str.maketrans(",.", ".,")
