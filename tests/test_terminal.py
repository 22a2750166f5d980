"""The default view: captioned packet tables checked against tshark and the lecture's storyline."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.cells import cell_len
from term_pcap import SMTP_OK, write_pcap
from term_render import analyze, render

from mailtrace.model import Phase
from mailtrace.render.terminal import TerminalRenderer

PHASES = tuple(p.value for p in Phase)
ROW = re.compile(r"^\s*(\d+)\s+(\d+\.\d{6})\s+(\S+)\s+(\S+)\s+(\S+)\s+(.*)$")


Row = tuple[int, float, str, str, str, str]


def parse(text: str) -> list[tuple[str, str, list[Row]]]:
    """Steps (phase, caption, rows), rows (frame, time, src, dst, proto, info); wrapped lines rejoined."""
    steps: list[tuple[str, str, list[Row]]] = []
    explaining = False
    for line in text.splitlines():
        word = line.split(" ", 1)[0]
        if word in PHASES and line[: len(word) + 1].strip() == word:
            steps.append((word, line[len(word) :].strip(), []))
            explaining = False
            continue
        if line.strip().startswith("↳"):
            explaining = True  # an explanation under the row (reply code, EHLO keyword), not its Info
            continue
        match = ROW.match(line)
        if match:
            explaining = False
        elif explaining:
            continue
        if match and steps:
            no, time, src, dst, proto, info = match.groups()
            steps[-1][2].append((int(no), float(time), src, dst, proto, info))
        elif line.startswith("  ") and line.strip() and steps and not line.startswith("  2"):
            phase, caption, rows = steps[-1]
            if rows:
                no_, time_, src_, dst_, proto_, info_ = rows[-1]
                rows[-1] = (no_, time_, src_, dst_, proto_, info_ + " " + line.strip())
            else:
                steps[-1] = (phase, caption + " " + line.strip(), rows)
    return steps


def first_session(text: str) -> str:
    return text.split("\nSession 2 ·", 1)[0]


def tshark_rows(path: Path, a: str, b: str, port: int) -> list[tuple[int, float, str, str]]:
    """Frames of the conversation a:port ↔ b:25 in a tshark summary (frame, time, protocol, info)."""
    rows = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) < 7 or parts[3] != "→":
            continue
        frame, time, src, dst, proto = int(parts[0]), float(parts[1]), parts[2], parts[4], parts[5]
        if {src, dst} != {a, b}:
            continue
        info = line.split(f" {proto} {parts[6]} ", 1)[1] if f" {proto} {parts[6]} " in line else ""
        if proto == "TCP" and str(port) not in info.split(" ", 3)[:3]:
            continue
        rows.append((frame, time, proto, info))
    return rows


# --------------------------------------------------------------------------- the seed story


def test_seed_story_first_session_tells_the_lecture_story(captures: Path) -> None:
    """The session's own rows and captions (the DNS and ident context rows: tests/test_context_view.py)."""
    text = first_session(render("table", captures / "smtp-relay-seed-story.pcap", context=False))
    steps = parse(text)
    assert [s[0] for s in steps] == [
        "setup",
        "greeting",
        "negotiation",
        "transfer",
        "transfer",
        "transfer",
        "transfer",
        "transfer",
        "teardown",
        "teardown",
    ]
    captions = [s[1] for s in steps]
    expected = [
        "TCP connection set up from the client 127.0.0.10 to the mail server (SYN, SYN/ACK, ACK)",
        "the server is ready to talk (220)",
        "the client identifies itself (EHLO); the server lists its extensions",
        "sender transferred and accepted",
        "recipient transferred and accepted",
        "start of the message transfer (DATA / 354)",
        "message transferred",
        "message accepted for delivery (250)",
        "positive end of the session (QUIT / 221)",
        "TCP teardown (FIN); the client closes first",
    ]
    assert captions == expected
    frames = [[r[0] for r in s[2]] for s in steps]
    assert frames[0] == [5, 6, 7]
    assert frames[1][0] == 14
    assert [f[0] for f in frames[3:8]] == [19, 27, 39, 41, 42]
    assert frames[8] == [43, 44] and frames[9][0] == 45
    infos = {r[0]: r[5] for s in steps for r in s[2]}
    assert infos[19] == "C: MAIL FROM:<alice@local.example>"
    assert infos[41].startswith("C: message “Lunch on Friday?” from Alice Example")
    assert "497 bytes" in infos[41]
    assert infos[5] == "44112 → 25 [SYN]" and infos[6] == "25 → 44112 [SYN, ACK]"


