"""Two processes (``--jobs 2``, mailtrace/forked.py) give the report one process gives, byte for byte.

A forked child dissects, the parent writes the report: the sessions, the capture totals the views
read while sessions arrive, the DNS transactions the findings hear, and any failure in the child
must all reach the parent as they would have in one process.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from mailtrace import forked
from mailtrace.capture.reader import open_capture
from mailtrace.config import Config
from mailtrace.model import Command, Direction, Endpoint, Phase
from mailtrace.pipeline import Analyzer
from mailtrace.session import PacketRow, PhaseBlock
from tests.support import REPO, corpus, run_cli

SAMPLES = REPO / "samples"

needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")


def _json(*args: str) -> dict[str, Any]:
    result = run_cli("analyze", "--format", "json", *args)
    assert result.exit_code == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    data["stats"]["capture"].pop("analysis_seconds")  # wall time: the one thing that may differ
    return data


def _text(*args: str) -> str:
    result = run_cli("analyze", "--no-color", "--width", "140", "--stats", *args)
    assert result.exit_code == 0, result.stderr
    return "\n".join(line for line in result.stdout.splitlines() if "elapsed" not in line)


CASES = [
    pytest.param(lambda: [SAMPLES / "smtp-relay-seed-story.pcap"], (), id="dns-and-ident-context"),
    pytest.param(lambda: [SAMPLES / "mixed-all.pcap"], (), id="smtp-pop3-imap"),
    pytest.param(lambda: [SAMPLES / "smtp-starttls.pcap"], ("--tls-keylog", str(SAMPLES / "smtp-starttls.keylog")),
                 id="starttls-decrypted"),
    pytest.param(lambda: [SAMPLES / "smtp-errors.pcap", SAMPLES / "pop3-session.pcap"], (), id="two-files"),
    pytest.param(lambda: [corpus("suricata-verify/bug-3616-smtp")], (), id="suricata-pipelining"),
    pytest.param(lambda: [corpus("arkime/smtp-subject-windows")], ("--show-secrets",), id="arkime-secrets"),
]


@needs_fork
@pytest.mark.parametrize(("paths", "extra"), CASES)
def test_two_processes_write_the_json_report_one_process_writes(paths: Any, extra: tuple[str, ...]) -> None:
    files = [str(p) for p in paths()]
    one = _json("--jobs", "1", *extra, *files)
    two = _json("--jobs", "2", *extra, *files)
    assert one["sessions"], "the capture has sessions"
    assert two == one


@needs_fork
@pytest.mark.parametrize(("paths", "extra"), CASES[:3])
def test_two_processes_print_the_tables_one_process_prints(paths: Any, extra: tuple[str, ...]) -> None:
    files = [str(p) for p in paths()]
    one = _text("--jobs", "1", *extra, *files)
    assert "Session 1" in one or "session 1" in one.lower()
    assert _text("--jobs", "2", *extra, *files) == one


@needs_fork
def test_the_context_findings_cross_the_pipe() -> None:
    """DNSBL findings come from the DNS listener, which the child hears and the parent's findings need."""
    path = str(SAMPLES / "smtp-relay-seed-story.pcap")
    one = _json("--jobs", "1", path)
    two = _json("--jobs", "2", path)
    assert two["findings"] == one["findings"]
    assert two["capture"]["context"] == one["capture"]["context"]
    assert one["capture"]["context"]["dns"] > 0


@needs_fork
def test_stdin_is_read_by_the_child() -> None:
    data = (SAMPLES / "pop3-session.pcap").read_bytes()
    result = run_cli("analyze", "--format", "json", "--jobs", "2", "-", input=data)
    assert result.exit_code == 0, result.stderr
    sessions = json.loads(result.stdout)["sessions"]
    assert [s["protocol"] for s in sessions] == ["pop3"] * 4
    from_file = _json("--jobs", "1", str(SAMPLES / "pop3-session.pcap"))["sessions"]
    for session in (*sessions, *from_file):
        session.pop("file")
    assert sessions == from_file


