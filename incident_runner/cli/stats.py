"""``incident-runner stats``: outcomes and time to recovery per scenario."""

from __future__ import annotations

import json
from typing import Any

import click

from incident_runner.chart import duration_label
from incident_runner.cli.incidents import table
from incident_runner.cli.options import global_options
from incident_runner.config import load_config
from incident_runner.paths import state_dir
from incident_runner.stats import compute_stats
from incident_runner.store import open_store

COLUMNS = ("SCENARIO", "COUNT", "RESOLVED", "ESCALATED", "FAILED", "INTERRUPTED", "SUCCESS",
           "ESCALATION", "TTR MEAN", "TTR P50", "TTR P95")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def _dur(value: float | None) -> str:
    return "-" if value is None else duration_label(value) if value >= 10 else f"{value:.1f}s"


def _cells(s: dict[str, Any]) -> tuple[str, ...]:
    return (s["scenario"], str(s["count"]), str(s["resolved"]), str(s["escalated"]),
            str(s["failed"]), str(s["interrupted"]), _pct(s["success_rate"]),
            _pct(s["escalation_rate"]), _dur(s["ttr_mean_s"]), _dur(s["ttr_p50_s"]),
            _dur(s["ttr_p95_s"]))


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@global_options
@click.pass_context
def stats(ctx: click.Context, as_json: bool) -> None:
    """Per scenario: outcomes, success and escalation rates, time to recovery.

    Real incidents and drills are counted apart; check-mode runs are left out.
    Rates are over finished incidents; time to recovery (TTR) is open to
    verified close of the resolved ones.
    """
    root = state_dir(ctx.obj.get("state_dir"))
    store = open_store(ctx.obj.get("state_url"), load_config(ctx.obj.get("config")), root)
    data = compute_stats(store.list_incidents())
    if as_json:
        click.echo(json.dumps({"state_dir": str(root), **data}, indent=2))
        return
    for key, label in (("incidents", "Incidents"), ("drills", "Drills")):
        click.echo(f"{label}:")
        rows = data[key]
        click.echo(table([_cells(s) for s in rows], COLUMNS) if rows else "  none")
        click.echo()
    if data["check_mode_runs"]:
        click.echo(f"({data['check_mode_runs']} check-mode run(s) not counted)")
