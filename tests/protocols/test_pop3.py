"""POP3 dissector: multi-line by command, dot-unstuffing, states, APOP/SASL/STLS, gaps, hostile input."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mt_popimap import (
    Script,
    analyze,
    feed,
    messages,
    mutated,
    normalized,
    of_type,
    resplit,
    split_at,
    stream_items,
)

from mailtrace.model import (
    CLIENT,
    SERVER,
    Anomaly,
    AuthAttempt,
    Command,
    GapEvent,
    MessageEnd,
    Note,
    Phase,
    Reply,
    TlsStart,
)
from mailtrace.protocols.base import DissectorLimits
from mailtrace.protocols.pop3 import COMMAND_STATES, TRANSITIONS, Pop3, State, multiline_expected

GREETING = b"+OK POP3 ready <1896.697170952@dbc.mtview.ca.us>\r\n"
MESSAGE = b"From: a@example.org\r\nSubject: dots\r\n\r\n..leading dot\r\nplain\r\n...two\r\n.\r\n"
UNSTUFFED = b"From: a@example.org\r\nSubject: dots\r\n\r\n.leading dot\r\nplain\r\n..two\r\n"


def login(script: Script) -> Script:
    return script.s(GREETING).c(b"USER bob\r\n").s(b"+OK\r\n").c(b"PASS secret\r\n").s(b"+OK logged in\r\n")


def kinds(events: list[object], kind: type) -> list[object]:
    return [e for e in events if isinstance(e, kind)]


# --------------------------------------------------------------------------- multi-line by command


@pytest.mark.parametrize(
    ("verb", "argument", "multi"),
    [
        ("RETR", "1", True),
        ("TOP", "1 5", True),
        ("CAPA", "", True),
        ("LIST", "", True),
        ("LIST", "2", False),
        ("UIDL", "", True),
        ("UIDL", "3", False),
        ("AUTH", "", True),
        ("AUTH", "PLAIN", False),
        ("LANG", "", True),
        ("LANG", "fr", False),
        ("STAT", "", False),
        ("DELE", "1", False),
        ("NOOP", "", False),
        ("QUIT", "", False),
    ],
)
def test_which_responses_are_multiline(verb: str, argument: str, multi: bool) -> None:
    assert multiline_expected(verb, argument) is multi


def test_status_line_and_body_in_one_segment() -> None:
    """``+OK n octets`` and the whole dot-stuffed body in one segment (tshark loses the body there)."""
    items = login(Script()).c(b"RETR 1\r\nQUIT\r\n").s(b"+OK 72 octets\r\n" + MESSAGE + b"+OK bye\r\n").end()
    events, pop = feed(Pop3, items)
    ((end, data),) = messages(events)
    assert data == UNSTUFFED
    assert end.origin == "pop3-retr" and end.complete and end.detail["stuffed_lines"] == 2
    assert end.detail["octets_announced"] == 72
    replies = [(r.status, r.answers) for r in kinds(events, Reply)]
    assert replies[-2:] == [("+OK", "RETR"), ("+OK", "QUIT")]
    assert pop.mailbox.retrieved == [1]


def test_listing_responses_fill_the_mailbox_record() -> None:
    items = (
        login(Script())
        .c(b"STAT\r\nLIST\r\nUIDL\r\nLIST 2\r\nUIDL 3\r\n")
        .s(b"+OK 3 600\r\n+OK 3 messages\r\n1 100\r\n2 200\r\n3 300\r\n.\r\n")
        .s(b"+OK\r\n1 aaa\r\n2 bbb\r\n3 ccc\r\n.\r\n+OK 2 200\r\n+OK 3 ccc\r\n")
        .end()
    )
    events, pop = feed(Pop3, items)
    record = pop.record()["pop3"]
    assert record["mailbox"] == {"messages": 3, "octets": 600}
    assert record["list"] == [{"msg": 1, "octets": 100}, {"msg": 2, "octets": 200}, {"msg": 3, "octets": 300}]
    assert [u["uid"] for u in record["uidl"]] == ["aaa", "bbb", "ccc"]
    assert [r.answers for r in kinds(events, Reply)][-5:] == ["STAT", "LIST", "UIDL", "LIST", "UIDL"]
    assert not kinds(events, Anomaly)


def test_top_is_a_partial_message_with_its_line_count() -> None:
    items = login(Script()).c(b"TOP 1 0\r\n").s(b"+OK\r\nSubject: hi\r\n\r\n.\r\n").end()
    events, pop = feed(Pop3, items)
    ((end, data),) = messages(events)
    assert end.origin == "pop3-top" and not end.complete and data == b"Subject: hi\r\n\r\n"
    assert pop.retrievals[0]["lines"] == 2 and pop.mailbox.top == [1]


# --------------------------------------------------------------------------- states and phases


def test_states_drive_phases_and_deletions() -> None:
    items = (
        login(Script())
        .c(b"DELE 1\r\n")
        .s(b"+OK\r\n")
        .c(b"RSET\r\n")
        .s(b"+OK\r\n")
        .c(b"DELE 2\r\n")
        .s(b"+OK\r\n")
        .c(b"QUIT\r\n")
        .s(b"+OK bye\r\n")
        .end()
    )
    events, pop = feed(Pop3, items)
    assert pop.state is State.UPDATE
    assert pop.mailbox.deleted == [2] and pop.mailbox.undeleted == [1]
    phases = {c.verb: c.phase for c in kinds(events, Command)}
    assert phases == {
        "USER": Phase.AUTH,
        "PASS": Phase.AUTH,
        "DELE": Phase.TRANSFER,
        "RSET": Phase.TRANSFER,
        "QUIT": Phase.TEARDOWN,
    }
    assert [(s["state"], s["trigger"], s["frame"]) for s in pop.states] == [
        ("AUTHORIZATION", "greeting", 1),
        ("TRANSACTION", "PASS +OK", 5),
        ("UPDATE", "QUIT +OK", 13),
    ]
    assert not kinds(events, Note)  # the captions narrate ordinary state changes


def test_quit_in_authorization_does_not_enter_update() -> None:
    items = Script().s(GREETING).c(b"QUIT\r\n").s(b"+OK\r\n").end()
    _, pop = feed(Pop3, items)
    assert pop.state is State.AUTHORIZATION and pop.mailbox.deleted == []


def test_commands_out_of_state_and_bad_arguments() -> None:
    items = Script().s(GREETING).c(b"RETR 1\r\n").s(b"-ERR not now\r\n").c(b"USER\r\n").s(b"-ERR\r\n").end()
    events, _ = feed(Pop3, items)
    assert [(a.kind, a.frame) for a in kinds(events, Anomaly)] == [
        ("command-out-of-state", 2),
        ("invalid-argument", 4),
    ]


def test_capture_without_greeting_infers_the_state() -> None:
    items = Script().c(b"STAT\r\n").s(b"+OK 1 10\r\n").c(b"RETR 1\r\n").s(b"+OK\r\nx\r\n.\r\n").end()
    events, pop = feed(Pop3, items)
    assert pop.state is State.TRANSACTION and not kinds(events, Anomaly)
    assert pop.states[0]["trigger"].startswith("inferred from STAT")


def test_transition_table_is_what_the_rfc_says() -> None:
    assert TRANSITIONS[State.AUTHORIZATION]["APOP +OK"] is State.TRANSACTION
    assert TRANSITIONS[State.TRANSACTION]["QUIT +OK"] is State.UPDATE
    assert "QUIT +OK" not in TRANSITIONS[State.AUTHORIZATION]
    assert COMMAND_STATES["RETR"] == {State.TRANSACTION} and COMMAND_STATES["STLS"] == {State.AUTHORIZATION}


# --------------------------------------------------------------------------- authentication


def test_apop_digest_and_hashcat_line() -> None:
    items = Script().s(GREETING).c(b"APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n").s(b"+OK\r\n").end()
    events, _ = feed(Pop3, items)
    (auth,) = kinds(events, AuthAttempt)
    assert (auth.mechanism, auth.username, auth.success) == ("APOP", "mrose", True)
    assert auth.extra == {"timestamp": "<1896.697170952@dbc.mtview.ca.us>"}
    assert kinds(events, Command)[0].argument == "mrose [digest]"
    events, _ = feed(Pop3, items, DissectorLimits(show_secrets=True))
    (auth,) = kinds(events, AuthAttempt)
    # RFC 1939's own example: md5("<1896.697170952@dbc.mtview.ca.us>tanstaaf")
    assert auth.extra["hashcat"] == "c4c9334bac560ecc979e58001b3e22fb:<1896.697170952@dbc.mtview.ca.us>"


def test_sasl_login_with_prompts_and_failure_reason() -> None:
    items = (
        Script()
        .s(GREETING)
        .c(b"AUTH LOGIN\r\n")
        .s(b"+ VXNlcm5hbWU6\r\n")
        .c(b"Ym9i\r\n")
        .s(b"+ UGFzc3dvcmQ6\r\n")
        .c(b"c2VjcmV0\r\n")
        .s(b"-ERR [AUTH] Invalid login\r\n")
        .end()
    )
    events, pop = feed(Pop3, items)
    (auth,) = kinds(events, AuthAttempt)
    assert (auth.mechanism, auth.username, auth.secret, auth.success) == ("LOGIN", "bob", "secret", False)
    assert auth.extra == {"reason": "[AUTH] Invalid login"}
    assert [c.argument for c in kinds(events, Command)] == ["LOGIN", "[SASL response]", "[SASL response]"]
    assert pop.state is State.AUTHORIZATION


def test_sasl_initial_response_and_cancel() -> None:
    items = (
        Script()
        .s(GREETING)
        .c(b"AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n")
        .s(b"-ERR no\r\n")
        .c(b"AUTH CRAM-MD5\r\n")
        .s(b"+ PDEyMzRAaG9zdD4=\r\n")
        .c(b"*\r\n")
        .s(b"-ERR cancelled\r\n")
        .end()
    )
    events, _ = feed(Pop3, items)
    first, second = kinds(events, AuthAttempt)
    assert (first.mechanism, first.username, first.success) == ("PLAIN", "bob", False)
    assert (second.mechanism, second.success, second.extra.get("cancelled")) == ("CRAM-MD5", False, "yes")
    assert kinds(events, Command)[0].argument == "PLAIN [initial response]"


def test_login_without_outcome_is_reported_unknown() -> None:
    items = Script().s(GREETING).c(b"USER bob\r\n").s(b"+OK\r\n").c(b"PASS x\r\n").end()
    events, _ = feed(Pop3, items)
    (auth,) = kinds(events, AuthAttempt)
    assert auth.success is None and auth.extra == {"outcome": "not seen"}


# --------------------------------------------------------------------------- STLS


def test_stls_switches_to_tls_and_flags_injected_plaintext() -> None:
    items = (
        Script()
        .s(GREETING)
        .c(b"CAPA\r\n")
        .s(b"+OK\r\nSTLS\r\nUSER\r\n.\r\n")
        .c(b"STLS\r\nUSER evil\r\n")
        .s(b"+OK Begin TLS\r\n")
        .c(b"\x16\x03\x01\x00\x05hello")
        .end()
    )
    events, pop = feed(Pop3, items)
    (tls,) = kinds(events, TlsStart)
    assert tls.frame == 5 and tls.mode == "starttls"
    (anomaly,) = kinds(events, Anomaly)
    assert anomaly.kind == "starttls-injection" and "USER evil" in anomaly.detail
    assert [c.verb for c in kinds(events, Command)] == ["CAPA", "STLS"]
    pop.tls_started()  # the stack saw cleartext (or decrypted it): RFC 2595 says forget the capabilities
    assert pop.capabilities == [] and pop.capabilities_before_tls == ["STLS", "USER"]


def test_refused_stls_releases_the_held_commands() -> None:
    items = Script().s(GREETING).c(b"STLS\r\nUSER bob\r\n").s(b"-ERR no TLS\r\n+OK\r\n").end()
    events, _ = feed(Pop3, items)
    assert [c.verb for c in kinds(events, Command)] == ["STLS", "USER"]
    assert not kinds(events, TlsStart) and not kinds(events, Anomaly)


def test_decrypted_stls_session_is_dissected(captures: Path) -> None:
    keylog = captures / "tls-implicit.keylog"
    from mailtrace.capture.reader import open_capture
    from mailtrace.config import Config
    from mailtrace.pipeline import Analyzer
    from mailtrace.tls import KeyLog

    analyzer = Analyzer(Config(), keylog=KeyLog.from_file(str(keylog)))
    session = next(
        s
        for s in analyzer.run([open_capture(str(captures / "tls-implicit.pcap"))])
        if s.protocol == "pop3" and s.tls == "starttls"
    )
    assert session.decrypted
    assert [c.verb for c in session.commands] == ["CAPA", "STLS", "USER", "PASS", "STAT", "QUIT"]
    assert [(a.mechanism, a.username, a.success) for a in session.auth] == [("USER", "bob", True)]
    assert session.record["pop3"]["capabilities_before_tls"][-1].startswith("SASL")


# --------------------------------------------------------------------------- gaps


def test_gap_inside_a_body_is_counted_and_the_body_read_on() -> None:
    items = (
        login(Script())
        .c(b"RETR 1\r\n")
        .s(b"+OK\r\nSubject: x\r\n\r\nline one\r\n")
        .gap(SERVER, 500)
        .s(b"last line\r\n.\r\n")
        .c(b"QUIT\r\n")
        .s(b"+OK\r\n")
        .end()
    )
    events, _ = feed(Pop3, items)
    ((end, data),) = messages(events)
    assert not end.complete and end.missing_bytes == 500 and data.endswith(b"last line\r\n")
    assert [r.answers for r in kinds(events, Reply)][-1] == "QUIT"
    assert kinds(events, GapEvent)[0].nbytes == 500


def test_gap_that_swallows_the_end_marker_resyncs_on_the_next_status_line() -> None:
    items = (
        login(Script())
        .c(b"RETR 1\r\n")
        .s(b"+OK\r\nSubject: x\r\n\r\nbody\r\n")
        .gap(SERVER, 80)
        .c(b"DELE 1\r\n")
        .s(b"+OK marked\r\n")
        .c(b"QUIT\r\n")
        .s(b"+OK\r\n")
        .end()
    )
    events, pop = feed(Pop3, items)
    ((end, _),) = messages(events)
    assert not end.complete
    assert [a.kind for a in kinds(events, Anomaly)] == ["end-of-response-lost"]
    assert [r.answers for r in kinds(events, Reply)][-3:] == ["RETR", "DELE", "QUIT"]
    assert pop.mailbox.deleted == [1]


def test_gap_in_responses_pairs_the_next_status_with_the_latest_command() -> None:
    items = login(Script()).c(b"NOOP\r\n").gap(SERVER, 5).c(b"STAT\r\n").s(b"+OK 2 20\r\n").end()
    events, pop = feed(Pop3, items)
    assert kinds(events, Reply)[-1].answers == "STAT" and pop.mailbox.count == 2
    assert [a.kind for a in kinds(events, Anomaly)] == ["responses-lost"]


def test_client_gap_resyncs_on_the_next_command() -> None:
    items = login(Script()).gap(CLIENT, 10).c(b"garbled tail\r\nSTAT\r\n").s(b"+OK 0 0\r\n").end()
    events, _ = feed(Pop3, items)
    assert [c.verb for c in kinds(events, Command)][-1] == "STAT"
    assert not kinds(events, Anomaly)


def test_unterminated_listing_ends_at_the_next_command() -> None:
    """zeek's bad-list-retr-crafted: a LIST without its '.'; without PIPELINING the client's RETR ends it."""
    items = (
        login(Script())
        .c(b"LIST\r\n")
        .s(b"+OK 1 messages\r\n1 120\r\n")
        .c(b"RETR 1\r\n")
        .s(b"+OK\r\n1 120\r\nSubject: s\r\n\r\nb\r\n.\r\n")
        .end()
    )
    events, pop = feed(Pop3, items)
    ((end, data),) = messages(events)
    assert end.complete and data == b"1 120\r\nSubject: s\r\n\r\nb\r\n"
    (anomaly,) = kinds(events, Anomaly)
    assert anomaly.kind == "incomplete-response" and "LIST response" in anomaly.detail
    assert pop.record()["pop3"]["list"] == [{"msg": 1, "octets": 120}]


def test_unterminated_listing_with_pipelining_ends_at_the_next_answer() -> None:
    """With PIPELINING the client may send RETR before the '.': the listing ends at RETR's status line."""
    items = (
        Script().s(GREETING).c(b"CAPA\r\n").s(b"+OK\r\nUSER\r\nPIPELINING\r\n.\r\n")
        .c(b"USER bob\r\n").s(b"+OK\r\n").c(b"PASS secret\r\n").s(b"+OK logged in\r\n")
        .c(b"LIST\r\n")
        .s(b"+OK 1 messages\r\n1 120\r\n")
        .c(b"RETR 1\r\n")
        .s(b"+OK\r\nSubject: s\r\n\r\nb\r\n.\r\n")
        .end()
    )
    events, _ = feed(Pop3, items)
    ((end, data),) = messages(events)
    assert end.complete and data == b"Subject: s\r\n\r\nb\r\n"
    assert [a.kind for a in kinds(events, Anomaly)] == ["unterminated-response"]


