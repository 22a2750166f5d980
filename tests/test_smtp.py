"""The SMTP dissector, fed real sessions and the edge cases no capture has."""

from __future__ import annotations

import base64
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailtrace.capture.reader import open_capture
from mailtrace.config import Config
from mailtrace.model import CLIENT, SERVER, BodyData, Chunk, Eof, Event, MessageData, StreamGap, StreamItem
from mailtrace.pipeline import Analyzer
from mailtrace.protocols.base import DissectorLimits
from mailtrace.protocols.smtp import ADDRESS, Smtp, parse_address
from mailtrace.session import Session
from tests.pcapgen import Capture, Tcp
from tests.support import corpus, facts, report, run_cli, sample


def sessions_with_transcript(path: Path) -> list[Session]:
    config = Config()
    config = replace(config, session=replace(config.session, keep_transcript=True))
    return list(Analyzer(config).run([open_capture(str(path))]))


def items_of(session: Session) -> list[StreamItem]:
    out: list[StreamItem] = []
    for piece in session.transcript:
        if piece.gap:
            out.append(StreamGap(piece.direction, piece.gap, piece.ts, piece.frame))
        else:
            out.append(Chunk(piece.direction, piece.data, piece.ts, piece.frame))
    return out


def normalized(events: list[Event]) -> list[Event]:
    """Bulk data arrives in as many pieces as it was fed in: merge each run of bulk events."""
    out: list[Event] = []
    run_: list[Event] = []

    def flush() -> None:
        data = [e for e in run_ if isinstance(e, MessageData)]
        if data and any(e.data for e in data):
            out.append(replace(data[-1], data=b"".join(e.data for e in data)))
        by_frame: dict[int, BodyData] = {}
        for e in run_:
            if isinstance(e, BodyData):
                old = by_frame.get(e.frame)
                by_frame[e.frame] = e if old is None else replace(old, nbytes=old.nbytes + e.nbytes)
        out.extend(b for b in by_frame.values() if b.nbytes)
        run_.clear()

    for e in events:
        if isinstance(e, (MessageData, BodyData)):
            run_.append(e)
        else:
            flush()
            out.append(e)
    flush()
    return out


def run(items: list[StreamItem], limits: DissectorLimits = DissectorLimits()) -> tuple[list[Event], dict[str, Any]]:
    d = Smtp(limits)
    events: list[Event] = []
    for item in items:
        events += d.feed(item)
    events += d.finish()
    return normalized(events), d.record()


def split_bytes(items: list[StreamItem]) -> list[StreamItem]:
    out: list[StreamItem] = []
    for item in items:
        if isinstance(item, Chunk):
            out += [Chunk(item.direction, item.data[i : i + 1], item.ts, item.frame) for i in range(len(item.data))]
        else:
            out.append(item)
    return out


def split_at(items: list[StreamItem], index: int, offset: int) -> list[StreamItem]:
    item = items[index]
    assert isinstance(item, Chunk)
    a = Chunk(item.direction, item.data[:offset], item.ts, item.frame)
    b = Chunk(item.direction, item.data[offset:], item.ts, item.frame)
    return [*items[:index], a, b, *items[index + 1 :]]


SMTP_SAMPLES = ["smtp-relay-seed-story.pcap", "smtp-submission-auth.pcap", "smtp-errors.pcap"]


@pytest.mark.parametrize("name", SMTP_SAMPLES)
def test_split_invariance_on_real_sessions(name: str) -> None:
    for session in sessions_with_transcript(sample(name)):
        items = items_of(session)
        whole = run(items)
        assert whole[0], "the session produced events"
        assert run(split_bytes(items)) == whole


