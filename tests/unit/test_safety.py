"""Safety rails as pure logic: flap guard over the history, approvals, time budget, plan."""

from __future__ import annotations

import copy
import io
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from incident_runner.config import SafetySettings, load_config, parse_config
from incident_runner.errors import InputError
from incident_runner.plan import PlanInput, build_plan, plan_lines
from incident_runner.redaction import MASK, Redactor
from incident_runner.safety import (
    ApprovalGate,
    Budget,
    FlapGuard,
)
from incident_runner.scenario import load_scenario_file
from incident_runner.severity import load_preset
from incident_runner.timeutil import parse_duration
from tests.unit.timelines import T0, write_incident

ROOT = Path(__file__).resolve().parents[2]
KEY = "staging:proxy"
OK = "successful"


# -- durations and settings -----------------------------------------------------------
@pytest.mark.parametrize(("text", "seconds"), [
    ("90s", 90), ("15m", 900), ("15", 15), ("1.5h", 5400), (" 2 min ", 120), ("0.5", 0.5),
    ("10sec", 10),
])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "0s", "-5m", "5 days", "1e3", "m", "8d", "200h",
                                  "$(reboot)", "{{ 1 }}"])
def test_parse_duration_rejects_junk(text: str) -> None:
    with pytest.raises(InputError) as err:
        parse_duration(text)
    assert err.value.field == "--timeout"


def test_settings_defaults_and_config() -> None:
    assert SafetySettings.from_config(None) == SafetySettings()
    default = SafetySettings()
    assert (default.flap_max, default.flap_window_minutes) == (3, 60)
    assert default.incident_timeout_minutes == 60
    s = SafetySettings.from_config({"flap_guard": {"max_remediations": 5},
                                    "incident_timeout_minutes": None,
                                    "secret_env": ["DB_PASS"]})
    assert (s.flap_max, s.flap_window_minutes, s.incident_timeout_minutes) == (5, 60, None)
    assert s.secret_env == ("DB_PASS",)


def test_shipped_config_has_the_default_flap_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INCIDENT_RUNNER_CONFIG", raising=False)
    config = load_config(ROOT / "incident-runner.yml")
    assert (config.safety.flap_max, config.safety.flap_window_minutes) == (3, 60)
    assert config.safety.incident_timeout_minutes == 60


@pytest.mark.parametrize(("safety", "field"), [
    ({"flap_guard": {"max_remediations": 0}}, "safety.flap_guard.max_remediations"),
    ({"flap_guard": {"window_minutes": 0}}, "safety.flap_guard.window_minutes"),
    ({"incident_timeout_minutes": -1}, "safety.incident_timeout_minutes"),
    ({"secret_env": ["not a name"]}, "safety.secret_env.0"),
    ({"flap_gaurd": {}}, "safety.flap_gaurd"),
])
def test_bad_safety_config_names_the_field(safety: dict[str, Any], field: str) -> None:
    with pytest.raises(InputError) as err:
        parse_config({"safety": safety}, Path("incident-runner.yml"))
    assert err.value.field == field


# -- flap guard ---------------------------------------------------------------------------
def _remediated(root: Path, minute: int, **kw: Any) -> Path:
    return write_incident(root, start=T0 + timedelta(minutes=minute), target_key=KEY,
                          steps=[("mitigate", "reconnect-networks", OK, 1.0),
                                 ("verify", "after-reconnect-networks", OK, 1.0)],
                          status="resolved", resolved_by="reconnect-networks", **kw)


def test_flap_guard_allows_n_then_blocks(tmp_path: Path) -> None:
    guard = FlapGuard(max_remediations=2, window_minutes=60, source="scenario", root=tmp_path)
    now = T0 + timedelta(minutes=30)
    assert guard.check(KEY, now).allowed
    _remediated(tmp_path, 0)
    verdict = guard.check(KEY, now)
    assert (verdict.allowed, verdict.count) == (True, 1)
    _remediated(tmp_path, 10)
    verdict = guard.check(KEY, now)
    assert (verdict.allowed, verdict.count) == (False, 2)
    assert "already remediated 2 time(s) in the last 60 min (limit 2" in verdict.reason
    assert verdict.as_event()["decision"] == "block"
    # Outside the window the old ones no longer count.
    assert guard.check(KEY, T0 + timedelta(minutes=65)).allowed


def test_flap_guard_ignores_check_runs_other_targets_and_non_remediations(tmp_path: Path) -> None:
    guard = FlapGuard(1, 60, "config", tmp_path)
    now = T0 + timedelta(minutes=30)
    _remediated(tmp_path, 0, check_mode=True)
    write_incident(tmp_path, start=T0 + timedelta(minutes=1), target_key="staging:web",
                   steps=[("mitigate", "x", OK, 1.0)], status="resolved")
    # Blocked or refused incidents ran no mitigation: they do not feed the guard.
    write_incident(tmp_path, start=T0 + timedelta(minutes=2), target_key=KEY,
                   escalate_reason="flap guard", status="escalated")
    assert guard.check(KEY, now).allowed


def test_flap_guard_counts_survive_a_restart(tmp_path: Path) -> None:
    """A new guard (as after a restart: a fresh process opens the index) sees old runs."""
    _remediated(tmp_path, 0)
    _remediated(tmp_path, 5)
    (tmp_path / "history.sqlite").unlink(missing_ok=True)  # even a lost index is rebuilt
    verdict = FlapGuard(2, 60, "config", tmp_path).check(KEY, T0 + timedelta(minutes=10))
    assert not verdict.allowed and verdict.count == 2


