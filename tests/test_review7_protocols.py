"""Protocol cases a review with crafted captures found (RFC 3501/3502/7888/4731/7162, RFC 5321, RFC 1939):
each test builds the conversation the RFC describes and checks the report says what happened."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.pcapgen import ACK, FIN, PSH, Capture, Tcp
from tests.support import report, run_cli


def one_session(tmp_path: Path, port: int, build: Any) -> tuple[dict[str, Any], str]:
    cap = Capture()
    t = Tcp(cap, client=("10.0.0.1", 40000), server=("10.0.0.2", port))
    t.handshake()
    build(t)
    path = cap.write(tmp_path / "x.pcap")
    [session] = report(path)["sessions"]
    return session, run_cli("analyze", "--no-explain", "--no-color", str(path)).stdout


def imap_login(t: Tcp, caps: bytes = b"IMAP4rev1") -> Tcp:
    return t.s(b"* OK [CAPABILITY " + caps + b"] ready\r\n").c(b"a1 LOGIN bob secret\r\n").s(b"a1 OK in\r\n")


# ---------------------------------------------------------------------------- IMAP
def test_imap_reply_names_the_frame_its_literal_command_is_shown_at(tmp_path: Path) -> None:
    def build(t: Tcp) -> None:
        t.s(b"* OK ready\r\n").c(b"a1 LOGIN {3}\r\n").s(b"+ go\r\n")
        t.ts += 2.0
        t.c(b"bob {6}\r\n").s(b"+ go\r\n").c(b"secret\r\n")
        t.ts += 0.25
        t.s(b"a1 OK in\r\n").fin()
    session, _ = one_session(tmp_path, 143, build)
    [login] = [c for c in session["commands"] if c["verb"] == "LOGIN"]
    [ok] = [r for r in session["replies"] if r["status"] == "OK" and r.get("tag") == "a1"]
    assert ok["answers_frame"] == login["frame"]
    # from the command's last byte, not from its first line two seconds earlier
    assert 0.2 < ok["latency"] < 1.0


def test_imap_multiappend_gives_each_message_its_own_flags(tmp_path: Path) -> None:
    msg = b"Subject: m\r\n\r\nhi\r\n"
    def build(t: Tcp) -> None:
        imap_login(t, b"IMAP4rev1 MULTIAPPEND LITERAL+")
        t.c(b"a2 APPEND INBOX (\\Seen) {%d+}\r\n%s (\\Flagged) \"07-Feb-1994 21:52:25 -0800\" {%d+}\r\n%s\r\n"
            % (len(msg), msg, len(msg), msg))
        t.s(b"a2 OK done\r\n").fin()
    session, _ = one_session(tmp_path, 143, build)
    carriers = [m["carrier"] for m in session["messages"]]
    assert [(c.get("flags"), c.get("date")) for c in carriers] == [
        (["\\Seen"], None), (["\\Flagged"], "07-Feb-1994 21:52:25 -0800")]
    assert [a["flags"] for a in session["imap"]["appends"]] == [["\\Seen"], ["\\Flagged"]]


# ---------------------------------------------------------------------------- TCP teardown
def test_teardown_names_the_server_whose_fin_rode_on_its_last_reply(tmp_path: Path) -> None:
    def build(t: Tcp) -> None:
        t.s(b"+OK ready\r\n").c(b"QUIT\r\n")
        t._emit("s", PSH | ACK | FIN, b"+OK Logging out.\r\n")  # the reply and the FIN in one segment
        t._emit("c", FIN | ACK)
        t._emit("s", ACK)
    _, text = one_session(tmp_path, 110, build)
    assert "TCP teardown (FIN); the server closes first" in text
    assert "the client closes first" not in text


# ---------------------------------------------------------------------------- commands as sent
def test_command_words_are_shown_as_sent_and_matched_upper_cased(tmp_path: Path) -> None:
    smtp, text = one_session(tmp_path, 25, lambda t: t.s(b"220 mx ESMTP\r\n").c(b"ehlo me\r\n").s(b"250 mx\r\n")
                             .c(b"Mail FROM:<a@b.example>\r\n").s(b"250 ok\r\n").c(b"QUIT\r\n").s(b"221 bye\r\n").fin())
    assert [(c["verb"], c.get("verb_as_sent")) for c in smtp["commands"]] == [
        ("EHLO", "ehlo"), ("MAIL", "Mail"), ("QUIT", None)]
    assert "C: ehlo me" in text and "C: Mail FROM:<a@b.example>" in text and "C: QUIT" in text
    assert smtp["transactions"][0]["mail_from"] == "a@b.example"
    imap, text = one_session(tmp_path, 143, lambda t: imap_login(t).c(b"a2 select INBOX\r\n")
                             .s(b"* 1 EXISTS\r\na2 OK [READ-WRITE] done\r\n").c(b"a3 uid fetch 1 FLAGS\r\n")
                             .s(b"* 1 FETCH (UID 1 FLAGS ())\r\na3 OK done\r\n").fin())
    assert [(c["verb"], c.get("uid", False), c.get("verb_as_sent")) for c in imap["commands"]] == [
        ("LOGIN", False, None), ("SELECT", False, "select"), ("FETCH", True, "uid fetch")]
    assert "C: a3 uid fetch 1 FLAGS" in text
    assert "INBOX" in str(imap["imap"]["selected"][0])


# ---------------------------------------------------------------------------- encrypted sessions
def test_an_encrypted_session_without_keys_says_its_login_and_messages_are_not_visible() -> None:
    from tests.support import sample
    path = str(sample("tls-implicit.pcap"))
    text = run_cli("analyze", "--no-explain", "--no-color", path).stdout
    assert "no login" not in text and "0 messages" not in text
    assert text.count("login not visible (encrypted)") == 5 and text.count("messages not visible (encrypted)") == 5
    assert "5 sessions not decrypted: logins and messages inside TLS are not visible without their keys " \
           "(--tls-keylog FILE" in text
    # the POP3 server on port 110 offers STLS, POP3's STARTTLS
    assert "POP3 server 127.0.0.26:110 offers USER, AUTH LOGIN, AUTH PLAIN before TLS" in text
    assert "it offers STLS too" in text
    listed = run_cli("analyze", "--list", "--no-color", path).stdout.splitlines()
    assert [line.split()[8:12] for line in listed[1:4]] == [["?", "(TLS)", "reset", "?"],
                                                            ["?", "(TLS)", "completed", "?"],
                                                            ["?", "(TLS)", "completed", "?"]]
    keys = str(sample("tls-implicit.keylog"))
    decrypted = run_cli("analyze", "--no-explain", "--no-color", "--tls-keylog", keys, path).stdout
    assert "not visible" not in decrypted and "not decrypted" not in decrypted


# ---------------------------------------------------------------------------- SMTP paths
def test_smtp_paths_with_a_quoted_angle_bracket_and_a_source_route(tmp_path: Path) -> None:
    session, _ = one_session(tmp_path, 25, lambda t: t.s(b"220 mx ESMTP\r\n").c(b"EHLO me\r\n").s(b"250 mx\r\n")
                             .c(b"MAIL FROM:<a@b.example>\r\n").s(b"250 ok\r\n")
                             .c(b'RCPT TO:<"x>y"@z.org> NOTIFY=NEVER\r\n').s(b"250 ok\r\n")
                             .c(b"RCPT TO:<@hosta.int,@jkl.org:userc@d.bar.org>\r\n").s(b"250 ok\r\n")
                             .c(b"QUIT\r\n").s(b"221 bye\r\n").fin())
    [tx] = session["transactions"]
    assert tx["rcpt_to"] == ['"x>y"@z.org', "userc@d.bar.org"]
    assert tx["accepted"] == ['"x>y"@z.org', "userc@d.bar.org"]
    assert tx["rcpt_params"] == [{"NOTIFY": "NEVER"}, {}]


# ---------------------------------------------------------------------------- POP3 PASS
def test_pop3_pass_needs_a_successful_user_and_is_not_credited_to_an_apop_name(tmp_path: Path) -> None:
    after_apop, _ = one_session(tmp_path, 110, lambda t: t.s(b"+OK ready <1.2@mx>\r\n")
                                .c(b"APOP bob 0123456789abcdef0123456789abcdef\r\n").s(b"-ERR denied\r\n")
                                .c(b"PASS early\r\n").s(b"-ERR no USER\r\n").c(b"QUIT\r\n").s(b"+OK bye\r\n").fin())
    assert [(a["mechanism"], a["username"], a["success"]) for a in after_apop["auth"]] == [
        ("APOP", "bob", False), ("USER", None, False)]
    assert [(a["kind"], a["detail"]) for a in after_apop["anomalies"]] == [
        ("pass-without-user", "PASS without a successful USER (no USER before it; RFC 1939 7)")]
    refused, _ = one_session(tmp_path, 110, lambda t: t.s(b"+OK ready\r\n").c(b"USER nobody\r\n")
                             .s(b"-ERR no such user\r\n").c(b"PASS x\r\n").s(b"-ERR no\r\n")
                             .c(b"QUIT\r\n").s(b"+OK bye\r\n").fin())
    assert [a["kind"] for a in refused["anomalies"]] == ["pass-without-user"]
    assert "refused the USER" in refused["anomalies"][0]["detail"]
    fine, _ = one_session(tmp_path, 110, lambda t: t.s(b"+OK ready\r\n").c(b"USER alice\r\n").s(b"+OK\r\n")
                          .c(b"PASS x\r\n").s(b"+OK in\r\n").c(b"QUIT\r\n").s(b"+OK bye\r\n").fin())
    assert fine["anomalies"] == []
    assert [(a["mechanism"], a["username"], a["success"]) for a in fine["auth"]] == [("USER", "alice", True)]


# ---------------------------------------------------------------------------- SMTP ordering
def test_smtp_mail_before_hello_and_auth_after_a_login_are_protocol_violations(tmp_path: Path) -> None:
    cap = Capture()
    Tcp(cap, client=("10.0.0.1", 40000), server=("10.0.0.2", 25)).handshake().s(b"220 mx ESMTP\r\n") \
        .c(b"MAIL FROM:<a@b.example>\r\n").s(b"503 5.5.1 Error: send HELO/EHLO first\r\n") \
        .c(b"QUIT\r\n").s(b"221 bye\r\n").fin()
    doc = report(cap.write(tmp_path / "nohello.pcap"))
    assert [a["kind"] for a in doc["sessions"][0]["anomalies"]] == ["mail-without-helo"]
    assert [(f["id"], f["title"]) for f in doc["findings"]] == [
        ("protocol-violation", "SMTP: MAIL before HELO/EHLO (1×)")]
    plain = b"AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n"
    twice, _ = one_session(tmp_path, 587, lambda t: t.s(b"220 mx ESMTP\r\n").c(b"EHLO me\r\n")
                           .s(b"250-mx\r\n250 AUTH PLAIN\r\n").c(plain).s(b"235 2.7.0 ok\r\n")
                           .c(plain).s(b"503 5.5.1 Error: already authenticated\r\n")
                           .c(b"QUIT\r\n").s(b"221 bye\r\n").fin())
    [ok] = [r for r in twice["replies"] if r["status"] == "235"]
    assert [(a["kind"], a["detail"]) for a in twice["anomalies"]] == [
        ("auth-after-auth", f"AUTH after the login at frame {ok['frame']} succeeded (RFC 4954 4: no more AUTH "
                            "commands in the session)")]


# ---------------------------------------------------------------------------- IMAP literals
MSG = b"Subject: m\r\n\r\nhi\r\n"


def test_imap_a_synchronizing_literal_sent_without_waiting_is_a_violation(tmp_path: Path) -> None:
    session, _ = one_session(tmp_path, 143, lambda t: imap_login(t, b"IMAP4rev1 MULTIAPPEND")
                             .c(b"a2 APPEND INBOX {%d}\r\n%s\r\n" % (len(MSG), MSG)).s(b"+ Ready\r\n")
                             .s(b"a2 OK done\r\n").c(b"a3 LOGOUT\r\n").s(b"* BYE\r\na3 OK bye\r\n").fin())
    assert [a["kind"] for a in session["anomalies"]] == ["literal-without-continuation"]
    assert [(m["origin"], m["bytes"], m["complete"]) for m in session["messages"]] == [("imap-append", len(MSG), True)]


def test_imap_literal_plus_needs_the_capability(tmp_path: Path) -> None:
    def append(caps: bytes, size: int) -> list[str]:
        body = b"Subject: m\r\n\r\n" + b"x" * (size - 16) + b"\r\n"
        session, _ = one_session(tmp_path, 143, lambda t: imap_login(t, caps)
                                 .c(b"a2 APPEND INBOX {%d+}\r\n%s\r\n" % (len(body), body))
                                 .s(b"a2 OK done\r\n").c(b"a3 LOGOUT\r\n").s(b"* BYE\r\na3 OK bye\r\n").fin())
        return [a["kind"] for a in session["anomalies"]]
    assert append(b"IMAP4rev1", 100) == ["literal-plus-misused"]
    assert append(b"IMAP4rev1 LITERAL+", 5000) == []
    assert append(b"IMAP4rev1 LITERAL-", 4000) == []
    assert append(b"IMAP4rev1 LITERAL-", 5000) == ["literal-plus-misused"]


def test_imap_a_server_may_refuse_a_literal_with_no(tmp_path: Path) -> None:
    session, text = one_session(tmp_path, 143, lambda t: imap_login(t).c(b"a2 APPEND INBOX {999999}\r\n")
                                .s(b"a2 NO [TOOBIG] too big\r\n").c(b"a3 LOGOUT\r\n")
                                .s(b"* BYE\r\na3 OK bye\r\n").fin())
    assert session["anomalies"] == []
    assert "the server refused APPEND's synchronizing literal; the command ends here" in text


# ---------------------------------------------------------------------------- IMAP ESEARCH and QRESYNC
def test_imap_esearch_count_and_vanished_lower_the_message_count(tmp_path: Path) -> None:
    def build(t: Tcp) -> None:
        imap_login(t, b"IMAP4rev1 ESEARCH QRESYNC ENABLE")
        t.c(b"a2 ENABLE QRESYNC\r\n").s(b"* ENABLED QRESYNC\r\na2 OK enabled\r\n")
        t.c(b"a3 SELECT INBOX\r\n").s(b"* 314 EXISTS\r\n* OK [UIDVALIDITY 67890007] x\r\na3 OK [READ-WRITE] done\r\n")
        t.c(b"a4 UID SEARCH RETURN (MIN MAX COUNT) UNSEEN\r\n")
        t.s(b'* ESEARCH (TAG "a4") UID MIN 7 MAX 3800 COUNT 15\r\na4 OK done\r\n')
        t.c(b"a5 SEARCH RETURN (ALL) DELETED\r\n").s(b'* ESEARCH (TAG "a5") ALL 2,10:12\r\na5 OK done\r\n')
        t.c(b"a6 UID EXPUNGE 7,9:10\r\n").s(b"* VANISHED 7,9:10\r\na6 OK done\r\n")
        t.c(b"a7 LOGOUT\r\n").s(b"* BYE\r\na7 OK bye\r\n").fin()
    session, _ = one_session(tmp_path, 143, build)
    assert [s["count"] for s in session["imap"]["searches"]] == [15, 4]
    assert session["imap"]["selected"][0]["exists"] == 311


# ---------------------------------------------------------------------------- phases
def phases(session: dict[str, Any]) -> list[tuple[str, int, int]]:
    return [(p["name"], p["first_frame"], p["last_frame"]) for p in session["phases"]]


def test_a_command_sent_in_pieces_is_in_its_phase_from_its_first_segment(tmp_path: Path) -> None:
    session, _ = one_session(tmp_path, 143, lambda t: t.s(b"* OK ready\r\n").c(b"a1 LOGIN {3}\r\n").s(b"+ go\r\n")
                             .c(b"bob {6}\r\n").s(b"+ go\r\n").c(b"secret\r\n").s(b"a1 OK in\r\n").fin())
    assert phases(session) == [("setup", 1, 3), ("greeting", 4, 4), ("auth", 5, 10), ("teardown", 11, 13)]


def test_the_ack_of_the_last_fin_is_teardown(tmp_path: Path) -> None:
    session, _ = one_session(tmp_path, 25, lambda t: t.s(b"220 mx ESMTP\r\n").c(b"EHLO me\r\n").s(b"250 mx\r\n")
                             .c(b"MAIL FROM:<a@b.example>\r\n").s(b"421 4.3.2 shutting down\r\n").fin())
    assert phases(session)[-1] == ("teardown", 9, 11)
    assert [p[0] for p in phases(session)].count("transfer") == 1


# ---------------------------------------------------------------------------- second review
def test_a_top_reply_that_lost_bytes_is_incomplete_not_partial_by_request(tmp_path: Path) -> None:
    body = b"".join(b"Line %03d of the body text here\r\n" % i for i in range(40))
    message = b"From: a@b.example\r\nSubject: t\r\nMessage-ID: <x1@b.example>\r\n\r\n" + body
    def build(t: Tcp) -> None:
        t.s(b"+OK ready\r\n").c(b"USER bob\r\n").s(b"+OK\r\n").c(b"PASS pw\r\n").s(b"+OK in\r\n").c(b"TOP 1 40\r\n")
        data = b"+OK top follows\r\n" + message + b".\r\n"
        t.s(data[:150]).s(data[150:400], drop=True).s(data[400:])
        t.c(b"QUIT\r\n").s(b"+OK bye\r\n").fin()
    cap = Capture()
    build(Tcp(cap, client=("10.0.0.1", 40000), server=("10.0.0.2", 110)).handshake())
    path = cap.write(tmp_path / "top-gap.pcap")
    result = run_cli("extract", str(path), "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.stderr
    import json
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    [entry] = index["messages"]
    assert entry["partial_by_request"] is False
    assert entry["incomplete_reason"] == "250 bytes of it are not in the capture (TCP gap)"
    assert (index["totals"]["incomplete"], index["totals"]["partial_by_request"]) == (1, 0)


def test_cleartext_after_starttls_is_not_called_encrypted(tmp_path: Path) -> None:
    _, text = one_session(tmp_path, 25, lambda t: t.s(b"220 mx ESMTP\r\n").c(b"EHLO c\r\n")
                          .s(b"250-mx\r\n250 STARTTLS\r\n").c(b"STARTTLS\r\n").s(b"220 go ahead\r\n")
                          .c(b"EHLO c\r\n").s(b"250 mx\r\n").c(b"MAIL FROM:<a@b.example>\r\n").s(b"250 ok\r\n")
                          .c(b"QUIT\r\n").s(b"221 bye\r\n").fin())
    assert "not visible (encrypted)" not in text and "not decrypted: logins" not in text


def test_mail_after_a_lost_hello_is_no_violation(tmp_path: Path) -> None:
    session, _ = one_session(tmp_path, 25, lambda t: t.s(b"220 mx ESMTP\r\n").c(b"EHLO client.example\r\n", drop=True)
                             .s(b"250 mx\r\n").c(b"NOOP\r\n").s(b"250 ok\r\n").c(b"RSET\r\n").s(b"250 ok\r\n")
                             .c(b"MAIL FROM:<a@b.example>\r\n").s(b"250 ok\r\n").c(b"QUIT\r\n").s(b"221 bye\r\n").fin())
    assert session["gaps"] and session["gaps"][0]["direction"] == "client"
    assert [a["kind"] for a in session["anomalies"] if a["kind"] == "mail-without-helo"] == []


def test_imap4rev2_allows_small_non_synchronizing_literals(tmp_path: Path) -> None:
    def login(size: int) -> list[str]:
        secret = b"s" * size
        session, _ = one_session(tmp_path, 143, lambda t: t.s(b"* OK [CAPABILITY IMAP4rev2] ready\r\n")
                                 .c(b"a1 LOGIN bob {%d+}\r\n%s\r\n" % (size, secret)).s(b"a1 OK in\r\n").fin())
        return [a["kind"] for a in session["anomalies"]]
    assert login(6) == []
    assert login(5000) == ["literal-plus-misused"]


def test_pipelining_the_server_did_not_offer_is_said_so(tmp_path: Path) -> None:
    def batch(hello: bytes, reply: bytes) -> str:
        _, text = one_session(tmp_path, 25, lambda t: t.s(b"220 mx ESMTP\r\n").c(hello).s(reply)
                              .c(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n")
                              .s(b"250 ok\r\n250 ok\r\n").c(b"QUIT\r\n").s(b"221 bye\r\n").fin())
        return text
    offered = batch(b"EHLO c\r\n", b"250-mx\r\n250 PIPELINING\r\n")
    assert "2 commands in one segment, sent without waiting for each reply (pipelining, RFC 2920)" in offered
    for hello, reply in ((b"HELO c\r\n", b"250 mx\r\n"), (b"EHLO c\r\n", b"250-mx\r\n250 8BITMIME\r\n")):
        text = batch(hello, reply)
        assert "2 commands in one segment, sent without waiting for each reply although the server did not " \
               "offer PIPELINING" in text


def test_pop3_a_second_pass_after_a_refused_one_needs_a_new_user(tmp_path: Path) -> None:
    retry, _ = one_session(tmp_path, 110, lambda t: t.s(b"+OK ready\r\n").c(b"USER bob\r\n").s(b"+OK\r\n")
                           .c(b"PASS wrong\r\n").s(b"-ERR [AUTH] no\r\n").c(b"PASS right\r\n").s(b"+OK in\r\n")
                           .c(b"QUIT\r\n").s(b"+OK bye\r\n").fin())
    assert [(a["kind"], a["detail"]) for a in retry["anomalies"]] == [
        ("pass-without-user", "PASS without a successful USER (the server refused the USER/PASS before it; "
                              "RFC 1939 7)")]
    again, _ = one_session(tmp_path, 110, lambda t: t.s(b"+OK ready\r\n").c(b"USER bob\r\n").s(b"+OK\r\n")
                           .c(b"PASS wrong\r\n").s(b"-ERR [AUTH] no\r\n").c(b"USER bob\r\n").s(b"+OK\r\n")
                           .c(b"PASS right\r\n").s(b"+OK in\r\n").c(b"QUIT\r\n").s(b"+OK bye\r\n").fin())
    assert again["anomalies"] == []
    assert [(a["username"], a["success"]) for a in again["auth"]] == [("bob", False), ("bob", True)]


def test_pop3_and_imap_challenges_that_are_base64_text_are_decoded(tmp_path: Path) -> None:
    import base64
    user, password = base64.b64encode(b"bob") + b"\r\n", base64.b64encode(b"pw") + b"\r\n"
    for port, build in (
        (143, lambda t: t.s(b"* OK ready\r\n").c(b"a1 AUTHENTICATE LOGIN\r\n").s(b"+ VXNlcm5hbWU6\r\n").c(user)
         .s(b"+ UGFzc3dvcmQ6\r\n").c(password).s(b"a1 OK in\r\n").c(b"a2 IDLE\r\n").s(b"+ idling\r\n")
         .c(b"DONE\r\n").s(b"a2 OK done\r\n").fin()),
        (110, lambda t: t.s(b"+OK ready\r\n").c(b"AUTH LOGIN\r\n").s(b"+ VXNlcm5hbWU6\r\n").c(user)
         .s(b"+ UGFzc3dvcmQ6\r\n").c(password).s(b"+OK in\r\n").fin()),
    ):
        cap = Capture()
        build(Tcp(cap, client=("10.0.0.1", 40000), server=("10.0.0.2", port)).handshake())
        text = run_cli("analyze", "--no-color", str(cap.write(tmp_path / "sasl.pcap"))).stdout  # explained
        assert text.count("↳ the challenge is base64 for “Username:”") == 1
        assert text.count("↳ the challenge is base64 for “Password:”") == 1
        assert text.count("the challenge is base64") == 2  # not "+ idling"


def test_mail_after_starttls_without_a_new_ehlo_is_a_violation(tmp_path: Path) -> None:
    """STARTTLS resets the session to just after the greeting (RFC 3207 4.2): the EHLO before it no longer
    counts, and MAIL needs a new one (RFC 5321 4.1.4). Here the client goes on in plaintext after the 220
    (as a decrypted session would), once without and once with its second EHLO."""
    def after_tls(hello: bytes) -> list[tuple[str, str]]:
        session, _ = one_session(tmp_path, 25, lambda t: t.s(b"220 mx ESMTP\r\n").c(b"EHLO c\r\n")
                                 .s(b"250-mx\r\n250 STARTTLS\r\n").c(b"STARTTLS\r\n").s(b"220 2.0.0 go ahead\r\n")
                                 .c(hello + b"MAIL FROM:<a@b.example>\r\n").s(b"250-mx\r\n250 ok\r\n" if hello
                                                                             else b"250 ok\r\n")
                                 .c(b"MAIL FROM:<c@b.example>\r\n").s(b"503 nested\r\n")
                                 .c(b"QUIT\r\n").s(b"221 bye\r\n").fin())
        return [(a["kind"], a["detail"]) for a in session["anomalies"] if a["kind"] == "mail-without-helo"]
    assert after_tls(b"") == [("mail-without-helo", "MAIL after STARTTLS without a new EHLO (RFC 3207 4.2: TLS "
                               "resets the session to just after the greeting, and RFC 5321 4.1.4 wants a hello "
                               "before MAIL)")]
    assert after_tls(b"EHLO c\r\n") == []
