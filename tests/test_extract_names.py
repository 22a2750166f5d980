"""Attachment names from hostile senders, and streaming extraction that stays inside its folder."""

from __future__ import annotations

import base64
import hashlib
import os
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailtrace.extract import MAX_NAME_BYTES, MessageFileSink, safe_filename

DEVICE_NAMES = ["CON", "prn", "Aux", "NUL", "COM1", "lpt1", "com9", "LPT9", "CONIN$"]


def is_safe(name: str) -> bool:
    return (
        bool(name)
        and "/" not in name
        and "\\" not in name
        and ".." not in name
        and not name.startswith(".")
        and not name.endswith((".", " "))
        and not any(unicodedata.category(c) in ("Cc", "Cf") for c in name)
        and not any(c in '<>:"|?*' for c in name)
        and len(name.encode()) <= MAX_NAME_BYTES
        and name.split(".", maxsplit=1)[0].rstrip(" ").upper() not in {n.upper() for n in DEVICE_NAMES}
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("../../x", "x"),
        ("..\\..\\windows\\system32\\evil.dll", "evil.dll"),
        ("/etc/passwd", "passwd"),
        ("CON", "_CON"),
        ("con.txt", "_con.txt"),
        ("nul .txt", "_nul.txt"),
        ("COM1", "_COM1"),
        ("LPT1.log", "_LPT1.log"),
        ("a\x00b", "ab"),
        ("line\r\nbreak.txt", "linebreak.txt"),
        (".bashrc", "bashrc"),
        ("...hidden", "hidden"),
        ("file.", "file"),
        ("a..b.txt", "a.b.txt"),
        ("invoice\u202etxt.exe", "invoicetxt.exe"),  # right-to-left override removed
        ('<img src=x onerror="alert(1)">.html', "_img src=x onerror=_alert(1)__.html"),
        ("<script>alert(1)</script>.txt", "script_.txt"),
        ('what?*:|"<>.txt', "what_______.txt"),
        ("Übersicht.txt", "Übersicht.txt"),
        ("U\u0308bersicht.txt", "Übersicht.txt"),  # NFC
    ],
)
def test_hostile_names(name: str, expected: str) -> None:
    got = safe_filename(name, "fallback.bin", set())
    assert got == expected
    assert is_safe(got)


@pytest.mark.parametrize("name", [None, "", "..", "/", "\x00", "   ", ".", "\u202e"])
def test_empty_names_use_the_fallback(name: str | None) -> None:
    assert safe_filename(name, "part-1.2.png", set()) == "part-1.2.png"


def test_long_names_keep_their_extension() -> None:
    got = safe_filename("a" * 5000 + ".pdf", "x", set())
    assert got.endswith(".pdf") and len(got.encode()) == MAX_NAME_BYTES
    wide = safe_filename("ü" * 5000 + ".txt", "x", set())
    assert wide.endswith(".txt") and len(wide.encode()) <= MAX_NAME_BYTES
    wide.encode().decode()  # never cut inside a character
    odd = safe_filename("x." + "e" * 300, "y", set())
    assert len(odd.encode()) <= MAX_NAME_BYTES


def test_collisions_are_numbered() -> None:
    taken: set[str] = set()
    names = [safe_filename("report.pdf", "x", taken) for _ in range(3)]
    assert names == ["report.pdf", "report (2).pdf", "report (3).pdf"]
    assert safe_filename("REPORT.PDF", "x", taken) == "REPORT (4).PDF"  # case-insensitive file systems
    assert safe_filename("../report.pdf", "x", taken) == "report (5).pdf"
    long_taken: set[str] = set()
    first = safe_filename("b" * 500 + ".txt", "x", long_taken)
    second = safe_filename("b" * 500 + ".txt", "x", long_taken)
    assert first != second and second.endswith(" (2).txt") and len(second.encode()) <= MAX_NAME_BYTES
    assert taken == {"report.pdf", "report (2).pdf", "report (3).pdf", "REPORT (4).PDF", "report (5).pdf"}


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=300), st.sets(st.text(max_size=10), max_size=5))
def test_any_name_becomes_safe(name: str, taken: set[str]) -> None:
    before = set(taken)
    got = safe_filename(name, "part.bin", taken)
    assert is_safe(got)
    assert got.casefold() not in {t.casefold() for t in before}