def test_stream_ending_inside_a_body() -> None:
    items = login(Script()).c(b"RETR 1\r\n").s(b"+OK\r\nSubject: cut\r\n\r\nno end").end()
    events, _ = feed(Pop3, items)
    ((end, data),) = messages(events)
    assert not end.complete and data == b"Subject: cut\r\n\r\nno end"
    assert [a.kind for a in kinds(events, Anomaly)] == ["incomplete-response"]


# --------------------------------------------------------------------------- anomalies, hostile input


def test_unknown_commands_and_invalid_responses() -> None:
    items = Script().s(GREETING).c(b"XYZ 1\r\n").s(b"-ERR unknown\r\n").s(b"garbage\r\n").c(b"\x00\x01\x02\r\n").end()
    events, _ = feed(Pop3, items)
    assert [a.kind for a in kinds(events, Anomaly)] == ["unknown-command", "invalid-response", "garbage"]
    assert kinds(events, Command)[0].known is False


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.booleans(),
            st.binary(max_size=64)
            | st.sampled_from(
                [
                    b"+OK\r\n",
                    b".\r\n",
                    b"RETR 1\r\n",
                    b"LIST\r\n",
                    b"AUTH PLAIN\r\n",
                    b"+ \r\n",
                    b"-ERR\r\n",
                    b"..\r\n",
                    b"STLS\r\n",
                    b"TOP 1 2\r\n",
                    b"APOP a b\r\n",
                    b"\r\n.\r\n",
                    b"CAPA\r\n",
                ]
            ),
        ),
        max_size=30,
    ),
    st.lists(st.integers(1, 2000), max_size=3),
)
def test_hostile_input_never_raises(steps: list[tuple[bool, bytes]], gaps: list[int]) -> None:
    script = Script()
    for i, (client, data) in enumerate(steps):
        if gaps and i % 7 == 3:
            script.gap(CLIENT if client else SERVER, gaps[i % len(gaps)])
        if client:
            script.c(data)
        else:
            script.s(data)
    feed(Pop3, script.end())


