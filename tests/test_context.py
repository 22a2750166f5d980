"""The context layer on synthetic captures: DNS decoding, attribution rules, checks, limits.

The lab captures (tests/test_context_lab.py) tell the lecture's story; these build what the lab does
not have: an identd that answers, a PTR that does not lead back, a HELO that lies, a DNS blocklist
hit, NXDOMAIN behind a 550, a relay to a backup MX and one that ignores its MX, DNS over TCP, old
lookups outside the window, and floods that must not grow memory.
"""

from __future__ import annotations

import json
import struct
from dataclasses import replace
from pathlib import Path

import pytest
from dnsgen import NXDOMAIN, SERVFAIL, Dns, dns_message
from pcapgen import RST, SYN, Capture, Tcp
from support import run_cli

from mailtrace.capture.dns import TcpDnsFramer, parse_dns
from mailtrace.capture.reader import open_capture
from mailtrace.commands.common import build_config
from mailtrace.context.model import ContextLimits
from mailtrace.pipeline import Analyzer
from mailtrace.session import Session

T0 = 1_700_000_000.0
CLIENT, SERVER, RESOLVER = "10.0.0.1", "10.0.0.2", "10.0.0.53"


# --------------------------------------------------------------------------- decoding


def test_dns_records_as_mail_servers_need_them() -> None:
    mx = parse_dns(dns_message(7, "remote.example", "MX", response=True,
                               answers=(("remote.example", "MX", (20, "mx2.remote.example")),
                                        ("remote.example", "MX", (10, "mx1.remote.example"))),
                               additional=(("mx1.remote.example", "A", "192.0.2.7"),)))
    assert mx is not None and mx.response and mx.rcode == "NOERROR" and (mx.qname, mx.qtype) == ("remote.example", "MX")
    assert [(r.data, r.preference, r.text) for r in mx.answers] == [
        ("mx2.remote.example", 20, "20 mx2.remote.example"), ("mx1.remote.example", 10, "10 mx1.remote.example")]
    assert [(r.name, r.rtype, r.data) for r in mx.additional] == [("mx1.remote.example", "A", "192.0.2.7")]
    other = parse_dns(dns_message(8, "x.example", "TXT", response=True, answers=(
        ("x.example", "TXT", "v=spf1 -all"), ("x.example", "CNAME", "y.example"),
        ("x.example", "AAAA", "2001:db8::1"), ("x.example", "RRSIG", b"\x01\x02"),
        ("x.example", "TXT", b"\xff\xfe"))))
    assert other is not None
    assert [(r.rtype, r.data) for r in other.answers] == [
        ("TXT", "v=spf1 -all"), ("CNAME", "y.example"), ("AAAA", "2001:db8::1"),
        ("RRSIG", "0102"),  # a type dpkt cannot decode keeps a hex preview instead of failing the message
        ("TXT", "02fffe")]  # so does a TXT string that is not UTF-8
    ptr = parse_dns(dns_message(9, "1.0.0.10.in-addr.arpa", "PTR", response=True,
                                answers=(("1.0.0.10.in-addr.arpa", "PTR", "client.example.com"),)))
    assert ptr is not None and ptr.answers[0].data == "client.example.com"
    nx = parse_dns(dns_message(10, "nowhere.example", "A", response=True, rcode=NXDOMAIN))
    assert nx is not None and nx.rcode == "NXDOMAIN" and nx.answers == ()
    query = parse_dns(dns_message(11, "mail.example", "AAAA"))
    assert query is not None and not query.response and query.rcode == "NOERROR"


@pytest.mark.parametrize("payload", [b"", b"\x00" * 12, b"\x00" * 120, b"\x12\x34\x01\x00\x00\x01" + b"\xff" * 6,
                                     dns_message(1, "a.example", "A")[:15]])
def test_what_is_not_dns_is_skipped(payload: bytes) -> None:
    """Zero-filled datagrams (the benchmark's noise), a question cut short, garbage: None, never an error."""
    assert parse_dns(payload) is None


