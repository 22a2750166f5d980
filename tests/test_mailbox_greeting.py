"""POP3 and IMAP clients that talk before the server's greeting (and captures that begin mid-session).

Nothing in the stream says whether the capture began at the SYN, so the dissectors decide on the
first server line: a greeting-like status line is the greeting even when a command came first; the
early command stays pending for the next response and is reported as ``command-before-greeting``.
"""

from __future__ import annotations

from mailtrace.model import Anomaly, Command, Event, Note, Phase, Reply
from mailtrace.protocols.imap import Imap
from mailtrace.protocols.imap import State as ImapState
from mailtrace.protocols.pop3 import Pop3
from mailtrace.protocols.pop3 import State as Pop3State
from tests.protocols.mt_popimap import feed
from tests.test_imap_literal_gaps import conversation


def replies(events: list[Event]) -> list[tuple[int, str, str, str | None, int | None]]:
    return [(e.frame, e.status, e.lines[0], e.answers, e.answers_frame) for e in events if isinstance(e, Reply)]


def anomalies(events: list[Event]) -> list[tuple[str, int]]:
    return [(e.kind, e.frame) for e in events if isinstance(e, Anomaly)]


# --------------------------------------------------------------------------- POP3


def test_pop3_user_before_the_greeting_waits_for_the_next_response() -> None:
    events, pop = feed(Pop3, conversation(
        ("c", b"USER bob\r\n"),
        ("s", b"+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n"),
        ("s", b"+OK send PASS\r\n"),
        ("c", b"PASS secret\r\n"),
        ("s", b"+OK Logged in.\r\n"),
        ("c", b"QUIT\r\n"),
        ("s", b"+OK Bye\r\n"),
    ))
    assert replies(events) == [
        (2, "+OK", "POP3 server ready <1896.697170952@dbc.mtview.ca.us>", None, None),
        (3, "+OK", "send PASS", "USER", 1),
        (5, "+OK", "Logged in.", "PASS", 4),
        (7, "+OK", "Bye", "QUIT", 6),
    ]
    greeting = next(e for e in events if isinstance(e, Reply))
    assert greeting.phase is Phase.GREETING
    assert anomalies(events) == [("command-before-greeting", 1)]
    detail = next(e.detail for e in events if isinstance(e, Anomaly))
    assert detail.startswith("USER was sent at frame 1, before the server's greeting at frame 2")
    assert pop.greeting == "POP3 server ready <1896.697170952@dbc.mtview.ca.us>"
    assert pop.apop_timestamp == "<1896.697170952@dbc.mtview.ca.us>"
    assert pop.states[0] == {"state": "AUTHORIZATION", "frame": 2, "trigger": "greeting"}
    assert pop.state is Pop3State.UPDATE
    (auth,) = [e for e in events if type(e).__name__ == "AuthAttempt"]
    assert (auth.username, auth.success) == ("bob", True)


def test_pop3_plain_ready_greeting_after_an_early_capa() -> None:
    events, pop = feed(Pop3, conversation(
        ("c", b"CAPA\r\n"),
        ("s", b"+OK ready\r\n"),
        ("s", b"+OK Capability list follows\r\nUSER\r\nPIPELINING\r\n.\r\n"),
    ))
    assert replies(events) == [(2, "+OK", "ready", None, None), (3, "+OK", "Capability list follows", "CAPA", 1)]
    assert pop.capabilities == ["USER", "PIPELINING"]
    assert anomalies(events) == [("command-before-greeting", 1)]


def test_pop3_capture_that_starts_mid_session_still_pairs_the_first_answer() -> None:
    # no greeting-like text: the +OK answers the USER sent before it, as before
    events, pop = feed(Pop3, conversation(
        ("c", b"USER bob\r\n"),
        ("s", b"+OK Password required for bob.\r\n"),
        ("c", b"PASS x\r\n"),
        ("s", b"+OK bob's maildrop has 2 messages (320 octets)\r\n"),
    ))
    assert replies(events) == [
        (2, "+OK", "Password required for bob.", "USER", 1),
        (4, "+OK", "bob's maildrop has 2 messages (320 octets)", "PASS", 3),
    ]
    assert pop.greeting is None and not anomalies(events)
    assert pop.state is Pop3State.TRANSACTION
    # a transaction command first: the capture began after the login, whatever the text says
    events, pop = feed(Pop3, conversation(("c", b"STAT\r\n"), ("s", b"+OK 2 320\r\n")))
    assert replies(events) == [(2, "+OK", "2 320", "STAT", 1)]
    assert pop.greeting is None and pop.states[0]["trigger"].startswith("inferred from STAT")


