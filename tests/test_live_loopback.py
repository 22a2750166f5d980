"""End to end on loopback, as root: real servers and stdlib clients while ``mailtrace live`` captures.

An aiosmtpd server and small scripted POP3/IMAP responders listen on 127.0.0.1 (free ports, named to
mailtrace with --port); smtplib, poplib and imaplib talk to them while ``mailtrace live -i lo`` runs
as a subprocess. What it reports must be what the clients did, and ``mailtrace analyze`` of the pcap
it wrote must report the same.
"""

from __future__ import annotations

import contextlib
import imaplib
import json
import os
import poplib
import select
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mailtrace.cli import main

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="live capture is Linux only (AF_PACKET)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="live capture needs root (or CAP_NET_RAW); CI runs as root"),
]

USER, PASSWORD = "alice", "s3cret"
MESSAGE = ("From: alice@example.test\r\nTo: bob@example.test\r\nSubject: {subject}\r\n"
           "Message-ID: <{subject}@example.test>\r\n\r\nHello from the live test.\r\n")


# ---------------------------------------------------------------------------------------------- servers
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LineServer:
    """A one-thread TCP server on 127.0.0.1 that runs ``serve(reader, send)`` for each connection."""

    def __init__(self, serve: Callable[[Any, Callable[[str], None]], None]) -> None:
        self.serve = serve
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn, conn.makefile("rb") as reader:
                def send(text: str, conn: socket.socket = conn) -> None:
                    conn.sendall(text.encode())
                with contextlib.suppress(OSError):
                    self.serve(reader, send)

    def close(self) -> None:
        self.sock.close()


def pop3_serve(reader: Any, send: Callable[[str], None]) -> None:
    body = MESSAGE.format(subject="live pop3")
    send("+OK POP3 responder ready\r\n")
    for raw in reader:
        verb = raw.decode().split(" ", 1)[0].strip().upper()
        if verb == "USER":
            send("+OK\r\n")
        elif verb == "PASS":
            send("+OK maildrop locked\r\n")
        elif verb == "STAT":
            send(f"+OK 1 {len(body)}\r\n")
        elif verb == "RETR":
            send(f"+OK {len(body)} octets\r\n{body}.\r\n")
        elif verb == "QUIT":
            send("+OK bye\r\n")
            return
        else:
            send("-ERR unknown command\r\n")


def imap_serve(reader: Any, send: Callable[[str], None]) -> None:
    body = MESSAGE.format(subject="live imap")
    send("* OK IMAP responder ready\r\n")
    for raw in reader:
        tag, _, rest = raw.decode().rstrip("\r\n").partition(" ")
        verb = rest.split(" ", 1)[0].upper()
        if verb == "CAPABILITY":
            send(f"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n{tag} OK CAPABILITY completed\r\n")
        elif verb == "LOGIN":
            send(f"{tag} OK LOGIN completed\r\n")
        elif verb == "SELECT":
            send("* 1 EXISTS\r\n* 0 RECENT\r\n* FLAGS (\\Seen)\r\n")
            send(f"{tag} OK [READ-WRITE] SELECT completed\r\n")
        elif verb == "FETCH":
            send(f"* 1 FETCH (BODY[] {{{len(body)}}}\r\n{body})\r\n{tag} OK FETCH completed\r\n")
        elif verb == "LOGOUT":
            send(f"* BYE logging out\r\n{tag} OK LOGOUT completed\r\n")
            return
        else:
            send(f"{tag} BAD unknown command\r\n")


