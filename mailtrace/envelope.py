"""Envelope versus header: who the protocol said the message is from and for, against what it says itself.

SMTP delivers to the envelope (``MAIL FROM`` and every accepted ``RCPT TO``); the From, To and Cc
header fields are what the author wrote, and nothing forces the two to agree. A recipient in the
envelope but in no To/Cc field is a blind copy (Bcc); an address in To/Cc that this transaction does
not carry was delivered by another transaction, or not at all. POP3 and IMAP show a message after
delivery, so the envelope is what the delivering server recorded: ``Return-Path`` (the MAIL FROM)
and ``Delivered-To`` (the mailbox).

:func:`compare_envelope` is pure: it reads a :class:`~mailtrace.session.Session` (for the SMTP
transaction of the message) and the message's header fields. It never raises on message content.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from email import utils as email_utils
from typing import Any

from mailtrace.render.catalog import Words, words
from mailtrace.session import MessageRecord, Session

__all__ = ["EnvelopeView", "Recipient", "compare_envelope", "smtp_transaction"]

_MAX_VALUE = 64 * 1024
"""Header text looked at per field (address parsing of huge hostile values is slow and pointless)."""


@dataclass(frozen=True, slots=True)
class Recipient:
    """One address seen in the envelope, in the header, or in both."""

    address: str
    """The addr-spec as first seen (envelope spelling preferred)."""
    in_envelope: bool
    """Named in a RCPT TO of this message's transaction (or in Delivered-To after delivery)."""
    reply: int | None
    """The server's reply to that RCPT TO (None when unknown or not in the envelope)."""
    accepted: bool | None
    """The RCPT TO was accepted (2xx); None when not in the envelope or unknown."""
    header_fields: tuple[str, ...]
    """Which of To, Cc, Bcc name the address (empty: none)."""
    note: str
    """What the comparison means: ``Bcc (envelope only)``, ``rejected by the server``, ..."""


@dataclass(frozen=True, slots=True)
class EnvelopeView:
    """The comparison for one message."""

    source: str
    """``smtp`` (the session's MAIL/RCPT), ``delivery`` (Return-Path/Delivered-To headers) or ``none``."""
    mail_from: str | None
    """MAIL FROM (``""`` is the null sender of bounces), or Return-Path after delivery."""
    header_from: tuple[str, ...]
    """addr-specs of the From field."""
    sender: str | None
    """addr-spec of the Sender field, if any."""
    from_matches: bool | None
    """MAIL FROM equals From (or Sender); None when either is unknown."""
    recipients: tuple[Recipient, ...]
    """Envelope recipients first (in RCPT order), then header-only addresses."""
    notes: tuple[str, ...]
    """Facts about the transaction worth a line (DATA refused, no transaction found, ...)."""

    @property
    def bcc(self) -> tuple[str, ...]:
        """Envelope recipients that no To/Cc field names."""
        return tuple(r.address for r in self.recipients
                     if r.in_envelope and r.accepted is not False and not {"To", "Cc"} & set(r.header_fields))


def smtp_transaction(session: Session, record: MessageRecord) -> dict[str, Any] | None:
    """The SMTP transaction (as in the JSON report) that carried ``record``, or None."""
    if session.protocol != "smtp":
        return None
    transactions = session.record.get("transactions")
    if not isinstance(transactions, list):
        return None
    for t in transactions:
        if isinstance(t, dict) and t.get("message") == record.index:
            return t
    return None


def _values(record: MessageRecord, name: str) -> list[str]:
    return [" ".join(v[:_MAX_VALUE].split()) for v in record.summary.header_values(name)]


def _addr_specs(values: Iterable[str]) -> list[str]:
    out: list[str] = []
    try:
        pairs = email_utils.getaddresses(list(values))
    except Exception:  # the stdlib address parser on hostile input: show nothing rather than fail
        return out
    for _name, raw in pairs:
        addr = raw.strip()
        if addr and addr not in out:
            out.append(addr)
    return out


def _key(address: str) -> str:
    return address.strip().strip("<>").casefold()


