"""The catalogues: every English sentence has its German twin, with the same placeholders.

A missing key would silently fall back to English in the middle of a German table, and a
placeholder the translation does not use (or invents) would print a ``?``: both fail here.
"""

from __future__ import annotations

import re
from string import Formatter

import pytest

from mailtrace import headerinfo
from mailtrace.render import catalog
from mailtrace.render.catalog_de import DE

TRANSLITERATIONS = re.compile(
    r"(?i)\b(fuer|ueber|zurueck|groess|schliess|loesch|pruef|aender|praeferenz|schluessel|begruess|uebertrag"
    r"|gespraech|naechst|moeglich|faehig|laesst|hoert|fuehrt|luecke|stoer)")
"""German written without its letters (ae/oe/ue/ss for ä/ö/ü/ß) — the catalogue must not do that."""


def _forms(message: catalog.Message) -> tuple[str, ...]:
    return message if isinstance(message, tuple) else (message,)


def _fields(message: catalog.Message) -> set[str]:
    return {name for form in _forms(message) for _, name, _, _ in Formatter().parse(form) if name}


def test_german_has_every_english_key_and_nothing_else() -> None:
    assert sorted(set(catalog.EN) - set(DE)) == []
    assert sorted(set(DE) - set(catalog.EN)) == []
    assert catalog.CATALOGS["de"] is DE


@pytest.mark.parametrize("key", sorted(catalog.EN))
def test_placeholders_and_plural_forms_match(key: str) -> None:
    english, german = catalog.EN[key], DE[key]
    assert _fields(german) == _fields(english), key
    if isinstance(english, tuple):
        assert isinstance(german, tuple) and len(german) == 2, key


def test_german_is_written_with_umlauts() -> None:
    offenders = {k: v for k, v in DE.items() if any(TRANSLITERATIONS.search(form) for form in _forms(v))}
    assert offenders == {}
    assert any("ü" in form for v in DE.values() for form in _forms(v))
    assert any("ß" in form for v in DE.values() for form in _forms(v))


def test_header_meanings_have_a_german_twin() -> None:
    assert set(headerinfo.GERMAN) == set(headerinfo.ENGLISH)
    assert headerinfo.explain("Received", "de").startswith("Trace-Feld")
    assert headerinfo.explain("X-Custom", "de") == "private Erweiterung (X-Header)"
    assert not any(TRANSLITERATIONS.search(v) for v in headerinfo.GERMAN.values())


def test_the_lectures_own_captions_are_in_the_catalogue() -> None:
    values = {form for v in DE.values() for form in _forms(v)}
    for caption in ("Absender wird übertragen und akzeptiert", "Empfänger wird übertragen und akzeptiert",
                    "E-Mail-Übertragung", "Einleitung der E-Mail-Übertragung (DATA / {status})",
                    "Positive Beendigung der E-Mail-Übertragung (QUIT / {status})",
                    "Positive Beendigung der Kommunikation (QUIT / {status})"):
        assert caption in values
    assert any(v.startswith("Aufbau (TCP) vom") for v in values)
    assert any(v.startswith("Abbau (TCP") for v in values)
    assert any(v.startswith("Identifikation:") for v in values)
    assert any(v.startswith("Authentikation:") for v in values)
    assert any(v.startswith("Abruf des Status:") for v in values)
    assert any(v.startswith("Herunterladen der E-Mail") for v in values)
    assert catalog.text("pop3.retr.ok", "de", msg=1, size=956) == "Herunterladen der E-Mail 1 (RETR, 956 Bytes)"
    assert catalog.text("ui.messages", "de", n=2) == "2 E-Mails"
