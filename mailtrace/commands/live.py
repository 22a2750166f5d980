"""``mailtrace live``: sniff an interface and print each mail session as it ends.

The same pipeline as ``analyze`` (decoder, flow table, dissectors, context layer, session model), fed
frame by frame from :mod:`mailtrace.capture.live` instead of a file, and the same consumers, built by
:func:`~mailtrace.commands.analyze.build_consumers` (views, findings, statistics, flows, reports).
:class:`LiveRun` owns the run: it feeds frames and clock ticks to the Analyzer, hands finished sessions
to the consumers at once (nothing is kept after that), writes ``--write``, refreshes the status line,
and stops on ``--count``, ``--duration``, Ctrl-C or SIGTERM — flushing open sessions as ``open`` and
closing every output so it is complete. A second Ctrl-C exits at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from types import FrameType
from typing import IO, TYPE_CHECKING, Any, NoReturn, Protocol

import click
from rich.console import Console
from rich.text import Text

from mailtrace.capture.live import LiveError
from mailtrace.capture.reader import Frame
from mailtrace.commands.analyze import SessionConsumer, Views, build_consumers
from mailtrace.commands.common import build_config, capture_options, fail, lang_option, load_keylog, resolve_lang
from mailtrace.commands.report_data import findings_collector, findings_options, say_problems
from mailtrace.config import Config
from mailtrace.pipeline import Analyzer
from mailtrace.render.output import Output
from mailtrace.session import Session

if TYPE_CHECKING:  # jinja2 and the templates load only when a report is written
    from mailtrace.render.html import HtmlReport

EXIT_INTERRUPTED = 130
EXIT_FAILED = 1


class FrameSource(Protocol):
    """Where live frames come from: :class:`~mailtrace.capture.live.LiveCapture`, or a fake in tests."""

    name: str
    linktype: int

    def run(self, on_frame: Callable[[Frame], None], on_tick: Callable[[float], None],
            should_stop: Callable[[], bool]) -> None:
        """Call ``on_frame`` per frame and ``on_tick(now)`` at least every quarter second, until
        ``should_stop()`` (checked after every frame and every tick) is true."""

    def kernel_drops(self) -> int | None:
        """Packets the kernel dropped so far (buffer full), if it tells."""


class FrameSink(Protocol):
    """Where captured frames are copied (``--write``); its methods raise OSError with a one-line message."""

    path: str
    frames: int

    def write(self, frame: Frame) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class StatusLine:
    """One line on a terminal, redrawn in place and cleared before anything else is printed there."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.shown = False

    def show(self, text: Text) -> None:
        text.truncate(max(20, self.console.width - 1), overflow="ellipsis")
        with self.console.capture() as capture:
            self.console.print(text, end="", soft_wrap=True)
        self.console.file.write("\r\x1b[2K" + capture.get())
        self.console.file.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.console.file.write("\r\x1b[2K")
            self.console.file.flush()
            self.shown = False


def _exit_now(status: int) -> NoReturn:
    sys.stderr.flush()
    os._exit(status)


