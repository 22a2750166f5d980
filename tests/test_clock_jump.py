"""Frames with a wrong clock and sessions that span years: the durations stay readable.

mercury's imap2 capture has its SYN/ACK (frame 2) stamped 2063 between frames of 2015; PcapPlusPlus's
Smtp.pcap splices frames of 2009 and 2023 into one connection (a real span, as the file has it)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from mailtrace.capture.reader import open_capture
from mailtrace.commands.common import build_config
from mailtrace.pipeline import Analyzer
from mailtrace.render.html import fmt_secs
from mailtrace.render.terminal import duration
from tests.pcapgen import Capture, Tcp
from tests.support import corpus, report, run_cli

IMAP2 = "mercury/imap2"
LAST_FRAME_TS = 1422629923.062147  # frame 41, as tshark's frame.time_epoch gives it


def test_a_frame_stamped_decades_ahead_is_left_out_of_the_end() -> None:
    (session,) = report(corpus(IMAP2))["sessions"]
    assert session["end"] == pytest.approx(LAST_FRAME_TS)
    assert session["duration"] == pytest.approx(11.349743, abs=1e-6)
    [jump] = [a for a in session["anomalies"] if a["kind"] == "clock-jump"]
    assert jump["frame"] == 2 and "17,808.4 days" in jump["detail"]
    listing = run_cli("analyze", "--list", str(corpus(IMAP2))).stdout
    assert "11.35 s" in listing and "1: clock-jump" in listing


def test_steady_and_merely_reordered_clocks_raise_nothing(tmp_path: Path) -> None:
    """A frame up to a day before the latest one (captures merged from two interfaces) is no jump."""
    cap = Capture()
    t = Tcp(cap, client=("10.0.0.1", 40000), server=("10.0.0.2", 25)).handshake()
    t.s(b"220 hi\r\n")
    t.ts += 3600.0
    t.c(b"EHLO a\r\n")
    t.ts -= 7200.0  # two hours back: a reordered merge, not a wrong clock
    t.s(b"250 ok\r\n")
    t.fin()
    (session,) = report(cap.write(tmp_path / "x.pcap"))["sessions"]
    assert [a["kind"] for a in session["anomalies"]] == []
    assert session["duration"] == pytest.approx(3600.0, abs=1.0)


def test_a_synthetic_jump_names_the_frame_and_keeps_the_rest(tmp_path: Path) -> None:
    cap = Capture()
    t = Tcp(cap, client=("10.0.0.1", 40000), server=("10.0.0.2", 25)).handshake()
    t.s(b"220 hi\r\n")
    t.ts += 10 * 365 * 86_400.0  # the client's EHLO is stamped ten years ahead ...
    t.c(b"EHLO a\r\n")
    t.ts -= 10 * 365 * 86_400.0 - 1.0  # ... and the server answers a second after the greeting
    t.s(b"250 ok\r\n")
    t.c(b"QUIT\r\n")
    t.s(b"221 bye\r\n")
    t.fin()
    (session,) = report(cap.write(tmp_path / "x.pcap"))["sessions"]
    [jump] = session["anomalies"]
    assert jump["kind"] == "clock-jump" and jump["frame"] == 5 and "3,650.0 days" in jump["detail"]
    assert session["duration"] < 5.0
    assert [c["verb"] for c in session["commands"]] == ["EHLO", "QUIT"]  # the dissection is unchanged


@pytest.mark.parametrize(("value", "lang", "shown"), [
    (11.349743, "en", "11.35 s"), (999.4, "en", "999 s"), (1000.0, "en", "16.7 min"),
    (10_080.0, "en", "2.8 h"), (442_200_620.0, "en", "5,118 d"), (442_200_620.0, "de", "5.118 d"),
    (1_000_000.0, "de", "11,6 d"),
])
def test_durations_change_unit_past_a_thousand_seconds(value: float, lang: str, shown: str) -> None:
    assert duration(value, lang) == shown
    assert len(shown) <= 8  # the list's duration column


def test_html_durations_go_to_days() -> None:
    assert (fmt_secs(90.0), fmt_secs(7300.0), fmt_secs(442_200_620.0)) == ("90.000 s", "2.0 h", "5,118 d")


def _session_with(tmp_path: Path, stamp: dict[int, float]) -> dict:
    """An SMTP session of 9 frames (a reset last), frame N stamped at ``stamp[N]`` (an absolute time)."""
    cap = Capture()
    t = Tcp(cap, client=("10.0.0.1", 40000), server=("10.0.0.2", 25))
    frames = [t.handshake, lambda: t.s(b"220 hi\r\n"), lambda: t.c(b"EHLO a\r\n"), lambda: t.s(b"250 ok\r\n"),
              lambda: t.c(b"QUIT\r\n"), lambda: t.s(b"221 bye\r\n"), lambda: t.rst("c")]
    for send in frames:
        send()
    assert len(cap.frames) == 9
    for frame, ts in stamp.items():
        cap.frames[frame - 1].ts = ts
    return report(cap.write(tmp_path / "x.pcap"))["sessions"][0]


def test_the_last_frame_stamped_decades_behind_is_the_wrong_one(tmp_path: Path) -> None:
    """A reset stamped 1970 after frames of 2015: the reset is named, not every frame before it."""
    session = _session_with(tmp_path, {9: 0.0})
    [jump] = session["anomalies"]
    assert jump["kind"] == "clock-jump" and jump["frame"] == 9
    assert "days before the frames around it" in jump["detail"] and "more" not in jump["detail"]
    assert session["start"] <= session["end"] and session["duration"] < 5.0


def test_a_first_frame_stamped_ahead_moves_the_start(tmp_path: Path) -> None:
    session = _session_with(tmp_path, {1: 4_000_000_000.0})
    [jump] = session["anomalies"]
    assert jump["frame"] == 1 and "days after" in jump["detail"]
    assert 0.0 <= session["duration"] < 5.0 and session["start"] < 4_000_000_000.0


def test_several_wrong_frames_are_one_anomaly_counted_in_words(tmp_path: Path) -> None:
    """Frames 2 and 7 carry the same wrong clock, frame 3 another: one anomaly, not one per frame."""
    session = _session_with(tmp_path, {2: 4_000_000_000.0, 7: 4_000_000_000.0, 3: 100.0})
    [jump] = session["anomalies"]
    assert jump["frame"] == 2 and "(and 2 more frames, some ahead, some behind)" in jump["detail"]
    assert session["duration"] < 5.0
    two = _session_with(tmp_path, {2: 4_000_000_000.0, 7: 4_000_000_000.0})
    assert "(and 1 more frame)" in two["anomalies"][0]["detail"]


@pytest.mark.parametrize(("value", "shown", "html"), [
    (9.9996, "10.00 s", "10.000 s"), (999.6, "16.7 min", "16 min 40 s"), (5997.0, "1.7 h", "99 min 57 s"),
    (5999.9, "1.7 h", "100 min 0 s"), (359_999.0, "4.2 d", "4.2 d"), (0.99996, "1.000 s", "1.000 s"),
])
def test_units_are_chosen_after_rounding(value: float, shown: str, html: str) -> None:
    """Never '1000 s', '100.0 min', '1000.0 ms' or '99 min 60 s': a value that rounds up takes the next unit."""
    assert (duration(value), fmt_secs(value)) == (shown, html)


def test_a_slow_session_whose_clock_went_back_by_a_day_has_no_odd_group(tmp_path: Path) -> None:
    """Frames 20 h apart, then one 25 h behind the latest: every frame is within a day of another, so
    no group stands apart; no anomaly, no crash, and the span is the file's."""
    hours = {1: 0.0, 2: 0.0, 3: 0.0, 4: 0.0, 5: 0.0, 6: 20.0, 7: 40.0, 8: 15.0, 9: 40.0}
    session = _session_with(tmp_path, {f: 1_400_000_000.0 + h * 3600 + f for f, h in hours.items()})
    assert session["anomalies"] == [] and session["duration"] == pytest.approx(40 * 3600 + 8)


