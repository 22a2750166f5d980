"""Statistics, checked against hand counts made once with tshark 4.0 on two corpus captures.

How each expected number was obtained is written beside it; the commands were run in
``shared/corpus``. Wireshark's frame numbering and its time stamps are the reference.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from mt_findings_lab import PcapBuilder, analyze, require_shared, sample

from mailtrace.cli import main
from mailtrace.model import Direction
from mailtrace.session import MessageRecord
from mailtrace.stats import BoundedCounter, Distribution, StatsCollector, Timeline, nearest_rank


def corpus(path: str) -> Path:
    return require_shared() / "corpus" / path


# --------------------------------------------------------------------------- zeek/pop3/pop3.pcap


def test_pop3_capture_against_tshark() -> None:
    stats = analyze(corpus("zeek/pop3/pop3.pcap")).result()
    # tshark -q -z io,phs: "eth frames:125 bytes:27969", "tcp frames:125"
    assert (stats.capture["packets"], stats.capture["bytes"], stats.capture["tcp_packets"]) == (
        125,
        27969,
        125,
    )
    # tshark -q -z conv,tcp | grep -c '<->'  → 7 conversations, all to port 110
    (pop3,) = stats.protocols
    assert (pop3.protocol, pop3.sessions) == ("pop3", 7)
    # tshark -Y 'tcp.port==110' | wc -l → 125;  tshark -Y 'tcp.port==110' -T fields -e tcp.len | sum → 20847
    assert (pop3.packets, pop3.payload_bytes) == (125, 20847)
    assert pop3.tls_sessions == 0 and pop3.tls_share == 0.0
    # tshark -Y pop.request.command -T fields -e pop.request.command | sort | uniq -c
    # (minus the three base64 SASL response lines, which are not commands)
    assert stats.commands == {
        "pop3": {"AUTH": 6, "CAPA": 5, "QUIT": 4, "RETR": 3, "LIST": 1, "STAT": 1, "UIDL": 1}
    }
    # tshark -Y pop.response.indicator -T fields -e pop.response.indicator | sort | uniq -c → +OK 22, -ERR 4;
    # mailtrace also counts the three "+ " SASL continuation prompts, which tshark does not mark
    assert stats.pop3_responses == {"+OK": 22, "-ERR": 4, "+": 3}
    # conv,tcp → 5 conversations with 212.227.15.166:110, one each with .188 and .171
    assert stats.servers[0] == ("212.227.15.166:110", "pop3", 5)
    assert sorted(n for _s, _p, n in stats.servers) == [1, 1, 5]
    assert stats.clients == (("192.168.0.4", 7),)
    # conv,tcp "Duration" column: 1.2621 0.5863 3.5202 0.2120 0.2533 1.1608 1.1484
    # → median 1.1484, nearest-rank p95 (7th of 7) = max = 3.5202
    duration = stats.durations["pop3"]
    assert duration.count == 7
    assert duration.median == pytest.approx(1.1484, abs=1e-4)
    assert duration.p95 == pytest.approx(3.5202, abs=1e-4) and duration.max == pytest.approx(3.5202, abs=1e-4)
    # tcp.stream 6: RETR at frames 93, 101, 112 (epoch …784.557389, …784.668103, …784.773822), "+OK" at
    # 94, 102, 113 (…784.606405, …784.715974, …784.821237) → 0.049016, 0.047871, 0.047415 s
    retr = stats.latency["pop3"]["RETR"]
    assert retr.count == 3
    assert retr.median == pytest.approx(0.047871, abs=2e-6)
    assert retr.p95 == pytest.approx(0.049016, abs=2e-6) and retr.min == pytest.approx(0.047415, abs=2e-6)
    # three RETR answered with +OK: three messages
    assert stats.messages["count"] == 3 and stats.messages["by_origin"] == {"pop3-retr": 3}
    # AUTH PLAIN (base64 lines decoded by hand): two logins succeed, one (napier, not napier123) fails
    assert stats.auth["attempts"] == 3 and stats.auth["outcomes"] == {"succeeded": 2, "failed": 1}
    assert stats.auth["cleartext"] == 3


# --------------------------------------------------------------------------- zeek/smtp/smtp.pcap


def test_smtp_capture_against_tshark() -> None:
    stats = analyze(corpus("zeek/smtp/smtp.pcap")).result()
    # tshark -q -z io,phs: "eth frames:125 bytes:38919", "tcp frames:118" (the 4 ICMP errors quoting TCP
    # headers are not TCP frames)
    assert (stats.capture["packets"], stats.capture["bytes"], stats.capture["tcp_packets"]) == (
        125,
        38919,
        118,
    )
    # tshark -q -z conv,tcp: two conversations to port 25 (74.53.140.153 and 192.168.133.102)
    (smtp,) = stats.protocols
    assert smtp.sessions == 2
    # tshark -Y 'tcp.port==25 && !icmp' -T fields -e tcp.len | sum → 22214
    assert smtp.payload_bytes == 22214
    # tshark -Y smtp.req.command -T fields -e smtp.req.command | sort | uniq -c
    assert stats.commands == {"smtp": {"RCPT": 4, "DATA": 2, "EHLO": 2, "MAIL": 2, "AUTH": 1, "QUIT": 1}}
    # tshark -Y smtp.response.code -T fields -e smtp.response.code | sort | uniq -c
    # (one code per reply: multi-line EHLO replies count once)
    assert stats.smtp_replies["codes"] == {"220": 2, "221": 1, "235": 1, "250": 10, "334": 2, "354": 2}
    # classes and categories follow from those codes (RFC 5321 §4.2.1)
    assert stats.smtp_replies["classes"] == {"2yz": 14, "3yz": 4}
    assert stats.smtp_replies["categories"] == {"x2z": 3, "x3z": 3, "x5z": 12}
    # EHLO at frames 7 and 68 (epoch 1254722768.224809, 1437831787.883306), replies at 9 and 70
    # (…768.566183, …787.886281) → 0.341374 and 0.002975 s: median 0.1721745, p95 0.341374
    ehlo = stats.latency["smtp"]["EHLO"]
    assert ehlo.median == pytest.approx(0.1721745, abs=2e-6) and ehlo.p95 == pytest.approx(0.341374, abs=2e-6)
    # tshark io,phs "imf frames:2": two messages
    assert stats.messages["count"] == 2
    # RCPT TO values: tshark -Y 'smtp.req.command == "RCPT"' -T fields -e smtp.req.parameter
    recipients = dict(stats.addresses["recipients"])
    assert sum(recipients.values()) == 4 and len(recipients) == 4


def test_smtp_capture_packets_against_tshark() -> None:
    (smtp,) = analyze(corpus("zeek/smtp/smtp.pcap")).result().protocols
    # tshark -Y 'tcp.port==25 && !icmp' | wc -l → 80 (53 in tcp.stream 0, 27 in tcp.stream 2)
    assert smtp.packets == 80


# --------------------------------------------------------------------------- lab samples


def test_tls_share_on_the_lab_tls_capture() -> None:
    stats = analyze(sample("tls-implicit.pcap")).result()
    by_name = {p.protocol: p for p in stats.protocols}
    # facts.json: SMTP on 465 (implicit); IMAP on 993 (implicit), 143 (STARTTLS); POP3 on 995, 110 (STLS)
    assert (by_name["smtp"].tls_sessions, by_name["imap"].tls_sessions, by_name["pop3"].tls_sessions) == (
        1,
        2,
        2,
    )
    for p in stats.protocols:
        assert 0.5 < p.tls_share <= 1.0  # most bytes of every protocol travel inside TLS
        assert p.tls_bytes <= p.payload_bytes
    names = [h.name for h in stats.hierarchy]
    assert names[:2] == ["frames", "tcp"] and names.count("tls") == 3


def test_smtp_errors_reply_classes_and_enhanced_codes() -> None:
    stats = analyze(sample("smtp-errors.pcap")).result()
    codes = stats.smtp_replies["codes"]
    # smtp-errors.tshark.txt: 252 for VRFY at Postfix, 450/550/554 policy refusals, the 421 "too many errors"
    assert {"252", "421", "450", "550", "553", "554"} <= set(codes)
    assert stats.smtp_replies["classes"]["4yz"] == codes["421"] + codes["450"]
    assert stats.smtp_replies["enhanced"]["5.7.1"] == 2  # spammer@bad.example sender, relay access denied
    assert stats.spam["relay_denied"] == 1 and stats.spam["unknown_recipients"] == 1


# --------------------------------------------------------------------------- units


def test_nearest_rank_and_median() -> None:
    values = sorted([5.0, 1.0, 4.0, 2.0, 3.0])
    assert nearest_rank(values, 0.95) == 5.0
    assert nearest_rank(values, 0.5) == 3.0
    assert nearest_rank(list(map(float, range(1, 101))), 0.95) == 95.0
    d = Distribution(limit=1000)
    for v in (1.0, 2.0, 3.0, 10.0):
        d.add(v)
    s = d.summary()
    assert s is not None and (s.median, s.p95, s.min, s.max, s.mean, s.sampled) == (
        2.5,
        10.0,
        1.0,
        10.0,
        4.0,
        False,
    )


def test_distribution_sample_is_bounded() -> None:
    d = Distribution(limit=100)
    for v in range(10_000):
        d.add(float(v))
    s = d.summary()
    assert s is not None and len(d.values) == 100 and s.sampled
    assert (s.count, s.min, s.max) == (10_000, 0.0, 9999.0)  # exact, whatever the sample
    assert 3000 < s.median < 7000  # a uniform sample lands near the middle


def test_bounded_counter_prunes_rare_keys() -> None:
    c = BoundedCounter(limit=10)
    for i in range(10):
        c.add("common", 5)
        c.add(f"rare{i}")
    c.add("one-too-many")
    assert len(c) <= 10 and c.approximate
    assert c.top(1) == [("common", 50)]


def test_timeline_coarsens_to_stay_bounded() -> None:
    t = Timeline(max_buckets=100)
    for second in range(0, 86_400, 7):
        t.add(1_700_000_000.0 + second)
    assert len(t.buckets) <= 100 and t.width >= 864
    width, start, counts = t.display(max_rows=30)
    assert len(counts) <= 30 and sum(counts) == len(range(0, 86_400, 7)) and width == 3600
    assert start is not None and start <= 1_700_000_000.0


def test_empty_collector() -> None:
    stats = StatsCollector()
    stats.end(None, 0.0)
    result = stats.result()
    assert result.protocols == () and result.timeline["counts"] == [] and result.durations == {}
    json.dumps(result.to_json())


# --------------------------------------------------------------------------- command line


def test_stats_command_json_and_csv() -> None:
    path = str(sample("pop3-session.pcap"))
    runner = CliRunner()
    out = runner.invoke(main, ["stats", "--format", "json", path])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert doc["format"] == "mailtrace-stats" and doc["version"] == 1
    assert doc["commands"]["pop3"]["USER"] == 2  # facts.json: sessions 1 and 4 log in with USER/PASS
    assert doc["findings"]["by_id"]["cleartext-credentials"] == {"high": 3, "medium": 1}
    out = runner.invoke(main, ["stats", "--format", "csv", path])
    assert out.exit_code == 0, out.output
    rows = list(csv.reader(io.StringIO(out.output)))
    assert rows[0] == ["section", "item", "metric", "value"]
    assert ["commands", "pop3", "USER", "2"] in rows
    assert ["protocols", "pop3", "sessions", "4"] in rows
    assert all(len(r) == 4 for r in rows)


def test_stats_command_text() -> None:
    out = CliRunner(env={"COLUMNS": "160"}).invoke(
        main, ["stats", "--top", "3", str(sample("smtp-errors.pcap"))]
    )
    assert out.exit_code == 0, out.output
    for title in ("Protocol hierarchy", "SMTP replies by class and category", "Spam defences", "Findings"):
        assert title in out.output
    assert "5yz permanent negative" in out.output


def test_stats_text_piped_is_not_cut_and_colour_and_width_are_options() -> None:
    """Piped, the tables are laid out whole (they were squeezed to 80 columns: "decryp…"), without
    trailing blanks; --width wraps them, --color colours them."""
    path = str(sample("smtp-errors.pcap"))
    piped = CliRunner().invoke(main, ["stats", path])
    assert piped.exit_code == 0, piped.output
    assert " protocol   sessions   packets   payload   TLS sessions   TLS share   decrypted   IPv6" in piped.output
    assert not any(line.endswith(" ") for line in piped.output.splitlines())
    assert "\x1b[" not in piped.output
    narrow = CliRunner().invoke(main, ["stats", "--width", "80", path])
    assert "decryp…" in narrow.output and max(len(line) for line in narrow.output.splitlines()) <= 80
    coloured = CliRunner().invoke(main, ["stats", "--color", path])
    assert "\x1b[1mCapture\x1b[0m" in coloured.output


def test_stats_synthetic_timeline(tmp_path: Path) -> None:
    b = PcapBuilder()
    for minute in (0, 0, 5, 9):
        c = b.conversation("10.0.0.1", ("93.184.216.34", 25), at=1_700_000_000.0 + minute * 60)
        c.talk("S:220 mx.example.org ESMTP\r\n", "QUIT\r\n", "S:221 Bye\r\n")
        c.close()
    stats = analyze(b.write(tmp_path / "t.pcap")).result()
    assert sum(stats.timeline["counts"]) == 4
    assert stats.timeline["bucket_seconds"] == 10  # 9 minutes of sessions in at most 60 buckets


def test_attachments_and_base64_overhead_from_the_mime_part_tree(tmp_path: Path) -> None:
    """The MIME rewrite's summary (``attachments`` objects, ``parts.walk()``) is read as it comes."""
    b = PcapBuilder()
    c = b.conversation("10.0.0.1", ("93.184.216.34", 25))
    c.talk("S:220 mx.example.org ESMTP\r\n", "QUIT\r\n", "S:221 Bye\r\n")
    c.close()
    run = analyze(b.write(tmp_path / "one.pcap"))
    session = run.sessions[0]

    @dataclass
    class Leaf:
        encoding: str | None
        encoded_bytes: int
        decoded_bytes: int
        md5: str | None = "x"

        def walk(self) -> list[Leaf]:
            return [self]

    @dataclass
    class Root:
        children: list[Leaf]
        md5: str | None = None
        encoding: str | None = None

        def walk(self) -> list[object]:
            return [self, *self.children]

    summary = SimpleNamespace(
        bytes=5000,
        complete=True,
        from_="Ann <ann@example.com>",
        headers=(),
        attachments=(
            SimpleNamespace(content_type="image/png", bytes=3000),
            {"content_type": "application/pdf", "bytes": 600},
        ),
        parts=Root([Leaf("base64", 4056, 3000), Leaf("base64", 812, 600), Leaf("7bit", 100, 100)]),
    )
    message = MessageRecord(0, "smtp-data", summary, 1, 2, Direction.CLIENT)  # type: ignore[arg-type]
    stats = StatsCollector()
    stats.session(replace(session, messages=[message]))
    stats.end(None, 0.0)
    messages = stats.result().messages
    assert messages["attachments"]["count"] == 2 and messages["attachments"]["bytes"] == 3600
    assert messages["attachments"]["types"] == {"image/png": 1, "application/pdf": 1}
    assert messages["base64"] == {
        "parts": 2,
        "encoded_bytes": 4868,
        "decoded_bytes": 3600,
        "overhead_bytes": 1268,
        "overhead_percent": 35.22,
    }


