"""README.md shows real output: its excerpt of the terminal view must be what the tool prints (it had drifted
three captions behind the views)."""

from __future__ import annotations

from pathlib import Path

from tests.support import run_cli

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_excerpt_is_what_analyze_prints() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    intro = "An excerpt of `mailtrace analyze --no-acks samples/pop3-session.pcap`"
    assert intro in readme
    excerpt = readme.split(intro, 1)[1].split("```", 2)[1]
    shown = [line for line in excerpt.strip("\n").splitlines() if line.strip() != "…"]
    sample = ROOT / "samples" / "pop3-session.pcap"
    result = run_cli("analyze", "--no-acks", "--no-color", "--width", "200", str(sample))
    assert result.exit_code == 0, result.stderr
    printed = result.stdout.splitlines()
    assert [line for line in shown if line not in printed] == []
    assert len(shown) > 20
