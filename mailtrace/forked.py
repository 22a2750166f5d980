"""Two processes for one run: a forked child dissects, the parent writes the report.

Dissecting a capture (reading, reassembly, the dissectors, message summaries) and writing its
report (findings, statistics, the terminal tables, JSON, HTML) take about the same time on a big
capture, and one does not need the other's state: the report only sees finished sessions. So on a
machine with two cores the work splits there. The child runs the :class:`Analyzer` exactly as one
process would and sends down a pipe, in the order they happen, everything the report side would
have seen: each finished session (with the capture totals so far), each DNS transaction the
context layer hands its listeners, progress. The parent replays them into its own consumers, so
both ways give the same report byte for byte (tests/test_forked.py compares them on real captures).
When the report is quick to write (JSON, statistics, flows), the child also hands over the message
summaries: it sends each message's bytes and the parent decodes and hashes them, which balances the
two halves; while the parent is well behind (BEHIND_BYTES waiting for its pipe), the child summarises
new messages itself, so the split follows the two halves' speeds on the machine and capture at hand.

Not used where the dissecting side feeds something in the parent as it goes (message sinks:
``mailtrace extract``, attachments embedded in HTML), for live capture, or where ``os.fork`` is
missing.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import gc
import io
import itertools
import os
import pickle
import select
import signal
import traceback
from collections.abc import Callable, Generator
from typing import Any, NamedTuple

from mailtrace.capture.reader import CaptureFile
from mailtrace.context.model import ContextObservation
from mailtrace.mime import MessageSummarizer, MessageSummary, MimeLimits
from mailtrace.model import ByteBudget
from mailtrace.pipeline import Analyzer, CaptureStats
from mailtrace.session import (
    WAITING_BYTES_ALL,
    MessageRecord,
    MessageSinkFactory,
    Session,
    SessionBuilder,
    Unsummarized,
)

AUTO_MIN_BYTES = 4 * 1024 * 1024
"""By default, captures smaller than this are analysed in one process (forking would not pay)."""

PIPE_BUFFER = 256 * 1024
"""The pipe's size (Linux, where it can be set) and the parent's read buffer. What it holds when the
child ends is what the parent still has to catch up on: 1 MiB left it ~0.1 s behind on the benchmark,
256 KiB ~0.04 s, with the same throughput."""
SPOOL_BYTES = 8 * 1024 * 1024
"""Pickled sessions the child may have waiting for the parent (see :class:`_Spool`). Twice BEHIND_BYTES:
room for a burst of sessions past the point where the child starts summarising messages itself (at 16 MiB,
200 sessions ending at once held 32 MiB in the child)."""
WRITE_PIECES = 64
"""Waiting pieces handed to one ``writev`` (a message's header and its bytes are two)."""
STREAMED_SESSION = 20_000
"""A session with more rows, commands, replies and messages than this together is pickled straight into
the pipe (:meth:`_Spool.send`), not into a buffer and the spool first: a session of 150,000 commands and
replies is a pickle of ~15 MB, and the two copies took the child from 120 to 170 MiB."""
BEHIND_BYTES = 4 * 1024 * 1024
"""When this much waits in the child's spool (the pipe is full), the parent is behind, and the child
summarises the next messages itself instead of sending their bytes (see :func:`_sender_of_messages`).
Not less: the report process falls behind for a moment on a burst of sessions too, and a child that
then takes messages when it is the slower half makes the run longer (benchmark, twelve interleaved
runs each: median 3.46 s at 4 MiB, 3.64 s at 256 KiB, 3.62 s with the child never summarising)."""

ProgressFactory = Callable[[CaptureFile], Callable[..., None] | None]


class ForkedRunError(RuntimeError):
    """The dissecting process ended without finishing the run."""


def can_fork(analyzer: Analyzer) -> bool:
    """Whether this run may be split: fork exists and nothing in this process listens to the dissection."""
    return hasattr(os, "fork") and analyzer.sink_factory is None and analyzer.config.message_sink is None


def want_fork(jobs: int | None, analyzer: Analyzer, files: list[CaptureFile]) -> bool:
    """``--jobs``: 1 is one process, 2 is two; by default two on a multi-core machine for big captures
    (a capture from a pipe counts as big: its size is not known)."""
    if jobs == 1 or not can_fork(analyzer):
        return False
    if jobs is not None:
        return True
    if _cores() < 2:
        return False
    sizes = [f.size for f in files]
    return any(s is None for s in sizes) or sum(s or 0 for s in sizes) >= AUTO_MIN_BYTES


def _cores() -> int:
    """The cores this process may run on (a container's CPU set, not the machine's count)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


# ---------------------------------------------------------------------------- messages on the pipe
# NamedTuples: cheap to define at start-up and pickled as a class and a tuple.
class _Finished(NamedTuple):
    session: Session
    stats: CaptureStats


class _Context(NamedTuple):
    observation: ContextObservation


class _FileStarted(NamedTuple):
    """The child began a capture: ``file`` is its place in the run's list."""

    file: int


class _Progress(NamedTuple):
    file: int
    packets: int
    position: int | None


class _MessageBytes(NamedTuple):
    """Bytes of the message a session is carrying (only when the parent summarises messages);
    ``number`` is the index its record will have in the session's messages. The ``size`` bytes follow
    this message on the pipe as they are: pickled, each of the ~150 MB of a big capture's messages
    would be copied once more on each side.

    A session is its stream and first frame: a connection the flow table ended early and took up again
    is a second session under the same stream number while the first may still wait for the start order."""

    stream: int
    first: int
    number: int
    size: int


class _MessageEnded(NamedTuple):
    """The message ended: the parent summarises it now, not when its session arrives (sessions come
    in bursts from the order buffer, messages one by one)."""

    stream: int
    first: int
    number: int
    complete: bool
    missing_bytes: int


class _MessageSummarized(NamedTuple):
    """The message ended and the child summarised it itself (the parent was behind: see
    :class:`_SummarizingSender`)."""

    stream: int
    first: int
    number: int
    summary: MessageSummary


def _key(message: _MessageBytes | _MessageEnded | _MessageSummarized) -> tuple[int, int, int]:
    """Where a message's pieces meet in the parent: (stream, first frame, index)."""
    return message.stream, message.first, message.number


class _Done(NamedTuple):
    stats: CaptureStats


class _Failed(NamedTuple):
    error: BaseException | None
    text: str


# ---------------------------------------------------------------------------- parent
def forked_sessions(analyzer: Analyzer, files: list[CaptureFile], progress: ProgressFactory | None = None, *,
                    summarize_here: bool = False) -> Generator[Session, None, None]:
    """The sessions of ``files``, dissected by a forked child; ``analyzer`` ends up as if it had run here.

    ``analyzer.stats`` is kept up to date in place (the views hold it), and the context layer's
    listeners hear every DNS transaction. An exception in the child is raised here; Ctrl-C ends both.

    ``summarize_here``: the child sends the message bytes and this process makes the message summaries
    (decoding and hashing every MIME part): the better split when writing the report is cheap (JSON,
    statistics) and dissecting is the longer half.
    """
    read_fd, write_fd = os.pipe()
    _widen(write_fd)
    # What lives now (the modules, the run's set-up) lives until the process ends: out of the collector's
    # sight in both processes from here on (Python's advice before a fork). A full collection near the end
    # of the report took ~25 ms on the benchmark, re-reading all of it; it now takes ~3 ms.
    gc.freeze()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's coverage is not collected; its output is tested
        os.close(read_fd)
        _child(analyzer, files, progress is not None, write_fd, summarize_here)
    os.close(write_fd)
    for capture in files:
        capture.close()  # the child reads them
    listeners = list(analyzer.context.listeners) if analyzer.context is not None else []
    update: Callable[..., None] | None = None
    summaries = _Summaries(analyzer.config.mime) if summarize_here else None
    finished = False
    try:
        with io.BufferedReader(io.FileIO(read_fd, "rb"), PIPE_BUFFER) as pipe:
            source = _Unpeekable(pipe)
            while True:
                try:
                    message = pickle.load(source)  # noqa: S301 - our own child's, through a pipe only we hold
                except (EOFError, pickle.UnpicklingError):
                    break  # the child is gone (cut off mid-message if it was killed): said below
                kind = type(message)
                if kind is _MessageBytes:
                    assert summaries is not None
                    data = source.read(message.size)
                    if len(data) < message.size:
                        break  # the child is gone, cut off mid-message: said below
                    summaries.feed(message, data)
                elif kind is _MessageEnded:
                    assert summaries is not None
                    summaries.end(message)
                elif kind is _MessageSummarized:
                    assert summaries is not None
                    summaries.done[_key(message)] = message.summary
                elif kind is _Finished:
                    _adopt(analyzer.stats, message.stats)
                    if summaries is not None:
                        summaries.fill(message.session)
                    yield message.session
                elif kind is _Context:
                    for listener in listeners:
                        listener(message.observation)
                elif kind is _FileStarted:
                    update = progress(files[message.file]) if progress is not None else None
                    if summaries is not None:
                        summaries.new_file()
                elif kind is _Progress:
                    if update is not None:
                        update(message.packets, message.position)
                elif kind is _Done:
                    _adopt(analyzer.stats, message.stats)
                    finished = True
                elif kind is _Failed:
                    finished = True
                    if message.error is not None:
                        raise message.error
                    raise ForkedRunError(message.text)
    finally:
        status = _reap(pid, finished)
    if not finished:
        raise ForkedRunError(f"the dissecting process ended unexpectedly ({_describe(status)}); "
                          "run again with --jobs 1 to analyse in one process")


class _Unpeekable:
    """The pipe as :func:`pickle.load` should see it: without ``peek``.

    Given a ``peek``, the unpickler calls it at the start of every message, and a buffered reader's
    ``peek`` copies all it holds (up to PIPE_BUFFER bytes) whatever was asked: a copy of up to a
    megabyte for each of the thousands of messages, a third of the parent's unpickling time on the
    benchmark. Without it, ``read`` and ``readinto`` (the reader's own, called from C) copy only the
    bytes each message needs.
    """

    __slots__ = ("read", "readinto", "readline")

    def __init__(self, stream: io.BufferedIOBase) -> None:
        self.read = stream.read
        self.readinto = stream.readinto
        self.readline = stream.readline


class _Summaries:
    """The parent's message summarisers, fed the bytes the child's sessions carry, by session and message.

    Only the light reports summarise here (JSON, statistics, flows: ``summarize_here``), and none of them
    shows a whole message's MD5, so it is not computed (``MessageSummary.md5`` stays empty)."""

    def __init__(self, limits: MimeLimits) -> None:
        self.limits = limits
        self.waiting = ByteBudget(WAITING_BYTES_ALL)
        """What the summarisers here gather for a scan, together (as a session builder's share the run's)."""
        self.open: dict[tuple[int, int, int], MessageSummarizer] = {}
        self.done: dict[tuple[int, int, int], MessageSummary] = {}
        """By (stream, first frame, index): see :class:`_MessageBytes`."""

    def new_file(self) -> None:
        """Stream numbers start again with each file (every session of the last one has arrived)."""
        self.open.clear()
        self.done.clear()

    def feed(self, message: _MessageBytes, data: bytes) -> None:
        key = _key(message)
        summarizer = self.open.get(key)
        if summarizer is None:
            summarizer = self.open[key] = MessageSummarizer(self.limits, keep=False, message_md5=False,
                                                            waiting=self.waiting)
        summarizer.feed(data)

    def end(self, message: _MessageEnded) -> None:
        key = _key(message)
        self.done[key] = self._close(key, message.complete, message.missing_bytes)

    def fill(self, session: Session) -> None:
        """Give the session's messages their summaries (the child's say only whether they were complete;
        a message without bytes has no sink, so it is summarised here)."""
        for record in session.messages:
            key = (session.stream, session.first_frame, record.index)
            done = self.done.pop(key, None)
            pending = record.summary
            record.summary = done if done is not None else self._close(key, pending.complete, pending.missing_bytes)

    def _close(self, key: tuple[int, int, int], complete: bool, missing_bytes: int) -> MessageSummary:
        # keep=False makes the summary as a session keeps it (what kept_summary would leave of it)
        summarizer = self.open.pop(key, None) or MessageSummarizer(self.limits, keep=False, message_md5=False)
        return summarizer.close(complete=complete, missing_bytes=missing_bytes)


def _widen(fd: int) -> None:
    """A pipe of PIPE_BUFFER bytes instead of Linux's 64 KiB: a sixteenth of the wake-ups and copies
    for the megabytes of sessions and message bytes that pass (best effort: elsewhere, or over the
    system's limit, the pipe stays as it is)."""
    import fcntl  # POSIX, as fork is

    setsize = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux
    if setsize is not None:
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, setsize, PIPE_BUFFER)


