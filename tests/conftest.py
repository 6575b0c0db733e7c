"""Shared fixtures: every test's incidents and artifacts live under tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _state_under_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    state = tmp_path / "incidents"
    monkeypatch.setenv("INCIDENT_RUNNER_STATE_DIR", str(state))
    return state


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under xdist, keep tests that share a module-scoped fixture (a stack) on one worker.

    Everything else (molecule scenarios, drills) spreads across workers.
    """
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        defs = info.name2fixturedefs.values() if info else []
        if any(d and d[-1].scope == "module" for d in defs):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
