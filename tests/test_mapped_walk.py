"""The skip loop over memory-mapped pcap files (``Analyzer._walk_mapped``) changes nothing.

It reads record and frame headers straight from the map and only slices out the frames someone wants,
so it must give the same report as the full decode of every frame (``fast_path=False``) and as the
reader-based path that compressed files and pcapng take: on a capture that mixes mail and non-mail
over VLAN tags, IPv6, IPv4 options, fragments, tunnels and DNS, in every pcap flavour, over other
link types, and on damaged files.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import Any

import pytest

import mailtrace.pipeline
from mailtrace.capture.decode import Decoder, UdpPacket
from mailtrace.capture.reader import open_capture
from mailtrace.config import Config
from mailtrace.pipeline import Analyzer
from mailtrace.render.json import capture_json, session_json
from tests.pcapgen import (
    ACK,
    FIN,
    PSH,
    SMTP_SESSION,
    SYN,
    Capture,
    Frame,
    Tcp,
    ethernet,
    fragments,
    gre,
    ip_packet,
    ipip,
    tcp_segment,
)

T0 = 1_700_000_000.0


def analyse(path: Path, fast: bool, calls: list[int] | None = None, *,
            config: Config | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    analyzer = Analyzer(config or Config(), fast_path=fast)
    if calls is not None:
        real_new_file = analyzer._new_file

        def new_file(name: str) -> None:
            real_new_file(name)
            decode = analyzer.decoder.decode

            def counted(ts: float, linktype: int, data: bytes) -> Any:
                calls.append(1)
                return decode(ts, linktype, data)

            analyzer.decoder.decode = counted  # type: ignore[method-assign]

        analyzer._new_file = new_file  # type: ignore[method-assign]
    datagrams: list[tuple[int, float, UdpPacket]] = []
    context = analyzer.context
    if context is not None:  # what DNS reaches the context layer, exactly
        udp = context.udp

        def seen(frame: int, ts: float, pkt: UdpPacket) -> None:
            datagrams.append((frame, ts, pkt))
            udp(frame, ts, pkt)

        context.udp = seen  # type: ignore[method-assign]
    sessions = [session_json(s) for s in analyzer.run([open_capture(str(path))])]
    return sessions, capture_json(analyzer.stats) | {"datagrams": datagrams}


def without_file_names(stats: dict[str, Any]) -> dict[str, Any]:
    stats = dict(stats)
    stats["files"] = [{k: v for k, v in f.items() if k not in ("name", "format")} for f in stats["files"]]
    return stats


def web(cap: Capture, client: tuple[str, int], server: tuple[str, int], ts: float, *, isn: int = 100,
        vlans: tuple[int, ...] = (), replies: int = 12) -> Tcp:
    """An HTTP connection: the sniffer lets it go after the first bytes, the rest is skipped."""
    conv = Tcp(cap, client=client, server=server, ts=ts, isn_client=isn)
    if vlans:
        start = len(cap.frames)
    conv.handshake().c(b"GET / HTTP/1.1\r\nHost: example.net\r\n\r\n").s(b"HTTP/1.1 200 OK\r\n\r\n")
    for i in range(replies):
        conv.s(bytes([65 + i % 26]) * 700)
        if i % 3 == 0:
            conv.ack("c")
    if vlans:
        tag(cap, start, vlans)
    return conv


def tag(cap: Capture, start: int, vlans: tuple[int, ...]) -> None:
    """Give the Ethernet frames from ``start`` on these VLAN tags."""
    for f in cap.frames[start:]:
        head = f.data[:12] + b"".join(struct.pack("!HH", 0x8100, v) for v in vlans)
        f.data = head + f.data[12:]
        f.wire_len = len(f.data)


def smtp(cap: Capture, client: tuple[str, int], server: tuple[str, int], ts: float) -> Tcp:
    conv = Tcp(cap, client=client, server=server, ts=ts).handshake()
    for who, data in SMTP_SESSION:
        (conv.c if who == "c" else conv.s)(data)
    return conv.fin()


def raw_frame(cap: Capture, ts: float, frame: bytes) -> None:
    cap.frames.append(Frame(ts, frame, len(frame)))


def dns(cap: Capture, ts: float, sport: int, qid: int, *, answer: bool = False, port: int = 53,
        trailer: bytes = b"", zero_length: bool = False) -> None:
    name = b"\x02mx\x07example\x03org\x00"
    flags = 0x8180 if answer else 0x0100
    msg = struct.pack("!HHHHHH", qid, flags, 1, 1 if answer else 0, 0, 0) + name + struct.pack("!HH", 1, 1)
    if answer:
        msg += b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 300, 4) + bytes([192, 0, 2, 25])
    src, dst, sp, dp = ("10.0.0.53", "10.0.0.1", port, sport) if answer else ("10.0.0.1", "10.0.0.53", sport, port)
    udp = struct.pack("!HHHH", sp, dp, 8 + len(msg), 0) + msg
    ip = ip_packet(src, dst, 17, udp)
    if zero_length:  # TSO: the sending host's capture has no IP total length
        ip = ip[:2] + b"\x00\x00" + ip[4:]
    raw_frame(cap, ts, cap.wrap(ip, False) + trailer)


def ipv4_with_options(ip: bytes) -> bytes:
    """The same IPv4 packet with a 4-byte options field (IHL 6)."""
    total = struct.unpack("!H", ip[2:4])[0] + 4
    return bytes([0x46]) + ip[1:2] + struct.pack("!H", total) + ip[4:20] + b"\x01\x01\x01\x00" + ip[20:]


def with_tcp_options(ip: bytes) -> bytes:
    """The same IPv4/TCP packet with 12 bytes of TCP options (NOP, NOP, timestamps)."""
    total = struct.unpack("!H", ip[2:4])[0] + 12
    tcp = ip[20:]
    options = b"\x01\x01\x08\x0a" + struct.pack("!II", 12345, 678)
    return ip[:2] + struct.pack("!H", total) + ip[4:20] + tcp[:12] + bytes([0x80]) + tcp[13:20] + options + tcp[20:]


def mixed_capture() -> Capture:
    """Mail and non-mail interleaved, over most of what the decoder knows."""
    cap = Capture()
    ts = T0
    web(cap, ("10.0.0.1", 50000), ("10.0.0.9", 80), ts)
    dns(cap, ts + 0.01, 40001, 7)
    dns(cap, ts + 0.02, 40001, 7, answer=True)
    dns(cap, ts + 0.03, 40002, 8, trailer=b"\xde\xad\xbe\xef")  # Ethernet FCS kept in the capture
    dns(cap, ts + 0.04, 40002, 8, answer=True, zero_length=True)
    dns(cap, ts + 0.045, 40003, 9, trailer=bytes(30), zero_length=True)
    smtp(cap, ("10.0.0.1", 41000), ("10.0.0.2", 25), ts + 0.05)
    web(cap, ("10.0.0.3", 50001), ("10.0.0.9", 443), ts + 0.1, vlans=(100,))
    web(cap, ("10.0.0.3", 50002), ("10.0.0.9", 8080), ts + 0.2, vlans=(100, 200))
    web(cap, ("2001:db8::1", 50003), ("2001:db8::9", 80), ts + 0.3)
    mark = len(cap.frames)
    smtp(cap, ("10.0.0.4", 41001), ("10.0.0.2", 587), ts + 0.4)
    tag(cap, mark, (7,))
    smtp(cap, ("2001:db8::4", 41002), ("2001:db8::2", 25), ts + 0.5)
    # SMTP on a port without a rule: found by content sniffing
    smtp(cap, ("10.0.0.5", 41003), ("10.0.0.6", 2600), ts + 0.6)
    # mail through tunnels
    tunnelled = Capture()
    conv = Tcp(tunnelled, client=("10.2.0.1", 41005), server=("10.2.0.2", 25), ts=ts + 0.8,
               wrap_ip=lambda ip, s, d: gre(ip)).handshake()
    for who, data in SMTP_SESSION:
        (conv.c if who == "c" else conv.s)(data)
    conv.fin()
    conv = Tcp(tunnelled, client=("10.3.0.1", 41006), server=("10.3.0.2", 25), ts=ts + 0.9,
               wrap_ip=lambda ip, s, d: ipip(ip)).handshake()
    conv.s(b"220 hi\r\n").c(b"QUIT\r\n").s(b"221 bye\r\n").fin()
    cap.frames += tunnelled.frames
    # a web connection carried in GRE: never on the skip path, still not mail
    gweb = Capture()
    web(gweb, ("10.4.0.1", 50004), ("10.4.0.9", 80), ts + 1.0)
    for f in gweb.frames:
        ip = f.data[14:]
        raw_frame(cap, f.ts, ethernet(gre(ip)))
    # IPv4 with options: web and mail
    ocap = Capture()
    web(ocap, ("10.5.0.1", 50005), ("10.5.0.9", 80), ts + 1.1)
    smtp(ocap, ("10.5.0.2", 41007), ("10.5.0.3", 25), ts + 1.2)
    for f in ocap.frames:
        raw_frame(cap, f.ts, ethernet(ipv4_with_options(f.data[14:])))
    # TCP options, Ethernet trailers (padding, FCS) and frames cut by the snap length, on mail and web
    ecap = Capture()
    conv = Tcp(ecap, client=("10.8.0.1", 41010), server=("10.8.0.2", 25), ts=ts + 1.25).handshake()
    conv.s(b"220 hi\r\n").c(b"EHLO a\r\n").s(b"250 ok\r\n").c(b"MAIL FROM:<a@b.example>\r\n")
    conv.s(b"250 ok\r\n").c(b"RCPT TO:<c@d.example>\r\n").s(b"250 ok\r\n").c(b"DATA\r\n").s(b"354 go\r\n")
    conv.c(b"Subject: cut\r\n\r\n" + b"body line\r\n" * 40, snaplen=90)
    conv.c(b"more\r\n.\r\n").s(b"250 queued\r\n").c(b"QUIT\r\n").s(b"221 bye\r\n").fin()
    web(ecap, ("10.8.0.3", 50010), ("10.8.0.9", 80), ts + 1.26, replies=20)
    for i, f in enumerate(sorted(ecap.frames, key=lambda f: f.ts)):
        ip = f.data[14:]
        if i % 3 == 0 and len(ip) == struct.unpack("!H", ip[2:4])[0]:
            ip = with_tcp_options(ip)
        trailer = bytes(6) if i % 2 else b"\xca\xfe\xba\xbe"
        cut = f.wire_len is not None and f.wire_len > len(f.data)
        frame = ethernet(ip) + (b"" if cut else trailer)
        cap.frames.append(Frame(f.ts, frame, (f.wire_len or 0) + len(frame) - len(f.data) if cut else len(frame)))
    # fragments: an SMTP reply and a web response split into pieces
    conv = Tcp(cap, client=("10.6.0.1", 41008), server=("10.6.0.2", 25), ts=ts + 1.3).handshake()
    big = b"250-mx.example.org\r\n" + b"".join(b"250-EXT%03d\r\n" % i for i in range(60)) + b"250 SIZE 1\r\n"
    conv.s(b"220 hi\r\n").c(b"EHLO a\r\n")
    seg = tcp_segment(25, 41008, conv.seq["s"], conv.seq["c"], PSH | ACK, big)
    for piece in fragments(ip_packet("10.6.0.2", "10.6.0.1", 6, seg, ident=77), 256):
        conv.ts += 0.001
        cap.add_ip(conv.ts, piece)
    conv.seq["s"] += len(big)
    conv.c(b"QUIT\r\n").s(b"221 bye\r\n").fin()
    wconv = web(cap, ("10.6.0.3", 50006), ("10.6.0.9", 80), ts + 1.4, replies=3)
    seg = tcp_segment(80, 50006, wconv.seq["s"], wconv.seq["c"], ACK, b"z" * 1500)
    for piece in fragments(ip_packet("10.6.0.9", "10.6.0.3", 6, seg, ident=78), 512):
        wconv.ts += 0.001
        cap.add_ip(wconv.ts, piece)
    wconv.seq["s"] += 1500
    wconv.s(b"after the fragments" * 20).fin()
    # fragmented DNS answer and UDP that nobody wants (NTP), also on VLANs and IPv6
    udp = struct.pack("!HHHH", 53, 40009, 8 + 600, 0) + b"\x00\x09\x81\x80" + bytes(596)
    for piece in fragments(ip_packet("10.0.0.53", "10.0.0.1", 17, udp, ident=79), 256):
        cap.add_ip(ts + 1.5, piece)
    for i in range(5):
        ntp = struct.pack("!HHHH", 40123, 123, 56, 0) + bytes(48)
        cap.add_ip(ts + 1.5 + i / 100, ip_packet("10.0.0.1", "10.0.0.123", 17, ntp))
        raw_frame(cap, ts + 1.5, ethernet(ip_packet("10.0.0.1", "10.0.0.123", 17, ntp), vlans=(9,)))
        raw_frame(cap, ts + 1.5, ethernet(ip_packet("2001:db8::1", "2001:db8::7b", 17, ntp), ipv6=True))
    raw_frame(cap, ts + 1.5, ethernet(ip_packet("2001:db8::1", "2001:db8::35", 17,
                                                struct.pack("!HHHH", 40200, 53, 20, 0) + bytes(12)), ipv6=True))
    # ARP, a runt, a TCP header with a bad data offset and a total length that is too short, on a
    # connection the skip knows: both are damage for the decoder, so never skipped
    raw_frame(cap, ts + 1.6, b"\xff" * 12 + b"\x08\x06" + bytes(28))
    raw_frame(cap, ts + 1.6, b"\xff" * 10)
    raw_frame(cap, ts + 1.6, b"\xff" * 12 + b"\x81\x00\x00")
    raw_frame(cap, ts + 1.6, b"\xff" * 12 + b"\x81\x00\x00\x07\x81\x00" + bytes(60))
    known = ip_packet("10.0.0.9", "10.0.0.1", 6, tcp_segment(80, 50000, 1, 1, ACK, b"x" * 30))
    bad_offset = bytearray(known)
    bad_offset[32] = 0x40
    raw_frame(cap, ts + 1.6, ethernet(bytes(bad_offset)))
    bad_total = bytearray(known)
    bad_total[2:4] = b"\x00\x10"
    raw_frame(cap, ts + 1.6, ethernet(bytes(bad_total)))
    tso = bytearray(known)
    tso[2:4] = b"\x00\x00"
    raw_frame(cap, ts + 1.6, ethernet(bytes(tso)))
    # the first web connection's 4-tuple used again with a new SYN (a new stream), then FIN and RST
    web(cap, ("10.0.0.1", 50000), ("10.0.0.9", 80), ts + 1.7, isn=999_999, replies=4).fin()
    Tcp(cap, client=("10.0.0.3", 50001), server=("10.0.0.9", 443), ts=ts + 1.8, isn_client=5).rst("s")
    cap.frames.sort(key=lambda f: f.ts)  # stable: each conversation keeps its order
    # a long quiet stretch, so sweeps run between skipped packets
    late = web(cap, ("10.7.0.1", 50007), ("10.7.0.9", 80), ts + 5, replies=30)
    late.step = 0.4
    for i in range(10):
        late.s(b"q" * 100)
        if i == 5:
            smtp(cap, ("10.7.0.2", 41009), ("10.7.0.3", 25), late.ts)
    late.ts = max(f.ts for f in cap.frames)
    late.fin()
    # an empty-payload segment with FIN|SYN bits never skipped
    cap.add_ip(late.ts + 1, ip_packet("10.7.0.9", "10.7.0.1", 6, tcp_segment(80, 50007, 1, 1, SYN | FIN, b"")))
    return cap


@pytest.fixture(scope="module")
def mixed() -> Capture:
    return mixed_capture()


@pytest.mark.parametrize("flavour", [{}, {"nano": True}, {"big_endian": True}, {"nano": True, "big_endian": True}])
@pytest.mark.parametrize("tail", [None, 4096])
def test_mapped_skip_loop_gives_the_full_decoders_report(mixed: Capture, tmp_path: Path, flavour: dict[str, bool],
                                                         tail: int | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """``tail``: a small file is all tail (records checked against the end of the file); with a short
    tail most of it takes the loop's common branch, as most of a real capture does."""
    if tail is not None:  # larger than every record of the capture, as SKIP_TAIL must be
        assert max(len(f.data) for f in mixed.frames) + 16 < tail
        monkeypatch.setattr(mailtrace.pipeline, "SKIP_TAIL", tail)
    path = mixed.write(tmp_path / "mixed.pcap", **flavour)
    calls: list[int] = []
    fast = analyse(path, True, calls)
    slow = analyse(path, False)
    assert fast == slow
    sessions, stats = fast
    assert len(sessions) == 10
    assert {s["server"]["port"] for s in sessions} >= {25, 587, 2600}
    assert stats["packets"] == len(mixed.frames)
    assert len(stats["datagrams"]) == 7
    assert len(calls) < len(mixed.frames) * 0.8  # the skip did skip


