"""Synthetic mail captures for the extraction and message-view tests (what no real capture has).

Built on :mod:`tests.pcapgen`: SMTP conversations carrying any message bytes (dot-stuffed, cut into
MSS-sized segments), optionally interleaved with each other, plus helpers to run ``mailtrace
extract`` in-process and to read what it wrote.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from mailtrace.capture.reader import open_capture
from mailtrace.config import Config
from mailtrace.extract import ExtractOptions, Extractor
from mailtrace.pipeline import Analyzer
from mailtrace.session import Session
from tests.pcapgen import Capture, Tcp
from tests.support import run_cli

MSS = 1460


def dot_stuff(message: bytes) -> bytes:
    """SMTP transparency plus the end marker (the message must end with CRLF)."""
    assert message.endswith(b"\r\n")
    body = (b"." + message if message.startswith(b".") else message).replace(b"\r\n.", b"\r\n..")
    return body + b".\r\n"


def smtp_steps(messages: Sequence[bytes], *, mail_from: str = "alice@example.com",
               rcpts: Sequence[tuple[str, int]] = (("bob@example.org", 250),)) -> list[tuple[str, bytes]]:
    """(who, bytes) of one SMTP session delivering ``messages``; the DATA body is cut at the MSS."""
    steps = [("s", b"220 mx.example.org ESMTP\r\n"), ("c", b"EHLO client.example.com\r\n"),
             ("s", b"250-mx.example.org\r\n250 PIPELINING\r\n")]
    for n, message in enumerate(messages):
        steps += [("c", f"MAIL FROM:<{mail_from}>\r\n".encode()), ("s", b"250 2.1.0 Ok\r\n")]
        for address, code in rcpts:
            steps += [("c", f"RCPT TO:<{address}>\r\n".encode()), ("s", f"{code} rcpt\r\n".encode())]
        steps += [("c", b"DATA\r\n"), ("s", b"354 go ahead\r\n")]
        body = dot_stuff(message)
        steps += [("c", body[i : i + MSS]) for i in range(0, len(body), MSS)]
        steps.append(("s", f"250 2.0.0 Ok: queued as Q{n}\r\n".encode()))
    steps += [("c", b"QUIT\r\n"), ("s", b"221 2.0.0 Bye\r\n")]
    return steps


def smtp_capture(messages: Sequence[bytes], **kwargs: Any) -> Capture:
    """One SMTP session delivering ``messages``."""
    return interleaved([smtp_steps(messages, **kwargs)])


def interleaved(sessions: Sequence[list[tuple[str, bytes]]]) -> Capture:
    """Several sessions whose packets alternate (all in flight at once), each on its own client port."""
    cap = Capture()
    convs = [Tcp(cap, client=(f"10.0.0.{i + 1}", 40000 + i), isn_client=1000 + i * 7919).handshake()
             for i in range(len(sessions))]
    iters: list[Iterator[tuple[str, bytes]]] = [iter(s) for s in sessions]
    live = list(range(len(sessions)))
    while live:
        for i in list(live):
            step = next(iters[i], None)
            if step is None:
                convs[i].fin()
                live.remove(i)
                continue
            who, data = step
            (convs[i].c if who == "c" else convs[i].s)(data)
    return cap


def mime_message(parts: Sequence[bytes], *, headers: bytes = b"", boundary: bytes = b"b0undary") -> bytes:
    """A multipart/mixed message around already formatted parts (each: part headers, blank line, body)."""
    head = (b"From: Alice <alice@example.com>\r\nTo: Bob <bob@example.org>\r\nSubject: test\r\n"
            b"Message-ID: <t@example.com>\r\nMIME-Version: 1.0\r\n" + headers
            + b'Content-Type: multipart/mixed; boundary="' + boundary + b'"\r\n\r\npreamble\r\n')
    body = b"".join(b"--" + boundary + b"\r\n" + p + b"\r\n" for p in parts)
    return head + body + b"--" + boundary + b"--\r\n"


def attachment(filename_param: bytes, data: bytes, content_type: bytes = b"application/octet-stream") -> bytes:
    """A base64 attachment part; ``filename_param`` is the raw disposition parameter (``filename="x"``)."""
    encoded = base64.encodebytes(data).replace(b"\n", b"\r\n")
    return (b"Content-Type: " + content_type + b"\r\nContent-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: attachment; " + filename_param + b"\r\n\r\n" + encoded.rstrip(b"\r\n"))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def extract_cli(out: Path, *captures: Path | str, args: Sequence[str] = ()) -> Any:
    """``mailtrace extract CAPTURE... -o out ARGS`` in-process; returns click's Result."""
    return run_cli("extract", *(str(c) for c in captures), "-o", str(out), *args)


