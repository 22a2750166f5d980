"""The flow table's fast path (``FlowTable.tracked``) against its general path (``FlowTable.general``).

``tracked`` takes the common packet of a tracked mail connection (in order, no SYN/FIN/RST, nothing
held) without building a ``TcpPacket``, and repeats for that case what ``general`` does. These tests
hold it to ``general``: every bundled sample, and perturbed copies of them (segments swapped, dropped,
repeated, as lossy captures have them), give the same report and the same packet tables whether the
fast path is taken or refused for every packet. The pcap copies go through the mapped-file loop
(``Analyzer._walk_mapped``, which calls ``tracked`` itself), the pcapng copies through
``FlowTable.packet``.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import dpkt
import pytest

from mailtrace.tcp.flows import FlowTable
from tests.support import REPO, run_cli

SAMPLES = sorted(p for p in (REPO / "samples").glob("*.pcap"))


def _frames(path: Path) -> list[tuple[float, bytes]]:
    with path.open("rb") as f:
        return [(ts, bytes(buf)) for ts, buf in dpkt.pcap.Reader(f)]


def _perturbed(frames: list[tuple[float, bytes]], seed: int) -> list[tuple[float, bytes]]:
    """Frames with neighbours swapped (reordering), some dropped (loss) and some repeated
    (retransmissions), keeping the timestamps in capture order."""
    rng = random.Random(seed)
    out = list(frames)
    for i in range(len(out) - 1):
        if rng.random() < 0.06:
            out[i], out[i + 1] = out[i + 1], out[i]
    kept: list[bytes] = []
    for _, buf in out:
        roll = rng.random()
        if roll < 0.03:
            continue
        kept.append(buf)
        if roll > 0.96:
            kept.append(buf)
    times = sorted(ts for ts, _ in frames)
    times += [times[-1]] * (len(kept) - len(times))
    return list(zip(sorted(times)[: len(kept)], kept, strict=True))


def _write(path: Path, frames: list[tuple[float, bytes]], *, pcapng: bool) -> Path:
    with path.open("wb") as f:
        writer = dpkt.pcapng.Writer(f) if pcapng else dpkt.pcap.Writer(f)
        for ts, buf in frames:
            writer.writepkt(buf, ts=ts)
    return path


def _without_clock(obj: dict[str, Any]) -> dict[str, Any]:
    obj.pop("analysis_seconds", None)  # wall-clock time, the one thing two runs may not share
    return obj


def _outputs(capture: Path, extra: tuple[str, ...] = ()) -> tuple[dict[str, Any] | None, str]:
    """The JSON report (without its wall-clock time) and the text view with every packet row (only the
    text view for ``--follow``, a text view of its own)."""
    data = None
    if "--follow" not in extra:
        result = run_cli("analyze", "--format", "json", "--jobs", "1", *extra, str(capture))
        assert result.exit_code == 0, result.stderr
        data = json.loads(result.stdout, object_hook=_without_clock)
    text = run_cli("analyze", "--jobs", "1", "--no-color", "--width", "200", *extra, str(capture))
    assert text.exit_code == 0, text.stderr
    return data, re.sub(r"elapsed .*", "elapsed", text.stdout)


def _both_ways(capture: Path, monkeypatch: pytest.MonkeyPatch, extra: tuple[str, ...] = ()) -> int:
    """Assert the two paths agree on ``capture``; return how many packets the fast path took."""
    taken = 0
    real = FlowTable.tracked

    def counting(self: FlowTable, *args: Any) -> bool:
        nonlocal taken
        took = real(self, *args)
        taken += took
        return took

    with monkeypatch.context() as m:
        m.setattr(FlowTable, "tracked", counting)
        fast = _outputs(capture, extra)
    with monkeypatch.context() as m:
        m.setattr(FlowTable, "tracked", lambda self, *args: False)
        general = _outputs(capture, extra)
    assert fast[0] == general[0]
    assert fast[1] == general[1]
    return taken


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_samples_same_either_way(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _both_ways(path, monkeypatch)


@pytest.mark.parametrize("name", ["smtp-starttls", "tls-implicit"])
def test_decrypted_sessions_same_either_way(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a key log the connection decrypts what it is handed (the fast path hands it on unchanged)."""
    samples = REPO / "samples"
    assert _both_ways(samples / f"{name}.pcap", monkeypatch, ("--tls-keylog", str(samples / f"{name}.keylog"))) > 0


@pytest.mark.parametrize("path", SAMPLES[:4], ids=lambda p: p.stem)
def test_transcripts_same_either_way(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--follow`` keeps every byte's transcript, which turns the bulk hand-over of message content off."""
    assert _both_ways(path, monkeypatch, ("--follow",)) > 0


@pytest.mark.parametrize("pcapng", [False, True], ids=["pcap", "pcapng"])
@pytest.mark.parametrize("seed", range(4))
def test_lossy_copies_same_either_way(seed: int, pcapng: bool, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    taken = 0
    for path in SAMPLES:
        frames = _perturbed(_frames(path), seed * 1000 + len(path.name))
        copy = _write(tmp_path / f"{path.stem}.{'pcapng' if pcapng else 'pcap'}", frames, pcapng=pcapng)
        taken += _both_ways(copy, monkeypatch)
    assert taken > 100  # the fast path was really taken, on both entry points


def test_the_row_readers_agree_with_the_rows() -> None:
    """The report side reads a session's rows through ``frame_time``, ``row_events`` and ``rows_from``,
    which never make the :class:`PacketRow` objects: they say what the rows say."""
    from mailtrace.capture.reader import open_capture
    from mailtrace.config import Config
    from mailtrace.pipeline import Analyzer

    capture = open_capture(str(REPO / "samples" / "smtp-starttls.pcap"))
    sessions = list(Analyzer(Config()).run_file(capture))
    capture.close()
    assert sessions
    for session in sessions:
        events = list(session.row_events())
        middle = session.first_frame + session.packets // 2
        rows = session.rows  # made now, from the same lists
        frames = {r.frame for r in rows}
        assert all(session.frame_time(r.frame) == r.ts for r in rows)
        others = set(range(session.first_frame, session.last_frame)) - frames  # other sessions' packets
        assert all(session.frame_time(f) is None for f in others)
        assert session.frame_time(session.last_frame + 1) is None
        assert events == [e for r in rows for e in r.events or ()]
        after = [r for r in rows if r.frame >= middle]
        assert session.rows_from(middle) == (len(after), sum(r.payload_len for r in after))
    assert any(session.tls != "none" for session in sessions)
