"""Every role's molecule scenario (molecule/<role>/), run as `molecule test -s NAME`.

Each scenario brings up its own staging stack (own compose project, a port
claimed by molecule/resources/allocate_port.py),
converges, checks idempotence, verifies (four-step check/apply test, bad
input) and tears the stack down. Drill scenarios (molecule/drill-*) are run by
their own tests.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
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


STEP = re.compile(r"\[(?P<scenario>[\w-]+) > (?P<step>\w+)\] (?P<what>Executing|Executed)")


def step_times(lines: list[tuple[float, str]]) -> dict[str, float]:
    """Wall seconds per molecule step, from the time each 'Executing'/'Executed' line arrived."""
    started: dict[str, float] = {}
    spent: dict[str, float] = {}
    for at, line in lines:
        match = STEP.search(line)
        if not match:
            continue
        step = match["step"]
        if match["what"] == "Executing":
            started[step] = at
        elif step in started:
            spent[step] = spent.get(step, 0.0) + at - started.pop(step)
    return spent


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule_scenario(scenario: str) -> None:
    # molecule and the ansible-playbook it starts come from the venv's bin.
    env = os.environ | {"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "NO_COLOR": "1"}
    started = time.monotonic()
    lines: list[tuple[float, str]] = []
    with subprocess.Popen(
        [str(BIN / "molecule"), "test", "-s", scenario],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    ) as proc:
        assert proc.stdout is not None
        watchdog = threading.Timer(TIMEOUT_S, proc.kill)  # a hung run prints nothing
        watchdog.start()
        try:
            lines.extend((time.monotonic(), line) for line in proc.stdout)
            returncode = proc.wait()
        finally:
            watchdog.cancel()
    elapsed = time.monotonic() - started
    if returncode != 0:
        # pytest shows captured stdout of a failed test: the whole molecule run.
        print("".join(line for _, line in lines))
    assert returncode == 0, (
        f"molecule test -s {scenario} exited {returncode} after {elapsed:.0f}s; "
        "its output is in the captured stdout above"
    )
    steps = ", ".join(f"{step} {secs:.1f}s" for step, secs in step_times(lines).items())
    print(f"molecule test -s {scenario}: {elapsed:.1f}s ({steps})")
