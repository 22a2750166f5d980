"""The live run's stop and flush logic, and its views (those of analyze), driven by a fake frame source
(no root, no network)."""

from __future__ import annotations

import gc
import io
import json
import weakref
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from live_helpers import Conversation, FakeClock, FakeSource, Item, Tick, smtp_session

from mailtrace.capture.live import LiveError
from mailtrace.capture.reader import Frame, open_capture
from mailtrace.capture.writer import PcapWriteError, PcapWriter
from mailtrace.cli import main
from mailtrace.commands.analyze import JsonConsumer, JsonlConsumer, SessionConsumer, Views, build_consumers
from mailtrace.commands.common import build_config
from mailtrace.commands.live import LiveRun, html_consumer, live_config
from mailtrace.commands.report_data import findings_collector
from mailtrace.pipeline import Analyzer, CaptureStats
from mailtrace.render.json import JsonReportWriter, session_json
from mailtrace.render.output import Output
from mailtrace.session import Session

T0 = 1_700_000_000.0


class HardExitError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def hard_exit(status: int) -> None:
    raise HardExitError(status)


def make_run(script: list[Item], out: io.StringIO, *, fmt: str = "json", clock: FakeClock | None = None,
             idle_timeout: float | None = None, **kwargs: Any) -> tuple[LiveRun, FakeSource]:
    config = live_config(build_config(), idle_timeout)
    consumer: SessionConsumer
    if fmt == "json":
        consumer = JsonConsumer(JsonReportWriter(out))
    else:
        consumer = JsonlConsumer(False)
        consumer.write = _jsonl(out)
    clock = clock or FakeClock(T0)
    source = FakeSource(script, clock)
    run = LiveRun(Analyzer(config, reorder=False), source, [consumer], clock=clock, exit_now=hard_exit,
                  say=lambda _line: None, out=out, **kwargs)
    return run, source


def _jsonl(out: io.StringIO) -> Any:
    def write(s: Session) -> None:
        out.write(json.dumps(session_json(s)) + "\n")
    return write


def two_sessions() -> tuple[list[Frame], list[Frame]]:
    """A finished SMTP session, and one that never gets past EHLO (still open at the stop)."""
    clock = [T0]
    done = smtp_session(Conversation(("10.0.0.1", 40001), ("10.0.0.2", 25), clock), subject="first")
    still_open = smtp_session(Conversation(("10.0.0.3", 40002), ("10.0.0.2", 25), clock), finish=False)
    return done, still_open


