"""``--follow``: the conversation bytes, compared with tshark's Follow TCP Stream output."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.cells import cell_len
from term_pcap import SMTP_OK, write_pcap
from term_render import analyze, render

from mailtrace.cli import main
from mailtrace.model import Direction
from mailtrace.render.follow import blocks, lines, visible

PRINTABLE = bytes(range(0x20, 0x7F)) + b"\r\n"
CAPTURES = (
    "smtp-relay-seed-story",
    "smtp-errors",
    "pop3-session",
    "imap-session",
    "mixed-all",
    "smtp-submission-auth",
    "smtp-starttls",
    "ipv6",
    "tls-implicit",
)


def ascii_like_tshark(data: bytes) -> bytes:
    """What tshark's ``follow,tcp,ascii`` shows: non-printable bytes become dots."""
    return bytes(b if b in PRINTABLE else 0x2E for b in data)


def tshark_follow(path: Path) -> list[tuple[Direction, bytes]]:
    """Chunks of a tshark follow file, consecutive ones of one direction merged."""
    raw = path.read_bytes()
    body = raw.split(b"\nNode 1: ", 1)[1].split(b"\n", 1)[1]
    chunks: list[tuple[Direction, bytes]] = []
    pos = 0
    while True:
        match = re.compile(rb"(\t?)(\d+)\n").match(body, pos)
        if match is None:
            break
        size = int(match.group(2))
        data = body[match.end() : match.end() + size]
        direction = Direction.SERVER if match.group(1) else Direction.CLIENT
        if chunks and chunks[-1][0] is direction:
            chunks[-1] = (direction, chunks[-1][1] + data)
        else:
            chunks.append((direction, data))
        pos = match.end() + size + 1
    assert body[pos:].startswith(b"====="), "tshark follow file not fully parsed"
    return chunks


@pytest.mark.parametrize("name", CAPTURES)
def test_transcript_reproduces_tshark_follow(captures: Path, name: str) -> None:
    sessions, _ = analyze(captures / f"{name}.pcap", transcript=True)
    assert sessions
    for session in sessions:
        ours = [(b.direction, ascii_like_tshark(bytes(b.data))) for b in blocks(session) if not b.gap]
        theirs = tshark_follow(captures / f"{name}.stream{session.stream}.txt")
        assert [(d, ascii_like_tshark(data)) for d, data in theirs] == ours, (name, session.stream)


def test_follow_view_shows_frames_sides_and_lines(captures: Path) -> None:
    text = render("follow", captures / "smtp-relay-seed-story.pcap")
    first = text.split("\n\n", 1)[0].splitlines()
    assert first[0] == "Session 1 · SMTP · C 127.0.0.10:44112 → S 127.0.0.25:25 · tcp.stream eq 0"
    assert (
        first[1]
        == " 14 S  220 mail.local.example ESMTP Sendmail 8.17.1.9/8.17.1.9; Thu, 26 Nov 2026 13:22:24 GMT"
    )
    assert first[2] == " 16 C  EHLO client.local.example"
    assert first[3].startswith(" 18 S  250-mail.local.example Hello")
    assert first[4] == "    S  250-ENHANCEDSTATUSCODES"
    assert "    C  Subject: Lunch on Friday?" in first
    assert first[-1] == " 44 S  221 2.0.0 mail.local.example closing connection"
    assert "Summary" not in text


def test_control_characters_bare_line_ends_and_gaps_are_visible(tmp_path: Path) -> None:
    script = [
        *SMTP_OK[:9],
        ("C", b"Subject: a\tb\r\n\r\nbare\nlf and bare\rcr\x00\x1b[31m\xff\xe2\x80\xaeend\r\n"),
        ("lost", "C", 42),
        ("C", b".\r\n"),
        ("S", b"250 ok\r\n"),
    ]
    text = render("follow", write_pcap(tmp_path / "ctl.pcap", script), width=None)
    assert "C  Subject: a␉b" in text
    assert "C  bare␊" in text
    assert "C  lf and bare␍cr␀␛[31m\\xff\\u202eend" in text
    assert "C  [42 bytes missing from the capture]" in text
    assert "\x1b" not in text and "\x00" not in text


def test_tls_bytes_are_summarised(captures: Path) -> None:
    text = render("follow", captures / "smtp-starttls.pcap").split("\n\n", 1)[0]
    assert " 18 S  220 2.0.0 Ready to start TLS" in text
    assert " 19 C  [TLS, 517 bytes]" in text
    assert "\\x16\\x03" not in text