def test_split_at_every_offset_seed_story() -> None:
    session = sessions_with_transcript(sample("smtp-relay-seed-story.pcap"))[0]
    items = items_of(session)
    whole = run(items)
    for index, item in enumerate(items):
        assert isinstance(item, Chunk)
        for offset in range(1, len(item.data)):
            assert run(split_at(items, index, offset)) == whole, (index, offset)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_split_invariance_random_bdat_pipelining(data: st.DataObject) -> None:
    session = sessions_with_transcript(corpus("zeek/smtp-bdat-pipeline-8bitmime"))[0]
    items = items_of(session)
    whole = run(items)
    cut: list[StreamItem] = []
    for item in items:
        if isinstance(item, Chunk) and len(item.data) > 1:
            points = sorted(data.draw(st.sets(st.integers(1, len(item.data) - 1), max_size=4)))
            last = 0
            for p in [*points, len(item.data)]:
                cut.append(Chunk(item.direction, item.data[last:p], item.ts, item.frame))
                last = p
        else:
            cut.append(item)
    assert run(cut) == whole


# --------------------------------------------------------------------------- real sessions vs facts
def test_seed_story_matches_facts() -> None:
    f = facts("smtp-relay-seed-story.facts.json")
    data = report(sample("smtp-relay-seed-story.pcap"))
    first, relay = data["sessions"]
    fs = f["sessions"][0]
    assert first["helo"] == fs["ehlo"]
    tx = first["transactions"][0]
    assert tx["mail_from"] == fs["mail_from"]
    assert tx["rcpt_to"] == [r["address"] for r in fs["rcpt_to"]]
    assert tx["accepted"] == tx["rcpt_to"]
    assert (tx["reply"], tx["data_reply"], tx["queue_id"]) == (250, 250, "6AQDMOpI000661")
    assert first["messages"][0]["subject"] == fs["messages"][0]["subject"]
    assert first["messages"][0]["message_id"] == fs["messages"][0]["message_id"]
    # the relay hop: EHLO, MAIL with SIZE, then RCPT and DATA pipelined in one segment
    assert relay["transactions"][0]["params"] == {"SIZE": "480"}
    assert relay["transactions"][0]["queue_id"] == "2126016C758"
    rcpt, data_cmd = relay["commands"][2], relay["commands"][3]
    assert (rcpt["verb"], data_cmd["verb"], rcpt["frame"]) == ("RCPT", "DATA", data_cmd["frame"])
    assert [r["answers"] for r in relay["replies"]] == [None, "EHLO", "MAIL", "RCPT", "DATA", ".", "QUIT"]


def test_submission_auth_plain_and_login_with_pipelining() -> None:
    data = report(sample("smtp-submission-auth.pcap"))
    first, second = data["sessions"]
    assert first["auth"][0]["mechanism"] == "PLAIN" and first["auth"][0]["username"] == "bob"
    assert first["auth"][0]["success"] is True and "password" not in first["auth"][0]
    assert second["auth"][0]["mechanism"] == "LOGIN" and second["user"] == "bob"
    for s in (first, second):
        tx = s["transactions"][0]
        assert tx["rcpt_to"] == ["carol@remote.example", "dave@remote.example", "nosuch@remote.example"]
        assert tx["accepted"] == ["carol@remote.example", "dave@remote.example"]
        assert tx["rcpt_replies"] == [250, 250, 550]
    assert first["commands"][0]["verb"] == "EHLO"  # smtplib sends lower-case 'ehlo'
    with_secrets = report(sample("smtp-submission-auth.pcap"), args=("--show-secrets",))
    assert with_secrets["sessions"][0]["auth"][0]["password"] == "bob-pop3-Secret"


def test_errors_session_codes_and_rst_in_data() -> None:
    data = report(sample("smtp-errors.pcap"))
    sendmail, postfix, reset = data["sessions"]
    codes = [r["status"] for r in sendmail["replies"]]
    assert {"214", "250", "550", "503", "500", "501", "553"} <= set(codes)
    assert any(a["kind"] == "unknown-command" for a in sendmail["anomalies"])
    assert postfix["replies"][-1]["status"] == "421"
    assert reset["close"] == "rst"
    assert reset["messages"][0]["complete"] is False


# --------------------------------------------------------------------------- synthetic edge cases
def smtp_items(*parts: tuple[str, bytes]) -> list[StreamItem]:
    return [Chunk(CLIENT if who == "c" else SERVER, data, float(i), i + 1) for i, (who, data) in enumerate(parts)]