def _adopt(target: CaptureStats, source: CaptureStats) -> None:
    """Copy the child's totals into the parent's object, which the views hold on to."""
    context = target.context
    target.__dict__.update(source.__dict__)
    if context is not None and source.context is not None:
        context.__dict__.update(source.context.__dict__)
        target.context = context


def _reap(pid: int, finished: bool) -> int:
    """Wait for the child; one still running (the parent stopped early: an error, Ctrl-C, a closed
    pipe) is stopped first."""
    if not finished:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    while True:
        try:
            return os.waitpid(pid, 0)[1]
        except ChildProcessError:
            return 0
        except InterruptedError:
            continue


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


# ---------------------------------------------------------------------------- child
class _Spool:
    """The child's end of the pipe: each message is pickled and written at once as far as the pipe
    takes it without waiting; the rest waits here, so the dissection goes on while the report side is
    busy with a burst of sessions (the session order buffer lets many go at once). Only past ``limit``
    waiting bytes does sending block until the pipe has taken enough."""

    def __init__(self, fd: int, limit: int = SPOOL_BYTES, *, placeholders: bool = False) -> None:
        self.fd = fd
        self.limit = limit
        self.placeholders = placeholders
        """The sessions' message summaries are placeholders (the parent summarises): see :func:`_placeholder`."""
        self.buffer = io.BytesIO()  # one pickler for every session: cheaper than a new one each time
        self.pickler = pickle.Pickler(self.buffer, protocol=pickle.HIGHEST_PROTOCOL)
        self.pickler.dispatch_table = _PLACEHOLDERS
        self.waiting: collections.deque[bytes | memoryview] = collections.deque()
        """Pieces not yet written, in order (a buffer of their bytes grew to twice ``limit``: the written
        ones stayed in it until half of it was written)."""
        self.backlog = 0
        """Bytes waiting for the pipe to take them."""
        os.set_blocking(fd, False)

    def send(self, message: Any) -> None:
        if type(message) is _Finished and _long(message.session):
            self._stream(message)
        elif self.placeholders and type(message) is _Finished:
            buffer = self.buffer
            buffer.seek(0)
            buffer.truncate()
            self.pickler.clear_memo()  # each message is a pickle of its own, as pickle.dumps makes it
            self.pickler.dump(message)
            with buffer.getbuffer() as view:
                self._put(view)
        else:
            self._put(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))

    def _stream(self, message: _Finished) -> None:
        """Pickle ``message`` into the pipe as the pickler makes it (frames of 64 KiB), waiting for the
        parent to read, after what already waits."""
        self._write(until=0)
        pickler = pickle.Pickler(_PipeWriter(self.fd), protocol=pickle.HIGHEST_PROTOCOL)
        if self.placeholders:
            pickler.dispatch_table = _PLACEHOLDERS
        pickler.dump(message)

    def send_bytes(self, message: _MessageBytes, data: bytes) -> None:
        """``message`` and then ``data`` as they are (its ``size`` bytes)."""
        self._put(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL), data)

    def _put(self, *pieces: bytes | memoryview) -> None:
        """Send ``pieces`` in order: while nothing waits, straight into the pipe as far as it takes them
        (no copy into ``waiting`` on the way), the rest after what waits."""
        if not self.waiting:
            try:
                written = os.writev(self.fd, pieces)
            except BlockingIOError:
                written = 0
            for piece in pieces:
                size = len(piece)
                if written >= size:
                    written -= size
                else:
                    self._wait(piece[written:] if written else piece)
                    written = 0
            if self.backlog <= self.limit:
                return
        else:
            for piece in pieces:
                self._wait(piece)
        self._write(until=self.limit)

    def _wait(self, piece: bytes | memoryview) -> None:
        # a view of the pickler's buffer is copied (the next message reuses it); bytes are kept as they are
        data = bytes(piece)
        self.waiting.append(data)
        self.backlog += len(data)

    def close(self) -> None:
        """Write what waits (blocking now), then close the pipe."""
        try:
            self._write(until=0)
        finally:
            os.close(self.fd)

    def _write(self, *, until: int) -> None:
        """Write what the pipe takes; while more than ``until`` bytes still wait, wait for the reader."""
        waiting = self.waiting
        while waiting:
            try:
                written = os.writev(self.fd, list(itertools.islice(waiting, WRITE_PIECES)))
            except BlockingIOError:
                if self.backlog <= until:
                    break
                select.select([], [self.fd], [])
                continue
            self.backlog -= written
            while written:
                size = len(waiting[0])
                if size <= written:
                    waiting.popleft()
                    written -= size
                else:
                    waiting[0] = memoryview(waiting[0])[written:]
                    written = 0


