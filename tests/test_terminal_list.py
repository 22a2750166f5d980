"""``--list``: one line per mail session, checked against the lab's facts."""

from __future__ import annotations

import json
import re
from pathlib import Path

from rich.cells import cell_len
from term_render import render

LINE = re.compile(
    r"^\s*(\d+)\s+(smtp|pop3|imap)\s+(\S+):(\d+)\s+(\S+):(\d+)\s+(\d{4}-\d\d-\d\d \S+)\s+([\d.]+) s\s+"
    r"(.+?)\s+(completed|failed|reset|partial)\s+(\d+)\s+(.*)$"
)


def listed(text: str) -> list[re.Match[str]]:
    return [m for m in map(LINE.match, text.splitlines()) if m]


def test_mixed_capture_lists_every_mail_session_and_nothing_else(captures: Path) -> None:
    facts = json.loads((captures / "mixed-all.facts.json").read_text())
    mail = [s for s in facts["sessions"] if s["protocol"] in ("smtp", "pop3", "imap")]
    assert len(mail) < len(facts["sessions"])  # the capture has HTTP too
    rows = listed(render("list", captures / "mixed-all.pcap", width=None))
    assert len(rows) == len(mail)
    remaining = list(mail)
    for row in rows:
        protocol, cip, cport, sip, sport = (
            row.group(2),
            row.group(3),
            int(row.group(4)),
            row.group(5),
            int(row.group(6)),
        )
        match = next(
            s
            for s in remaining
            if s["protocol"] == protocol
            and s["client"]["ip"] == cip
            and s["server"]["ip"] == sip
            and s["server"]["port"] == sport
            and s["client"]["port"] in (None, cport)
        )
        remaining.remove(match)
    assert not remaining
    assert [int(r.group(1)) for r in rows] == list(range(1, len(rows) + 1))


def test_list_columns(captures: Path) -> None:
    text = render("list", captures / "smtp-errors.pcap", captures / "pop3-session.pcap", width=None)
    rows = {int(r.group(1)): r for r in listed(text)}
    assert rows[1].group(7) == "2026-11-26 13:22:33.830"
    assert (
        rows[1].group(10) == "failed" and rows[1].group(12) == "3: rcpt-without-mail, unknown-command, syntax"
    )
    assert rows[2].group(12) == "2: unknown-command ×2"
    assert rows[3].group(10) == "reset" and rows[3].group(11) == "1"
    assert rows[4].group(9) == "bob" and rows[4].group(10) == "completed" and rows[4].group(11) == "3"
    assert rows[7].group(9) == "bob (failed)" and rows[7].group(10) == "failed"
    assert "── file " in text  # two files: each begins with its name


def test_list_on_a_terminal_fits_its_width(captures: Path) -> None:
    for width in (80, 100, 120, 160):
        text = render("list", captures / "smtp-errors.pcap", width=width)
        assert all(cell_len(line) <= width for line in text.splitlines()), width
        assert "── 2026-11-26 (UTC)" in text
        assert "rcpt-without-mail" in text and "13:22:33" in text


def test_list_and_findings_only_are_refused_together(captures: Path) -> None:
    """--findings-only used to be silently ignored beside --list; like --follow, it is refused."""
    from tests.support import run_cli

    result = run_cli("analyze", "--list", "--findings-only", str(captures / "mixed-all.pcap"))
    assert result.exit_code == 2
    assert result.stderr == "mailtrace: --list shows sessions; it does not combine with --findings-only\n"


def test_a_key_log_without_secrets_is_named(tmp_path: Path, captures: Path) -> None:
    """A file that holds no NSS key log line is worth a warning: TLS stays encrypted."""
    from tests.support import run_cli

    junk = tmp_path / "junk.keylog"
    junk.write_text("hello\nCLIENT_RANDOM nothex nothex\n")
    result = run_cli("analyze", "--format", "json", "--tls-keylog", str(junk), str(captures / "smtp-starttls.pcap"))
    assert result.exit_code == 0
    assert result.stderr.startswith(f"mailtrace: --tls-keylog {junk}: no TLS secrets found (none of its 2 lines is "
                                    "an NSS key log line")
    good = run_cli("analyze", "--format", "json", "--tls-keylog", str(captures / "smtp-starttls.keylog"),
                   str(captures / "smtp-starttls.pcap"))
    assert "no TLS secrets" not in good.stderr


def test_german_list_writes_durations_with_a_decimal_comma(captures: Path) -> None:
    from tests.support import run_cli

    out = run_cli("analyze", "--list", "--lang", "de", "--no-color", str(captures / "pop3-session.pcap")).stdout
    rows = [line for line in out.splitlines() if line.strip().startswith(("1 ", "2 "))]
    assert rows and all(re.search(r"  \d+,\d{3} s  ", row) for row in rows), rows


def _failed_login(tmp: Path, user: bytes) -> Path:
    import base64

    from tests.pcapgen import Capture, Tcp

    cap = Capture()
    t = Tcp(cap, server=("10.0.0.2", 587)).handshake()
    t.s(b"220 mx ESMTP\r\n").c(b"EHLO a\r\n").s(b"250-mx\r\n250 AUTH PLAIN\r\n")
    t.c(b"AUTH PLAIN " + base64.b64encode(b"\0" + user + b"\0secret") + b"\r\n").s(b"535 5.7.8 no\r\n")
    t.c(b"QUIT\r\n").s(b"221 bye\r\n").fin()
    return cap.write(tmp / "failed-login.pcap")


def test_list_user_column_fits_a_long_name_on_a_terminal_and_keeps_it_piped(tmp_path: Path) -> None:
    path = _failed_login(tmp_path, b"frank.longname@mail.example.com")
    text = render("list", path, width=130)
    (row,) = [line for line in text.splitlines() if " smtp " in line]
    assert "fran… (failed)  failed" in row  # the name is shortened, the outcome kept, the columns aligned
    assert cell_len(row) <= 130
    piped = listed(render("list", path, width=None))
    assert piped[0].group(9) == "frank.longname@mail.example.com (failed)"


def test_list_user_column_holds_a_short_name_with_its_outcome(captures: Path) -> None:
    """"carol (failed)" fits its column: the status column stays under its heading."""
    lines = render("list", captures / "imap-session.pcap", width=130).splitlines()
    status_at = lines[0].index("Status")
    (row,) = [line for line in lines if "carol (failed)" in line]
    assert row.index("  failed") + 2 == status_at


def test_list_at_120_columns_keeps_one_line_per_session_and_shortens_the_user(captures: Path) -> None:
    lines = render("list", captures / "imap-session.pcap", width=120).splitlines()
    assert "Anomalies" in lines[0]  # one line per session still fits 120 columns
    (row,) = [line for line in lines if " failed " in line]
    # "(failed)" leaves the name too little room: the mark stands for it, not "carol (fail…"
    assert "carol ✗       failed" in row and cell_len(row) <= 120


def test_a_long_name_that_failed_keeps_the_mark_of_its_failure() -> None:
    from mailtrace.render.terminal import _shortened

    assert _shortened("digitalinvestigator", " (failed)", 12, " ✗") == "digitalin… ✗"
    assert _shortened("carol", " (failed)", 14, " ✗") == "carol (failed)"
    assert _shortened("digitalinvestigator", "", 12) == "digitalinve…"
