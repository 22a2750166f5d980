"""A dissector that raises (a bug met by hostile bytes) ends its own session's dissection, not the run:
the session is reported with what it had and a ``dissector-error`` anomaly, every other session as
usual, with one process and with two."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mailtrace.protocols.pop3 import Pop3
from mailtrace.protocols.smtp import Smtp
from tests.support import REPO, run_cli

SAMPLE = str(REPO / "samples" / "mixed-all.pcap")


def _report(*args: str) -> dict[str, Any]:
    result = run_cli("analyze", "--format", "json", *args, SAMPLE)
    assert result.exit_code == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_dissector_that_raises_leaves_its_session_and_the_others(jobs: str, monkeypatch: pytest.MonkeyPatch) -> None:
    clean = _report("--jobs", jobs)
    feed = Smtp.feed
    calls = {"n": 0}

    def fails_on_the_fifth(self: Smtp, item: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyError("boom")
        return feed(self, item)

    monkeypatch.setattr(Smtp, "feed", fails_on_the_fifth)
    broken = _report("--jobs", jobs)
    assert len(broken["sessions"]) == len(clean["sessions"])
    failed = [s for s in broken["sessions"] if any(a["kind"] == "dissector-error" for a in s["anomalies"])]
    assert [s["protocol"] for s in failed] == ["smtp"]
    anomaly = next(a for a in failed[0]["anomalies"] if a["kind"] == "dissector-error")
    assert "SMTP dissector failed" in anomaly["detail"] and "KeyError" in anomaly["detail"]
    assert anomaly["frame"] >= failed[0]["first_frame"]
    same = [s for s in broken["sessions"] if s["id"] != failed[0]["id"]]
    assert same == [s for s in clean["sessions"] if s["id"] != failed[0]["id"]]
    # what was read before the failure is kept: the greeting at least
    assert failed[0]["replies"] and failed[0]["replies"][0]["status"] == "220"


def test_a_dissector_whose_end_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    def finish(self: Pop3) -> Any:
        raise ValueError("cannot end")

    monkeypatch.setattr(Pop3, "finish", finish)
    report = _report("--jobs", "1")
    pop3 = [s for s in report["sessions"] if s["protocol"] == "pop3"]
    assert pop3 and all(any(a["kind"] == "dissector-error" for a in s["anomalies"]) for s in pop3)
    assert all(s["commands"] for s in pop3)  # dissected up to the end


def test_the_text_view_shows_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Pop3, "finish", lambda self: (_ for _ in ()).throw(RuntimeError("x")))
    result = run_cli("analyze", "--jobs", "1", "--no-color", SAMPLE)
    assert result.exit_code == 0, result.stderr
    assert "dissector-error" in result.stdout or "dissector failed" in result.stdout