def _long(session: Session) -> bool:
    """Whether the session is pickled straight into the pipe (see :data:`STREAMED_SESSION`)."""
    return session.row_count + len(session.commands) + len(session.replies) + len(session.messages) \
        > STREAMED_SESSION


class _PipeWriter:
    """The pipe as a file for a :class:`pickle.Pickler`: each write waits until the pipe took all of it."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def write(self, data: bytes | memoryview) -> int:
        with memoryview(data) as view:
            done = 0
            while done < len(view):
                try:
                    done += os.write(self.fd, view[done:])
                except BlockingIOError:
                    select.select([], [self.fd], [])
            return done


@functools.lru_cache(maxsize=64)
def _placeholder(complete: bool, missing_bytes: int) -> MessageSummary:
    """The summary a message has in a session from the child until the parent summarises it
    (:meth:`_Summaries.fill`, which reads only these two fields).

    The child's placeholders (:class:`~mailtrace.session.Unsummarized`) travel as this call and its two
    arguments rather than as a whole summary with its MIME tree: a frozen dataclass is pickled and
    unpickled by Python code, field by field, two of them for each of the thousands of messages."""
    return Unsummarized(MimeLimits()).close(complete=complete, missing_bytes=missing_bytes)


def _reduce_placeholder(summary: MessageSummary) -> tuple[Callable[[bool, int], MessageSummary], tuple[bool, int]]:
    return _placeholder, (summary.complete, summary.missing_bytes)


_PLACEHOLDERS: dict[type, Callable[[Any], Any]] = {MessageSummary: _reduce_placeholder}
"""The child's pickling of sessions whose summaries are placeholders (``Pickler.dispatch_table``)."""


