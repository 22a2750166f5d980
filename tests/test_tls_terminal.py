"""The terminal view: what the ClientHello offered, encrypted alerts said once, and a huge message
whose end is past the row limit still named on its body row."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path
from typing import Any

from mailtrace.capture.reader import open_capture
from mailtrace.commands.common import build_config
from mailtrace.pipeline import Analyzer
from mailtrace.render.output import Output
from mailtrace.render.terminal import TerminalRenderer, tls_details, tls_offered
from mailtrace.session import Session
from tests.pcapgen import Capture, Tcp
from tests.support import run_cli, sample


def _fake_session(tls_info: dict[str, Any]) -> Session:
    from mailtrace.model import Endpoint
    from mailtrace.session import SessionBuilder

    builder = SessionBuilder(protocol="smtp", client=Endpoint("10.0.0.1", 40000), server=Endpoint("10.0.0.2", 465),
                             stream=0, file="x.pcap", tunnel=None)
    builder.tls = "implicit"
    builder.tls_info = tls_info
    return builder.finish(session_id=1, close="fin", record={})


INFO = {"version": "TLS 1.3", "cipher": "TLS_AES_256_GCM_SHA384", "sni": "mx.example",
        "client_versions": ["TLS 1.3", "TLS 1.2"], "cipher_suites_offered": 31, "alpn": [], "alerts": [],
        "certificates": [], "established": True, "decrypted": False}


def test_offered_versions_and_suites() -> None:
    assert tls_offered(INFO, "en") == "client offers TLS 1.3, TLS 1.2 and 31 cipher suites"
    assert tls_offered({**INFO, "cipher_suites_offered": 1, "client_versions": ["TLS 1.2"]}, "en") == \
        "client offers TLS 1.2 and 1 cipher suite"
    assert tls_offered({"client_versions": [], "cipher_suites_offered": 0}, "en") == ""  # no ClientHello seen
    details = [d for d, _ in tls_details(_fake_session(INFO), "en")]
    assert "client offers TLS 1.3, TLS 1.2 and 31 cipher suites" in details


def test_real_capture_header_shows_the_offer() -> None:
    out = run_cli("analyze", "--width", "200", str(sample("smtp-starttls.pcap"))).stdout
    # tls_info of this ClientHello (Python ssl / OpenSSL 3): four versions, 31 suites
    assert "client offers TLS 1.3, TLS 1.2, TLS 1.1, TLS 1.0 and 31 cipher suites" in out


def test_encrypted_alert_detail_is_said_once() -> None:
    info = {**INFO, "alerts": [{"direction": "server", "level": "encrypted", "description": "encrypted",
                                "frame": 9},
                               {"direction": "client", "level": "fatal", "description": "bad_record_mac",
                                "frame": 10}]}
    details = [d for d, _ in tls_details(_fake_session(info), "en")]
    assert "alert encrypted from the server" in details
    assert "alert fatal bad_record_mac from the client" in details
    assert not any("encrypted encrypted" in d for d in details)


# --------------------------------------------------------------------------- a message past the row limit

SUBJECT = "A very long message"


def big_message_capture(path: Path, segments: int) -> Path:
    cap = Capture()
    tcp = Tcp(cap).handshake()
    for who, data in (("s", b"220 mx ESMTP\r\n"), ("c", b"EHLO a\r\n"), ("s", b"250 mx\r\n"),
                      ("c", b"MAIL FROM:<a@example.com>\r\n"), ("s", b"250 ok\r\n"),
                      ("c", b"RCPT TO:<b@example.com>\r\n"), ("s", b"250 ok\r\n"), ("c", b"DATA\r\n"),
                      ("s", b"354 go\r\n")):
        (tcp.c if who == "c" else tcp.s)(data)
    tcp.c(b"From: A <a@example.com>\r\nSubject: " + SUBJECT.encode() + b"\r\n\r\n")
    for i in range(segments):
        tcp.c(b"line %06d of a long body\r\n" % i * 20)
    tcp.c(b".\r\n")
    tcp.s(b"250 queued\r\n")
    tcp.c(b"QUIT\r\n").s(b"221 bye\r\n").fin()
    return cap.write(path)


def render_table(path: Path, max_rows: int) -> tuple[str, Session]:
    config = build_config()
    config = replace(config, session=replace(config.session, max_rows=max_rows))
    analyzer = Analyzer(config)
    stream = io.StringIO()
    renderer = TerminalRenderer(Output(stream, width=200, color=False), stats=analyzer.stats)
    [session] = list(analyzer.run([open_capture(str(path))]))
    renderer.session(session)
    return stream.getvalue(), session


def test_message_past_the_row_limit_keeps_subject_and_size(tmp_path: Path) -> None:
    path = big_message_capture(tmp_path / "big.pcap", 60)
    full, whole = render_table(path, 20_000)
    cut, session = render_table(path, 30)
    assert session.rows_elided > 0 and whole.rows_elided == 0
    [message] = session.messages
    assert message.summary.subject == SUBJECT
    size = f"{message.summary.bytes:,} bytes"
    [full_row] = [ln for ln in full.splitlines() if SUBJECT in ln]
    [cut_row] = [ln for ln in cut.splitlines() if SUBJECT in ln]
    assert f"“{SUBJECT}”" in cut_row and size in cut_row and " IMF " in cut_row
    assert "message data" not in cut_row
    assert "segments" not in cut_row  # the listed segments are not all of the message
    assert "segments" in full_row
    assert size in full_row
    assert "more packet" in cut  # the row limit is still said
