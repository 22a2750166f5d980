"""The pipeline as a whole: the fast path changes nothing, sessions come out in start order."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailtrace.capture.reader import open_capture
from mailtrace.config import Config
from mailtrace.pipeline import Analyzer
from mailtrace.render.json import capture_json, session_json
from tests.pcapgen import Capture, Tcp
from tests.support import sample


def analyse(path: Path, fast: bool) -> tuple[list[dict], dict]:
    analyzer = Analyzer(Config(), fast_path=fast)
    sessions = [session_json(s) for s in analyzer.run([open_capture(str(path))])]
    return sessions, capture_json(analyzer.stats)


def test_fast_path_gives_identical_results() -> None:
    """mixed-all holds HTTP, DNS and ARP between the mail sessions: the fast path must not change a thing."""
    path = sample("mixed-all.pcap")
    assert analyse(path, True) == analyse(path, False)


def test_fast_path_with_port_reuse_and_noise(tmp_path: Path) -> None:
    cap = Capture()
    web = Tcp(cap, client=("10.0.0.1", 50000), server=("10.0.0.9", 80)).handshake()
    web.c(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").s(b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 3000)
    mail = Tcp(cap, client=("10.0.0.1", 50001), ts=web.ts).handshake()
    mail.s(b"220 hi\r\n").c(b"QUIT\r\n").s(b"221 bye\r\n")
    web.ts = mail.ts
    for _ in range(20):
        web.s(b"y" * 1000)
    web.fin()
    again = Tcp(cap, client=("10.0.0.1", 50000), server=("10.0.0.9", 80), isn_client=777, ts=web.ts).handshake()
    again.c(b"GET /2 HTTP/1.1\r\n\r\n").fin()
    mail.ts = again.ts
    mail.fin()
    path = cap.write(tmp_path / "x.pcap")
    fast, slow = analyse(path, True), analyse(path, False)
    assert fast == slow
    assert [s["stream"] for s in fast[0]] == [1]
    assert fast[1]["tcp_packets"] == len(cap.frames)


def test_sessions_in_start_order_with_ids() -> None:
    sessions, _ = analyse(sample("mixed-all.pcap"), True)
    starts = [s["first_frame"] for s in sessions]
    assert starts == sorted(starts)
    assert [s["id"] for s in sessions] == list(range(1, len(sessions) + 1))


def test_message_bytes_on_a_row_never_exceed_its_payload() -> None:
    """Bulk message content is counted on its rows when the packets arrive; the segment that may end
    the content is dissected on its own and must not be counted a second time (it was: frame 57 of
    imap-session.pcap carried 339 bytes and showed 678)."""
    sessions = list(Analyzer(Config()).run([open_capture(str(sample("imap-session.pcap")))]))
    rows = [r for s in sessions for r in s.rows if r.payload_len and r.body_bytes]
    assert len(rows) >= 5
    assert all(r.body_bytes <= r.payload_len for r in rows), [(r.frame, r.payload_len, r.body_bytes) for r in rows]
    (row57,) = [r for r in rows if r.frame == 57]
    assert row57.body_bytes == 339


def test_pop3_and_imap_replies_name_the_frame_of_their_command() -> None:
    for name, verbs in (("pop3-session.pcap", {"USER", "PASS", "STAT", "RETR", "QUIT"}),
                        ("imap-session.pcap", {"LOGIN", "SELECT", "FETCH", "LOGOUT"})):
        s = session_json(next(iter(Analyzer(Config()).run([open_capture(str(sample(name)))]))))
        commands = {c["frame"]: c["verb"] for c in s["commands"]}
        answered = [r for r in s["replies"] if r["answers"] in verbs and r["status"] not in ("*", "+")]
        assert {r["answers"] for r in answered} == verbs, name
        for r in answered:  # every answer points at a command of that verb, sent before it
            assert commands.get(r["answers_frame"]) == r["answers"], (name, r)
            assert r["answers_frame"] <= r["frame"]
        assert all(r["answers_frame"] is None for r in s["replies"] if r["answers"] is None)


def feed_with_limit(frames: list[bytes], limit_name: str, limit: int) -> tuple[list[dict], int]:
    """The sessions of Ethernet frames fed one by one (0.1 ms apart) with one FlowLimits bound set, and the
    peak size of the flow table's collection that bound keeps (``unanswered`` or ``closing``)."""
    from dataclasses import replace

    from mailtrace.pipeline import LINKTYPE_ETHERNET

    config = Config()
    config = replace(config, flow=replace(config.flow, **{limit_name: limit}))
    watched = {"max_unanswered": "unanswered", "max_closing": "closing"}[limit_name]
    analyzer = Analyzer(config)
    analyzer.start_source("frames")
    peak, out = 0, []
    for i, data in enumerate(frames):
        out += analyzer.feed(1_700_000_000.0 + i * 1e-4, LINKTYPE_ETHERNET, data, len(data))
        peak = max(peak, len(getattr(analyzer.flows, watched)))
    out += analyzer.close_source()
    return [session_json(s) for s in out], peak