def compare_envelope(session: Session, record: MessageRecord, lang: str = "en") -> EnvelopeView:
    """Envelope against header for one message of a session (notes in ``lang``)."""
    t = words(lang, "env.")
    header_from = tuple(_addr_specs(_values(record, "from")))
    senders = _addr_specs(_values(record, "sender"))
    sender = senders[0] if senders else None
    fields: dict[str, list[str]] = {}
    order: list[str] = []
    for name in ("To", "Cc", "Bcc"):
        for addr in _addr_specs(_values(record, name.lower())):
            key = _key(addr)
            if key not in fields:
                fields[key] = []
                order.append(addr)
            if name not in fields[key]:
                fields[key].append(name)
    notes: list[str] = []
    transaction = smtp_transaction(session, record)
    envelope: list[tuple[str, int | None, bool | None]] = []
    if transaction is not None:
        source = "smtp"
        mail_from: str | None = str(transaction.get("mail_from") or "")
        if transaction.get("mail_lost"):
            mail_from = None  # not the null sender: the capture lost the MAIL command
            notes.append(t("mail_lost"))
        replies = list(transaction.get("rcpt_replies") or [])
        accepted = {_key(a) for a in transaction.get("accepted") or []}
        for i, addr in enumerate(transaction.get("rcpt_to") or []):
            reply = replies[i] if i < len(replies) and isinstance(replies[i], int) else None
            ok = (200 <= reply < 300) if reply is not None else (True if _key(addr) in accepted else None)
            envelope.append((str(addr), reply, ok))
        data_reply = transaction.get("data_reply")
        if isinstance(data_reply, int) and not 200 <= data_reply < 300:
            notes.append(t("refused", reply=data_reply))
        elif data_reply is None:
            notes.append(t("no_reply"))
    elif session.protocol == "smtp":
        source = "none"
        mail_from = None
        notes.append(t("no_transaction"))
    else:
        returns = _addr_specs(_values(record, "return-path"))
        delivered = _addr_specs(_values(record, "delivered-to"))
        source = "delivery" if returns or delivered else "none"
        mail_from = returns[0] if returns else None
        envelope = [(addr, None, None) for addr in delivered]
        what = t("append" if record.origin == "imap-append" else "delivered_before")
        notes.append(t("no_envelope", protocol=session.protocol.upper(), what=what)
                     + t("recorded" if source == "delivery" else "not_recorded"))
    recipients: list[Recipient] = []
    seen: set[str] = set()
    for addr, reply, ok in envelope:
        key = _key(addr)
        if key in seen:
            continue
        seen.add(key)
        named = tuple(fields.get(key, ()))
        recipients.append(Recipient(address=addr, in_envelope=True, reply=reply, accepted=ok,
                                    header_fields=named, note=_note(source, ok, named, t)))
    for addr in order:
        key = _key(addr)
        if key in seen:
            continue
        seen.add(key)
        note = (t("header_only_smtp") if source == "smtp"
                else t("header_only") if source == "delivery" and envelope else "")
        recipients.append(Recipient(address=addr, in_envelope=False, reply=None, accepted=None,
                                    header_fields=tuple(fields[key]), note=note))
    matches = None
    if mail_from is not None and header_from:
        candidates = {_key(a) for a in header_from} | ({_key(sender)} if sender else set())
        matches = _key(mail_from) in candidates
    if mail_from == "" and source == "smtp":
        notes.append(t("null_sender"))
    return EnvelopeView(source=source, mail_from=mail_from, header_from=header_from, sender=sender,
                        from_matches=matches, recipients=tuple(recipients), notes=tuple(notes))


def _note(source: str, accepted: bool | None, named: tuple[str, ...], t: Words) -> str:
    visible = bool({"To", "Cc"} & set(named))
    if accepted is False:
        return t("rejected") + ("" if visible else t("rejected_hidden"))
    if visible:
        return ""
    if source == "delivery":
        return t("delivered_hidden")
    if "Bcc" in named:
        return t("bcc_left")
    return t("bcc")
