"""Spam defences per message and in the statistics; the protocol hierarchy below "not tcp".

Issue 9: the verdicts a message carries (``messages[].verdicts``), greylisting retries and DNS
blocklist look-ups counted in ``stats.spam``, and the DNS (UDP) and ident rows of the hierarchy.
Expected numbers come from the synthetic capture built here (every packet written by hand) or from
tshark 4.0 on the lab and corpus captures (the command is beside each number).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from dnsgen import NXDOMAIN, SERVFAIL, Dns
from pcapgen import Capture, Tcp
from support import report, run_cli

from mailtrace.capture.reader import open_capture
from mailtrace.commands.common import build_config
from mailtrace.context.model import dnsbl_lookup
from mailtrace.findings import FindingsCollector
from mailtrace.findings.cross import dnsbl_query
from mailtrace.findings.headers import parse_authentication_results, verdicts
from mailtrace.pipeline import Analyzer
from mailtrace.render.html_stats import stats_view
from mailtrace.stats import StatsCollector

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
SHARED = Path(__file__).resolve().parent.parent.parent / "shared"

T0 = 1_700_000_000.0
MX = "10.0.0.25"
RESOLVER = "10.0.0.53"
SENDER = "203.0.113.9"
LAPTOP = "10.0.0.7"

SIGNED = (
    b"Return-Path: <list@news.example>\r\n"
    b"ARC-Seal: i=2; a=rsa-sha256; cv=pass; d=relay.example; s=arc2; b=xyz\r\n"
    b"ARC-Seal: i=1; a=rsa-sha256; cv=none; d=news.example; s=arc1; b=abc\r\n"
    b"Authentication-Results: mx.example.org; spf=pass smtp.mailfrom=news.example;\r\n"
    b"\tdkim=pass header.d=news.example; dkim=fail (bad signature) header.d=esp.example;\r\n"
    b"\tdmarc=pass header.from=news.example; arc=pass\r\n"
    b"Received-SPF: Pass (mx.example.org: domain of list@news.example designates 203.0.113.9 as\r\n"
    b" permitted sender)\r\n"
    b"DKIM-Signature: v=1; a=rsa-sha256; d=news.example; s=sel2024;\r\n\th=from:to; bh=x; b=y\r\n"
    b"DKIM-Signature: v=1; a=rsa-sha256; d=esp.example; s=k1; h=from; bh=x; b=y\r\n"
    b"X-Spam-Status: Yes, score=7.3 required=5.0 tests=BAYES_99\r\n"
    b"X-Spam-Flag: YES\r\n"
    b"From: News <list@news.example>\r\nTo: bob@example.org\r\nSubject: Weekly\r\n"
    b"Message-ID: <1@news.example>\r\n\r\nHello\r\n"
)
PLAIN = b"From: me@example.org\r\nTo: you@example.org\r\nSubject: lunch?\r\n\r\nat noon\r\n"


def _smtp(cap: Capture, client: str, port: int, ts: float, steps: list[tuple[bytes, bytes]]) -> Tcp:
    conv = Tcp(cap, client=(client, port), server=(MX, 25), ts=ts)
    conv.handshake()
    conv.s(b"220 mx.example.org ESMTP\r\n")
    for command, reply in steps:
        conv.c(command).s(reply)
    conv.fin()
    return conv


def spam_capture(tmp_path: Path) -> Path:
    """Greylisting (two triples deferred, one retried and accepted 300 s later), DNSBL look-ups by the
    MX during both connections, a signed and spam-flagged message, a plain one."""
    cap = Capture()
    dns = Dns(cap, RESOLVER)
    t = dns.lookup(T0, MX, "9.113.0.203.in-addr.arpa", "PTR",  # reverse DNS: not a blocklist
                   answers=(("9.113.0.203.in-addr.arpa", "PTR", "out.news.example"),))
    t = dns.lookup(t, MX, "9.113.0.203.zen.spamhaus.org", "A", rcode=NXDOMAIN)
    t = dns.lookup(t, MX, "9.113.0.203.bl.spamcop.net", "A",
                   answers=(("9.113.0.203.bl.spamcop.net", "A", "127.0.0.2"),))
    t = dns.lookup(t, MX, "9.113.0.203.bl.spamcop.net", "TXT",
                   answers=(("9.113.0.203.bl.spamcop.net", "TXT", "Blocked - see spamcop.net"),))
    dns.query(t, MX, "news.example.dbl.spamhaus.org", "A")  # never answered
    t = dns.lookup(t + 0.001, MX, "news.example", "MX",  # not a blocklist type nor name
                   answers=(("news.example", "MX", (10, "mx.news.example")),))
    greylisted = b"450 4.2.0 <%s>: Recipient address rejected: Greylisted, try again later\r\n"
    _smtp(cap, SENDER, 41000, t + 0.01, [
        (b"EHLO out.news.example\r\n", b"250 mx.example.org\r\n"),
        (b"MAIL FROM:<list@news.example>\r\n", b"250 2.1.0 Ok\r\n"),
        (b"RCPT TO:<bob@example.org>\r\n", greylisted % b"bob@example.org"),
        (b"RCPT TO:<carol@example.org>\r\n", greylisted % b"carol@example.org"),
        (b"QUIT\r\n", b"221 2.0.0 Bye\r\n"),
    ])
    t = dns.lookup(T0 + 300, MX, "9.113.0.203.zen.spamhaus.org", "A", rcode=NXDOMAIN)
    t = dns.lookup(t, MX, "9.113.0.203.zen.spamhaus.org", "A", rcode=SERVFAIL)
    conv = _smtp(cap, SENDER, 41001, t + 0.01, [
        (b"EHLO out.news.example\r\n", b"250 mx.example.org\r\n"),
        (b"MAIL FROM:<list@news.example>\r\n", b"250 2.1.0 Ok\r\n"),
        (b"RCPT TO:<bob@example.org>\r\n", b"250 2.1.5 Ok\r\n"),
        (b"DATA\r\n", b"354 End data with <CR><LF>.<CR><LF>\r\n"),
        (SIGNED + b".\r\n", b"250 2.0.0 Ok: queued as 4AB12\r\n"),
        (b"QUIT\r\n", b"221 2.0.0 Bye\r\n"),
    ])
    _smtp(cap, LAPTOP, 42000, conv.ts + 1, [
        (b"EHLO laptop\r\n", b"250 mx.example.org\r\n"),
        (b"MAIL FROM:<me@example.org>\r\n", b"250 2.1.0 Ok\r\n"),
        (b"RCPT TO:<you@example.org>\r\n", b"250 2.1.5 Ok\r\n"),
        (b"DATA\r\n", b"354 go ahead\r\n"),
        (PLAIN + b".\r\n", b"250 2.0.0 Ok: queued as 4AB13\r\n"),
        (b"QUIT\r\n", b"221 2.0.0 Bye\r\n"),
    ])
    return cap.write(tmp_path / "spam.pcap")


def _run(path: Path) -> tuple[dict[str, Any], FindingsCollector, Analyzer]:
    analyzer = Analyzer(build_config((), False, False))
    findings = FindingsCollector()
    assert analyzer.context is not None
    analyzer.context.listeners.append(findings.context)
    stats = StatsCollector()
    for session in analyzer.run([open_capture(str(path))]):
        stats.session(session)
        findings.session(session)
    stats.end(analyzer.stats)
    findings.end(analyzer.stats)
    return stats.result().to_json(), findings, analyzer


# --------------------------------------------------------------------------- per message


def test_message_verdicts_in_the_json_report(tmp_path: Path) -> None:
    data = report(spam_capture(tmp_path))
    messages = [m for s in data["sessions"] for m in s["messages"]]
    assert [m["subject"] for m in messages] == ["Weekly", "lunch?"]
    signed, plain = messages
    assert signed["verdicts"] == {
        "spf": ["pass", "pass"],  # Authentication-Results spf=pass, then Received-SPF: Pass
        "dkim": ["pass", "fail"],
        "dmarc": ["pass"],
        "arc": ["pass", "pass", "none"],  # arc=pass, then cv= of ARC-Seal i=2 and i=1
        "dkim_signatures": [{"domain": "news.example", "selector": "sel2024"},
                            {"domain": "esp.example", "selector": "k1"}],
        "arc_instances": 2,
        "other": [],
        "authserv": ["mx.example.org"],
        "spam_flag": True,
        "spam_score": 7.3,
        "spam_source": "X-Spam-Status",
        "failures": ["dkim=fail", "X-Spam-Status: spam (score 7.3)"],
        "headers": ["Authentication-Results", "Received-SPF", "DKIM-Signature", "ARC-Seal", "X-Spam-Status"],
    }
    assert plain["verdicts"] is None  # no verdict header at all
    spam = data["stats"]["spam"]
    # the statistics count the same verdicts (one parser): one message, results counted once each
    assert spam["messages_with_verdicts"] == 1 and spam["spam_flagged"] == 1
    assert spam["spf"] == {"pass": 1} and spam["dkim"] == {"pass": 1, "fail": 1}
    assert spam["arc"] == {"pass": 1, "none": 1}
    assert spam["dkim_domains"] == [["esp.example", 1], ["news.example", 1]]


def test_message_verdicts_on_real_captures() -> None:
    pop3 = SHARED / "corpus" / "zeek" / "pop3" / "pop3.pcap"
    outlook = SHARED / "corpus" / "suricata-verify" / "pop3" / "input.pcap"
    if not pop3.exists() or not outlook.exists():
        pytest.skip("shared corpus not available")
    data = report(pop3)
    found = {m["first_frame"]: m["verdicts"] for s in data["sessions"] for m in s["messages"]}
    # strings pop3.pcap | grep -A3 -e ^DKIM-Signature -e ^Received-SPF -e ^X-SpamScore:
    # RETR in frames 95, 103, 114 (tcp.stream 6)
    assert found[95] is not None and found[95]["dkim_signatures"] == [{"domain": "1and1.co.uk", "selector": "global1"}]
    assert found[103] is not None and (found[103]["spf"], found[103]["spam_score"]) == (["pass", "pass"], 0.0)
    assert found[114] is not None and (found[114]["spf"], found[114]["spam_score"]) == (["pass", "pass"], -2.0)
    assert found[114]["spam_flag"] is None and found[114]["spam_source"] == "X-SpamScore"
    # Office 365 writes Authentication-Results without an authserv-id ("spf=none (…) smtp.helo=…;
    # ingenierianumar.com; dkim=none … dmarc=fail action=none header.from=jci.com"): its spf= counts.
    data = report(outlook)
    dsn = next(m for s in data["sessions"] for m in s["messages"] if m["first_frame"] == 243)
    assert dsn["verdicts"]["spf"] == ["none", "none", "none", "none"]  # 2 × Authentication-Results, 2 × Received-SPF
    assert dsn["verdicts"]["dmarc"] == ["fail", "none"]
    assert dsn["verdicts"]["failures"] == ["dmarc=fail"]


def test_authentication_results_without_authserv_id() -> None:
    results = parse_authentication_results(
        "spf=none (sender IP is 202.213.43.71) smtp.helo=RDC153.mitsuba.local; ingenierianumar.com; "
        "dkim=none (message not signed) header.d=none;ingenierianumar.com; dmarc=none action=none")
    assert [(r.authserv, r.method, r.result) for r in results] == [
        ("", "spf", "none"), ("", "dkim", "none"), ("", "dmarc", "none")]
    results = parse_authentication_results("mx.example.org 1; spf=pass smtp.mailfrom=a.example")
    assert [(r.authserv, r.method, r.result) for r in results] == [("mx.example.org", "spf", "pass")]


def test_verdicts_of_a_summary_without_headers_are_empty() -> None:
    v = verdicts(object())
    assert v.empty and v.to_json()["headers"] == []


# --------------------------------------------------------------------------- statistics


def test_dnsbl_and_greylisting_counts(tmp_path: Path) -> None:
    stats, findings, analyzer = _run(spam_capture(tmp_path))
    spam = stats["spam"]
    # look-ups written above: zen A ×3 (NXDOMAIN, NXDOMAIN, SERVFAIL), spamcop A → 127.0.0.2 and TXT,
    # dbl A without an answer; the PTR and the MX look-ups are not blocklist look-ups
    assert spam["dnsbl"] == {
        "lookups": 6,
        "listed": 1,
        "not_listed": 2,
        "unanswered": 1,
        "other": 2,  # the SERVFAIL and the TXT answer (a reason, not an address)
        "by_zone": {
            "zen.spamhaus.org": {"lookups": 3, "listed": 0, "not_listed": 2},
            "bl.spamcop.net": {"lookups": 2, "listed": 1, "not_listed": 0},
            "dbl.spamhaus.org": {"lookups": 1, "listed": 0, "not_listed": 0},
        },
    }
    assert findings.summary()["dnsbl_lookups"] == 6  # the findings count the same look-ups
    # bob and carol deferred in session 1, bob retried and accepted in session 2, carol never
    assert spam["greylist_deferrals"] == 2
    assert spam["greylisting"] == {"deferrals": 2, "retried_accepted": 1, "not_retried": 1}
    assert findings.counts["greylisting"] == {"info": 2}
    # seven transactions of two packets (PTR, zen ×3, spamcop ×2, MX), the dbl query alone: 15 UDP
    # packets to or from port 53, nothing else outside TCP. tshark -q -z io,phs: eth frames:70, tcp
    # frames:55, udp/dns frames:15; -Y 'udp.port==53' -T fields -e udp.length (minus 8 each) → 746
    hierarchy = {h["name"]: (h["level"], h["packets"], h["bytes"]) for h in stats["hierarchy"]}
    assert hierarchy["frames"][1] == 70 and hierarchy["tcp"][1] == 55
    assert hierarchy["not tcp"] == (1, 15, None) and hierarchy["dns (udp)"] == (2, 15, 746)
    assert "other" not in hierarchy
    context = analyzer.stats.context
    assert context is not None and (context.udp_packets, context.udp_bytes) == (15, 746)


def test_stats_command_json_csv_and_html_view(tmp_path: Path) -> None:
    path = spam_capture(tmp_path)
    result = run_cli("stats", "--format", "json", str(path))
    assert result.exit_code == 0, result.stderr
    spam = json.loads(result.stdout)["spam"]
    # no DNS listener needs wiring: the context layer counts the look-ups itself
    assert (spam["dnsbl"]["lookups"], spam["dnsbl"]["listed"]) == (6, 1)
    assert spam["greylisting"]["retried_accepted"] == 1
    # and the findings made from the same look-ups are counted by `stats` as by `analyze`
    assert json.loads(result.stdout)["findings"]["dnsbl_lookups"] == 6
    result = run_cli("stats", "--format", "csv", str(path))
    rows = {(r[0], r[1], r[2]): r[3] for r in csv.reader(io.StringIO(result.stdout))}
    assert rows[("spam", "dnsbl", "lookups")] == "6"
    assert rows[("spam", "dnsbl.by_zone.bl.spamcop.net", "listed")] == "1"
    assert rows[("spam", "greylisting", "not_retried")] == "1"
    assert rows[("hierarchy", "    dns (udp)", "packets")] == "15"
    view = dict(stats_view(json.loads(run_cli("stats", "--format", "json", str(path)).stdout))["spam"])
    assert view["greylisted, retried later and accepted"] == "1"
    assert view["greylisted, no retry in the capture"] == "1"
    assert view["DNS blocklist look-ups"] == "6"
    assert view["DNSBL: listed (127.0.0.x)"] == "1"
    assert view["DNSBL: not listed (NXDOMAIN)"] == "2"
    assert view["DNSBL look-ups on zen.spamhaus.org"] == "3 (0 listed)"


def test_no_context_layer_no_dnsbl_counts() -> None:
    stats = StatsCollector()
    stats.end(None)
    spam = stats.result().to_json()["spam"]
    assert spam["dnsbl"] is None and spam["greylisting"] == {"deferrals": 0, "retried_accepted": 0, "not_retried": 0}


def test_one_blocklist_parser() -> None:
    assert dnsbl_query("2.0.0.127.zen.spamhaus.org") == ("127.0.0.2", "zen.spamhaus.org")
    assert dnsbl_lookup("2.0.0.127.zen.spamhaus.org", "TXT") == ("127.0.0.2", "zen.spamhaus.org")
    assert dnsbl_lookup("2.0.0.127.zen.spamhaus.org", "MX") is None
    assert dnsbl_lookup("4.3.2.1.in-addr.arpa", "PTR") is None


# --------------------------------------------------------------------------- protocol hierarchy


def test_hierarchy_of_the_mixed_lab_capture() -> None:
    stats = _run(SAMPLES / "mixed-all.pcap")[0]
    rows = [(h["level"], h["name"], h["packets"], h["bytes"]) for h in stats["hierarchy"]]
    # tshark -r samples/mixed-all.pcap -q -z io,phs: eth frames:389 bytes:59066, tcp frames:287,
    # udp/dns frames:96, arp frames:6.
    # tshark -Y 'udp.port==53' -T fields -e udp.length | awk '{s+=$1-8} END {print NR, s}' → 96 3992
    # tshark -Y 'tcp.port==113' → 4 packets (two ident probes: SYN, RST/ACK), tcp.len 0
    assert rows[:2] == [(0, "frames", 389, 59066), (1, "tcp", 287, None)]
    assert (2, "ident", 4, 0) in rows
    assert rows[-3:] == [(1, "not tcp", 102, None), (2, "dns (udp)", 96, 3992), (2, "other", 6, None)]
    mail = sum(h[2] for h in rows if h[0] == 2 and h[1] in ("smtp", "pop3", "imap"))
    other_tcp = next(h for h in rows if h[1] == "other tcp")
    assert mail + 4 + other_tcp[2] == 287  # the rows under tcp add up


def test_stats_text_tables_show_greylisting_and_blocklists(tmp_path: Path) -> None:
    out = run_cli("stats", str(spam_capture(tmp_path))).stdout
    rows = {" ".join(line.split()[:-1]): line.split()[-1] for line in out.splitlines() if line.strip()}
    assert rows["greylisted, retried later and accepted"] == "1"
    assert rows["greylisted, no retry in the capture"] == "1"
    assert rows["DNS blocklist look-ups"] == "6"
    assert rows["listed (127.0.0.x)"] == "1"
