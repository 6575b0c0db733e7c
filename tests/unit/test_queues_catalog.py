"""The queue scenarios (docs/queues.md): which hand over after containment."""

from __future__ import annotations

from pathlib import Path

import pytest

from incident_runner.ladder import BAD_INPUT, ESCALATE_AT_ONCE
from incident_runner.scenario import find_scenario

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("name", "hands_over"), [
    ("queue-poison", True), ("queue-stuck", False), ("workflow-failing", True),
    ("credential-leak", True), ("contain", False),
])
def test_containment_scenarios_escalate_after_a_verified_step(name: str, hands_over: bool) -> None:
    scenario = find_scenario(name, [ROOT / "scenarios"])
    assert scenario.escalate_after_containment is hands_over
    destructive = [s.name for s in scenario.ladder_for(None)[1] if s.destructive]
    assert bool(destructive) is (hands_over or name == "contain")


def test_redis_unreachable_escalates_at_once_and_bad_input_is_recognised() -> None:
    failure = "Read the queues: redis unreachable at redis://127.0.0.1:6379: Error 111"
    assert any(p.search(failure) for p in ESCALATE_AT_ONCE)
    found = BAD_INPUT.search("Read the queues: bad input: unknown queue 'x' (known: a)")
    assert found is not None and found.group(0).startswith("bad input: unknown queue 'x'")
