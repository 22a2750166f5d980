"""The whole story in the session table: context rows in frame order, in English and German.

The quality bar of the issue: on the seed story the first session shows setup, the PTR and A
lookups and the ident probe with its RST, greeting, EHLO, MAIL FROM with the sender-domain lookups,
RCPT TO with the recipient-domain lookups, DATA, the message, 250, QUIT and the teardown; the
second session is preceded by the MX lookup of remote.example and the A/AAAA lookups of
mx.remote.example. DNS rows say what Wireshark says about the same frame.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from support import run_cli
from term_render import render

from mailtrace.model import Phase
from mailtrace.render.catalog import text

GOLDEN = Path(__file__).parent / "golden"
ROW = re.compile(r"^\s*(\d+)\s+(\d+\.\d{6})\s+(\S+)\s+(\S+)\s+(\S+)\s+(.*)$")


def steps(output: str, lang: str = "en") -> list[tuple[str, str, list[tuple[int, str, str]]]]:
    """(label, caption, rows (frame, proto, info)) of an unwrapped table."""
    labels = {text("phase." + p.value, lang) for p in Phase} | {text("phase.dns", lang), text("phase.ident", lang)}
    out: list[tuple[str, str, list[tuple[int, str, str]]]] = []
    for line in output.splitlines():
        word = line.split(" ", 1)[0]
        if word in labels and line[len(word) : len(word) + 1] == " ":
            out.append((word, line[len(word) :].strip(), []))
            continue
        match = ROW.match(line)
        if match and out:
            out[-1][2].append((int(match.group(1)), match.group(5), match.group(6)))
    return out


def sessions(output: str, lang: str = "en") -> list[str]:
    word = text("ui.session", lang, id="").strip()
    return [part for part in re.split(rf"^(?={word} \d+ ·)", output, flags=re.MULTILINE) if part.startswith(word)]


def test_seed_story_first_session_is_the_lecture_story(captures: Path) -> None:
    first = steps(sessions(render("table", captures / "smtp-relay-seed-story.pcap", width=None))[0])
    assert [(label, caption, [r[0] for r in rows]) for label, caption, rows in first] == [
        ("dns", "the client looks up the address of mail.local.example: A → 127.0.0.25, AAAA → no address",
         [1, 2, 3, 4]),
        ("setup", "TCP connection set up from the client 127.0.0.10 to the mail server (SYN, SYN/ACK, ACK)", [5, 6, 7]),
        ("dns", "the MTA looks up the client's name (PTR) → client.local.example and confirms it (A → 127.0.0.10)",
         [8, 9, 10, 11]),
        ("ident", "the MTA tries an ident probe (port 113) — refused with RST", [12, 13]),
        ("greeting", "the server is ready to talk (220)", [14, 15]),
        ("negotiation", "the client identifies itself (EHLO); the server lists its extensions", [16, 17, 18]),
        ("transfer", "sender transferred and accepted", [19]),
        ("dns", "the MTA checks the sender's domain local.example: AAAA → no address, A → no address, "
                "MX → mail.local.example (preference 10)", [20, 21, 22, 23, 24, 25]),
        ("transfer", "sender transferred and accepted (continued)", [26]),
        ("transfer", "recipient transferred and accepted", [27]),
        ("dns", "the MTA checks the recipient's domain remote.example: AAAA → no address, A → no address, "
                "MX → mx.remote.example (preference 10)", [28, 29, 30, 31, 32, 33]),
        ("dns", "the MTA looks up the address of the client's name client.local.example: AAAA → no address, "
                "A → 127.0.0.10", [34, 35, 36, 37]),
        ("transfer", "recipient transferred and accepted (continued)", [38]),
        ("transfer", "start of the message transfer (DATA / 354)", [39, 40]),
        ("transfer", "message transferred", [41]),
        ("transfer", "message accepted for delivery (250)", [42]),
        ("teardown", "positive end of the session (QUIT / 221)", [43, 44]),
        ("teardown", "TCP teardown (FIN); the client closes first", [45, 67, 68]),
    ]
    frames = [r[0] for _, _, rows in first for r in rows]
    assert frames == sorted(frames)  # context rows stand between the session's rows in frame order


def test_the_relay_is_preceded_by_its_mx_lookups(captures: Path) -> None:
    second = steps(sessions(render("table", captures / "smtp-relay-seed-story.pcap", width=None))[1])
    assert [(label, caption, [r[0] for r in rows]) for label, caption, rows in second[:3]] == [
        ("dns", "the sending MTA looks up the MX of remote.example → mx.remote.example (preference 10)", [46, 47]),
        ("dns", "the sending MTA looks up the address of the MX host mx.remote.example: AAAA → no address (×3), "
                "A → 127.0.0.26", [48, 49, 50, 51, 52, 53, 54, 55]),
        ("setup", "TCP connection set up from the client 127.0.0.25 to the mail server (SYN, SYN/ACK, ACK)",
         [56, 57, 58]),
    ]
    assert second[3][:2] == ("dns", "the receiving MTA looks up the client's name (PTR) → mail.local.example and "
                                    "confirms it (A → 127.0.0.25)")


@pytest.mark.parametrize("name", ["smtp-relay-seed-story", "mixed-all", "smtp-errors"])
def test_dns_rows_say_what_wireshark_says(captures: Path, name: str) -> None:
    tshark = {}
    for line in (captures / f"{name}.tshark.txt").read_text().splitlines():
        parts = line.split()
        if len(parts) > 6 and parts[5] == "DNS":
            tshark[int(parts[0])] = line.split(f" DNS {parts[6]} ", 1)[1]
    rows = [r for part in sessions(render("table", captures / f"{name}.pcap", width=None))
            for _, _, rs in steps(part) for r in rs if r[1] == "DNS"]
    assert rows
    for frame, _, info in rows:
        assert info == tshark[frame], frame


def test_german_captions_follow_the_lecture(captures: Path) -> None:
    first = steps(sessions(render("table", captures / "smtp-relay-seed-story.pcap", width=None, lang="de"), "de")[0],
                  "de")
    labels = [label for label, _, _ in first]
    assert labels == ["DNS", "Aufbau", "DNS", "Ident", "Begrüßung", "Aushandlung", "Übertragung", "DNS",
                      "Übertragung", "Übertragung", "DNS", "DNS", "Übertragung", "Übertragung", "Übertragung",
                      "Übertragung", "Abbau", "Abbau"]
    captions = [caption for _, caption, _ in first]
    for expected in (
        "Aufbau (TCP) vom Client 127.0.0.10 zum Mailserver (SYN, SYN/ACK, ACK)",
        "der MTA versucht den DNS-Namen des Clients zu bestimmen (PTR) → client.local.example und bestätigt ihn "
        "(A → 127.0.0.10)",
        "der MTA versucht eine Ident-Abfrage (Port 113) — mit RST abgewiesen",
        "der MTA ist zum Empfang einer E-Mail bereit (220)",
        "Absender wird übertragen und akzeptiert",
        "Empfänger wird übertragen und akzeptiert",
        "Einleitung der E-Mail-Übertragung (DATA / 354)",
        "E-Mail-Übertragung",
        "Positive Beendigung der E-Mail-Übertragung (QUIT / 221)",
        "Abbau (TCP, FIN); der Client schließt zuerst",
    ):
        assert expected in captions
    pop3 = [c for _, c, _ in steps(render("table", captures / "pop3-session.pcap", width=None, lang="de"), "de")]
    for start in ("Identifikation: der Client nennt den Benutzer bob (USER)",
                  "Authentikation: der Client sendet das Passwort (PASS) — im Klartext; der Server akzeptiert",
                  "Abruf des Status: 3 E-Mails,", "Herunterladen der E-Mail 1 (RETR,",
                  "Positive Beendigung der Kommunikation (QUIT / +OK)"):
        assert any(c.startswith(start) for c in pop3), start


def test_language_from_the_environment_and_the_option(captures: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(captures / "smtp-relay-seed-story.pcap")
    monkeypatch.setenv("MAILTRACE_LANG", "de_DE.UTF-8")
    assert "Absender wird übertragen und akzeptiert" in run_cli("analyze", path).stdout
    assert "sender transferred and accepted" in run_cli("analyze", "--lang", "en", path).stdout
    monkeypatch.setenv("MAILTRACE_LANG", "tlh")
    result = run_cli("analyze", "--list", path)
    assert result.exit_code == 0 and "MAILTRACE_LANG=tlh" in result.stderr and "Status" in result.stdout
    result = run_cli("analyze", "--lang", "tlh", path)
    assert result.exit_code == 2 and "--lang tlh: no such language" in result.stderr


def test_json_captions_follow_the_language(captures: Path) -> None:
    import json

    path = str(captures / "smtp-relay-seed-story.pcap")
    report = json.loads(run_cli("analyze", "--format", "json", "--lang", "de", path).stdout)
    ptr = next(o for o in report["sessions"][0]["context"] if o["purpose"] == "client-ptr")
    assert ptr["caption"] == "der MTA versucht den DNS-Namen des Clients zu bestimmen (PTR) → client.local.example"
    assert report["sessions"][0]["context_checks"][0]["text"].startswith("die Adresse des Clients 127.0.0.10")


GOLDEN_CASES = [
    ("smtp-relay-seed-story.table.de.txt", "smtp-relay-seed-story.pcap", "de"),
    ("pop3-session.table.de.txt", "pop3-session.pcap", "de"),
    ("mixed-all.table.txt", "mixed-all.pcap", "en"),
]


@pytest.mark.parametrize(("golden", "capture", "lang"), GOLDEN_CASES, ids=[c[0] for c in GOLDEN_CASES])
def test_golden(captures: Path, update_golden: bool, monkeypatch: pytest.MonkeyPatch, golden: str, capture: str,
                lang: str) -> None:
    monkeypatch.chdir(captures)
    output = render("table", Path(capture), width=120, lang=lang)
    path = GOLDEN / golden
    if update_golden:
        path.write_text(output, encoding="utf-8")
        return
    assert path.exists(), f"{path} is missing: run pytest --update-golden"
    assert output == path.read_text(encoding="utf-8")