def test_rows_match_tshark_frames_times_and_info(captures: Path) -> None:
    """Every packet of the session, with tshark's frame number, time and (for single lines) its Info."""
    text = first_session(render("table", captures / "smtp-relay-seed-story.pcap", context=False))
    ours = [r for s in parse(text) for r in s[2]]
    theirs = tshark_rows(captures / "smtp-relay-seed-story.tshark.txt", "127.0.0.10", "127.0.0.25", 44112)
    assert [r[0] for r in ours] == [r[0] for r in theirs]
    for mine, tshark in zip(ours, theirs, strict=True):
        assert mine[1] == pytest.approx(tshark[1], abs=1e-6)
        if tshark[2] == "SMTP" and " | " not in tshark[3] and tshark[3][:3] in ("C: ", "S: "):
            assert mine[5] == tshark[3]
        if tshark[2] == "TCP":
            assert mine[4] == "TCP"
            assert mine[5] == tshark[3].split(" Seq=")[0]


def test_header_names_what_happened(captures: Path) -> None:
    text = render("table", captures / "smtp-relay-seed-story.pcap")
    head = text.splitlines()[:2]
    assert head[0] == "Session 1 · SMTP · 127.0.0.10:44112 → 127.0.0.25:25 · tcp.stream eq 0"
    for fact in (
        "2026-11-26 13:22:24.092 UTC",
        "0.033 s",
        "ended with FIN",
        "completed",
        "no login",
        "no TLS",
        "1 message",
        "21 packets",
    ):
        assert fact in head[1]
    assert "Session 2 · SMTP · 127.0.0.25:55488 → 127.0.0.26:25 · tcp.stream eq 2" in text


def test_pipelined_commands_share_a_step_and_replies_name_their_command(captures: Path) -> None:
    steps = parse(render("table", captures / "smtp-relay-seed-story.pcap").split("\nSession 2 ·", 1)[1])
    pipelined = next(s for s in steps if "recipient" in s[1])
    assert pipelined[1] == "recipient transferred and accepted; start of the message transfer (DATA / 354); 2 " \
                           "commands in one segment, sent without waiting for each reply (pipelining, RFC 2920)"
    assert [r[5] for r in pipelined[2]] == [
        "C: RCPT To:<bob@remote.example> | DATA",
        "S: 250 2.1.5 Ok (to RCPT) | 354 End data with <CR><LF>.<CR><LF>",
    ]
    body = next(s for s in steps if s[1] == "message transferred")
    assert body[2][0][0] == 76 and "in 2 segments (frames 76–78)" in body[2][0][5]


# --------------------------------------------------------------------------- other protocols and cases


