"""Context rows on the real lab captures: every DNS query and ident probe goes to the right session.

The expectation comes from the lab, not from mailtrace: ``dns_queries_logged_by_dnsmasq`` lists every
query the DNS server saw, in order, and the lab README (samples-src/README.md) and the facts files
say who made each one and why. The tests first check that the capture's queries are dnsmasq's log
one for one, then that each went to the session the lab story gives it — or to none (the HTTP
clients' lookups of www.lab.example).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from support import facts, report

SEED = "smtp-relay-seed-story"
MIXED = "mixed-all"

UA = "127.0.0.10>127.0.0.25:25"
RELAY = "127.0.0.25>127.0.0.26:25"

SEED_EXPECTED = [
    # (session, purpose) per query, in dnsmasq's order; README: "The MUA ... resolves mail.local.example"
    (UA, "server-address"), (UA, "server-address"),
    # "Sendmail looks up the client's PTR and A"
    (UA, "client-ptr"), (UA, "client-name"),
    # "MAIL FROM and sendmail's AAAA/A/MX lookups of local.example"
    (UA, "sender-domain"), (UA, "sender-domain"), (UA, "sender-domain"),
    # "RCPT TO and the AAAA/A/MX lookups of remote.example"
    (UA, "recipient-domain"), (UA, "recipient-domain"), (UA, "recipient-domain"),
    # during RCPT sendmail looks up the client's name once more (AAAA, A client.local.example)
    (UA, "client-name"), (UA, "client-name"),
    # "After that sendmail looks up MX remote.example, then AAAA/A of mx.remote.example, connects ..."
    (RELAY, "mx"), (RELAY, "mx-host"), (RELAY, "mx-host"), (RELAY, "mx-host"), (RELAY, "mx-host"),
    # "... relays the mail to Postfix, which looks up the PTR/A of 127.0.0.25 and MX local.example"
    (RELAY, "client-ptr"), (RELAY, "client-name"), (RELAY, "sender-domain"),
]

SNAIL, SNAIL_RELAY = "127.0.0.10>127.0.0.25:25#1", "127.0.0.25>127.0.0.26:25#1"
IMAP, POP3, SUBMIT = "127.0.0.11>127.0.0.26:143#1", "127.0.0.11>127.0.0.26:110#1", "127.0.0.11>127.0.0.26:587#1"
VRFY = "127.0.0.10>127.0.0.25:25#2"
NONE = None

MIXED_EXPECTED = [
    IMAP, IMAP,  # carol's imaplib resolves mx.remote.example before connecting
    SNAIL, SNAIL,  # s-nail resolves mail.local.example
    SNAIL, SNAIL,  # sendmail: PTR and A of the client
    SNAIL, SNAIL, SNAIL,  # MAIL FROM: local.example
    SNAIL, SNAIL, SNAIL,  # RCPT TO: remote.example
    SNAIL, SNAIL,  # the client's name again during RCPT
    SNAIL_RELAY, SNAIL_RELAY, SNAIL_RELAY, SNAIL_RELAY, SNAIL_RELAY,  # MX remote.example, AAAA×3/A mx.remote.example
    SNAIL_RELAY, SNAIL_RELAY, SNAIL_RELAY,  # Postfix: PTR/A of 127.0.0.25, MX local.example
    POP3, POP3,  # bob's poplib resolves mx.remote.example
    NONE, NONE,  # client.local.example resolves www.lab.example for HTTP
    SUBMIT, SUBMIT,  # bob's smtplib resolves mx.remote.example before the submission on 587
    SUBMIT, SUBMIT,  # Postfix: PTR/A of 127.0.0.11 before its greeting
    NONE, NONE, NONE, NONE,  # www.lab.example, twice more
    VRFY, VRFY,  # smtplib resolves mail.local.example
    VRFY, VRFY,  # sendmail: PTR and A of the client
    NONE, NONE,  # bob-pc resolves www.lab.example
    VRFY, VRFY, VRFY,  # EXPN staff: sendmail expands the alias to bob@remote.example and looks up remote.example
    NONE, NONE, NONE, NONE,  # bob-pc: www.lab.example twice
    VRFY,  # MAIL FROM:<x@no-such-domain.example>: AAAA → NXDOMAIN, then 553
]


def _labels(data: dict[str, object]) -> dict[int, str]:
    """Session id → ``client>server:port#n`` (n counts sessions with the same endpoints, in start order)."""
    seen: dict[str, int] = {}
    out: dict[int, str] = {}
    for s in data["sessions"]:  # type: ignore[attr-defined]
        base = f"{s['client']['ip']}>{s['server']['ip']}:{s['server']['port']}"
        seen[base] = seen.get(base, 0) + 1
        out[s["id"]] = f"{base}#{seen[base]}"
    return out


