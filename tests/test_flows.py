"""One message across hops: ``mailtrace flows`` and the analyze report's ``flows``.

Real captures first: the seed story's submission and relay are one flow of two hops whose delay is
the time between the two end-of-data frames tshark shows; in mixed-all the s-nail submission to
sendmail and its relay to Postfix are joined, and every other message is a flow of one hop.
Synthetic captures cover joining by body, a Received chain that does not match, and the limit.
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import pytest
from pcapgen import Capture, Tcp
from support import facts, report, run_cli, sample

from mailtrace.capture.reader import open_capture
from mailtrace.commands.common import build_config
from mailtrace.messageflows import FlowCollector, FlowLimits, flow_json
from mailtrace.pipeline import Analyzer
from mailtrace.render.json import dumps
from mailtrace.session import Session

GOLDEN = Path(__file__).parent / "golden"


def _flows(path: Path) -> list[dict[str, object]]:
    result = run_cli("flows", "--format", "json", str(path))
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["format"] == "mailtrace-flows" and data["version"] == 1
    flows: list[dict[str, object]] = data["flows"]
    return flows


def _end_of_data(tshark: Path) -> dict[int, float]:
    """Frame → time of each SMTP/IMF row (the packet that ends a message) in tshark's summary."""
    out = {}
    for line in tshark.read_text().splitlines():
        match = re.match(r"^\s*(\d+)\s+([\d.]+)\s.*\sSMTP/IMF\s", line)
        if match:
            out[int(match.group(1))] = float(match.group(2))
    return out


def test_seed_story_is_one_flow_of_two_hops(captures: Path) -> None:
    [flow] = _flows(captures / "smtp-relay-seed-story.pcap")
    sent = facts("smtp-relay-seed-story.facts.json")["sessions"]
    assert flow["message_id"] == sent[0]["messages"][0]["message_id"] == sent[1]["messages"][0]["message_id"]
    hops = flow["hops"]
    assert isinstance(hops, list) and [(h["session"], h["protocol"], h["origin"]) for h in hops] == [
        (1, "smtp", "smtp-data"), (2, "smtp", "smtp-data")]
    assert [(h["client"]["ip"], h["server"]["ip"], h["server"]["port"]) for h in hops] == [
        ("127.0.0.10", "127.0.0.25", 25), ("127.0.0.25", "127.0.0.26", 25)]
    ends = _end_of_data(captures / "smtp-relay-seed-story.tshark.txt")
    assert [h["last_frame"] for h in hops] == sorted(ends)  # frames 41 and 78
    assert hops[0]["delay"] is None
    assert hops[1]["delay"] == pytest.approx(ends[78] - ends[41], abs=2e-6)
    assert hops[0]["queue_id"] == sent[0]["data"]["reply"].split()[1]  # 6AQDM…: sendmail's queue id
    [added] = hops[1]["received_added"]
    assert (added["from"], added["ip"], added["by"], added["id"]) == (
        "client.local.example", "127.0.0.10", "mail.local.example", hops[0]["queue_id"])
    assert hops[1]["received_matches"] is True and hops[1]["continuous"] is True
    assert hops[1]["queue_id_in_received"] is True and hops[0]["queue_id_in_received"] is None
    assert flow["received_chain_matches"] is True and flow["received_before"] == 0


def test_mixed_all_joins_the_relay_and_keeps_single_hops(captures: Path) -> None:
    flows = _flows(captures / "mixed-all.pcap")
    by_id = {f["message_id"]: f for f in flows}
    known = facts("mixed-all.facts.json")
    snail, relay = known["sessions"][1], known["sessions"][2]
    slides = snail["messages"][0]["message_id"]
    assert relay["messages"][0]["message_id"] == slides
    hops = by_id[slides]["hops"]
    assert isinstance(hops, list)
    assert [(h["client"]["ip"], h["server"]["ip"], h["server"]["port"]) for h in hops] == [
        ("127.0.0.10", "127.0.0.25", 25), ("127.0.0.25", "127.0.0.26", 25)]
    assert by_id[slides]["received_chain_matches"] is True
    # every other complete message is a flow of one hop: bob's RETR 1 and the submission on 587
    submitted = known["sessions"][7]["messages"][0]["message_id"]
    retrieved = known["sessions"][6]["retrieved"][0]["message_id"]
    assert sorted(by_id) == sorted([slides, submitted, retrieved])
    assert len(by_id[submitted]["hops"]) == 1 and len(by_id[retrieved]["hops"]) == 1  # type: ignore[arg-type]
    [pop] = by_id[retrieved]["hops"]  # type: ignore[misc]
    assert pop["origin"] == "pop3-retr" and by_id[retrieved]["received_before"] >= 1
    analyze = report(captures / "mixed-all.pcap")
    assert analyze["flows"] == flows  # the analyze report carries the same flows