def test_parse_address_variants() -> None:
    params = {"SIZE": "10", "BODY": "8BITMIME"}
    assert parse_address("FROM:<a@b> SIZE=10 BODY=8BITMIME", "FROM") == ("a@b", params, True)
    assert parse_address("from: <a@b>", "FROM") == ("a@b", {}, True)
    assert parse_address("FROM:<>", "FROM") == ("", {}, True)
    assert parse_address("FROM alice@x", "FROM")[2] is False
    assert parse_address('FROM:<"x>y"@example.org> SIZE=1', "FROM") == ('"x>y"@example.org', {"SIZE": "1"}, True)


# The path as one backtracking regex reads it: what ADDRESS (possessive, 20 times faster on long arguments)
# must read the same.
_PLAIN_ADDRESS = re.compile(r'^\s*:?\s*(?:<((?:"(?:[^"\\]|\\.)*"|[^>"])*)>|(\S*))\s*(.*)$', re.DOTALL)


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet='<>"\\ \t:@,a=.\r\n', max_size=24))
def test_the_path_regex_reads_what_a_backtracking_one_reads(text: str) -> None:
    plain, possessive = _PLAIN_ADDRESS.match(text), ADDRESS.match(text)
    assert (plain.groups() if plain else None) == (possessive.groups() if possessive else None)


def test_cram_md5_and_cancel() -> None:
    challenge = base64.b64encode(b"<1896.697170952@postoffice.example.net>").decode()
    answer = base64.b64encode(b"tim b913a602c7eda7a495b4e6e7334d3890").decode()
    events, _ = run(smtp_items(("s", b"220 hi\r\n"), ("c", b"EHLO a\r\n"), ("s", b"250 ok\r\n"),
                               ("c", b"AUTH CRAM-MD5\r\n"), ("s", f"334 {challenge}\r\n".encode()),
                               ("c", f"{answer}\r\n".encode()), ("s", b"235 ok\r\n"),
                               ("c", b"AUTH LOGIN\r\n"), ("s", b"334 VXNlcm5hbWU6\r\n"), ("c", b"*\r\n"),
                               ("s", b"501 cancelled\r\n")))
    auths = [e for e in events if type(e).__name__ == "AuthAttempt"]
    assert (auths[0].mechanism, auths[0].username, auths[0].success) == ("CRAM-MD5", "tim", True)
    assert auths[0].secret == "b913a602c7eda7a495b4e6e7334d3890"
    assert (auths[1].mechanism, auths[1].success) == ("LOGIN", False)


def test_starttls_injection_flagged() -> None:
    events, _ = run(smtp_items(("s", b"220 hi\r\n"), ("c", b"EHLO a\r\n"), ("s", b"250-a\r\n250 STARTTLS\r\n"),
                               ("c", b"STARTTLS\r\nMAIL FROM:<evil@x>\r\n"), ("s", b"220 go ahead\r\n")))
    kinds = [getattr(e, "kind", None) for e in events]
    assert "starttls-injection" in kinds
    assert type(events[-1]).__name__ == "TlsStart"