def _child(analyzer: Analyzer, files: list[CaptureFile], with_progress: bool,  # pragma: no cover
           write_fd: int, summarize_there: bool) -> None:
    """Run the analyzer and send everything down the pipe; never returns (``os._exit``: the parent's
    buffered output and exit handlers are the parent's alone)."""
    code = 0
    # Ctrl-C reaches the whole process group: the parent says "interrupted" and ends the child, which
    # must not die on its own half-way through a message first
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        spool = _Spool(write_fd, placeholders=summarize_there)
        if summarize_there:
            analyzer.config = dataclasses.replace(analyzer.config, summarize=False,
                                                  message_sink=_sender_of_messages(spool, analyzer.config.mime))
        try:
            _run(analyzer, files, with_progress, spool)
        except BrokenPipeError:
            code = 1
        except BaseException as exc:  # handed to the parent, which raises it
            spool.send(_failed(exc))
            code = 1
        spool.close()
    except BaseException:  # nothing left to tell anyone
        code = 1
    os._exit(code)


def _run(analyzer: Analyzer, files: list[CaptureFile], with_progress: bool, spool: _Spool) -> None:
    if analyzer.context is not None:
        analyzer.context.listeners[:] = [lambda o: spool.send(_Context(o))]
    for index, capture in enumerate(files):
        spool.send(_FileStarted(index))
        callback = _progress_sender(spool, index, capture) if with_progress else None
        for session in analyzer.run_file(capture, callback):
            spool.send(_Finished(session, analyzer.stats))
    spool.send(_Done(analyzer.stats))


