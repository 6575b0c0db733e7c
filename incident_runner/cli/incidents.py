"""``incident-runner incidents``: every incident in the state dir, killed runs included."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from incident_runner.chart import duration_label
from incident_runner.cli.options import global_options
from incident_runner.config import load_config
from incident_runner.errors import InputError
from incident_runner.history import IncidentRow
from incident_runner.paths import state_dir
from incident_runner.status import Status
from incident_runner.store import open_store
from incident_runner.timeutil import epoch, parse_duration

COLUMNS = ("ID", "STARTED (UTC)", "SCENARIO", "SEVERITY", "KIND", "STATUS", "DURATION",
           "RESOLVED BY")


def _cells(row: IncidentRow) -> tuple[str, ...]:
    started = (row.start or "-")[:19].replace("T", " ")
    duration = duration_label(row.duration_s) if row.duration_s is not None else "-"
    return (row.incident_id, started, row.scenario or "-", row.severity or "-", row.kind,
            row.status, duration, row.resolved_by or "-")


def table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
                     for r in [header, *rows])


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--limit", "-n", type=click.IntRange(min=1), default=None,
              help="Show at most this many (the newest).")
@click.option("--status", "statuses", multiple=True,
              type=click.Choice([str(s) for s in Status]), help="Only these statuses.")
@click.option("--since", metavar="DURATION|ISO",
              help="Only incidents started within this duration (90s, 15m, 2h) or after "
                   "this ISO time.")
@global_options
@click.pass_context
def incidents(ctx: click.Context, as_json: bool, limit: int | None, statuses: tuple[str, ...],
              since: str | None) -> None:
    """List incidents, newest first; runs that were killed show as interrupted."""
    root = state_dir(ctx.obj.get("state_dir"))
    store = open_store(ctx.obj.get("state_url"), load_config(ctx.obj.get("config")), root)
    rows = list(reversed(store.list_incidents()))
    if since:
        cutoff = epoch(since) if "T" in since or "-" in since else (
            time.time() - parse_duration(since, "--since"))
        if cutoff is None:
            raise InputError(f"'{since[:40]}' is neither a duration nor an ISO time",
                             field="--since")
        rows = [r for r in rows if (epoch(r.start) or 0) >= cutoff]
    if statuses:
        rows = [r for r in rows if r.status in statuses]
    rows = rows[:limit] if limit else rows
    if as_json:
        click.echo(json.dumps([{**r.as_dict(), "path": str(Path(root) / r.dir)} for r in rows],
                              indent=2))
        return
    if not rows:
        click.echo(f"no incidents under {root}")
        return
    click.echo(table([_cells(r) for r in rows], COLUMNS))