@needs_fork
@pytest.mark.parametrize("command", ["stats", "flows"])
def test_other_commands_take_jobs_too(command: str) -> None:
    path = str(SAMPLES / "mixed-all.pcap")
    one = run_cli(command, "--format", "json", "--jobs", "1", path)
    two = run_cli(command, "--format", "json", "--jobs", "2", path)
    assert one.exit_code == two.exit_code == 0
    first, second = json.loads(one.stdout), json.loads(two.stdout)
    for doc in (first, second):  # wall time, where the document has it
        doc.get("capture", {}).pop("analysis_seconds", None)
    assert second == first


@needs_fork
def test_an_error_in_the_child_is_raised_in_the_parent(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: Analyzer, capture: Any, progress: Any = None) -> Any:
        raise ValueError("a bug in the dissection")

    monkeypatch.setattr(Analyzer, "run_file", broken)
    with pytest.raises(ValueError, match="a bug in the dissection"):
        run_cli("analyze", "--format", "json", "--jobs", "2", str(SAMPLES / "pop3-session.pcap"))


@needs_fork
def test_a_child_that_dies_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def dies(self: Analyzer, capture: Any, progress: Any = None) -> Any:
        os._exit(9)
        yield  # type: ignore[unreachable]  # pragma: no cover - a generator, as run_file is

    monkeypatch.setattr(Analyzer, "run_file", dies)
    result = run_cli("analyze", "--format", "json", "--jobs", "2", str(SAMPLES / "pop3-session.pcap"))
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "mailtrace: the dissecting process ended unexpectedly (exit status 9); run again with --jobs 1 to "
        "analyse in one process"
    ]
    assert "Traceback" not in result.output


@needs_fork
def test_the_parent_stopping_early_stops_the_child() -> None:
    """A consumer that raises (a closed stdout, say) must not leave the child running."""
    analyzer = Analyzer(Config())
    files = [open_capture(str(SAMPLES / "mixed-all.pcap"))]
    stream = forked.forked_sessions(analyzer, files)
    first = next(stream)
    assert first.id == 1
    stream.close()  # the finally reaps the child: no zombie, no error
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


def test_when_two_processes_are_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    analyzer = Analyzer(Config())
    small = [open_capture(str(SAMPLES / "pop3-session.pcap"))]
    monkeypatch.setattr(forked, "_cores", lambda: 2)
    assert forked.want_fork(1, analyzer, small) is False
    assert forked.want_fork(2, analyzer, small) is hasattr(os, "fork")
    assert forked.want_fork(None, analyzer, small) is False  # too small to pay for a fork
    monkeypatch.setattr(forked, "AUTO_MIN_BYTES", 1)
    assert forked.want_fork(None, analyzer, small) is hasattr(os, "fork")
    monkeypatch.setattr(forked, "_cores", lambda: 1)
    assert forked.want_fork(None, analyzer, small) is False  # one core: nothing to gain
    sinking = Analyzer(Config(), sink_factory=lambda builder, origin: None)
    assert forked.want_fork(2, sinking, small) is False  # the sinks live in this process
    small[0].close()


def test_a_packet_row_pickles_every_field() -> None:
    row = PacketRow(frame=7, ts=1.5, direction=Direction.SERVER, flags=0x18, payload_len=42, phase=Phase.TRANSFER,
                    events=[Command(direction=Direction.CLIENT, ts=1.5, frame=7, verb="NOOP", argument="",
                                    first_frame=7, phase=Phase.TRANSFER)],
                    decrypted=True, body_bytes=40)
    assert len(row.__reduce__()[1]) == len(fields(PacketRow))
    assert pickle.loads(pickle.dumps(row)) == row