def test_a_syn_flood_keeps_memory_bounded_and_the_report_unchanged() -> None:
    """Unanswered SYNs to port 25 are sessions (a scan is worth seeing), but each open one held ~10 KB
    until the capture's end: 50,000 of them took 557 MB. Past ``max_unanswered`` of them the oldest is
    ended at once, as the end of the capture would end it (close "open") — also when real, long
    conversations are open beside them. A client whose SYN went unanswered and that tries again (same
    ISN) is taken up again under the same tcp.stream number, its conversation whole."""

    from tests.pcapgen import ethernet, ip_packet, tcp_segment

    def syn(i: int) -> bytes:
        return ethernet(ip_packet(f"198.51.100.{1 + i % 200}", "192.0.2.25", 6,
                                  tcp_segment(20000 + i, 25, 1000 * i, 0, 0x02, b"")))

    talks = Capture()  # 20 conversations that stay open through the flood
    for n in range(20):
        Tcp(talks, client=(f"10.0.1.{n + 1}", 40000), server=("192.0.2.25", 25)).handshake().s(b"220 hi\r\n")
    retry = Capture()  # the client of the first flood SYN tries again: answered this time
    Tcp(retry, client=("198.51.100.1", 20000), server=("192.0.2.25", 25), isn_client=0).handshake() \
        .s(b"220 mx ESMTP\r\n").c(b"EHLO a\r\n").s(b"250 mx\r\n").c(b"QUIT\r\n").s(b"221 bye\r\n").fin()
    frames = [f.data for f in talks.frames] + [syn(i) for i in range(300)] + [f.data for f in retry.frames]

    bounded, peak = feed_with_limit(frames, "max_unanswered", 16)
    unbounded, unbounded_peak = feed_with_limit(frames, "max_unanswered", 100_000)
    assert peak == 16 and unbounded_peak == 300
    real = [s for s in bounded if s["client"] == {"ip": "198.51.100.1", "port": 20000} and s["commands"]]
    assert len(real) == 1 and [c["verb"] for c in real[0]["commands"]] == ["EHLO", "QUIT"]
    assert real[0]["close"] == "fin" and real[0]["stream"] == 20  # the flood's first SYN was stream 20
    # stream 20 is two sessions (the first SYN, ended early; then the conversation); every other session
    # is the one an unbounded table gives
    shed_first = [s for s in bounded if s["stream"] == 20 and not s["commands"]]
    assert len(shed_first) == 1 and shed_first[0]["packets"] == 1 and shed_first[0]["close"] == "open"
    def without_ids(sessions: list[dict]) -> list[dict]:
        return [{k: v for k, v in s.items() if k != "id"} for s in sessions]

    assert without_ids([s for s in bounded if s["stream"] != 20]) == without_ids([s for s in unbounded
                                                                                 if s["stream"] != 20])
    [whole] = [s for s in unbounded if s["stream"] == 20]
    assert whole["commands"] == real[0]["commands"] and whole["packets"] == real[0]["packets"] + 1
    assert len([s for s in bounded if s["close"] == "open" and s["packets"] == 1]) == 300


