"""Helpers of the findings and statistics tests: shared data, running the analyzer, building pcaps.

:class:`PcapBuilder` writes real pcap files with dpkt — Ethernet/IPv4/TCP with a handshake, correct
sequence numbers, one segment per :meth:`Conversation.client` / :meth:`Conversation.server` call —
so synthetic tests go through the same pipeline as captured traffic.
"""

from __future__ import annotations

import base64
import csv
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import dpkt
import pytest

from mailtrace.capture.reader import open_capture
from mailtrace.commands.common import build_config
from mailtrace.findings import Finding, FindingsCollector, FindingsConfig
from mailtrace.pipeline import Analyzer, CaptureStats
from mailtrace.session import Session
from mailtrace.stats import Statistics, StatsCollector
from mailtrace.tls import KeyLog


def shared_dir() -> Path:
    """The repo's sibling folder ``shared`` ($MAILTRACE_SHARED overrides)."""
    env = os.environ.get("MAILTRACE_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[1] / ".." / "shared"


def require_shared() -> Path:
    root = shared_dir()
    if not (root / "samples-src" / "captures").is_dir() or not (root / "corpus" / "MANIFEST.tsv").is_file():
        pytest.skip(f"shared test data not found at {root} (set MAILTRACE_SHARED)")
    return root


def sample(name: str) -> Path:
    return require_shared() / "samples-src" / "captures" / name


def corpus_rows() -> list[dict[str, str]]:
    root = require_shared() / "corpus"
    with (root / "MANIFEST.tsv").open(newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


@dataclass
class Run:
    """Everything one analysis produced."""

    sessions: list[Session]
    findings: FindingsCollector
    stats: StatsCollector
    capture: CaptureStats

    def of(self, id_: str) -> list[Finding]:
        return [f for f in self.findings.findings() if f.id == id_]

    def result(self) -> Statistics:
        return self.stats.result()


def analyze(*paths: Path | str, keylog: Path | None = None, **config: object) -> Run:
    """Run the pipeline over capture files with a findings collector and a stats collector."""
    analyzer = Analyzer(build_config(), keylog=KeyLog.from_file(str(keylog)) if keylog else None)
    findings = FindingsCollector(FindingsConfig(**config))  # type: ignore[arg-type]
    stats = StatsCollector()
    sessions: list[Session] = []
    for session in analyzer.run([open_capture(str(p)) for p in paths]):
        sessions.append(session)
        findings.session(session)
        stats.session(session)
    findings.end(analyzer.stats)
    stats.end(analyzer.stats)
    assert findings.errors == [], findings.errors
    return Run(sessions, findings, stats, analyzer.stats)


# --------------------------------------------------------------------------- synthetic captures


@dataclass
class Conversation:
    """One TCP connection being written; times advance by ``step`` per segment."""

    builder: PcapBuilder
    client: tuple[str, int]
    server: tuple[str, int]
    seq: list[int] = field(default_factory=lambda: [1000, 50000])

    def _segment(self, from_client: bool, flags: int, payload: bytes = b"") -> None:
        b = self.builder
        src, dst = (self.client, self.server) if from_client else (self.server, self.client)
        d = 0 if from_client else 1
        tcp = dpkt.tcp.TCP(
            sport=src[1],
            dport=dst[1],
            seq=self.seq[d],
            ack=self.seq[1 - d],
            flags=flags,
            win=65535,
            data=payload,
        )
        tcp.off = 5
        ip = dpkt.ip.IP(
            src=socket.inet_aton(src[0]),
            dst=socket.inet_aton(dst[0]),
            p=dpkt.ip.IP_PROTO_TCP,
            ttl=64,
            data=tcp,
        )
        ip.len = 20 + len(bytes(tcp))
        eth = dpkt.ethernet.Ethernet(
            src=b"\x02\x00\x00\x00\x00\x01",
            dst=b"\x02\x00\x00\x00\x00\x02",
            type=dpkt.ethernet.ETH_TYPE_IP,
            data=ip,
        )
        b.frames.append((b.ts, bytes(eth)))
        b.ts += b.step
        self.seq[d] = (
            self.seq[d] + len(payload) + (1 if flags & (dpkt.tcp.TH_SYN | dpkt.tcp.TH_FIN) else 0)
        ) % (1 << 32)

    def open(self) -> Conversation:
        self._segment(True, dpkt.tcp.TH_SYN)
        self.seq[1] = 50000
        self._segment(False, dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK)
        self._segment(True, dpkt.tcp.TH_ACK)
        return self

    def client_says(self, data: bytes) -> Conversation:
        self._segment(True, dpkt.tcp.TH_ACK | dpkt.tcp.TH_PUSH, data)
        return self

    def server_says(self, data: bytes) -> Conversation:
        self._segment(False, dpkt.tcp.TH_ACK | dpkt.tcp.TH_PUSH, data)
        return self

    def talk(self, *lines: bytes | str) -> Conversation:
        """Alternate: ``S:``-prefixed lines come from the server, the others from the client."""
        for line in lines:
            raw = line.encode() if isinstance(line, str) else line
            if raw.startswith(b"S:"):
                self.server_says(raw[2:])
            else:
                self.client_says(raw)
        return self

    def close(self) -> None:
        self._segment(True, dpkt.tcp.TH_ACK | dpkt.tcp.TH_FIN)
        self._segment(False, dpkt.tcp.TH_ACK | dpkt.tcp.TH_FIN)
        self._segment(True, dpkt.tcp.TH_ACK)


@dataclass
class PcapBuilder:
    """Writes conversations one after the other into one pcap file."""

    ts: float = 1_700_000_000.0
    step: float = 0.01
    frames: list[tuple[float, bytes]] = field(default_factory=list)
    next_port: int = 40000

    def conversation(
        self, client_ip: str, server: tuple[str, int], *, at: float | None = None
    ) -> Conversation:
        if at is not None:
            self.ts = max(self.ts, at)
        self.next_port += 1
        return Conversation(self, (client_ip, self.next_port), server).open()

    def write(self, path: Path) -> Path:
        with path.open("wb") as f:
            writer = dpkt.pcap.Writer(f, linktype=dpkt.pcap.DLT_EN10MB)
            for ts, frame in self.frames:
                writer.writepkt(frame, ts=ts)
        return path


def smtp_lines(*lines: str) -> list[bytes]:
    """``"S:220 hi"`` / ``"EHLO x"`` → wire lines with CRLF."""
    return [(line + "\r\n").encode() for line in lines]


def frames_of(findings: Iterable[Finding]) -> set[int]:
    return {fr for f in findings for fr in f.frames}


# --------------------------------------------------------------------------- SMTP scenes

MX = ("93.184.216.34", 25)
SUBMISSION = ("93.184.216.34", 587)
ATTACKER = "45.33.32.156"
GREETING = "S:220 mx.example.org ESMTP Postfix\r\n"
EHLO_REPLY = "S:250-mx.example.org\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 AUTH PLAIN LOGIN\r\n"
TLS_BYTES = b"\x16\x03\x01\x00\x2a" + bytes(42)


def plain(user: str, password: str) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def failed_login(b: PcapBuilder, client: str, user: str, password: str = "123456", ok: bool = False) -> None:
    c = b.conversation(client, SUBMISSION)
    c.talk(
        GREETING,
        "EHLO x\r\n",
        EHLO_REPLY,
        f"AUTH PLAIN {plain(user, password)}\r\n",
        "S:235 2.7.0 Authentication successful\r\n" if ok else "S:535 5.7.8 Authentication failed\r\n",
        "QUIT\r\n",
        "S:221 2.0.0 Bye\r\n",
    )
    c.close()


def envelope(
    b: PcapBuilder, client: str, mail_from: str, rcpt: str, reply: str, *, at: float | None = None
) -> None:
    c = b.conversation(client, MX, at=at)
    c.talk(
        GREETING,
        "EHLO relay.sender.example\r\n",
        "S:250 mx.example.org\r\n",
        f"MAIL FROM:<{mail_from}>\r\n",
        "S:250 2.1.0 Ok\r\n",
        f"RCPT TO:<{rcpt}>\r\n",
        f"S:{reply}\r\n",
        "QUIT\r\n",
        "S:221 2.0.0 Bye\r\n",
    )
    c.close()
