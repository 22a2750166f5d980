#!/usr/bin/env python3
"""Benchmark: `mailtrace analyze --format json` against tshark, and the skip rate for non-mail traffic.

Runs four measurements and prints a table (and, with --json, machine-readable results):

1. mail capture: ``../shared/tools/gen_mail_pcap.py --sessions 1940 --seed 2`` (~200 MB; made once
   into bench/out/), analysed by ``mailtrace analyze --format json`` and by
   ``tshark -r F -Y "smtp || pop || imap"``: wall time, packets/s and peak RSS of each;
2. non-mail capture: a synthetic file of HTTPS/HTTP TCP connections and DNS/NTP datagrams only,
   to measure how fast packets that are not mail are skipped;
3. the peak RSS of mailtrace on both, which must stay under 128 MiB whatever the file size; and on
   a third capture made to strain it: 12,000 short SMTP sessions behind one IMAP session open from
   the first packet to the last (every one of them waits for it in the order buffer); and on a fourth,
   ``flood``: eight IMAP servers at once each sending 250,000 ``* n EXISTS`` lines (35 MB), whose
   kept commands and replies are bounded per session and for all sessions together.

For a bigger mail capture, ``--sessions 9700 --seed 5 --no-tshark`` makes and measures a 1 GB one.
``--python PATH`` times mailtrace under another interpreter (one with mailtrace's dependencies installed):
how CPython was built matters here — this machine's pyenv build (no PGO/LTO, ``--enable-shared``) takes
about an eighth more CPU than Debian's own ``/usr/bin/python3.11`` for the same run (bench/README.md).

This is a benchmark, not a timed test: numbers depend on the machine. Record them in README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
sys.path.insert(0, str(HERE.parent))  # the package and tests/pcapgen.py, which makes two of the captures
SHARED = Path(os.environ.get("MAILTRACE_SHARED", HERE.parent.parent / "shared"))


def run_rss(cmd: list[str]) -> tuple[float, int, float]:
    """Run ``cmd``: wall seconds, exact per-process peak RSS (KiB) and CPU seconds (user + system), via
    os.wait4. On a shared machine the CPU time is the steadier figure: other processes stretch the wall
    time, not the CPU time."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with status {os.waitstatus_to_exitcode(status)}")
    return wall, usage.ru_maxrss, usage.ru_utime + usage.ru_stime


def mail_capture(sessions: int, seed: int) -> Path:
    OUT.mkdir(exist_ok=True)
    path = OUT / f"mail-{sessions}-{seed}.pcap"
    if not path.exists():
        gen = SHARED / "tools" / "gen_mail_pcap.py"
        if not gen.exists():
            raise SystemExit(f"{gen} not found: set MAILTRACE_SHARED to the shared data folder")
        print(f"generating {path.name} …", file=sys.stderr)
        subprocess.run([sys.executable, str(gen), "--sessions", str(sessions), "--seed", str(seed),
                        "--out", str(path)], check=True, stderr=subprocess.DEVNULL)
    return path


def noise_capture(packets: int) -> Path:
    """Non-mail traffic only: TCP 443/80 connections and UDP 53/123, realistic sizes, in pcap format."""
    OUT.mkdir(exist_ok=True)
    path = OUT / f"noise-{packets}.pcap"
    if path.exists():
        return path
    rng = random.Random(7)
    # Written in 16 MiB pieces: a parent that held the whole file would pass its peak RSS on to the
    # measured children (Linux keeps ru_maxrss across fork + exec), and every figure would read ~1.6 GiB.
    part = path.with_suffix(".part")
    sink = part.open("wb")
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
    eth = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00"
    ts = 1_700_000_000.0
    flows: list[list[int | bytes]] = []  # src, dst, sport, dport, seq client→server, seq server→client
    n = 0
    while n < packets:
        if not flows or rng.random() < 0.02:
            flows.append([bytes([10, 1, rng.randrange(256), rng.randrange(1, 255)]),
                          bytes([203, 0, 113, rng.randrange(1, 255)]), rng.randrange(32768, 61000),
                          rng.choice((443, 443, 80, 8080)), rng.randrange(1 << 32), rng.randrange(1 << 32)])
            if len(flows) > 200:
                flows.pop(0)
        ts += rng.expovariate(50_000)
        if rng.random() < 0.1:  # a UDP datagram (DNS / NTP)
            size = rng.randrange(40, 300)
            udp = struct.pack("!HHHH", rng.randrange(32768, 61000), rng.choice((53, 123)), 8 + size, 0) + bytes(size)
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, b"\x0a\x01\x00\x01",
                             b"\xc6\x33\x64\x35") + udp
        else:
            flow = rng.choice(flows)
            src, dst, sport, dport = flow[0], flow[1], flow[2], flow[3]
            assert isinstance(src, bytes) and isinstance(dst, bytes)
            size = rng.choice((0, 0, 1448, 1448, 1448, rng.randrange(1, 1448)))
            reverse = rng.random() < 0.5
            seq, ack = (flow[5], flow[4]) if reverse else (flow[4], flow[5])
            tcp = struct.pack("!HHIIBBHHH", dport if reverse else sport, sport if reverse else dport,
                              seq, ack, 0x50, 0x18, 65535, 0, 0) + bytes(size)
            flow[5 if reverse else 4] = (int(seq) + size) & 0xFFFFFFFF  # type: ignore[call-overload]
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0,
                             dst if reverse else src, src if reverse else dst) + tcp
        frame = eth + ip
        sec = int(ts)
        out += struct.pack("<IIII", sec, int((ts - sec) * 1e6), len(frame), len(frame)) + frame
        n += 1
        if len(out) > 1 << 24:
            sink.write(out)
            out.clear()
    sink.write(out)
    sink.close()
    part.rename(path)
    return path