def test_a_scanner_s_syn_rst_pairs_keep_memory_bounded_and_the_report_unchanged() -> None:
    """A scanner probing port 25 gets a SYN/RST pair per probe; each ended connection lingered 2 s of
    capture time for trailing packets with all its state (~10 KB), so 10,000 probes a second held
    20,000 of them at once (20,000 probes: 196 MB). Past ``max_closing`` the oldest is finished at
    once; nothing else in the report changes."""

    from tests.pcapgen import ethernet, ip_packet, tcp_segment

    frames = []
    for i in range(300):
        client = f"198.51.100.{1 + i % 200}"
        frames.append(ethernet(ip_packet(client, "192.0.2.25", 6, tcp_segment(20000 + i, 25, 1000, 0, 0x02, b""))))
        frames.append(ethernet(ip_packet("192.0.2.25", client, 6, tcp_segment(25, 20000 + i, 0, 1001, 0x14, b""))))
    talk = Capture()  # a real conversation that ends (FIN) in the middle of the scan
    Tcp(talk, client=("10.0.1.1", 40000), server=("192.0.2.25", 25)).handshake() \
        .s(b"220 mx ESMTP\r\n").c(b"QUIT\r\n").s(b"221 bye\r\n").fin()
    frames[300:300] = [f.data for f in talk.frames]

    bounded, peak = feed_with_limit(frames, "max_closing", 16)
    unbounded, unbounded_peak = feed_with_limit(frames, "max_closing", 100_000)
    assert peak == 16 and unbounded_peak == 300
    assert bounded == unbounded
    assert len(bounded) == 301 and sum(s["close"] == "rst" for s in bounded) == 300
    [real] = [s for s in bounded if s["commands"]]
    assert real["close"] == "fin" and [c["verb"] for c in real["commands"]] == ["QUIT"]


def test_end_of_data_split_between_segments_of_bulk_content(tmp_path: Path) -> None:
    """Message content waits to be dissected in 64 KiB pieces until a segment may end it. A segment
    without a dot is let through by one byte search, so the end marker split across two segments —
    its dot in the one before, or in neither half alone — must still end the message at its frame, not
    at the client's next segment."""
    body_line = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0\r\n"
    body = body_line * 1500  # ~117 KB: more than one bulk piece, no dot anywhere
    content = body + b".\r\n"  # the CRLF that ends the body's last line is the marker's first
    for cut in range(5):  # 0: the whole marker in the last segment; 1-4: split inside it
        cap = Capture()
        tcp = Tcp(cap, client=("10.0.0.1", 40000 + cut)).handshake()
        tcp.s(b"220 mx\r\n").c(b"HELO a\r\n").s(b"250 ok\r\n").c(b"MAIL FROM:<a@x>\r\n").s(b"250 ok\r\n")
        tcp.c(b"RCPT TO:<b@y>\r\n").s(b"250 ok\r\n").c(b"DATA\r\n").s(b"354 go\r\n")
        head = content[: len(body) - 2 + cut]
        for start in range(0, len(head), 1400):
            tcp.c(head[start : start + 1400])
        last_frame = len(cap.frames) + 1
        # the client pipelines QUIT before the server answers: the segment before it ended the content
        tcp.c(content[len(head) :]).c(b"QUIT\r\n").s(b"250 queued\r\n").s(b"221 bye\r\n").fin()
        path = cap.write(tmp_path / f"bulk-{cut}.pcap")
        [session] = [session_json(s) for s in Analyzer(Config()).run([open_capture(str(path))])]
        [message] = session["messages"]
        assert (message["complete"], message["bytes"], message["last_frame"]) == (True, len(body), last_frame), cut
        assert [t["reply"] for t in session["transactions"]] == [250], cut
        assert [c["verb"] for c in session["commands"]] == ["HELO", "MAIL", "RCPT", "DATA", "QUIT"], cut


