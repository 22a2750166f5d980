"""The default view's audit fixes: login outcome in the header, message problems in their row, the TLS
facts under the header, and what --show-secrets prints for digest mechanisms (APOP, CRAM-MD5)."""

from __future__ import annotations

import base64
from pathlib import Path

from term_pcap import SMTP_OK, Step, write_pcap
from term_render import render

from mailtrace.render.catalog import text as say

EHLO = SMTP_OK[:3]
"""Greeting, EHLO and its reply."""


def header(text: str) -> list[str]:
    """The header lines of the first session (title, facts, TLS facts) up to the table's heading."""
    lines = text.splitlines()
    return lines[: next(i for i, line in enumerate(lines) if line.startswith("No."))]


def row(text: str, frame: int) -> str:
    """The Info of one table row (wrapped lines rejoined), from a render without a width."""
    for line in text.splitlines():
        words = line.split()
        if words and words[0] == str(frame) and len(words) > 5:
            return line.split(words[4], 1)[1].strip()
    raise AssertionError(f"no row {frame}")


# --------------------------------------------------------------------------- 1. login outcome


def test_login_without_a_reply_is_not_called_failed(tmp_path: Path) -> None:
    script: list[Step] = [*EHLO, ("C", b"AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n")]
    pcap = write_pcap(tmp_path / "noreply.pcap", script, close=False)
    text = render("table", pcap, width=None)
    assert header(text)[1].endswith("· partial · user bob (login outcome unknown) · no TLS · 0 messages · 11 packets")
    assert "login failed" not in text
    assert "login bob: outcome not in the capture" in row(text, 10)
    listed = render("list", pcap, width=None)
    assert " bob (?) " in listed and "(failed)" not in listed


def test_refused_login_is_still_called_failed(tmp_path: Path) -> None:
    script: list[Step] = [*EHLO, ("C", b"AUTH PLAIN AGJvYgB3cm9uZw==\r\n"),
                          ("S", b"535 5.7.8 Authentication failed\r\n"), ("C", b"QUIT\r\n"), ("S", b"221 Bye\r\n")]
    pcap = write_pcap(tmp_path / "refused.pcap", script)
    text = render("table", pcap, width=None)
    assert "· user bob (login failed) ·" in header(text)[1]
    assert "outcome unknown" not in text
    assert " bob (failed) " in render("list", pcap, width=None)


def test_a_later_accepted_login_wins(tmp_path: Path) -> None:
    script: list[Step] = [*EHLO, ("C", b"AUTH PLAIN AGJvYgB3cm9uZw==\r\n"),
                          ("S", b"535 5.7.8 Authentication failed\r\n"), ("C", b"AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n"),
                          ("S", b"235 2.7.0 Authentication successful\r\n"), ("C", b"QUIT\r\n"), ("S", b"221 Bye\r\n")]
    text = render("table", write_pcap(tmp_path / "retry.pcap", script), width=None)
    assert "· user bob · no TLS ·" in header(text)[1]


def test_login_outcome_unknown_in_german(tmp_path: Path) -> None:
    script: list[Step] = [*EHLO, ("C", b"AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n")]
    text = render("table", write_pcap(tmp_path / "noreply.pcap", script, close=False), width=None, lang="de")
    assert "Benutzer bob (Ergebnis der Anmeldung unbekannt)" in text.splitlines()[1]
    assert say("ui.user_unknown", "fr", user="x") == "user x (login outcome unknown)"  # English fallback


# --------------------------------------------------------------------------- 2./3. message problems in the row


def test_cut_message_says_the_amount_is_unknown(tmp_path: Path) -> None:
    script: list[Step] = [*SMTP_OK[:9], ("C", b"From: a@b\r\nSubject: cut\r\n\r\npartial body\r\n"), ("rst", "C")]
    text = render("table", write_pcap(tmp_path / "cut.pcap", script), width=None)
    assert "message “cut” from a@b, 41 bytes, ⚠ incomplete (bytes missing, amount unknown)" in text
    assert "1 byte missing" not in text