class Servers:
    def __init__(self) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                return "250 2.0.0 queued"

        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
            return AuthResult(success=data.login == USER.encode() and data.password == PASSWORD.encode())

        self.smtp_port = free_port()
        self.smtp = Controller(Handler(), hostname="127.0.0.1", port=self.smtp_port,
                               authenticator=authenticator, auth_require_tls=False)
        self.smtp.start()
        self.pop3 = LineServer(pop3_serve)
        self.imap = LineServer(imap_serve)

    def ports(self) -> set[int]:
        return {self.smtp_port, self.pop3.port, self.imap.port}

    def ours(self, sessions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The sessions with these servers (other programs may use mail ports on loopback meanwhile)."""
        return [s for s in sessions if s["server"]["port"] in self.ports()]

    def port_options(self) -> list[str]:
        return ["--port", f"{self.smtp_port}=smtp", "--port", f"{self.pop3.port}=pop3",
                "--port", f"{self.imap.port}=imap"]

    def close(self) -> None:
        self.smtp.stop()
        self.pop3.close()
        self.imap.close()


@pytest.fixture()
def servers() -> Iterator[Servers]:
    pytest.importorskip("aiosmtpd", reason="aiosmtpd is a test dependency (pip install -e '.[test]')")
    s = Servers()
    try:
        yield s
    finally:
        s.close()


def send_mail(port: int) -> None:
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example.test", timeout=10) as smtp:
        smtp.ehlo()
        smtp.login(USER, PASSWORD)
        smtp.sendmail("alice@example.test", ["bob@example.test"], MESSAGE.format(subject="live smtp"))


def read_mail_pop3(port: int) -> None:
    pop = poplib.POP3("127.0.0.1", port, timeout=10)
    pop.user(USER)
    pop.pass_(PASSWORD)
    pop.stat()
    pop.retr(1)
    pop.quit()


def read_mail_imap(port: int) -> None:
    imap = imaplib.IMAP4("127.0.0.1", port, timeout=10)
    imap.login(USER, PASSWORD)
    imap.select("INBOX")
    imap.fetch("1", "(BODY[])")
    imap.logout()


# ---------------------------------------------------------------------------------------------- mailtrace
def start_live(*args: str) -> subprocess.Popen[str]:
    """``mailtrace live`` from this checkout, once it says it is listening."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "mailtrace", "live", "-i", "lo", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    line = read_line(proc.stderr, 15)
    if "listening on lo" not in line:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"mailtrace live did not start: {line}{err}")
    return proc


def read_line(stream: Any, timeout: float) -> str:
    ready, _, _ = select.select([stream], [], [], timeout)
    return str(stream.readline()) if ready else ""


def analyze_json(pcap: Path, *options: str) -> dict[str, Any]:
    result = CliRunner().invoke(main, ["analyze", "--format", "json", *options, str(pcap)])
    assert result.exit_code == 0, result.output
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def digest(session: dict[str, Any]) -> dict[str, Any]:
    """What a session says, without what depends on the run (ids, file name, report order)."""
    return {key: value for key, value in session.items() if key not in ("id", "file")}


