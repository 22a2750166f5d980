"""Captions of pipelined commands: right, and in time linear in the number of commands.

A client that pipelines thousands of commands (RCPT floods, IMAP clients that never wait) once made the
text view quadratic: the captioner kept the commands waiting for a reply in a list and looked
exchanges up in it with the dataclass equality. The scaling tests count the Python lines the
captioner runs (a deterministic measure, not a wall clock) for a session and for one with four
times as many commands: linear work grows about fourfold, the old quadratic one about sixteenfold.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any

from mailtrace.capture.reader import open_capture
from mailtrace.commands.common import build_config
from mailtrace.pipeline import Analyzer
from mailtrace.render import captions as captions_module
from mailtrace.render.captions import steps
from mailtrace.session import Session
from tests.pcapgen import Capture, Tcp
from tests.test_captions_audit import Script

SMTP_HELLO: Script = [("s", b"220 mx ESMTP\r\n"), ("c", b"EHLO a\r\n"), ("s", b"250-mx\r\n250 PIPELINING\r\n")]


def session_of(tmp_path: Path, port: int, script: Script, *, max_pending: int | None = None) -> Session:
    """One TCP connection through the real pipeline; ``max_pending`` lowers the dissectors' pairing limit."""
    cap = Capture()
    conv = Tcp(cap, server=("10.0.0.2", port)).handshake()
    for who, data in script:
        (conv.c if who == "c" else conv.s)(data)
    conv.fin()
    config = build_config()
    if max_pending is not None:
        config = replace(config, dissector=replace(config.dissector, max_pending_commands=max_pending))
    [session] = Analyzer(config).run([open_capture(str(cap.write(tmp_path / f"c{port}.pcap")))])
    return session


def captions(session: Session, lang: str = "en") -> list[tuple[str, str, str, list[int]]]:
    """(key, tone, caption, frames) of the steps between the TCP setup and the teardown."""
    return [(s.key, s.tone, s.caption, [r.frame for r in s.rows]) for s in steps(session, lang=lang)
            if s.key not in ("setup", "tcp.fin")]


