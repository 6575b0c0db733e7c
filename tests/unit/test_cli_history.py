"""``incidents``, ``report`` and ``stats`` on synthetic incident folders (no Docker)."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from incident_runner.cli import cli, main
from tests.unit.timelines import T0, dead_pid, write_incident

OK = "successful"


@pytest.fixture
def state(tmp_path: Path) -> Path:
    root = tmp_path / "state"
    write_incident(root, steps=[("mitigate", "reconnect-networks", OK, 2.0),
                                ("verify", "after-reconnect-networks", OK, 1.0)],
                   resolved_by="reconnect-networks")
    write_incident(root, start=T0 + timedelta(minutes=1), pid=dead_pid(), status=None,
                   steps=[("mitigate", "slow-step", "running", 2.0)], scenario="slow-step")
    write_incident(root, start=T0 + timedelta(minutes=2), drill=True, status="escalated",
                   steps=[("mitigate", "reconnect-networks", "failed", 1.0)],
                   escalate_reason="ladder exhausted")
    return root


def _invoke(state: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--state-dir", str(state), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_incidents_table_and_json(state: Path) -> None:
    text = _invoke(state, "incidents").splitlines()
    assert text[0].split()[:3] == ["ID", "STARTED", "(UTC)"]
    assert [line.split()[0] for line in text[1:]] == [
        "INC-20261124-060200", "INC-20261124-060100", "INC-20261124-060000"]  # newest first
    assert "interrupted" in text[2] and "drill" in text[1] and "escalated" in text[1]
    rows = json.loads(_invoke(state, "incidents", "--json"))
    assert [r["status"] for r in rows] == ["escalated", "interrupted", "resolved"]
    assert rows[0]["path"] == str(state / rows[0]["dir"])


def test_incidents_when_there_are_none(tmp_path: Path) -> None:
    assert "no incidents under" in _invoke(tmp_path / "empty", "incidents")
    assert json.loads(_invoke(tmp_path / "empty", "incidents", "--json")) == []


@pytest.mark.parametrize("fmt", ["md", "html", "json"])
def test_report_formats_by_id(state: Path, fmt: str) -> None:
    out = _invoke(state, "report", "INC-20261124-060100", "--format", fmt)
    assert "interrupted" in out
    if fmt == "json":
        assert json.loads(out)["status"] == "interrupted"


def test_stats_text_and_json(state: Path) -> None:
    text = _invoke(state, "stats")
    assert text.startswith("Incidents:") and "Drills:" in text
    data = json.loads(_invoke(state, "stats", "--json"))
    assert [s["scenario"] for s in data["incidents"]] == ["proxy-502", "slow-step"]
    assert data["drills"][0]["escalation_rate"] == 1.0


def test_unknown_incident_exits_2_naming_it(state: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["incident-runner", "--state-dir", str(state), "report",
                                      "INC-20250101-000000"])
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "INC-20250101-000000" in err and "Traceback" not in err
    assert err.count("\n") == 1
