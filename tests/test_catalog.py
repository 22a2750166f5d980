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


def test_every_defect_the_summarizer_names_has_words_in_both_languages() -> None:
    """Each defect mime.py can add (a stdlib defect name or one of its own fixed phrases) is in the
    catalogue, so a German view never shows an English phrase for it."""
    from pathlib import Path

    import mailtrace.mime

    source = Path(mailtrace.mime.__file__).read_text(encoding="utf-8")
    named = set(re.findall(r'defects\.(?:append|insert)\((?:0, )?"([^"{]+)"\)', source))
    named |= set(re.findall(r'\bemail_errors\.([A-Z]\w+Defect)\b', source)) - {"MessageDefect"}
    assert {"StartBoundaryNotFoundDefect", "line too long", "nesting too deep"} <= named
    for name in named:
        assert "defect." + name in catalog.EN and "defect." + name in DE, name


def test_defects_read_in_german() -> None:
    from mailtrace.mime import long_lines_defect
    from mailtrace.render.message import defect_text

    assert defect_text("InvalidBase64PaddingDefect (part 1.2)", "de") == (
        "InvalidBase64PaddingDefect (Teil 1.2): das Base64-Padding ist falsch: die letzten Bytes sind womöglich "
        "beschädigt")
    assert defect_text("unknown charset 'x-foo' (part 2)", "de") == "unbekannter Zeichensatz 'x-foo' (Teil 2)"
    assert defect_text(long_lines_defect(1234, 12345), "de") == "1.234 Zeilen über 998 Zeichen (die längste 12.345)"
    assert defect_text(long_lines_defect(1, 5068)) == "1 line over 998 characters (longest 5,068)"
    assert defect_text("nesting too deep", "de") == "Verschachtelung zu tief"
    assert defect_text("\x1b[31mred", "de") == "\\x1b[31mred"  # a phrase nobody knows is only made safe


def test_numbers_are_written_as_the_language_writes_them() -> None:
    """German groups thousands with a dot and writes decimals with a comma; "28,450 Bytes" would read as
    twenty-eight bytes and a fraction."""
    assert catalog.text("msg.bytes", "de", n=28450) == "28.450 Bytes"
    assert catalog.text("msg.bytes", "en", n=28450) == "28,450 bytes"
    assert catalog.text("msg.bytes", "de", n=1) == "1 Byte"  # the plural form is chosen from the number
    assert catalog.fmt_num(1234.5, "de") == "1.234,5" and catalog.fmt_num(1234.5) == "1,234.5"
    assert catalog.localize_number("0.093", "de") == "0,093" and catalog.localize_number("0.093") == "0.093"