def work(session: Session) -> int:
    """Python lines the captioner runs for a session, plus every Python ``__eq__`` call on the way."""
    count = 0
    module = captions_module.__file__

    def lines(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return lines

    def calls(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        code = frame.f_code
        if code.co_filename == module:
            return lines
        if code.co_name == "__eq__":
            count += 1
        return None

    previous = sys.gettrace()
    sys.settrace(calls)
    try:
        steps(session)
    finally:
        sys.settrace(previous)
    return count


# --------------------------------------------------------------------------- right captions


def test_a_pipelined_envelope_is_one_step_with_every_command_answered(tmp_path: Path) -> None:
    session = session_of(tmp_path, 25, [
        *SMTP_HELLO,
        ("c", b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nRCPT TO:<e@f.example>\r\n"
              b"RCPT TO:<g@h.example>\r\nDATA\r\n"),
        ("s", b"250 ok\r\n250 ok\r\n550 no such user\r\n250 ok\r\n354 go ahead\r\n"),
        ("c", b"Subject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n"),
        ("s", b"250 queued\r\n221 bye\r\n"),
    ])
    assert captions(session) == [
        ("greeting.ok", "ok", "the server is ready to talk (220)", [4]),
        ("smtp.ehlo.ok", "ok", "the client identifies itself (EHLO); the server lists its extensions", [5, 6]),
        ("smtp.mail.ok", "fail",
         "sender transferred and accepted; recipient transferred and accepted; recipient rejected: 550 mailbox "
         "unavailable, or refused by policy; recipient transferred and accepted; start of the message transfer "
         "(DATA / 354); 5 commands in one segment, sent without waiting for each reply (pipelining, RFC 2920)",
         [7, 8]),
        # the end of data pipelined with QUIT: the steps in protocol order, in one (it was QUIT first)
        ("smtp.body", "ok", "message transferred; message accepted for delivery (250); positive end of the "
                            "session (QUIT / 221)", [9, 10]),
    ]


def test_a_flood_past_the_pairing_limit_keeps_its_counts(tmp_path: Path) -> None:
    """More RCPT than the dissector pairs: the first are answered, the rest stay waiting, the surplus
    replies answer nothing, and the counts of all three add up."""
    flood = b"".join(b"RCPT TO:<u%d@d.example>\r\n" % i for i in range(60))
    session = session_of(tmp_path, 25, [
        *SMTP_HELLO, ("c", b"MAIL FROM:<a@b.example>\r\n"), ("s", b"250 ok\r\n"),
        ("c", flood), ("s", b"250 ok\r\n" * 60), ("c", b"QUIT\r\n"), ("s", b"221 bye\r\n"),
    ], max_pending=20)
    found = captions(session)
    assert found[2:] == [
        ("smtp.mail.ok", "ok", "sender transferred and accepted", [7, 8]),
        ("smtp.rcpt.ok", "warn",
         "recipient transferred and accepted (×20); recipient transferred; no reply in the capture (×40); the "
         "server speaks unasked: 250 ok (×40); positive end of the session (QUIT / 221); 60 commands in one "
         "segment, sent without waiting for each reply (pipelining, RFC 2920)", [9, 10, 11, 12]),
    ]
    assert captions(session, "de")[3][2] == (
        "Empfänger wird übertragen und akzeptiert (×20); Empfänger wird übertragen; keine Antwort im Mitschnitt "
        "(×40); der Server meldet sich unaufgefordert: 250 ok (×40); Positive Beendigung der E-Mail-Übertragung "
        "(QUIT / 221); 60 Befehle in einem Segment, gesendet ohne auf jede Antwort zu warten (Pipelining, RFC 2920)")


def test_an_overtaken_imap_command_does_not_make_later_commands_wait(tmp_path: Path) -> None:
    """The server answers a later tag first: the earlier commands are overtaken, later ones are steps
    of their own."""
    session = session_of(tmp_path, 143, [
        ("s", b"* OK IMAP ready\r\n"), ("c", b"a1 LOGIN bob secret\r\n"), ("s", b"a1 OK done\r\n"),
        ("c", b"a2 NOOP\r\na3 NOOP\r\na4 CAPABILITY\r\n"),
        ("s", b"* CAPABILITY IMAP4rev1\r\na4 OK done\r\n"),
        ("c", b"a5 CHECK\r\n"), ("s", b"a5 OK done\r\n"),
        ("c", b"a6 LOGOUT\r\n"), ("s", b"* BYE bye\r\na6 OK done\r\n"),
    ])
    assert captions(session)[2:] == [
        ("imap.noop", "warn", "the client polls for news (NOOP); no reply in the capture (×2); the client asks "
         "for the server's capabilities (CAPABILITY); 3 commands in one segment, sent without waiting for each "
         "reply (pipelining, RFC 3501 5.5)", [7, 8]),
        ("imap.check", "info", "the client asks for a checkpoint of the selected mailbox: housekeeping the "
         "server does not do after every command, such as writing the mailbox's state to disk (CHECK)", [9, 10]),
        ("imap.logout.ok", "ok", "positive end of the session (LOGOUT / BYE, OK) → Logout state", [11, 12]),
    ]


# --------------------------------------------------------------------------- linear work


def smtp_flood(tmp_path: Path, n: int) -> Session:
    """MAIL and ``n`` pipelined RCPT, all answered, a pairing limit of n/5: most replies answer nothing."""
    rcpts = [b"RCPT TO:<u%d@d.example>\r\n" % i for i in range(n)]
    script: Script = [*SMTP_HELLO, ("c", b"MAIL FROM:<a@b.example>\r\n"), ("s", b"250 ok\r\n")]
    script += [("c", b"".join(rcpts[i:i + 50])) for i in range(0, n, 50)]
    script += [("s", b"250 ok\r\n" * 50) for _ in range(0, n, 50)]
    script += [("c", b"QUIT\r\n"), ("s", b"221 bye\r\n")]
    return session_of(tmp_path, 25, script, max_pending=n // 5)


def imap_overtaken(tmp_path: Path, n: int) -> Session:
    """``n`` pipelined NOOPs overtaken by the answer to a CAPABILITY, then ``n`` CHECKs answered one by one."""
    script: Script = [("s", b"* OK IMAP ready\r\n"), ("c", b"a0 LOGIN bob secret\r\n"), ("s", b"a0 OK done\r\n"),
                      ("c", b"".join(b"n%d NOOP\r\n" % i for i in range(n)) + b"c0 CAPABILITY\r\n"),
                      ("s", b"* CAPABILITY IMAP4rev1\r\nc0 OK done\r\n")]
    for i in range(n):
        script += [("c", b"k%d CHECK\r\n" % i), ("s", b"k%d OK done\r\n" % i)]
    return session_of(tmp_path, 143, script)


def test_captioning_a_rcpt_flood_is_linear(tmp_path: Path) -> None:
    small, large = work(smtp_flood(tmp_path, 100)), work(smtp_flood(tmp_path, 400))
    assert large < 5 * small, (small, large)


def test_captioning_after_overtaken_imap_commands_is_linear(tmp_path: Path) -> None:
    small, large = work(imap_overtaken(tmp_path, 50)), work(imap_overtaken(tmp_path, 200))
    assert large < 5 * small, (small, large)