def test_phase_blocks_and_endpoints_pickle_every_field() -> None:
    """They pickle through their own ``__reduce__``: a field added later must be added there too."""
    block = PhaseBlock(Phase.AUTH, first_frame=4, last_frame=9, first_row=3, last_row=8)
    endpoint = Endpoint("2001:db8::1", 587)
    for value in (block, endpoint):
        assert len(value.__reduce__()[1]) == len(fields(value))
        assert pickle.loads(pickle.dumps(value)) == value


def test_every_event_class_pickles_every_field() -> None:
    """Events pickle as their field values (``Event.__reduce__``): each subclass, every field set to a
    value other than its default, comes back equal, and an event shared by two lists stays one object."""
    from mailtrace import model

    classes = [cls for cls in vars(model).values()
               if isinstance(cls, type) and issubclass(cls, model.Event) and cls is not model.Event]
    assert len(classes) >= 11
    samples: dict[Any, Any] = {str: "x", int: 3, float: 2.5, bytes: b"\x00y", tuple: ("a", "b"), dict: {"k": "v"},
                               model.Direction: Direction.SERVER, model.Phase: Phase.AUTH}
    for cls in classes:
        values: dict[str, Any] = {}
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            kind = [a for a in typing.get_args(hints[f.name]) if a is not type(None)] or [hints[f.name]]
            base = typing.get_origin(kind[0]) or kind[0]
            values[f.name] = (f.default is not True) if base is bool else samples[base]
        event = cls(**values)
        assert len(event.__reduce__()[1][1]) == len(fields(cls))
        assert pickle.loads(pickle.dumps(event)) == event, cls
    shared = Command(direction=Direction.CLIENT, ts=1.0, frame=2, first_frame=2, phase=Phase.AUTH, verb="X",
                     argument="")
    first, second = pickle.loads(pickle.dumps([shared, shared]))
    assert first is second and first == shared



def test_context_observations_pickle_every_field() -> None:
    """DNS and ident observations cross the pipe one by one (``_Context``) and inside their sessions, as
    their field values (``PickledAsValues``): every field, defaults included, comes back."""
    from mailtrace.context.model import ContextObservation, ContextRow, DnsRecord

    record = DnsRecord(name="example.org", rtype="MX", data="mx.example.org", preference=10)
    rows = [ContextRow(frame=3, ts=1.25, src="10.0.0.1", dst="10.0.0.53", sport=40000, dport=53, payload_len=30),
            ContextRow(frame=4, ts=1.5, src="10.0.0.53", dst="10.0.0.1", sport=53, dport=40000, response=True,
                       flags=0x18, payload_len=80, text="an ident line")]
    observation = ContextObservation(kind="dns", frame=3, ts=1.25, host="10.0.0.1", peer="10.0.0.53", dns_id=77,
                                     query="example.org", qtype="MX", answers=(record,), additional=(record,),
                                     rcode="NOERROR", cut=True, response_frame=4, response_ts=1.5,
                                     outcome="answered", reply="r", rows=rows, purpose="mx", role="server",
                                     subject="example.org", session_stream=5)
    for value in (record, rows[1], observation):
        assert len(value.__reduce__()[1][1]) == len(fields(value))
        assert pickle.loads(pickle.dumps(value)) == value
    assert len(pickle.dumps(observation)) < 600  # no field names in the pickle

@needs_fork
def test_messages_summarised_by_the_parent_are_the_ones_the_child_would_make() -> None:
    """With JSON the parent summarises (decodes and hashes) the messages from the bytes the child sends."""
    path = str(SAMPLES / "smtp-submission-auth.pcap")
    one = _json("--jobs", "1", path)
    two = _json("--jobs", "2", path)
    attachments = [a for s in one["sessions"] for m in s["messages"] for a in m["attachments"]]
    assert {a["filename"] for a in attachments} >= {"chart.png", "Übersicht.txt"}
    assert all(len(a["sha256"]) == 64 for a in attachments)
    assert two == one