def index_of(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "index.json").read_text(encoding="utf-8"))
    return data


def extract_in_process(out: Path, *captures: Path, config: Config | None = None,
                       options: ExtractOptions | None = None) -> tuple[Extractor, list[Session]]:
    """Run the Analyzer with an Extractor (what the command does), for tests that need a custom Config."""
    extractor = Extractor(out, options or ExtractOptions())
    analyzer = Analyzer(config or Config(), sink_factory=extractor.sink_factory)
    sessions = []
    for session in analyzer.run([open_capture(str(c)) for c in captures]):
        extractor.session(session)
        sessions.append(session)
    extractor.end([])
    return extractor, sessions


def files_under(root: Path) -> set[str]:
    """Every file and folder below root, as paths relative to it (links not followed)."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def snapshot(root: Path) -> set[Path]:
    """Every path below root (links not followed), to compare before and after a run."""
    return set(root.rglob("*"))


def created_outside(before: set[Path], root: Path, out: Path) -> list[Path]:
    """Paths that appeared below root but not inside out, plus links inside out that lead elsewhere."""
    bad = [p for p in snapshot(root) - before if not p.is_relative_to(out) and not out.is_relative_to(p)]
    bad += [p for p in out.rglob("*") if p.is_symlink() or not p.resolve().is_relative_to(out.resolve())]
    return bad


def taken_up_again(path: Path) -> Path:
    """A connection the flow table ends early (past ``max_open=2``) and takes up again: two sessions of
    one tcp.stream, each with a message ("B-first", "B-again"), while the first still waits for the
    start order behind a connection open throughout. Files and summaries keyed by the stream alone
    mixed the two."""
    cap = Capture()

    def conversation(i: int) -> Tcp:
        t = Tcp(cap, client=(f"10.0.0.{i + 1}", 40000 + i), isn_client=1000 + i * 7919).handshake()
        t.s(b"220 mx\r\n").c(b"EHLO c\r\n").s(b"250 mx\r\n")
        return t

    def message(t: Tcp, tag: bytes) -> None:
        t.c(b"MAIL FROM:<a@b.example>\r\n").s(b"250 ok\r\n").c(b"RCPT TO:<c@d.example>\r\n").s(b"250 ok\r\n")
        t.c(b"DATA\r\n").s(b"354 go\r\n").c(b"Subject: " + tag + b"\r\n\r\nbody " + tag + b"\r\n.\r\n").s(b"250 ok\r\n")

    a = conversation(0)  # open throughout: the later sessions wait behind it
    b = conversation(1)
    message(b, b"B-first")
    a.c(b"NOOP\r\n").s(b"250 ok\r\n")
    others = [conversation(2), conversation(3)]  # past max_open=2: the quietest, b, is ended early
    a.c(b"NOOP\r\n").s(b"250 ok\r\n")
    message(b, b"B-again")  # b talks again: a session of its own under the same tcp.stream
    for t in (b, *others, a):
        t.c(b"QUIT\r\n").s(b"221 bye\r\n").fin()
    for n, frame in enumerate(cap.frames):
        frame.ts = 1_700_000_000 + n * 0.001
    return cap.write(path)