def test_pop3_story(captures: Path) -> None:
    text = render("table", captures / "pop3-session.pcap")
    captions = [s[1] for s in parse(text)]
    for caption in (
        "identification: the client names the user bob (USER)",
        "authentication: the client sends the password (PASS) — in cleartext; the server accepts → TRANSACTION state",
        "status: 3 messages, 8,990 bytes in the mailbox (STAT)",
        "download of message 1 (RETR, 956 bytes)",
        "deletion mark for message 1 (DELE)",
        "positive end of the session (QUIT / +OK) → UPDATE state: message 3, marked with DELE, is deleted",
        "the deletion mark of message 1 is removed (RSET)",
        "the server is ready to talk (+OK) → AUTHORIZATION state; its timestamp makes APOP possible",
        "the client authenticates with APOP as bob — it sends an MD5 digest of the greeting's timestamp and the "
        "shared secret, never the secret itself; the server accepts → TRANSACTION state",
        "the client authenticates with AUTH PLAIN as bob — in cleartext; the server accepts (+OK) → TRANSACTION state",
    ):
        assert caption in captions
    assert any(
        c.startswith(
            "authentication: the client sends the password (PASS) — in cleartext; the server refuses: -ERR"
        )
        for c in captions
    )


def test_imap_story(captures: Path) -> None:
    captions = [s[1] for s in parse(render("table", captures / "imap-session.pcap"))]
    for caption in (
        "the server is ready to talk (* OK) → Not Authenticated state",
        "the client authenticates with LOGIN as carol — in cleartext; the server accepts (OK) → Authenticated state",
        "the client opens the mailbox INBOX (SELECT): 3 messages → Selected state",
        "download of message 2 (FETCH BODY[], 10758 bytes)",
        "the client waits for news from the server (IDLE)",
        "while the client idles, the server reports news: 5 EXISTS, 5 RECENT",
        "the client stops waiting (DONE); the server ends the IDLE (OK)",
        "deletion mark for message 3 (STORE +FLAGS (\\Deleted))",
        "positive end of the session (LOGOUT / BYE, OK) → Logout state",
    ):
        assert caption in captions


def test_submission_auth_and_rejected_recipient(captures: Path) -> None:
    captions = [s[1] for s in parse(render("table", captures / "smtp-submission-auth.pcap"))]
    assert (
        "the client authenticates with AUTH PLAIN as bob — in cleartext; the server accepts (235)" in captions
    )
    assert "recipient rejected: 550 5.1.1 bad destination mailbox address" in captions


def test_starttls_without_keys(captures: Path) -> None:
    text = first_session(render("table", captures / "smtp-starttls.pcap"))
    steps = parse(text)
    assert "STARTTLS: TLS 1.3, TLS_AES_256_GCM_SHA384, SNI mx.remote.example, not decrypted" in text
    assert [s[0] for s in steps][:6] == ["setup", "greeting", "negotiation", "negotiation", "tls", "tls"]
    assert steps[4][1] == (
        "TLS handshake: from here on the session is encrypted (TLS 1.3, TLS_AES_256_GCM_SHA384, "
        "SNI mx.remote.example)"
    )
    assert steps[5][1].startswith("encrypted application data (16 packets, 1,327 bytes)")
    assert {r[4] for r in steps[5][2]} == {"TLSv1.3"}
    assert "[decrypted]" not in text


def test_starttls_decrypted_with_key_log(captures: Path) -> None:
    text = first_session(
        render("table", captures / "smtp-starttls.pcap", keylog=captures / "smtp-starttls.keylog")
    )
    steps = parse(text)
    assert steps[4][1].endswith("— decrypted with the key log")
    after = [r for s in steps[5:] for r in s[2] if r[4] in ("SMTP", "IMF")]
    assert after and all(r[5].startswith("[decrypted] ") for r in after)
    before = [r for s in steps[:4] for r in s[2] if r[4] == "SMTP"]
    assert before and not any("[decrypted]" in r[5] for r in before)
    assert "inside TLS the client identifies itself again (EHLO); the server lists its extensions" in [
        s[1] for s in steps
    ]
    assert "the client authenticates with AUTH PLAIN as bob — inside TLS; the server accepts (235)" in [
        s[1] for s in steps
    ]