def test_a_session_that_does_not_summarise_keeps_only_completeness() -> None:
    """``Config.summarize`` False (the forked child's setting): the summary is an empty message's."""
    config = Config(summarize=False)
    analyzer = Analyzer(config)
    sessions = list(analyzer.run_file(open_capture(str(SAMPLES / "smtp-submission-auth.pcap"))))
    records = [r for s in sessions for r in s.messages]
    assert records, "the capture carries messages"
    for record in records:
        assert record.summary.bytes == 0 and record.summary.subject is None
        assert record.summary.attachments == ()
    assert all(r.summary.complete for r in records)


@needs_fork
def test_the_html_report_is_the_same(tmp_path: Path) -> None:
    """``mailtrace report`` (no embedded attachments: nothing listens to the dissection) forks too."""
    pages = []
    for jobs in ("1", "2"):
        out = tmp_path / f"report-{jobs}.html"
        result = run_cli("report", "--jobs", jobs, str(SAMPLES / "mixed-all.pcap"),
                         str(SAMPLES / "smtp-relay-seed-story.pcap"), "-o", str(out))
        assert result.exit_code == 0, result.stderr
        page = out.read_text()
        page = re.sub(r"nonce-[\w-]+|nonce=\"[\w-]+\"", "NONCE", page)  # random per page
        pages.append(re.sub(r'"analysis_seconds":[0-9.]+', "", page))
    assert "cleartext-credentials" in pages[0]
    assert pages[1] == pages[0]


def test_placeholder_summaries_travel_as_their_two_fields(tmp_path: Path) -> None:
    """With the parent summarising, the child's sessions carry placeholder summaries: they are sent as
    ``_placeholder(complete, missing_bytes)``, and what arrives is the placeholder the child had; the
    spool's reused pickler makes each message a pickle of its own, as ``pickle.dumps`` does."""
    from dataclasses import replace

    from mailtrace.mime import MimeLimits
    from mailtrace.session import Unsummarized

    analyzer = Analyzer(replace(Config(), summarize=False))
    capture = open_capture(str(SAMPLES / "mixed-all.pcap"))
    sessions = list(analyzer.run_file(capture))
    capture.close()
    records = [r for s in sessions for r in s.messages]
    assert records
    records[0].summary = Unsummarized(MimeLimits()).close(complete=False, missing_bytes=7)
    path = tmp_path / "stream"
    spool = forked._Spool(os.open(path, os.O_WRONLY | os.O_CREAT), placeholders=True)
    for s in sessions:
        spool.send(forked._Finished(s, analyzer.stats))
    spool.send(forked._Done(analyzer.stats))
    spool.close()
    with path.open("rb") as stream:
        arrived = [pickle.load(stream) for _ in range(len(sessions) + 1)]
        assert stream.read() == b""
    assert [m.session.id for m in arrived[:-1]] == [s.id for s in sessions]
    assert type(arrived[-1]) is forked._Done
    sent = [r.summary for s in sessions for r in s.messages]
    got = [r.summary for m in arrived[:-1] for r in m.session.messages]
    assert got == sent
    assert (got[0].complete, got[0].missing_bytes) == (False, 7)


