"""Findings that no shared capture shows, on pcaps built with dpkt (see mt_findings_lab.PcapBuilder).

Addresses: 45.33.32.156 and 198.18.x are "attackers"; 93.184.216.34 is mx.example.org (public);
10.x clients are on a private network.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mt_findings_lab import (
    ATTACKER,
    EHLO_REPLY,
    GREETING,
    MX,
    SUBMISSION,
    TLS_BYTES,
    PcapBuilder,
    analyze,
    envelope,
    failed_login,
    frames_of,
    plain,
)

from mailtrace.findings import DnsObservation, FindingsCollector, FindingsConfig, Severity
from mailtrace.findings.cross import dnsbl_query

# --------------------------------------------------------------------------- brute force


def test_bruteforce_from_one_client_then_success_is_high(tmp_path: Path) -> None:
    b = PcapBuilder()
    for _ in range(5):
        failed_login(b, ATTACKER, "alice")
    path = b.write(tmp_path / "brute.pcap")
    run = analyze(path)
    found = run.of("auth-bruteforce")
    assert len(found) == 1 and found[0].severity is Severity.MEDIUM
    assert found[0].title == "Brute force from 45.33.32.156: 5 failed logins"
    assert found[0].session is None  # five sessions
    assert set(found[0].frames) == {a.frame for s in run.sessions for a in s.auth}

    failed_login(b, ATTACKER, "alice", ok=True)
    run = analyze(b.write(tmp_path / "brute2.pcap"))
    found = run.of("auth-bruteforce")
    assert len(found) == 1 and found[0].severity is Severity.HIGH
    assert "Then a login succeeded (user alice, session 6" in found[0].detail


def test_bruteforce_threshold_is_configurable(tmp_path: Path) -> None:
    b = PcapBuilder()
    for _ in range(5):
        failed_login(b, ATTACKER, "alice")
    path = b.write(tmp_path / "brute.pcap")
    assert analyze(path, failed_login_threshold=6).of("auth-bruteforce") == []
    assert len(analyze(path, failed_login_threshold=5).of("auth-bruteforce")) == 1
    b2 = PcapBuilder()
    for _ in range(4):
        failed_login(b2, ATTACKER, "alice")
    assert analyze(b2.write(tmp_path / "four.pcap")).of("auth-bruteforce") == []


def test_password_spraying(tmp_path: Path) -> None:
    b = PcapBuilder()
    for user in ("ann", "ben", "cid", "dan", "eve", "fay"):
        failed_login(b, ATTACKER, user, password="Summer2024!")
    found = analyze(b.write(tmp_path / "spray.pcap")).of("auth-bruteforce")
    assert len(found) == 1
    assert found[0].title == "Password spraying from 45.33.32.156: 6 users tried"
    assert "mostly with the same password" in found[0].detail


def test_distributed_bruteforce_against_one_user(tmp_path: Path) -> None:
    b = PcapBuilder()
    for i in range(5):
        failed_login(b, f"198.18.0.{i + 1}", "root", password=f"guess{i}")
    found = analyze(b.write(tmp_path / "distributed.pcap")).of("auth-bruteforce")
    assert [f.title for f in found] == ["Brute force against user root from 5 clients"]


# --------------------------------------------------------------------------- STARTTLS


def test_starttls_refused_then_password_in_cleartext(tmp_path: Path) -> None:
    b = PcapBuilder()
    c = b.conversation("10.1.2.3", SUBMISSION)
    c.talk(
        GREETING,
        "EHLO laptop\r\n",
        EHLO_REPLY,
        "STARTTLS\r\n",
        "S:454 4.7.0 TLS not available\r\n",
        f"AUTH PLAIN {plain('bob', 'hunter2')}\r\n",
        "S:235 2.7.0 Authentication successful\r\n",
        "QUIT\r\n",
        "S:221 Bye\r\n",
    )
    c.close()
    run = analyze(b.write(tmp_path / "refused.pcap"))
    refused = run.of("starttls-refused-cleartext")
    assert len(refused) == 1 and refused[0].severity is Severity.HIGH
    starttls = next(x.frame for x in run.sessions[0].commands if x.verb == "STARTTLS")
    reply = next(r.frame for r in run.sessions[0].replies if r.status == "454")
    assert {starttls, reply} <= set(refused[0].frames)
    assert "then 1 login" in refused[0].detail
    assert len(run.of("cleartext-credentials")) == 1
    assert run.of("starttls-not-used") == []  # the client asked for it


def test_starttls_injection(tmp_path: Path) -> None:
    b = PcapBuilder()
    c = b.conversation(ATTACKER, MX)
    c.talk(
        GREETING,
        "EHLO x\r\n",
        EHLO_REPLY,
        "STARTTLS\r\nMAIL FROM:<evil@attacker.example>\r\n",
        "S:220 2.0.0 Ready to start TLS\r\n",
    )
    c.client_says(TLS_BYTES)
    c.close()
    run = analyze(b.write(tmp_path / "inject.pcap"))
    found = run.of("starttls-injection")
    assert len(found) == 1 and found[0].severity is Severity.HIGH
    assert "CVE-2011-0411" in (found[0].reference or "")
    assert run.sessions[0].tls == "starttls"


def test_login_before_starttls_is_cleartext(tmp_path: Path) -> None:
    b = PcapBuilder()
    c = b.conversation("10.1.2.3", SUBMISSION)
    c.talk(
        GREETING,
        "EHLO laptop\r\n",
        EHLO_REPLY,
        f"AUTH PLAIN {plain('bob', 'hunter2')}\r\n",
        "S:235 2.7.0 Authentication successful\r\n",
        "STARTTLS\r\n",
        "S:220 2.0.0 Ready to start TLS\r\n",
    )
    c.client_says(TLS_BYTES)
    c.close()
    run = analyze(b.write(tmp_path / "early.pcap"), show_secrets=True)
    assert run.sessions[0].tls == "starttls"
    found = run.of("cleartext-credentials")
    assert len(found) == 1
    assert "before STARTTLS" in found[0].detail and '"hunter2"' in found[0].detail


def test_cleartext_on_an_implicit_tls_port_is_cleartext(tmp_path: Path) -> None:
    """Port 465 carrying cleartext (the capture lost the banner; the client's first bytes are not TLS):
    the session is ``tls: none`` with a plaintext-after-tls anomaly, and its login crossed the wire in
    the clear, whatever the port promised (its TlsStart row does not make it protected)."""
    b = PcapBuilder()
    c = b.conversation("10.1.2.3", ("93.184.216.34", 465))
    c.talk("EHLO laptop\r\n", EHLO_REPLY, f"AUTH PLAIN {plain('bob', 'hunter2')}\r\n",
           "S:235 2.7.0 Authentication successful\r\n")
    c.close()
    run = analyze(b.write(tmp_path / "clear465.pcap"))
    session = run.sessions[0]
    assert session.tls == "none" and [a.kind for a in session.anomalies] == ["plaintext-after-tls"]
    found = run.of("cleartext-credentials")
    assert len(found) == 1 and found[0].severity is Severity.HIGH


def test_starttls_offered_but_not_used(tmp_path: Path) -> None:
    b = PcapBuilder()
    envelope(b, "10.1.2.3", "a@corp.example", "bob@example.org", "250 2.1.5 Ok")
    # a second session from the same client to the same server is not reported again
    envelope(b, "10.1.2.3", "a@corp.example", "bob@example.org", "250 2.1.5 Ok")
    c = b.conversation("10.1.2.3", MX)
    c.talk(
        GREETING,
        "EHLO x\r\n",
        EHLO_REPLY,
        "MAIL FROM:<a@corp.example>\r\n",
        "S:250 Ok\r\n",
        "QUIT\r\n",
        "S:221 Bye\r\n",
    )
    c.close()
    found = analyze(b.write(tmp_path / "plain.pcap")).of("starttls-not-used")
    # the first two EHLO replies do not offer STARTTLS; the third does
    assert [(f.session, f.severity) for f in found] == [(3, Severity.LOW)]


# --------------------------------------------------------------------------- relaying and probing


def test_open_relay_guessed_given_and_trusted(tmp_path: Path) -> None:
    b = PcapBuilder()
    envelope(b, ATTACKER, "x@spam.example", "victim@other.example", "250 2.1.5 Ok")
    path = b.write(tmp_path / "relay.pcap")
    guessed = analyze(path).of("open-relay-attempt")
    assert len(guessed) == 1 and guessed[0].severity is Severity.MEDIUM
    assert "guessed" in guessed[0].detail and "example.org" in guessed[0].detail
    given = analyze(path, local_domains=frozenset({"example.org"})).of("open-relay-attempt")
    assert len(given) == 1 and given[0].severity is Severity.HIGH
    assert "open relay" in given[0].detail

    b2 = PcapBuilder()
    envelope(b2, ATTACKER, "x@spam.example", "bob@mail.example.org", "250 2.1.5 Ok")  # a served domain
    envelope(b2, "10.9.8.7", "x@corp.example", "victim@other.example", "250 2.1.5 Ok")  # mynetworks
    run = analyze(b2.write(tmp_path / "relay2.pcap"))
    assert [(f.session, f.severity) for f in run.of("open-relay-attempt")] == [(2, Severity.INFO)]
    (private,) = run.of("open-relay-attempt")  # a private client: expected, but the guess is still said
    assert "private or loopback address" in private.detail
    assert "served domains were guessed from the server's name" in private.detail
    assert "--local-domains" in private.detail


def test_relay_denied(tmp_path: Path) -> None:
    b = PcapBuilder()
    envelope(
        b,
        ATTACKER,
        "x@spam.example",
        "victim@other.example",
        "554 5.7.1 <victim@other.example>: Relay access denied",
    )
    run = analyze(b.write(tmp_path / "denied.pcap"))
    assert len(run.of("relay-denied")) == 1
    assert run.of("open-relay-attempt") == []
    assert run.of("spam-rejected") == []  # told once, as relay-denied


def test_rcpt_probing_across_sessions(tmp_path: Path) -> None:
    b = PcapBuilder()
    for name in ("admin", "info", "sales", "jobs", "hr"):
        envelope(
            b,
            ATTACKER,
            "x@spam.example",
            f"{name}@example.org",
            f"550 5.1.1 <{name}@example.org>: Recipient address rejected: User unknown in local recipient "
            "table",
        )
    run = analyze(b.write(tmp_path / "probe.pcap"))
    found = run.of("user-enumeration")
    assert len(found) == 1 and found[0].severity is Severity.MEDIUM
    assert found[0].title == "RCPT probing by 45.33.32.156: 5 unknown recipients"
    assert run.result().spam["unknown_recipients"] == 5


def test_greylisting_retry_and_no_retry(tmp_path: Path) -> None:
    b = PcapBuilder()
    deferred = "450 4.2.0 <bob@example.org>: Recipient address rejected: Greylisted, see http://postgrey/"
    envelope(b, "203.0.113.9", "list@news.example", "bob@example.org", deferred)
    envelope(b, "203.0.113.9", "list@news.example", "bob@example.org", "250 2.1.5 Ok", at=b.ts + 300)
    envelope(b, ATTACKER, "x@spam.example", "bob@example.org", deferred)
    run = analyze(b.write(tmp_path / "grey.pcap"))
    found = run.of("greylisting")
    assert len(found) == 2
    retried = next(f for f in found if "accepted" in f.title)
    assert retried.session == 2 and "First deferred in session 1" in retried.detail
    assert "accepted 30" in retried.detail  # ~300 s later
    lonely = next(f for f in found if "no retry" in f.title)
    assert lonely.session == 3
    assert run.result().spam["greylist_deferrals"] == 2


def test_spam_rejection_by_dnsbl(tmp_path: Path) -> None:
    b = PcapBuilder()
    envelope(
        b,
        ATTACKER,
        "x@spam.example",
        "bob@example.org",
        "554 5.7.1 Service unavailable; Client host [45.33.32.156] blocked using zen.spamhaus.org",
    )
    run = analyze(b.write(tmp_path / "rbl.pcap"))
    found = run.of("spam-rejected")
    assert len(found) == 1 and "dnsbl" in found[0].title
    assert run.of("relay-denied") == []
    assert run.result().spam["rejections"] == {"dnsbl": 1}


# --------------------------------------------------------------------------- messages and protocol


def data_session(b: PcapBuilder, body: bytes, mail_from: str = "bulk@mailer.example") -> None:
    c = b.conversation(ATTACKER, MX)
    c.talk(
        GREETING,
        "EHLO x\r\n",
        "S:250 mx.example.org\r\n",
        f"MAIL FROM:<{mail_from}>\r\n",
        "S:250 Ok\r\n",
        "RCPT TO:<bob@example.org>\r\n",
        "S:250 Ok\r\n",
        "DATA\r\n",
        "S:354 End data with <CR><LF>.<CR><LF>\r\n",
    )
    c.client_says(body)
    c.talk("S:250 2.0.0 Ok: queued as 4ABC\r\n", "QUIT\r\n", "S:221 Bye\r\n")
    c.close()


PHISH = (
    b"Received: from mail.example.org (mail.example.org [93.184.216.34])\r\n"
    b"\tby mx.victim.example with ESMTP; Tue, 14 Nov 2023 22:13:20 +0000\r\n"
    b"Received: from internal.bank.example ([10.0.0.5])\r\n"
    b"\tby mail.bank.example with ESMTP; Wed, 15 Nov 2023 01:13:20 +0000\r\n"
    b"Authentication-Results: mx.victim.example; spf=softfail smtp.mailfrom=mailer.example;\r\n"
    b"\tdkim=fail header.d=bank.example; dmarc=fail (p=reject) header.from=spam.example\r\n"
    b"DKIM-Signature: v=1; a=rsa-sha256; d=bank.example; s=sel1;\r\n\th=from:subject; bh=AAAA; b=BBBB\r\n"
    b'From: "support@bank.example" <phish@spam.example>\r\n'
    b"To: bob@example.org\r\nSubject: Your account\r\nDate: Tue, 14 Nov 2023 22:13:00 +0000\r\n\r\n"
    b"Click here.\r\n.\r\n"
)


def test_phishing_message_headers(tmp_path: Path) -> None:
    b = PcapBuilder()
    data_session(b, PHISH)
    run = analyze(b.write(tmp_path / "phish.pcap"))
    assert len(run.sessions[0].messages) == 1
    verdict = run.of("spam-verdict")
    assert len(verdict) == 1 and verdict[0].severity is Severity.LOW
    assert "spf=softfail" in verdict[0].detail and "dmarc=fail" in verdict[0].detail
    assert "d=bank.example s=sel1" in verdict[0].detail
    mismatch = run.of("envelope-mismatch")
    assert len(mismatch) == 1 and mismatch[0].severity is Severity.LOW
    assert "MAIL FROM mailer.example vs From spam.example" in mismatch[0].title
    spoof = run.of("display-name-spoof")
    assert len(spoof) == 1 and "support@bank.example" in spoof[0].title
    chain = run.of("received-chain-suspicious")
    assert len(chain) == 1 and chain[0].severity is Severity.MEDIUM
    assert "time runs backwards" in chain[0].detail
    assert "may have been written by the sender" in chain[0].detail
    stats = run.result()
    assert stats.spam["spf"] == {"softfail": 1} and stats.spam["dmarc"] == {"fail": 1}
    assert stats.spam["dkim_domains"] == [("bank.example", 1)]


def test_aligned_dkim_makes_envelope_mismatch_info(tmp_path: Path) -> None:
    b = PcapBuilder()
    data_session(
        b,
        b"DKIM-Signature: v=1; d=example.com; s=s1; b=x\r\nFrom: Ann <ann@example.com>\r\n"
        b"Subject: hi\r\n\r\nhi\r\n.\r\n",
        mail_from="bounces+123@lists.example.net",
    )
    run = analyze(b.write(tmp_path / "list.pcap"))
    assert [f.severity for f in run.of("envelope-mismatch")] == [Severity.INFO]
    assert run.of("received-chain-suspicious") == [] and run.of("display-name-spoof") == []


def test_smtp_smuggling_mixed_line_endings(tmp_path: Path) -> None:
    b = PcapBuilder()
    data_session(
        b,
        b"From: a@mailer.example\r\n\r\nhello\r\n.\nMAIL FROM:<admin@example.org>\r\n"
        b"RCPT TO:<bob@example.org>\r\nDATA\r\nFrom: admin@example.org\r\n\r\nowned\r\n.\r\n",
    )
    found = analyze(b.write(tmp_path / "smuggle.pcap")).of("smtp-smuggling")
    assert len(found) == 1 and found[0].severity is Severity.HIGH
    assert "<CR><LF>.<LF>" in found[0].detail and "The server accepted the message (250)" in found[0].detail


def test_client_talking_before_the_greeting(tmp_path: Path) -> None:
    b = PcapBuilder()
    c = b.conversation(ATTACKER, MX)
    c.talk("EHLO bot\r\n", GREETING, "S:250 mx.example.org\r\n", "QUIT\r\n", "S:221 Bye\r\n")
    c.close()
    run = analyze(b.write(tmp_path / "pregreet.pcap"))
    found = [f for f in run.of("protocol-violation") if "before the SMTP greeting" in f.title]
    assert len(found) == 1 and found[0].severity is Severity.MEDIUM
    ehlo = run.sessions[0].commands[0].frame
    assert ehlo in found[0].frames


def test_data_without_rcpt(tmp_path: Path) -> None:
    b = PcapBuilder()
    c = b.conversation(ATTACKER, MX)
    c.talk(
        GREETING,
        "EHLO x\r\n",
        "S:250 mx.example.org\r\n",
        "MAIL FROM:<a@b.example>\r\n",
        "S:250 Ok\r\n",
        "DATA\r\n",
        "S:554 5.5.1 Error: no valid recipients\r\n",
        "QUIT\r\n",
        "S:221 Bye\r\n",
    )
    c.close()
    run = analyze(b.write(tmp_path / "norcpt.pcap"))
    data = next(x.frame for x in run.sessions[0].commands if x.verb == "DATA")
    found = [f for f in run.of("protocol-violation") if f.detail.startswith("data-without-rcpt")]
    assert len(found) == 1 and found[0].frames == (data,)


# --------------------------------------------------------------------------- DNSBL hook and limits


def test_dnsbl_query_names() -> None:
    assert dnsbl_query("2.0.0.127.zen.spamhaus.org.") == ("127.0.0.2", "zen.spamhaus.org")
    assert dnsbl_query("156.32.33.45.bl.spamcop.net") == ("45.33.32.156", "bl.spamcop.net")
    assert dnsbl_query("4.3.2.1.in-addr.arpa") is None  # a PTR look-up, not a blocklist
    assert dnsbl_query("www.example.org") is None
    assert dnsbl_query("spam.example.dbl.spamhaus.org") == ("spam.example", "dbl.spamhaus.org")
    nibbles = ".".join(reversed("20010db8000000000000000000000001"))
    assert dnsbl_query(f"{nibbles}.zen.spamhaus.org") == ("2001:db8::1", "zen.spamhaus.org")


def test_dnsbl_hook_makes_findings_once_per_subject() -> None:
    collector = FindingsCollector()
    listed = collector.dns(
        DnsObservation(
            frame=7,
            ts=1.0,
            resolver_client="93.184.216.34",
            qname="156.32.33.45.zen.spamhaus.org",
            answers=("127.0.0.4",),
            rcode="NOERROR",
        )
    )
    assert listed is not None and listed.severity is Severity.LOW and "127.0.0.4" in listed.title
    assert (
        collector.dns(
            DnsObservation(
                frame=9,
                ts=2.0,
                resolver_client="93.184.216.34",
                qname="156.32.33.45.zen.spamhaus.org",
                answers=("127.0.0.4",),
            )
        )
        is None
    )
    clean = collector.dns(
        DnsObservation(
            frame=11,
            ts=3.0,
            resolver_client="93.184.216.34",
            qname="8.8.8.8.zen.spamhaus.org",
            rcode="NXDOMAIN",
        )
    )
    assert clean is not None and clean.severity is Severity.INFO and "not listed" in clean.title
    assert collector.dns(DnsObservation(frame=12, ts=4.0, resolver_client="x", qname="example.org")) is None
    assert collector.summary()["dnsbl_lookups"] == 3


def test_findings_are_capped_keeping_the_most_severe(tmp_path: Path) -> None:
    b = PcapBuilder()
    for i in range(4):  # each: cleartext-credentials (high) + auth-before-tls (low, once) + starttls-not-used
        failed_login(b, f"10.0.0.{i + 1}", f"user{i}")
    path = b.write(tmp_path / "many.pcap")
    full = analyze(path)
    total = len(full.findings.findings())
    capped = analyze(path, max_findings=4)
    kept = capped.findings.findings()
    assert len(kept) == 4 and total > 4
    assert all(f.severity is Severity.HIGH for f in kept)
    assert capped.findings.dropped == total - 4
    assert capped.findings.summary()["total"] == total  # counted, though not kept


@pytest.mark.parametrize(("tracked", "kept"), [(1, ["198.18.1.6"]), (3, ["198.18.1.1", "198.18.1.6"])])
def test_max_tracked_bounds_the_trackers(tmp_path: Path, tracked: int, kept: list[str]) -> None:
    """Six clients, one failed login each: when the table is full, half of it goes (the fewest events,
    then the oldest first) and makes room for the new key; what went is counted as untracked."""
    b = PcapBuilder()
    for i in range(6):
        failed_login(b, f"198.18.1.{i + 1}", f"u{i}")
    run = analyze(b.write(tmp_path / "tracked.pcap"), max_tracked=tracked, failed_login_threshold=1)
    assert list(run.findings.logins.by_client.tallies) == kept
    assert run.findings.logins.by_client.untracked == 6 - len(kept)
    assert all("past the tracking limit" in f.detail for f in run.of("auth-bruteforce"))


def test_one_off_keys_first_do_not_hide_a_brute_force(tmp_path: Path) -> None:
    """A tracker filled with one-off keys first (a scan, a botnet's single tries) keeps the key that
    repeats: the brute force that comes after them is still found."""
    b = PcapBuilder()
    for i in range(12):
        failed_login(b, f"198.18.2.{i + 1}", f"once{i}")
    for _ in range(5):
        failed_login(b, "203.0.113.66", "admin")
    run = analyze(b.write(tmp_path / "late.pcap"), max_tracked=4, failed_login_threshold=5)
    [finding] = run.of("auth-bruteforce")
    assert finding.title == "Brute force from 203.0.113.66: 5 failed logins"
    assert "past the tracking limit" in finding.detail
    assert run.findings.logins.by_client.tallies["203.0.113.66"].count == 5
    assert len(run.findings.logins.by_client.tallies) <= 4


def test_config_defaults() -> None:
    config = FindingsConfig()
    assert (
        config.failed_login_threshold == 5 and not config.show_secrets and config.local_domains == frozenset()
    )
    assert frames_of([]) == set()


# --------------------------------------------------------------------------- IMAP logins


IMAP = ("93.184.216.40", 143)


def test_imap_authenticate_plain_in_cleartext(tmp_path: Path) -> None:
    """AUTHENTICATE PLAIN with the response on its own line (after "+ "): the decoded user and password
    are cleartext credentials, exactly as LOGIN's; the frame is the one that carried the response."""
    b = PcapBuilder()
    c = b.conversation("10.1.2.3", IMAP)
    c.talk(
        "S:* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n",
        "a1 AUTHENTICATE PLAIN\r\n",
        "S:+ \r\n",
        f"{plain('carol', 's3cret!')}\r\n",
        "S:a1 OK [CAPABILITY IMAP4rev1] Logged in\r\n",
        "a2 LOGOUT\r\n",
        "S:* BYE\r\na2 OK Logout completed\r\n",
    )
    c.close()
    run = analyze(b.write(tmp_path / "imap-auth.pcap"), show_secrets=True)
    [session] = run.sessions
    assert session.protocol == "imap" and session.user == "carol"
    [attempt] = session.auth
    assert (attempt.mechanism, attempt.username, attempt.success) == ("PLAIN", "carol", True)
    found = run.of("cleartext-credentials")
    assert len(found) == 1
    assert found[0].severity == Severity.HIGH and found[0].session == 1
    assert "carol" in found[0].title and '"s3cret!"' in found[0].detail
    # frames: SYN, SYN/ACK, ACK, greeting, AUTHENTICATE (5), "+ ", the response (7), OK (8)
    assert (attempt.first_frame, attempt.frame) == (5, 8)
    assert found[0].frames == (5, 7, 8)  # the command, the frame that carried the password, the verdict


def test_imap_login_failed_then_accepted(tmp_path: Path) -> None:
    b = PcapBuilder()
    c = b.conversation("10.1.2.3", IMAP)
    c.talk(
        "S:* OK ready\r\n",
        'a1 LOGIN dave "wrong"\r\n',
        "S:a1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n",
        'a2 LOGIN dave "right"\r\n',
        "S:a2 OK Logged in\r\n",
    )
    c.close()
    run = analyze(b.write(tmp_path / "imap-login.pcap"))
    assert [(a.username, a.success) for a in run.sessions[0].auth] == [("dave", False), ("dave", True)]
    found = run.of("cleartext-credentials")
    assert found and all("right" not in f.detail and "wrong" not in f.detail for f in found)  # no --show-secrets


def test_a_finding_cites_the_rfcs_of_its_sessions_protocol(tmp_path: Path) -> None:
    b = PcapBuilder()
    c = b.conversation("10.1.2.3", IMAP)
    c.talk("S:* OK ready\r\n", 'a1 LOGIN erin "pw"\r\n', "S:a1 OK Logged in\r\n")
    c.close()
    c = b.conversation("10.1.2.3", SUBMISSION)
    c.talk(GREETING, "EHLO laptop\r\n", EHLO_REPLY, f"AUTH PLAIN {plain('erin', 'pw')}\r\n",
           "S:235 2.7.0 Authentication successful\r\n")
    c.close()
    found = {f.session: f.reference for f in analyze(b.write(tmp_path / "refs.pcap")).of("cleartext-credentials")}
    assert found == {1: "RFC 8314; RFC 9051 §11.1", 2: "RFC 8314; RFC 4954 §4"}


def test_smtp_dissector_violations_become_findings(tmp_path: Path) -> None:
    """A reply code no RFC defines and a message over the server's SIZE maximum are protocol violations."""
    b = PcapBuilder()
    c = b.conversation("10.1.2.3", MX)
    c.talk(GREETING, "EHLO x\r\n", "S:250-mx.example.org\r\n250 SIZE 20\r\n", "MAIL FROM:<a@corp.example>\r\n",
           "S:299 odd but fine\r\n", "RCPT TO:<bob@example.org>\r\n", "S:250 Ok\r\n", "DATA\r\n", "S:354 go\r\n",
           "Subject: x\r\n\r\n" + "y" * 40 + "\r\n.\r\n", "S:250 Ok\r\n")
    c.close()
    found = analyze(b.write(tmp_path / "violations.pcap")).of("protocol-violation")
    titles = sorted(f.title for f in found)
    assert titles == ["SMTP: messages over the size limit the server announced (1×)",
                      "SMTP: reply codes no RFC defines (1×)"]
    assert all(f.severity == Severity.LOW for f in found)


def test_message_lines_over_998_characters_are_a_violation(tmp_path: Path) -> None:
    """RFC 5322 §2.1.1: the summary counts the long lines, the finding names the worst message."""
    b = PcapBuilder()
    c = b.conversation("10.1.2.3", MX)
    body = "Subject: long\r\n\r\nshort\r\n" + "z" * 999 + "\r\n" + "w" * 998 + "\r\n" + "q" * 2500 + "\r\n"
    c.talk(GREETING, "EHLO x\r\n", "S:250 mx.example.org\r\n", "MAIL FROM:<a@corp.example>\r\n", "S:250 Ok\r\n",
           "RCPT TO:<bob@example.org>\r\n", "S:250 Ok\r\n", "DATA\r\n", "S:354 go\r\n", body + ".\r\n",
           "S:250 Ok\r\n", "MAIL FROM:<a@corp.example>\r\n", "S:250 Ok\r\n", "RCPT TO:<bob@example.org>\r\n",
           "S:250 Ok\r\n", "DATA\r\n", "S:354 go\r\n", "Subject: fine\r\n\r\n" + "w" * 998 + "\r\n.\r\n",
           "S:250 Ok\r\n")
    c.close()
    run = analyze(b.write(tmp_path / "long.pcap"))
    first, second = run.sessions[0].messages
    assert (first.summary.long_lines, first.summary.longest_line) == (2, 2500)
    assert "2 lines over 998 characters (longest 2,500)" in first.summary.defects
    assert (second.summary.long_lines, second.summary.longest_line) == (0, 0)
    [found] = [f for f in run.of("protocol-violation") if f.detail.startswith("long-message-line")]
    assert found.title == "SMTP: messages with lines over 998 characters (1×)"
    assert found.frames == (first.first_frame,) and found.severity is Severity.LOW
    assert "message 1 (smtp-data" in found.detail and "(longest 2,500)" in found.detail