def test_lost_end_marker_counts_the_missing_bytes(tmp_path: Path) -> None:
    body = b"From: a@b\r\nSubject: gap\r\n\r\n" + b"x" * 50 + b"\r\n"
    script: list[Step] = [*SMTP_OK[:9], ("C", body), ("lost", "C", 5), ("S", b"250 2.0.0 Ok: queued\r\n"),
                          *SMTP_OK[11:]]
    text = render("table", write_pcap(tmp_path / "lost.pcap", script), width=None)
    assert "message “gap” from a@b, 79 bytes, ⚠ incomplete (5 bytes missing)" in row(text, 24)


def test_mime_defects_are_counted_in_the_row(tmp_path: Path) -> None:
    broken = (b"From: a@b\r\nSubject: broken\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n"
              b"\r\n--XX\r\nContent-Type: text/plain\r\n\r\nhi\r\n\r\n.\r\n")
    script: list[Step] = [*SMTP_OK[:9], ("C", broken), *SMTP_OK[10:]]
    text = render("table", write_pcap(tmp_path / "defects.pcap", script), width=None)
    assert row(text, 22) == "C: message “broken” from a@b, 133 bytes, ⚠ 1 MIME defect"
    assert say("ui.defects", "en", n=2) == "2 MIME defects"


def test_a_sound_message_has_no_warning(tmp_path: Path) -> None:
    text = render("table", write_pcap(tmp_path / "ok.pcap", SMTP_OK), width=None)
    assert row(text, 22) == "C: message “Hello Bob” from Alice <alice@example.org>, 81 bytes"
    assert "⚠" not in text


def test_header_fetch_is_incomplete_by_request_not_a_warning(captures: Path) -> None:
    text = render("table", captures / "imap-session.pcap", width=None)
    assert ("message “Welcome to remote.example” from Alice Example <alice@local.example>, 120 bytes, "
            "partial by request (header only) | DPDO9 OK") in row(text, 50)
    top = render("table", captures / "pop3-session.pcap", width=None)
    assert row(top, 29).endswith("from Alice Example <alice@local.example>, 736 bytes, "
                                 "partial by request (TOP: the header and 3 body lines)")
    assert "⚠" not in text and "⚠" not in top


def test_client_reset_mid_message_in_the_lab(captures: Path) -> None:
    text = render("table", captures / "smtp-errors.pcap", width=None)
    assert "alice@local.example, 130 bytes, ⚠ incomplete (bytes missing, amount unknown)" in text
    assert "1 byte missing" not in text


# --------------------------------------------------------------------------- 4. TLS facts under the header


def test_tls_facts_of_starttls_with_keys(captures: Path) -> None:
    text = render("table", captures / "smtp-starttls.pcap", keylog=captures / "smtp-starttls.keylog", width=None)
    assert header(text)[2:] == [
        "  TLS: handshake 1.5 ms · client offers TLS 1.3, TLS 1.2, TLS 1.1, TLS 1.0 and 31 cipher suites · "
        "1,232 bytes from the client, 2,219 from the server · certificate "
        "O=mailtrace capture lab,CN=mx.remote.example · self-signed · valid 2026-11-26 to 2036-11-23 · "
        "SAN mx.remote.example · chain of 1 certificate",
    ]
    second = text.split("\nSession 2 ·", 1)[1]
    # tshark: cipher_suites_length 62 (31 suites), supported_versions 0x0304,0x0303,0x0302,0x0301
    assert ("  TLS: handshake 4.8 ms · client offers TLS 1.3, TLS 1.2, TLS 1.1, TLS 1.0 and 31 cipher suites · "
            "1,110 bytes from the client, 2,129 from the server · "
            "certificate encrypted (no keys)\n") in second