class LiveRun:
    """One live capture: frames in, sessions out to the consumers as they end, until a stop condition."""

    def __init__(self, analyzer: Analyzer, source: FrameSource, consumers: list[SessionConsumer], *,
                 writer: FrameSink | None = None, status: StatusLine | None = None,
                 count: int | None = None, duration: float | None = None, filter_text: str | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 exit_now: Callable[[int], None] = _exit_now,
                 say: Callable[[str], None] | None = None, out: IO[str] | None = None) -> None:
        self.analyzer = analyzer
        self.source = source
        self.consumers = consumers
        self.writer = writer
        self.status = status
        self.count = count
        self.duration = duration
        self.filter_text = filter_text
        self.clock = clock
        self.exit_now = exit_now
        self.say = say or (lambda line: click.echo(f"mailtrace: {line}", err=True))
        self.out = out if out is not None else sys.stdout
        self.frames = 0
        self.sessions = 0
        self.open_at_stop = 0
        self.protocols: Counter[str] = Counter()
        self.stop_reason: str | None = None
        self.started = 0.0
        self.elapsed = 0.0
        self.error: str | None = None
        self._interrupts = 0
        self._flushing = False

    # ------------------------------------------------------------------ stop conditions
    def interrupt(self, reason: str = "interrupted") -> None:
        """Ctrl-C (or SIGTERM): the first stops the capture cleanly, the second exits at once."""
        self._interrupts += 1
        if self._interrupts == 1:
            self.stop_reason = self.stop_reason or reason
            return
        if self.status is not None:
            self.status.clear()
        if self.writer is not None:
            with contextlib.suppress(Exception):
                self.writer.flush()
        self.say("interrupted again: exiting at once; output files may be incomplete")
        self.exit_now(EXIT_INTERRUPTED)

    def should_stop(self) -> bool:
        if self.stop_reason is not None:
            return True
        if self.count is not None and self.frames >= self.count:
            self.stop_reason = f"{self.count} packets captured"
        elif self.duration is not None and self.clock() - self.started >= self.duration:
            self.stop_reason = f"{self.duration:g} s elapsed"
        return self.stop_reason is not None

    # ------------------------------------------------------------------ the run
    def run(self) -> int:
        """Capture until a stop condition; returns the exit status (0, or 1 if an output failed)."""
        self.started = self.clock()
        self.analyzer.start_source(f"live:{self.source.name}")
        try:
            self.source.run(self._frame, self._tick, self.should_stop)
        except OutputError as exc:
            self.error = str(exc)
            self.stop_reason = "output failed"
        except LiveError as exc:
            self.error = str(exc)
            self.stop_reason = "capture failed"
        finally:
            self._finish()
        return EXIT_FAILED if self.error else 0

    def _frame(self, frame: Frame) -> None:
        self.frames += 1
        if self.writer is not None:
            try:
                self.writer.write(frame)
            except OSError as exc:
                raise OutputError(str(exc)) from exc
        done = self.analyzer.feed(*frame)
        if done:
            self._deliver(done)

    def _tick(self, now: float) -> None:
        done = self.analyzer.tick(now)
        if done:
            self._deliver(done)
        if self.writer is not None:
            try:
                self.writer.flush()
            except OSError as exc:
                raise OutputError(str(exc)) from exc
        self.refresh()

    def _deliver(self, sessions: list[Session]) -> None:
        if self.status is not None:
            self.status.clear()
        for session in sessions:
            self.sessions += 1
            self.protocols[session.protocol] += 1
            if self._flushing and session.close == "open":
                self.open_at_stop += 1
            self._each(session)
        if self.status is not None and not self._flushing:
            self.refresh()

    def _each(self, session: Session | None) -> None:
        """Give every consumer the session (None: the end of the run), then flush stdout. If the reader
        of stdout went away (``| head``), the capture stops quietly, as other filters do; stdout then
        goes to /dev/null, so the consumers writing files (--html) are still completed."""
        for consumer in self.consumers:
            try:
                if session is not None:
                    consumer.session(session)
                else:
                    consumer.end(self.analyzer.stats, self.elapsed)
            except BrokenPipeError:
                self._stdout_closed()
        try:
            self.out.flush()
        except BrokenPipeError:
            self._stdout_closed()

    def _stdout_closed(self) -> None:
        self.stop_reason = self.stop_reason or "output closed"
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.out.fileno())
            os.close(devnull)

    def _finish(self) -> None:
        self._flushing = True
        if self.status is not None:
            self.status.clear()
        try:
            self._deliver(self.analyzer.close_source())
        finally:
            self.elapsed = self.clock() - self.started
            for consumer in self.consumers:
                extra = getattr(consumer, "extra", None)
                if isinstance(extra, dict):
                    extra["live"] = self.report()
            self._each(None)
            if self.writer is not None:
                try:
                    self.writer.close()
                except OSError as exc:
                    self.error = self.error or str(exc)

    # ------------------------------------------------------------------ reporting
    def open_sessions(self) -> int:
        flows = self.analyzer.flows
        return len(flows.active) + len(flows.closing)

    def mail_packets(self) -> int:
        flows = self.analyzer.flows
        running = [*flows.active.values(), *flows.closing.values()]
        return self.analyzer.stats.mail_packets + sum(c.packets for c in running)

    def kernel_drops(self) -> int | None:
        try:
            return self.source.kernel_drops()
        except OSError:
            return None

    def report(self) -> dict[str, Any]:
        """What the JSON report (and any consumer with an ``extra`` dict) says about the capture."""
        return {
            "interface": self.source.name,
            "filter": self.filter_text,
            "linktype": self.source.linktype,
            "packets": self.frames,
            "duration": round(self.elapsed, 3),
            "stopped_by": self.stop_reason or "end of source",
            "open_at_stop": self.open_at_stop,
            "kernel_dropped": self.kernel_drops(),
            "write": {"path": self.writer.path, "packets": self.writer.frames} if self.writer else None,
        }

    def refresh(self) -> None:
        if self.status is None:
            return
        elapsed = int(self.clock() - self.started)
        text = Text()
        text.append("● ", style="bold red")
        text.append(f"{self.source.name} ", style="bold")
        text.append(f"{elapsed // 3600}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d}", style="dim")
        for label, value in (("packets", self.frames), ("mail", self.mail_packets()),
                             ("open", self.open_sessions()), ("done", self.sessions)):
            text.append(f"  {label} ", style="dim")
            text.append(f"{value:,}", style="bold")
        drops = self.kernel_drops()
        if drops is not None:
            text.append("  dropped ", style="dim")
            text.append(f"{drops:,}", style="bold red" if drops else "bold")
        if self.writer is not None:
            text.append(f"  → {self.writer.path}", style="dim")
        text.append("   Ctrl-C stops", style="dim italic")
        self.status.show(text)

    def summary(self) -> list[str]:
        """The lines printed on stderr when the capture is over."""
        by_protocol = ", ".join(f"{p.upper()} {n}" for p, n in sorted(self.protocols.items()))
        line = (f"stopped ({self.stop_reason or 'end of source'}) after {self.elapsed:.1f} s: "
                f"{self.frames:,} packets captured on {self.source.name}, "
                f"{self.analyzer.stats.mail_packets:,} in mail sessions; {_plural(self.sessions, 'session')}")
        if by_protocol:
            line += f" ({by_protocol})"
        if self.open_at_stop:
            line += f", {self.open_at_stop} still open (reported as open)"
        drops = self.kernel_drops()
        if drops is not None:
            line += f"; kernel dropped {drops:,}"
        lines = [line]
        if self.writer is not None:
            lines.append(f"wrote {self.writer.frames:,} packets to {self.writer.path}")
        if self.error:
            lines.append(self.error)
        return lines