def _queries(name: str, captures: Path) -> list[tuple[int, str, str, str]]:
    """(frame, asker, qtype, qname) of every DNS query in tshark's reference summary."""
    pattern = re.compile(r"^\s*(\d+)\s+[\d.]+\s+(\S+) → \S+\s+DNS \d+ Standard query 0x[0-9a-f]+ (\S+) (\S+)$")
    out = []
    for line in (captures / f"{name}.tshark.txt").read_text().splitlines():
        match = pattern.match(line)
        if match:
            out.append((int(match.group(1)), match.group(2), match.group(3), match.group(4)))
    return out


def _attribution(name: str, captures: Path) -> tuple[list[tuple[str | None, str | None]], dict[str, object]]:
    data = report(captures / f"{name}.pcap")
    labels = _labels(data)
    by_frame: dict[int, tuple[str, str]] = {}
    for s in data["sessions"]:  # type: ignore[attr-defined]
        for o in s["context"]:
            if o["kind"] == "dns":
                by_frame[o["frame"]] = (labels[s["id"]], o["purpose"])
    queries = _queries(name, captures)
    logged = [(q["from"], q["qtype"], q["qname"]) for q in facts(f"{name}.facts.json")["dns_queries_logged_by_dnsmasq"]]
    assert [(q[1], q[2], q[3]) for q in queries] == logged  # the capture holds exactly what dnsmasq answered
    return [by_frame.get(frame, (None, None)) for frame, *_ in queries], data


def test_seed_story_every_query_serves_its_session(captures: Path) -> None:
    got, data = _attribution(SEED, captures)
    assert [(label.rsplit("#", 1)[0] if label else None, purpose) for label, purpose in got] == SEED_EXPECTED
    sessions = data["sessions"]
    [probe] = [o for o in sessions[0]["context"] if o["kind"] == "ident"]
    assert (probe["frame"], probe["host"], probe["outcome"], probe["frames"]) == (12, "127.0.0.25", "rst", [12, 13])
    assert data["capture"]["context"]["unattributed"] == 0


def test_mixed_all_every_query_goes_to_its_session_or_none(captures: Path) -> None:
    got, data = _attribution(MIXED, captures)
    assert [label for label, _ in got] == MIXED_EXPECTED
    labels = _labels(data)
    probes = {o["frame"]: labels[s["id"]] for s in data["sessions"] for o in s["context"] if o["kind"] == "ident"}
    assert probes == {33: SNAIL, 223: VRFY}  # sendmail probes both of its clients; Postfix never does
    context = data["capture"]["context"]
    assert context["dns"] == 48 and context["ident"] == 2
    assert context["non_mail"] == 12  # the www.lab.example lookups, claimed by the HTTP connections they served
    assert context["attributed"] == 38 and context["unattributed"] == 0


@pytest.mark.parametrize("name", ["smtp-errors", "smtp-submission-auth", "smtp-starttls", "pop3-session",
                                  "imap-session", "tls-implicit", "ipv6"])
def test_other_lab_captures_leave_no_query_unexplained(captures: Path, name: str) -> None:
    """Every other lab scenario is mail only: each logged query belongs to a session."""
    got, data = _attribution(name, captures)
    assert all(label is not None for label, _ in got), got
    assert data["capture"]["context"]["unattributed"] == 0


def test_the_checks_the_lab_shows(captures: Path) -> None:
    seed = report(captures / f"{SEED}.pcap")["sessions"]
    first = {c["check"]: c for c in seed[0]["context_checks"]}
    assert first["fcrdns"]["ok"] and first["fcrdns"]["name"] == "client.local.example"
    assert first["helo"]["ok"]
    route = next(c for c in seed[1]["context_checks"] if c["check"] == "mx-route")
    assert route["ok"] and (route["host"], route["address"], route["preference"]) == (
        "mx.remote.example", "127.0.0.26", "10")
    errors = report(captures / "smtp-errors.pcap")["sessions"]
    refusals = [(c["domain"], c["status"]) for s in errors for c in s["context_checks"] if c["check"] == "nxdomain"]
    assert refusals == [("no-such-domain.example", "553"), ("no-such-domain.example", "450")]  # README: 553 / 450