@pytest.mark.parametrize(("body", "pattern"), [
    (b"Subject: x\r\n\r\nhi\n.\nMAIL FROM:<x@y>\r\n", "<LF>.<LF>"),
    (b"Subject: x\r\n\r\nhi\n.\r\nMAIL FROM:<x@y>\r\n", "<LF>.<CR><LF>"),
    (b"Subject: x\r\n\r\nhi\r.\r\nMAIL FROM:<x@y>\r\n", "<CR>.<CR><LF>"),
    (b"Subject: x\r\n\r\nhi\r\n.\rMAIL FROM:<x@y>\r\n", "<CR><LF>.<CR>"),
    (b"Subject: x\r\n\r\nhi\r.\rMAIL FROM:<x@y>\r\n", "<CR>.<CR>"),
    (b"Subject: x\r\n\r\nhi\n.\rMAIL FROM:<x@y>\r\n", "<LF>.<CR>"),
    (b"Subject: x\r\n\r\nhi\r.\nMAIL FROM:<x@y>\r\n", "<CR>.<LF>"),
])
def test_smtp_smuggling_variants(body: bytes, pattern: str) -> None:
    events, record = run(smtp_items(("s", b"220 hi\r\n"), ("c", b"EHLO a\r\n"), ("s", b"250 ok\r\n"),
                                    ("c", b"MAIL FROM:<a@b>\r\n"), ("s", b"250 ok\r\n"),
                                    ("c", b"RCPT TO:<c@d>\r\n"), ("s", b"250 ok\r\n"),
                                    ("c", b"DATA\r\n"), ("s", b"354 go\r\n"),
                                    ("c", body + b".\r\n"), ("s", b"250 queued\r\n")))
    smuggle = [e for e in events if getattr(e, "kind", "") == "smtp-smuggling"]
    assert smuggle and pattern in smuggle[0].detail  # type: ignore[attr-defined]
    assert pattern in record["smtp"]["smuggling_patterns"]
    assert record["smtp"]["smuggling_patterns"] == [pattern]  # one look-alike, named once and exactly
    ends = [e for e in events if type(e).__name__ == "MessageEnd"]
    assert len(ends) == 1  # only <CR><LF>.<CR><LF> ends DATA
    assert not [e for e in events if getattr(e, "kind", "") == "smuggling-accepted"]  # one reply: not shown


SMUGGLED = (b"Subject: x\r\n\r\nhi\r\n.\nMAIL FROM:<admin@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"
            b"Subject: spoofed\r\n\r\nowned\r\n.\r\n")
ENVELOPE_UP_TO_354 = (("s", b"220 hi\r\n"), ("c", b"EHLO a\r\n"), ("s", b"250 ok\r\n"), ("c", b"MAIL FROM:<a@b>\r\n"),
                      ("s", b"250 ok\r\n"), ("c", b"RCPT TO:<c@d>\r\n"), ("s", b"250 ok\r\n"), ("c", b"DATA\r\n"),
                      ("s", b"354 go\r\n"))


def test_server_replies_show_it_accepted_the_lookalike() -> None:
    """A vulnerable server answers the look-alike end and then the smuggled MAIL, RCPT, DATA and message:
    four replies more than the client's one end of data."""
    events, _ = run(smtp_items(*ENVELOPE_UP_TO_354, ("c", SMUGGLED),
                               ("s", b"250 queued as FIRST\r\n250 ok\r\n250 ok\r\n354 go\r\n250 queued as EVIL\r\n")))
    (accepted,) = [e for e in events if getattr(e, "kind", "") == "smuggling-accepted"]
    assert accepted.frame == 11 and "ran the rest of the body as SMTP commands" in accepted.detail  # type: ignore[attr-defined]
    assert "<CR><LF>.<LF>" in accepted.detail  # type: ignore[attr-defined]
    # the further replies answer the smuggled commands: explained by the one anomaly, not four more
    assert not [e for e in events if getattr(e, "kind", "") == "unsolicited-reply"]


def test_server_answering_inside_the_message_accepted_the_lookalike() -> None:
    """The server replies while the client is still inside DATA, right after a look-alike: not a lost end
    marker (nothing was lost) but the server ending the message early."""
    events, _ = run(smtp_items(*ENVELOPE_UP_TO_354, ("c", b"Subject: x\r\n\r\nhi\r\n.\n"),
                               ("s", b"250 queued as FIRST\r\n"), ("c", b"QUIT\r\n"), ("s", b"221 bye\r\n")))
    kinds = [getattr(e, "kind", "") for e in events]
    assert "smuggling-accepted" in kinds and "end-of-data-lost" not in kinds
    (end,) = [e for e in events if type(e).__name__ == "MessageEnd"]
    assert end.complete  # type: ignore[attr-defined]
    assert [getattr(e, "verb", None) for e in events if type(e).__name__ == "Command"][-1] == "QUIT"