# --------------------------------------------------------------------------- split invariance


def _sample_streams(captures: Path) -> list[list[object]]:
    return [stream_items(s) for s in analyze(captures / "pop3-session.pcap")]


@pytest.fixture(scope="module")
def sample_streams(captures: Path) -> list[list[object]]:
    return _sample_streams(captures)


def test_same_events_fed_whole_or_byte_by_byte(sample_streams: list[list[object]]) -> None:
    for items in sample_streams:
        whole, _ = feed(Pop3, items)
        bytewise, _ = feed(Pop3, resplit(items, [1]))  # type: ignore[arg-type]
        assert normalized(bytewise) == normalized(whole)


def test_same_events_split_at_every_offset(sample_streams: list[list[object]]) -> None:
    items = min(sample_streams, key=lambda s: sum(len(getattr(i, "data", b"")) for i in s))  # the APOP session
    whole = normalized(feed(Pop3, items)[0])
    for index, item in enumerate(items):
        for offset in range(1, len(getattr(item, "data", b""))):
            assert normalized(feed(Pop3, split_at(items, index, offset))[0]) == whole, (index, offset)  # type: ignore[arg-type]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(1, 300), min_size=1, max_size=12))
def test_same_events_split_anywhere(sample_streams: list[list[object]], sizes: list[int]) -> None:
    for items in sample_streams:
        assert normalized(feed(Pop3, resplit(items, sizes))[0]) == normalized(feed(Pop3, items)[0])  # type: ignore[arg-type]