class OutputError(Exception):
    """Writing an output failed (disk full, ...): the capture stops, what was written is closed."""


# ---------------------------------------------------------------------------------------------- the command
def html_consumer(path: str, show_secrets: bool, *, lang: str = "en", explain: bool = True,
                  context: bool = True) -> HtmlReport:
    """The ``--html`` report: the consumer ``analyze --html`` uses, titled for a live capture."""
    from mailtrace.commands.html_option import open_report

    if path == "-":
        fail("--html -: standard output carries the capture's output; give the report a file name")
    report, _ = open_report(path, show_secrets=show_secrets, embed_attachments=False, title="mailtrace live",
                            lang=lang, explain=explain, context=context)
    return report


def live_config(config: Config, idle_timeout: float | None) -> Config:
    """Live capture ends idle sessions by time alone (no packets need to follow)."""
    flow = replace(config.flow, idle_min_packets=0)
    if idle_timeout is not None:
        flow = replace(flow, idle_timeout=idle_timeout)
    return replace(config, flow=flow)


class _Signals:
    """Ctrl-C and SIGTERM, from the start of the command: before the run exists they abandon the start
    (exit 130); during the run they stop it cleanly, and the second one exits at once."""

    def __init__(self) -> None:
        self.run: LiveRun | None = None

    def __call__(self, signum: int, _frame: FrameType | None) -> None:
        if self.run is None:
            raise KeyboardInterrupt
        self.run.interrupt("interrupted" if signum == signal.SIGINT else "terminated")

    @contextlib.contextmanager
    def installed(self) -> Iterator[_Signals]:
        previous = {sig: signal.signal(sig, self) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        except KeyboardInterrupt:
            click.echo("mailtrace: interrupted before the capture started", err=True)
            sys.exit(EXIT_INTERRUPTED)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


@click.command()
@click.option("-i", "--interface", "iface", metavar="IFACE",
              help="Interface to capture on; 'any' for all of them. Default: the default route's "
                   "(see mailtrace interfaces).")
@click.option("-f", "--filter", "bpf", metavar="BPF",
              help="Capture filter in tcpdump syntax. Default: TCP on the mail ports (and those of --port), "
                   "and the DNS (port 53) and ident (port 113) traffic of the context rows.")
@click.option("--all-ports", is_flag=True,
              help="Capture all TCP (and DNS), so mail on unexpected ports is found by its content.")
@click.option("-w", "--write", "write_path", type=click.Path(dir_okay=False), metavar="FILE.pcap",
              help="Also save the captured packets (pcap; readable by mailtrace analyze, tshark).")
@click.option("--html", "html_path", type=click.Path(dir_okay=False), metavar="FILE",
              help="Write the HTML report when the capture stops.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "jsonl"]), default="text",
              show_default=True,
              help="text: a table per session as it ends, the findings at the stop; json: one report "
                   "document (with \"findings\", \"stats\" and \"flows\", as analyze) at the stop; "
                   "jsonl: one line per session as it ends.")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Stop after this many seconds.")
@click.option("-c", "--count", type=click.IntRange(min=1), metavar="N", help="Stop after N captured packets.")
@click.option("--idle-timeout", type=click.FloatRange(min=1), metavar="SECONDS",
              help="End a session without packets for this long (default 600).")
@click.option("-B", "--buffer-size", "buffer_mib", type=click.IntRange(min=1, max=2048), default=32,
              show_default=True, metavar="MiB", help="Kernel capture buffer: room for bursts.")
@click.option("--no-promisc", is_flag=True, help="Do not put the interface into promiscuous mode.")
@click.option("-q", "--quiet", is_flag=True, help="No status line, no messages on stderr except errors.")
@click.option("--no-explain", is_flag=True,
              help="Do not explain SMTP reply codes (failures and the less common positive ones) and EHLO "
                   "extensions under their rows.")
@click.option("--color/--no-color", "color", default=None,
              help="Colour the text view (default: on a terminal, unless NO_COLOR is set).")
@click.option("--width", type=click.IntRange(40, 10_000), default=None, metavar="COLUMNS",
              help="Wrap the text view at this width (default: the terminal's; never when piped).")
@click.option("--no-context", is_flag=True,
              help="Hide the DNS lookups and ident probes made for each session (context rows; the JSON "
                   "\"context\" lists stay empty).")
@findings_options
@lang_option
@capture_options
def live(
    iface: str | None, bpf: str | None, all_ports: bool, write_path: str | None, html_path: str | None,
    fmt: str, duration: float | None, count: int | None, idle_timeout: float | None, buffer_mib: int,
    no_promisc: bool, quiet: bool, no_explain: bool, color: bool | None, width: int | None, no_context: bool,
    local_domains: str | None, failed_login_threshold: int, lang: str | None, ports: tuple[str, ...],
    show_secrets: bool, no_sniff: bool, keylog_path: tuple[str, ...] | None,
) -> None:
    """Capture mail traffic on an interface (Linux, root or CAP_NET_RAW) and show sessions as they end.

    The outputs are those of mailtrace analyze: the session tables, then the findings; or the JSON
    report (findings, stats, flows); or the HTML report. Stops on Ctrl-C, --duration or --count;
    sessions still open are reported as open.
    """
    from mailtrace.capture.live import LiveCapture, all_ports_filter, default_interface, mail_filter
    from mailtrace.capture.writer import PcapWriteError, PcapWriter

    if bpf is not None and all_ports:
        fail("--all-ports and -f both choose the filter: use one of them")
    language = resolve_lang(lang)
    config = live_config(build_config(ports, show_secrets, no_sniff), idle_timeout)
    keylog = load_keylog(keylog_path)
    findings = findings_collector(show_secrets=show_secrets, local_domains=local_domains,
                                  failed_login_threshold=failed_login_threshold)
    default_filter = bpf is None
    if default_filter:  # the mail ports, and the DNS and ident traffic the context layer reads
        context = config.context_enabled
        bpf = all_ports_filter(context=context) if all_ports else mail_filter(config.ports, context=context)
    # report files first: they only write at the end, and a problem with one must not leave a capture file
    html = (html_consumer(html_path, show_secrets, lang=language, explain=not no_explain, context=not no_context)
            if html_path is not None else None)
    with _Signals().installed() as signals, contextlib.ExitStack() as cleanup:
        try:
            name = iface or default_interface()
            capture = LiveCapture(name, bpf or None, promisc=not no_promisc, default_filter=default_filter,
                                  buffer_bytes=buffer_mib * 1024 * 1024)
        except LiveError as exc:
            fail(str(exc))
        cleanup.callback(capture.close)
        writer: PcapWriter | None = None
        if write_path is not None:
            try:
                writer = PcapWriter(write_path, capture.linktype, capture.snaplen)
            except PcapWriteError as exc:
                fail(str(exc))
            cleanup.callback(_close_quietly, writer)
        out = sys.stdout
        analyzer = Analyzer(config, reorder=False, keylog=keylog)
        # the views of analyze, built by the same function: findings, statistics, flows, DNS context
        views = Views(fmt=fmt, show_secrets=show_secrets, lang=language, context=not no_context,
                      explain=not no_explain)
        consumers, _ = build_consumers(views, analyzer=analyzer, findings=findings,
                                       output=Output.detect(color=color, width=width, stream=out), html=html)
        stderr = Console(stderr=True, highlight=False)
        on_terminal = stderr.is_terminal and not stderr.is_dumb_terminal
        status = StatusLine(stderr) if on_terminal and not quiet else None
        run = LiveRun(analyzer, capture, consumers, writer=writer, status=status, count=count,
                      duration=duration, filter_text=capture.filter, out=out)
        signals.run = run
        if not quiet:
            for note in capture.notes:
                run.say(note)
            run.say(f"listening on {name} ({_linktype_name(capture.linktype)}), "
                    f"filter: {capture.filter or 'none'}")
        exit_status = run.run()
    for line in run.summary() if not quiet else [run.error] if run.error else []:
        run.say(line)
    say_problems(analyzer.stats, findings)
    sys.exit(exit_status)


def _close_quietly(writer: FrameSink) -> None:
    """Close a writer the run did not get to close (a start-up failure); the run reports its own."""
    with contextlib.suppress(Exception):
        writer.close()


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def _linktype_name(linktype: int) -> str:
    return {1: "Ethernet", 101: "raw IP", 113: "Linux cooked"}.get(linktype, f"link type {linktype}")
