"""Statistics over the incident history: outcomes, rates and time to recovery per scenario."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from incident_runner.history import IncidentRow, list_incidents
from incident_runner.status import OUTCOMES, Status


def percentile(values: list[float], pct: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default method)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    value = ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
    return round(value, 3)


def _scenario_stats(scenario: str, rows: list[IncidentRow]) -> dict[str, Any]:
    counts = {str(status): sum(1 for r in rows if r.status == status) for status in OUTCOMES}
    running = sum(1 for r in rows if r.status == Status.RUNNING)
    # A not-reproduced incident acted on nothing: it is counted, not rated.
    finished = sum(counts.values()) - counts[Status.NOT_REPRODUCED]
    ttr = [r.duration_s for r in rows if r.status == "resolved" and r.duration_s is not None]
    return {
        "scenario": scenario,
        "count": len(rows),
        **counts,
        "running": running,
        "success_rate": round(counts["resolved"] / finished, 4) if finished else None,
        "escalation_rate": round(counts["escalated"] / finished, 4) if finished else None,
        "ttr_mean_s": round(sum(ttr) / len(ttr), 3) if ttr else None,
        "ttr_p50_s": percentile(ttr, 50),
        "ttr_p95_s": percentile(ttr, 95),
    }


def compute_stats(rows: Iterable[IncidentRow]) -> dict[str, Any]:
    """Per scenario, real incidents and drills apart; check-mode runs only counted.

    Rates are over finished incidents that acted (resolved, escalated, failed,
    interrupted; not-reproduced ones are counted apart); time to recovery is open ->
    verified close of resolved ones.
    """
    groups: dict[str, dict[str, list[IncidentRow]]] = {"incidents": {}, "drills": {}}
    check_runs = 0
    for row in rows:
        if row.check_mode:
            check_runs += 1
            continue
        bucket = groups["drills" if row.drill else "incidents"]
        bucket.setdefault(row.scenario or "-", []).append(row)
    return {
        "incidents": [_scenario_stats(s, r) for s, r in sorted(groups["incidents"].items())],
        "drills": [_scenario_stats(s, r) for s, r in sorted(groups["drills"].items())],
        "check_mode_runs": check_runs,
    }


def stats(root: Path | None = None) -> dict[str, Any]:
    """``incident-runner stats``: the state dir's history, synced first."""
    return compute_stats(list_incidents(root))
