"""The cheap paths for connections that are not mail give the same verdicts as the full sniffer."""

from __future__ import annotations

import subprocess
import sys

from hypothesis import given
from hypothesis import strategies as st

from mailtrace.config import Config
from mailtrace.detect import Sniffer, rejects_first_bytes
from mailtrace.model import CLIENT, SERVER, Chunk

MAX = Config().max_sniff_bytes

SAMPLES = [
    b"",
    bytes(1448),
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(200),
    b"\x17\x03\x03\x05\xa0" + bytes(100),
    b"GET / HTTP/1.1\r\nHost: example.org\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n\r\n",
    b"CONNECT mail.example.org:25 HTTP/1.1\r\n\r\n",
    b"\x04\x01\x00\x19\x7f\x00\x00\x01\x00",
    b"\x05\x01\x00",
    b"220 mail.example.org ESMTP\r\n",
    b"250-mail.example.org\r\n",
    b"EHLO client.example.org\r\n",
    b"MAIL FROM:<a@b>\r\n",
    b"+OK POP3 ready\r\n",
    b"USER alice\r\n",
    b"* OK IMAP4rev1 ready\r\n",
    b"a1 LOGIN alice secret\r\n",
    b"\x00\x01 LOGIN alice secret\r\n",  # an IMAP tag may be any bytes
    b"   \r\n",
    b"x" * (MAX + 10),
    b"A" * MAX,
]


def sniffer_rejects(data: bytes, from_client: bool) -> bool:
    decision = Sniffer(MAX, {}).feed(Chunk(CLIENT if from_client else SERVER, data, 0.0, 1))
    return decision is not None and decision.protocol is None


def test_rejects_first_bytes_agrees_with_the_sniffer_on_samples() -> None:
    for data in SAMPLES:
        for from_client in (True, False):
            if rejects_first_bytes(data, from_client, MAX):
                assert sniffer_rejects(data, from_client), (data[:40], from_client)


@given(st.binary(max_size=64), st.booleans())
def test_rejects_first_bytes_never_rejects_what_the_sniffer_keeps(data: bytes, from_client: bool) -> None:
    if rejects_first_bytes(data, from_client, MAX):
        assert sniffer_rejects(data, from_client)


@given(st.sampled_from([b"EHLO", b"HELO", b"USER", b"CAPA", b"a1 LOGIN", b"220 ", b"+OK", b"* OK"]),
       st.binary(max_size=32), st.booleans())
def test_rejects_first_bytes_matches_the_sniffer_on_mail_like_starts(head: bytes, tail: bytes,
                                                                     from_client: bool) -> None:
    data = head + b" " + tail
    assert rejects_first_bytes(data, from_client, MAX) == sniffer_rejects(data, from_client)


def test_rejection_matches_sniffer_exactly_outside_proxies() -> None:
    for data in SAMPLES:
        for from_client in (True, False):
            if from_client and data[:1] in (b"C", b"\x04", b"\x05"):
                continue  # proxy handshakes: always left to the sniffer
            assert rejects_first_bytes(data, from_client, MAX) == sniffer_rejects(data, from_client), data[:40]


def test_analyze_does_not_load_the_dns_parser_until_a_dns_message_comes() -> None:
    code = "import sys, mailtrace.commands.analyze; assert 'dpkt' not in sys.modules, 'dpkt loaded'"
    subprocess.run([sys.executable, "-c", code], check=True)