def test_dns_over_tcp_framing_survives_any_split() -> None:
    messages = [dns_message(1, "a.example", "A"), dns_message(2, "b.example", "MX")]
    stream = b"".join(struct.pack("!H", len(m)) + m for m in messages)
    for cut in range(len(stream) + 1):
        framer = TcpDnsFramer()
        assert framer.feed(stream[:cut]) + framer.feed(stream[cut:]) == messages
    framer = TcpDnsFramer()
    framer.feed(stream[:5])
    framer.gap()  # after lost bytes no length prefix can be trusted
    assert framer.feed(stream) == messages


# --------------------------------------------------------------------------- scenario


def _smtp_with_context(tmp_path: Path, *, ptr: str = "client.example.com", forward: str = CLIENT,
                       helo: bytes = b"client.example.com", identd: bytes | None = None,
                       pre_connect_gap: float = 0.001, tcp_dns: bool = False) -> Path:
    """A client resolves its MTA, connects; the MTA looks up the client (PTR, A), probes ident,
    checks SPF and a DNS blocklist during MAIL, and refuses a recipient whose domain is NXDOMAIN."""
    cap = Capture()
    dns = Dns(cap, RESOLVER)
    t = dns.lookup(T0, CLIENT, "mx.example.org", "A", answers=(("mx.example.org", "A", SERVER),))
    conv = Tcp(cap, client=(CLIENT, 40000), server=(SERVER, 25), ts=t + pre_connect_gap)
    conv.handshake()
    if tcp_dns:  # the PTR lookup over TCP (as a resolver does after a truncated UDP answer)
        lookup = Tcp(cap, client=(SERVER, 45000), server=(RESOLVER, 53), ts=conv.ts)
        lookup.handshake()
        query = dns_message(77, "1.0.0.10.in-addr.arpa", "PTR")
        answer = dns_message(77, "1.0.0.10.in-addr.arpa", "PTR", response=True,
                             answers=(("1.0.0.10.in-addr.arpa", "PTR", ptr),))
        lookup.c(struct.pack("!H", len(query)) + query).s(struct.pack("!H", len(answer)) + answer).fin()
        t = lookup.ts
    else:
        t = dns.lookup(conv.ts + 0.0001, SERVER, "1.0.0.10.in-addr.arpa", "PTR",
                       answers=(("1.0.0.10.in-addr.arpa", "PTR", ptr),))
    t = dns.lookup(t, SERVER, ptr, "A", answers=((ptr, "A", forward),))
    probe = Tcp(cap, client=(SERVER, 33000), server=(CLIENT, 113), ts=t)
    if identd is None:
        probe._emit("c", SYN)
        probe.rst("s")
    else:
        probe.handshake().c(b"40000 , 25\r\n").s(identd).fin()
    conv.ts = probe.ts
    conv.s(b"220 mx.example.org ESMTP\r\n").c(b"EHLO " + helo + b"\r\n").s(b"250 mx.example.org\r\n")
    conv.c(b"MAIL FROM:<alice@example.com>\r\n")
    t = dns.lookup(conv.ts + 0.0001, SERVER, "example.com", "TXT",
                   answers=(("example.com", "TXT", "v=spf1 ip4:10.0.0.1 -all"),))
    t = dns.lookup(t, SERVER, "1.0.0.10.zen.spamhaus.org", "A",
                   answers=(("1.0.0.10.zen.spamhaus.org", "A", "127.0.0.2"),))
    conv.ts = t
    conv.s(b"250 2.1.0 Ok\r\n").c(b"RCPT TO:<bob@nowhere.example>\r\n")
    conv.ts = dns.lookup(conv.ts + 0.0001, SERVER, "nowhere.example", "MX", rcode=NXDOMAIN)
    conv.s(b"550 5.1.2 <bob@nowhere.example>: Recipient address rejected: Domain not found\r\n")
    conv.c(b"QUIT\r\n").s(b"221 2.0.0 Bye\r\n").fin()
    return cap.write(tmp_path / "context.pcap")


def _analyze(path: Path, **limits: object) -> tuple[list[Session], Analyzer]:
    config = build_config()
    if limits:
        config = replace(config, context=replace(ContextLimits(), **limits))
    analyzer = Analyzer(config)
    return list(analyzer.run([open_capture(str(path))])), analyzer


