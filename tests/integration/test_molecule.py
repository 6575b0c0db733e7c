"""Every role's molecule scenario (molecule/<role>/), run as `molecule test -s NAME`.

Each scenario brings up its own staging stack (own compose project and port),
converges, checks idempotence, verifies (four-step check/apply test, bad
input) and tears the stack down. Drill scenarios (molecule/drill-*) are run by
their own tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TIMEOUT_S = 900

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
    # molecule and the ansible-playbook it starts come from the venv's bin.
    env = os.environ | {"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "NO_COLOR": "1"}
    started = time.monotonic()
    proc = subprocess.run(
        [str(BIN / "molecule"), "test", "-s", scenario],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        # pytest shows captured stdout of a failed test: the whole molecule run.
        print(proc.stdout)
    assert proc.returncode == 0, (
        f"molecule test -s {scenario} exited {proc.returncode} after {elapsed:.0f}s; "
        "its output is in the captured stdout above"
    )
    print(f"molecule test -s {scenario}: {elapsed:.1f}s")