def test_no_acks_hides_pure_acks_but_not_the_handshake(captures: Path) -> None:
    full = parse(first_session(render("table", captures / "smtp-relay-seed-story.pcap")))
    quiet = parse(first_session(render("table", captures / "smtp-relay-seed-story.pcap", hide_acks=True)))
    frames = {r[0] for s in full for r in s[2]}
    kept = {r[0] for s in quiet for r in s[2]}
    assert frames - kept == {15, 17, 68}
    assert {5, 6, 7} <= kept


def test_time_counts_from_the_first_packet_of_the_capture(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "t.pcap", SMTP_OK, noise_first=3)
    rows = [r for s in parse(render("table", path)) for r in s[2]]
    assert rows[0][0] == 4  # three UDP frames, 0.5 s apart, come first
    assert rows[0][1] == pytest.approx(1.001, abs=1e-6)


def test_piped_output_is_never_cut_or_wrapped(captures: Path) -> None:
    text = render("table", captures / "imap-session.pcap", width=None)
    lines = text.splitlines()
    assert max(len(line) for line in lines) > 400
    assert "…" not in text
    envelope = next(line for line in lines if "DPDO6 OK Fetch completed" in line)
    assert "<seed-imap-1@client.local.example>" in envelope


def test_terminal_width_wraps_without_losing_text(captures: Path) -> None:
    for width in (80, 120):
        text = render("table", captures / "imap-session.pcap", width=width)
        assert all(cell_len(line) <= width for line in text.splitlines()), width
        assert "…" not in text
        words = " ".join(text.split())
        assert "<seed-imap-3@client.local.example>" in words


def test_colour_only_when_asked(captures: Path) -> None:
    plain = render("table", captures / "smtp-errors.pcap")
    coloured = render("table", captures / "smtp-errors.pcap", color=True)
    assert "\x1b[" not in plain
    assert "\x1b[" in coloured
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == plain


def test_peer_text_cannot_drive_the_terminal(tmp_path: Path) -> None:
    script = [
        ("S", b"220 mx\x1b]0;owned\x07 ready\r\n"),
        *SMTP_OK[1:9],
        ("C", b"From: a@example.org\r\nSubject: =?utf-8?q?hi=1B[2J=0Dthere?=\r\n\r\nx\r\n.\r\n"),
        *SMTP_OK[10:],
    ]
    path = write_pcap(tmp_path / "esc.pcap", script)
    for color in (False, True):
        text = render("table", path, color=color)
        visible = re.sub(r"\x1b\[[0-9;]*m", "", text)
        assert "\x1b" not in visible and "\x07" not in visible and "\r" not in visible
        assert "S: 220 mx␛]0;owned␇ ready" in visible
        assert "“hi␛[2J␍there”" in visible


def test_gap_and_partial_session(tmp_path: Path) -> None:
    script = [
        *SMTP_OK[:9],
        ("C", b"From: a@b\r\nSubject: gap\r\n\r\nfirst part\r\n"),
        ("lost", "C", 100),
        ("C", b"last part\r\n.\r\n"),
        ("S", b"250 2.0.0 Ok\r\n"),
        ("C", b"QUIT\r\n"),
        ("S", b"221 Bye\r\n"),
    ]
    text = render("table", write_pcap(tmp_path / "gap.pcap", script))
    assert "partial" in text.splitlines()[1] and "1 gap" in text.splitlines()[1]
    assert "[gap: 100 bytes from the client missing]" in text
    assert "gaps          1 (100 bytes)" in text


def test_capture_starting_mid_session(tmp_path: Path) -> None:
    text = render("table", write_pcap(tmp_path / "mid.pcap", SMTP_OK[3:], handshake=False))
    steps = parse(text)
    assert steps[0][1] == "sender transferred and accepted"
    assert "partial" in text.splitlines()[1]


def test_secrets_only_with_show_secrets(captures: Path) -> None:
    hidden = render("table", captures / "pop3-session.pcap")
    shown = render("table", captures / "pop3-session.pcap", show_secrets=True)
    assert "bob-pop3-Secret" not in hidden
    assert "login bob: accepted, password bob-pop3-Secret" in shown