def test_every_lookup_of_the_story_finds_its_purpose(tmp_path: Path) -> None:
    sessions, analyzer = _analyze(_smtp_with_context(tmp_path))
    [session] = sessions
    got = [(o.kind, o.role, o.purpose, o.qtype, o.query, o.subject) for o in session.context]
    assert got == [
        ("dns", "client", "server-address", "A", "mx.example.org", "mx.example.org"),
        ("dns", "server", "client-ptr", "PTR", "1.0.0.10.in-addr.arpa", CLIENT),
        ("dns", "server", "client-name", "A", "client.example.com", "client.example.com"),
        ("ident", "server", "ident", None, None, CLIENT),
        ("dns", "server", "sender-domain", "TXT", "example.com", "example.com"),  # SPF record of the sender
        ("dns", "server", "dnsbl", "A", "1.0.0.10.zen.spamhaus.org", "zen.spamhaus.org"),
        ("dns", "server", "recipient-domain", "MX", "nowhere.example", "nowhere.example"),
    ]
    ident = session.context[3]
    assert ident.outcome == "rst" and [r.flags & (SYN | RST) for r in ident.rows] == [SYN, RST]
    assert [(c.check, c.result) for c in session.context_checks] == [
        ("fcrdns", "ok"), ("helo", "ok"), ("nxdomain", "refused")]
    assert analyzer.stats.context is not None and analyzer.stats.context.attributed == 7


def test_unconfirmed_ptr_and_a_lying_helo(tmp_path: Path) -> None:
    [session], _ = _analyze(_smtp_with_context(tmp_path, ptr="dyn-1.isp.example", forward="192.0.2.99",
                                               helo=b"mail.bank.example"))
    checks = {c.check: c for c in session.context_checks}
    assert checks["fcrdns"].result == "unconfirmed"
    assert checks["fcrdns"].values == {"client": CLIENT, "name": "dyn-1.isp.example", "addresses": "192.0.2.99"}
    assert checks["helo"].result == "differs" and checks["helo"].values["helo"] == "mail.bank.example"


def test_an_identd_that_answers(tmp_path: Path) -> None:
    [session], _ = _analyze(_smtp_with_context(tmp_path, identd=b"40000 , 25 : USERID : UNIX : alice\r\n"))
    [probe] = [o for o in session.context if o.kind == "ident"]
    assert probe.outcome == "answered"
    assert probe.query == "40000 , 25" and probe.reply == "40000 , 25 : USERID : UNIX : alice"
    assert len(probe.rows) == 8  # handshake, request, answer, FIN/ACK exchange
    assert any(r.text == probe.reply and r.response for r in probe.rows)


def test_dns_over_tcp_is_context_too(tmp_path: Path) -> None:
    [session], _ = _analyze(_smtp_with_context(tmp_path, tcp_dns=True))
    ptr = next(o for o in session.context if o.purpose == "client-ptr")
    assert ptr.transport == "tcp" and ptr.answer_texts == ["client.example.com"]
    assert any(c.check == "fcrdns" and c.ok for c in session.context_checks)


def test_a_lookup_long_before_the_session_is_not_its_own(tmp_path: Path) -> None:
    path = _smtp_with_context(tmp_path, pre_connect_gap=45.0)
    [session], analyzer = _analyze(path)
    assert "server-address" not in [o.purpose for o in session.context]
    stats = analyzer.stats.context
    assert stats is not None and stats.unattributed == 1 and stats.attributed == 6
    [session], _ = _analyze(path, window_before=60.0)  # the window is a named limit
    assert session.context[0].purpose == "server-address"


