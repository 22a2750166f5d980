"""POP3 and IMAP: the same events however the bytes are segmented, also around holes.

The engine's bar: every dissector yields the same events fed whole, byte by byte or split anywhere.
The sample streams check that on clean sessions; these random dialogues add what lossy captures of
pipelining clients hold (holes on either side, responses without their end, commands in batches),
where a decision may hang on bytes that have not all come yet. POP3 failed this before: a status
line answering a later command (``+OK``) was only recognised when its first bytes came in one piece.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from mt_popimap import Script, feed, normalized, resplit

from mailtrace.model import CLIENT, SERVER, StreamItem
from mailtrace.protocols.imap import Imap
from mailtrace.protocols.pop3 import Pop3

POP3_CLIENT = [b"USER bob\r\n", b"PASS x\r\n", b"STAT\r\n", b"LIST\r\n", b"RETR 1\r\n", b"TOP 1 2\r\n", b"UIDL\r\n",
               b"DELE 1\r\n", b"QUIT\r\n", b"CAPA\r\n", b"AUTH PLAIN\r\n", b"dGVzdA==\r\n", b"junk\r\n"]
POP3_SERVER = [b"+OK\r\n", b"-ERR no\r\n", b"+OK 2 messages\r\n1 100\r\n2 200\r\n.\r\n",
               b"+OK 120 octets\r\nSubject: a\r\n\r\nbody\r\n..dot\r\n.\r\n", b"+ \r\n", b"line\r\n", b".\r\n",
               b"+OKAY\r\n", b"-ERRATA\r\n"]
IMAP_CLIENT = [
    b"a1 LOGIN bob pw\r\n", b"a2 SELECT INBOX\r\n", b"a3 FETCH 1 BODY[]\r\n", b"a4 UID FETCH 1:* (FLAGS)\r\n",
    b"a5 APPEND INBOX {11}\r\n", b"Subject: x\r\n", b"a6 LOGOUT\r\n", b"a7 IDLE\r\n", b"DONE\r\n",
    b"a8 AUTHENTICATE PLAIN\r\n", b"dGVzdA==\r\n", b"a9 LOGIN {3}\r\n", b"bob {2}\r\n", b"pw\r\n",
]
IMAP_SERVER = [
    b"* OK ready\r\n", b"a1 OK done\r\n", b"a2 NO no\r\n", b"* 1 FETCH (BODY[] {20}\r\nSubject: a\r\n\r\nbody\r\n)\r\n",
    b"+ go\r\n", b"* 3 EXISTS\r\n", b"a3 OK\r\n", b"a5 OK APPEND\r\n", b"* BYE\r\n", b"a6 OK\r\n",
    b"* 2 FETCH (FLAGS (\\Seen))\r\n",
]


def dialogues(greeting: bytes, client: list[bytes], server: list[bytes]) -> st.SearchStrategy[list[StreamItem]]:
    step = st.one_of(
        st.tuples(st.just("gap"), st.sampled_from([CLIENT, SERVER]), st.integers(1, 60)),
        st.tuples(st.just("c"), st.lists(st.sampled_from(client), min_size=1, max_size=3)),
        st.tuples(st.just("s"), st.lists(st.sampled_from(server), min_size=1, max_size=3)),
    )

    def script(steps: list[Any]) -> list[StreamItem]:
        s = Script().s(greeting)
        for kind, *rest in steps:
            if kind == "gap":
                s.gap(rest[0], rest[1])
            elif kind == "c":
                s.c(b"".join(rest[0]))
            else:
                s.s(b"".join(rest[0]))
        return s.end()

    return st.lists(step, min_size=1, max_size=14).map(script)


def same_events_however_split(cls: type, items: list[StreamItem], sizes: list[int]) -> None:
    whole = normalized(feed(cls, items)[0])
    assert normalized(feed(cls, resplit(items, [1]))[0]) == whole
    assert normalized(feed(cls, resplit(items, sizes))[0]) == whole


@settings(max_examples=300, deadline=None)
@given(dialogues(b"+OK ready <1.2@x>\r\n", POP3_CLIENT, POP3_SERVER), st.lists(st.integers(1, 40), min_size=1,
                                                                               max_size=3))
def test_pop3_events_do_not_depend_on_segmentation(items: list[StreamItem], sizes: list[int]) -> None:
    same_events_however_split(Pop3, items, sizes)


@settings(max_examples=300, deadline=None)
@given(dialogues(b"* OK IMAP ready\r\n", IMAP_CLIENT, IMAP_SERVER), st.lists(st.integers(1, 40), min_size=1,
                                                                             max_size=3))
def test_imap_events_do_not_depend_on_segmentation(items: list[StreamItem], sizes: list[int]) -> None:
    same_events_however_split(Imap, items, sizes)


def test_pop3_status_line_after_an_unterminated_listing_found_byte_by_byte() -> None:
    """UIDL answered without its final '.', then the next command's answer: found whatever the split,
    and the '+' the status begins with stays on its line."""
    items = Script().s(b"+OK ready\r\n").c(b"UIDL\r\nSTAT\r\n").s(b"+OK\r\n1 abc\r\n").s(b"+OK 1 100\r\n").end()
    events = normalized(feed(Pop3, resplit(items, [1]))[0])
    assert events == normalized(feed(Pop3, items)[0])
    texts = [getattr(e, "lines", None) for e in events[0]]
    assert ("1 100",) in texts
    assert any(getattr(e, "kind", None) == "unterminated-response" for e in events[0])
