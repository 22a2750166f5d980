"""pop3-session.pcap (Dovecot, real clients): the report says what the clients did (its facts.json)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from mt_popimap import analyze, feed, messages, stream_items

from mailtrace.protocols.pop3 import Pop3
from mailtrace.render.json import session_json
from mailtrace.session import Session


@pytest.fixture(scope="module")
def facts(captures: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((captures / "pop3-session.facts.json").read_text())
    return data


@pytest.fixture(scope="module")
def sessions(captures: Path) -> dict[int, Session]:
    return {s.client.port: s for s in analyze(captures / "pop3-session.pcap")}


@pytest.fixture(scope="module")
def reports(sessions: dict[int, Session]) -> dict[int, dict[str, Any]]:
    return {port: session_json(s) for port, s in sessions.items()}


def fact(facts: dict[str, Any], port: int) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in facts["sessions"] if s["client"]["port"] == port)
    return found


def test_every_session_found(facts: dict[str, Any], reports: dict[int, dict[str, Any]]) -> None:
    assert sorted(reports) == sorted(s["client"]["port"] for s in facts["sessions"])
    assert all(r["protocol"] == "pop3" and r["tls"] == "none" for r in reports.values())


def test_user_pass_session(facts: dict[str, Any], reports: dict[int, dict[str, Any]]) -> None:
    f, r = fact(facts, 59460), reports[59460]
    block = r["pop3"]
    assert r["user"] == f["username"] == "bob"
    assert [(a["mechanism"], a["username"], a["success"]) for a in r["auth"]] == [("USER", "bob", True)]
    assert "password" not in r["auth"][0]
    assert block["capabilities"] == [*f["capa"][:-1], "SASL PLAIN LOGIN CRAM-MD5"]
    assert block["mailbox"] == f["stat"]
    assert [f"{e['msg']} {e['octets']}" for e in block["list"]] == f["list"]
    assert [f"{e['msg']} {e['uid']}" for e in block["uidl"]] == f["uidl"]
    assert block["retrieved"] == [m["number"] for m in f["retrieved"]]
    assert block["top"] == [f["top"]["message"]]
    assert block["deleted"] == f["deleted"]
    assert block["undeleted"] == f["undeleted_by_rset"]
    assert block["state"] == "UPDATE"
    assert [(s["state"], s["trigger"]) for s in block["states"]] == [
        ("AUTHORIZATION", "greeting"),
        ("TRANSACTION", "PASS +OK"),
        ("UPDATE", "QUIT +OK"),
    ]


def test_retrieved_messages_unstuffed(facts: dict[str, Any], reports: dict[int, dict[str, Any]]) -> None:
    f, r = fact(facts, 59460), reports[59460]
    retr = [m for m in r["messages"] if m["origin"] == "pop3-retr"]
    assert [(m["subject"], m["message_id"], m["bytes"], m["complete"]) for m in retr] == [
        (m["subject"], m["message_id"], m["octets_unstuffed"], True) for m in f["retrieved"]
    ]
    assert [m["carrier"]["stuffed_lines"] for m in retr] == [m["lines_starting_with_dot"] for m in f["retrieved"]]
    assert [m["carrier"]["octets_announced"] for m in retr] == [m["octets_unstuffed"] for m in f["retrieved"]]
    top = [m for m in r["messages"] if m["origin"] == "pop3-top"]
    assert len(top) == 1 and top[0]["complete"] is False and top[0]["carrier"]["msg"] == f["top"]["message"]
    lines = {(e["command"], e["msg"]): e["lines"] for e in r["pop3"]["retrievals"]}
    assert lines[("TOP", 2)] == f["top"]["returned_lines"]
    assert lines[("RETR", 1)] == 28 and lines[("RETR", 2)] == 110  # "<28 lines>" in the facts' transcript


def test_retrieved_bytes_are_the_stored_message(
    captures: Path, sessions: dict[int, Session], facts: dict[str, Any]
) -> None:
    """The unstuffed RETR body is the mailbox copy: the message as sent plus Dovecot's trace headers."""
    events, _ = feed(Pop3, stream_items(sessions[59460]))
    bodies = [data for end, data in messages(events) if end.origin == "pop3-retr"]
    assert [len(b) for b in bodies] == [956, 7411]
    assert not any(b"\r\n..\r\n" in b or b.startswith(b"..") for b in bodies)
    dotted = [line for line in bodies[0].split(b"\r\n") if line.startswith(b".")]
    assert len(dotted) == fact(facts, 59460)["retrieved"][0]["lines_starting_with_dot"]
    assert hashlib.sha256(bodies[0]).hexdigest() == next(
        m["sha256"] for m in session_json(sessions[59460])["messages"] if m["origin"] == "pop3-retr"
    )