def test_json_context_checks_and_the_dnsbl_finding(tmp_path: Path) -> None:
    result = run_cli("analyze", "--format", "json", str(_smtp_with_context(tmp_path)))
    report = json.loads(result.stdout)
    [session] = report["sessions"]
    first = session["context"][0]
    assert {k: first[k] for k in ("frame", "kind", "host", "query", "qtype", "answers", "rcode", "caption")} == {
        "frame": 1, "kind": "dns", "host": CLIENT, "query": "mx.example.org", "qtype": "A",
        "answers": [SERVER], "rcode": "NOERROR",
        "caption": "the client looks up the address of mx.example.org: A → 10.0.0.2"}
    assert isinstance(first["ts"], float)
    ident = next(c for c in session["context"] if c["kind"] == "ident")
    assert ident["query"] is None and ident["qtype"] is None and ident["rcode"] is None
    assert ident["outcome"] == "rst" and ident["caption"].endswith("— refused with RST")
    dnsbl = next(c for c in session["context"] if c["purpose"] == "dnsbl")
    assert dnsbl["caption"] == ("the MTA asks the blocklist zen.spamhaus.org about the client 10.0.0.1: "
                                "A → listed (127.0.0.2)")
    nx = next(c for c in session["context_checks"] if c["check"] == "nxdomain")
    assert nx["ok"] is False and nx["domain"] == "nowhere.example" and nx["status"] == "550"
    findings = [f for f in report["findings"] if f["id"] == "dnsbl-lookup"]
    assert [f["title"] for f in findings] == ["10.0.0.1 is listed on zen.spamhaus.org (127.0.0.2)"]
    assert report["capture"]["context"] == {"dns": 6, "ident": 1, "attributed": 7, "unattributed": 0,
                                            "non_mail": 0, "unanswered": 0, "dropped": 0}


def test_no_context_hides_rows_and_keeps_the_json_keys_empty(tmp_path: Path) -> None:
    path = str(_smtp_with_context(tmp_path))
    shown = run_cli("analyze", path).stdout
    hidden = run_cli("analyze", "--no-context", path).stdout
    assert "Standard query" in shown and "check: " in shown and "ident probe" in shown
    assert "Standard query" not in hidden and "check: " not in hidden and "ident probe" not in hidden
    report = json.loads(run_cli("analyze", "--format", "json", "--no-context", path).stdout)
    assert report["sessions"][0]["context"] == [] and report["sessions"][0]["context_checks"] == []
    assert any(f["id"] == "dnsbl-lookup" for f in report["findings"])  # the findings still see DNS


# --------------------------------------------------------------------------- relays and their MX


def _relay(tmp_path: Path, *, connect_to: str, rcpt: bytes = b"bob@example.org") -> Path:
    cap = Capture()
    dns = Dns(cap, RESOLVER)
    mta = "10.0.0.25"
    t = dns.lookup(T0, mta, "example.org", "MX", answers=(
        ("example.org", "MX", (10, "mx1.example.org")), ("example.org", "MX", (20, "mx2.example.org"))),
        additional=(("mx1.example.org", "A", "10.0.0.9"), ("mx2.example.org", "A", SERVER)))
    t = dns.lookup(t, mta, "mx2.example.org", "AAAA")
    t = dns.lookup(t, mta, "mx2.example.org", "A", answers=(("mx2.example.org", "A", SERVER),))
    conv = Tcp(cap, client=(mta, 41000), server=(connect_to, 25), ts=t)
    conv.handshake().s(b"220 mx ESMTP\r\n").c(b"EHLO mail.example.com\r\n").s(b"250 mx\r\n")
    conv.c(b"MAIL FROM:<alice@example.com>\r\n").s(b"250 Ok\r\n").c(b"RCPT TO:<" + rcpt + b">\r\n")
    conv.s(b"250 Ok\r\n").c(b"QUIT\r\n").s(b"221 Bye\r\n").fin()
    return cap.write(tmp_path / "relay.pcap")


def test_a_relay_to_the_backup_mx(tmp_path: Path) -> None:
    [session], _ = _analyze(_relay(tmp_path, connect_to=SERVER))
    assert [(o.purpose, o.qtype) for o in session.context] == [("mx", "MX"), ("mx-host", "AAAA"), ("mx-host", "A")]
    [route] = session.context_checks
    assert (route.check, route.result) == ("mx-route", "backup-mx")
    assert route.values == {"domain": "example.org", "host": "mx2.example.org", "address": SERVER,
                            "preference": "20", "best": "10"}
    text = run_cli("analyze", str(tmp_path / "relay.pcap")).stdout
    assert "the sending MTA looks up the MX of example.org → mx1.example.org (preference 10), " \
           "mx2.example.org (preference 20)" in text
    assert "check: the relay went to mx2.example.org (10.0.0.2), a backup MX host of example.org" in text


