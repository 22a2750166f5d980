"""``mailtrace interfaces``: the interfaces ``mailtrace live -i`` can capture on (Linux)."""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console
from rich.table import Table

from mailtrace.commands.common import fail


@click.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: a table; json: a list of objects.")
def interfaces(fmt: str) -> None:
    """List capture interfaces: name, state (up, down, no-carrier), link type and addresses."""
    from mailtrace.capture.live import ANY, LiveError, default_interface, list_interfaces

    try:
        found = list_interfaces()
        default = default_interface()
    except LiveError as exc:
        fail(str(exc))
    if fmt == "json":
        rows = [{"name": ANY, "index": 0, "state": "up", "type": "all interfaces, cooked", "mac": "",
                 "addresses": [], "default": False}]
        rows += [{"name": i.name, "index": i.index, "state": i.state, "type": i.kind, "mac": i.mac,
                  "addresses": list(i.addresses), "default": i.name == default} for i in found]
        click.echo(json.dumps(rows, indent=2))
        return
    out = sys.stdout
    console = Console(file=out, highlight=False)
    if not console.is_terminal:
        console.width = 200  # a pipe: one line per interface, never folded
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for column in ("Interface", "State", "Type", "Addresses"):
        table.add_column(column, overflow="fold")
    states = {"up": "green", "down": "red", "no-carrier": "yellow"}
    table.add_row(ANY, "[green]up[/]", "all interfaces, cooked", "-")
    for i in found:
        name = f"{i.name} (default)" if i.name == default else i.name
        table.add_row(name, f"[{states[i.state]}]{i.state}[/]", i.kind, " ".join(i.addresses) or "-")
    console.print(table)