def test_without_the_context_layer_no_udp_is_wanted(mixed: Capture, tmp_path: Path) -> None:
    path = mixed.write(tmp_path / "mixed.pcap")
    config = Config(context_enabled=False)
    fast, slow = analyse(path, True, config=config), analyse(path, False, config=config)
    assert fast == slow
    assert not fast[1]["context"]


def test_vlan_ipv6_and_ip_options_are_skipped_too(tmp_path: Path) -> None:
    cap = Capture()
    web(cap, ("10.0.0.3", 50001), ("10.0.0.9", 443), T0, vlans=(100,), replies=30)
    web(cap, ("10.0.0.3", 50002), ("10.0.0.9", 443), T0 + 0.1, vlans=(100, 200), replies=30)
    web(cap, ("2001:db8::1", 50003), ("2001:db8::9", 80), T0 + 0.2, replies=30)
    mark = len(cap.frames)
    web(cap, ("2001:db8::1", 50004), ("2001:db8::9", 80), T0 + 0.3, replies=30)
    tag(cap, mark, (3,))
    mark = len(cap.frames)
    web(cap, ("10.0.0.4", 50005), ("10.0.0.9", 80), T0 + 0.4, replies=30)
    for f in cap.frames[mark:]:
        f.data = ethernet(ipv4_with_options(f.data[14:]))
        f.wire_len = len(f.data)
    cap.frames.sort(key=lambda f: f.ts)
    path = cap.write(tmp_path / "x.pcap")
    calls: list[int] = []
    fast, slow = analyse(path, True, calls), analyse(path, False)
    assert fast == slow and not fast[0]
    assert len(calls) < len(cap.frames) * 0.3