def test_bdat_chunks_with_binary_and_last() -> None:
    chunk1 = b"Subject: chunked\r\n\r\n\x00\xffbinary"
    chunk2 = b" end\r\n"
    events, record = run(smtp_items(("s", b"220 hi\r\n"), ("c", b"EHLO a\r\n"), ("s", b"250 CHUNKING\r\n"),
                                    ("c", b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n"
                                          + f"BDAT {len(chunk1)}\r\n".encode() + chunk1),
                                    ("s", b"250 ok\r\n250 ok\r\n250 chunk\r\n"),
                                    ("c", f"BDAT {len(chunk2)} LAST\r\n".encode() + chunk2 + b"QUIT\r\n"),
                                    ("s", b"250 queued as Q1\r\n221 bye\r\n")))
    tx = record["transactions"][0]
    assert tx["bdat_chunks"] == [len(chunk1), len(chunk2)]
    assert tx["data_reply"] == 250
    ends = [e for e in events if type(e).__name__ == "MessageEnd"]
    assert ends[0].origin == "smtp-bdat" and ends[0].complete  # type: ignore[attr-defined]
    assert [getattr(e, "verb", None) for e in events if type(e).__name__ == "Command"] == \
        ["EHLO", "MAIL", "RCPT", "BDAT", "BDAT", "QUIT"]


def test_bdat_invalid_size_resyncs() -> None:
    events, _ = run(smtp_items(("s", b"220 hi\r\n"), ("c", b"MAIL FROM:<a@b>\r\n"), ("s", b"250 ok\r\n"),
                               ("c", b"BDAT -5\r\nQUIT\r\n"), ("s", b"501 bad\r\n221 bye\r\n")))
    assert "bdat-invalid" in [getattr(e, "kind", None) for e in events]
    assert [getattr(e, "verb", None) for e in events if type(e).__name__ == "Command"][-1] == "QUIT"


def test_over_long_line_is_an_anomaly_and_bounded() -> None:
    limits = DissectorLimits(max_line=1000)
    events, _ = run(smtp_items(("s", b"220 hi\r\n"), ("c", b"EHLO " + b"x" * 50_000 + b"\r\n"),
                               ("s", b"500 too long\r\n"), ("c", b"QUIT\r\n"), ("s", b"221 bye\r\n")), limits)
    assert "line-too-long" in [getattr(e, "kind", None) for e in events]
    assert [getattr(e, "verb", None) for e in events if type(e).__name__ == "Command"] == ["EHLO", "QUIT"]


def test_gap_in_command_stream_resyncs_on_next_command() -> None:
    items = smtp_items(("s", b"220 hi\r\n"), ("c", b"EHLO a\r\nMAIL FR"))
    items.append(StreamGap(CLIENT, 30, 3.0, 3))
    items += [Chunk(CLIENT, b"b@c>\r\nRCPT TO:<d@e>\r\n", 4.0, 4), Chunk(SERVER, b"250 ok\r\n", 5.0, 5),
              Eof(CLIENT, 6.0, 6)]
    events, _ = run(items)
    verbs = [getattr(e, "verb", None) for e in events if type(e).__name__ == "Command"]
    assert verbs == ["EHLO", "RCPT"]
    assert any(type(e).__name__ == "GapEvent" for e in events)


def test_garbage_on_port_25_is_an_anomaly(tmp_path: Path) -> None:
    cap = Capture()
    t = Tcp(cap).handshake()
    t.c(bytes(range(256)) * 4).s(b"500 what?\r\n").fin()
    (s,) = report(cap.write(tmp_path / "x.pcap"))["sessions"]
    assert s["protocol"] == "smtp"
    assert any(a["kind"] == "garbage" for a in s["anomalies"])