def test_a_relay_that_ignores_its_mx(tmp_path: Path) -> None:
    """Connected to a host no MX named: once RCPT shows the domain, the MX lookup still tells where it pointed."""
    [session], _ = _analyze(_relay(tmp_path, connect_to="10.0.0.7"))
    assert [o.purpose for o in session.context] == ["mx", "mx-host", "mx-host"]
    [route] = session.context_checks
    assert (route.check, route.result) == ("mx-route", "not-mx")
    assert route.values["hosts"] == "mx1.example.org (10), mx2.example.org (20)"
    [other], _ = _analyze(_relay(tmp_path, connect_to="10.0.0.7", rcpt=b"carol@elsewhere.example"))
    assert other.context == [] and other.context_checks == []  # a lookup of another domain is not its own


# --------------------------------------------------------------------------- limits: memory stays flat


def test_floods_stay_within_the_named_limits(tmp_path: Path) -> None:
    cap = Capture()
    dns = Dns(cap, RESOLVER)
    t = T0
    for i in range(300):  # unanswered queries by a host with no session: the queries table is bounded
        dns.query(t + i * 0.001, "10.9.9.9", f"q{i}.example", "A")
    for i in range(300):  # answered lookups nobody claims: the pending buffer is bounded
        t = dns.lookup(T0 + 1 + i * 0.001, "10.9.9.8", f"p{i}.example", "A", rcode=SERVFAIL)
    conv = Tcp(cap, client=(CLIENT, 40000), server=(SERVER, 25), ts=t)
    conv.handshake()
    t = conv.ts
    ptr = "1.0.0.10.in-addr.arpa"
    for _ in range(40):  # the session's own lookups: its list is bounded
        t = dns.lookup(t, SERVER, ptr, "PTR", answers=((ptr, "PTR", "c.example"),))
    conv.ts = t
    conv.s(b"220 ok\r\n").c(b"QUIT\r\n").s(b"221 bye\r\n").fin()
    path = cap.write(tmp_path / "flood.pcap")
    seen: list[int] = []
    config = replace(build_config(), context=ContextLimits(max_pending=16, max_queries=8, max_per_session=5))
    analyzer = Analyzer(config)
    assert analyzer.context is not None
    tracker = analyzer.context
    tracker.listeners.append(lambda o: seen.append(o.frame))
    sizes: list[tuple[int, int]] = []
    for session in analyzer.run([open_capture(str(path))]):
        sizes.append((len(tracker._pending), len(tracker._queries)))
        assert len(session.context) == 5 and session.context_dropped == 35
    assert max(p for p, _ in sizes) <= 16 and max(q for _, q in sizes) <= 8
    stats = analyzer.stats.context
    assert stats is not None and stats.unanswered == 300 and stats.dns == 640
    assert len(seen) == 640  # every transaction reaches the findings hook once, answered or not


def test_fast_path_and_full_decode_give_the_same_context(captures: Path) -> None:
    def context(fast: bool) -> list[tuple[int, list[int]]]:
        analyzer = Analyzer(build_config(), fast_path=fast)
        return [(s.id, [o.frame for o in s.context])
                for s in analyzer.run([open_capture(str(captures / "mixed-all.pcap"))])]

    assert context(True) == context(False)


def test_findings_from_the_context(tmp_path: Path) -> None:
    path = _smtp_with_context(tmp_path, ptr="dyn-1.isp.example", forward="192.0.2.99", helo=b"mail.bank.example")
    findings = json.loads(run_cli("analyze", "--format", "json", str(path)).stdout)["findings"]
    rdns = sorted((f["severity"], f["title"]) for f in findings if f["id"] == "reverse-dns-mismatch")
    assert rdns == [("info", '10.0.0.1 says HELO "mail.bank.example", but its DNS name is dyn-1.isp.example'),
                    ("low", "10.0.0.1: reverse DNS dyn-1.isp.example is not forward-confirmed")]
    clean = json.loads(run_cli("analyze", "--format", "json", str(_smtp_with_context(tmp_path))).stdout)["findings"]
    assert not [f for f in clean if f["id"] in ("reverse-dns-mismatch", "relay-not-to-mx")]
    relay = json.loads(run_cli("analyze", "--format", "json", str(_relay(tmp_path, connect_to="10.0.0.7"))).stdout)
    [finding] = [f for f in relay["findings"] if f["id"] == "relay-not-to-mx"]
    assert finding["title"] == "Relay for example.org went to 10.0.0.7, not to its MX" and finding["severity"] == "low"
    backup = json.loads(run_cli("analyze", "--format", "json", str(_relay(tmp_path, connect_to=SERVER))).stdout)
    assert not [f for f in backup["findings"] if f["id"] == "relay-not-to-mx"]  # a backup MX is a legal route