def _behind_a_long_session(count: int) -> Capture:
    """An IMAP session open from the first packet to the last and ``count`` short SMTP sessions meanwhile."""
    cap = Capture()
    imap = Tcp(cap, client=("10.9.0.1", 50000), server=("10.9.0.2", 143), ts=1_700_000_000.0)
    imap.handshake().s(b"* OK ready\r\n").c(b"a1 IDLE\r\n").s(b"+ idling\r\n")
    t = 1_700_000_001.0
    for i in range(count):
        smtp = Tcp(cap, client=(f"10.0.1.{i + 1}", 40000), server=("10.0.0.25", 25), ts=t)
        smtp.handshake().s(b"220 mx\r\n").c(b"QUIT\r\n").s(b"221 bye\r\n").fin()  # 9 packets
        t = smtp.ts + 0.01
    imap.ts = t
    imap.c(b"DONE\r\n").s(b"a1 OK\r\n").fin()
    return cap


def test_sessions_behind_a_long_session_wait_only_as_long_as_the_buffer_allows(tmp_path: Path) -> None:
    """Finished sessions wait for an older one still open, so the report is in start order; past
    ``max_reorder_sessions`` (or ``max_reorder_rows``) waiting, the oldest is handed out early: memory
    stays bounded behind a session open for the whole capture (an IMAP IDLE), and the order is the end
    order from there on."""
    cap_path = _behind_a_long_session(6).write(tmp_path / "held.pcap")

    def protocols(config: Config) -> list[tuple[int, str, int]]:
        out = Analyzer(config).run_file(open_capture(str(cap_path)))
        return [(s.id, s.protocol, s.stream) for s in out]

    assert protocols(Config()) == [(1, "imap", 0)] + [(i + 2, "smtp", i + 1) for i in range(6)]
    # four held: the fifth makes it five, over the limit, so the oldest finished one goes
    assert protocols(Config(max_reorder_sessions=4)) == [
        (1, "smtp", 1), (2, "smtp", 2), (3, "imap", 0), (4, "smtp", 3), (5, "smtp", 4), (6, "smtp", 5),
        (7, "smtp", 6)]
    # a held session counts its rows and one more (9 + 1 here): 30 rows hold three sessions, 27 two
    assert protocols(Config(max_reorder_rows=30)) == protocols(Config(max_reorder_sessions=3)) == [
        (1, "smtp", 1), (2, "smtp", 2), (3, "smtp", 3), (4, "imap", 0), (5, "smtp", 4), (6, "smtp", 5),
        (7, "smtp", 6)]
    assert [p for _, p, _ in protocols(Config(max_reorder_rows=27))] == ["smtp"] * 4 + ["imap"] + ["smtp"] * 2


