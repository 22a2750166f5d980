"""imap-session.pcap (Dovecot, Python imaplib): the report says what the clients did (its facts.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mt_popimap import analyze

from mailtrace.render.json import session_json
from mailtrace.session import Session


@pytest.fixture(scope="module")
def facts(captures: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((captures / "imap-session.facts.json").read_text())
    return data


@pytest.fixture(scope="module")
def sessions(captures: Path) -> dict[int, Session]:
    return {s.client.port: s for s in analyze(captures / "imap-session.pcap")}


@pytest.fixture(scope="module")
def reports(sessions: dict[int, Session]) -> dict[int, dict[str, Any]]:
    return {port: session_json(s) for port, s in sessions.items()}


def fact(facts: dict[str, Any], port: int) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in facts["sessions"] if s["client"]["port"] == port)
    return found


def test_every_session_found_and_clean(facts: dict[str, Any], reports: dict[int, dict[str, Any]]) -> None:
    assert sorted(reports) == sorted(s["client"]["port"] for s in facts["sessions"])
    assert all(r["protocol"] == "imap" and r["tls"] == "none" for r in reports.values())
    assert {p: r["anomalies"] for p, r in reports.items()} == {p: [] for p in reports}


def test_login_session(facts: dict[str, Any], reports: dict[int, dict[str, Any]]) -> None:
    f, r = fact(facts, 35268), reports[35268]
    assert r["user"] == f["username"]
    assert [(a["mechanism"], a["username"], a["success"]) for a in r["auth"]] == [("LOGIN", "carol", True)]
    assert next(c for c in r["commands"] if c["verb"] == "LOGIN")["argument"] == "carol [password]"
    block = r["imap"]
    assert block["folders"] == ["Drafts", "Sent", "Trash", "INBOX"]
    (inbox,) = block["selected"]
    assert (inbox["name"], inbox["uidvalidity"], inbox["read_only"]) == ("INBOX", "1795699362", False)
    select = next(e for e in block["timeline"] if e["event"] == "select")
    assert (select["exists"], select["recent"], select["uidnext"]) == (3, 3, 4)  # "SELECT INBOX ... 3"
    assert [s["results"] for s in block["searches"]] == [["1", "2", "3"], ["1", "2", "3"]]
    assert block["status"] == [{"frame": 116, "mailbox": "Sent", "items": {"MESSAGES": 0, "UNSEEN": 0}}]
    assert [(s["state"], s["trigger"]) for s in block["states"]] == [
        ("not authenticated", "greeting OK"),
        ("authenticated", "LOGIN OK"),
        ("selected", "SELECT OK"),
        ("logout", "BYE"),
    ]


def test_every_command_paired_with_its_completion(reports: dict[int, dict[str, Any]]) -> None:
    r = reports[35268]
    tagged = {x["tag"]: x for x in r["replies"] if "tag" in x}
    for command in r["commands"]:
        if command["verb"] == "DONE":
            continue
        reply = tagged[command["tag"]]
        assert reply["answers"] == command["verb"] and reply["status"] == "OK"
        # IDLE's completion comes after the client's DONE: that wait is idling, not server latency
        assert reply["latency"] is None if command["verb"] == "IDLE" else reply["latency"] >= 0
    idle_ack = next(x for x in r["replies"] if x["status"] == "+" and x["answers"] == "IDLE")
    assert 0 <= idle_ack["latency"] < 0.01  # the server's "+ idling" came at once


def test_envelopes_and_bodystructure(facts: dict[str, Any], reports: dict[int, dict[str, Any]]) -> None:
    fetches = reports[35268]["imap"]["fetches"]
    envelopes = {e["msg"]: e["envelope"] for e in fetches if "envelope" in e}
    stored = facts["mailbox_before_capture"]
    assert [envelopes[i + 1]["subject"] for i in range(3)] == [m["subject"] for m in stored]
    assert [envelopes[i + 1]["from"] for i in range(3)] == [[m["from"]] for m in stored]
    assert [envelopes[i + 1]["message_id"] for i in range(3)] == [m["message_id"] for m in stored]
    parts = next(e["parts"] for e in fetches if "parts" in e)
    attachments = fact(facts, 35268)["fetched_body"]["attachments"]
    assert [(p["part"], p["type"]) for p in parts] == [
        ("", "multipart/mixed"),
        ("1", "text/plain"),
        ("2", "image/png"),
        ("3", "text/plain"),
    ]
    assert [p.get("filename") for p in parts[2:]] == [a["filename"] for a in attachments]
    assert [p.get("disposition") for p in parts[2:]] == ["attachment", "attachment"]


def test_fetched_and_appended_messages(facts: dict[str, Any], reports: dict[int, dict[str, Any]]) -> None:
    f, r = fact(facts, 35268), reports[35268]
    fetched = [m for m in r["messages"] if m["origin"] == "imap-fetch"]
    body, header = fetched
    assert (body["subject"], body["bytes"], body["complete"]) == (
        f["fetched_body"]["subject"],
        f["fetched_body"]["octets"],
        True,
    )
    assert body["carrier"]["msg"] == f["fetched_body"]["message"] and body["carrier"]["section"] == "BODY[]"
    assert header["complete"] is False and header["subject"] == "Welcome to remote.example"
    assert header["carrier"]["section"] == "BODY[HEADER.FIELDS (FROM SUBJECT DATE)]"
    appended = [m for m in r["messages"] if m["origin"] == "imap-append"]
    assert [(m["subject"], m["message_id"], m["bytes"], m["sha256"]) for m in appended] == [
        (a["subject"], a["message_id"], a["size"], a["sha256_as_sent"]) for a in f["appended"]
    ]
    block = r["imap"]
    assert (block["fetched_messages"], block["appended_messages"]) == (2, 1)
    assert block["appends"][0]["appenduid"] == "1795699362 4"


def test_store_idle_expunge(facts: dict[str, Any], reports: dict[int, dict[str, Any]]) -> None:
    f, block = fact(facts, 35268), reports[35268]["imap"]
    store = [e for e in block["timeline"] if e["event"] == "store"]
    assert (store[0]["set"], store[0]["flags"]) == (
        str(f["stored_flags"]["message"]),
        [f["stored_flags"]["flags"]],
    )
    assert ["* " + u for u in block["idle_updates"]] == f["idle_updates"][:2]
    assert block["expunged"] == [int(n) for n in f["expunged"]]
    events = [e["event"] for e in block["timeline"]]
    assert events[events.index("idle") : events.index("idle-done") + 1] == [
        "idle",
        "exists",
        "recent",
        "idle-done",
    ]
    woken = [e for e in block["timeline"] if e.get("idle")]
    assert [(e["event"], e["count"]) for e in woken] == [("exists", 5), ("recent", 5)]
    assert block["selected"][0]["exists"] == 4  # 5 after the IDLE wake-up, one expunged


def test_authenticate_plain_and_second_append(facts: dict[str, Any], reports: dict[int, dict[str, Any]]) -> None:
    f, r = fact(facts, 35272), reports[35272]
    assert [(a["mechanism"], a["username"], a["success"]) for a in r["auth"]] == [("PLAIN", "carol", True)]
    (message,) = r["messages"]
    (appended,) = f["appended"]
    assert (message["origin"], message["subject"], message["sha256"]) == (
        "imap-append",
        appended["subject"],
        appended["sha256_as_sent"],
    )
    assert message["carrier"]["mailbox"] == "INBOX"
    continuation = next(x for x in r["replies"] if x["status"] == "+" and x["frame"] > 90)
    assert continuation["text"] == "OK" and continuation["answers"] is None  # the literal's go-ahead
    append = next(x for x in r["replies"] if x.get("tag") == "OMPE2")
    assert append["answers"] == "APPEND" and append["status"] == "OK"


def test_failed_login(facts: dict[str, Any], reports: dict[int, dict[str, Any]]) -> None:
    f, r = fact(facts, 40402), reports[40402]
    (auth,) = r["auth"]
    assert (auth["mechanism"], auth["username"], auth["success"]) == ("LOGIN", "carol", False)
    assert auth["reason"] == f["error"]
    assert r["imap"]["state"] == "logout"


def test_phases(reports: dict[int, dict[str, Any]]) -> None:
    assert [p["name"] for p in reports[35268]["phases"]] == [
        "setup",
        "greeting",
        "negotiation",
        "auth",
        "transfer",
        "teardown",
    ]


def test_attachment_hashes(facts: dict[str, Any], reports: dict[int, dict[str, Any]]) -> None:
    """The FETCH BODY[] of message 2 carries both attachments; their decoded bytes hash as the client saw."""
    fetched = fact(facts, 35268)["fetched_body"]
    body = next(m for m in reports[35268]["messages"] if m["origin"] == "imap-fetch")
    assert (body["subject"], body["bytes"], body["complete"]) == (fetched["subject"], fetched["octets"], True)
    expected = [
        (a["filename"], a["content_type"], a["transfer_encoding"], a["size"], a["sha256"])
        for a in fetched["attachments"]
    ]
    assert [(a["filename"], a["content_type"], a["encoding"], a["bytes"], a["sha256"])
            for a in body["attachments"]] == expected
    # the facts themselves, so a regenerated sample cannot make this pass vacuously
    assert expected == [
        ("chart.png", "image/png", "base64", 6718,
         "ef6fd627d96174299987caa2e1ede4f22427f2f1ad6f4248b09ccf2faf215457"),
        ("Übersicht.txt", "text/plain", "base64", 73,
         "72c3d22df390eadca2b2af292b3bbf95e70092dfeb3230e8febf473c091ee7c4"),
    ]


def test_mixed_capture_idle_keepalive_is_not_a_wake_up(captures: Path) -> None:
    """mixed-all.facts.json lists everything the client read during IDLE; a keepalive is not a wake-up."""
    facts = json.loads((captures / "mixed-all.facts.json").read_text())
    expected = next(s for s in facts["sessions"] if s["protocol"] == "imap")
    session = next(s for s in analyze(captures / "mixed-all.pcap") if s.protocol == "imap")
    block = session.record["imap"]
    woken = [u for u in expected["idle_updates"] if u.split()[1].isdigit()]
    assert ["* " + u for u in block["idle_updates"]] == woken == ["* 2 EXISTS", "* 2 RECENT"]
    assert [e["text"] for e in block["timeline"] if e["event"] == "idle-status"] == ["OK Still here"]
    assert [m.summary.subject for m in session.messages] == ["Grüße aus Köln – Quartalsbericht Q3 📊"]
    assert not session.anomalies
