"""Captions that say what happened: IMAP FETCH kinds, the RFC 1939 POP3 states, APOP is no password."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailtrace.capture.reader import open_capture
from mailtrace.commands.common import build_config
from mailtrace.pipeline import Analyzer
from mailtrace.render.captions import Step, steps
from mailtrace.render.catalog import CATALOGS
from mailtrace.session import Session
from tests.pcapgen import Capture, Tcp

Script = list[tuple[str, bytes]]


def sessions_of(path: Path) -> list[Session]:
    return list(Analyzer(build_config()).run([open_capture(str(path))]))


def conversation(tmp_path: Path, port: int, script: Script, *, lost: tuple[int, ...] = (),
                 fin: bool = True) -> Session:
    """One TCP connection; ``lost`` are indexes of ``script`` lines the capture does not hold."""
    cap = Capture()
    conv = Tcp(cap, server=("10.0.0.2", port)).handshake()
    for i, (who, data) in enumerate(script):
        (conv.c if who == "c" else conv.s)(data, drop=i in lost)
    if fin:
        conv.fin()
    [session] = sessions_of(cap.write(tmp_path / "c.pcap"))
    return session


def captions(session: Session, lang: str = "en") -> list[tuple[str, str, str]]:
    """(key, tone, caption) of the steps that are not TCP setup and teardown."""
    return [(s.key, s.tone, s.caption) for s in steps(session, lang=lang)
            if s.key not in ("setup", "tcp.fin")]


def by_key(found: list[Step], key: str) -> list[str]:
    return [s.caption for s in found if s.key == key]


# --------------------------------------------------------------------------- IMAP FETCH

MESSAGE = (b"From: a@example.com\r\nTo: b@example.org\r\nSubject: Hi\r\n\r\n" + b"x" * 200 + b"\r\n")
HEADER = MESSAGE[: MESSAGE.index(b"\r\n\r\n") + 4]
FIELDS = b"From: a@example.com\r\nTo: b@example.org\r\n\r\n"
IMAP_LOGIN: Script = [
    ("s", b"* OK IMAP ready\r\n"),
    ("c", b"a1 LOGIN bob secret\r\n"),
    ("s", b"a1 OK done\r\n"),
    ("c", b"a2 SELECT INBOX\r\n"),
    ("s", b"* 1 EXISTS\r\na2 OK [READ-WRITE] done\r\n"),
]


def literal(item: bytes, data: bytes, size: int | None = None) -> bytes:
    return b"* 1 FETCH (%s {%d}\r\n" % (item, len(data) if size is None else size) + data


def fetch_steps(tmp_path: Path, script: Script, **kw: object) -> list[tuple[str, str, str]]:
    session = conversation(tmp_path, 143, IMAP_LOGIN + script, **kw)  # type: ignore[arg-type]
    return [c for c in captions(session) if c[0].startswith("imap.fetch")]


def test_full_body_fetch_with_a_gap_is_an_incomplete_download(tmp_path: Path) -> None:
    script: Script = [
        ("c", b"a3 FETCH 1 BODY[]\r\n"),
        ("s", literal(b"BODY[]", MESSAGE[:50], len(MESSAGE))),
        ("s", MESSAGE[50:120]),  # lost
        ("s", MESSAGE[120:] + b")\r\na3 OK Fetch completed\r\n"),
    ]
    lost = (len(IMAP_LOGIN) + 2,)
    assert fetch_steps(tmp_path, script, lost=lost) == [
        ("imap.fetch.incomplete", "warn",
         f"incomplete download of message 1 (FETCH BODY[]): only {len(MESSAGE) - 70} bytes of the message "
         "are in the capture"),
    ]


def test_full_body_fetch_cut_off_by_the_end_of_the_capture(tmp_path: Path) -> None:
    script: Script = [
        ("c", b"a3 FETCH 1 BODY[]\r\n"),
        ("s", literal(b"BODY[]", MESSAGE[:50], len(MESSAGE))),
    ]
    assert fetch_steps(tmp_path, script) == [
        ("imap.fetch.incomplete", "warn",
         "incomplete download of message 1 (FETCH BODY[]): only 50 bytes of the message are in the capture; "
         "no reply in the capture"),
    ]


def test_header_fetches_are_header_fetches(tmp_path: Path) -> None:
    script: Script = [
        ("c", b"a3 FETCH 1 BODY.PEEK[HEADER.FIELDS (FROM TO)]\r\n"),
        ("s", literal(b"BODY[HEADER.FIELDS (FROM TO)]", FIELDS) + b")\r\na3 OK done\r\n"),
        ("c", b"a4 FETCH 1 RFC822.HEADER\r\n"),
        ("s", literal(b"RFC822.HEADER", HEADER) + b")\r\na4 OK done\r\n"),
        ("c", b"a5 FETCH 1 (FLAGS BODY[HEADER])\r\n"),
        ("s", b"* 1 FETCH (FLAGS (\\Seen) BODY[HEADER] {%d}\r\n" % len(HEADER) + HEADER + b")\r\na5 OK done\r\n"),
    ]
    assert fetch_steps(tmp_path, script) == [
        ("imap.fetch.header", "ok", "the client reads header fields of message 1 (FETCH)"),
        ("imap.fetch.header.whole", "ok", "the client reads the header of message 1 (FETCH RFC822.HEADER)"),
        ("imap.fetch.header.whole", "ok", "the client reads the header of message 1 (FETCH FLAGS BODY[HEADER])"),
    ]


def test_complete_and_partial_fetches(tmp_path: Path) -> None:
    text = MESSAGE[len(HEADER):]
    script: Script = [
        ("c", b"a3 FETCH 1 BODY.PEEK[]\r\n"),
        ("s", literal(b"BODY[]", MESSAGE) + b")\r\na3 OK done\r\n"),
        ("c", b"a4 FETCH 1 (BODY[HEADER] BODY[TEXT])\r\n"),
        ("s", literal(b"BODY[HEADER]", HEADER) + b" BODY[TEXT] {%d}\r\n" % len(text) + text
         + b")\r\na4 OK done\r\n"),
        ("c", b"a5 FETCH 1 BODY.PEEK[]<0.20>\r\n"),
        ("s", literal(b"BODY[]<0>", MESSAGE[:20]) + b")\r\na5 OK done\r\n"),
    ]
    size = len(MESSAGE)
    assert fetch_steps(tmp_path, script) == [
        ("imap.fetch.message", "ok", f"download of message 1 (FETCH BODY.PEEK[], {size} bytes)"),
        ("imap.fetch.message", "ok", f"download of message 1 (FETCH BODY[HEADER] BODY[TEXT], {size} bytes)"),
        ("imap.fetch.partial", "ok", "the client fetches part of message 1 (FETCH BODY.PEEK[]<0.20>, 20 bytes)"),
    ]


def test_incomplete_download_in_german(tmp_path: Path) -> None:
    script: Script = [("c", b"a3 FETCH 1 BODY[]\r\n"), ("s", literal(b"BODY[]", MESSAGE[:50], len(MESSAGE)))]
    session = conversation(tmp_path, 143, IMAP_LOGIN + script)
    assert by_key(steps(session, lang="de"), "imap.fetch.incomplete") == [
        "unvollständiges Herunterladen von E-Mail 1 (FETCH BODY[]): nur 50 Bytes davon sind im Mitschnitt; "
        "keine Antwort im Mitschnitt"
    ]


def test_real_header_fields_fetch_stays_a_header_fetch(captures: Path) -> None:
    found = [s for session in sessions_of(captures / "imap-session.pcap") for s in steps(session)]
    assert by_key(found, "imap.fetch.header") == ["the client reads header fields of message 1 (FETCH)"]
    assert by_key(found, "imap.fetch.message") == ["download of message 2 (FETCH BODY[], 10758 bytes)"]
    assert by_key(found, "imap.fetch.incomplete") == []


# --------------------------------------------------------------------------- POP3 states

APOP_SESSION: Script = [
    ("s", b"+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n"),
    ("c", b"APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n"),
    ("s", b"+OK maildrop has 4 messages (1320 octets)\r\n"),
    ("c", b"RSET\r\n"),
    ("s", b"+OK\r\n"),
    ("c", b"DELE 1\r\n"),
    ("s", b"+OK message 1 deleted\r\n"),
    ("c", b"DELE 2\r\n"),
    ("s", b"+OK message 2 deleted\r\n"),
    ("c", b"RSET\r\n"),
    ("s", b"+OK maildrop has 4 messages (1320 octets)\r\n"),
    ("c", b"DELE 3\r\n"),
    ("s", b"+OK message 3 deleted\r\n"),
    ("c", b"DELE 9\r\n"),
    ("s", b"-ERR no such message\r\n"),
    ("c", b"DELE 4\r\n"),
    ("s", b"+OK message 4 deleted\r\n"),
    ("c", b"QUIT\r\n"),
    ("s", b"+OK dewey POP3 server signing off (2 messages left)\r\n"),
]


def test_pop3_states_deletions_and_undone_deletions(tmp_path: Path) -> None:
    session = conversation(tmp_path, 110, APOP_SESSION)
    assert [s["state"] for s in session.record["pop3"]["states"]] == ["AUTHORIZATION", "TRANSACTION", "UPDATE"]
    assert captions(session) == [
        ("greeting.apop", "ok",
         "the server is ready to talk (+OK) → AUTHORIZATION state; its timestamp makes APOP possible"),
        ("pop3.apop.ok", "ok",
         "the client authenticates with APOP as mrose — it sends an MD5 digest of the greeting's timestamp and "
         "the shared secret, never the secret itself; the server accepts → TRANSACTION state"),
        ("pop3.rset.none", "ok", "the client resets the session (RSET); no message was marked for deletion"),
        ("pop3.dele", "ok", "deletion mark for message 1 (DELE)"),
        ("pop3.dele", "ok", "deletion mark for message 2 (DELE)"),
        ("pop3.rset.ok", "ok", "the deletion marks of messages 1, 2 are removed (RSET)"),
        ("pop3.dele", "ok", "deletion mark for message 3 (DELE)"),
        ("pop3.dele", "fail", "deletion mark for message 9 (DELE); the server refuses: -ERR no such message"),
        ("pop3.dele", "ok", "deletion mark for message 4 (DELE)"),
        ("pop3.quit.update.ok", "ok",
         "positive end of the session (QUIT / +OK) → UPDATE state: the 2 messages marked with DELE (3, 4) "
         "are deleted"),
    ]
    assert session.record["pop3"]["deleted"] == [3, 4]


def test_pop3_states_in_german(tmp_path: Path) -> None:
    session = conversation(tmp_path, 110, APOP_SESSION)
    german = {key: caption for key, _tone, caption in captions(session, "de")}
    assert german["greeting.apop"] == ("der Server ist gesprächsbereit (+OK) → Zustand AUTHORIZATION; "
                                       "sein Zeitstempel ermöglicht APOP")
    assert german["pop3.apop.ok"].endswith("der Server akzeptiert → Zustand TRANSACTION")
    assert german["pop3.rset.ok"] == "die Löschmarkierungen der E-Mails 1, 2 werden aufgehoben (RSET)"
    assert german["pop3.quit.update.ok"] == (
        "Positive Beendigung der Kommunikation (QUIT / +OK) → Zustand UPDATE: die 2 mit DELE markierten "
        "E-Mails (3, 4) werden gelöscht")


def test_pop3_user_pass_then_quit_error_in_update(tmp_path: Path) -> None:
    session = conversation(tmp_path, 110, [
        ("s", b"+OK POP3 ready\r\n"),
        ("c", b"USER bob\r\n"), ("s", b"+OK\r\n"),
        ("c", b"PASS secret\r\n"), ("s", b"+OK logged in\r\n"),
        ("c", b"DELE 2\r\n"), ("s", b"+OK\r\n"),
        ("c", b"QUIT\r\n"), ("s", b"-ERR some deleted messages not removed\r\n"),
    ])
    assert captions(session) == [
        ("greeting.ok", "ok", "the server is ready to talk (+OK) → AUTHORIZATION state"),
        ("pop3.user", "ok", "identification: the client names the user bob (USER)"),
        ("pop3.pass.ok", "ok",
         "authentication: the client sends the password (PASS) — in cleartext; the server accepts "
         "→ TRANSACTION state"),
        ("pop3.dele", "ok", "deletion mark for message 2 (DELE)"),
        ("pop3.quit.update.fail", "fail",
         "the client ends the session (QUIT) → UPDATE state; the server could not delete every marked message: "
         "-ERR some deleted messages not removed"),
    ]


def test_pop3_quit_in_authorization_deletes_nothing(tmp_path: Path) -> None:
    session = conversation(tmp_path, 110, [
        ("s", b"+OK POP3 ready\r\n"),
        ("c", b"USER bob\r\n"), ("s", b"+OK\r\n"),
        ("c", b"PASS wrong\r\n"), ("s", b"-ERR invalid password\r\n"),
        ("c", b"QUIT\r\n"), ("s", b"+OK bye\r\n"),
    ])
    assert captions(session)[-1] == (
        "pop3.quit.authorization.ok", "ok",
        "positive end of the session (QUIT / +OK) in the AUTHORIZATION state: no UPDATE, nothing is deleted")
    assert not any("TRANSACTION" in caption for _key, _tone, caption in captions(session))


def test_pop3_lab_capture_names_the_states(captures: Path) -> None:
    facts_deleted, facts_undone = [3], [1]  # pop3-session.facts.json: "deleted", "undeleted_by_rset"
    found = [[(s.key, s.caption) for s in steps(session)] for session in sessions_of(captures / "pop3-session.pcap")]
    first, apop, auth_plain, refused = found
    assert ("pop3.rset.ok", f"the deletion mark of message {facts_undone[0]} is removed (RSET)") in first
    assert ("pop3.quit.update.ok", "positive end of the session (QUIT / +OK) → UPDATE state: "
            f"message {facts_deleted[0]}, marked with DELE, is deleted") in first
    assert ("auth.ok", "the client authenticates with AUTH PLAIN as bob — in cleartext; the server accepts (+OK) "
            "→ TRANSACTION state") in auth_plain
    assert ("pop3.quit.update.none", "positive end of the session (QUIT / +OK) → UPDATE state: no message was "
            "marked for deletion, nothing is deleted") in apop
    assert refused[-2][0] == "pop3.quit.authorization.ok"


# --------------------------------------------------------------------------- APOP is a digest


@pytest.mark.parametrize("lang", ["en", "de"])
def test_apop_digest_is_never_called_a_password(tmp_path: Path, lang: str) -> None:
    session = conversation(tmp_path, 110, APOP_SESSION[:3] + APOP_SESSION[-2:])
    [apop] = [c for k, _t, c in captions(session, lang) if k == "pop3.apop.ok"]
    assert "password" not in apop.lower() and "passwort" not in apop.lower()
    assert "MD5" in apop
    for key in ("pop3.apop", "pop3.apop.ok", "greeting.apop"):
        assert "passw" not in str(CATALOGS[lang][key]).lower(), key


def test_lab_apop_captions(captures: Path) -> None:
    path = captures / "pop3-session.pcap"
    for lang, words in (("en", ("MD5 digest", "shared secret")), ("de", ("MD5-Digest", "gemeinsamen Geheimnis"))):
        apop = [s.caption for session in sessions_of(path) for s in steps(session, lang=lang)
                if s.key == "pop3.apop.ok"]
        assert len(apop) == 1
        assert all(w in apop[0] for w in words) and "passw" not in apop[0].lower()


def test_pop3_retr_cut_short_is_an_incomplete_download(tmp_path: Path) -> None:
    login: Script = [("s", b"+OK ready\r\n"), ("c", b"USER a\r\n"), ("s", b"+OK\r\n"), ("c", b"PASS b\r\n"),
                     ("s", b"+OK\r\n"), ("c", b"RETR 1\r\n")]
    ended = conversation(tmp_path, 110, [*login, ("s", b"+OK 300 octets\r\n" + MESSAGE[:60])])
    assert captions(ended)[-1] == (
        "pop3.retr.incomplete", "warn", "incomplete download of message 1 (RETR): only 60 bytes of it are in the "
        "capture")
    holed = conversation(tmp_path, 110, [*login, ("s", b"+OK 300 octets\r\n" + MESSAGE[:60]), ("s", MESSAGE[60:100]),
                                         ("s", MESSAGE[100:] + b".\r\n")], lost=(7,))
    assert [c for c in captions(holed) if c[0].startswith("pop3.retr")] == [
        ("pop3.retr.incomplete", "warn",
         f"incomplete download of message 1 (RETR): only {len(MESSAGE) - 40} bytes of it are in the capture")]