def test_summary(captures: Path) -> None:
    text = render("table", captures / "smtp-errors.pcap")
    summary = text.split("\nSummary\n", 1)[1]
    assert "smtp-errors.pcap: pcap, 147 packets, 14,279 bytes, 0.615 s" in summary
    assert "packets read  147 (95 TCP, 93 in mail sessions)" in summary
    assert "sessions      3 (smtp 3)" in summary
    assert "messages      1" in summary
    assert (
        "anomalies     6 (unknown-command 3, incomplete-message 1, rcpt-without-mail 1, syntax 1)" in summary
    )
    assert "elapsed       1.00 s (147 packets/s)" in summary


def test_a_bare_stream_is_accepted_and_detected(captures: Path) -> None:
    """Live capture hands the renderer its stdout stream: not a terminal here, so no colour, no wrap."""
    sessions, stats = analyze(captures / "smtp-relay-seed-story.pcap")
    stream = io.StringIO()
    renderer = TerminalRenderer(stream)
    renderer.session(sessions[0])
    renderer.end(stats, 1.0)
    text = stream.getvalue()
    assert text.startswith("Session 1 · SMTP") and "\x1b[" not in text
    assert max(len(line) for line in text.splitlines()) > 120


def test_the_peers_lost_bytes_follow_the_rows_own_words() -> None:
    """A client packet that acknowledged server bytes the capture lacks showed 'C: [gap: 137 bytes from
    the server missing] | AUTH LOGIN', as if the client had sent the gap (PcapPlusPlus's Smtp.pcap)."""
    from tests.support import corpus, run_cli

    out = run_cli("analyze", "--width", "200", str(corpus("pcapplusplus/smtp"))).stdout
    assert "SMTP   C: AUTH LOGIN | [gap: 137 bytes from the server missing]" in out
    assert "C: [gap" not in out


def test_tls_bytes_without_a_record_of_their_own_are_not_labelled_with_the_mail_protocol() -> None:
    """Segments in the middle of a TLS record (a certificate in three segments) read 'IMAP S: 1460 bytes'
    between TLSv1.2 rows, as if plaintext IMAP crossed there (Zeek's imap-starttls); Wireshark shows
    them as TCP segments of a reassembled PDU."""
    from tests.support import corpus, run_cli

    out = run_cli("analyze", "--width", "200", str(corpus("zeek/tls-imap-starttls"))).stdout
    rows = {line.split()[0]: line for line in out.splitlines() if line[:4].strip().isdigit()}
    assert " TCP      S: 1,460 bytes" in rows["16"] and " TCP      S: 1,460 bytes" in rows["18"]
    assert " TLSv1.2  TLS certificate" in rows["19"]
    assert not [line for line in rows.values() if " IMAP " in line and "bytes" in line.split(" IMAP ")[1][:20]]


def test_a_proxys_handshake_rows_are_labelled_with_the_proxys_protocol(tmp_path: Path) -> None:
    """HTTP CONNECT rows read 'SMTP CONNECT mailin03…:25 / HTTP/1.0' (Zeek's connect-with-smtp)."""
    from tests.support import corpus, run_cli

    path = str(corpus("zeek/http-connect-with-smtp"))
    out = run_cli("analyze", "--width", "200", path).stdout
    assert " HTTP   CONNECT mailin03.sul.t-online.de:25 / HTTP/1.0" in out
    assert " HTTP   HTTP/1.0 200 Connection established" in out
    page = tmp_path / "r.html"
    assert run_cli("analyze", "--html", str(page), path).exit_code == 0
    assert page.read_text("utf-8").count("<td>HTTP</td>") == 2
    # the proxy's 200 and the server's greeting in one segment: a mail row in both views
    from tests.pcapgen import Capture, Tcp

    cap = Capture()
    t = Tcp(cap, server=("10.0.0.2", 8080)).handshake()
    t.c(b"CONNECT mx.example.org:25 HTTP/1.0\r\n\r\n")
    t.s(b"HTTP/1.0 200 Connection established\r\n\r\n220 mx.example.org ESMTP\r\n")
    t.c(b"EHLO me\r\n").s(b"250 mx\r\n").c(b"QUIT\r\n").s(b"221 bye\r\n").fin()
    merged = str(cap.write(tmp_path / "merged.pcap"))
    out = run_cli("analyze", "--width", "200", merged).stdout
    assert " HTTP   CONNECT mx.example.org:25" in out and " SMTP   S: HTTP/1.0 200" in out
    assert run_cli("analyze", "--html", str(page), merged).exit_code == 0
    assert page.read_text("utf-8").count("<td>HTTP</td>") == 1