@needs_fork
@pytest.mark.parametrize("behind", [0, 1 << 40], ids=["child-summarises-all", "parent-summarises-all"])
def test_messages_summarised_by_either_process_are_the_same(behind: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The child summarises a message itself while the parent is behind (``BEHIND_BYTES`` waiting in its
    spool); 0 makes it summarise every message, a huge value none: the report is the same either way."""
    fed: list[Any] = []
    feed = forked._Summaries.feed
    monkeypatch.setattr(forked._Summaries, "feed",
                        lambda self, message, data: (fed.append(message), feed(self, message, data))[1])
    monkeypatch.setattr(forked, "BEHIND_BYTES", behind)
    files = [str(SAMPLES / "smtp-submission-auth.pcap"), str(SAMPLES / "mixed-all.pcap")]
    one = _json("--jobs", "1", *files)
    assert not fed
    two = _json("--jobs", "2", *files)
    assert two == one
    assert [m for s in one["sessions"] for m in s["messages"] if m["attachments"]]
    assert bool(fed) == (behind > 0)  # the parent got message bytes only when it was not "behind"


def test_the_child_summarises_while_the_pipe_is_full() -> None:
    """The sink the child gives a new message: bytes for the parent while the pipe takes what is sent,
    a summariser of its own once ``BEHIND_BYTES`` wait in the spool."""
    from mailtrace.mime import MimeLimits
    from mailtrace.session import SessionBuilder

    read_fd, write_fd = os.pipe()
    try:
        spool = forked._Spool(write_fd, limit=1 << 40)
        factory = forked._sender_of_messages(spool, MimeLimits())
        builder = SessionBuilder(protocol="smtp", client=Endpoint("192.0.2.1", 1025),
                                 server=Endpoint("192.0.2.2", 25), stream=0, file="x", tunnel=None)
        assert type(factory(builder, "smtp-data")) is forked._MessageSender
        while spool.backlog < forked.BEHIND_BYTES:  # nobody reads: the pipe fills, then the spool
            spool.send(forked._Progress(0, 0, None))
            spool.send_bytes(forked._MessageBytes(0, 0, 0, 65536), bytes(65536))
        assert type(factory(builder, "smtp-data")) is forked._SummarizingSender
    finally:
        os.close(read_fd)
        os.close(write_fd)


def _read_pipe(fd: int, got: list[Any]) -> None:
    """Read the spool's messages from ``fd`` into ``got`` until the writer closes it (the raw bytes after
    a ``_MessageBytes`` as one item)."""
    with os.fdopen(fd, "rb") as pipe:
        while True:
            try:
                message = pickle.load(pipe)
            except EOFError:
                return
            got.append(message)
            if type(message) is forked._MessageBytes:
                got.append(pipe.read(message.size))


def test_the_spool_keeps_order_when_the_pipe_takes_only_part() -> None:
    """Pieces go straight into the pipe while nothing waits, and after what waits once it is full (a
    write taking part of a piece included): the reader gets every message, and the raw bytes after a
    ``_MessageBytes``, in the order sent."""
    import threading

    read_fd, write_fd = os.pipe()
    got: list[Any] = []

    def read() -> None:
        _read_pipe(read_fd, got)

    sent: list[Any] = []
    spool = forked._Spool(write_fd, limit=1 << 20)
    for i in range(60):  # megabytes through a pipe of 64 KiB: it fills, partial writes, waiting bytes
        data = bytes([i]) * (1 + i * 4099 % 100_000)
        spool.send_bytes(forked._MessageBytes(i, 0, 0, len(data)), data)
        sent += [forked._MessageBytes(i, 0, 0, len(data)), data]
        spool.send(forked._Progress(0, i, None))
        sent.append(forked._Progress(0, i, None))
        if i == 20:
            reader = threading.Thread(target=read)
            reader.start()  # from now on the pipe drains as the spool fills it
    spool.close()
    reader.join()
    assert got == sent


def test_the_spool_holds_what_waits_and_no_more() -> None:
    """What waits for a pipe nobody reads is the bytes sent past what the pipe took, and sending blocks
    only past ``limit``: the spool's memory is its backlog (a buffer of the bytes grew to twice the limit,
    the written ones kept in it)."""
    import threading

    read_fd, write_fd = os.pipe()
    spool = forked._Spool(write_fd, limit=256 * 1024)
    data = bytes(10_000)
    while spool.backlog < 200 * 1024:  # nobody reads yet: the pipe fills, then the spool
        spool.send_bytes(forked._MessageBytes(0, 0, 0, len(data)), data)
    waiting = spool.backlog
    assert waiting == sum(len(piece) for piece in spool.waiting)
    drained = threading.Event()

    def read() -> None:
        with os.fdopen(read_fd, "rb") as pipe:
            while pipe.read(65536):
                pass
        drained.set()

    reader = threading.Thread(target=read)
    reader.start()
    for _ in range(200):  # past the limit the spool waits for the reader; it never holds much more
        spool.send_bytes(forked._MessageBytes(0, 0, 0, len(data)), data)
        assert spool.backlog <= 256 * 1024 + len(data) + 100
    spool.close()
    reader.join()
    assert drained.is_set() and waiting > 0


def test_a_long_session_is_pickled_into_the_pipe_as_it_is_made(monkeypatch: pytest.MonkeyPatch) -> None:
    """A session past ``STREAMED_SESSION`` rows, commands, replies and messages goes into the pipe in the
    pickler's frames, after what waited, without a copy in the spool's buffer; the reader gets it whole."""
    import threading

    monkeypatch.setattr(forked, "STREAMED_SESSION", 40)
    analyzer = Analyzer(Config())
    capture = open_capture(str(SAMPLES / "mixed-all.pcap"))
    sessions = list(analyzer.run_file(capture))
    capture.close()
    long = [s for s in sessions if forked._long(s)]
    assert long and len(long) < len(sessions)
    streamed: list[int] = []
    stream = forked._Spool._stream
    monkeypatch.setattr(forked._Spool, "_stream",
                        lambda self, message: (streamed.append(message.session.id), stream(self, message))[1])
    read_fd, write_fd = os.pipe()
    got: list[Any] = []

    def read() -> None:
        _read_pipe(read_fd, got)

    spool = forked._Spool(write_fd, limit=1 << 20)
    spool.send_bytes(forked._MessageBytes(0, 0, 0, 300_000), bytes(300_000))  # waits: the pipe holds less
    assert spool.backlog
    reader = threading.Thread(target=read)
    reader.start()
    for s in sessions:
        spool.send(forked._Finished(s, analyzer.stats))
    spool.close()
    reader.join()
    assert streamed == [s.id for s in long]
    assert spool.buffer.getbuffer().nbytes < min(len(pickle.dumps(s)) for s in long)
    assert type(got[0]) is forked._MessageBytes and got[1] == bytes(300_000)
    arrived = [m.session for m in got if type(m) is forked._Finished]
    assert [(s.id, len(s.commands), len(s.replies), s.row_count) for s in arrived] == \
        [(s.id, len(s.commands), len(s.replies), s.row_count) for s in sessions]


@needs_fork
def test_two_processes_stream_long_sessions_to_the_same_report(monkeypatch: pytest.MonkeyPatch) -> None:
    files = [str(SAMPLES / "smtp-submission-auth.pcap"), str(SAMPLES / "mixed-all.pcap")]
    one = _json("--jobs", "1", *files)
    monkeypatch.setattr(forked, "STREAMED_SESSION", 10)  # the forked child inherits it: every session
    assert _json("--jobs", "2", *files) == one


@needs_fork
def test_a_connection_taken_up_again_keeps_its_two_sessions_messages_apart(tmp_path: Path) -> None:
    """The parent keyed the message bytes it summarises by stream and index: the first session of a
    connection ended early and taken up again (same tcp.stream) got the second one's summary, and the
    second none, unlike one process."""
    from dataclasses import replace

    from tests.mailcaps import taken_up_again

    path = str(taken_up_again(tmp_path / "again.pcap"))
    config = replace(Config(), flow=replace(Config().flow, max_open=2))
    one = list(Analyzer(config).run_file(open_capture(path)))
    two = list(forked.forked_sessions(Analyzer(config), [open_capture(path)], summarize_here=True))

    def subjects(sessions: list[Any]) -> list[tuple[int, int, list[str | None]]]:
        return [(s.id, s.stream, [m.summary.subject for m in s.messages]) for s in sessions if s.messages]

    assert subjects(one) == [(2, 1, ["B-first"]), (5, 1, ["B-again"])]
    assert subjects(two) == subjects(one)
