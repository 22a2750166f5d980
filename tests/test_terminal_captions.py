"""Captions over every real capture we have: complete, in row order, and ready for a translation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import shared_root
from term_render import analyze

from mailtrace.render import catalog
from mailtrace.render.captions import steps
from mailtrace.session import Session

KEY_LIKE = re.compile(r"^[a-z0-9]+(\.[a-z0-9_]+)+$")


def all_sessions() -> list[Session]:
    root = shared_root()
    files = sorted((root / "samples-src" / "captures").glob("*.pcap"))
    files += sorted(p for p in (root / "corpus").glob("*/*/*") if p.is_file() and p.suffix != ".json")
    if not files:
        pytest.skip(f"no shared captures under {root} (set MAILTRACE_SHARED)")
    sessions: list[Session] = []
    for path in files:
        sessions += analyze(path)[0]
    return sessions


@pytest.fixture(scope="module")
def sessions() -> list[Session]:
    return all_sessions()


def test_steps_cover_every_row_once_in_order(sessions: list[Session]) -> None:
    assert len(sessions) > 100
    for session in sessions:
        found = steps(session)
        assert [row for step in found for row in step.rows] == session.rows, session.file
        assert all(step.rows for step in found)


def test_every_caption_gets_all_its_values(sessions: list[Session], monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(self: object, key: str) -> str:
        raise KeyError(key)

    monkeypatch.setattr(catalog._Lenient, "__missing__", missing)
    keys = set()
    for session in sessions:
        for step in steps(session):
            keys.add(step.key)
            assert step.tone in ("info", "ok", "warn", "fail")
            for part in step.caption.split("; "):
                assert not KEY_LIKE.match(part), (session.file, step.caption)
    assert {
        "setup",
        "greeting.ok",
        "smtp.ehlo.ok",
        "smtp.mail.ok",
        "smtp.rcpt.ok",
        "smtp.data.ok",
        "smtp.body",
        "smtp.dot.ok",
        "smtp.quit.ok",
        "tcp.fin",
        "auth.ok",
        "tls.handshake",
        "tls.opaque",
    } <= keys
    assert keys - set(catalog.EN) <= {"note"}


def test_a_translation_is_one_more_catalogue(captures: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    session = analyze(captures / "smtp-relay-seed-story.pcap")[0][0]
    monkeypatch.setitem(
        catalog.CATALOGS,
        "de",
        {
            "smtp.mail.ok": "Absender übertragen und akzeptiert",
            "greeting.ok": "der Server ist gesprächsbereit ({status})",
        },
    )
    german = [s.caption for s in steps(session, lang="de")]
    english = [s.caption for s in steps(session)]
    assert german[1] == "der Server ist gesprächsbereit (220)"
    assert german[3] == "Absender übertragen und akzeptiert"
    assert german[4] == english[4] == "recipient transferred and accepted"  # not translated yet: English
    assert [s.caption for s in steps(session, lang="xx")] == english


def test_plural_forms() -> None:
    assert catalog.text("ui.messages", n=1) == "1 message"
    assert catalog.text("ui.messages", n=0) == "0 messages"
    assert (
        catalog.text("gap", nbytes=5, n=5, side="client")
        == "5 bytes from the client are missing from the capture"
    )
    assert catalog.fields("setup") == {"role", "client", "flags"}