def test_a_wrong_frame_past_the_row_limit_is_named_by_its_number(tmp_path: Path) -> None:
    cap = Capture()
    t = Tcp(cap, client=("10.0.0.1", 40000), server=("10.0.0.2", 25)).handshake()
    t.s(b"220 hi\r\n")
    for _ in range(60):
        t.c(b"NOOP\r\n").s(b"250 ok\r\n")
    t.c(b"QUIT\r\n").s(b"221 bye\r\n").fin()
    cap.frames[100].ts = 0.0  # past the 50 rows kept
    path = cap.write(tmp_path / "x.pcap")
    config = build_config()
    [session] = Analyzer(replace(config, session=replace(config.session, max_rows=50))).run([open_capture(str(path))])
    assert session.rows_elided and session.duration < 5.0
    [jump] = session.anomalies
    assert jump.frame == 101 and jump.detail.startswith("frame 101, past the row limit, is stamped")


def test_a_wrong_last_frame_past_the_row_limit_does_not_shorten_the_session(tmp_path: Path) -> None:
    """The rows kept end early; the rows past the limit still tell the session's end (a reset stamped
    1970 after 60 exchanges a second apart: 61 s, not the 25 s of the 50 kept rows)."""
    cap = Capture()
    t = Tcp(cap, client=("10.0.0.1", 40000), server=("10.0.0.2", 25)).handshake()
    t.s(b"220 hi\r\n")
    for _ in range(60):
        t.ts += 1.0
        t.c(b"NOOP\r\n").s(b"250 ok\r\n")
    t.rst("c")
    cap.frames[-1].ts = 0.0
    path = cap.write(tmp_path / "x.pcap")
    config = build_config()
    [session] = Analyzer(replace(config, session=replace(config.session, max_rows=50))).run([open_capture(str(path))])
    assert session.duration == pytest.approx(60.0, abs=1.0)
    [jump] = session.anomalies
    assert jump.frame == len(cap.frames) and "past the row limit" in jump.detail and "days before" in jump.detail
