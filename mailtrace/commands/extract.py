"""``mailtrace extract``: every message as a byte-exact .eml, every attachment as a file, and an index.

Messages stream to disk as the capture is read (a 1 GB message never sits in memory); see
docs/extract.md for the layout, the ``index.json`` format and the guarantees.

Exit status: 0 when the extraction ran (even if some messages are incomplete, and also when the
filters match no session: then a note on stderr says so instead of the summary, as ``analyze`` says
"no session matches the filter"), 2 for a problem the user can fix (a non-empty output directory, a
``--session`` value that is not an id, a list or a range, ...), 1 when writing failed (disk full,
permissions changed underneath), 130 when interrupted.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

import click

from mailtrace.capture.reader import CaptureFile
from mailtrace.commands.common import build_config, fail, input_options, load_keylog, open_all
from mailtrace.extract import ExtractError, ExtractOptions, Extractor, ExtractTotals
from mailtrace.filters import PROTOCOLS, parse_ids
from mailtrace.pipeline import Analyzer, CaptureStats

EXIT_WRITE_FAILED = 1


@click.command()
@click.argument("captures", nargs=-1, required=True, metavar="CAPTURE...")
@click.option("-o", "--output", "output", required=True, type=click.Path(path_type=Path), metavar="DIR",
              help="Directory to write to (created if missing; must be empty unless --overwrite).")
@click.option("--messages-only", is_flag=True, help="Write the .eml files only, no attachment files.")
@click.option("--attachments-only", is_flag=True, help="Write the attachment files only, no .eml files.")
@click.option("--session", "session_ids", multiple=True, metavar="ID",
              help="Only the messages of these sessions (the numbers `mailtrace analyze` shows): 3, 1,4 or "
                   "5-9, as for `analyze --session`. Repeatable.")
@click.option("-p", "--protocol", "protocols", multiple=True, type=click.Choice(PROTOCOLS, case_sensitive=False),
              help="Only messages carried by this protocol. Repeatable.")
@click.option("--overwrite", is_flag=True,
              help="Write into a non-empty DIR, replacing files of the same names (other files are kept).")
@input_options
def extract(*, captures: tuple[str, ...], output: Path, messages_only: bool, attachments_only: bool,
            session_ids: tuple[str, ...], protocols: tuple[str, ...], overwrite: bool, ports: tuple[str, ...],
            no_sniff: bool, keylog_path: tuple[str, ...] | None) -> None:
    """Write every message of the captures as .eml, every attachment as a file, and DIR/index.json.

    File names come from the session and message number (s0003-m01.eml, s0003-m01/<attachment>),
    never from the subject; attachment names are sanitised and stay inside DIR.
    """
    if messages_only and attachments_only:
        fail("--messages-only and --attachments-only exclude each other: leave both out to get both")
    try:
        wanted_ids = parse_ids(session_ids)
    except ValueError as exc:
        fail(f"--session {exc}")
    config = build_config(ports, False, no_sniff)
    keylog = load_keylog(keylog_path)
    options = ExtractOptions(messages=not attachments_only, attachments=not messages_only,
                             sessions=wanted_ids, protocols=frozenset(protocols), overwrite=overwrite)
    files = open_all(captures)
    try:
        extractor = Extractor(output, options)
    except ExtractError as exc:
        close_all(files)
        fail(str(exc))
    analyzer = Analyzer(config, keylog=keylog, sink_factory=extractor.sink_factory)
    try:
        for session in analyzer.run(files):
            extractor.session(session)
        index = extractor.end(captures_json(analyzer.stats))
    except KeyboardInterrupt:
        close_all(files)
        extractor.abort()
        click.echo("mailtrace: interrupted (files already moved into place are kept; no index.json)", err=True)
        sys.exit(130)
    except OSError as exc:
        close_all(files)
        extractor.abort()
        click.echo(f"mailtrace: writing to {output} failed: {exc.strerror or exc}", err=True)
        sys.exit(EXIT_WRITE_FAILED)
    except BaseException:
        close_all(files)
        extractor.abort()
        raise
    for f in analyzer.stats.files:
        for problem in f.problems:
            click.echo(f"mailtrace: {f.name}: {problem}", err=True)
    totals = extractor.totals
    unknown = sorted(wanted_ids - totals.sessions_seen)
    held = held_text(analyzer.stats.sessions) if unknown else ""
    if (wanted_ids or protocols) and not totals.sessions_matched:
        # as `analyze` says "no session matches the filter": a note, exit status 0, no success summary
        click.echo(f"mailtrace: no session matches {filter_text(wanted_ids, protocols)}{held}: nothing extracted "
                   f"({index} lists no messages)", err=True)
        return
    click.echo(summary_text(totals, output, index, keylog_given=keylog is not None))
    if unknown:
        click.echo(f"mailtrace: --session {id_ranges(unknown)}: no such session{held}", err=True)


def id_ranges(ids: Iterable[int]) -> str:
    """``[1, 4, 5, 6, 7]`` → ``1,4-7``: session ids written as ``--session`` takes them."""
    spans: list[list[int]] = []
    for i in sorted(set(ids)):
        if spans and i == spans[-1][1] + 1:
            spans[-1][1] = i
        else:
            spans.append([i, i])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def filter_text(ids: frozenset[int], protocols: tuple[str, ...]) -> str:
    """The filters of the command line, as they were given: ``--session 1,4-7 -p smtp``."""
    parts = [f"--session {id_ranges(ids)}"] if ids else []
    parts += [f"-p {p}" for p in sorted(set(protocols))]
    return " ".join(parts)


def held_text(have: int) -> str:
    """Which session ids exist, for a ``--session`` that names one that does not."""
    if not have:
        return " (the captures hold no mail sessions)"
    numbered = "numbered 1" if have == 1 else f"numbered 1 to {have}"
    return f" (the captures hold {have} session{'' if have == 1 else 's'}, {numbered}; see `mailtrace analyze`)"


def close_all(files: list[CaptureFile]) -> None:
    """Close captures that were opened but not (fully) read."""
    for f in files:
        f.stream.close()
        if f.raw is not None:
            f.raw.close()


def captures_json(stats: CaptureStats) -> list[dict[str, object]]:
    return [{"name": f.name, "format": f.filetype if f.error is None else None, "packets": f.packets,
             "truncated": f.truncated, "problems": list(f.problems), "error": f.error} for f in stats.files]


def summary_text(t: ExtractTotals, output: Path, index: Path, *, keylog_given: bool = False) -> str:
    """The lines printed at the end of a run."""
    lines = [f"Extracted {t.messages} message{'' if t.messages == 1 else 's'} from {t.sessions} "
             f"session{'' if t.sessions == 1 else 's'} into {output}",
             f"  {t.eml_files} .eml file{'' if t.eml_files == 1 else 's'}, {t.attachments} attachment"
             f"{'' if t.attachments == 1 else 's'}, {t.bytes_written:,} bytes written"]
    if t.truncated:
        lines.append(f"  {t.truncated} message{'' if t.truncated == 1 else 's'} larger than the in-memory limit: "
                     f"summarised from the stream (the .eml files are whole)")
    if t.incomplete:
        lines.append(f"  {t.incomplete} incomplete message{'' if t.incomplete == 1 else 's'} "
                     f"(written as far as the capture has them):")
        lines += [f"    {label}: {reason}" for label, reason in t.incomplete_list]
        if t.incomplete > len(t.incomplete_list):
            lines.append(f"    … and {t.incomplete - len(t.incomplete_list)} more (see index.json)")
    else:
        lines.append("  no incomplete messages")
    if t.partial:
        lines.append(f"  {t.partial} message{'' if t.partial == 1 else 's'} partial by request (the client asked for "
                     "part of it; nothing is missing from the capture):")
        lines += [f"    {label}: {reason}" for label, reason in t.partial_list]
        if t.partial > len(t.partial_list):
            lines.append(f"    … and {t.partial - len(t.partial_list)} more (see index.json)")
    lines += encrypted_hint(t.encrypted, keylog_given)
    lines.append(f"  index: {index}")
    return "\n".join(lines)


def encrypted_hint(n: int, keylog_given: bool) -> list[str]:
    """Why the messages of TLS sessions are missing, and what to do about it."""
    if not n:
        return []
    one = n == 1
    head = (f"  {n} session{'' if one else 's'} {'is' if one else 'are'} encrypted (STARTTLS or implicit TLS) "
            f"and {'was' if one else 'were'} not decrypted: {'its' if one else 'their'} messages cannot be read")
    if keylog_given:
        return [head, f"    the key log given with --tls-keylog has no keys that decrypt {'it' if one else 'them'}: "
                      f"it must be the SSLKEYLOGFILE written by the client or server of "
                      f"{'that connection' if one else 'those connections'} while the capture was taken"]
    return [head, f"    give the TLS key log (SSLKEYLOGFILE of the client or server) with --tls-keylog FILE to "
                  f"extract {'its' if one else 'their'} messages"]
