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


def test_fetch_line_comes_before_its_literal_on_the_row(tmp_path: Path) -> None:
    """`* 1 FETCH (BODY[TEXT] {n}` and the literal's first bytes share a segment: the row reads in wire
    order, the response line first, then the literal's bytes, then the tagged OK."""
    from tests.pcapgen import Capture, Tcp
    from tests.term_render import render

    text = b"".join(b"line %04d of the body text\r\n" % i for i in range(200))  # 5,600 bytes
    cap = Capture()
    t = Tcp(cap, server=("10.0.0.2", 143)).handshake()
    t.s(b"* OK ready\r\n").c(b"a1 LOGIN bob pw\r\n").s(b"a1 OK done\r\n").c(b"a2 SELECT INBOX\r\n")
    t.s(b"* 1 EXISTS\r\na2 OK [READ-WRITE] done\r\n").c(b"a3 FETCH 1 BODY[TEXT]\r\n")
    line = b"* 1 FETCH (BODY[TEXT] {%d}\r\n" % len(text)
    t.s(line + text[:1000]).s(text[1000:3000]).s(text[3000:] + b")\r\na3 OK done\r\n").fin()
    out = render("table", cap.write(tmp_path / "fetch.pcap"), width=None, context=False)
    row = next(r for r in out.splitlines() if "FETCH (BODY[TEXT]" in r and "S: " in r)
    info = row.split("S: ", 1)[1]
    assert info.index("* 1 FETCH (BODY[TEXT] {5600})") < info.index("5,600 bytes") < info.index("a3 OK done")
