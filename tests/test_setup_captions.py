"""The setup caption says what became of the client's SYN: answered, refused with RST, or silence."""

from __future__ import annotations

from pathlib import Path

from mailtrace.capture.reader import open_capture
from mailtrace.config import Config
from mailtrace.pipeline import Analyzer
from mailtrace.render.captions import steps
from tests.pcapgen import ACK, RST, SYN, Capture, Tcp


def setup_step(tmp_path: Path, build: object, lang: str = "en") -> tuple[str, str]:
    cap = Capture()
    t = Tcp(cap, client=("10.0.0.1", 40000), server=("192.0.2.25", 25))
    build(t)  # type: ignore[operator]
    path = cap.write(tmp_path / "x.pcap")
    [session] = Analyzer(Config()).run([open_capture(str(path))])
    first = steps(session, lang=lang)[0]
    return first.key, first.caption


def test_a_syn_answered_with_rst_is_a_refusal(tmp_path: Path) -> None:
    key, caption = setup_step(tmp_path, lambda t: (t._emit("c", SYN), t._emit("s", RST | ACK)))
    assert key == "setup.refused"
    assert caption == ("the client 10.0.0.1 tries to connect to the mail server (SYN); the server refuses with "
                       "RST: nothing accepts connections on port 25 (or a firewall rejects them)")
    _, german = setup_step(tmp_path, lambda t: (t._emit("c", SYN), t._emit("s", RST | ACK)), lang="de")
    assert "der Server lehnt mit RST ab: auf Port 25 nimmt niemand Verbindungen an" in german


def test_a_syn_without_any_answer_is_silence(tmp_path: Path) -> None:
    key, caption = setup_step(tmp_path, lambda t: t._emit("c", SYN))
    assert key == "setup.unanswered" and caption.endswith("(SYN); no answer in the capture")


def test_a_client_that_resets_its_own_attempt_is_no_refusal(tmp_path: Path) -> None:
    key, _ = setup_step(tmp_path, lambda t: (t._emit("c", SYN), t._emit("c", RST)))
    assert key == "setup.unanswered"