def _smtp(cap: Capture, client: tuple[str, int], server: tuple[str, int], message: bytes, ts: float,
          helo: bytes = b"a.example") -> float:
    conv = Tcp(cap, client=client, server=server, ts=ts)
    conv.handshake().s(b"220 mx ESMTP\r\n").c(b"EHLO " + helo + b"\r\n").s(b"250 mx\r\n")
    conv.c(b"MAIL FROM:<alice@a.example>\r\n").s(b"250 Ok\r\n").c(b"RCPT TO:<bob@b.example>\r\n").s(b"250 Ok\r\n")
    conv.c(b"DATA\r\n").s(b"354 go\r\n").c(message + b".\r\n").s(b"250 2.0.0 Ok: queued as Q1\r\n")
    conv.c(b"QUIT\r\n").s(b"221 Bye\r\n").fin()
    return conv.ts + 1.0


BODY = b"Subject: Hi\r\nFrom: alice@a.example\r\n\r\nHello Bob.\r\n"


def test_joined_by_body_when_the_message_id_comes_later(tmp_path: Path) -> None:
    """The submission has no Message-ID; the MTA adds one and a Received line: still one flow."""
    cap = Capture()
    t = _smtp(cap, ("10.0.0.1", 40000), ("10.0.0.25", 587), BODY, 1_700_000_000.0)
    relayed = (b"Received: from a.example ([10.0.0.1]) by mta.a.example with ESMTPSA id Q1; "
               b"Tue, 14 Nov 2023 22:13:20 +0000\r\nMessage-ID: <added@mta.a.example>\r\n" + BODY)
    t = _smtp(cap, ("10.0.0.25", 41000), ("10.0.0.26", 25), relayed, t)
    _smtp(cap, ("10.0.0.1", 40001), ("10.0.0.25", 587), BODY.replace(b"Hello", b"Bye"), t)
    flows = _flows(cap.write(tmp_path / "body.pcap"))
    assert [len(f["hops"]) for f in flows] == [2, 1]  # type: ignore[arg-type]
    assert flows[0]["message_id"] == "<added@mta.a.example>" and flows[0]["key"] == "message-id:<added@mta.a.example>"
    assert str(flows[1]["key"]).startswith("body:") and flows[1]["message_id"] is None
    assert flows[0]["received_chain_matches"] is True


def test_a_received_chain_that_does_not_match(tmp_path: Path) -> None:
    cap = Capture()
    message = b"Message-ID: <m@a.example>\r\n" + BODY
    t = _smtp(cap, ("10.0.0.1", 40000), ("10.0.0.25", 25), message, 1_700_000_000.0)
    forged = b"Received: from elsewhere ([192.0.2.66]) by mta.a.example; Tue, 14 Nov 2023 22:13:20 +0000\r\n"
    _smtp(cap, ("10.0.0.25", 41000), ("10.0.0.26", 25), forged + message, t)
    [flow] = _flows(cap.write(tmp_path / "forged.pcap"))
    hops = flow["hops"]
    assert isinstance(hops, list) and hops[1]["received_matches"] is False
    assert flow["received_chain_matches"] is False
    text = run_cli("flows", str(tmp_path / "forged.pcap")).stdout
    assert "the Received chain does not match the hops in the capture" in text
    assert "Received: from elsewhere [192.0.2.66] by mta.a.example ✗" in text


def test_the_number_of_flows_is_bounded(tmp_path: Path) -> None:
    cap = Capture()
    t = 1_700_000_000.0
    for i in range(5):
        t = _smtp(cap, ("10.0.0.1", 40000 + i), ("10.0.0.25", 25), f"Message-ID: <{i}@a>\r\n".encode() + BODY, t)
    path = cap.write(tmp_path / "many.pcap")
    collector = FlowCollector(FlowLimits(max_flows=3))
    for session in Analyzer(build_config()).run([open_capture(str(path))]):
        collector.session(session)
    assert len(collector.flows()) == 3 and collector.dropped == 2