def test_sample_stream_events_match_the_pipeline(captures: Path) -> None:
    for session in analyze(captures / "pop3-session.pcap"):
        events, _ = feed(Pop3, stream_items(session))
        assert [(c.verb, c.frame) for c in of_type(events, Command)] == [(c.verb, c.frame) for c in session.commands]
        assert len(of_type(events, MessageEnd)) == len(session.messages)


def test_lost_command_answered_with_a_message() -> None:
    """The RETR line was lost; ``+OK n octets`` still says what follows (message number unknown)."""
    items = (
        login(Script())
        .c(b"DELE 1\r\n")
        .gap(CLIENT, 8)
        .gap(SERVER, 20)
        .s(b"+OK 28 octets\r\nSubject: lost\r\n\r\nbody\r\n.\r\n")
        .c(b"QUIT\r\n")
        .s(b"+OK\r\n")
        .end()
    )
    events, _ = feed(Pop3, items)
    ((end, data),) = messages(events)
    assert data == b"Subject: lost\r\n\r\nbody\r\n" and end.detail["guessed"] and end.detail["msg"] is None
    assert [a.kind for a in kinds(events, Anomaly)] == ["responses-lost"]
    assert kinds(events, Reply)[-1].answers == "QUIT"


def test_listing_of_a_lost_command_is_skipped_quietly() -> None:
    items = (
        login(Script()).gap(CLIENT, 6).s(b"+OK 2 messages\r\n1 10\r\n2 20\r\n.\r\n").c(b"QUIT\r\n").s(b"+OK\r\n").end()
    )
    events, _ = feed(Pop3, items)
    assert [a.kind for a in kinds(events, Anomaly)] == ["orphan-response"]
    assert kinds(events, Reply)[-1].answers == "QUIT"


def test_login_lost_in_a_gap_is_inferred() -> None:
    items = (
        Script().s(GREETING).c(b"USER bob\r\n").gap(SERVER, 5).c(b"PASS x\r\n").gap(SERVER, 15)
        .c(b"STAT\r\n").s(b"+OK 1 100\r\n").end()
    )  # fmt: skip
    events, pop = feed(Pop3, items)
    assert pop.state is State.TRANSACTION and pop.states[-1]["trigger"].startswith("inferred from STAT")
    assert [n.text for n in kinds(events, Note)] == [
        "POP3 state AUTHORIZATION → TRANSACTION inferred from STAT +OK: the login was lost in a gap"
    ]
    assert "command-out-of-state" not in [a.kind for a in kinds(events, Anomaly)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.randoms(use_true_random=False), st.sampled_from([64, 1024, 65536]), st.booleans())
def test_damaged_sample_streams_never_raise(
    sample_streams: list[list[object]], rng: object, max_line: int, secrets: bool
) -> None:
    limits = DissectorLimits(max_line=max_line, show_secrets=secrets)
    for items in sample_streams:
        feed(Pop3, mutated(items, rng), limits)  # type: ignore[arg-type]
