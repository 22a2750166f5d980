"""A progress bar on stderr while long capture files are read (only when stderr is a terminal).

The bar is drawn by rich without a refresh thread: the Analyzer calls back every few thousand
packets and the bar is redrawn then. When stdout is the same terminal, text the views print would
tear the bar, so the views wrap their writes in :meth:`Progress.suspend` (see ``Output.interrupt``):
the bar is cleared, the text printed, and the bar drawn again below it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING

from mailtrace.capture.reader import CaptureFile

if TYPE_CHECKING:  # rich loads when a bar is shown
    from rich.progress import Progress as RichProgress
    from rich.progress import TaskID

MIN_BYTES = 32 * 1024 * 1024
"""Files smaller than this are read too fast for a bar to help."""
MIN_INTERVAL = 0.1
"""Seconds between redraws at most."""


class Progress:
    """Progress over the capture files of one run; a no-op unless ``enabled``."""

    def __init__(self, err: IO[str] | None, *, enabled: bool) -> None:
        self.enabled = enabled and err is not None
        self._bar: RichProgress | None = None
        self._task: TaskID | None = None
        self._last = 0.0
        self._err = err
        self._live = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def callback(self, capture: CaptureFile) -> Callable[..., None] | None:
        """The ``progress`` callback for ``Analyzer.run_file``, or None when no bar is shown."""
        if not self.enabled or capture.size is None or capture.size < MIN_BYTES:
            self._stop()
            return None
        if self._bar is None:
            from rich.console import Console
            from rich.progress import BarColumn, DownloadColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            console = Console(file=self._err, stderr=True, highlight=False)
            self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                     TextColumn("{task.fields[packets]:,} packets"), TimeRemainingColumn(),
                                     console=console, transient=True, auto_refresh=False,
                                     redirect_stdout=False, redirect_stderr=False)
        bar = self._bar
        if self._task is not None:
            bar.remove_task(self._task)
        self._task = bar.add_task(Path(capture.name).name, total=capture.size, packets=0)
        self._start()

        def update(packets: int, position: int | None = None) -> None:
            """``position``: how far into the file (default: where ``capture`` is now; a forked child
            that reads the file tells its own)."""
            now = time.monotonic()
            if now - self._last < MIN_INTERVAL or self._task is None:
                return
            self._last = now
            where = position if position is not None else capture.position()
            bar.update(self._task, completed=where or 0, packets=packets)
            if self._live:
                bar.refresh()

        return update

    @contextmanager
    def suspend(self) -> Iterator[None]:
        """Clear the bar while other text is written to the terminal, then draw it again."""
        if not self._live:
            yield
            return
        self._stop()
        try:
            yield
        finally:
            self._start()

    def _start(self) -> None:
        if self._bar is not None and not self._live:
            self._bar.start()
            self._live = True
            self._bar.refresh()

    def _stop(self) -> None:
        if self._bar is not None and self._live:
            self._bar.stop()
            self._live = False

    def close(self) -> None:
        self._stop()
        self._bar = None
        self._task = None