def test_a_scan_s_connections_are_forgotten_past_the_bound_and_the_report_says_so(tmp_path: Path) -> None:
    """Every connection is remembered for ``tombstone_ttl`` (its late packets keep their tcp.stream
    number), ~1 KB each: a SYN scan of a million addresses took 1 GiB. Past ``max_remembered`` the
    tombstones quiet longest are forgotten; one that sends again gets a new number (Wireshark would keep
    the old one), later sessions are numbered one further, and the file's problems say so."""
    from dataclasses import replace

    from tests.pcapgen import ip_packet, tcp_segment

    cap = Capture()
    t = 1_700_000_000.0
    for i in range(20):  # a scan of port 80, closed: SYN, RST/ACK; each connection only numbered
        target = f"192.0.2.{i + 1}"
        cap.add_ip(t, ip_packet("198.51.100.7", target, 6, tcp_segment(30000 + i, 80, 1000 * i, 0, 0x02, b"")))
        rst = tcp_segment(80, 30000 + i, 0, 1000 * i + 1, 0x14, b"")
        cap.add_ip(t + 0.001, ip_packet(target, "198.51.100.7", 6, rst))
        t += 0.5
    # the first target sends again: the same connection as the first SYN (tcp.stream 0) for Wireshark
    cap.add_ip(t, ip_packet("192.0.2.1", "198.51.100.7", 6, tcp_segment(80, 30000, 0, 1, 0x14, b"")))
    Tcp(cap, client=("10.0.0.1", 40000), server=("10.0.0.25", 25), ts=t + 1.0).handshake() \
        .s(b"220 mx\r\n").c(b"QUIT\r\n").s(b"221 bye\r\n").fin()
    path = str(cap.write(tmp_path / "scan.pcap"))

    def run(remembered: int) -> tuple[int, list[str], int, int]:
        config = Config()
        analyzer = Analyzer(replace(config, flow=replace(config.flow, max_remembered=remembered)))
        [session] = analyzer.run_file(open_capture(path))
        return session.stream, analyzer.stats.files[0].problems, analyzer.flows.forgotten, session.packets

    assert run(32_768) == (20, [], 0, 9)
    stream, problems, forgotten, packets = run(8)
    assert (stream, packets) == (21, 9) and 12 <= forgotten <= 21
    assert problems == [f"more than 8 TCP connections at once: {forgotten} that had ended or were not mail were "
                        "forgotten early to bound the memory; one that sends again gets a new tcp.stream number "
                        "where Wireshark would keep the old one"]
    # the table never holds more than the bound (and the connection just made): frame by frame
    from mailtrace.pipeline import LINKTYPE_ETHERNET

    config = Config()
    analyzer = Analyzer(replace(config, flow=replace(config.flow, max_remembered=8)))
    analyzer.start_source("frames")
    peak = 0
    for frame in cap.frames:
        analyzer.feed(frame.ts, LINKTYPE_ETHERNET, frame.data, len(frame.data))
        peak = max(peak, len({id(c) for c in analyzer.flows.table.values()}))
    assert peak == 8 and [s.stream for s in analyzer.close_source()] == [21]


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])  # the memory-mapped walk and the frame-by-frame one
def test_past_max_open_the_quietest_are_ended_and_taken_up_again(tmp_path: Path, fmt: str) -> None:
    """Open connections cost ~13 KB each (20,000 open at once took 316 MiB): past ``max_open`` the tenth
    quiet longest is ended as an idle timeout would end it. One that sends again goes on under the same
    tcp.stream number in a session of its own, begun mid-stream; the file's problems say so."""
    from dataclasses import replace

    cap = Capture()
    t = 1_700_000_000.0
    conversations = []
    for i in range(6):  # six SMTP sessions that stay open after EHLO
        conv = Tcp(cap, client=(f"10.0.0.{i + 1}", 40000), server=("10.0.0.25", 25), ts=t)
        conv.handshake().s(b"220 mx\r\n").c(b"EHLO a\r\n").s(b"250 mx\r\n")
        conversations.append(conv)
        t = conv.ts + 0.1
    conversations[0].ts = t
    conversations[0].c(b"QUIT\r\n").s(b"221 bye\r\n").fin()  # the first, the quietest, talks again
    path = str(cap.write(tmp_path / f"open.{fmt}", fmt=fmt))

    def run(max_open: int) -> tuple[list[tuple[int, int, str, list[str], int]], list[str]]:
        config = Config()
        analyzer = Analyzer(replace(config, flow=replace(config.flow, max_open=max_open)))
        sessions = [(s.id, s.stream, s.close, [c.verb for c in s.commands], s.packets)
                    for s in analyzer.run_file(open_capture(path))]
        return sessions, analyzer.stats.files[0].problems

    whole, problems = run(2048)
    assert problems == [] and whole[0] == (1, 0, "fin", ["EHLO", "QUIT"], 11)
    assert [s[2] for s in whole[1:]] == ["open"] * 5
    bounded, problems = run(4)
    assert bounded == [(1, 0, "timeout", ["EHLO"], 6), (2, 1, "timeout", ["EHLO"], 6),
                       *[(i + 1, i, "open", ["EHLO"], 6) for i in range(2, 6)], (7, 0, "fin", ["QUIT"], 5)]
    assert problems == ['more than 4 mail connections open at once: 2 quiet ones were ended early (close '
                        '"timeout") to bound the memory; one that sent again goes on in a session of its own '
                        'under the same tcp.stream number']