@pytest.mark.parametrize(("golden", "capture", "lang"), [
    ("smtp-relay-seed-story.flows.txt", "smtp-relay-seed-story.pcap", "en"),
    ("mixed-all.flows.de.txt", "mixed-all.pcap", "de"),
])
def test_golden(captures: Path, update_golden: bool, monkeypatch: pytest.MonkeyPatch, golden: str, capture: str,
                lang: str) -> None:
    monkeypatch.chdir(captures)
    result = run_cli("flows", "--width", "120", "--no-color", "--lang", lang, capture)
    assert result.exit_code == 0
    path = GOLDEN / golden
    if update_golden:
        path.write_text(result.stdout, encoding="utf-8")
        return
    assert result.stdout == path.read_text(encoding="utf-8")


def _pop3_retr(cap: Capture, client: tuple[str, int], server: tuple[str, int], message: bytes, ts: float) -> float:
    conv = Tcp(cap, client=client, server=server, ts=ts)
    conv.handshake().s(b"+OK POP3 ready\r\n").c(b"USER bob\r\n").s(b"+OK\r\n").c(b"PASS pw\r\n").s(b"+OK 1 message\r\n")
    conv.c(b"RETR 1\r\n").s(b"+OK message follows\r\n" + message + b".\r\n")
    conv.c(b"QUIT\r\n").s(b"+OK bye\r\n").fin()
    return conv.ts + 1.0


def _imap_append(cap: Capture, client: tuple[str, int], server: tuple[str, int], message: bytes, ts: float) -> float:
    conv = Tcp(cap, client=client, server=server, ts=ts)
    conv.handshake().s(b"* OK IMAP4rev1 ready\r\n").c(b"a1 LOGIN alice pw\r\n").s(b"a1 OK logged in\r\n")
    conv.c(b"a2 APPEND Sent (\\Seen) {%d}\r\n" % len(message)).s(b"+ go ahead\r\n")
    conv.c(message + b"\r\n").s(b"a2 OK APPEND completed\r\n")
    conv.c(b"a3 LOGOUT\r\n").s(b"* BYE\r\na3 OK\r\n").fin()
    return conv.ts + 1.0


def test_submission_relay_retrieval_and_sent_copy_are_one_flow(tmp_path: Path) -> None:
    """The lecture's whole path: the user agent submits, the MTA relays, the recipient fetches with
    POP3 RETR; the sender's copy is APPENDed to its Sent folder over IMAP. One flow of four hops, in
    time order, with each hop's carrier, direction and delay."""
    cap = Capture()
    message = b"Message-ID: <path@a.example>\r\n" + BODY
    t = _smtp(cap, ("10.0.0.1", 40000), ("10.0.0.25", 587), message, 1_700_000_000.0)
    relayed = (b"Received: from a.example ([10.0.0.1]) by mta.a.example with ESMTPSA id Q1; "
               b"Tue, 14 Nov 2023 22:13:20 +0000\r\n" + message)
    t = _smtp(cap, ("10.0.0.25", 41000), ("10.0.0.26", 25), relayed, t)
    delivered = (b"Received: from mta.a.example ([10.0.0.25]) by mx.b.example with ESMTP id R2; "
                 b"Tue, 14 Nov 2023 22:13:21 +0000\r\n" + relayed)
    t = _pop3_retr(cap, ("10.0.0.2", 42000), ("10.0.0.26", 110), delivered, t + 5.0)
    _imap_append(cap, ("10.0.0.1", 43000), ("10.0.0.25", 143), message, t)
    flows = _flows(cap.write(tmp_path / "path.pcap"))
    assert len(flows) == 1
    [flow] = flows
    hops = flow["hops"]
    assert isinstance(hops, list)
    assert [h["origin"] for h in hops] == ["smtp-data", "smtp-data", "pop3-retr", "imap-append"]
    assert [h["server"]["port"] for h in hops] == [587, 25, 110, 143]
    assert hops[0]["delay"] is None and all(h["delay"] > 0 for h in hops[1:])
    assert [h["session"] for h in hops] == [1, 2, 3, 4]
    assert hops[1]["received_matches"] is True  # the relay's Received line records the submission hop
    text = run_cli("flows", str(tmp_path / "path.pcap")).stdout
    assert "4 hops in" in text
    assert "10.0.0.26:110 → 10.0.0.2:42000  POP3 RETR" in text  # a retrieval goes from server to client
    assert "IMAP APPEND" in text