def test_many_gaps_in_one_step_are_summed_up_in_one_sentence() -> None:
    """Eleven gaps made a five-line caption of 'N bytes from the server are missing from the capture;
    …' (Zeek's tcp-truncated-header); past three, one sentence sums them up by side."""
    from tests.support import corpus, run_cli

    out = run_cli("analyze", "--width", "200", str(corpus("zeek/tcp-truncated-header"))).stdout
    assert "11 gaps: 605 bytes are missing from the capture (477 from the server, 128 from the client)\n" in out
    assert "are missing from the capture;" not in out


def test_the_first_piece_of_a_client_hello_longer_than_a_segment_is_tcp(tmp_path: Path) -> None:
    """With implicit TLS the first piece of a ClientHello longer than a segment (post-quantum key shares
    make ~1.8 KB common) read 'SMTP C: 1,448 bytes'; Wireshark shows a TCP segment of a reassembled PDU."""
    import struct

    from tests.pcapgen import Capture, Tcp
    from tests.support import run_cli

    def record(kind: int, body: bytes) -> bytes:
        hs = bytes([kind]) + struct.pack("!I", len(body))[1:] + body
        return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs

    sni = b"mx.example.org"
    exts = struct.pack("!HHHBH", 0, len(sni) + 5, len(sni) + 3, 0, len(sni)) + sni
    exts += struct.pack("!HH", 43, 3) + b"\x02\x03\x04" + struct.pack("!HH", 21, 1700) + bytes(1700)
    hello = record(1, b"\x03\x03" + b"\x11" * 32 + b"\x00\x00\x04\x13\x01\x13\x02\x01\x00"
                   + struct.pack("!H", len(exts)) + exts)
    server = record(2, b"\x03\x03" + b"\x22" * 32 + b"\x00\x13\x01\x00\x00\x06\x00\x2b\x00\x02\x03\x04")
    cap = Capture()
    t = Tcp(cap, server=("10.0.0.2", 465)).handshake()
    t.c(hello[:1448]).c(hello[1448:]).s(server).fin()
    out = run_cli("analyze", "--width", "200", str(cap.write(tmp_path / "hello.pcap"))).stdout
    rows = {line.split()[0]: line for line in out.splitlines() if line[:4].strip().isdigit()}
    assert " TCP      C: 1,448 bytes" in rows["4"]
    assert "TLS client hello (SNI mx.example.org)" in rows["5"]


def test_delays_are_written_in_the_unit_they_round_to() -> None:
    """The latency table (and the charts) said '1e+03 ms' for 0.9997 s and '1.2e+03 min' for 20 hours."""
    from mailtrace.render.svg import fmt_latency

    assert [fmt_latency(v) for v in (0.000322, 0.0009996, 0.00107, 0.9997, 4.62, 1000.0, 72_000.0)] == [
        "322 µs", "1 ms", "1.07 ms", "1 s", "4.62 s", "16.7 min", "20.0 h"]
    assert fmt_latency(0.00107, "de") == "1,07 ms" and fmt_latency(72_000.0, "de") == "20,0 h"
