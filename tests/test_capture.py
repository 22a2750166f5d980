"""Capture files and link layers: every container and encapsulation a real capture uses."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import struct
from pathlib import Path

import pytest

from mailtrace.capture.decode import Decoder, TcpPacket
from mailtrace.capture.reader import CaptureError, open_capture
from tests.pcapgen import Capture, Tcp, ethernet, fragments, gre, ip_packet, ipip, smtp_capture, tcp_segment
from tests.support import corpus, report, run_cli


def sessions(path: Path) -> list[dict]:
    return report(path)["sessions"]


def assert_seed_session(s: dict) -> None:
    assert s["protocol"] == "smtp"
    assert s["helo"] == "client.example.com"
    assert [c["verb"] for c in s["commands"]] == ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]
    assert [r["status"] for r in s["replies"]] == ["220", "250", "250", "250", "354", "250", "221"]
    assert s["messages"][0]["subject"] == "Hello there"
    assert s["close"] == "fin"


# --------------------------------------------------------------------------- containers
@pytest.mark.parametrize(("nano", "big_endian"), [(False, False), (True, False), (False, True), (True, True)])
def test_pcap_variants(tmp_path: Path, nano: bool, big_endian: bool) -> None:
    path = smtp_capture().write(tmp_path / "x.pcap", nano=nano, big_endian=big_endian)
    (s,) = sessions(path)
    assert_seed_session(s)
    assert s["start"] == pytest.approx(1_700_000_000.001, abs=1e-6)


def test_pcapng(tmp_path: Path) -> None:
    (s,) = sessions(smtp_capture().write(tmp_path / "x.pcapng", fmt="pcapng"))
    assert_seed_session(s)


def test_pcapng_interfaces_with_different_link_types(tmp_path: Path) -> None:
    """Two interfaces, Ethernet and raw IP, frames interleaved: each decoded by its own link type."""
    eth, raw = smtp_capture(), Capture(linktype=101)
    conv = Tcp(raw, client=("10.9.9.1", 41000), server=("10.9.9.2", 110)).handshake()
    conv.s(b"+OK ready\r\n").c(b"USER u\r\n").s(b"+OK\r\n").c(b"QUIT\r\n").s(b"+OK bye\r\n").fin()

    def block(btype: int, body: bytes) -> bytes:
        return struct.pack("<II", btype, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))

    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    out += block(1, struct.pack("<HHI", 1, 0, 65535)) + block(1, struct.pack("<HHI", 101, 0, 65535))
    merged = sorted([(f.ts, 0, f.data) for f in eth.frames] + [(f.ts + 0.0001, 1, f.data) for f in raw.frames])
    for ts, iface, data in merged:
        t = round(ts * 1e6)
        body = struct.pack("<IIIII", iface, t >> 32, t & 0xFFFFFFFF, len(data), len(data))
        out += block(6, body + data + b"\0" * (-len(data) % 4))
    path = tmp_path / "two.pcapng"
    path.write_bytes(out)
    protos = sorted(s["protocol"] for s in sessions(path))
    assert protos == ["pop3", "smtp"]


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress])
def test_compressed(tmp_path: Path, compress: object) -> None:
    path = tmp_path / "x.pcap.z"
    path.write_bytes(compress(smtp_capture().pcap_bytes()))  # type: ignore[operator]
    (s,) = sessions(path)
    assert_seed_session(s)
    assert report(path)["capture"]["files"][0]["format"].startswith("pcap+")


def test_stdin() -> None:
    result = run_cli("analyze", "--format", "json", "-", input=smtp_capture().pcap_bytes())
    assert result.exit_code == 0
    assert [s["helo"] for s in json.loads(result.stdout)["sessions"]] == ["client.example.com"]


def test_several_files_one_report(tmp_path: Path) -> None:
    a = smtp_capture().write(tmp_path / "a.pcap")
    b = smtp_capture(client=("10.0.0.9", 40001)).write(tmp_path / "b.pcap")
    data = report(a, b)
    assert [s["file"] for s in data["sessions"]] == [str(a), str(b)]
    assert [s["id"] for s in data["sessions"]] == [1, 2]
    assert data["capture"]["packets"] == 2 * len(smtp_capture().frames)


def test_truncated_last_record(tmp_path: Path) -> None:
    raw = smtp_capture().pcap_bytes()
    path = tmp_path / "cut.pcap"
    path.write_bytes(raw[:-30])
    data = report(path)
    assert data["capture"]["truncated"] is True
    assert "cut short" in data["capture"]["files"][0]["problems"][0]
    (s,) = data["sessions"]
    assert s["messages"][0]["subject"] == "Hello there"


def test_damaged_record_length(tmp_path: Path) -> None:
    """A record claiming gigabytes (the suricata smtp-to-comma capture has one): stop there, say so."""
    cap = smtp_capture()
    raw = bytearray(cap.pcap_bytes())
    offset = 24
    for f in cap.frames[:12]:
        offset += 16 + len(f.data)
    struct.pack_into("<I", raw, offset + 8, 3_925_868_813)
    path = tmp_path / "bad.pcap"
    path.write_bytes(bytes(raw))
    result = run_cli("analyze", "--format", "json", str(path))
    assert result.exit_code == 0
    assert "damaged record" in result.stderr
    assert json.loads(result.stdout)["capture"]["truncated"] is True


def test_real_damaged_capture() -> None:
    data = report(corpus("suricata-verify/smtp-to-comma"))
    assert data["capture"]["truncated"] is True
    assert data["sessions"][0]["protocol"] == "smtp"


@pytest.mark.parametrize(("content", "message"), [
    (b"", "empty file"),
    (b"hello world, this is not a capture", "not a pcap or pcapng capture"),
    (b"\xd4\xc3\xb2\xa1\x02\x00", "file header cut short"),
])
def test_not_a_capture(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "x.pcap"
    path.write_bytes(content)
    with pytest.raises(CaptureError, match=message):
        open_capture(str(path))
    result = run_cli("analyze", str(path))
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_file_and_directory(tmp_path: Path) -> None:
    for path, message in ((tmp_path / "nope.pcap", "no such file"), (tmp_path, "is a directory")):
        result = run_cli("analyze", str(path))
        assert result.exit_code == 2
        assert message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_one_good_one_missing_file_still_reports(tmp_path: Path) -> None:
    good = smtp_capture().write(tmp_path / "a.pcap")
    result = run_cli("analyze", "--format", "json", str(good), str(tmp_path / "missing.pcap"))
    assert result.exit_code == 0
    assert "no such file" in result.stderr
    assert [s["protocol"] for s in json.loads(result.stdout)["sessions"]] == ["smtp"]


# --------------------------------------------------------------------------- link layers and IP
@pytest.mark.parametrize("linktype", [1, 113, 276, 101, 12, 14, 228, 0, 108])
def test_link_types(tmp_path: Path, linktype: int) -> None:
    (s,) = sessions(_smtp_on(Capture(linktype=linktype)).write(tmp_path / "x.pcap"))
    assert_seed_session(s)


def _smtp_on(cap: Capture, **kw: object) -> Capture:
    from tests.pcapgen import SMTP_SESSION

    conv = Tcp(cap, **kw).handshake()  # type: ignore[arg-type]
    for who, data in SMTP_SESSION:
        (conv.c if who == "c" else conv.s)(data)
    conv.fin()
    return cap


def test_ipv6_and_vlan_qinq(tmp_path: Path) -> None:
    cap = Capture(link=lambda ip, v6: ethernet(ip, ipv6=v6, vlans=(100, 200)))
    _smtp_on(cap, client=("2001:db8::1", 40000), server=("2001:db8::2", 25))
    (s,) = sessions(cap.write(tmp_path / "x.pcap"))
    assert_seed_session(s)
    assert s["client"] == {"ip": "2001:db8::1", "port": 40000}


def test_ipv6_extension_headers() -> None:
    seg = tcp_segment(40000, 25, 1, 0, 0x02, b"")
    src, dst = bytes(15) + b"\x01", bytes(15) + b"\x02"
    hop = bytes([43, 0]) + bytes(6)  # hop-by-hop → routing
    routing = bytes([60, 0, 0, 0]) + bytes(4)  # routing → destination options
    dest = bytes([6, 0]) + bytes(6)  # destination options → TCP
    body = hop + routing + dest + seg
    ip6 = struct.pack("!IHBB", 0x60000000, len(body), 0, 64) + src + dst + body
    pkt = Decoder().decode(0.0, 101, ip6)
    assert isinstance(pkt, TcpPacket)
    assert (pkt.sport, pkt.dport, pkt.flags) == (40000, 25, 0x02)


def test_ipv4_options() -> None:
    seg = tcp_segment(40000, 25, 1, 0, 0x02, b"")
    ip = bytearray(ip_packet("10.0.0.1", "10.0.0.2", 6, seg))
    opts = b"\x01\x01\x01\x00"  # NOP NOP NOP EOL
    ip = bytearray(ip[:20]) + opts + ip[20:]
    ip[0] = 0x46
    struct.pack_into("!H", ip, 2, len(ip))
    pkt = Decoder().decode(0.0, 101, bytes(ip))
    assert isinstance(pkt, TcpPacket)
    assert pkt.dport == 25


@pytest.mark.parametrize("tunnel", ["gre", "ipip", "6in4"])
def test_tunnels(tmp_path: Path, tunnel: str) -> None:
    cap = Capture()
    inner_v6 = tunnel == "6in4"
    kw: dict[str, object] = {"wrap_ip": (lambda ip, s, d: gre(ip)) if tunnel == "gre" else (lambda ip, s, d: ipip(ip))}
    if inner_v6:
        kw.update(client=("2001:db8::1", 40000), server=("2001:db8::2", 25))
    _smtp_on(cap, **kw)
    (s,) = sessions(cap.write(tmp_path / "x.pcap"))
    assert_seed_session(s)
    assert s["tunnel"] == tunnel


def test_ip_fragments_reassembled(tmp_path: Path) -> None:
    cap = Capture()
    conv = Tcp(cap).handshake()
    conv.s(b"220 ready\r\n").c(b"EHLO a\r\n").s(b"250 ok\r\n")
    conv.c(b"MAIL FROM:<" + b"x" * 600 + b"@example.com>\r\n")
    big = cap.frames.pop()
    ip = big.data[14:]
    for i, part in enumerate(fragments(ip, 200)):
        cap.add_ip(big.ts + i * 1e-5, part)
    conv.s(b"250 ok\r\n").c(b"QUIT\r\n").s(b"221 bye\r\n").fin()
    (s,) = sessions(cap.write(tmp_path / "x.pcap"))
    assert s["transactions"][0]["mail_from"] == "x" * 600 + "@example.com"


def test_snaplen_cut_frames_become_gaps(tmp_path: Path) -> None:
    cap = Capture()
    conv = Tcp(cap).handshake()
    conv.s(b"220 ready\r\n").c(b"EHLO a\r\n").s(b"250 ok\r\n").c(b"MAIL FROM:<a@b>\r\n").s(b"250 ok\r\n")
    conv.c(b"RCPT TO:<c@d>\r\n").s(b"250 ok\r\n").c(b"DATA\r\n").s(b"354 go\r\n")
    conv.c(b"Subject: cut\r\n\r\n" + b"y" * 900 + b"\r\n.\r\n", snaplen=14 + 20 + 20 + 100)
    conv.s(b"250 queued\r\n").c(b"QUIT\r\n").s(b"221 bye\r\n").fin()
    (s,) = sessions(cap.write(tmp_path / "x.pcap"))
    gap = s["gaps"][0]
    assert gap["direction"] == "client"
    assert gap["bytes"] == len(b"Subject: cut\r\n\r\n" + b"y" * 900 + b"\r\n.\r\n") - 100
    msg = s["messages"][0]
    assert msg["complete"] is False
    assert msg["subject"] == "cut"
    assert [c["verb"] for c in s["commands"]][-1] == "QUIT"


def test_unknown_link_type_and_non_ip_counted(tmp_path: Path) -> None:
    cap = smtp_capture()
    cap.frames.insert(0, type(cap.frames[0])(1_700_000_000.0, b"\xff" * 14 + b"\x08\x06" + bytes(28)))  # ARP
    path = cap.write(tmp_path / "x.pcap")
    data = report(path)
    assert data["capture"]["skipped"]["non_ip"] == 1
    odd = Capture(linktype=147)
    odd.frames = list(cap.frames)
    data = report(odd.write(tmp_path / "y.pcap"))
    assert data["capture"]["skipped"]["unknown_linktype"] == len(cap.frames)
    assert data["sessions"] == []


def test_fast_decoder_matches_general_decoder() -> None:
    """ethernet_ipv4_tcp is a shortcut of the general decoder: same packets on real traffic."""
    from mailtrace.capture.decode import ethernet_ipv4_tcp
    from tests.support import sample

    decoder = Decoder()
    checked = 0
    for ts, _linktype, data, _ in open_capture(str(sample("mixed-all.pcap"))).frames():
        fast = ethernet_ipv4_tcp(data)
        if fast is not None:
            assert fast == decoder._ethernet(ts, data, 0, None)
            checked += 1
    assert checked > 250  # the TCP frames of mixed-all (ARP, DNS and the SYN-less are the rest)


def _whole_records(pcap: bytes) -> int:
    """Complete records in the start of a pcap file (the oracle for a cut-off compressed copy)."""
    pos, count = 24, 0
    while pos + 16 <= len(pcap):
        incl = struct.unpack_from("<I", pcap, pos + 8)[0]
        if pos + 16 + incl > len(pcap):
            break
        pos += 16 + incl
        count += 1
    return count


@pytest.mark.parametrize("kind", ["gzip", "xz"])
def test_cut_compressed_file_is_analysed_up_to_the_cut(tmp_path: Path, kind: str) -> None:
    """A .gz/.xz cut short (an interrupted download) is read as far as it decompresses, as tshark reads
    it, and the report says where it broke off; it used to give nothing but "cannot decompress"."""
    import zlib

    plain = Path(__file__).resolve().parents[1].joinpath("samples", "mixed-all.pcap").read_bytes()
    packed = gzip.compress(plain) if kind == "gzip" else lzma.compress(plain)
    cut = packed[: len(packed) * 6 // 10]
    path = tmp_path / f"cut.pcap.{kind}"
    path.write_bytes(cut)
    decompressor = zlib.decompressobj(wbits=31) if kind == "gzip" else lzma.LZMADecompressor()
    prefix = decompressor.decompress(cut)
    result = run_cli("analyze", "--format", "json", str(path))
    assert result.exit_code == 0, result.stderr
    import json

    data = json.loads(result.stdout)
    assert data["capture"]["packets"] == _whole_records(prefix) > 100
    assert data["capture"]["truncated"] is True
    problems = data["capture"]["files"][0]["problems"]
    assert any(p.startswith("the compressed data breaks off (") and p.endswith("analysed up to there")
               for p in problems), problems
    assert data["sessions"] and "breaks off" in result.stderr


def test_compressed_file_broken_at_once_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.pcap.gz"
    path.write_bytes(gzip.compress(smtp_capture().pcap_bytes())[:12])  # the gzip header, no data
    result = run_cli("analyze", "--format", "json", str(path))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"mailtrace: {path}: cannot decompress: ")
    assert len(result.stderr.strip().splitlines()) == 1


def _snapped(pcap: bytes, snaplen: int) -> bytes:
    """The same classic pcap with every frame cut to ``snaplen`` bytes (what ``tcpdump -s`` writes)."""
    out = bytearray(pcap[:24])
    pos = 24
    while pos + 16 <= len(pcap):
        sec, frac, incl, orig = struct.unpack_from("<IIII", pcap, pos)
        keep = min(incl, snaplen)
        out += struct.pack("<IIII", sec, frac, keep, orig) + pcap[pos + 16 : pos + 16 + keep]
        pos += 16 + incl
    return bytes(out)


@pytest.mark.parametrize("fast_path", [True, False])
def test_frames_cut_by_the_snap_length_are_counted_and_no_cut_dns_answer_is_read_as_none(
        tmp_path: Path, fast_path: bool) -> None:
    """Cut at 80 bytes, the seed story's DNS answers lose their records: the context caption must not
    say "no address" (the real answer for client.local.example is 127.0.0.10), and the report says how
    many frames the snap length cut (the bytes lost are the sessions' gaps)."""
    plain = Path(__file__).resolve().parents[1].joinpath("samples", "smtp-relay-seed-story.pcap").read_bytes()
    if plain[:4] != b"\xd4\xc3\xb2\xa1":
        pytest.skip("the sample is not a little-endian classic pcap")
    path = tmp_path / "snap80.pcap"
    path.write_bytes(_snapped(plain, 80))
    source = tmp_path / ("snap80.pcap" if fast_path else "snap80.pcap.gz")  # .gz takes the frame-by-frame walk
    if not fast_path:
        source.write_bytes(gzip.compress(path.read_bytes()))
    expected = sum(1 for _ in _frames_longer_than(plain, 80))
    data = report(source)
    assert data["capture"]["snapped"] == expected == data["capture"]["files"][0]["snapped"] > 0
    assert data["capture"]["truncated"] is False  # the file itself is whole
    dns = [c for s in data["sessions"] for c in s["context"] if c["kind"] == "dns" and c["rcode"] == "NOERROR"]
    cut = [c for c in dns if c["cut"]]
    assert cut and all("no address" not in c["caption"] for c in cut)
    assert all("the answer is cut off in the capture (snap length)" in c["caption"] for c in cut)
    text = run_cli("analyze", "--no-color", str(source)).stdout
    assert f"{expected} frames cut by the snap length" in text


def _frames_longer_than(pcap: bytes, snaplen: int) -> list[int]:
    pos, out = 24, []
    while pos + 16 <= len(pcap):
        incl = struct.unpack_from("<I", pcap, pos + 8)[0]
        if incl > snaplen:
            out.append(incl)
        pos += 16 + incl
    return out


def test_unknown_link_type_is_named_in_the_summary(tmp_path: Path) -> None:
    path = smtp_capture().write(tmp_path / "x.pcap")
    raw = bytearray(path.read_bytes())
    struct.pack_into("<I", raw, 20, 147)  # LINKTYPE_USER0: nothing mailtrace can decode
    path.write_bytes(bytes(raw))
    frames = len(smtp_capture().frames)
    data = report(path)
    assert data["capture"]["skipped"]["unknown_linktype"] == frames and data["sessions"] == []
    text = run_cli("analyze", "--no-color", str(path)).stdout
    assert f"skipped       {frames} frames of link type 147 (USER0), which mailtrace cannot decode" in text
    german = run_cli("analyze", "--no-color", "--lang", "de", str(path)).stdout
    assert f"{frames} Frames vom Link-Typ 147 (USER0), den mailtrace nicht dekodieren kann" in german