def _pop3(cap: Capture, client: tuple[str, int], commands: list[tuple[bytes, bytes]], ts: float) -> float:
    """A POP3 session: login, then each (command, its multi-line reply's body), then QUIT."""
    conv = Tcp(cap, client=client, server=("10.0.0.26", 110), ts=ts)
    conv.handshake().s(b"+OK POP3 ready\r\n").c(b"USER bob\r\n").s(b"+OK\r\n")
    conv.c(b"PASS pw\r\n").s(b"+OK 2 messages\r\n")
    for command, body in commands:
        conv.c(command + b"\r\n").s(b"+OK message follows\r\n" + body + b".\r\n")
    conv.c(b"QUIT\r\n").s(b"+OK bye\r\n").fin()
    return conv.ts + 1.0


def _top_then_retr(tmp_path: Path) -> Path:
    """Session 1: TOP 1 then RETR 1 (one message, one session), then RETR 2; session 2: RETR 2 again."""
    one = b"Message-ID: <one@a.example>\r\nSubject: One\r\nFrom: alice@a.example\r\n\r\nline 1\r\nline 2\r\n"
    two = b"Message-ID: <two@a.example>\r\nSubject: Two\r\nFrom: alice@a.example\r\n\r\nHello again.\r\n"
    top = one.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\nline 1\r\n"
    cap = Capture()
    t = _pop3(cap, ("10.0.0.2", 42000), [(b"TOP 1 1", top), (b"RETR 1", one), (b"RETR 2", two)], 1_700_000_000.0)
    _pop3(cap, ("10.0.0.2", 42001), [(b"RETR 2", two)], t + 5.0)
    return cap.write(tmp_path / "pop3.pcap")


def test_multi_hop_means_the_message_travelled(tmp_path: Path) -> None:
    """``--multi-hop`` shows only messages carried by more than one session on their way: a TOP and a RETR
    of one message in one session are not, and neither is a message downloaded again from the same mailbox
    in a later session (it did not move); the summary counts what --multi-hop shows."""
    path = _top_then_retr(tmp_path)
    flows = {f["message_id"]: f for f in _flows(path)}
    one, two = flows["<one@a.example>"], flows["<two@a.example>"]
    assert [(h["session"], h["origin"]) for h in one["hops"]] == [(1, "pop3-top"), (1, "pop3-retr")]  # type: ignore[index]
    assert [(h["session"], h["origin"]) for h in two["hops"]] == [(1, "pop3-retr"), (2, "pop3-retr")]  # type: ignore[index]
    assert one["sessions"] == [1] and two["sessions"] == [1, 2]
    assert (one["multi_hop"], two["multi_hop"]) == (False, False)
    assert [h["delay"] for h in two["hops"]] == [None, None]  # type: ignore[index]  # no step between downloads
    text = run_cli("flows", "--no-color", "--width", "120", "--multi-hop", str(path))
    assert text.exit_code == 0, text.stderr
    assert "Flow " not in text.stdout
    assert text.stdout.rstrip().endswith("2 messages followed, 0 of them over several hops")
    every = run_cli("flows", "--no-color", "--width", "120", str(path)).stdout
    assert "<one@a.example>" in every and "<two@a.example>" in every  # without --multi-hop: every flow
    assert "  downloaded 2 times from the mailbox, 6.015 s apart" in every and "no Received line" not in every
    german = run_cli("flows", "--no-color", "--lang", "de", str(path)).stdout
    assert "2-mal aus dem Postfach abgerufen" in german and "2 E-Mails verfolgt, davon 0 über mehrere" in german


def test_a_submitted_message_downloaded_twice_is_one_hop_and_two_downloads(tmp_path: Path) -> None:
    """Submission, then two downloads by two clients: a multi-hop flow; each download's delay counts from
    the submission (the second download is no step after the first)."""
    cap = Capture()
    message = b"Message-ID: <m@a.example>\r\nSubject: Hi\r\nFrom: alice@a.example\r\n\r\nHello.\r\n"
    t = _smtp(cap, ("10.0.0.1", 40000), ("10.0.0.26", 25), message, 1_700_000_000.0)
    t = _pop3_retr(cap, ("10.0.0.2", 41000), ("10.0.0.26", 110), message, t + 10.0)
    _pop3_retr(cap, ("10.0.0.3", 42000), ("10.0.0.26", 110), message, t + 20.0)
    [flow] = _flows(cap.write(tmp_path / "twice.pcap"))
    hops = flow["hops"]
    assert flow["multi_hop"] is True and flow["sessions"] == [1, 2, 3]
    assert [h["origin"] for h in hops] == ["smtp-data", "pop3-retr", "pop3-retr"]  # type: ignore[index]
    delays = [h["delay"] for h in hops]  # type: ignore[index]
    assert delays[0] is None and 10 < delays[1] < 12 and delays[2] > delays[1] + 19  # type: ignore[operator]