def test_scenario_flap_guard_wins_field_by_field(tmp_path: Path) -> None:
    settings = SafetySettings(flap_max=3, flap_window_minutes=60)
    g = FlapGuard.for_scenario(None, None, settings, tmp_path)
    assert (g.max, g.window_minutes, g.source) == (3, 60, "config")
    g = FlapGuard.for_scenario(1, None, settings, tmp_path)
    assert (g.max, g.window_minutes, g.source) == (1, 60, "scenario")
    g = FlapGuard.for_scenario(None, 5, settings, tmp_path)
    assert (g.max, g.window_minutes) == (3, 5)


# -- approval gate ------------------------------------------------------------------------
def test_non_destructive_steps_need_no_approval() -> None:
    def never(question: str, timeout: float) -> bool | None:
        raise AssertionError("must not ask")
    approval = ApprovalGate(assume_yes=False, confirm=never).approve("a", "role x", False)
    assert approval.approved and approval.by == "not-needed"


def test_yes_approves_without_asking() -> None:
    def never(question: str, timeout: float) -> bool | None:
        raise AssertionError("must not ask")
    approval = ApprovalGate(assume_yes=True, confirm=never).approve("a", "role x", True)
    assert approval.approved and approval.by == "--yes"


@pytest.mark.parametrize(("answer", "approved", "by"), [
    (None, False, "no-tty"), (False, False, "declined"), (True, True, "interactive")])
def test_interactive_answers(answer: bool | None, approved: bool, by: str) -> None:
    asked: list[tuple[str, float]] = []

    def confirm(question: str, timeout: float) -> bool | None:
        asked.append((question, timeout))
        return answer
    gate = ApprovalGate(assume_yes=False, confirm=confirm, timeout=300)
    approval = gate.approve("scale-to-zero", "role scale_service", True, budget_left=42)
    assert (approval.approved, approval.by) == (approved, by)
    assert asked == [("Step 'scale-to-zero' (role scale_service) is destructive. Run it?", 42)]
    event = approval.as_event("scale-to-zero")
    assert event["decision"] == ("approved" if approved else "skipped")
    if not approved:
        assert "skipped" in approval.reason


def test_default_confirm_without_a_tty_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a terminal on stdin the default gate never blocks: it refuses."""
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    approval = ApprovalGate(assume_yes=False).approve("x", "role y", True)
    assert (approval.approved, approval.by) == (False, "no-tty")


# -- budget ---------------------------------------------------------------------------------
class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_budget_caps_step_timeouts() -> None:
    clock = _Clock()
    budget = Budget(60, clock=clock)
    assert budget.cap(120) == (60, True)
    assert budget.cap(30) == (30, False)
    assert budget.cap(None) == (60, True)
    clock.now += 59.5
    assert budget.cap(30) == (1, True) and not budget.expired
    clock.now += 1
    assert budget.expired and budget.cap(30) == (1, True)
    unlimited = Budget(None, clock=clock)
    assert unlimited.cap(None) == (None, False) and not unlimited.expired
    assert unlimited.cap(7) == (7, False)


# -- the plan -------------------------------------------------------------------------------
def _plan(tmp_path: Path, check: bool = True, assume_yes: bool = False,
          extra_vars: dict[str, Any] | None = None) -> dict[str, Any]:
    raw = yaml.safe_load((ROOT / "tests/fixtures/bad_input/scenarios/valid.yml").read_text())
    data = copy.deepcopy(raw)
    data["id"] = "planned"
    data["ladders"]["default"][0]["destructive"] = True
    data["ladders"]["default"][0]["vars"] = {"api_token": "hunter2-secret", "n": 1}
    path = tmp_path / "planned.yml"
    path.write_text(yaml.safe_dump(data))
    scenario = load_scenario_file(path)
    level = load_preset("p0-p3").get("P1")
    redactor = Redactor()
    redactor.add_from_mapping(extra_vars or {})
    flap = FlapGuard(3, 60, "config", tmp_path).check("staging/localhost/ir-staging:proxy")
    name, ladder = scenario.ladder_for("P1")
    return build_plan(PlanInput(
        scenario=scenario, level=level, ladder_name=name, ladder=ladder,
        inventory=Path("/inv"), limit="web*", extra_vars=extra_vars or {}, check=check,
        flap=flap, budget=Budget(600), gate=ApprovalGate(assume_yes),
        diagnostics=scenario.diagnostics_enabled), redactor)


def test_plan_has_everything_a_human_needs(tmp_path: Path) -> None:
    plan = _plan(tmp_path, extra_vars={"password": "pw-123456", "note": "ok"})
    assert plan["scenario"]["id"] == "planned"
    assert plan["severity"]["level"] == "P1"
    assert plan["targets"]["limit"] == "web*"
    assert plan["symptom_check"]
    step = plan["ladder"]["steps"][0]
    assert step["destructive"] is True
    assert "not asked in check mode" in step["approval"]
    assert step["vars"] == {"api_token": MASK, "n": 1}
    assert plan["extra_vars"] == {"password": "***", "note": "ok"}
    assert plan["verify"]["checks"]
    assert plan["escalation"]["contacts"]
    assert plan["flap_guard"]["decision"] == "allow"
    assert plan["timeout"]["incident_s"] == 600
    text = "\n".join(plan_lines(plan))
    for words in ("scenario   planned", "severity   P1", "limit web*", "target", "[DESTRUCTIVE]",
                  "verify ", "escalate   to", "flap guard 0 of 3", "timeout    incident 10 min"):
        assert words in text, words
    assert "pw-123456" not in text and "hunter2-secret" not in text


def test_plan_of_a_real_run_says_how_approval_happens(tmp_path: Path) -> None:
    assert _plan(tmp_path, check=False, assume_yes=True)["ladder"]["steps"][0]["approval"] == (
        "approved by --yes")
    assert "without a terminal the step is skipped" in _plan(
        tmp_path, check=False)["ladder"]["steps"][0]["approval"]