def test_a_pop3_server_looking_up_its_client_among_many_connections(tmp_path: Path) -> None:
    """Only lookups about a POP3/IMAP session's client are theirs, however many sessions the server holds."""
    cap = Capture()
    dns = Dns(cap, RESOLVER)
    idle = [Tcp(cap, client=(f"10.0.1.{i}", 41000 + i), server=(SERVER, 143), ts=T0 + i * 0.001).handshake()
            for i in range(1, 30)]
    conv = Tcp(cap, client=("2001:db8::7", 40000), server=("2001:db8::2", 110), ts=T0 + 1)
    conv.handshake()
    rev = "7.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
    dns6 = Dns(cap, "2001:db8::53")
    t = dns6.lookup(conv.ts + 0.0001, "2001:db8::2", rev, "PTR", answers=((rev, "PTR", "laptop.example"),))
    t = dns.lookup(t, SERVER, "unrelated.example", "A", answers=(("unrelated.example", "A", "192.0.2.1"),))
    conv.ts = t
    conv.s(b"+OK ready\r\n").c(b"QUIT\r\n").s(b"+OK bye\r\n").fin()
    for i, imap in enumerate(idle):
        imap.ts = t + 1 + i * 0.001
        imap.s(b"* OK ready\r\n").c(b"a LOGOUT\r\n").s(b"* BYE\r\na OK bye\r\n").fin()
    sessions, analyzer = _analyze(cap.write(tmp_path / "pop3.pcap"))
    pop3 = next(s for s in sessions if s.protocol == "pop3")
    assert [(o.purpose, o.subject) for o in pop3.context] == [("client-ptr", "2001:db8::7")]
    text = run_cli("analyze", "-p", "pop3", str(tmp_path / "pop3.pcap")).stdout
    assert "the server looks up the client's name (PTR) → laptop.example" in text
    assert all(not s.context for s in sessions if s.protocol == "imap")
    assert analyzer.stats.context is not None and analyzer.stats.context.unattributed == 1


def test_a_ptr_answer_cut_by_the_snap_length_is_not_read_as_no_name(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The PTR response cut 20 bytes short keeps its question but loses its record: the caption says
    the answer is cut off, and the forward-confirmed rDNS check does not conclude "no PTR" from it."""
    from pcapgen import Frame

    whole = _smtp_with_context(tmp_path)
    checks = json.loads(run_cli("analyze", "--format", "json", str(whole)).stdout)["sessions"][0]["context_checks"]
    assert any(c["check"] == "fcrdns" for c in checks)  # with the whole answer: the check is made
    original = Capture.write

    def cut_ptr_answer(self: Capture, path: Path, **kw: bool) -> Path:
        for i, f in enumerate(self.frames):
            d = f.data
            if len(d) > 42 and d[23] == 17 and d[34:36] == b"\x00\x35" and b"in-addr" in d:
                self.frames[i] = Frame(f.ts, d[:-20], f.wire_len or len(d))
        return original(self, path, **kw)

    (tmp_path / "cut").mkdir()
    monkeypatch.setattr(Capture, "write", cut_ptr_answer)
    path = _smtp_with_context(tmp_path / "cut")
    session = json.loads(run_cli("analyze", "--format", "json", str(path)).stdout)["sessions"][0]
    [ptr] = [c for c in session["context"] if c["purpose"] == "client-ptr"]
    assert ptr["cut"] is True and ptr["answers"] == []
    assert "the answer is cut off in the capture (snap length)" in ptr["caption"]
    assert not [c for c in session["context_checks"] if c["check"] == "fcrdns"]
