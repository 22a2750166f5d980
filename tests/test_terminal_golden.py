"""Golden files: the text views of the real lab captures, rendered at a fixed width without colour.

A change in the output shows up as a diff against ``tests/golden/``; after checking that the new
output is right, ``pytest --update-golden`` rewrites the files. The summary's run time is fixed and
captures are named relative to their folder, so the files do not depend on the machine.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from term_render import render

GOLDEN = Path(__file__).parent / "golden"

CASES = [
    ("smtp-relay-seed-story.table.txt", "table", ("smtp-relay-seed-story.pcap",), 120, None),
    ("smtp-relay-seed-story.table-80.txt", "table", ("smtp-relay-seed-story.pcap",), 80, None),
    ("smtp-relay-seed-story.follow.txt", "follow", ("smtp-relay-seed-story.pcap",), 120, None),
    ("smtp-errors.table.txt", "table", ("smtp-errors.pcap",), 120, None),
    ("smtp-submission-auth.table.txt", "table", ("smtp-submission-auth.pcap",), 120, None),
    ("smtp-starttls.table.txt", "table", ("smtp-starttls.pcap",), 120, None),
    ("smtp-starttls.decrypted.table.txt", "table", ("smtp-starttls.pcap",), 120, "smtp-starttls.keylog"),
    ("tls-implicit.decrypted.table.txt", "table", ("tls-implicit.pcap",), 120, "tls-implicit.keylog"),
    ("pop3-session.table.txt", "table", ("pop3-session.pcap",), 120, None),
    ("imap-session.table.txt", "table", ("imap-session.pcap",), 120, None),
    ("ipv6.table.txt", "table", ("ipv6.pcap",), 120, None),
    ("mixed-all.list.txt", "list", ("mixed-all.pcap",), 120, None),
    ("mixed-all.list-80.txt", "list", ("mixed-all.pcap",), 80, None),
    ("samples.list-piped.txt", "list", ("smtp-errors.pcap", "pop3-session.pcap"), None, None),
]


@pytest.mark.parametrize(("golden", "view", "files", "width", "keylog"), CASES, ids=[c[0] for c in CASES])
def test_golden(
    captures: Path,
    update_golden: bool,
    monkeypatch: pytest.MonkeyPatch,
    golden: str,
    view: str,
    files: tuple[str, ...],
    width: int | None,
    keylog: str | None,
) -> None:
    monkeypatch.chdir(captures)  # file names as a user would type them, whatever the machine
    text = render(view, *(Path(f) for f in files), width=width, keylog=Path(keylog) if keylog else None)
    path = GOLDEN / golden
    if update_golden:
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"{path} is missing: run pytest --update-golden"
    assert text == path.read_text(encoding="utf-8")
