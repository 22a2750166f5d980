"""An IMAP BYE no LOGOUT asked for: the caption and the row say the server closes the session, with the
server's reason after a colon only when it gives one (a bare ``* BYE`` once left a dangling colon)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailtrace.model import Note
from mailtrace.render.captions import steps
from mailtrace.session import Session
from tests.pcapgen import Capture, Tcp
from tests.term_render import render
from tests.test_captions_audit import Script, sessions_of

LOGIN: Script = [("s", b"* OK IMAP ready\r\n"), ("c", b"a1 LOGIN bob secret\r\n"), ("s", b"a1 OK done\r\n")]


def capture(tmp_path: Path, bye: bytes) -> Path:
    cap = Capture()
    conv = Tcp(cap, server=("10.0.0.2", 143)).handshake()
    for who, data in [*LOGIN, ("s", bye)]:
        (conv.c if who == "c" else conv.s)(data)
    conv.fin()
    return cap.write(tmp_path / "bye.pcap")


def session_of(path: Path) -> Session:
    [session] = sessions_of(path)
    return session


def bye_step(session: Session, lang: str) -> tuple[str, str, list[int]]:
    [step] = [s for s in steps(session, lang=lang) if s.key.startswith("imap.bye")]
    return step.key, step.caption, [r.frame for r in step.rows]


@pytest.mark.parametrize("bye", [b"* BYE\r\n", b"* BYE \r\n"])
def test_a_bare_bye_has_no_dangling_colon(tmp_path: Path, bye: bytes) -> None:
    path = capture(tmp_path, bye)
    session = session_of(path)
    assert [n.text for r in session.rows for n in r.events or () if isinstance(n, Note)] == [
        "the server closes the session"]
    assert bye_step(session, "en") == ("imap.bye", "the server closes the session", [7])
    assert bye_step(session, "de") == ("imap.bye", "der Server beendet die Sitzung", [7])
    for lang in ("en", "de"):
        table = render("table", path, lang=lang)
        assert "the server closes the session" in table or "der Server beendet die Sitzung" in table
        assert "Sitzung:" not in table and "session:" not in table, table
        assert not any(line.rstrip().endswith(":") for line in table.splitlines() if "BYE" in line), table


@pytest.mark.parametrize(("bye", "reason"), [(b"* BYE shutting down\r\n", "shutting down"),
                                            (b"* BYE [UNAVAILABLE]\r\n", "[UNAVAILABLE]")])
def test_a_bye_with_a_reason_names_it(tmp_path: Path, bye: bytes, reason: str) -> None:
    path = capture(tmp_path, bye)
    session = session_of(path)
    assert bye_step(session, "en") == ("imap.bye.reason", f"the server closes the session: {reason}", [7])
    assert bye_step(session, "de") == ("imap.bye.reason", f"der Server beendet die Sitzung: {reason}", [7])
    assert f"S: {bye.decode().strip()} | the server closes the session: {reason}" in render("table", path)


def test_a_bye_after_logout_is_no_note(tmp_path: Path) -> None:
    cap = Capture()
    conv = Tcp(cap, server=("10.0.0.2", 143)).handshake()
    for who, data in [*LOGIN, ("c", b"a2 LOGOUT\r\n"), ("s", b"* BYE\r\na2 OK done\r\n")]:
        (conv.c if who == "c" else conv.s)(data)
    conv.fin()
    session = session_of(cap.write(tmp_path / "logout.pcap"))
    assert [s.key for s in steps(session)][-2:] == ["imap.logout.ok", "tcp.fin"]
