"""Received chains: path order, delays, and the notes an analyst needs."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mailtrace.mime import summarize
from mailtrace.received import parse_received, received_chain

# As in the lab's relay story: sendmail on mail.local.example, then Postfix on mx.remote.example.
LAB_CHAIN = [
    "from mail.local.example (mail.local.example [127.0.0.25])\r\n\tby mx.remote.example (Postfix) with ESMTP"
    " id 4F1C216C62A\r\n\tfor <bob@remote.example>; Thu, 26 Nov 2026 13:22:25 +0000 (UTC)",
    "from client.local.example (client.local.example [127.0.0.10])\r\n\tby mail.local.example"
    " (8.17.1.9/8.17.1.9) with ESMTP id 6AQDMOpI000661\r\n\tfor <bob@remote.example>;"
    " Thu, 26 Nov 2026 13:22:24 GMT",
]


def test_lab_chain_in_path_order() -> None:
    first, second = received_chain(LAB_CHAIN)
    assert (first.index, second.index) == (1, 2)
    assert first.from_ == "client.local.example"
    assert first.from_detail == "client.local.example [127.0.0.10]"
    assert first.from_ip == "127.0.0.10"
    assert first.by == "mail.local.example" and first.with_ == "ESMTP"
    assert first.id == "6AQDMOpI000661" and first.for_ == "bob@remote.example"
    assert first.date == "Thu, 26 Nov 2026 13:22:24 GMT"
    assert first.delay is None
    assert second.from_ip == "127.0.0.25" and second.by == "mx.remote.example"
    assert second.delay == 1.0
    assert first.notes == () and second.notes == ()


def test_chain_from_a_message() -> None:
    raw = b"".join(b"Received: " + v.encode() + b"\r\n" for v in LAB_CHAIN) + b"Subject: x\r\n\r\nbody\r\n"
    hops = received_chain(summarize(raw).header_values("received"))
    assert [h.by for h in hops] == ["mail.local.example", "mx.remote.example"]


def test_timestamp_goes_backwards() -> None:
    hops = received_chain(
        [
            "from b.example by c.example with ESMTP; Tue, 14 Nov 2023 22:00:00 +0000",
            "from a.example by b.example with ESMTP; Tue, 14 Nov 2023 22:05:00 +0000",
        ]
    )
    assert hops[1].delay == -300.0
    assert "timestamp goes backwards (-300 s)" in hops[1].notes


def test_time_zones_are_respected() -> None:
    hops = received_chain(
        [
            "by c.example; Tue, 14 Nov 2023 23:00:30 +0100",
            "by b.example; Tue, 14 Nov 2023 22:00:00 +0000",
        ]
    )
    assert hops[1].delay == 30.0


def test_unparseable_hop_and_date() -> None:
    (hop,) = received_chain(["(qmail 12345 invoked by uid 89); garbage date"])
    assert "unparseable hop" in hop.notes and "unparseable date" in hop.notes
    assert hop.timestamp is None
    (nodate,) = received_chain(["from x.example by y.example"])
    assert "no date" in nodate.notes


def test_private_address_claimed_by_public_hop() -> None:
    hops = received_chain(
        [
            "from edge.example.com (edge.example.com [93.184.215.14]) by mx.other.example;"
            " Tue, 14 Nov 2023 22:00:05 +0000",
            "from laptop (unknown [10.1.2.3]) by edge.example.com; Tue, 14 Nov 2023 22:00:00 +0000",
        ]
    )
    assert hops[0].from_ip == "10.1.2.3"
    assert "private address claimed by public hop" in hops[0].notes
    assert hops[1].notes == ()


def test_ipv6_and_literal_names() -> None:
    hop = parse_received(
        "from [IPv6:2001:db8::1] (helo=x) by mx.example with ESMTPSA id abc; Mon, 1 Jan 2024 00:00:00 -0000"
    )
    assert hop.from_ == "[IPv6:2001:db8::1]" and hop.from_ip == "2001:db8::1"
    assert hop.with_ == "ESMTPSA" and hop.timestamp == 1704067200.0
    gmail = parse_received(
        "by 2002:a05:6a10:5a8b:b0:4a1:2b3c:4d5e with SMTP id x12csp1234567pxb;\r\n"
        "        Tue, 14 Nov 2023 14:13:20 -0800 (PST)"
    )
    assert gmail.by == "2002:a05:6a10:5a8b:b0:4a1:2b3c:4d5e" and gmail.with_ == "SMTP"
    assert gmail.timestamp == 1700000000.0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=80), max_size=5))
def test_never_raises(values: list[str]) -> None:
    hops = received_chain(values)
    assert [h.index for h in hops] == list(range(1, len(values) + 1))


# --------------------------------------------------------------------------- header explanations


def test_header_explanations() -> None:
    from mailtrace.headerinfo import CATALOGUES, explain

    for name in ("To", "Cc", "Bcc", "From", "Sender", "Received", "Return-Path", "Date", "Reply-To",
                 "Message-ID", "In-Reply-To", "References", "Keywords", "Subject", "MIME-Version",
                 "Content-Type", "Content-Transfer-Encoding", "Content-ID", "Content-Description",
                 "Authentication-Results", "Received-SPF", "DKIM-Signature", "ARC-Seal",
                 "List-Unsubscribe", "User-Agent", "X-Mailer"):  # fmt: skip
        text = explain(name)
        assert text and text != explain("No-Such-Header"), name
    assert explain("X-Whatever-Private") == "private extension header (X-)"
    assert explain("list-something-new") == explain("List-*")
    assert explain("ARC-New-Field").startswith("Authenticated Received Chain")
    assert explain("Subject", "xx") == explain("subject")  # unknown language: English
    german = CATALOGUES.get("de")
    CATALOGUES["de"] = {"subject": "Betreff: kurzes Thema der Nachricht."}
    try:
        assert explain("Subject", "de") == "Betreff: kurzes Thema der Nachricht."
        assert explain("To", "de") == explain("To")  # missing entries fall back to English
    finally:
        if german is None:
            del CATALOGUES["de"]
        else:
            CATALOGUES["de"] = german  # the real German catalogue (tests/test_catalog.py checks it)
