"""Session filters and statuses: the same selection for every view and for the JSON report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from term_pcap import SMTP_OK, write_pcap
from term_render import analyze, render

from mailtrace.cli import main
from mailtrace.filters import SessionFilter, parse_host, parse_ids, parse_time, session_status
from mailtrace.session import Session
from tests.support import run_cli, sample

MIXED = "mixed-all.pcap"


@pytest.fixture(scope="module")
def mixed(captures: Path) -> list[Session]:
    return analyze(captures / MIXED)[0]


def ids(sessions: list[Session], flt: SessionFilter) -> list[int]:
    return [s.id for s in sessions if flt.matches(s)]


# --------------------------------------------------------------------------- parsing


def test_parse_time() -> None:
    assert parse_time("1795699344.5") == 1795699344.5
    assert parse_time("2026-11-26T13:22:24Z") == 1795699344.0
    assert parse_time("2026-11-26 13:22:24") == 1795699344.0  # no zone: UTC
    assert parse_time("2026-11-26T14:22:24+01:00") == 1795699344.0
    assert parse_time("2026-11-26") == 1795651200.0
    with pytest.raises(ValueError, match="neither epoch seconds nor an ISO date"):
        parse_time("yesterday")


def test_parse_ids_and_hosts() -> None:
    assert parse_ids(["3", "1,4", "7-9"]) == frozenset({1, 3, 4, 7, 8, 9})
    for bad in ("x", "5-", "9-7"):
        with pytest.raises(ValueError):
            parse_ids([bad])
    assert str(parse_host("10.0.0.0/8")) == "10.0.0.0/8"
    assert str(parse_host("[2001:db8::1]")) == "2001:db8::1/128"
    with pytest.raises(ValueError, match="not an IP address"):
        parse_host("mail.example.org")


# --------------------------------------------------------------------------- criteria


def test_each_criterion(mixed: list[Session]) -> None:
    assert [s.protocol for s in mixed] == ["imap", "smtp", "smtp", "pop3", "smtp", "smtp"]
    assert ids(mixed, SessionFilter()) == [1, 2, 3, 4, 5, 6]
    assert ids(mixed, SessionFilter(ids=frozenset({2, 5}))) == [2, 5]
    assert ids(mixed, SessionFilter(protocols=frozenset({"imap", "pop3"}))) == [1, 4]
    assert ids(mixed, SessionFilter(ports=frozenset({587}))) == [5]
    assert ids(mixed, SessionFilter(ports=frozenset({44244}))) == [3]  # client ports count too
    assert ids(mixed, SessionFilter(hosts=(parse_host("127.0.0.25"),))) == [2, 3, 6]
    assert ids(mixed, SessionFilter(hosts=(parse_host("127.0.0.8/29"),))) == [1, 2, 4, 5, 6]
    assert ids(mixed, SessionFilter(users=("BOB",))) == [4, 5]
    assert ids(mixed, SessionFilter(users=("c*",))) == [1]
    assert ids(mixed, SessionFilter(statuses=frozenset({"failed"}))) == [6]


def test_since_after_until_is_refused_not_an_empty_run() -> None:
    """Swapped times hid every session and the run looked like a capture without mail."""
    with pytest.raises(ValueError, match="swap the two times"):
        SessionFilter(since=1_795_699_345.0, until=1_795_699_344.0)
    assert SessionFilter(since=1_795_699_344.0, until=1_795_699_344.0).active  # one instant is fine


def test_since_and_until_keep_sessions_that_overlap(mixed: list[Session]) -> None:
    pop3 = mixed[3]
    assert ids(mixed, SessionFilter(since=pop3.end)) == [1, 4, 5, 6]  # IMAP runs on, POP3 ends right then
    assert ids(mixed, SessionFilter(until=pop3.start)) == [1, 2, 3, 4]
    assert ids(mixed, SessionFilter(since=pop3.start, until=pop3.start)) == [1, 4]


def test_criteria_combine(mixed: list[Session]) -> None:
    flt = SessionFilter(protocols=frozenset({"smtp"}), hosts=(parse_host("127.0.0.26"),), users=("bob",))
    assert ids(mixed, flt) == [5]
    assert flt.active and not SessionFilter().active
    assert flt.describe() == {"protocols": ["smtp"], "hosts": ["127.0.0.26/32"], "users": ["bob"]}


def test_filter_counts_what_it_shows(mixed: list[Session]) -> None:
    flt = SessionFilter(protocols=frozenset({"smtp"}))
    assert [flt(s) for s in mixed] == [False, True, True, False, True, True]
    assert flt.seen == {"shown": 4, "hidden": 2}


# --------------------------------------------------------------------------- statuses


def test_statuses_of_real_sessions(captures: Path) -> None:
    statuses = [session_status(s) for s in analyze(captures / "smtp-errors.pcap")[0]]
    assert statuses == ["failed", "failed", "reset"]  # no mail accepted; 421 ending; RST inside DATA
    pop3 = [session_status(s) for s in analyze(captures / "pop3-session.pcap")[0]]
    assert pop3 == ["completed", "completed", "completed", "failed"]  # the last one's password is wrong
    imap = [session_status(s) for s in analyze(captures / "imap-session.pcap")[0]]
    assert imap == ["completed", "completed", "failed"]


def test_reset_after_an_orderly_end_is_completed(captures: Path) -> None:
    # STARTTLS sessions end with the client's RST: decrypted, QUIT/221 shows it was orderly;
    # without the keys nothing tells, so the RST is what the capture shows.
    decrypted = analyze(captures / "smtp-starttls.pcap", keylog=captures / "smtp-starttls.keylog")[0]
    assert session_status(decrypted[0]) == "completed"
    opaque = analyze(captures / "smtp-starttls.pcap")[0]
    assert session_status(opaque[0]) == "reset"


def test_partial_sessions(tmp_path: Path) -> None:
    cases = {
        "mid": write_pcap(tmp_path / "mid.pcap", SMTP_OK[3:], handshake=False),
        "open": write_pcap(tmp_path / "open.pcap", SMTP_OK[:5], close=False),
        "gap": write_pcap(tmp_path / "gap.pcap", [*SMTP_OK[:3], ("lost", "C", 20), *SMTP_OK[3:]]),
    }
    for name, path in cases.items():
        sessions = analyze(path)[0]
        assert [session_status(s) for s in sessions] == ["partial"], name
    whole = analyze(write_pcap(tmp_path / "ok.pcap", SMTP_OK))[0]
    assert [session_status(s) for s in whole] == ["completed"]


# --------------------------------------------------------------------------- every view, and JSON


def test_views_apply_the_filter(captures: Path) -> None:
    flt = SessionFilter(protocols=frozenset({"pop3"}))
    table = render("table", captures / MIXED, session_filter=flt)
    assert table.count("Session ") == 1 and "Session 4 · POP3" in table
    assert "6; 1 shown (pop3 1), 5 hidden by the filter" in table
    nothing = render("list", captures / MIXED, session_filter=SessionFilter(users=("nobody",)))
    assert "no session matches the filter" in nothing


def test_json_and_jsonl_apply_the_filter(captures: Path) -> None:
    runner = CliRunner()
    args = ["analyze", str(captures / MIXED), "-p", "smtp", "--port", "25", "--status", "completed"]
    result = runner.invoke(main, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert [s["id"] for s in report["sessions"]] == [2, 3]
    assert report["filter"] == {"protocols": ["smtp"], "ports": [25], "statuses": ["completed"], "shown": 2}
    assert report["capture"]["sessions"] == 6
    lines = runner.invoke(main, [*args, "--format", "jsonl"]).output.splitlines()
    assert [json.loads(line)["id"] for line in lines] == [2, 3]


def test_port_option_keeps_its_protocol_form(captures: Path) -> None:
    result = CliRunner().invoke(
        main, ["analyze", str(captures / MIXED), "--port", "2526=smtp", "--port", "110", "--list"]
    )
    assert result.exit_code == 0, result.output
    assert " pop3 " in result.output and " smtp " not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "http"], "expected a port number"),
        (["--since", "soon"], "neither epoch seconds nor an ISO date"),
        (["--host", "mx"], "not an IP address"),
        (["--session", "2-1"], "range goes backwards"),
        (["--since", "2026-11-27", "--until", "2026-11-26T23:59:59"], "is later than --until"),
        (["--list", "--follow"], "choose one"),
        (["--list", "--format", "json"], "text views"),
    ],
)
def test_bad_options_end_with_one_line(captures: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["analyze", str(captures / MIXED), *args])
    assert result.exit_code == 2
    assert message in result.output


@pytest.mark.parametrize("args", [("--session", ""), ("--session", "0"), ("--session", "1,,2"), ("--since", ""),
                                  ("--until", "")])
def test_empty_or_impossible_filter_values_are_errors_not_no_filter(args: tuple[str, str]) -> None:
    """``--session ''`` extracted every message and ``--since ''`` was ignored: a filter value that
    selects nothing or everything by accident is a one-line error."""
    result = run_cli("analyze", "--list", *args, str(sample("pop3-session.pcap")))
    assert result.exit_code == 2 and result.stderr.startswith("mailtrace: ") and result.stderr.count("\n") == 1
    if args[0] == "--session":
        extract = run_cli("extract", *args, str(sample("pop3-session.pcap")), "-o", "/nonexistent/never-written")
        assert extract.exit_code == 2 and "session id" in extract.stderr
