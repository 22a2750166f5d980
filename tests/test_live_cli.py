"""``mailtrace live`` and ``mailtrace interfaces`` on the command line: errors, filters, listing."""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailtrace.capture import live as capture_live
from mailtrace.capture.live import SNAPLEN, LiveError, all_ports_filter, compile_filter, mail_filter
from mailtrace.cli import main

ROOT = Path(__file__).resolve().parent.parent


def libpcap_available() -> bool:
    try:
        compile_filter("tcp", 1)
    except (ImportError, OSError):
        return False
    return True


needs_libpcap = pytest.mark.skipif(not libpcap_available(),
                                   reason="libpcap is not installed (filters need it)")
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="live capture is Linux only")


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


@linux_only
def test_unknown_interface_lists_the_existing_ones() -> None:
    code, output = invoke("live", "-i", "nosuch0", "--duration", "1")
    assert code == 2
    assert output.count("\n") == 1 and "Traceback" not in output
    assert "no interface 'nosuch0'; capture interfaces: any, lo" in output


@linux_only
def test_interface_down(monkeypatch: pytest.MonkeyPatch) -> None:
    real = capture_live._sysfs_int
    monkeypatch.setattr(capture_live, "_sysfs_int",
                        lambda name, attr: 0 if attr == "flags" else real(name, attr))
    code, output = invoke("live", "-i", "lo")
    assert code == 2
    assert output == ("mailtrace: interface lo is down: bring it up (sudo ip link set lo up) "
                      "or pick another (mailtrace interfaces)\n")


@linux_only
def test_no_permission_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object) -> socket.socket:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr("socket.socket", refuse)
    code, output = invoke("live", "-i", "lo")
    assert code == 2
    assert output == (f"mailtrace: no permission to capture on lo: {capture_live.PERMISSION_HINT}\n")
    assert "setcap cap_net_raw,cap_net_admin=eip" in output


def test_not_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.platform", "darwin")
    code, output = invoke("live", "-i", "en0")
    assert code == 2
    assert "live capture needs Linux (AF_PACKET)" in output and "mailtrace analyze" in output


def test_filter_and_all_ports_exclude_each_other() -> None:
    code, output = invoke("live", "-i", "lo", "-f", "tcp", "--all-ports")
    assert code == 2 and "use one of them" in output


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root and setpriv to run a process without CAP_NET_RAW")
def test_no_permission_for_real() -> None:
    drop = "-net_raw,-net_admin"
    result = subprocess.run(
        ["setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}", sys.executable, "-m", "mailtrace", "live",
         "-i", "lo", "--duration", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"mailtrace: no permission to capture on lo: {capture_live.PERMISSION_HINT}\n"


def test_default_filter_covers_the_mail_ports_and_port_options() -> None:
    assert mail_filter([25, 110, 25, 12525]) == "tcp and (port 25 or port 110 or port 12525)"


def test_default_filter_takes_the_dns_and_ident_traffic_of_the_context_layer() -> None:
    assert mail_filter([25, 110], context=True) == \
        "(tcp and (port 25 or port 53 or port 110 or port 113)) or (udp and port 53)"
    assert all_ports_filter(context=True) == "tcp or (udp and port 53)"
    assert all_ports_filter() == "tcp"


def test_options_shared_with_analyze_are_checked_before_the_capture() -> None:
    code, output = invoke("live", "-i", "lo", "--html", "-")
    assert code == 2 and output.startswith("mailtrace: --html -: standard output carries") and output.count("\n") == 1
    code, output = invoke("live", "-i", "lo", "--lang", "xx")
    assert code == 2 and output == "mailtrace: --lang xx: no such language (use de, en)\n"
    code, output = invoke("live", "-i", "lo", "--local-domains", "not a domain")
    assert code == 2 and "--local-domains" in output


@needs_libpcap
def test_filters_compile_for_each_link_layer_with_the_full_snap_length() -> None:
    for linktype in (1, 101, 113, 12):
        for expression in (mail_filter([25, 587]), mail_filter([25, 587], context=True),
                           all_ports_filter(context=True)):
            insns = compile_filter(expression, linktype)
            returns = {k for code, _jt, _jf, k in insns if code == 0x06}
            assert returns == {0, SNAPLEN}, (linktype, expression)


@needs_libpcap
def test_a_bad_filter_is_a_one_line_error() -> None:
    with pytest.raises(LiveError, match=r"^-f 'tcp port': .*syntax error"):
        compile_filter("tcp port", 1)
    code, output = invoke("live", "-i", "lo", "-f", "tcp port")
    assert code == 2 and output.startswith("mailtrace: -f 'tcp port': ") and output.count("\n") == 1


@needs_libpcap
@linux_only
def test_link_layer_filters_on_any_explain_why_they_fail() -> None:
    code, output = invoke("live", "-i", "any", "-f", "ether host 02:00:00:00:00:01")
    assert code == 2
    assert "(with -i any the filter sees IP packets, no link header)" in output


@linux_only
def test_interfaces_lists_loopback_and_any() -> None:
    code, output = invoke("interfaces")
    assert code == 0
    lines = output.splitlines()
    assert lines[0].split() == ["Interface", "State", "Type", "Addresses"]
    assert lines[1].split()[:2] == ["any", "up"]
    lo = next(line for line in lines if line.startswith("lo "))
    assert lo.split()[1:3] == ["up", "loopback"] and "127.0.0.1" in lo


@linux_only
def test_interfaces_as_json() -> None:
    code, output = invoke("interfaces", "--format", "json")
    assert code == 0
    rows = {row["name"]: row for row in json.loads(output)}
    assert rows["lo"]["state"] == "up" and "127.0.0.1" in rows["lo"]["addresses"]
    assert rows["any"]["index"] == 0
    assert sum(row["default"] for row in rows.values()) <= 1


@linux_only
@pytest.mark.skipif(os.geteuid() != 0, reason="opens a packet socket: needs root (CI runs as root)")
def test_an_interface_failing_mid_capture_ends_the_run_with_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    capture = capture_live.LiveCapture("lo", None)

    def gone() -> None:
        raise OSError(errno.ENETDOWN, "Network is down")

    monkeypatch.setattr(capture, "read_frame", gone)
    ticks: list[float] = []
    try:
        with pytest.raises(LiveError, match=r"^capture on lo stopped: Network is down$"), \
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.sendto(b"x", ("127.0.0.1", 9))
            capture.run(lambda frame: None, ticks.append, lambda: len(ticks) > 8)
    finally:
        capture.close()
