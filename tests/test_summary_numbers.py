"""The summary groups every count the way the language writes numbers (it wrote "5,000 (smtp 5000)")."""

from __future__ import annotations

from pathlib import Path

from tests.pcapgen import ACK, RST, SYN, Capture, Tcp
from tests.support import run_cli


def probes(tmp_path: Path, n: int) -> Path:
    cap = Capture()
    for i in range(n):
        t = Tcp(cap, client=(f"10.0.{i // 250}.{1 + i % 250}", 40000 + i), server=("192.0.2.25", 25))
        t._emit("c", SYN)
        t._emit("s", RST | ACK)
    return cap.write(tmp_path / "probes.pcap")


def test_summary_counts_are_grouped_in_every_language(tmp_path: Path) -> None:
    path = probes(tmp_path, 1001)
    english = run_cli("analyze", "--list", "--status", "reset", str(path)).stdout
    assert "1,001; 1,001 shown (smtp 1,001), 0 hidden by the filter" in english
    german = run_cli("analyze", "--list", "--lang", "de", str(path)).stdout
    assert "1.001 (smtp 1.001)" in german