def test_servers_and_clients_are_two_tables() -> None:
    """A server and a client on one row read as a pair that talked; the lab's .11 never spoke to .25:25."""
    from tests.support import run_cli, sample
    out = run_cli("stats", "--no-color", str(sample("mixed-all.pcap"))).stdout
    servers = out.split("Top servers (top 10)", 1)[1].split("Top clients (top 10)", 1)[0]
    clients = out.split("Top clients (top 10)", 1)[1].split("Commands", 1)[0]
    assert [line.split() for line in servers.strip().splitlines()[2:]] == [
        ["127.0.0.25:25", "SMTP", "2"], ["127.0.0.26:110", "POP3", "1"], ["127.0.0.26:143", "IMAP", "1"],
        ["127.0.0.26:25", "SMTP", "1"], ["127.0.0.26:587", "SMTP", "1"]]
    assert [line.split() for line in clients.strip().splitlines()[2:]] == [
        ["127.0.0.11", "3"], ["127.0.0.10", "2"], ["127.0.0.25", "1"]]


def test_made_up_commands_share_one_latency_entry(tmp_path: Path) -> None:
    """A client sending thousands of made-up commands would make a latency entry each (in memory and in
    the report): past ``max_latency_verbs`` they share ``(other)``; a known command keeps its own."""
    from pcapgen import Capture, Tcp

    from mailtrace.capture.reader import open_capture
    from mailtrace.config import Config
    from mailtrace.pipeline import Analyzer
    from mailtrace.stats import OTHER_VERBS, StatsLimits

    cap = Capture()
    conv = Tcp(cap, client=("10.0.0.1", 40000), server=("10.0.0.25", 25), ts=1_700_000_000.0)
    conv.handshake().s(b"220 mx\r\n").c(b"EHLO a\r\n").s(b"250 mx\r\n")
    for i in range(10):
        conv.c(b"X%dQ arg\r\n" % i).s(b"500 5.5.1 unknown\r\n")
    conv.c(b"QUIT\r\n").s(b"221 bye\r\n").fin()
    path = cap.write(tmp_path / "verbs.pcap")
    stats = StatsCollector(StatsLimits(max_latency_verbs=4))
    for session in Analyzer(Config()).run_file(open_capture(str(path))):
        stats.session(session)
    latency = stats.result().to_json()["latency"]["smtp"]
    assert set(latency) == {"EHLO", "X0Q", "X1Q", "X2Q", OTHER_VERBS, "QUIT"}
    assert latency[OTHER_VERBS]["count"] == 7 and latency["QUIT"]["count"] == 1
    unbounded = StatsCollector()
    for session in Analyzer(Config()).run_file(open_capture(str(path))):
        unbounded.session(session)
    assert len(unbounded.result().to_json()["latency"]["smtp"]) == 12
