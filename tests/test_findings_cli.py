"""``mailtrace analyze`` with findings: text placement, JSON keys, --findings-only, --fail-on and friends."""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner
from mt_findings_lab import ATTACKER, PcapBuilder, envelope, failed_login, sample

from mailtrace.cli import main


def run(*args: str) -> tuple[int, str]:
    result = CliRunner(env={"COLUMNS": "150"}).invoke(main, ["analyze", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def test_text_prints_findings_after_the_sessions() -> None:
    code, out = run(str(sample("pop3-session.pcap")))
    assert code == 0
    assert out.index("Findings: 3 high, 2 medium, 1 low") > out.rindex("Session 4 · POP3")
    assert "POP3 password of user bob sent in cleartext" in out
    assert "bob-pop3-Secret" not in out


def test_findings_only_text_and_secrets() -> None:
    code, out = run("--findings-only", "--show-secrets", str(sample("pop3-session.pcap")))
    assert code == 0
    assert "Session 1 ·" not in out
    assert out.lstrip().startswith("Findings:")
    assert '"bob-pop3-Secret"' in out


def test_json_report_has_findings_and_stats() -> None:
    code, out = run("--format", "json", str(sample("smtp-errors.pcap")))
    assert code == 0
    doc = json.loads(out)
    assert list(doc)[:4] == ["format", "version", "sessions", "capture"]
    assert len(doc["sessions"]) == 3
    ids = {f["id"] for f in doc["findings"]}
    assert {"user-enumeration", "relay-denied"} <= ids
    assert doc["stats"]["protocols"][0]["sessions"] == 3
    assert doc["stats"]["findings"]["total"] == len(doc["findings"])
    code, out = run("--format", "json", "--findings-only", str(sample("smtp-errors.pcap")))
    doc2 = json.loads(out)
    assert doc2["sessions"] == [] and doc2["findings"] == doc["findings"]


def test_jsonl_findings_only_is_one_finding_per_line() -> None:
    code, out = run("--format", "jsonl", "--findings-only", str(sample("pop3-session.pcap")))
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 6 and all(set(x) >= {"id", "severity", "frames"} for x in lines)
    code, out = run("--format", "jsonl", str(sample("pop3-session.pcap")))
    assert all("protocol" in json.loads(line) for line in out.splitlines())  # unchanged: sessions


def test_fail_on_sets_the_exit_status_only_when_asked() -> None:
    pop3 = str(sample("pop3-session.pcap"))  # high findings
    starttls = str(sample("smtp-starttls.pcap"))  # one low finding (auth-before-tls)
    assert run(pop3)[0] == 0
    assert run("--fail-on", "high", pop3)[0] == 3
    assert run("--fail-on", "high", "--format", "json", pop3)[0] == 3
    assert run("--fail-on", "medium", starttls)[0] == 0
    assert run("--fail-on", "low", starttls)[0] == 3
    assert run("--fail-on", "info", starttls)[0] == 3
    assert run("--fail-on", "critical", starttls)[0] == 2  # not a severity: usage error


def test_local_domains_and_threshold_options(tmp_path: Path) -> None:
    b = PcapBuilder()
    envelope(b, ATTACKER, "x@spam.example", "victim@other.example", "250 2.1.5 Ok")
    for _ in range(3):
        failed_login(b, ATTACKER, "alice")
    path = str(b.write(tmp_path / "relay.pcap"))
    _code, out = run("--format", "json", "--findings-only", path)
    relay = [f for f in json.loads(out)["findings"] if f["id"] == "open-relay-attempt"]
    assert [f["severity"] for f in relay] == ["medium"]
    _code, out = run(
        "--format", "json", "--findings-only", "--local-domains", "Example.ORG., b.example", path
    )
    relay = [f for f in json.loads(out)["findings"] if f["id"] == "open-relay-attempt"]
    assert [f["severity"] for f in relay] == ["high"]
    code, out = run("--local-domains", "not a domain", path)
    assert code == 2 and "--local-domains" in out
    _code, out = run("--format", "json", "--findings-only", path)
    assert "auth-bruteforce" not in out  # 3 failures, default threshold 5
    for option in ("--failed-login-threshold", "--bruteforce-threshold"):
        _code, out = run("--format", "json", "--findings-only", option, "3", path)
        assert [f["id"] for f in json.loads(out)["findings"]].count("auth-bruteforce") == 1


def test_stats_in_text_mode_on_request() -> None:
    _code, out = run("--findings-only", "--stats", str(sample("smtp-errors.pcap")))
    assert "Protocol hierarchy" in out and "SMTP replies by class and category" in out
    _code, out = run("--findings-only", str(sample("smtp-errors.pcap")))
    assert "Protocol hierarchy" not in out


DETAIL = ("Login with USER/PASS over an unencrypted connection (1 succeeded): anyone on the path can read the user "
          "name and the password.")


def findings_block(*args: str) -> list[str]:
    """The findings block of ``analyze --findings-only`` as a pipe sees it, in an 80-column environment."""
    result = CliRunner(env={"COLUMNS": "80"}).invoke(
        main, ["analyze", "--findings-only", *args, str(sample("pop3-session.pcap"))])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[:2] == ["Findings: 3 high, 2 medium, 1 low", "HIGH   POP3 password of user bob sent in cleartext"]
    return lines


def test_findings_block_is_not_wrapped_or_padded_when_piped() -> None:
    lines = findings_block()
    assert lines[2] == "       cleartext-credentials · session 1 · frames 13, 16, 18"
    assert lines[3] == "       " + DETAIL  # whole, although longer than $COLUMNS
    assert not any(line.endswith(" ") for line in lines)
    assert findings_block("--width", "10000") == lines


def test_findings_block_wraps_at_the_width_asked() -> None:
    lines = findings_block("--width", "60")
    assert lines[3:6] == ["       Login with USER/PASS over an unencrypted connection",
                          "       (1 succeeded): anyone on the path can read the user",
                          "       name and the password."]
    assert max(len(line) for line in lines) <= 60
    assert not any(line.endswith(" ") for line in lines)
    assert len(lines) > len(findings_block())
    coloured = CliRunner().invoke(main, ["analyze", "--findings-only", "--width", "60", "--color",
                                         str(sample("pop3-session.pcap"))]).stdout
    assert "\x1b[1;31mHIGH\x1b[0m   \x1b[1mPOP3 password of user bob sent in cleartext\x1b[0m" in coloured
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured).splitlines() == lines


def test_an_oauth_token_in_the_clear_is_called_a_token_not_a_password() -> None:
    """XOAUTH2 carries a bearer token: the finding said 'password' (Suricata's pop3-auth-01)."""
    import json

    from tests.support import corpus, run_cli

    report = json.loads(run_cli("analyze", "--format", "json", str(corpus("suricata-verify/pop3-auth-01"))).stdout)
    (found,) = [f for f in report["findings"] if f["id"] == "cleartext-credentials"]
    assert found["title"] == "POP3 access token of user joe.speedboat sent in cleartext"
    assert "the OAuth bearer token" in found["detail"] and "password" not in found["detail"]


def test_findings_only_starts_with_its_headline() -> None:
    """``--findings-only`` began with a blank line (the one that sets the block off from the tables)."""
    from tests.support import run_cli, sample

    out = run_cli("analyze", "--findings-only", str(sample("smtp-errors.pcap"))).stdout
    assert out.startswith("Findings: 2 medium, 7 low, 3 info\n")
    table = run_cli("analyze", str(sample("smtp-errors.pcap"))).stdout
    assert "\n\nFindings: 2 medium, 7 low, 3 info\n" in table
