"""Issue 4, real faults: step 2 fixes what step 1 did not; an exhausted ladder escalates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.stack import Stack, http_status, inspect

pytestmark = pytest.mark.integration


def _oom(stack: Stack, alloc_mb: int) -> None:
    stack.playbook("playbooks/faults/oom.yml", "-e", json.dumps({"fault_oom_alloc_mb": alloc_mb}))
    state = inspect(stack.container("api"))["State"]
    assert isinstance(state, dict)
    assert state["OOMKilled"] is True and state["Running"] is False


def _remediate(stack: Stack, *args: str) -> tuple[int, dict[str, Any]]:
    proc = stack.remediate("--scenario", "oom", "--json", *args)
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def _steps(summary: dict[str, Any]) -> list[tuple[str, str]]:
    journal = json.loads((Path(summary["dir"]) / "journal.json").read_text())
    return [(s["name"], s["status"]) for s in journal["steps"] if s["phase"] == "mitigate"]


def test_step_two_fixes_what_step_one_did_not(stack: Stack) -> None:
    # 200 MiB needed: step 1 raises the limit to 160m (OOMs again), step 2 to 512m.
    _oom(stack, 200)
    rc, summary = _remediate(stack)
    assert rc == 0, summary
    assert summary["status"] == "resolved"
    assert summary["resolved_by"] == "raise-memory-more"
    # Step 1 ran and did not hold (the api OOMed again at 160m); step 2 did.
    steps = _steps(summary)
    assert [name for name, _ in steps] == ["raise-memory", "raise-memory-more"]
    assert steps[-1][1] == "successful"
    journal = json.loads((Path(summary["dir"]) / "journal.json").read_text())
    assert journal["verifications"][-1]["healthy"] is True
    host_config = inspect(stack.container("api"))["HostConfig"]
    assert isinstance(host_config, dict)
    assert host_config["Memory"] == 512 * 1024 * 1024
    assert http_status(stack.url + "/api/health") == 200


def test_exhausted_ladder_escalates_with_exit_3(stack: Stack) -> None:
    # 600 MiB is above the scenario's maximum (512m): nothing on the ladder can fix it.
    _oom(stack, 600)
    rc, summary = _remediate(stack)
    assert rc == 3, summary
    assert summary["status"] == "escalated"
    assert "exhausted" in summary["reason"]
    report = Path(summary["reports"]["markdown"]).read_text()
    assert "Escalated to a human" in report
    assert [name for name, _ in _steps(summary)] == ["raise-memory", "raise-memory-more"]
    # Clean up for the module's other tests: drop the knob, restore the stack.
    stack.playbook("playbooks/faults/clear.yml")
    stack.playbook("playbooks/stack.yml")
