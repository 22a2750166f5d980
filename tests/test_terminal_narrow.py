"""Long IPv6 addresses on an 80-column terminal: the packet table, the list and the header fit."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.cells import cell_len

from mailtrace.render.terminal import _elided
from tests.pcapgen import Capture, Tcp
from tests.support import corpus, run_cli

CLIENT = "2001:470:e5bf:dead:4957:2174:e82c:4887"
SERVER = "2607:f8b0:400c:c03::1a"


@pytest.fixture
def ipv6_capture(tmp_path: Path) -> Path:
    cap = Capture()
    t = Tcp(cap, client=(CLIENT, 63943), server=(SERVER, 25)).handshake()
    for side, line in [("s", b"220 mx.google.com ESMTP m17si1051593vck.2 - gsmtp\r\n"), ("c", b"EHLO a\r\n"),
                       ("s", b"250 mx.google.com at your service\r\n"), ("c", b"QUIT\r\n"),
                       ("s", b"221 2.0.0 closing connection\r\n")]:
        (t.c if side == "c" else t.s)(line)
    t.fin()
    return cap.write(tmp_path / "v6.pcap")


def test_the_packet_table_elides_long_addresses_in_the_middle(ipv6_capture: Path) -> None:
    text = run_cli("analyze", "--no-color", "--width", "80", str(ipv6_capture)).stdout
    assert max(cell_len(line) for line in text.splitlines()) <= 80
    assert f"[{CLIENT}]:63943 →" in text  # the header gives them whole
    greeting = next(line for line in text.splitlines() if "S: 220" in line)
    assert f" {_elided(SERVER, 15)} {_elided(CLIENT, 15)} " in greeting
    wide = run_cli("analyze", "--no-color", "--width", "160", str(ipv6_capture)).stdout
    greeting = next(line for line in wide.splitlines() if "S: 220" in line)
    assert greeting.split()[2:4] == [SERVER, CLIENT]  # room enough: whole addresses, as Wireshark shows them


def test_elided_addresses_keep_both_ends() -> None:
    assert _elided(CLIENT, 15) == "2001:47…2c:4887"
    assert _elided(SERVER, 15) == "2607:f8…c03::1a"


@pytest.mark.parametrize("width", [80, 130])
def test_the_list_gives_long_endpoints_a_line_of_their_own(ipv6_capture: Path, width: int) -> None:
    text = run_cli("analyze", "--no-color", "--list", "--width", str(width), str(ipv6_capture)).stdout
    lines = text.splitlines()
    assert max(cell_len(line) for line in lines) <= width
    at = next(i for i, line in enumerate(lines) if line.startswith("   1  smtp   "))
    entry = " ".join(" ".join(lines[at:]).split())
    assert entry.startswith(f"1 smtp [{CLIENT}]:63943 → [{SERVER}]:25 completed · 0 messages · ")
    piped = run_cli("analyze", "--no-color", "--list", str(ipv6_capture)).stdout  # piped: one line, whole
    assert f"[{CLIENT}]:63943  [{SERVER}]:25" in piped


def test_two_addresses_never_elide_to_the_same_text(tmp_path: Path) -> None:
    """Client and server in one /64 with the same last groups: the elision widens until they differ."""
    client, server = "2001:db8:aaaa:bbbb:1111:2222:3333:4444", "2001:db8:aaaa:bbbb:9999:2222:3333:4444"
    assert _elided(client, 15) == _elided(server, 15)  # what a fixed width would show for both
    cap = Capture()
    t = Tcp(cap, client=(client, 40000), server=(server, 25)).handshake()
    t.s(b"220 hi\r\n").c(b"QUIT\r\n").s(b"221 bye\r\n").fin()
    text = run_cli("analyze", "--no-color", "--width", "80", str(cap.write(tmp_path / "x.pcap"))).stdout
    greeting = next(line for line in text.splitlines() if "S: 220" in line)
    source, destination = greeting.split()[2:4]
    assert source != destination and "…" in source and "…" in destination
    assert source.startswith("2001:db8:") and destination.startswith("2001:db8:")


def test_long_times_of_a_spliced_capture_lose_decimals_not_the_edge() -> None:
    """Zeek's smtp.pcap splices a second session years after the first: its Time reads 183109020.394221,
    which left the Info column no room at 80 columns. The decimals go first; at 200 columns they stay."""
    path = corpus("zeek/smtp")
    text = run_cli("analyze", "--no-color", "--width", "80", str(path)).stdout
    assert max(cell_len(line) for line in text.splitlines()) <= 80
    assert " 70 183109020.4 192.168.133.102 192.168.133.100 SMTP  S: 250 uprise" in text
    wide = run_cli("analyze", "--no-color", "--width", "200", str(path)).stdout
    assert "183109020.394221" in wide