def test_mapped_skip_loop_agrees_with_the_reader_path(mixed: Capture, tmp_path: Path) -> None:
    """A compressed copy is not mapped: it goes frame by frame through the reader's fast path."""
    path = mixed.write(tmp_path / "mixed.pcap")
    packed = tmp_path / "mixed.pcap.gz"
    packed.write_bytes(gzip.compress(path.read_bytes()))
    mapped_sessions, mapped_stats = analyse(path, True)
    read_sessions, read_stats = analyse(packed, True)
    unmapped = open_capture(str(packed))
    assert unmapped.mapped() is None
    for f in (unmapped.stream, unmapped.raw):
        if f is not None:
            f.close()
    assert [dict(s, file=None) for s in mapped_sessions] == [dict(s, file=None) for s in read_sessions]
    assert without_file_names(mapped_stats) == without_file_names(read_stats)


@pytest.mark.parametrize("linktype", [113, 276, 101, 228, 0, 108])
def test_other_link_types(linktype: int, tmp_path: Path) -> None:
    cap = Capture(linktype=linktype)
    web(cap, ("10.0.0.1", 50000), ("10.0.0.9", 80), T0)
    smtp(cap, ("10.0.0.1", 41000), ("10.0.0.2", 25), T0 + 0.05)
    web(cap, ("2001:db8::1", 50003), ("2001:db8::9", 80), T0 + 0.1)
    dns(cap, T0 + 0.2, 40001, 7)
    dns(cap, T0 + 0.3, 40001, 7, answer=True)
    cap.frames.sort(key=lambda f: f.ts)
    path = cap.write(tmp_path / "x.pcap")
    calls: list[int] = []
    fast, slow = analyse(path, True, calls), analyse(path, False)
    assert fast == slow
    assert len(fast[0]) == 1 and len(fast[1]["datagrams"]) == 2
    if linktype not in (0, 108):  # BSD loopback keeps the general path
        assert len(calls) < len(cap.frames) * 0.6