def _idling(imap: Any) -> Any:
    """An IMAP conversation (tests/pcapgen.py's ``Tcp``) up to the server's ``+ idling``: it then stays open."""
    imap.handshake().s(b"* OK ready\r\n").c(b"a1 LOGIN u p\r\n").s(b"a1 OK\r\n")
    return imap.c(b"a2 IDLE\r\n").s(b"+ idling\r\n")


def held_capture(count: int) -> Path:
    """``count`` short SMTP sessions behind one IMAP session that stays open from the first packet to
    the last: the report lists sessions in start order, so each one waits for it (up to the order
    buffer's bounds, ``Config.max_reorder_sessions`` and ``max_reorder_rows``)."""
    path = OUT / f"held-{count}.pcap"
    if path.exists():
        return path
    from tests.pcapgen import Capture, Tcp

    cap = Capture()
    imap = _idling(Tcp(cap, client=("10.9.0.1", 50000), server=("10.9.0.2", 143), ts=1_700_000_000.0))
    ts = 1_700_000_001.0
    body = b"Subject: x\r\nMessage-ID: <%d@x>\r\n\r\n" + b"line of text\r\n" * 20
    for i in range(count):
        smtp = Tcp(cap, client=(f"10.{1 + i // 60000}.{(i // 250) % 240}.{1 + i % 250}", 40000 + i % 20000),
                   server=("10.0.0.25", 25), ts=ts)
        smtp.handshake().s(b"220 mx ESMTP\r\n").c(b"EHLO a\r\n").s(b"250 mx\r\n").c(b"MAIL FROM:<a@b>\r\n")
        smtp.s(b"250 ok\r\n").c(b"RCPT TO:<c@d>\r\n").s(b"250 ok\r\n").c(b"DATA\r\n").s(b"354 go\r\n")
        smtp.c((body % i) + b".\r\n").s(b"250 ok\r\n").c(b"QUIT\r\n").s(b"221 bye\r\n").fin()
        ts = smtp.ts + 0.01
    imap.ts = ts
    imap.c(b"DONE\r\n").s(b"a2 OK\r\n").c(b"a3 LOGOUT\r\n").s(b"* BYE\r\na3 OK\r\n").fin()
    part = cap.write(path.with_suffix(".part"))
    part.rename(path)
    return path


def flood_capture(connections: int, lines: int) -> Path:
    """``connections`` IMAP sessions at once whose servers each send ``lines`` untagged ``* n EXISTS``
    responses (a hundred a segment), interleaved: what the analyzer keeps of them is bounded per session and
    for all sessions at once (``SessionLimits.max_events``, ``max_events_all``), not by the capture's size."""
    path = OUT / f"flood-{connections}x{lines}.pcap"
    if path.exists():
        return path
    from tests.pcapgen import Capture, Tcp

    cap = Capture()
    convs = [_idling(Tcp(cap, client=("10.8.0.1", 40000 + i), server=("10.8.0.2", 143))) for i in range(connections)]
    for start in range(0, lines, 100):
        segment = b"".join(b"* %d EXISTS\r\n" % n for n in range(start, min(lines, start + 100)))
        for t in convs:
            t.s(segment)
    for t in convs:
        t.c(b"DONE\r\n").s(b"a2 OK\r\n").fin()
    part = cap.write(path.with_suffix(".part"))
    part.rename(path)
    return path