# --------------------------------------------------------------------------- the sink


def hostile_message(names: list[str]) -> tuple[bytes, list[bytes]]:
    parts = []
    payloads = []
    for i, name in enumerate(names):
        data = hashlib.sha256(name.encode()).digest() * (i + 1)
        payloads.append(data)
        encoded = base64.encodebytes(data).replace(b"\n", b"\r\n")
        parts.append(
            b"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
            b'Content-Disposition: attachment; filename="' + name.encode() + b'"\r\n\r\n' + encoded
        )
    head = b'Subject: files\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
    return head + b"".join(parts) + b"--b--\r\n", payloads


def test_sink_streams_message_and_attachments(tmp_path: Path) -> None:
    names = [
        "../../x",
        "/etc/passwd",
        "CON",
        "a\x00b",
        "n" * 5000 + ".txt",
        "<b>x</b>.html",
        "same",
        "same",
        "",
    ]
    raw, payloads = hostile_message(names)
    out = tmp_path / "out"
    sink = MessageFileSink(out, "smtp 10.0.0.1:25/..", 3)
    for i in range(0, len(raw), 100):
        sink.feed(raw[i : i + 100])
    result = sink.close()
    assert result.eml == (out / "smtp_10.0.0.1_25_.-3.eml").resolve()
    assert result.eml.read_bytes() == raw
    assert len(result.attachments) == len(names)
    for path, data in zip(result.attachments, payloads, strict=True):
        assert path.parent == (out / "smtp_10.0.0.1_25_.-3").resolve()
        assert path.read_bytes() == data
        assert is_safe(path.name)
    got = [p.name for p in result.attachments]
    assert got[:4] == ["x", "passwd", "_CON", "ab"]
    assert got[6:8] == ["same", "same (2)"]
    assert got[8] == "part-1.9.bin"
    assert [a.sha256 for a in result.summary.attachments] == [hashlib.sha256(p).hexdigest() for p in payloads]
    written = {p.resolve() for p in tmp_path.rglob("*")}
    assert all(p.is_relative_to(out.resolve()) for p in written)


def test_sink_never_overwrites_or_follows_links(tmp_path: Path) -> None:
    raw, _ = hostile_message(["a.txt"])
    target = tmp_path / "outside.txt"
    target.write_text("keep")
    out = tmp_path / "out"
    (out / "s-1").mkdir(parents=True)
    os.symlink(target, out / "s-1" / "a.txt")
    (out / "s-1.eml").write_bytes(b"old")
    with MessageFileSink(out, "s", 1) as sink:
        sink.feed(raw)
    assert target.read_text() == "keep"
    assert (out / "s-1.eml").read_bytes() == b"old"
    assert (out / "s-1 (2).eml").read_bytes() == raw
    assert (out / "s-1" / "a (2).txt").exists()


def test_sink_refuses_a_folder_that_escapes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(tmp_path, out / "s-1")  # a planted link where the attachment folder goes
    raw, _ = hostile_message(["a.txt"])
    sink = MessageFileSink(out, "s", 1)
    with pytest.raises(ValueError, match="outside"):
        sink.feed(raw)
        sink.close()
    assert not (tmp_path / "a.txt").exists()


def test_sink_without_attachments(tmp_path: Path) -> None:
    raw, _ = hostile_message(["a.txt"])
    sink = MessageFileSink(tmp_path, "s", 2, attachments=False)
    sink.feed(raw)
    result = sink.close(complete=False, missing_bytes=5)
    assert result.attachments == () and not result.summary.complete
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s-2.eml"]
