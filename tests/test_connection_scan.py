"""``connection-scan``: connections to a mail port that never carried a byte, over all sessions."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from mailtrace.capture.reader import open_capture
from mailtrace.config import Config
from mailtrace.findings import FindingsCollector, FindingsConfig
from mailtrace.pipeline import Analyzer
from tests.pcapgen import ACK, RST, SYN, Capture, Tcp


def attempts(tmp_path: Path, n: int, *, answer: int | None, step: float, clients: int = 50,
             talk: bool = False) -> Path:
    cap = Capture()
    ts = 1_700_000_000.0
    for i in range(n):
        t = Tcp(cap, client=(f"198.51.100.{1 + i % clients}", 30000 + i), server=("192.0.2.25", 25), ts=ts)
        t._emit("c", SYN)
        if answer is not None:
            t._emit("s", answer)
        ts += step
    if talk:  # a real conversation beside them
        Tcp(cap, client=("10.0.0.1", 40000), server=("192.0.2.25", 25), ts=ts).handshake() \
            .s(b"220 mx\r\n").c(b"QUIT\r\n").s(b"221 bye\r\n").fin()
    return cap.write(tmp_path / "attempts.pcap")


def findings_of(path: Path, **config: Any) -> list[dict[str, Any]]:
    collector = FindingsCollector(replace(FindingsConfig(), **config))
    for session in Analyzer(Config()).run([open_capture(str(path))]):
        collector.session(session)
    collector.end()
    return [f.to_json() for f in collector.findings() if f.id == "connection-scan"]


def test_a_scan_that_finds_the_port_closed_is_low(tmp_path: Path) -> None:
    [finding] = findings_of(attempts(tmp_path, 150, answer=RST | ACK, step=0.001, talk=True))
    assert finding["severity"] == "low" and finding["session"] is None
    assert finding["title"] == "Connection attempts to 192.0.2.25:25: 150 without a mail dialog"
    assert "150 refused with RST; from 50 clients (198.51.100.1," in finding["detail"]
    assert "a port scan" in finding["detail"] and len(finding["frames"]) == 20


def test_unanswered_syns_hundreds_a_second_are_a_flood(tmp_path: Path) -> None:
    [finding] = findings_of(attempts(tmp_path, 200, answer=None, step=0.001))
    assert finding["severity"] == "medium"
    assert finding["title"].startswith("SYN flood against 192.0.2.25:25: 200 without")
    assert "200 SYNs unanswered" in finding["detail"] and "backlog" in finding["detail"]


def test_slow_unanswered_syns_and_few_attempts_are_no_flood(tmp_path: Path) -> None:
    [slow] = findings_of(attempts(tmp_path, 120, answer=None, step=0.5))
    assert slow["severity"] == "low"
    assert findings_of(attempts(tmp_path, 99, answer=RST | ACK, step=0.001)) == []
    assert findings_of(attempts(tmp_path, 30, answer=RST | ACK, step=0.001), attempts_threshold=30) != []


def test_connections_that_talked_are_never_counted(tmp_path: Path) -> None:
    cap = Capture()
    for i in range(120):
        Tcp(cap, client=(f"198.51.100.{1 + i % 50}", 30000 + i), server=("192.0.2.25", 25),
            ts=1_700_000_000.0 + i * 0.001).handshake().s(b"220 mx\r\n").fin()
    assert findings_of(cap.write(tmp_path / "greeted.pcap")) == []