class _ChildSink:
    """A message sink in the child, named as the parent keys it: the session (stream and first frame,
    see :class:`_MessageBytes`) and the message's index (one message at a time per session: the next)."""

    def __init__(self, spool: _Spool, builder: SessionBuilder) -> None:
        self.spool = spool
        self.stream = builder.stream
        self.first = builder.first_frame
        self.number = builder.message_count


class _MessageSender(_ChildSink):
    """The sink of one message in the child: its bytes go to the parent, which summarises them."""

    def write(self, data: bytes) -> None:
        self.spool.send_bytes(_MessageBytes(self.stream, self.first, self.number, len(data)), data)

    def close(self, record: MessageRecord) -> None:
        summary = record.summary
        self.spool.send(_MessageEnded(self.stream, self.first, self.number, summary.complete, summary.missing_bytes))


class _SummarizingSender(_ChildSink):
    """The sink of one message in the child when the parent is behind: the child summarises it and
    sends only the summary (the same summariser, so the report is the same either way)."""

    def __init__(self, spool: _Spool, builder: SessionBuilder, limits: MimeLimits) -> None:
        super().__init__(spool, builder)
        # as _Summaries makes them
        self.summarizer = MessageSummarizer(limits, keep=False, message_md5=False, waiting=builder.budget.waiting)

    def write(self, data: bytes) -> None:
        self.summarizer.feed(data)

    def close(self, record: MessageRecord) -> None:
        pending = record.summary
        summary = self.summarizer.close(complete=pending.complete, missing_bytes=pending.missing_bytes)
        self.spool.send(_MessageSummarized(self.stream, self.first, self.number, summary))


def _sender_of_messages(spool: _Spool, limits: MimeLimits) -> MessageSinkFactory:
    """Each message's bytes go to the parent, which summarises them; but while BEHIND_BYTES or more
    wait for the pipe, the parent is the slower half and the child summarises new messages itself. The
    two halves so share the summaries as their speeds on this machine and capture say."""
    behind = BEHIND_BYTES

    def sink(builder: SessionBuilder, origin: str) -> _MessageSender | _SummarizingSender | None:
        if builder.messages_full:
            return None  # not kept in the session: nothing to summarise
        if spool.backlog >= behind:
            return _SummarizingSender(spool, builder, limits)
        return _MessageSender(spool, builder)

    return sink


def _progress_sender(spool: _Spool, index: int, capture: CaptureFile) -> Callable[[int], None]:  # pragma: no cover
    def send(packets: int) -> None:
        spool.send(_Progress(index, packets, capture.position()))

    return send


def _failed(exc: BaseException) -> _Failed:
    text = "".join(traceback.format_exception(exc)).rstrip()
    try:
        pickle.loads(pickle.dumps(exc))  # noqa: S301 - the exception we just pickled
    except Exception:  # an exception that does not travel: its text does
        return _Failed(None, text)
    return _Failed(exc, text)