def test_follow_wraps_on_a_terminal_without_losing_bytes(captures: Path) -> None:
    text = render("follow", captures / "smtp-errors.pcap", width=60)
    assert all(cell_len(line) <= 60 for line in text.splitlines())
    joined = " ".join(text.split())
    assert "Domain of sender address eve@no-such-domain.example does not exist" in joined


def test_helpers() -> None:
    assert visible("ok\x7f\x01") == "ok␡␁"
    assert lines(b"a\r\nb\nc") == [(0, "a"), (3, "b␊"), (5, "c")]
    assert lines(b"") == []


def test_transcript_is_kept_only_for_follow(captures: Path) -> None:
    sessions, _ = analyze(captures / "smtp-relay-seed-story.pcap")
    assert all(not s.transcript for s in sessions)
    result = CliRunner().invoke(
        main, ["analyze", "--follow", "--session", "2", str(captures / "smtp-relay-seed-story.pcap")]
    )
    assert result.exit_code == 0, result.output
    assert "C  MAIL From:<alice@local.example> SIZE=480" in result.output
    assert "Session 1 ·" not in result.output


def test_follow_hides_credentials_unless_asked(captures: Path) -> None:
    """mixed-all's facts: bob's POP3 password, carol's IMAP password, AUTH PLAIN and AUTH LOGIN of bob.
    The raw conversation hides them as the table does; --show-secrets shows them."""
    secrets = ("bob-pop3-Secret", "carol-imap-Pa55", "AGJvYgBib2ItcG9wMy1TZWNyZXQ=", "Ym9iLXBvcDMtU2VjcmV0")
    hidden = CliRunner().invoke(main, ["analyze", "--follow", str(captures / "mixed-all.pcap")])
    assert hidden.exit_code == 0, hidden.output
    assert not [s for s in secrets if s in hidden.output]
    assert " 14 C  NPKO1 LOGIN carol [password]" in hidden.output
    assert "192 C  PASS [password]" in hidden.output
    shown = CliRunner().invoke(main, ["analyze", "--follow", "--show-secrets", str(captures / "mixed-all.pcap")])
    assert ' 14 C  NPKO1 LOGIN carol "carol-imap-Pa55"' in shown.output and "PASS bob-pop3-Secret" in shown.output
    login = CliRunner().invoke(main, ["analyze", "--follow", str(captures / "smtp-submission-auth.pcap")])
    assert " 61 S  334 VXNlcm5hbWU6\n 62 C  [SASL response]\n 63 S  334 UGFzc3dvcmQ6\n 64 C  [SASL response]\n" \
           " 65 S  235 2.7.0 Authentication successful\n 66 C  MAIL FROM:<bob@remote.example>" in login.output
    assert " 17 C  AUTH PLAIN [initial response]" in login.output