# ---------------------------------------------------------------------------------------------- tests
def test_live_reports_what_the_clients_did_and_analyze_agrees(servers: Servers, tmp_path: Path) -> None:
    pcap = tmp_path / "live.pcap"
    proc = start_live("--duration", "3", "--format", "json", "--write", str(pcap), *servers.port_options())
    send_mail(servers.smtp_port)
    read_mail_pop3(servers.pop3.port)
    read_mail_imap(servers.imap.port)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    report = json.loads(out)

    sessions = {s["protocol"]: s for s in servers.ours(report["sessions"])}
    assert sorted(sessions) == ["imap", "pop3", "smtp"], err
    for s in sessions.values():
        assert s["close"] == "fin" and s["gaps"] == [] and s["file"] == "live:lo"
        assert s["user"] == USER

    smtp = sessions["smtp"]
    assert [c["verb"] for c in smtp["commands"]] == ["EHLO", "AUTH", "MAIL", "RCPT", "DATA", "QUIT"]
    assert smtp["server"]["port"] == servers.smtp_port and smtp["helo"] == "client.example.test"
    assert [(a["mechanism"], a["username"], a["success"]) for a in smtp["auth"]] == [("PLAIN", USER, True)]
    assert smtp["transactions"][0]["rcpt_to"] == ["bob@example.test"]
    assert [m["subject"] for m in smtp["messages"]] == ["live smtp"]

    pop3 = sessions["pop3"]
    assert [c["verb"] for c in pop3["commands"]] == ["USER", "PASS", "STAT", "RETR", "QUIT"]
    assert [m["subject"] for m in pop3["messages"]] == ["live pop3"]

    imap = sessions["imap"]
    assert [c["verb"] for c in imap["commands"]] == ["CAPABILITY", "LOGIN", "SELECT", "FETCH", "LOGOUT"]
    assert [m["subject"] for m in imap["messages"]] == ["live imap"]

    live = report["live"]
    assert live["interface"] == "lo" and live["stopped_by"] == "3 s elapsed"
    assert live["write"]["packets"] == report["capture"]["packets"] == live["packets"]
    assert report["capture"]["mail_packets"] == sum(s["packets"] for s in report["sessions"])
    assert "stopped (3 s elapsed)" in err and "IMAP 1, POP3 1, SMTP 1" in err

    again = analyze_json(pcap, *servers.port_options())
    assert again["capture"]["packets"] == report["capture"]["packets"]
    by_stream = {s["stream"]: digest(s) for s in again["sessions"]}
    assert by_stream == {s["stream"]: digest(s) for s in report["sessions"]}

    if shutil.which("tshark"):
        frames = subprocess.run(["tshark", "-r", str(pcap), "-T", "fields", "-e", "frame.number"],
                                capture_output=True, text=True, timeout=60, check=True).stdout.split()
        assert len(frames) == live["packets"]


def test_jsonl_streams_sessions_and_ctrl_c_flushes_the_open_one(servers: Servers, tmp_path: Path) -> None:
    pcap = tmp_path / "live.pcap"
    proc = start_live("--duration", "15", "--format", "jsonl", "--write", str(pcap), *servers.port_options())
    assert proc.stdout is not None
    read_mail_pop3(servers.pop3.port)
    first = None  # printed when it ends, not at the stop
    deadline = time.monotonic() + 8
    while first is None and time.monotonic() < deadline:
        line = read_line(proc.stdout, deadline - time.monotonic())
        if not line:
            break
        first = next(iter(servers.ours([json.loads(line)])), None)
    assert first is not None and first["protocol"] == "pop3" and first["close"] == "fin"

    lingering = smtplib.SMTP("127.0.0.1", servers.smtp_port, local_hostname="open.example.test", timeout=10)
    lingering.ehlo()
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=15)
    lingering.close()
    assert proc.returncode == 0, err
    rest = servers.ours([json.loads(line) for line in out.splitlines()])
    assert [(s["protocol"], s["close"], s["helo"]) for s in rest] == [("smtp", "open", "open.example.test")]
    assert "stopped (interrupted)" in err and "1 still open (reported as open)" in err

    again = analyze_json(pcap, *servers.port_options())
    assert [(s["protocol"], s["close"]) for s in servers.ours(again["sessions"])] == \
        [("pop3", "fin"), ("smtp", "open")]


def test_any_interface_captures_cooked_frames(servers: Servers, tmp_path: Path) -> None:
    pcap = tmp_path / "any.pcap"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailtrace", "live", "-i", "any", "--format", "json", "--write", str(pcap),
         "--duration", "10", *servers.port_options()],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    assert "listening on any (Linux cooked)" in read_line(proc.stderr, 15)
    read_mail_imap(servers.imap.port)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    report = json.loads(out)
    assert report["live"]["linktype"] == 113 and report["live"]["stopped_by"] == "terminated"
    imap = servers.ours(report["sessions"])
    assert len(imap) == 1 and imap[0]["user"] == USER and imap[0]["close"] == "fin"
    assert pcap.read_bytes()[20:24] == (113).to_bytes(4, sys.byteorder)
    again = analyze_json(pcap, *servers.port_options())
    assert [s["protocol"] for s in again["sessions"]] == [s["protocol"] for s in report["sessions"]]
