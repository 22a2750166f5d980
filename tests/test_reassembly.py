"""TCP reassembly: what a capture can do to a stream, and what the dissectors must be told."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from mailtrace.model import CLIENT, Chunk, Eof, StreamGap, StreamItem
from mailtrace.tcp.reassembly import MOD, Reassembler
from tests.pcapgen import Capture, Tcp
from tests.support import SAMPLES, corpus, need_shared, report


def stream(items: list[StreamItem]) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for item in items:
        if isinstance(item, Chunk):
            if out and out[-1][0] == "data":
                out[-1] = ("data", out[-1][1] + item.data)  # type: ignore[operator]
            else:
                out.append(("data", item.data))
        elif isinstance(item, StreamGap):
            out.append(("gap", item.nbytes))
        elif isinstance(item, Eof):
            out.append(("eof", item.reset))
    return out


def feed(r: Reassembler, segs: list[tuple[int, bytes]], *, syn_at: int | None = None) -> list[StreamItem]:
    items: list[StreamItem] = []
    if syn_at is not None:
        items += r.segment(syn_at, b"", 0, True, False, 1, 0.0)
    for i, (seq, data) in enumerate(segs, start=2):
        items += r.segment(seq % MOD, data, len(data), False, False, i, float(i))
    return items


def test_in_order() -> None:
    r = Reassembler(CLIENT)
    assert stream(feed(r, [(101, b"abc"), (104, b"def")], syn_at=100)) == [("data", b"abcdef")]


def test_retransmission_dropped_first_copy_wins() -> None:
    r = Reassembler(CLIENT)
    items = feed(r, [(101, b"abc"), (101, b"abc"), (104, b"def"), (102, b"bcdX")], syn_at=100)
    assert stream(items) == [("data", b"abcdef")]
    assert r.retransmitted_bytes == 7  # "abc" again, then "bcdX" over "bcde"
    # both copies are retransmissions of frame 2's bytes; the second also differs from them
    assert [(n.kind, n.frame) for n in r.notes] == [("retransmission", 3), ("overlap-mismatch", 5),
                                                   ("retransmission", 5)]
    assert [n.detail for n in r.notes if n.kind == "retransmission"] == ["2", "2"]


def test_tiny_segments_are_remembered_by_count_as_well_as_by_bytes() -> None:
    """64 KiB of one-byte segments held 8 MiB a direction (a segment costs ~130 bytes besides its data):
    at most RECENT_PIECES are kept; a retransmission of the latest is still named and compared."""
    r = Reassembler(CLIENT)
    segs = [(101 + 2 * i, b"ab") for i in range(5000)]
    last = 101 + 2 * 4999
    items = feed(r, [*segs, (last, b"ab"), (last, b"aX")], syn_at=100)
    assert len(items) == 5000
    assert len(r._recent) == Reassembler.RECENT_PIECES and r._recent_bytes == 2 * Reassembler.RECENT_PIECES
    # the last "ab" came in frame 5001: frame 5002 repeats it, frame 5003 puts another byte in its place
    assert [(n.kind, n.frame, n.detail) for n in r.notes] == [
        ("retransmission", 5002, "5001"),
        ("overlap-mismatch", 5003, "a retransmitted segment carries different bytes at stream offset 9998; "
                                   "the first copy was kept"),
        ("retransmission", 5003, "5001")]


def test_partial_overlap_trimmed() -> None:
    r = Reassembler(CLIENT)
    assert stream(feed(r, [(101, b"abcd"), (103, b"cdefg")], syn_at=100)) == [("data", b"abcdefg")]
    assert not r.notes


def test_reordering_buffered_then_released() -> None:
    r = Reassembler(CLIENT)
    items = feed(r, [(104, b"def"), (107, b"ghi"), (101, b"abc")], syn_at=100)
    assert stream(items) == [("data", b"abcdefghi")]


def test_wrap_around_2_32() -> None:
    isn = MOD - 3
    r = Reassembler(CLIENT)
    items = feed(r, [(isn + 1, b"ab"), (isn + 3, b"cdef"), (isn + 7, b"gh")], syn_at=isn)
    assert stream(items) == [("data", b"abcdefgh")]


def test_wrap_around_with_reordering() -> None:
    isn = MOD - 2
    r = Reassembler(CLIENT)
    items = feed(r, [(isn + 5, b"def"), (isn + 1, b"ab"), (isn + 3, b"c"), (isn + 4, b"X")], syn_at=isn)
    assert stream(items) == [("data", b"abcXdef")]


def test_missing_syn_starts_at_first_segment() -> None:
    r = Reassembler(CLIENT)
    assert stream(feed(r, [(5000, b"hello"), (5005, b" world")])) == [("data", b"hello world")]


def test_gap_declared_when_peer_acks_unseen_bytes() -> None:
    r = Reassembler(CLIENT)
    items = feed(r, [(101, b"abc"), (110, b"jkl")], syn_at=100)
    assert stream(items) == [("data", b"abc")]
    r.acked(110)
    assert stream(r.flush_acked(9, 9.0)) == [("gap", 6), ("data", b"jkl")]


def test_ack_before_data_is_not_a_loss() -> None:
    """Captures merged from two taps can show the ACK first: the data that follows fills the hole."""
    r = Reassembler(CLIENT)
    items = feed(r, [(101, b"abc")], syn_at=100)
    r.acked(110)
    items += feed(r, [(104, b"def"), (107, b"ghi")])
    assert stream(items) == [("data", b"abcdefghi")]
    assert r.flush_acked(9, 9.0) == []


def test_gap_when_reorder_buffer_is_full() -> None:
    r = Reassembler(CLIENT, max_pending_bytes=10)
    items = feed(r, [(101, b"a"), (200, b"0123456789"), (210, b"more")], syn_at=100)
    assert stream(items) == [("data", b"a"), ("gap", 98), ("data", b"0123456789more")]
    assert r.notes[0].kind == "reorder-buffer-full"


def test_finish_flushes_held_segments_with_gaps() -> None:
    r = Reassembler(CLIENT)
    items = feed(r, [(101, b"abc"), (110, b"jkl")], syn_at=100)
    items += r.finish(None, 10.0)
    assert stream(items) == [("data", b"abc"), ("gap", 6), ("data", b"jkl"), ("eof", False)]


def test_fin_after_hole_waits_for_the_hole() -> None:
    r = Reassembler(CLIENT)
    items = feed(r, [(101, b"abc")], syn_at=100)
    items += r.segment(107, b"ghi", 3, False, True, 5, 5.0)  # FIN with data, bytes 104..106 missing
    assert stream(items) == [("data", b"abc")]
    items += r.segment(104, b"def", 3, False, False, 6, 6.0)
    assert stream(items) == [("data", b"abcdefghi"), ("eof", False)]


def test_snap_length_cut_segment() -> None:
    r = Reassembler(CLIENT)
    items = feed(r, [], syn_at=100)
    items += r.segment(101, b"abc", 10, False, False, 2, 2.0)
    items += r.segment(111, b"z", 1, False, False, 3, 3.0)
    assert stream(items) == [("data", b"abc"), ("gap", 7), ("data", b"z")]


def test_absurd_jump_ignored() -> None:
    r = Reassembler(CLIENT)
    items = feed(r, [(101, b"abc"), (101 + (1 << 30), b"zzz"), (104, b"d")], syn_at=100)
    assert stream(items) == [("data", b"abcd")]
    assert r.notes[0].kind == "sequence-jump"


# --------------------------------------------------------------------------- through the whole pipeline
def _smtp(tmp_path: Path, build: object) -> dict:
    cap = Capture()
    build(cap)  # type: ignore[operator]
    (s,) = report(cap.write(tmp_path / "x.pcap"))["sessions"]
    return s


def test_pipeline_reordered_and_retransmitted_segments(tmp_path: Path) -> None:
    def build(cap: Capture) -> None:
        t = Tcp(cap).handshake()
        t.s(b"220 hi\r\n").c(b"EHLO a\r\n").s(b"250 ok\r\n").c(b"MAIL FROM:<a@x>\r\n").s(b"250 ok\r\n")
        t.c(b"RCPT TO:<b@y>\r\n").s(b"250 ok\r\n").c(b"DATA\r\n").s(b"354 go\r\n")
        t.c(b"Subject: reordered\r\n\r\nline one\r\n", hold=True)
        t.c(b"line two\r\n.\r\n")
        t.release()
        t.c(b"line two\r\n.\r\n", seq=t.seq["c"] - 13)  # a retransmission
        t.s(b"250 queued\r\n").c(b"QUIT\r\n").s(b"221 bye\r\n").fin()

    s = _smtp(tmp_path, build)
    assert s["messages"][0]["subject"] == "reordered"
    assert s["messages"][0]["bytes"] == len(b"Subject: reordered\r\n\r\nline one\r\nline two\r\n")
    assert s["messages"][0]["complete"] is True
    assert s["gaps"] == []


def test_pipeline_rst_in_the_middle_of_data(tmp_path: Path) -> None:
    def build(cap: Capture) -> None:
        t = Tcp(cap).handshake()
        t.s(b"220 hi\r\n").c(b"EHLO a\r\n").s(b"250 ok\r\n").c(b"MAIL FROM:<a@x>\r\n").s(b"250 ok\r\n")
        t.c(b"RCPT TO:<b@y>\r\n").s(b"250 ok\r\n").c(b"DATA\r\n").s(b"354 go\r\n")
        t.c(b"Subject: never finished\r\n\r\nhalf a message")
        t.rst("c")

    s = _smtp(tmp_path, build)
    assert s["close"] == "rst"
    msg = s["messages"][0]
    assert (msg["subject"], msg["complete"]) == ("never finished", False)
    assert "incomplete-message" in [a["kind"] for a in s["anomalies"]]


def test_pipeline_lost_segment_in_data_ends_message_incomplete(tmp_path: Path) -> None:
    def build(cap: Capture) -> None:
        t = Tcp(cap).handshake()
        t.s(b"220 hi\r\n").c(b"EHLO a\r\n").s(b"250 ok\r\n").c(b"MAIL FROM:<a@x>\r\n").s(b"250 ok\r\n")
        t.c(b"RCPT TO:<b@y>\r\n").s(b"250 ok\r\n").c(b"DATA\r\n").s(b"354 go\r\n")
        t.c(b"Subject: lossy\r\n\r\nfirst\r\n").c(b"LOST" * 10 + b"\r\n", drop=True).c(b"last\r\n.\r\n")
        t.s(b"250 queued\r\n").c(b"QUIT\r\n").s(b"221 bye\r\n").fin()

    s = _smtp(tmp_path, build)
    assert s["gaps"] == [{"direction": "client", "bytes": 42, "frame": s["gaps"][0]["frame"]}]
    msg = s["messages"][0]
    assert (msg["subject"], msg["complete"], msg["missing_bytes"]) == ("lossy", False, 42)
    assert s["transactions"][0]["data_reply"] == 250
    assert [c["verb"] for c in s["commands"]][-1] == "QUIT"


def test_pipeline_capture_starts_mid_session(tmp_path: Path) -> None:
    def build(cap: Capture) -> None:
        t = Tcp(cap).handshake()
        t.s(b"220 hi\r\n").c(b"EHLO a\r\n").s(b"250 ok\r\n")
        del cap.frames[:]  # the capture starts here: no SYN, no greeting
        t.c(b"MAIL FROM:<a@x>\r\n").s(b"250 ok\r\n").c(b"QUIT\r\n").s(b"221 bye\r\n").fin()

    s = _smtp(tmp_path, build)
    assert s["client"]["port"] == 40000 and s["server"]["port"] == 25
    assert [r["answers"] for r in s["replies"]] == ["MAIL", "QUIT"]
    assert s["phases"][0]["name"] != "setup"


def test_pipeline_one_sided_client_only(tmp_path: Path) -> None:
    def build(cap: Capture) -> None:
        t = Tcp(cap).handshake()
        t.s(b"220 hi\r\n", drop=True).c(b"EHLO a\r\n").s(b"250 ok\r\n", drop=True)
        t.c(b"MAIL FROM:<a@x>\r\n").c(b"RCPT TO:<b@y>\r\n").c(b"DATA\r\n")
        t.c(b"Subject: one side\r\n\r\nbody\r\n.\r\n").c(b"QUIT\r\n")
        cap.frames[:] = [f for f in cap.frames if f.data[26:30] == bytes([10, 0, 0, 1])]

    s = _smtp(tmp_path, build)
    assert s["messages"][0]["subject"] == "one side"
    assert s["transactions"][0]["rcpt_to"] == ["b@y"]


def test_pipeline_port_reuse_starts_a_new_stream(tmp_path: Path) -> None:
    cap = Capture()
    for isn in (1000, 900000):
        t = Tcp(cap, isn_client=isn, ts=1_700_000_000.0 + isn / 1e6).handshake()
        t.s(b"220 hi\r\n").c(b"QUIT\r\n").s(b"221 bye\r\n").fin()
    data = report(cap.write(tmp_path / "x.pcap"))
    assert [s["stream"] for s in data["sessions"]] == [0, 1]
    assert [s["close"] for s in data["sessions"]] == ["fin", "fin"]


# --------------------------------------------------------------------------- Wireshark's tcp.stream
def tshark_streams(path: Path) -> dict[tuple[str, int, str, int], int]:
    out = subprocess.run(["tshark", "-r", str(path), "-Y", "tcp.flags.syn==1 && tcp.flags.ack==0", "-T", "fields",
                          "-e", "ip.src", "-e", "ipv6.src", "-e", "tcp.srcport", "-e", "ip.dst", "-e", "ipv6.dst",
                          "-e", "tcp.dstport", "-e", "tcp.stream"], capture_output=True, text=True, check=True)
    streams = {}
    for line in out.stdout.splitlines():
        src, src6, sport, dst, dst6, dport, stream = line.split("\t")
        streams[(src or src6, int(sport), dst or dst6, int(dport))] = int(stream)
    return streams


@pytest.mark.parametrize("name", ["mixed-all.pcap", "smtp-errors.pcap", "smtp-relay-seed-story.pcap"])
def test_stream_numbers_match_tshark(name: str) -> None:
    need_shared()
    if shutil.which("tshark") is None:
        pytest.skip("tshark not installed")
    path = SAMPLES / name
    expected = tshark_streams(path)
    sessions = report(path)["sessions"]
    assert sessions
    for s in sessions:
        key = (s["client"]["ip"], s["client"]["port"], s["server"]["ip"], s["server"]["port"])
        assert s["stream"] == expected[key], key


def test_stream_numbers_recorded_from_tshark() -> None:
    """The same check without tshark: the lab's follow files name each stream's endpoints."""
    need_shared()
    for follow in sorted(SAMPLES.glob("mixed-all.stream*.txt")):
        text = follow.read_text()
        number = int(follow.name.split(".stream")[1].split(".")[0])
        node0 = next(line for line in text.splitlines() if line.startswith("Node 0:")).split(": ")[1]
        for s in report(SAMPLES / "mixed-all.pcap")["sessions"]:
            if f"{s['client']['ip']}:{s['client']['port']}" == node0:
                assert s["stream"] == number


def test_one_sided_corpus_capture() -> None:
    s = report(corpus("zeek/smtp-one-side-only"))["sessions"][0]
    assert s["protocol"] == "smtp"
    assert len(s["transactions"]) >= 2


def test_report_is_valid_json_for_all_samples() -> None:
    need_shared()
    for path in sorted(SAMPLES.glob("*.pcap")):
        data = report(path)
        json.dumps(data)
        assert data["sessions"], path.name


def test_a_retransmission_is_marked_on_its_row_not_reported_as_new_bytes(tmp_path: Path) -> None:
    """An exact copy of the EHLO segment used to read 'C: 8 bytes', like new data; it is marked as
    Wireshark marks it ([TCP Retransmission]) and is no anomaly. A copy of a segment still held out of
    order is one too."""
    from tests.support import run_cli

    cap = Capture()
    t = Tcp(cap).handshake().s(b"220 mx ESMTP\r\n")
    ehlo_seq = t.seq["c"]
    t.c(b"EHLO a\r\n")  # frame 5
    t.c(b"EHLO a\r\n", seq=ehlo_seq)  # frame 6: the same bytes again
    t.s(b"250 mx\r\n").c(b"QUIT\r\n").s(b"221 bye\r\n").fin()
    path = cap.write(tmp_path / "retrans.pcap")
    (session,) = report(path)["sessions"]
    assert session["retransmissions"] == [{"frame": 6, "original": 5}]
    assert session["anomalies"] == []
    assert [c["verb"] for c in session["commands"]] == ["EHLO", "QUIT"]
    text = run_cli("analyze", "--no-color", "--no-context", str(path)).stdout
    row = next(line for line in text.splitlines() if line.lstrip().startswith("6 "))
    assert row.endswith("TCP    C: 8 bytes [retransmission of frame 5]"), row
    german = run_cli("analyze", "--no-color", "--no-context", "--lang", "de", str(path)).stdout
    assert "[Sendewiederholung von Frame 5]" in german
    html = tmp_path / "r.html"
    assert run_cli("report", str(path), "-o", str(html)).exit_code == 0
    assert '<div class="tcp">[PSH, ACK] Len=8 [retransmission of frame 5]</div>' in html.read_text()


def test_a_held_segment_covered_by_a_later_copy_is_not_the_retransmission() -> None:
    """'def' arrives first (ahead of a hole), then the sender resends everything repacketised: the
    early segment is the first copy of its bytes, so nothing is marked a retransmission."""
    r = Reassembler(CLIENT)
    items = feed(r, [(104, b"def"), (101, b"abcdef")], syn_at=100)
    assert stream(items) == [("data", b"abcdef")]
    assert [n.kind for n in r.notes] == []


def test_a_keep_alive_is_not_marked_a_retransmission() -> None:
    """A keep-alive repeats the last byte (sequence number one below the next): Wireshark calls it
    [TCP Keep-Alive], not a retransmission."""
    r = Reassembler(CLIENT)
    feed(r, [(101, b"abc"), (103, b"c")], syn_at=100)
    assert [n.kind for n in r.notes] == []
    r = Reassembler(CLIENT)
    feed(r, [(101, b"abc"), (102, b"bc")], syn_at=100)  # two bytes again: a real retransmission
    assert [(n.kind, n.detail) for n in r.notes] == [("retransmission", "2")]