def test_multi_hop_on_the_pop3_lab_capture() -> None:
    """samples/pop3-session.pcap: TOP and RETR of one message in session 1 are not a multi-hop flow, and
    neither is the message retrieved in session 1 and again in session 3 (downloaded twice, it went nowhere)."""
    path = sample("pop3-session.pcap")
    flows = _flows(path)
    assert sorted(f["sessions"] for f in flows) == [[1], [1, 3]]  # type: ignore[type-var]
    text = run_cli("flows", "--no-color", "--width", "120", "--multi-hop", str(path)).stdout
    assert "Flow " not in text and "2 messages followed, 0 of them over several hops" in text
    every = run_cli("flows", "--no-color", "--width", "120", str(path)).stdout
    assert "  2 sightings in one session, 0.001 s apart · " in every  # not "2 hops": it went nowhere
    assert "  downloaded 2 times from the mailbox, 0.052 s apart · " in every
    assert "no Received line" not in every


def test_json_flows_keep_their_keys_and_add_sessions(tmp_path: Path) -> None:
    """``flows --format json``: the documented keys stay; ``sessions`` is added (the --multi-hop selection)."""
    [flow, *_] = _flows(_top_then_retr(tmp_path))
    assert set(flow) >= {"message_id", "key", "subject", "from", "hops", "received_before",
                         "received_chain_matches", "duration", "sessions"}
    hops = flow["hops"]
    assert isinstance(hops, list) and set(hops[0]) >= {
        "session", "ts", "protocol", "client", "server", "origin", "delay", "file", "stream", "first_frame",
        "last_frame", "bytes", "sha256", "complete", "queue_id", "helo", "server_name", "user", "received_count",
        "received_added", "received_matches", "queue_id_in_received", "continuous"}


def test_flow_entries_made_as_sessions_arrive_follow_later_hops(tmp_path: Path) -> None:
    """The collector makes each flow's JSON entry when its session arrives (not all at the report's end); a
    hop that joins the flow later, through ``session`` or ``add``, must still be in the entry."""
    cap = Capture()
    message = b"Message-ID: <later@a.example>\r\n" + BODY
    t = _smtp(cap, ("10.0.0.1", 40000), ("10.0.0.25", 587), message, 1_700_000_000.0)
    t = _smtp(cap, ("10.0.0.25", 41000), ("10.0.0.26", 25), message, t)
    _pop3_retr(cap, ("10.0.0.2", 42000), ("10.0.0.26", 110), message, t + 5.0)
    sessions = list(Analyzer(build_config([], False, False)).run_file(open_capture(cap.write(tmp_path / "p.pcap"))))
    assert len(sessions) == 3
    collector = FlowCollector()
    collector.session(sessions[0])
    assert [len(f["hops"]) for f in collector.json()] == [1]
    collector.session(sessions[1])
    assert [[h["session"] for h in f["hops"]] for f in collector.json()] == [[1, 2]]
    collector.add(sessions[2], sessions[2].messages[0])  # not through session(): the entry is made anew
    [entry] = collector.json()
    assert [h["origin"] for h in entry["hops"]] == ["smtp-data", "smtp-data", "pop3-retr"]
    assert entry == flow_json(collector.flows()[0])


def _interleaved_hops(tmp_path: Path) -> list[Session]:
    """Four messages, each relayed once, the relays in reverse order of the submissions; one message also
    fetched with POP3, its submission's EHLO name with a byte that is not UTF-8 (a lone surrogate in the
    flow's ``helo``)."""
    cap = Capture()
    t = 1_700_000_000.0
    messages = [f"Message-ID: <{i}@a.example>\r\n".encode() + BODY for i in range(4)]
    messages[2] = messages[2].replace(b"Subject: Hi", b"Subject: caf\xe9")
    for i, message in enumerate(messages):
        t = _smtp(cap, ("10.0.0.1", 40000 + i), ("10.0.0.25", 587), message, t, b"caf\xe9" if i == 2 else b"a.example")
    for i, message in reversed(list(enumerate(messages))):
        relayed = (b"Received: from a.example ([10.0.0.1]) by mta.a.example with ESMTPSA; "
                   b"Tue, 14 Nov 2023 22:13:20 +0000\r\n" + message)
        t = _smtp(cap, ("10.0.0.25", 41000 + i), ("10.0.0.26", 25), relayed, t)
    _pop3_retr(cap, ("10.0.0.2", 42000), ("10.0.0.26", 110), messages[2], t + 5.0)
    return list(Analyzer(build_config([], False, False)).run_file(open_capture(str(cap.write(tmp_path / "p.pcap")))))