def test_pop3_greeting_first_is_unchanged() -> None:
    events, _ = feed(Pop3, conversation(("s", b"+OK POP3 ready\r\n"), ("c", b"USER bob\r\n"), ("s", b"+OK\r\n")))
    assert replies(events) == [(1, "+OK", "POP3 ready", None, None), (3, "+OK", "", "USER", 2)]
    assert not anomalies(events)


# --------------------------------------------------------------------------- IMAP


def test_imap_capability_before_the_greeting() -> None:
    events, imap = feed(Imap, conversation(
        ("c", b"a1 CAPABILITY\r\n"),
        ("s", b"* OK ready\r\n* CAPABILITY IMAP4rev1 IDLE\r\na1 OK done\r\n"),
        ("c", b"a2 LOGIN bob secret\r\n"),
        ("s", b"a2 OK in\r\n"),
    ))
    assert replies(events) == [
        (2, "*", "OK ready", None, None),
        (2, "*", "CAPABILITY IMAP4rev1 IDLE", "CAPABILITY", 1),
        (2, "OK", "done", "CAPABILITY", 1),
        (4, "OK", "in", "LOGIN", 3),
    ]
    assert next(e for e in events if isinstance(e, Reply)).phase is Phase.GREETING
    assert anomalies(events) == [("command-before-greeting", 1)]
    assert imap.greeting == "ready" and imap.capabilities == ["IMAP4rev1", "IDLE"]
    assert [(s["state"], s["frame"], s["trigger"]) for s in imap.states] == [
        ("not authenticated", 2, "greeting OK"),
        ("authenticated", 4, "LOGIN OK"),
    ]


def test_imap_login_before_the_greeting_is_not_an_inferred_state() -> None:
    events, imap = feed(Imap, conversation(
        ("c", b"a1 LOGIN bob secret\r\n"),
        ("s", b"* OK [CAPABILITY IMAP4rev1] Dovecot ready.\r\n"),
        ("s", b"a1 OK Logged in\r\n"),
    ))
    assert not [e for e in events if isinstance(e, Note)]  # no "the capture has no greeting"
    assert [(s["state"], s["trigger"]) for s in imap.states] == [
        ("not authenticated", "greeting OK"),
        ("authenticated", "LOGIN OK"),
    ]
    assert imap.state is ImapState.AUTHENTICATED and imap.capabilities == ["IMAP4rev1"]
    assert anomalies(events) == [("command-before-greeting", 1)]
    (command,) = [e for e in events if isinstance(e, Command)]
    assert command.verb == "LOGIN"


def test_imap_preauth_after_an_early_command() -> None:
    events, imap = feed(Imap, conversation(
        ("c", b"a1 SELECT INBOX\r\n"),
        ("s", b"* PREAUTH welcome\r\n* 2 EXISTS\r\na1 OK [READ-WRITE] done\r\n"),
    ))
    assert imap.greeting == "welcome" and imap.state is ImapState.SELECTED
    assert anomalies(events) == [("command-before-greeting", 1)]


def test_imap_capture_that_starts_mid_session_still_infers_the_state() -> None:
    # SELECT's untagged OK is its data, not a greeting; the first command tells the state
    events, imap = feed(Imap, conversation(
        ("c", b"a5 SELECT INBOX\r\n"),
        ("s", b"* OK [UIDVALIDITY 7] UIDs valid\r\n* 3 EXISTS\r\na5 OK [READ-WRITE] done\r\n"),
    ))
    assert imap.greeting is None and not anomalies(events)
    assert [(s["state"], s["frame"], s["trigger"]) for s in imap.states] == [
        ("authenticated", 1, "inferred from SELECT: the capture has no greeting"),
        ("selected", 2, "SELECT OK"),
    ]
    assert imap.selected[0]["uidvalidity"] == "7"
    # a tagged answer first
    events, imap = feed(Imap, conversation(("c", b"a7 UID FETCH 1 FLAGS\r\n"), ("s", b"a7 OK done\r\n")))
    assert imap.state is ImapState.SELECTED and imap.greeting is None and not anomalies(events)
    # LOGOUT's BYE
    events, imap = feed(Imap, conversation(("c", b"a9 LOGOUT\r\n"), ("s", b"* BYE bye\r\na9 OK\r\n")))
    assert imap.greeting is None and not anomalies(events)
    assert replies(events)[0] == (2, "*", "BYE bye", "LOGOUT", 1)
    # a one-sided capture: the inference is made at the end
    events, imap = feed(Imap, conversation(("c", b"a1 FETCH 1 FLAGS\r\n"), ("c", b"a2 NOOP\r\n")))
    assert imap.state is ImapState.SELECTED
    assert [n.text for n in events if isinstance(n, Note)] == [
        "IMAP state: connected → selected (inferred from FETCH: the capture has no greeting)"
    ]