@pytest.mark.parametrize(("line", "kind", "shown"), [
    (b"\xc3\x28XYZ hello\r\n", "unknown-command", "unknown command \\xc3(XYZ"),
    (b"BDAT \xff\xfe\r\n", "bdat-invalid", "BDAT with invalid chunk size \\xff\\xfe"),
])
def test_undecodable_bytes_in_a_verb_or_size_are_shown_escaped(tmp_path: Path, line: bytes, kind: str,
                                                                shown: str) -> None:
    """A verb that is not UTF-8 once made the whole run fail (the anomaly text re-encoded it strictly)."""
    cap = Capture()
    t = Tcp(cap).handshake()
    t.s(b"220 mx ESMTP\r\n").c(b"EHLO a\r\n").s(b"250 mx\r\n").c(b"MAIL FROM:<a@b>\r\n").s(b"250 ok\r\n")
    t.c(line).s(b"500 what?\r\n").c(b"QUIT\r\n").s(b"221 bye\r\n").fin()
    path = cap.write(tmp_path / "x.pcap")
    (s,) = report(path)["sessions"]
    (anomaly,) = s["anomalies"]
    assert anomaly["kind"] == kind and anomaly["detail"].startswith(shown)
    assert [c["verb"] for c in s["commands"]][-1] == "QUIT"
    for args in (["--format", "jsonl"], ["--no-color"], ["--follow"], ["--list"], ["--headers"]):
        result = run_cli("analyze", *args, str(path))
        assert result.exit_code == 0, (args, result.output)
        result.output.encode("utf-8")  # nothing unwritable
    result = run_cli("extract", str(path), "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output


# --------------------------------------------------------------------------- reply codes and extensions
def test_reply_codes_explained_digit_by_digit_and_enhanced() -> None:
    from mailtrace.protocols.smtp_codes import explain_keyword, explain_reply

    m = explain_reply("550", "5.1.1 <nosuch@remote.example>: Recipient address rejected")
    assert m is not None
    assert (m.outcome, m.category) == ("permanent failure", "mail system")
    assert (m.enhanced, m.enhanced_meaning) == ("5.1.1", "bad destination mailbox address")
    m = explain_reply("421", "4.7.0 Error: too many errors")
    assert m is not None and m.outcome.startswith("transient failure") and m.category == "connection"
    assert m.enhanced_meaning == "other or undefined security status"
    m = explain_reply("503", "Need MAIL before RCPT")
    assert m is not None and m.enhanced is None and m.short == "bad sequence of commands"
    assert explain_reply("+OK") is None
    assert explain_keyword("SIZE 10240000") == ("SIZE", "largest message the server accepts: 9.8 MiB (RFC 1870)")
    # German views write the decimal comma everywhere else; the limit was the one "9.8 MiB" among them
    assert explain_keyword("SIZE 10240000", "de")[1] == "größte Nachricht, die der Server annimmt: 9,8 MiB (RFC 1870)"
    assert explain_keyword("SIZE 500", "de")[1] == "größte Nachricht, die der Server annimmt: 500 Bytes (RFC 1870)"
    assert explain_keyword("SIZE 2199023255552000")[1] == \
        "largest message the server accepts: 2,048,000.0 GiB (RFC 1870)"
    assert explain_keyword("AUTH PLAIN LOGIN")[1] == \
        "the client may authenticate with these SASL mechanisms: PLAIN LOGIN (RFC 4954)"
    assert explain_keyword("X-FOO")[1] == "private extension"
    assert explain_keyword("NOPE") == ("NOPE", None)


def test_failures_explained_in_the_table() -> None:
    result = run_cli("analyze", "--width", "200", str(sample("smtp-errors.pcap")))
    text = result.stdout
    assert "sender rejected: 553 5.1.8 bad sender's system address" in text
    assert "recipient rejected: 554 5.7.1 delivery not authorized, message refused" in text
    assert "↳ 421: transient failure: try again later · connection — service not available" in text
    assert "↳ CHUNKING: messages may be sent in chunks with BDAT (RFC 3030)" in text
    quiet = run_cli("analyze", "--width", "200", "--no-explain", str(sample("smtp-errors.pcap"))).stdout
    assert "↳" not in quiet


def _auth_session(*exchange: tuple[str, bytes]) -> list[Any]:
    events, _ = run(smtp_items(("s", b"220 hi\r\n"), ("c", b"EHLO a\r\n"), ("s", b"250 AUTH\r\n"), *exchange))
    return [e for e in events if type(e).__name__ == "AuthAttempt"]


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


@pytest.mark.parametrize(("exchange", "mechanism", "user", "extra"), [
    ([("c", b"AUTH XOAUTH2 " + b64(b"user=ann@example.org\x01auth=Bearer ya29.tok\x01\x01") + b"\r\n"),
      ("s", b"235 2.7.0 Accepted\r\n")], "XOAUTH2", "ann@example.org", {}),
    ([("c", b"AUTH OAUTHBEARER " + b64(b"n,a=ben@example.org,\x01host=mx\x01auth=Bearer t\x01\x01") + b"\r\n"),
      ("s", b"235 ok\r\n")], "OAUTHBEARER", "ben@example.org", {}),
    ([("c", b"AUTH SCRAM-SHA-256 " + b64(b"n,,n=cid,r=rOprNGfwEbeRWgbNEkqO") + b"\r\n"),
      ("s", b"334 " + b64(b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
       + b"\r\n"), ("c", b64(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF,p=dHzb") + b"\r\n"),
      ("s", b"235 ok\r\n")], "SCRAM-SHA-256", "cid", {}),
    ([("c", b"AUTH DIGEST-MD5\r\n"), ("s", b"334 " + b64(b'realm="x.org",nonce="abc",qop="auth"') + b"\r\n"),
      ("c", b64(b'username="dan",realm="x.org",nonce="abc",response=6084c6db3fede7352c551284490fd0fc') + b"\r\n"),
      ("s", b"334 " + b64(b"rspauth=ea40f60335c427b5527b84dbabcdfffd") + b"\r\n"), ("c", b"\r\n"),
      ("s", b"235 ok\r\n")], "DIGEST-MD5", "dan", {"domain": "x.org"}),
    ([("c", b"AUTH LOGIN " + b64(b"eve") + b"\r\n"), ("s", b"334 UGFzc3dvcmQ6\r\n"), ("c", b64(b"pw") + b"\r\n"),
      ("s", b"535 5.7.8 no\r\n")], "LOGIN", "eve", {}),
])
def test_sasl_mechanisms(exchange: list[tuple[str, bytes]], mechanism: str, user: str, extra: dict[str, str]) -> None:
    (attempt,) = _auth_session(*exchange)
    assert (attempt.mechanism, attempt.username) == (mechanism, user)
    for key, value in extra.items():
        assert getattr(attempt, key) == value
    assert attempt.success is (mechanism != "LOGIN")


def test_ntlm_user_domain_host_from_corpus() -> None:
    s = report(corpus("arkime/ntlm_synthetic"))["sessions"][0]
    (attempt,) = s["auth"]
    assert attempt["mechanism"] == "NTLM"
    assert attempt["username"] and attempt["domain"] and attempt["host"]


def test_cram_md5_hashcat_line_only_with_secrets(tmp_path: Path) -> None:
    challenge = base64.b64encode(b"<1896.697170952@postoffice.example.net>")
    cap = Capture()
    t = Tcp(cap).handshake()
    t.s(b"220 hi\r\n").c(b"EHLO a\r\n").s(b"250 AUTH CRAM-MD5\r\n").c(b"AUTH CRAM-MD5\r\n")
    t.s(b"334 " + challenge + b"\r\n")
    t.c(base64.b64encode(b"tim b913a602c7eda7a495b4e6e7334d3890") + b"\r\n").s(b"235 ok\r\n").fin()
    path = cap.write(tmp_path / "x.pcap")
    plain = report(path)["sessions"][0]["auth"][0]
    assert "hashcat" not in plain and "password" not in plain
    secret = report(path, args=("--show-secrets",))["sessions"][0]["auth"][0]
    assert secret["hashcat"] == "$cram_md5$" + challenge.decode() + "$" + \
        base64.b64encode(b"tim b913a602c7eda7a495b4e6e7334d3890").decode()


def test_smtputf8_address_and_xclient(tmp_path: Path) -> None:
    events, record = run(smtp_items(
        ("s", b"220 hi\r\n"), ("c", b"EHLO a\r\n"), ("s", b"250-a\r\n250-SMTPUTF8\r\n250 XCLIENT NAME ADDR\r\n"),
        ("c", b"XCLIENT NAME=client.example ADDR=192.0.2.7\r\n"), ("s", b"220 ready\r\n"),
        ("c", "MAIL FROM:<jürgen@bücher.example> SMTPUTF8 BODY=8BITMIME\r\n".encode()), ("s", b"250 ok\r\n"),
        ("c", "RCPT TO:<ελένη@παράδειγμα.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x@y\r\n".encode()),
        ("s", b"250 ok\r\n")))
    tx = record["transactions"][0]
    assert tx["mail_from"] == "jürgen@bücher.example"
    assert tx["params"] == {"SMTPUTF8": "", "BODY": "8BITMIME"}
    assert tx["rcpt_to"] == ["ελένη@παράδειγμα.example"]
    verbs = [getattr(e, "verb", None) for e in events if type(e).__name__ == "Command"]
    assert verbs == ["EHLO", "XCLIENT", "MAIL", "RCPT"]
    assert not [e for e in events if getattr(e, "kind", "") == "unknown-command"]


def test_sendmail_accepting_crlf_dot_lf_in_a_real_capture() -> None:
    """Arkime's smtp-subject-windows: the client ends with <CR><LF>.<LF><LF> and closes; sendmail 8.13.8
    answers 250 to the look-alike (CVE-2023-51765) and 500 to the empty line after it."""
    (s,) = report(corpus("arkime/smtp-subject-windows"))["sessions"]
    kinds = [(a["kind"], a["frame"]) for a in s["anomalies"]]
    assert ("smtp-smuggling", 4) in kinds and ("smuggling-accepted", 18) in kinds
    assert "unsolicited-reply" not in [k for k, _ in kinds]
    assert s["smtp"]["smuggling_patterns"] == ["<CR><LF>.<LF>"]


@pytest.mark.parametrize(("body", "names"), [
    (b"x\n.\n.\r.\nyyyy", ["<LF>.<LF>", "<LF>.<CR>", "<CR>.<LF>"]),  # overlapping look-alikes, each dot once
    (b"a\r.\n.\nb", ["<CR>.<LF>", "<LF>.<LF>"]),
    (b"end.\r\nline\r\n..stuffed\r\n", []),  # a sentence's full stop and a stuffed dot are no look-alikes
])
def test_lookalikes_are_named_per_dot_whatever_the_segment_boundaries(body: bytes, names: list[str]) -> None:
    from mailtrace.protocols.base import DotBody

    data = body + b"\r\n.\r\n"
    for cuts in [(), *[(i,) for i in range(1, len(data))], tuple(range(1, len(data)))]:
        b = DotBody()
        pieces = [data[i:j] for i, j in zip((0, *cuts), (*cuts, len(data)), strict=True)]
        for piece in pieces:
            _out, rest = b.feed(piece)
            if rest is not None:
                break
        assert b.smuggling == names, cuts


def test_is_text_counts_the_control_bytes_like_the_rfc_says() -> None:
    """_is_text counts controls with bytes.translate: the same verdict as a byte-by-byte count."""
    from mailtrace.protocols.smtp import _is_text

    def by_hand(raw: bytes) -> bool:
        head = raw[:256]
        bad = sum(1 for b in head if (b < 0x20 and b != 0x09) or b == 0x7F)
        return bad == 0 or (bad * 10 < len(head) and b"\x00" not in head)

    for b in range(256):
        for raw in (bytes([b]), bytes([b]) + b"a" * 9, bytes([b]) + b"a" * 10, b"a" * 300 + bytes([b]),
                    b"MAIL FROM:<a@b>" + bytes([b]) * 2):
            assert _is_text(raw) == by_hand(raw), raw
    assert _is_text(b"") and _is_text(b"EHLO x\t") and not _is_text(b"\x00EHLO")
