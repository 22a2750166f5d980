"""What common header fields mean, one plain sentence each, for the message view.

The sentences are the kind a lecture on RFC 5322 (and its MIME, authentication and mailing-list
companions) gives. They live in one catalogue per language, keyed by the lower-cased field name;
another language is added by putting its catalogue into :data:`CATALOGUES` (missing entries fall
back to English). Keys ending in ``*`` match by prefix (``list-*``); ``x-*`` and ``*`` are the
fallbacks for private and unknown fields.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["CATALOGUES", "ENGLISH", "GERMAN", "explain"]

ENGLISH: Mapping[str, str] = {
    # originator and destination (RFC 5322 3.6.2, 3.6.3)
    "from": "Author of the message: who wrote it (shown to the reader, not checked by SMTP).",
    "sender": "Who actually sent the message for the author (a secretary, a list), when not the author.",
    "reply-to": "Where replies should go instead of the From address.",
    "to": "Primary recipients, as the author addressed them (the envelope RCPT TO decides delivery).",
    "cc": "Carbon copy: secondary recipients, visible to everyone.",
    "bcc": "Blind carbon copy: recipients hidden from the others; normally removed before sending.",
    "return-path": "Envelope sender (MAIL FROM) recorded at final delivery: where bounces go.",
    # trace (RFC 5321 4.4)
    "received": "Trace field added by each relaying server; read them bottom-up to follow the path.",
    # date and identification (RFC 5322 3.6.1, 3.6.4)
    "date": "When the author's software says the message was written (origination date).",
    "message-id": "Unique identifier of this message, assigned by the sender's software.",
    "in-reply-to": "Message-ID of the message this one replies to.",
    "references": "Message-IDs of the earlier messages in the thread, oldest first: used to build threads.",
    # informational (RFC 5322 3.6.5)
    "subject": "Short topic of the message, written by the author.",
    "comments": "Free-text remarks about the message.",
    "keywords": "Comma-separated keywords or phrases describing the content.",
    # MIME (RFC 2045, 2183)
    "mime-version": "Declares the message uses MIME (always 1.0): typed bodies, parts and encodings.",
    "content-type": "What the body is (text/plain, multipart/mixed, ...) plus parameters like charset.",
    "content-transfer-encoding": "How the body was made safe to send: 7bit, 8bit, quoted-printable, base64.",
    "content-id": "Identifier of a body part, so other parts can refer to it (e.g. inline images cid:...).",
    "content-description": "Human-readable description of a body part.",
    "content-disposition": "Whether a part is shown inline or offered as an attachment, and its file name.",
    "content-language": "Language(s) of the content.",
    # authentication (RFC 8601, 7208, 6376, 8617)
    "authentication-results": "Verdicts of a receiving server's checks (SPF, DKIM, DMARC) for this message.",
    "received-spf": "Result of the SPF check: whether the sending host may send for the envelope domain.",
    "dkim-signature": "Cryptographic signature of the sending domain over chosen headers and the body.",
    "arc-seal": "ARC: a forwarder's seal over the ARC records, so later hops can trust earlier checks.",
    "arc-message-signature": "ARC: a forwarder's DKIM-like signature of the message as it received it.",
    "arc-authentication-results": "ARC: the authentication results a forwarder saw, kept for later hops.",
    "arc-*": "Authenticated Received Chain field: evidence from forwarders about earlier authentication.",
    # mailing lists (RFC 2369, 2919, 8058)
    "list-id": "Identifier of the mailing list that distributed the message.",
    "list-unsubscribe": "How to leave the mailing list (mailto: or https: link).",
    "list-unsubscribe-post": "Tells mail clients a one-click unsubscribe via HTTPS POST is supported.",
    "list-subscribe": "How to join the mailing list.",
    "list-post": "Address for posting to the mailing list.",
    "list-help": "Where to get help about the mailing list.",
    "list-owner": "Contact address of the list's owner.",
    "list-archive": "Where the list's archive can be read.",
    "list-*": "Mailing-list field: information or commands for the list that distributed the message.",
    "precedence": "Non-standard hint like bulk or list: tells auto-responders not to answer.",
    # delivery and clients
    "delivered-to": "Mailbox the message was delivered to (added at delivery; shows aliases and forwarding).",
    "user-agent": "Mail program that composed the message.",
    "x-mailer": "Mail program that composed the message (older, private-extension form of User-Agent).",
    "x-originating-ip": "Address of the client that submitted the message, added by some webmail services.",
    "auto-submitted": "Marks automatically generated messages (auto-replied, auto-generated) to avoid loops.",
    "disposition-notification-to": "Asks the recipient's client for a read receipt, sent to this address.",
    "importance": "Non-standard priority hint (high, normal, low) shown by some clients.",
    "x-priority": "Non-standard priority hint (1 = highest, 5 = lowest) shown by some clients.",
    "x-spam-status": "Verdict of a spam filter (usually SpamAssassin) with its score and rules hit.",
    "resent-from": "Author of a re-sent (forwarded as-is) copy; Resent-* fields describe that resending.",
    "resent-*": "Describes a resending of the message, like the matching field without Resent-.",
    "x-*": "private extension header (X-)",
    "*": "header not in the catalogue",
}
"""The English catalogue."""

GERMAN: Mapping[str, str] = {
    # Absender und Empfänger (RFC 5322 3.6.2, 3.6.3)
    "from": "Verfasser der Nachricht: wer sie geschrieben hat (wird angezeigt, von SMTP nicht geprüft).",
    "sender": "Wer die Nachricht tatsächlich für den Verfasser abgeschickt hat (ein Sekretariat, eine Liste), "
              "wenn nicht der Verfasser selbst.",
    "reply-to": "Wohin Antworten gehen sollen, statt an die From-Adresse.",
    "to": "Hauptempfänger, wie der Verfasser sie adressiert hat (über die Zustellung entscheidet RCPT TO im "
          "Umschlag).",
    "cc": "Kopie (Carbon Copy): weitere Empfänger, für alle sichtbar.",
    "bcc": "Blindkopie: vor den anderen verborgene Empfänger; wird vor dem Versand normalerweise entfernt.",
    "return-path": "Umschlag-Absender (MAIL FROM), bei der endgültigen Zustellung festgehalten: dorthin gehen "
                   "Unzustellbarkeitsmeldungen.",
    # Trace (RFC 5321 4.4)
    "received": "Trace-Feld, das jeder weiterleitende Server hinzufügt; von unten nach oben gelesen zeigt es "
                "den Weg.",
    # Datum und Kennung (RFC 5322 3.6.1, 3.6.4)
    "date": "Wann die Nachricht laut der Software des Verfassers geschrieben wurde (Ursprungsdatum).",
    "message-id": "Eindeutige Kennung dieser Nachricht, vergeben von der Software des Absenders.",
    "in-reply-to": "Message-ID der Nachricht, auf die diese antwortet.",
    "references": "Message-IDs der früheren Nachrichten des Gesprächsfadens, die älteste zuerst: daraus "
                  "entstehen Threads.",
    # informativ (RFC 5322 3.6.5)
    "subject": "Kurzes Thema der Nachricht, vom Verfasser geschrieben.",
    "comments": "Freitext-Bemerkungen zur Nachricht.",
    "keywords": "Durch Kommas getrennte Stichwörter oder Wendungen, die den Inhalt beschreiben.",
    # MIME (RFC 2045, 2183)
    "mime-version": "Erklärt, dass die Nachricht MIME verwendet (immer 1.0): typisierte Inhalte, Teile und "
                    "Kodierungen.",
    "content-type": "Was der Inhalt ist (text/plain, multipart/mixed, …), dazu Parameter wie charset.",
    "content-transfer-encoding": "Wie der Inhalt versandfähig gemacht wurde: 7bit, 8bit, quoted-printable, "
                                 "base64.",
    "content-id": "Kennung eines Teils, damit andere Teile darauf verweisen können (z. B. eingebettete Bilder "
                  "cid:…).",
    "content-description": "Für Menschen lesbare Beschreibung eines Teils.",
    "content-disposition": "Ob ein Teil direkt angezeigt oder als Anhang angeboten wird, und sein Dateiname.",
    "content-language": "Sprache(n) des Inhalts.",
    # Authentifizierung (RFC 8601, 7208, 6376, 8617)
    "authentication-results": "Ergebnisse der Prüfungen eines empfangenden Servers (SPF, DKIM, DMARC) für "
                              "diese Nachricht.",
    "received-spf": "Ergebnis der SPF-Prüfung: ob der sendende Host für die Umschlag-Domain senden darf.",
    "dkim-signature": "Kryptografische Signatur der sendenden Domain über ausgewählte Header und den Inhalt.",
    "arc-seal": "ARC: das Siegel eines Weiterleiters über die ARC-Einträge, damit spätere Stationen früheren "
                "Prüfungen trauen können.",
    "arc-message-signature": "ARC: DKIM-artige Signatur eines Weiterleiters über die Nachricht, wie er sie "
                             "erhielt.",
    "arc-authentication-results": "ARC: die Prüfergebnisse, die ein Weiterleiter sah, für spätere Stationen "
                                  "aufbewahrt.",
    "arc-*": "Feld der Authenticated Received Chain: Belege von Weiterleitern über frühere Prüfungen.",
    # Mailinglisten (RFC 2369, 2919, 8058)
    "list-id": "Kennung der Mailingliste, die die Nachricht verteilt hat.",
    "list-unsubscribe": "Wie man die Mailingliste verlässt (mailto:- oder https:-Link).",
    "list-unsubscribe-post": "Zeigt Mailprogrammen, dass Abmelden mit einem Klick per HTTPS-POST geht.",
    "list-subscribe": "Wie man der Mailingliste beitritt.",
    "list-post": "Adresse für Beiträge an die Mailingliste.",
    "list-help": "Wo es Hilfe zur Mailingliste gibt.",
    "list-owner": "Kontaktadresse der Betreiber der Liste.",
    "list-archive": "Wo das Archiv der Liste zu lesen ist.",
    "list-*": "Feld einer Mailingliste: Angaben oder Befehle der Liste, die die Nachricht verteilt hat.",
    "precedence": "Nicht standardisierter Hinweis wie bulk oder list: Abwesenheitsnotizen sollen nicht "
                  "antworten.",
    # Zustellung und Programme
    "delivered-to": "Postfach, in das die Nachricht zugestellt wurde (bei der Zustellung ergänzt; zeigt Aliase "
                    "und Weiterleitungen).",
    "user-agent": "Mailprogramm, mit dem die Nachricht verfasst wurde.",
    "x-mailer": "Mailprogramm, mit dem die Nachricht verfasst wurde (ältere, private Form von User-Agent).",
    "x-originating-ip": "Adresse des Clients, der die Nachricht eingeliefert hat; von manchen Webmail-Diensten "
                        "ergänzt.",
    "auto-submitted": "Kennzeichnet automatisch erzeugte Nachrichten (auto-replied, auto-generated), um "
                      "Schleifen zu vermeiden.",
    "disposition-notification-to": "Bittet das Mailprogramm des Empfängers um eine Lesebestätigung an diese "
                                   "Adresse.",
    "importance": "Nicht standardisierter Hinweis auf die Wichtigkeit (high, normal, low), von manchen "
                  "Programmen angezeigt.",
    "x-priority": "Nicht standardisierter Hinweis auf die Priorität (1 = höchste, 5 = niedrigste), von manchen "
                  "Programmen angezeigt.",
    "x-spam-status": "Urteil eines Spamfilters (meist SpamAssassin) mit Punktzahl und getroffenen Regeln.",
    "resent-from": "Verfasser einer erneut versandten (unverändert weitergeleiteten) Kopie; Resent-*-Felder "
                   "beschreiben diesen Versand.",
    "resent-*": "Beschreibt einen erneuten Versand der Nachricht, wie das gleichnamige Feld ohne Resent-.",
    "x-*": "private Erweiterung (X-Header)",
    "*": "Header nicht im Katalog",
}
"""The German catalogue (same keys as :data:`ENGLISH`; ``tests/test_catalog.py`` checks that)."""

CATALOGUES: dict[str, Mapping[str, str]] = {"en": ENGLISH, "de": GERMAN}
"""Language code to catalogue; add e.g. ``CATALOGUES["de"] = GERMAN`` to offer another language."""


def explain(name: str, lang: str = "en") -> str:
    """One sentence saying what the header field ``name`` is for, in ``lang`` (English fallback)."""
    key = name.strip().lower()
    for catalogue in (CATALOGUES.get(lang), ENGLISH):
        if catalogue is None:
            continue
        text = _lookup(catalogue, key)
        if text is not None:
            return text
    return (CATALOGUES.get(lang) or ENGLISH).get("*", ENGLISH["*"])


def _lookup(catalogue: Mapping[str, str], key: str) -> str | None:
    if key in catalogue:
        return catalogue[key]
    best = None
    for pattern in catalogue:
        wildcard = pattern.endswith("*") and len(pattern) > 1 and key.startswith(pattern[:-1])
        if wildcard and (best is None or len(pattern) > len(best)):
            best = pattern
    if best is not None:
        return catalogue[best]
    return catalogue.get("*")
