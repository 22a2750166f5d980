"""Captions and the findings block: the language reaches every part, the words say what RFCs say.

German reply meanings in captions, the findings block under ``--lang de``, per-protocol references of
``protocol-violation``, the RFC 3501 states in IMAP captions, UID sets and CHECK, SMTP AUTH's 334 and
messages with lost bytes, explanations of positive reply codes, singular counts.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

from mailtrace.findings import FindingsCollector
from mailtrace.findings.model import CATALOGUE, Finding, Severity
from mailtrace.model import Direction, Phase, Reply
from mailtrace.render.captions import steps
from mailtrace.render.explain import explain_smtp_reply
from mailtrace.render.findings import finding_body, findings_headline, more_text, write_findings
from mailtrace.render.output import Output
from mailtrace.session import Session
from tests.test_captions_audit import Script, conversation


def run(tmp_path: Path, port: int, script: Script, *, lost: tuple[int, ...] = (), fin: bool = True,
        collector: FindingsCollector | None = None) -> Session:
    """One TCP connection (tests/test_captions_audit.py's), its findings into ``collector`` if given."""
    session = conversation(tmp_path, port, script, lost=lost, fin=fin)
    if collector is not None:
        collector.session(session)
        collector.end()
    return session


def captions(session: Session, lang: str = "en") -> list[tuple[str, str]]:
    """(key, caption) of the steps between the TCP setup and the teardown."""
    return [(s.key, s.caption) for s in steps(session, lang=lang) if s.key not in ("setup", "tcp.fin")]


SMTP_HELLO: Script = [("s", b"220 mx ESMTP\r\n"), ("c", b"EHLO a\r\n"), ("s", b"250-mx\r\n250 AUTH LOGIN\r\n")]
SMTP_DATA: Script = [*SMTP_HELLO, ("c", b"MAIL FROM:<a@b.example>\r\n"), ("s", b"250 ok\r\n"),
                     ("c", b"RCPT TO:<c@d.example>\r\n"), ("s", b"250 ok\r\n"), ("c", b"DATA\r\n"),
                     ("s", b"354 go ahead\r\n")]
BODY = b"Subject: x\r\n\r\n" + b"y" * 300 + b"\r\n"
IMAP_LOGIN: Script = [("s", b"* OK IMAP ready\r\n"), ("c", b"a1 LOGIN bob secret\r\n"), ("s", b"a1 OK done\r\n"),
                      ("c", b"a2 SELECT INBOX\r\n"), ("s", b"* 3 EXISTS\r\na2 OK [READ-WRITE] done\r\n")]


# --------------------------------------------------------------------------- 1. German reply meanings


def test_german_captions_name_unasked_replies_in_german(tmp_path: Path) -> None:
    closes = run(tmp_path, 25, [*SMTP_HELLO, ("s", b"421 4.7.0 mx Error: too many errors\r\n")])
    assert ("server.closes", "der Server beendet die Sitzung: 421 4.7.0 Dienst nicht verfügbar, Verbindung wird "
            "geschlossen") in captions(closes, "de")
    assert ("server.closes", "the server ends the session: 421 4.7.0 service not available, closing the "
            "connection") in captions(closes)
    refused = run(tmp_path, 2525, [("s", b"554 5.7.1 go away\r\n"), ("c", b"QUIT\r\n"), ("s", b"221 bye\r\n")])
    assert captions(refused, "de")[0] == (
        "greeting.fail", "der Server verweigert das Gespräch: 554 5.7.1 Zustellung nicht erlaubt, Nachricht abgelehnt")


def test_german_reply_tables_cover_every_english_code() -> None:
    from mailtrace.protocols import smtp_codes

    for table in (smtp_codes.CODES, smtp_codes.ENHANCED, smtp_codes.EHLO_KEYWORDS):
        assert set(table["en"]) == set(table["de"])
    m = smtp_codes.explain_reply("550", "5.7.26 multiple checks failed", "de")
    assert m is not None and m.short == "mehrere Authentisierungsprüfungen fehlgeschlagen"
    assert smtp_codes.explain_keyword("SIZE 0", "de") == ("SIZE", "größte Nachricht, die der Server annimmt: "
                                                                  "keine feste Grenze (RFC 1870)")


# --------------------------------------------------------------------------- 2. the findings block in German


def _finding(frames: tuple[int, ...] = (7, 9), session: int | None = 1) -> Finding:
    return Finding(id="relay-denied", severity=Severity.LOW, session=session, frames=frames, title="T",
                   detail="D", reference="RFC 5321 §3.6.2")


def test_findings_block_speaks_german(tmp_path: Path) -> None:
    assert findings_headline({"low": 2, "info": 1}, 3, "de").plain == \
        "Befunde: 2 niedrig, 1 Info (3 nicht aufgeführt: über dem Limit)"
    assert findings_headline({}, 0, "de").plain == "Befunde: keine"
    assert findings_headline({"medium": 1}).plain == "Findings: 1 medium"
    assert finding_body(_finding(), lang="de").plain.split("\n")[1] == "relay-denied · Sitzung 1 · Frames 7, 9"
    assert finding_body(_finding((7,)), lang="de").plain.split("\n")[1] == "relay-denied · Sitzung 1 · Frame 7"
    assert finding_body(_finding((7,))).plain.split("\n")[1] == "relay-denied · session 1 · frame 7"
    assert more_text("relay-denied", 1, "de").plain == \
        "… 1 weiterer Befund relay-denied (alle stehen in --format json)"

    collector = FindingsCollector()
    run(tmp_path, 110, [("s", b"+OK ready\r\n"), ("c", b"XBOGUS\r\n"), ("s", b"-ERR what\r\n"),
                        ("c", b"QUIT\r\n"), ("s", b"+OK bye\r\n")], collector=collector)
    stream = io.StringIO()
    write_findings(Output(stream, width=None, color=False), collector, lang="de")
    lines = stream.getvalue().splitlines()
    assert lines[1].startswith("Befunde: 1 niedrig")
    assert lines[2].startswith("NIEDRIG ")  # the column is as wide as the longest German label and a blank
    assert lines[3] == " " * 8 + "protocol-violation · Sitzung 1 · Frame 5"


def test_english_counts_in_the_findings_block_are_singular_for_one() -> None:
    assert more_text("relay-denied", 1).plain == "… 1 more relay-denied finding (all are in --format json)"
    assert more_text("relay-denied", 2).plain == "… 2 more relay-denied findings (all are in --format json)"
    assert findings_headline({"high": 1}, 1).plain == "Findings: 1 high (1 not listed: over the limit)"


# --------------------------------------------------------------------------- 3. per-protocol references


def test_protocol_violation_cites_the_sessions_own_rfc(tmp_path: Path) -> None:
    kind = CATALOGUE["protocol-violation"]
    assert kind.reference_for("pop3") == "RFC 1939"
    assert kind.reference_for("imap") == "RFC 3501; RFC 9051"
    assert kind.reference_for("smtp") == "RFC 5321 §4.1.4, §4.3.2"
    scripts: dict[int, Script] = {
        110: [("s", b"+OK ready\r\n"), ("c", b"XBOGUS\r\n"), ("s", b"-ERR what\r\n")],
        143: [("s", b"* OK ready\r\n"), ("c", b"a1 XBOGUS\r\n"), ("s", b"a1 BAD what\r\n")],
        25: [("s", b"220 mx\r\n"), ("c", b"XBOGUS\r\n"), ("s", b"500 what\r\n")],
    }
    references = {}
    for port, script in scripts.items():
        collector = FindingsCollector()
        run(tmp_path, port, script, collector=collector)
        [found] = [f for f in collector.findings() if f.id == "protocol-violation"]
        references[port] = found.reference
    assert references == {110: "RFC 1939", 143: "RFC 3501; RFC 9051", 25: "RFC 5321 §4.1.4, §4.3.2"}


# --------------------------------------------------------------------------- 4. and 5. IMAP


IMAP_MORE: Script = [
    ("c", b"a3 UID FETCH 7 (FLAGS)\r\n"), ("s", b"* 1 FETCH (UID 7 FLAGS (\\Seen))\r\na3 OK done\r\n"),
    ("c", b"a4 UID STORE 5:7 +FLAGS (\\Deleted)\r\n"), ("s", b"a4 OK done\r\n"),
    ("c", b"a5 FETCH 2 (FLAGS)\r\n"), ("s", b"* 2 FETCH (FLAGS ())\r\na5 OK done\r\n"),
    ("c", b"a6 CHECK\r\n"), ("s", b"a6 OK done\r\n"),
    ("c", b"a7 SELECT Nope\r\n"), ("s", b"a7 NO no such mailbox\r\n"),
    ("c", b"a8 LOGOUT\r\n"), ("s", b"* BYE bye\r\na8 OK done\r\n"),
]


def test_imap_captions_name_the_rfc_3501_states(tmp_path: Path) -> None:
    found = captions(run(tmp_path, 143, IMAP_LOGIN + IMAP_MORE))
    assert found[0] == ("greeting.ok", "the server is ready to talk (* OK) → Not Authenticated state")
    assert found[1] == ("auth.ok", "the client authenticates with LOGIN as bob — in cleartext; the server accepts "
                                   "(OK) → Authenticated state")
    assert found[2] == ("imap.select.ok", "the client opens the mailbox INBOX (SELECT): 3 messages → Selected state")
    # a refused SELECT leaves no mailbox selected (RFC 3501 §6.3.1)
    assert ("imap.select", "the client opens the mailbox Nope (SELECT); the server refuses: NO no such mailbox "
                           "→ Authenticated state") in found
    assert found[-1] == ("imap.logout.ok", "positive end of the session (LOGOUT / BYE, OK) → Logout state")
    # only where the state changes
    assert sum(caption.endswith(" state") for _, caption in found) == 5
    german = captions(run(tmp_path, 143, IMAP_LOGIN + IMAP_MORE), "de")
    assert german[0] == ("greeting.ok", "der Server ist gesprächsbereit (* OK) → Zustand Not Authenticated")
    assert german[-1][1].endswith("→ Zustand Logout")


def test_preauth_names_the_authenticated_state(tmp_path: Path) -> None:
    found = captions(run(tmp_path, 143, [("s", b"* PREAUTH welcome\r\n"), ("c", b"a1 LOGOUT\r\n"),
                                         ("s", b"* BYE bye\r\na1 OK done\r\n")]))
    assert found[0] == ("greeting.preauth", "the server is ready to talk and the user is already logged in "
                                            "(PREAUTH) → Authenticated state")


def test_uid_commands_name_uids_and_check_is_a_checkpoint(tmp_path: Path) -> None:
    every = captions(run(tmp_path, 143, IMAP_LOGIN + IMAP_MORE))
    found = dict(every[::-1])  # the first caption of each key
    assert found["imap.fetch"] == "the client fetches FLAGS of the message with UID 7 (UID FETCH)"
    assert found["imap.store.deleted"] == "deletion mark for the messages with UIDs 5:7 (UID STORE +FLAGS (\\Deleted))"
    assert found["imap.check"] == (
        "the client asks for a checkpoint of the selected mailbox: housekeeping the server does not do after every "
        "command, such as writing the mailbox's state to disk (CHECK)")
    assert "news" not in found["imap.check"]
    assert ("imap.fetch", "the client fetches FLAGS of message 2 (FETCH)") in every  # no UID: sequence numbers
    german = dict(captions(run(tmp_path, 143, IMAP_LOGIN + IMAP_MORE), "de")[::-1])
    assert german["imap.fetch"] == "der Client ruft FLAGS von E-Mail mit der UID 7 ab (UID FETCH)"
    assert german["imap.check"].startswith("der Client fordert einen Checkpoint des ausgewählten Postfachs an")


# --------------------------------------------------------------------------- 6. SMTP: 334, lost bytes


def test_auth_334_is_a_challenge_not_an_acceptance(tmp_path: Path) -> None:
    script = [*SMTP_HELLO, ("c", b"AUTH LOGIN\r\n"), ("s", b"334 VXNlcm5hbWU6\r\n"),
              ("c", base64.b64encode(b"bob") + b"\r\n"), ("s", b"334 UGFzc3dvcmQ6\r\n")]
    session = run(tmp_path, 587, script)
    [auth] = [c for c in captions(session) if c[0].startswith("auth")]
    assert auth == ("auth.continue", "the client authenticates with AUTH LOGIN as bob — in cleartext; the server "
                                     "asks for the next part (334); the outcome is not in the capture")
    assert "accepts" not in auth[1]
    [german] = [c for c in captions(session, "de") if c[0].startswith("auth")]
    assert "der Server fordert den nächsten Teil an (334)" in german[1]


def test_message_with_bytes_lost_inside_is_not_cut_off(tmp_path: Path) -> None:
    script = [*SMTP_DATA, ("c", BODY[:100]), ("c", BODY[100:200]), ("c", BODY[200:] + b".\r\n"),
              ("s", b"250 queued\r\n"), ("c", b"QUIT\r\n"), ("s", b"221 bye\r\n")]
    session = run(tmp_path, 25, script, lost=(len(SMTP_DATA) + 1,))
    found = captions(session)
    assert ("smtp.body.gap", "message transferred; 100 bytes of the message lost in the capture") in found
    assert ("smtp.dot.ok", "message accepted for delivery (250)") in found
    assert ("smtp.body.gap", "E-Mail-Übertragung; 100 Bytes der E-Mail fehlen im Mitschnitt") in captions(session,
                                                                                                        "de")


def test_message_cut_off_still_misses_its_end(tmp_path: Path) -> None:
    cut = run(tmp_path, 25, [*SMTP_DATA, ("c", BODY[:100]), ("c", BODY[100:200])])
    assert ("smtp.body.incomplete", "message transfer broken off: the end of the message is missing") in captions(cut)
    # bytes lost, and then the capture ends: still cut off (no reply to an end marker)
    both = run(tmp_path, 26, [*SMTP_DATA, ("c", BODY[:100]), ("c", BODY[100:200]), ("c", BODY[200:250])],
               lost=(len(SMTP_DATA) + 1,))
    assert [k for k, _ in captions(both) if k.startswith("smtp.body")] == ["smtp.body.incomplete"]


# --------------------------------------------------------------------------- 7. positive reply codes


def _reply(status: str, text: str, answers: str | None) -> Reply:
    return Reply(direction=Direction.SERVER, ts=0.0, frame=1, first_frame=1, phase=Phase.TRANSFER, status=status,
                 lines=(text,), answers=answers)


def test_intermediate_and_telling_positive_replies_are_explained_by_default() -> None:
    found = explain_smtp_reply(_reply("354", "End data with <CR><LF>.<CR><LF>", "DATA"))
    assert found is not None and found.kind == "positive"
    assert found.lines == ("↳ 354: positive intermediate reply: the server waits for more · mail system — "
                           "start mail input; end with <CRLF>.<CRLF>",)
    found = explain_smtp_reply(_reply("334", "VXNlcm5hbWU6", "AUTH"), "de")
    assert found is not None and found.lines == (
        "↳ 334: positive Zwischenantwort: der Server wartet auf mehr · nicht festgelegt — Authentisierung: weiter "
        "mit dem nächsten Schritt", "↳ die Aufforderung ist Base64 für „Username:“")
    found = explain_smtp_reply(_reply("235", "2.7.0 Authentication successful", "AUTH"))
    assert found is not None and found.lines == ("↳ 235: positive completion · unspecified — authentication "
                                                 "succeeded",)
    # the everyday ones stay one row: their captions say it already
    for status, answers in (("250", "RCPT"), ("250", "."), ("220", None), ("221", "QUIT")):
        assert explain_smtp_reply(_reply(status, "2.0.0 Ok", answers)) is None
        assert explain_smtp_reply(_reply(status, "2.0.0 Ok", answers), positive=True) is not None
    assert explain_smtp_reply(_reply("354", "go", "DATA"), positive=False) is None
    assert explain_smtp_reply(_reply("299", "odd", "NOOP")) is None  # no meaning in the tables


# --------------------------------------------------------------------------- 8. singulars


def test_one_message_and_one_byte_are_singular(tmp_path: Path) -> None:
    session = run(tmp_path, 110, [("s", b"+OK ready\r\n"), ("c", b"USER bob\r\n"), ("s", b"+OK\r\n"),
                                  ("c", b"PASS x\r\n"), ("s", b"+OK\r\n"), ("c", b"STAT\r\n"),
                                  ("s", b"+OK 1 320\r\n"), ("c", b"QUIT\r\n"), ("s", b"+OK bye\r\n")])
    found = dict(captions(session))
    assert found["pop3.stat.ok"] == "status: 1 message, 320 bytes in the mailbox (STAT)"
    assert dict(captions(session, "de"))["pop3.stat.ok"] == "Abruf des Status: 1 E-Mail, 320 Bytes im Postfach (STAT)"
    from mailtrace.render.catalog import text

    assert text("tcp.data", "en", bytes=1, n=1) == "data the mail protocol does not explain (1 byte)"
    assert text("pop3.stat.ok", "en", count=3, octets=900, n=3) == "status: 3 messages, 900 bytes in the mailbox (STAT)"
