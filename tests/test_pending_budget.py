"""Out-of-order bytes are bounded for the whole run, not only per direction.

Each direction may hold 2 MiB behind a hole, and 2,048 connections may be open at once: a capture of
many connections that each lost a segment, with no ACK to show the loss (a one-sided capture), could
make the analyzer hold gigabytes. Past ``FlowLimits.max_pending_all`` the direction that adds gives up
its hole, as when its own buffer is full, and says which limit it was."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from mailtrace.capture.reader import open_capture
from mailtrace.config import Config
from mailtrace.model import ByteBudget, Direction
from mailtrace.pipeline import Analyzer
from mailtrace.session import Session
from mailtrace.tcp.reassembly import PIECE_COST, Reassembler
from tests.pcapgen import Capture, Tcp

CONNECTIONS = 40
SEGMENTS = 30
SIZE = 1_000


def _lossy(tmp_path: Path) -> Path:
    """CONNECTIONS SMTP clients at once, each losing the first segment of its message and sending
    SEGMENTS more behind it before the server says anything (nothing shows the loss until the end)."""
    cap = Capture()
    for i in range(CONNECTIONS):
        t = Tcp(cap, client=(f"10.0.1.{i + 1}", 40000 + i), server=("10.0.0.2", 25), step=0.001).handshake()
        t.s(b"220 mx ESMTP\r\n").c(b"EHLO x\r\n").s(b"250 mx\r\n")
        t.c(b"MAIL FROM:<a@example.net>\r\n").s(b"250 ok\r\n").c(b"RCPT TO:<u@example.org>\r\n").s(b"250 ok\r\n")
        t.c(b"DATA\r\n").s(b"354 go\r\n")
        t.c(b"Subject: lost\r\n\r\n" + b"x" * (SIZE - 19) + b"\r\n", drop=True)
        for _ in range(SEGMENTS):
            t.c(b"y" * (SIZE - 2) + b"\r\n")
        t.c(b".\r\n").s(b"250 queued\r\n").c(b"QUIT\r\n").s(b"221 bye\r\n").fin()
    cap.frames.sort(key=lambda f: f.ts)
    return cap.write(tmp_path / "lossy.pcap")


def _run(path: Path, limit: int) -> list[Session]:
    config = Config()
    config = replace(config, flow=replace(config.flow, max_pending_all=limit))
    analyzer = Analyzer(config)
    sessions = list(analyzer.run([open_capture(str(path))]))
    assert analyzer.flows.pending_budget.held == 0  # every held byte went back
    return sessions


def test_all_connections_together_hold_at_most_the_run_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _lossy(tmp_path)
    held: list[int] = []
    hold = Reassembler._hold

    def watched(self: Reassembler, *args: object) -> None:
        hold(self, *args)  # type: ignore[arg-type]
        held.append(self.budget.held)

    monkeypatch.setattr(Reassembler, "_hold", watched)
    sessions = _run(path, 100_000)
    assert max(held) <= 100_000 + SIZE  # one segment past it, then the hole is given up
    unbounded = _run(path, 1 << 40)
    assert max(held) >= CONNECTIONS * SEGMENTS * SIZE  # without it, everything waited for the end
    assert len(sessions) == len(unbounded) == CONNECTIONS
    for s in sessions:  # the lost segment is a gap of its size either way; the message is partial
        assert [g.nbytes for g in s.gaps] == [SIZE]
        assert [m.summary.complete for m in s.messages] == [False]
        assert [(m.summary.missing_bytes) for m in s.messages] == [SIZE]
    said = [a.detail for s in sessions for a in s.anomalies if a.kind == "reorder-buffer-full"]
    assert said and all("the limit for all connections together (100,000 bytes) reached" in d for d in said)
    assert not [a for s in unbounded for a in s.anomalies if a.kind == "reorder-buffer-full"]


def test_a_connection_let_go_gives_its_held_bytes_back() -> None:
    budget = ByteBudget(10_000)
    r = Reassembler(Direction.CLIENT, budget=budget)
    r.segment(1000, b"", 0, True, False, 1, 0.0)
    r.segment(1101, b"z" * 500, 500, False, False, 2, 0.1)  # 100 bytes lost before it: held
    assert (r.pending_bytes, budget.held) == (500, 500 + PIECE_COST)  # its bytes and what holding them costs
    r.release()
    assert (r.pending, r.pending_bytes, budget.held) == ({}, 0, 0)