def test_apop_session(facts: dict[str, Any], reports: dict[int, dict[str, Any]]) -> None:
    f, r = fact(facts, 59466), reports[59466]
    (auth,) = r["auth"]
    assert (auth["mechanism"], auth["username"], auth["success"]) == ("APOP", "bob", True)
    assert auth["timestamp"] == f["apop_timestamp"] == r["pop3"]["apop_timestamp"]
    assert "hashcat" not in auth and "password" not in auth
    assert r["pop3"]["mailbox"] == f["stat"]
    assert [f"{e['msg']} {e['octets']}" for e in r["pop3"]["list"]] == f["list"]
    command = next(c for c in r["commands"] if c["verb"] == "APOP")
    assert command["argument"] == "bob [digest]"


def test_apop_secrets_only_when_asked(captures: Path, facts: dict[str, Any]) -> None:
    f = fact(facts, 59466)
    report = next(
        session_json(s, show_secrets=True)
        for s in analyze(captures / "pop3-session.pcap", show_secrets=True)
        if s.client.port == 59466
    )
    (auth,) = report["auth"]
    assert auth["password"] == f["apop_digest"]
    assert auth["hashcat"] == f"{f['apop_digest']}:{f['apop_timestamp']}"
    # hashcat mode 20 is md5($salt.$pass): the digest must be md5(timestamp + password)
    assert hashlib.md5((f["apop_timestamp"] + f["password"]).encode()).hexdigest() == f["apop_digest"]


def test_auth_plain_session(
    facts: dict[str, Any], reports: dict[int, dict[str, Any]], sessions: dict[int, Session]
) -> None:
    f, r = fact(facts, 40110), reports[40110]
    assert [(a["mechanism"], a["username"], a["success"]) for a in r["auth"]] == [("PLAIN", "bob", True)]
    assert [m["subject"] for m in r["messages"]] == [m["subject"] for m in f["retrieved"]]
    assert r["pop3"]["retrieved"] == [1]
    assert [c["verb"] for c in r["commands"]] == ["CAPA", "AUTH", "RETR", "QUIT"]  # SASL lines are not commands
    sasl = [(c.frame, c.argument) for c in sessions[40110].commands if not c.verb]
    assert sasl == [(95, "[SASL response]")]  # but they are rows of the table, secret hidden


def test_failed_login(facts: dict[str, Any], reports: dict[int, dict[str, Any]]) -> None:
    f, r = fact(facts, 57694), reports[57694]
    assert f["login_failed"]
    (auth,) = r["auth"]
    assert (auth["mechanism"], auth["username"], auth["success"]) == ("USER", "bob", False)
    assert "-ERR " + auth["reason"] == f["error"]
    assert r["pop3"]["state"] == "AUTHORIZATION"
    assert r["pop3"]["deleted"] == []
    assert [p["name"] for p in r["phases"]] == ["setup", "greeting", "auth", "teardown"]


def test_phases_follow_the_states(reports: dict[int, dict[str, Any]]) -> None:
    names = [p["name"] for p in reports[59460]["phases"]]
    assert names == ["setup", "greeting", "negotiation", "auth", "transfer", "teardown"]
    assert reports[59460]["pop3"]["states"][-1]["state"] == "UPDATE"


def test_no_anomalies_on_a_clean_capture(reports: dict[int, dict[str, Any]]) -> None:
    assert {port: r["anomalies"] for port, r in reports.items()} == {port: [] for port in reports}
