"""The statistics tables hold user names, addresses and commands from the capture: none of their control
characters may reach the terminal (every other view cleans them; stats did not)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tests.pcapgen import Capture, Tcp
from tests.support import run_cli

HOSTILE_USER = "bob\x1b]0;pwned\x07\x1b[2J\u202e"


def hostile_capture(tmp_path: Path) -> Path:
    cap = Capture()
    token = base64.b64encode(b"\0" + HOSTILE_USER.encode() + b"\0secret")
    Tcp(cap, client=("10.0.0.1", 40000), server=("10.0.0.2", 587)).handshake().s(b"220 mx\r\n") \
        .c(b"EHLO a\x1b[31m\r\n").s(b"250-mx\r\n250 AUTH PLAIN\r\n").c(b"AUTH PLAIN " + token + b"\r\n") \
        .s(b"235 ok\r\n").c(b"QUIT\r\n").s(b"221 bye\r\n").fin()
    return cap.write(tmp_path / "esc.pcap")


@pytest.mark.parametrize("args", [("stats", "--no-color"), ("stats", "--color"), ("analyze", "--stats", "--no-color")])
def test_statistics_never_pass_control_characters_through(tmp_path: Path, args: tuple[str, ...]) -> None:
    out = run_cli(*args, str(hostile_capture(tmp_path))).stdout
    assert "bob␛]0;pwned␇␛[2J�" in out  # the user, shown one character for one
    assert "\x1b]" not in out and "\x07" not in out and "\u202e" not in out and "\x1b[2J" not in out


@pytest.mark.parametrize("user", ["[/bold]", "[link=https://evil.example/]bob[/link]"])
def test_statistics_read_no_rich_markup_in_capture_text(tmp_path: Path, user: str) -> None:
    """A user name "[/bold]" made Rich raise (a traceback, exit 1); a [link=…] one hid a hyperlink."""
    cap = Capture()
    token = base64.b64encode(b"\0" + user.encode() + b"\0secret")
    Tcp(cap, client=("10.0.0.1", 40000), server=("10.0.0.2", 587)).handshake().s(b"220 mx\r\n") \
        .c(b"AUTH PLAIN " + token + b"\r\n").s(b"235 ok\r\n").fin()
    path = cap.write(tmp_path / "markup.pcap")
    for args in (("stats", "--no-color"), ("stats", "--color"), ("analyze", "--stats", "--no-color")):
        result = run_cli(*args, str(path))
        assert result.exit_code == 0
        assert user in result.stdout and "\x1b]8" not in result.stdout