def count_packets(path: Path) -> int:
    from mailtrace.capture.reader import open_capture

    return sum(1 for _ in open_capture(str(path)).frames())


def warm(path: Path) -> None:
    """Read ``path`` once so the timed run finds it in the page cache: this machine's kernel reclaims
    cold page-cache pages (DAMON), and a run that reads the file from disk took up to 20 s instead of 4."""
    with path.open("rb") as f:
        while f.read(1 << 20):
            pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=1940)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--noise-packets", type=int, default=1_000_000)
    ap.add_argument("--no-tshark", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--python", default=sys.executable,
                    help="the interpreter to run mailtrace with (default: this one)")
    args = ap.parse_args()

    python = shutil.which(args.python) or args.python
    if not os.access(python, os.X_OK):
        sys.exit(f"--python {args.python}: no such interpreter")
    mailtrace = [python, "-m", "mailtrace", "analyze", "--format", "json"]
    # Time the package as `pip install .` leaves it, with its bytecode compiled: an editable checkout
    # under PYTHONDONTWRITEBYTECODE would otherwise recompile ~1 MB of source on every run (~0.3 s).
    import mailtrace as package

    # the code timed is this checkout's, whichever interpreter runs it
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")]))
    version = subprocess.run([python, "-c", "import sys, mailtrace.commands.analyze; print(sys.version.split()[0])"],
                             check=False, capture_output=True, text=True)
    if version.returncode:
        sys.exit(f"{python} cannot run mailtrace: install its dependencies there first "
                 f"({version.stderr.strip().splitlines()[-1] if version.stderr.strip() else version.returncode})")
    subprocess.run([python, "-m", "compileall", "-q", str(Path(package.__file__).parent)], check=True,
                   stdout=subprocess.DEVNULL)
    results: dict[str, dict[str, float]] = {}
    OUT.mkdir(exist_ok=True)
    before = set(OUT.glob("*.pcap"))
    mail = mail_capture(args.sessions, args.seed)
    noise = noise_capture(args.noise_packets)
    held = held_capture(12_000)
    flood = flood_capture(8, 250_000)
    if set(OUT.glob("*.pcap")) != before:
        # Making the held capture builds it in memory (~100 MiB). Linux passes a process's peak RSS on
        # to the children it starts (ru_maxrss survives fork + exec), so every figure would read at least
        # that: measure from a fresh process, which finds the captures made.
        print("captures made; measuring in a fresh process …", file=sys.stderr)
        sys.stderr.flush()
        os.execv(sys.executable, [sys.executable, *sys.argv])
    for label, path in (("mail", mail), ("non-mail", noise), ("held", held), ("flood", flood)):
        packets = count_packets(path)
        warm(path)
        wall, rss, cpu = run_rss([*mailtrace, str(path)])
        results[f"mailtrace {label}"] = {"seconds": wall, "packets": packets, "packets_per_s": packets / wall,
                                         "peak_rss_mib": rss / 1024, "mb": path.stat().st_size / 1e6,
                                         "cpu_seconds": cpu}
        if label == "mail" and not args.no_tshark and shutil.which("tshark"):
            warm(path)
            wall, rss, cpu = run_rss(["tshark", "-r", str(path), "-Y", "smtp || pop || imap"])
            results["tshark mail"] = {"seconds": wall, "packets": packets, "packets_per_s": packets / wall,
                                      "peak_rss_mib": rss / 1024, "mb": path.stat().st_size / 1e6,
                                      "cpu_seconds": cpu}
    print(f"mailtrace under {python} (Python {version.stdout.strip()})")
    print(f"{'run':<22}{'MB':>8}{'packets':>10}{'seconds':>9}{'packets/s':>11}{'peak RSS MiB':>14}{'CPU s':>8}")
    for name, r in results.items():
        print(f"{name:<22}{r['mb']:>8.0f}{r['packets']:>10.0f}{r['seconds']:>9.2f}{r['packets_per_s']:>11.0f}"
              f"{r['peak_rss_mib']:>14.0f}{r['cpu_seconds']:>8.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