def test_flows_spilled_to_a_file_come_back_the_same(tmp_path: Path) -> None:
    """With one flow kept as an object, the others wait in the temporary file: a relay hop brings its flow
    back, and the flows, their JSON entries and their texts are what a collector that kept all of them
    gives, in the same order."""
    sessions = _interleaved_hops(tmp_path)
    kept, spilling = FlowCollector(), FlowCollector(FlowLimits(max_live_flows=1))
    for session in sessions:
        kept.session(session)
        spilling.session(session)
    assert spilling._spill is not None and len(spilling._spill.where) == 3 and len(spilling._live) == 1
    assert len(spilling._spill.where) + len(spilling._live) == len(spilling) == 4
    entries = kept.json()
    assert [[h["session"] for h in f["hops"]] for f in entries] == [[1, 8], [2, 7], [3, 6, 9], [4, 5]]
    assert entries[2]["subject"] == "café" and entries[2]["hops"][0]["helo"] == "caf\udce9"
    assert spilling.json() == entries
    assert [flow_json(f) for f in spilling.flows()] == entries
    assert list(spilling.texts()) == list(kept.texts())
    # the texts are the report's: the lone surrogate written as \xNN (mailtrace/jsontext.py)
    assert [json.loads(text) for text in spilling.texts()] == json.loads(dumps(entries))
    assert json.loads(list(spilling.texts())[2])["hops"][0]["helo"] == "caf\\xe9"
    assert list(spilling.entries()) == entries and len(spilling.entries()) == 4
    hop = spilling.flows()[2].hops[0]  # a hop pickles as its fields in order (FlowHop.__reduce__)
    assert pickle.loads(pickle.dumps(hop)) == hop and hop.helo == "caf\udce9" and hop.received == ()


def test_the_report_writes_flows_and_findings_entry_by_entry(tmp_path: Path) -> None:
    """The JSON writer streams the arrays of ``extra`` (the flows from their texts), and writes what
    ``dumps`` makes of the whole: a lone surrogate becomes ``\\xNN`` either way."""
    import io

    from mailtrace.pipeline import CaptureStats
    from mailtrace.render.json import JsonReportWriter, dumps

    collector = FlowCollector(FlowLimits(max_live_flows=2))
    for session in _interleaved_hops(tmp_path):
        collector.session(session)
    extra = {"findings": [{"id": "x", "n": 1}, {"id": "y", "text": "t\udce9"}], "stats": {"a": [1, 2]},
             "flows": collector.entries(), "empty": []}
    stream = io.StringIO()
    writer = JsonReportWriter(stream)
    writer.begin()
    writer.end(CaptureStats(), extra)
    text = stream.getvalue()
    for key, value in extra.items():
        listed = collector.json() if key == "flows" else value
        assert f'"{key}":{dumps(listed)}' in text
    assert text.count("\\\\xe9") == 2 and "\udce9" not in text  # the finding's and the flow's helo
    report = json.loads(text)
    assert report["flows"] == json.loads(dumps(collector.json())) and report["empty"] == []


def test_a_narrow_terminal_puts_the_path_under_its_hop(captures: Path) -> None:
    """At 80 columns the hop table was 95 wide: the path (the widest cell) goes on a line of its own."""
    narrow = run_cli("flows", "--no-color", "--width", "80", str(captures / "smtp-relay-seed-story.pcap")).stdout
    lines = narrow.splitlines()
    assert max(len(line) for line in lines) <= 80
    hop = lines.index("    2        2  2026-11-26 13:22:24.177  SMTP DATA  0.079 s")
    assert lines[hop + 1] == "      127.0.0.25:55488 → 127.0.0.26:25"
    assert lines[hop + 2].startswith("      ↳ Received: from client.local.example [127.0.0.10]")
    wide = run_cli("flows", "--no-color", "--width", "120", str(captures / "smtp-relay-seed-story.pcap")).stdout
    assert "  127.0.0.25:55488 → 127.0.0.26:25  SMTP DATA  0.079 s" in wide
