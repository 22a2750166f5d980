"""What common header fields mean, one plain sentence each, for the message view.

The sentences are the kind a lecture on RFC 5322 (and its MIME, authentication and mailing-list
companions) gives. They live in one catalogue per language, keyed by the lower-cased field name;
another language is added by putting its catalogue into :data:`CATALOGUES` (missing entries fall
back to English). Keys ending in ``*`` match by prefix (``list-*``); ``x-*`` and ``*`` are the
fallbacks for private and unknown fields.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["CATALOGUES", "ENGLISH", "explain"]

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

CATALOGUES: dict[str, Mapping[str, str]] = {"en": ENGLISH}
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
    return ENGLISH["*"]


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
