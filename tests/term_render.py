"""Run captures through the Analyzer and render a text view into a string (for the view tests)."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

from mailtrace.capture.reader import open_capture
from mailtrace.commands.common import build_config
from mailtrace.filters import SessionFilter
from mailtrace.pipeline import Analyzer, CaptureStats
from mailtrace.render.follow import FollowRenderer
from mailtrace.render.output import Output
from mailtrace.render.terminal import ListRenderer, TerminalRenderer
from mailtrace.session import Session
from mailtrace.tls import KeyLog

ELAPSED = 1.0
"""The run time the summary shows in tests (the real one would make output differ run to run)."""


def analyze(
    *paths: Path, keylog: Path | None = None, transcript: bool = False
) -> tuple[list[Session], CaptureStats]:
    config = build_config()
    if transcript:
        config = replace(config, session=replace(config.session, keep_transcript=True))
    analyzer = Analyzer(config, keylog=KeyLog.from_file(str(keylog)) if keylog else None)
    sessions = list(analyzer.run([open_capture(str(p)) for p in paths]))
    return sessions, analyzer.stats


def render(
    view: str,
    *paths: Path,
    width: int | None = 120,
    color: bool = False,
    keylog: Path | None = None,
    session_filter: SessionFilter | None = None,
    hide_acks: bool = False,
    show_secrets: bool = False,
    context: bool = True,
    lang: str = "en",
) -> str:
    """The text of ``view`` (``table``, ``list``, ``follow``) as ``mailtrace analyze`` would print it."""
    stream = io.StringIO()
    output = Output(stream, width=width, color=color)
    config = build_config(show_secrets=show_secrets)
    if view == "follow":
        config = replace(config, session=replace(config.session, keep_transcript=True))
    analyzer = Analyzer(config, keylog=KeyLog.from_file(str(keylog)) if keylog else None)
    many = len(paths) > 1
    renderer: TerminalRenderer | ListRenderer | FollowRenderer
    if view == "table":
        renderer = TerminalRenderer(
            output,
            stats=analyzer.stats,
            hide_acks=hide_acks,
            show_secrets=show_secrets,
            session_filter=session_filter,
            many_files=many,
            show_context=context,
            lang=lang,
        )
    elif view == "list":
        renderer = ListRenderer(output, stats=analyzer.stats, session_filter=session_filter, many_files=many,
                                lang=lang)
    else:
        renderer = FollowRenderer(output, stats=analyzer.stats, lang=lang)
    for session in analyzer.run([open_capture(str(p)) for p in paths]):
        if session_filter is None or session_filter(session):
            renderer.session(session)
    renderer.end(analyzer.stats, ELAPSED)
    return stream.getvalue()
