"""Shared fixtures: every test's incidents and artifacts live under tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _state_under_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    state = tmp_path / "incidents"
    monkeypatch.setenv("INCIDENT_RUNNER_STATE_DIR", str(state))
    return state