@pytest.mark.parametrize(("protocol", "conversation", "expected"), [
    ("smtp", [("C", b"AUTH PLAIN AGJvYgBzZWNyZXQ="), ("S", b"235 ok"), ("C", b"MAIL FROM:<a@b>")],
     [b"AUTH PLAIN [initial response]", b"MAIL FROM:<a@b>"]),
    ("smtp", [("C", b"auth login"), ("S", b"334 VXNlcm5hbWU6"), ("C", b"Ym9i"), ("S", b"334 x"), ("C", b"*"),
              ("S", b"501 cancelled"), ("C", b"QUIT")],
     [b"auth login", b"[SASL response]", b"*", b"QUIT"]),
    ("smtp", [("C", b"AUTH PLAIN ="), ("S", b"235 ok")], [b"AUTH PLAIN ="]),
    ("pop3", [("C", b"USER bob"), ("S", b"+OK"), ("C", b"PASS s3cret word"), ("S", b"+OK"), ("C", b"STAT")],
     [b"USER bob", b"PASS [password]", b"STAT"]),
    ("pop3", [("C", b"APOP bob c4c9334bac560ecc979e58001b3e22fb"), ("S", b"+OK")], [b"APOP bob [digest]"]),
    ("pop3", [("C", b"AUTH"), ("S", b"+OK"), ("C", b"AUTH CRAM-MD5"), ("S", b"+ PDE4OTYuNjk3MTcw>"),
              ("C", b"Ym9iIGI5MTNhNjAy"), ("S", b"+OK welcome"), ("C", b"LIST")],
     [b"AUTH", b"AUTH CRAM-MD5", b"[SASL response]", b"LIST"]),
    ("imap", [("C", b'a1 LOGIN "bob smith" "pa ss"'), ("S", b"a1 OK"), ("C", b"a2 SELECT INBOX")],
     [b'a1 LOGIN "bob smith" [password]', b"a2 SELECT INBOX"]),
    ("imap", [("C", b"a1 login {3}"), ("S", b"+ go"), ("C", b"bob {6}"), ("S", b"+ go"), ("C", b"secret"),
              ("S", b"a1 OK"), ("C", b"a2 LOGOUT")],
     [b"a1 login {3}", b"[credentials]", b"[credentials]", b"a2 LOGOUT"]),
    ("imap", [("C", b"a1 LOGIN bob {6}"), ("S", b"+ go"), ("C", b"secret"), ("S", b"a1 OK")],
     [b"a1 LOGIN bob {6}", b"[credentials]"]),
    ("imap", [("C", b"a1 AUTHENTICATE PLAIN AGJvYgBzZWNyZXQ="), ("S", b"a1 OK")],
     [b"a1 AUTHENTICATE PLAIN [initial response]"]),
    ("imap", [("C", b"a1 AUTHENTICATE LOGIN"), ("S", b"+ VXNlcm5hbWU6"), ("C", b"Ym9i"), ("S", b"* CAPABILITY x"),
              ("C", b"a2 NOOP")],
     [b"a1 AUTHENTICATE LOGIN", b"[SASL response]", b"a2 NOOP"]),
    # message content is content: a body line that reads like AUTH is shown as it is
    ("smtp", [("C", b"DATA"), ("S", b"354 go"), ("C", b"AUTH PLAIN is explained below"), ("C", b"next line"),
              ("C", b"."), ("S", b"250 ok"), ("C", b"AUTH PLAIN AGJvYgBzZWNyZXQ=")],
     [b"DATA", b"AUTH PLAIN is explained below", b"next line", b".", b"AUTH PLAIN [initial response]"]),
    ("smtp", [("C", b"DATA"), ("S", b"554 no valid recipients"), ("C", b"AUTH PLAIN AGJvYgBzZWNyZXQ=")],
     [b"DATA", b"AUTH PLAIN [initial response]"]),  # DATA refused: the next line is a command again
    ("imap", [("C", b"a1 APPEND INBOX {23}"), ("S", b"+ go"), ("C", b"a2 LOGIN bob secret"), ("C", b""),
              ("S", b"a1 OK"), ("C", b"a3 LOGIN bob secret")],
     [b"a1 APPEND INBOX {23}", b"a2 LOGIN bob secret", b"", b"a3 LOGIN bob [password]"]),
])
def test_credential_redactor(protocol: str, conversation: list[tuple[str, bytes]], expected: list[bytes]) -> None:
    from mailtrace.render.redact import CredentialRedactor

    redactor = CredentialRedactor(protocol)
    shown = []
    for side, line in conversation:
        if side == "C":
            shown.append(redactor.client(line))
        else:
            redactor.server(line)
    assert shown == expected


def test_follow_shows_the_plaintext_of_a_decrypted_session() -> None:
    """With the key log, --follow shows what Follow TLS Stream shows: the commands inside TLS (the
    credentials still hidden); without it, the records are summarised."""
    from tests.support import run_cli, sample
    path, keys = str(sample("smtp-starttls.pcap")), str(sample("smtp-starttls.keylog"))
    text = run_cli("analyze", "--follow", "--no-color", "--session", "1", "--tls-keylog", keys, path).stdout
    assert "[TLS from here on, decrypted with the key log: the plaintext inside the records]" in text
    assert "[TLS," not in text
    after = text.split("decrypted with the key log", 1)[1]
    assert " C  AUTH PLAIN [initial response]" in after and " S  235 2.7.0 Authentication successful" in after
    assert " C  Subject: Encrypted hello" in after and " S  221 2.0.0 Bye" in after
    shown = run_cli("analyze", "--follow", "--no-color", "--session", "1", "--tls-keylog", keys, "--show-secrets",
                    path).stdout
    assert "AUTH PLAIN [initial response]" not in shown
    plain = run_cli("analyze", "--follow", "--no-color", "--session", "1", path).stdout
    assert "[TLS, " in plain and "decrypted with the key log" not in plain and "Encrypted hello" not in plain