def by_close(doc: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for s in doc["sessions"]:
        out.setdefault(s["close"], []).append(s)
    return out


def test_count_stops_after_n_packets_and_flushes_open_sessions() -> None:
    done, still_open = two_sessions()
    extra = smtp_session(Conversation(("10.0.0.5", 40005), ("10.0.0.2", 25), [T0 + 50]))
    out = io.StringIO()
    run, source = make_run([*done, *still_open, *extra], out, count=len(done) + len(still_open))
    assert run.run() == 0
    assert source.consumed == len(done) + len(still_open)
    doc = json.loads(out.getvalue())
    closes = by_close(doc)
    assert [s["messages"][0]["subject"] for s in closes["fin"]] == ["first"]
    assert [s["client"]["port"] for s in closes["open"]] == [40002]
    assert doc["capture"]["packets"] == len(done) + len(still_open)
    assert doc["capture"]["files"][0]["name"] == "live:fake0"
    assert doc["live"]["stopped_by"] == f"{len(done) + len(still_open)} packets captured"
    assert doc["live"]["open_at_stop"] == 1
    assert run.open_at_stop == 1 and run.sessions == 2


def test_duration_stops_on_the_clock_without_packets() -> None:
    done, still_open = two_sessions()
    clock = FakeClock(T0)
    script: list[Item] = [*done, *still_open, Tick(T0 + 1), Tick(T0 + 2), Tick(T0 + 3),
                          *smtp_session(Conversation(("10.0.0.9", 40009), ("10.0.0.2", 25), [T0 + 4]))]
    out = io.StringIO()
    run, source = make_run(script, out, clock=clock, duration=2.5)
    run.run()
    assert source.consumed == len(done) + len(still_open) + 3  # stopped at the tick past 2.5 s
    doc = json.loads(out.getvalue())
    assert doc["live"]["stopped_by"] == "2.5 s elapsed"
    assert sorted(s["close"] for s in doc["sessions"]) == ["fin", "open"]


def test_interrupt_flushes_open_sessions_and_leaves_valid_json(tmp_path: Path) -> None:
    done, still_open = two_sessions()
    out = io.StringIO()
    pcap = tmp_path / "live.pcap"
    writer = PcapWriter(str(pcap), 1, 65535)
    script: list[Item] = [*done, *still_open]
    run, source = make_run(script, out, writer=writer)
    script.append(run.interrupt)
    script.extend(smtp_session(Conversation(("10.0.0.7", 40007), ("10.0.0.2", 25), [T0 + 90])))
    assert run.run() == 0
    assert source.consumed == len(done) + len(still_open) + 1
    doc = json.loads(out.getvalue())
    assert doc["live"]["stopped_by"] == "interrupted"
    assert [s["close"] for s in by_close(doc)["open"]] == ["open"]
    assert doc["live"]["write"] == {"path": str(pcap), "packets": len(done) + len(still_open)}
    # the written file is complete: analyze reads back the same sessions
    again = list(Analyzer(build_config()).run([open_capture(str(pcap))]))
    assert [(s.client.port, s.close, len(s.commands)) for s in again] == \
        [(s["client"]["port"], s["close"], len(s["commands"])) for s in doc["sessions"]]


def test_second_interrupt_exits_at_once() -> None:
    done, still_open = two_sessions()
    out = io.StringIO()
    flushed: list[str] = []

    class Sink:
        path = "x.pcap"
        frames = 0

        def write(self, frame: Frame) -> None:
            self.frames += 1

        def flush(self) -> None:
            flushed.append("flush")

        def close(self) -> None:
            flushed.append("close")

    script: list[Item] = [*still_open]
    run, _ = make_run(script, out, writer=Sink())

    def twice() -> None:
        run.interrupt()
        run.interrupt()  # the second arrives before the first is handled

    script += [twice, *done]
    with pytest.raises(HardExitError) as exc:
        run.run()
    assert exc.value.status == 130
    assert flushed[0] == "flush"  # what was captured is on disk before exiting


def test_sessions_are_printed_as_they_end_not_at_the_stop() -> None:
    done, still_open = two_sessions()
    out = io.StringIO()
    seen: list[int] = []
    script: list[Item] = [*done, lambda: seen.append(out.getvalue().count("\n")), *still_open]
    run, _ = make_run(script, out, fmt="jsonl")
    run.run()
    assert seen == [1]  # the finished session was out before the source ended
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [s["close"] for s in lines] == ["fin", "open"]
    assert run.stop_reason is None and run.report()["stopped_by"] == "end of source"


def test_ticks_end_lingering_and_idle_sessions_without_packets() -> None:
    clock = [T0]
    lingering = Conversation(("10.0.0.1", 40001), ("10.0.0.2", 25), clock)
    frames = smtp_session(lingering)[:-3] + lingering.close(last_ack=False)  # no last ACK: it lingers
    idle = smtp_session(Conversation(("10.0.0.3", 40003), ("10.0.0.2", 25), clock), finish=False)
    out = io.StringIO()
    counts: list[int] = []

    def count() -> None:
        counts.append(out.getvalue().count("\n"))

    script: list[Item] = [*frames, *idle, count, Tick(clock[0] + 3), count, Tick(clock[0] + 45), count]
    run, _ = make_run(script, out, fmt="jsonl", idle_timeout=20)
    run.run()
    assert counts == [0, 1, 2]
    assert [json.loads(line)["close"] for line in out.getvalue().splitlines()] == ["fin", "timeout"]


def test_finished_sessions_are_not_kept() -> None:
    clock = [T0]
    script: list[Item] = []
    for i in range(60):
        script += smtp_session(Conversation((f"10.0.1.{i}", 41000 + i), ("10.0.0.2", 25), clock))
    refs: list[weakref.ref[Session]] = []

    class Collector:
        def session(self, session: Session) -> None:
            refs.append(weakref.ref(session))

        def end(self, stats: CaptureStats, elapsed: float) -> None:
            pass

    run = LiveRun(Analyzer(live_config(build_config(), None), reorder=False), FakeSource(script),
                  [Collector()], say=lambda _line: None, out=io.StringIO())
    run.run()
    gc.collect()
    assert len(refs) == 60
    assert all(ref() is None for ref in refs)
    assert run.analyzer.flows.active == {} and run.analyzer.flows.closing == {}


def test_a_failing_output_stops_the_capture_and_completes_the_rest() -> None:
    done, still_open = two_sessions()

    class FullDisk:
        path = "full.pcap"
        frames = 0

        def write(self, frame: Frame) -> None:
            if self.frames == len(done):
                raise PcapWriteError("--write full.pcap: No space left on device")
            self.frames += 1

        def flush(self) -> None:
            pass

        def close(self) -> None:
            pass

    out = io.StringIO()
    run, _ = make_run([*done, *still_open], out, writer=FullDisk())
    assert run.run() == 1
    doc = json.loads(out.getvalue())
    assert doc["live"]["stopped_by"] == "output failed"
    assert [s["close"] for s in doc["sessions"]] == ["fin"]
    assert run.summary()[-1] == "--write full.pcap: No space left on device"


def test_summary_names_the_stop_and_the_counts() -> None:
    done, still_open = two_sessions()
    run, _ = make_run([*done, *still_open], io.StringIO(), count=len(done) + 2)
    run.run()
    line = run.summary()[0]
    assert line.startswith(f"stopped ({len(done) + 2} packets captured)")
    assert "2 sessions (SMTP 2)" in line and "1 still open" in line and "kernel dropped 0" in line


def test_a_failing_capture_stops_and_completes_the_outputs() -> None:
    done, still_open = two_sessions()

    def interface_gone() -> None:
        raise LiveError("capture on fake0 stopped: Network is down")

    out = io.StringIO()
    run, _ = make_run([*done, *still_open, interface_gone], out)
    assert run.run() == 1
    doc = json.loads(out.getvalue())
    assert doc["live"]["stopped_by"] == "capture failed"
    assert sorted(s["close"] for s in doc["sessions"]) == ["fin", "open"]
    assert run.summary()[-1] == "capture on fake0 stopped: Network is down"


def test_a_closed_stdout_stops_quietly_and_file_reports_are_still_completed() -> None:
    done, still_open = two_sessions()
    later = smtp_session(Conversation(("10.0.0.8", 40008), ("10.0.0.2", 25), [T0 + 60]))

    class ClosedPipe(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    got: list[str] = []

    class Report:
        def session(self, session: Session) -> None:
            got.append(session.close)

        def end(self, stats: CaptureStats, elapsed: float) -> None:
            got.append("end")

    out = ClosedPipe()
    stdout = JsonlConsumer(False)
    stdout.write = _jsonl(out)
    source = FakeSource([*still_open, *done, *later])
    run = LiveRun(Analyzer(live_config(build_config(), None), reorder=False), source, [stdout, Report()],
                  say=lambda _line: None, out=out)
    assert run.run() == 0
    assert run.stop_reason == "output closed"
    assert got == ["fin", "open", "end"]  # stopped at the first session out; the open one still flushed
    assert source.consumed == len(still_open) + len(done)


# ---------------------------------------------------------------------------------------------- parity with analyze
def cleartext_login(conv: Conversation) -> list[Frame]:
    """SMTP with AUTH PLAIN (alice / s3cret) on the unencrypted channel, then a message."""
    return [
        *conv.open(),
        conv.s(b"220 mx.example.test ESMTP\r\n"),
        conv.c(b"EHLO client.test\r\n"), conv.s(b"250-mx.example.test\r\n250 AUTH PLAIN\r\n"),
        conv.c(b"AUTH PLAIN AGFsaWNlAHMzY3JldA==\r\n"), conv.s(b"235 2.7.0 Authentication successful\r\n"),
        conv.c(b"MAIL FROM:<alice@example.test>\r\n"), conv.s(b"250 OK\r\n"),
        conv.c(b"RCPT TO:<b@example.test>\r\n"), conv.s(b"250 OK\r\n"),
        conv.c(b"DATA\r\n"), conv.s(b"354 go ahead\r\n"),
        conv.c(b"Subject: login\r\nMessage-ID: <login@example.test>\r\n\r\nbody\r\n.\r\n"),
        conv.s(b"250 queued\r\n"),
        conv.c(b"QUIT\r\n"), conv.s(b"221 bye\r\n"),
        *conv.close(),
    ]


def views_run(script: list[Item], out: io.StringIO, views: Views, *, html: Any = None,
              writer: PcapWriter | None = None) -> LiveRun:
    """A live run with the consumers ``mailtrace live`` builds for these views (those of analyze)."""
    findings = findings_collector(show_secrets=False, local_domains=None, failed_login_threshold=5)
    analyzer = Analyzer(live_config(build_config(), None), reorder=False)
    consumers, _ = build_consumers(views, analyzer=analyzer, findings=findings, output=Output(out), html=html)
    clock = FakeClock(T0)
    return LiveRun(analyzer, FakeSource(script, clock), consumers, clock=clock, writer=writer,
                   exit_now=hard_exit, say=lambda _line: None, out=out)


def test_live_json_has_the_findings_stats_and_flows_that_analyze_makes_of_its_pcap(tmp_path: Path) -> None:
    clock = [T0]
    login = cleartext_login(Conversation(("10.0.0.1", 40001), ("10.0.0.2", 25), clock))
    _done, still_open = two_sessions()
    out = io.StringIO()
    pcap = tmp_path / "live.pcap"
    run = views_run([*login, *still_open], out, Views(fmt="json"), writer=PcapWriter(str(pcap), 1, 65535))
    assert run.run() == 0
    doc = json.loads(out.getvalue())
    assert list(doc)[:4] == ["format", "version", "sessions", "capture"]
    assert {"findings", "stats", "flows", "live"} <= set(doc)
    cleartext = [f for f in doc["findings"] if f["id"] == "cleartext-credentials"]
    assert [(f["severity"], f["session"], f["title"], f["frames"]) for f in cleartext] == [
        ("high", 1, "SMTP password of user alice sent in cleartext", [7, 8])]  # AUTH and 235
    assert "s3cret" not in out.getvalue()
    assert doc["stats"]["auth"]["mechanisms"] == {"smtp PLAIN": 1}
    assert [p["sessions"] for p in doc["stats"]["protocols"]] == [2]
    assert [(f["subject"], [h["session"] for h in f["hops"]]) for f in doc["flows"]] == [("login", [1])]
    # analyze of the pcap written meanwhile: the same findings, statistics and flows
    result = CliRunner().invoke(main, ["analyze", "--format", "json", str(pcap)])
    again = json.loads(result.stdout)
    assert again["findings"] == doc["findings"]
    for key in ("protocols", "auth", "messages", "commands", "smtp_replies", "findings"):
        assert again["stats"][key] == doc["stats"][key], key
    assert [{k: v for k, v in hop.items() if k != "file"} for f in again["flows"] for hop in f["hops"]] == \
        [{k: v for k, v in hop.items() if k != "file"} for f in doc["flows"] for hop in f["hops"]]


def test_live_text_ends_with_the_findings_block_and_html_has_its_sections(tmp_path: Path) -> None:
    login = cleartext_login(Conversation(("10.0.0.1", 40001), ("10.0.0.2", 25), [T0]))
    out = io.StringIO()
    page = tmp_path / "live.html"
    run = views_run(login, out, Views(), html=html_consumer(str(page), False))
    assert run.run() == 0
    text = out.getvalue()
    assert text.index("Session 1 · SMTP") < text.index("Summary") < text.index("Findings: 1 high, 1 low")
    assert "HIGH   SMTP password of user alice sent in cleartext\n" in text
    html = page.read_text(encoding="utf-8")
    section = html[html.index('<section id="findings"'):html.index("</section>", html.index('<section id="findings"'))]
    assert 'id="findings-table"' in section and "SMTP password of user alice sent in cleartext" in section
    assert '<section id="statistics"' in html