def test_vlan_tags_in_cooked_captures(tmp_path: Path) -> None:
    def sll_vlan(ip: bytes, ipv6: bool) -> bytes:
        return struct.pack("!HHH8sH", 0, 1, 6, b"\x02" * 6 + b"\0\0", 0x8100) + struct.pack(
            "!HH", 5, 0x86DD if ipv6 else 0x0800) + ip

    cap = Capture(linktype=113, link=sll_vlan)
    web(cap, ("10.0.0.1", 50000), ("10.0.0.9", 80), T0)
    smtp(cap, ("10.0.0.1", 41000), ("10.0.0.2", 25), T0 + 0.05)
    cap.frames.sort(key=lambda f: f.ts)
    path = cap.write(tmp_path / "x.pcap")
    calls: list[int] = []
    fast, slow = analyse(path, True, calls), analyse(path, False)
    assert fast == slow and len(fast[0]) == 1
    assert len(calls) < len(cap.frames) * 0.6


def damaged_copies(good: bytes) -> dict[str, bytes]:
    """The capture cut in the middle of a record, in a record header, with a record claiming too much."""
    offsets = []
    pos = 24
    while pos + 16 <= len(good):
        offsets.append(pos)
        pos += 16 + struct.unpack_from("<I", good, pos + 8)[0]
    middle = offsets[len(offsets) // 2]
    huge = bytearray(good)
    struct.pack_into("<I", huge, middle + 8, 300_000)
    beyond = bytearray(good)
    struct.pack_into("<I", beyond, offsets[-1] + 8, 9000)  # larger than what is left of the file
    return {
        "cut in a record": good[: middle + 40],
        "cut in a header": good[: middle + 7],
        "cut after 20 bytes of a header": good[: middle + 20],
        "huge record": bytes(huge),
        "last record runs past the end": bytes(beyond),
        "only the file header": good[:24],
        "first record cut": good[:24 + 30],
        "a few bytes after the last record": good + b"\x00" * 10,
    }


def test_damaged_files_read_alike(mixed: Capture, tmp_path: Path) -> None:
    good = mixed.pcap_bytes()
    for what, data in damaged_copies(good).items():
        path = tmp_path / "damaged.pcap"
        path.write_bytes(data)
        fast, slow = analyse(path, True), analyse(path, False)
        assert fast == slow, what
        _, stats = fast
        assert stats["truncated"] == (what != "only the file header"), what


def test_pages_are_given_back_and_progress_is_told(mixed: Capture, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """With a tiny release interval every few records: the same report, and progress hears of it."""
    path = mixed.write(tmp_path / "mixed.pcap")
    slow = analyse(path, False)
    monkeypatch.setattr(mailtrace.pipeline, "RELEASE_EVERY", 4096)
    monkeypatch.setattr(mailtrace.pipeline, "SKIP_TAIL", 4096)
    seen: list[int] = []
    positions: list[int | None] = []
    analyzer = Analyzer(Config())
    capture = open_capture(str(path))

    def progress(packets: int) -> None:
        seen.append(packets)
        positions.append(capture.position())

    sessions = [session_json(s) for s in analyzer.run_file(capture, progress)]
    assert sessions == slow[0]
    assert capture_json(analyzer.stats) == {k: v for k, v in slow[1].items() if k != "datagrams"}
    assert len(seen) > 10 and seen == sorted(seen) and seen[-1] < len(mixed.frames)
    assert all(p is not None and 0 < p < path.stat().st_size for p in positions)
    assert capture.bytes_read == path.stat().st_size


def test_decoder_counts_what_the_skip_left_out(mixed: Capture, tmp_path: Path) -> None:
    path = mixed.write(tmp_path / "mixed.pcap")
    counts = []
    for fast in (True, False):
        analyzer = Analyzer(Config(), fast_path=fast)
        list(analyzer.run([open_capture(str(path))]))
        d: Decoder = analyzer.decoder
        counts.append((analyzer.stats.tcp_packets, d.stats.non_tcp, d.stats.non_ip, d.stats.truncated_headers,
                       d.stats.fragments, d.stats.fragments_reassembled))
    assert counts[0] == counts[1]
    assert counts[0][3] >= 2 and counts[0][4] > 0


def test_syn_fin_flags_constants_still_mean_what_the_skip_assumes() -> None:
    assert (SYN | FIN | 0x04) == 0x07 and ACK == 0x10


def test_frames_cut_inside_the_ipv4_header_count_as_truncated_alike(tmp_path: Path) -> None:
    """The skip's one unpack reads 64 bytes whatever the record holds: a UDP frame cut inside its IPv4
    header must not be judged on bytes of the next record (it was counted as skipped UDP)."""
    cap = Capture()
    smtp(cap, ("10.0.0.1", 40000), ("10.0.0.2", 25), T0)
    udp = struct.pack("!HHHH", 5000, 6000, 20, 0) + b"x" * 12
    ip = ip_packet("10.0.0.9", "10.0.0.8", 17, udp)
    for snap in (16, 20, 24, 30, 33, 40):
        cap.add_ip(T0 + 5, ip, snaplen=snap)
    path = cap.write(tmp_path / "cut-udp.pcap")
    fast, slow = analyse(path, True), analyse(path, False)
    assert fast[0] == slow[0]
    assert without_file_names(fast[1]) == without_file_names(slow[1])
    assert fast[1]["skipped"]["truncated_headers"] == slow[1]["skipped"]["truncated_headers"] == 5
