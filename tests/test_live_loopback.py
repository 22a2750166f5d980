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
import re
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


# ---------------------------------------------------------------------------------------------- parity with analyze
RESOLVER = "127.0.0.53"
CLIENT_ADDR = "127.0.0.2"  # the SMTP client's source address, so that the server (127.0.0.1) is another host


class Resolver:
    """A DNS "server" on 127.0.0.53:53 that answers one scripted question per call (needs root for port 53)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.bind((RESOLVER, 53))
        except OSError as exc:
            self.sock.close()
            pytest.skip(f"cannot listen on {RESOLVER}:53 for the DNS part: {exc}")

    def lookup(self, asker: str, name: str, answer: str) -> None:
        """``asker`` asks for the A record of ``name`` and gets ``answer``, as a resolver client would."""
        from dnsgen import dns_message

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.bind((asker, 0))
            client.settimeout(5)
            client.sendto(dns_message(0x4D54, name, "A"), (RESOLVER, 53))
            _query, address = self.sock.recvfrom(512)
            self.sock.sendto(dns_message(0x4D54, name, "A", response=True, answers=((name, "A", answer),)),
                             address)
            client.recvfrom(512)

    def close(self) -> None:
        self.sock.close()


def send_mail_with_a_dnsbl_lookup(port: int, resolver: Resolver) -> None:
    """AUTH PLAIN in cleartext from 127.0.0.2; during the dialog the server asks a blocklist about the client."""
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example.test", timeout=10,
                      source_address=(CLIENT_ADDR, 0)) as smtp:
        smtp.ehlo()
        resolver.lookup("127.0.0.1", "2.0.0.127.zen.spamhaus.org", "127.0.0.2")
        smtp.login(USER, PASSWORD)
        smtp.sendmail("alice@example.test", ["bob@example.test"], MESSAGE.format(subject="live smtp"))


def stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """Ctrl-C once the clients are done (and their last ACKs are in): what live wrote, on a slow machine too."""
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    return proc.communicate(timeout=30)


def by_stream(report: dict[str, Any], value: Any) -> Any:
    """Findings or flows as they do not depend on the run: session ids become tcp.stream numbers (live
    numbers sessions as they end, analyze as they start; the streams are the same) and file names go."""
    stream = {s["id"]: s["stream"] for s in report["sessions"]}
    if isinstance(value, list):
        return [by_stream(report, item) for item in value]
    if isinstance(value, dict):
        return {key: stream[item] if key == "session" and item is not None else
                [stream[i] for i in item] if key == "sessions" else by_stream(report, item)
                for key, item in value.items() if key != "file"}
    return value


def _unordered(items: list[Any]) -> list[str]:
    return sorted(json.dumps(item, sort_keys=True) for item in items)


def test_live_json_and_html_have_the_findings_stats_and_flows_of_analyze(servers: Servers, tmp_path: Path) -> None:
    resolver = Resolver()
    pcap, page = tmp_path / "live.pcap", tmp_path / "live.html"
    try:
        proc = start_live("--duration", "30", "--format", "json", "--write", str(pcap), "--html", str(page),
                          *servers.port_options())
        send_mail_with_a_dnsbl_lookup(servers.smtp_port, resolver)
        read_mail_pop3(servers.pop3.port)
        out, err = stop(proc)
    finally:
        resolver.close()
    assert proc.returncode == 0, err
    report = json.loads(out)
    assert {"findings", "stats", "flows", "live"} <= set(report)
    smtp = next(s for s in servers.ours(report["sessions"]) if s["protocol"] == "smtp")
    assert smtp["client"]["ip"] == CLIENT_ADDR

    # what the clients did makes the findings analyze makes of such traffic
    cleartext = [f for f in report["findings"] if f["id"] == "cleartext-credentials"]
    assert sorted((f["session"], f["severity"]) for f in cleartext) == sorted(
        (s["id"], "high") for s in servers.ours(report["sessions"]) if s["protocol"] in ("smtp", "pop3"))
    smtp_login = next(f for f in cleartext if f["session"] == smtp["id"])
    assert smtp_login["title"] == f"SMTP password of user {USER} sent in cleartext"
    assert "AUTH PLAIN" in smtp_login["detail"]
    # the DNS lookup was captured (the default filter takes port 53), attributed, and heard by the findings
    dnsbl = [f for f in report["findings"] if f["id"] == "dnsbl-lookup"]
    assert [(f["severity"], f["title"]) for f in dnsbl] == [
        ("low", f"{CLIENT_ADDR} is listed on zen.spamhaus.org (127.0.0.2)")]
    assert [(c["kind"], c["purpose"], c["query"], c["answers"]) for c in smtp["context"]] == [
        ("dns", "dnsbl", "2.0.0.127.zen.spamhaus.org", ["127.0.0.2"])]
    # the statistics count the same sessions, logins and messages
    stats = report["stats"]
    protocols = {p["protocol"]: p["sessions"] for p in stats["protocols"]}
    assert protocols["smtp"] >= 1 and protocols["pop3"] >= 1
    assert stats["auth"]["mechanisms"]["smtp PLAIN"] == 1 and stats["auth"]["cleartext"] >= 2
    assert stats["findings"]["total"] == len(report["findings"])

    # analyze of the written pcap says the same: findings, statistics and flows
    again = analyze_json(pcap, *servers.port_options())
    # in the order each run met the sessions: live as they end, analyze as they start (the SMTP session
    # can end after the POP3 one began when its last ACK is late)
    assert _unordered(by_stream(report, report["findings"])) == _unordered(by_stream(again, again["findings"]))
    assert _unordered(by_stream(report, report["flows"])) == _unordered(by_stream(again, again["flows"]))
    flows = {flow["subject"]: [hop["session"] for hop in flow["hops"]] for flow in report["flows"]}
    assert flows["live smtp"] == [smtp["id"]]
    for key in ("protocols", "auth", "messages", "commands", "hierarchy", "smtp_replies"):
        assert report["stats"][key] == again["stats"][key], key

    # the HTML report: the findings and statistics sections, drawn from the same keys
    html = page.read_text(encoding="utf-8")
    findings = html[html.index('<section id="findings"'):html.index("</section>", html.index('<section id="findings"'))]
    assert 'id="findings-table"' in findings
    assert f"SMTP password of user {USER} sent in cleartext" in findings
    assert f"{CLIENT_ADDR} is listed on zen.spamhaus.org (127.0.0.2)" in findings
    assert '<section id="statistics"' in html
    assert "mailtrace live" in html[:html.index("</title>")]


def test_live_text_prints_the_findings_block_in_the_language_and_width_asked(servers: Servers) -> None:
    resolver = Resolver()
    try:
        proc = start_live("--duration", "30", "--width", "72", "--lang", "de", "--no-context",
                          *servers.port_options())
        send_mail_with_a_dnsbl_lookup(servers.smtp_port, resolver)
        out, err = stop(proc)
    finally:
        resolver.close()
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 72
    assert "Standard query" not in out  # --no-context: no context rows, but the findings still see the DNS
    findings = out.index("Befunde: ")
    # --lang de: the session table, its summary and the findings block's labels in German (titles stay English)
    assert out.index("Sitzung 1 · SMTP") < out.index("Zusammenfassung") < findings
    block = out[findings:]
    assert re.search(rf"HOCH +SMTP password of user {USER} sent in cleartext", block), block
    assert re.search(rf"NIEDRIG +{re.escape(CLIENT_ADDR)} is listed on zen.spamhaus.org \(127.0.0.2\)", block), block