def test_tls_facts_of_implicit_tls_wrap_at_the_width(captures: Path) -> None:
    text = render("table", captures / "tls-implicit.pcap", keylog=captures / "tls-implicit.keylog", width=120)
    assert header(text) == [
        "Session 1 · SMTP · 127.0.0.11:53934 → 127.0.0.26:465 · tcp.stream eq 0",
        "  2026-11-26 13:22:51.397 UTC · 0.061 s · ended with RST · completed · user bob",
        "    implicit TLS: TLS 1.3, TLS_AES_256_GCM_SHA384, SNI mx.remote.example, decrypted · 1 message · 29 packets",
        "  TLS: handshake 11.0 ms · client offers TLS 1.3, TLS 1.2, TLS 1.1, TLS 1.0 and 31 cipher suites",
        "    1,227 bytes from the client, 2,291 from the server · certificate O=mailtrace capture lab,"
        "CN=mx.remote.example",
        "    self-signed · valid 2026-11-26 to 2036-11-23 · SAN mx.remote.example · chain of 1 certificate",
    ]
    imap = text.split("\nSession 2 ·", 1)[1]
    assert "  TLS: handshake 9.1 ms · client offers TLS 1.3, TLS 1.2, TLS 1.1, TLS 1.0 and 31 cipher suites" in imap
    assert "821 bytes from the client, 3,503 from the server" in imap


def test_cleartext_session_has_no_tls_facts(captures: Path) -> None:
    text = render("table", captures / "smtp-submission-auth.pcap", width=None)
    assert not any(line.startswith("  TLS:") for line in text.splitlines())


# --------------------------------------------------------------------------- 5. secrets of digest mechanisms


def test_apop_digest_and_hashcat_line_with_show_secrets(captures: Path) -> None:
    shown = render("table", captures / "pop3-session.pcap", show_secrets=True, width=None)
    assert row(shown, 69) == (
        "S: +OK Logged in. | login bob: accepted, digest 9608aedc46ffbc8e98e274bdafce4581, "
        "hashcat 9608aedc46ffbc8e98e274bdafce4581:<1fc.5.6b08329d.Esr3r9YQP/Tfc9iIhXd1vw==@mx>")
    assert "password 9608aedc" not in shown
    hidden = render("table", captures / "pop3-session.pcap", width=None)
    assert "hashcat" not in hidden and "login bob: accepted" in row(hidden, 69)


def test_cram_md5_hashcat_line_with_show_secrets(tmp_path: Path) -> None:
    challenge = base64.b64encode(b"<1896.697170952@postoffice.example.net>")
    response = base64.b64encode(b"tim b913a602c7eda7a495b4e6e7334d3890")
    script: list[Step] = [*EHLO, ("C", b"AUTH CRAM-MD5\r\n"), ("S", b"334 " + challenge + b"\r\n"),
                          ("C", response + b"\r\n"), ("S", b"235 2.7.0 Authentication successful\r\n"),
                          ("C", b"QUIT\r\n"), ("S", b"221 Bye\r\n")]
    pcap = write_pcap(tmp_path / "cram.pcap", script)
    shown = render("table", pcap, show_secrets=True, width=None)
    line = f"$cram_md5${challenge.decode()}${response.decode()}"
    assert (f"login tim: accepted, digest b913a602c7eda7a495b4e6e7334d3890, hashcat {line}") in shown
    assert "password b913a602" not in shown
    hidden = render("table", pcap, width=None)
    assert "b913a602" not in hidden and "$cram_md5$" not in hidden


def test_problems_are_in_the_warning_colour(tmp_path: Path) -> None:
    script: list[Step] = [*SMTP_OK[:9], ("C", b"From: a@b\r\nSubject: cut\r\n\r\npartial body\r\n"), ("rst", "C")]
    text = render("table", write_pcap(tmp_path / "cut.pcap", script), width=None, color=True)
    assert "\x1b[1;33m⚠ incomplete (bytes missing, amount unknown)\x1b[0m" in text
