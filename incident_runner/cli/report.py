"""``incident-runner report INC-ID``: render an incident's report from its journal."""

from __future__ import annotations

import click

from incident_runner.cli.options import global_options
from incident_runner.journal import load_journal
from incident_runner.layout import find_incident
from incident_runner.paths import state_dir
from incident_runner.report import render


@click.command("report")
@click.argument("incident_ref", metavar="INC-ID")
@click.option("--format", "-f", "fmt", type=click.Choice(["md", "html", "json"]), default="md",
              show_default=True, help="Markdown post-mortem, HTML page or the JSON journal.")
@global_options
@click.pass_context
def report(ctx: click.Context, incident_ref: str, fmt: str) -> None:
    """Print the report of INC-ID (INC-YYYYMMDD-HHMMSS or its folder name) on stdout.

    Works for runs that were killed too: their journal is rebuilt from the
    timeline and the report says interrupted.
    """
    folder = find_incident(incident_ref, state_dir(ctx.obj.get("state_dir")))
    click.echo(render(load_journal(folder), fmt), nl=False)
