"""Drills: break a staging stack on purpose, let the runner fix it, time it.

A drill is the molecule scenario ``molecule/drill-<scenario>/`` (shared plays
in ``molecule/resources/drill/``): create brings up the drill's own stack,
side_effect starts a detector and injects the real fault (the fault playbook
asserts the fault is real, and the detector must see it too), converge runs
``incident-runner remediate --drill --yes``, verify checks the stack
independently, destroy tears it down.

Modules, one job each: :mod:`.catalog` (which drills exist, what a scenario
says), :mod:`.process` (the plays as child processes: deadlines, signals,
teardown, the machine-wide lock), :mod:`.verdict` (leftovers -> result,
incident adoption), :mod:`.run` (drills ``jobs`` at a time), :mod:`.present`
(table, markdown), :mod:`.scaffold` (the generated ``molecule.yml`` files).
What the plays run once per step lives outside this package, so it imports
little: :mod:`incident_runner.drill_probe` (the detector) and
:mod:`incident_runner.drill_steps` (inventory, the runner's answer, verify's look).
"""

from incident_runner.drill.catalog import DRILL_PREFIX, available_drills, load_spec, select_drills
from incident_runner.drill.present import markdown, table
from incident_runner.drill.process import drill_lock
from incident_runner.drill.run import (
    DEFAULT_TIMEOUT_S,
    DrillRequest,
    DrillRun,
    run_drill,
    run_drills,
)
from incident_runner.drill.verdict import DrillResult, evaluate, last_failure, timing_from_journal

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "DRILL_PREFIX",
    "DrillRequest",
    "DrillResult",
    "DrillRun",
    "available_drills",
    "drill_lock",
    "evaluate",
    "last_failure",
    "load_spec",
    "markdown",
    "run_drill",
    "run_drills",
    "select_drills",
    "table",
    "timing_from_journal",
]
