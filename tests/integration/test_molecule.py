"""Every role's molecule scenario (molecule/<role>/), its steps as `molecule test -s NAME`
runs them (tests/molecule_steps.py: the same playbooks and inventory, without molecule's
per-step processes).

Each scenario brings up its own staging stack (own compose project, a port
claimed by molecule/resources/allocate_port.py),
converges, checks idempotence, verifies (four-step check/apply test, bad
input) and tears the stack down. Drill scenarios (molecule/drill-*) are run by
their own tests.
"""

from __future__ import annotations

import pytest

from tests.molecule_steps import run_scenario
from tests.stack import ROOT

SCENARIOS = sorted(
    path.parent.name
    for path in (ROOT / "molecule").glob("*/molecule.yml")
    if not path.parent.name.startswith("drill-")
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_scenarios_are_discovered() -> None:
    assert "restart_containers" in SCENARIOS
    assert not [name for name in SCENARIOS if name.startswith("drill-")]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule_scenario(scenario: str) -> None:
    run = run_scenario(scenario, ROOT)
    if not run.ok:
        # pytest shows captured stdout of a failed test: every run's output.
        print(run.log.read_text(encoding="utf-8", errors="replace"))
    assert run.ok, f"molecule scenario {scenario}: {run.summary()}; output above"
    assert run.runs[-1].steps[-1] == "destroy" and run.runs[0].steps[0] == "destroy"
    print(f"molecule scenario {scenario}: {run.summary()}")
