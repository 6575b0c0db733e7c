"""Running drills: one at a time per drill on this machine, ``jobs`` at once, each recorded.

Each drill gets its own work dir ``<state dir>/drills/<run id>/<scenario>/``
(the plays' leftovers, the generated inventory and the log ``drill.log``) and a
fresh state dir for the runner (so the flap guard counts nothing from earlier
drills or real incidents); its incident is then moved into the state dir
``stats`` reads (:func:`incident_runner.drill.verdict.evaluate`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from incident_runner.drill.catalog import load_spec, select_drills
from incident_runner.drill.process import drill_env, drill_lock, run_plays
from incident_runner.drill.verdict import LOG_FILE, DrillResult, evaluate
from incident_runner.fsutil import write_atomic
from incident_runner.paths import project_root, state_dir
from incident_runner.signals import cancel_on_signals

DRILLS_DIR = "drills"
DEFAULT_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class DrillRequest:
    scenarios: tuple[str, ...] = ()  # empty: every drill
    state_dir: Path | None = None
    jobs: int = 1
    timeout_s: float = DEFAULT_TIMEOUT_S
    home: Path | None = None  # project root holding molecule/ (default: project_root())


@dataclass
class DrillRun:
    run_id: str
    dir: Path
    state_dir: Path
    jobs: int
    results: list[DrillResult] = field(default_factory=list)
    started: str = ""
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r.ok for r in self.results)

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "dir": str(self.dir), "state_dir": str(self.state_dir),
                "started": self.started, "duration_s": self.duration_s, "jobs": self.jobs,
                "ok": self.ok, "drills": [r.as_dict() for r in self.results]}


def run_drill(scenario: str, run_dir: Path, state_root: Path, home: Path,
              timeout_s: float = DEFAULT_TIMEOUT_S,
              cancel: threading.Event | None = None) -> DrillResult:
    """Run one drill's plays and evaluate them; a stopped drill is torn down all the same."""
    cancel = cancel or threading.Event()
    workdir = run_dir / scenario
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / LOG_FILE
    started = time.monotonic()
    with drill_lock(scenario, timeout_s, cancel) as locked:
        if not locked:
            return DrillResult(
                scenario=scenario, outcome="interrupted" if cancel.is_set() else "error",
                workdir=str(workdir),
                reason="interrupted before it started" if cancel.is_set() else
                f"another run of drill {scenario} held its lock for {timeout_s:g}s")
        spec = load_spec(scenario, home, drill_env(workdir, home))
        plays, teardown = run_plays(spec, workdir, home, log, timeout_s, cancel)
    wall = time.monotonic() - started
    text = log.read_text(encoding="utf-8", errors="replace")
    return evaluate(scenario, workdir, plays.rc, text[-200_000:], state_root, wall,
                    interrupted=cancel.is_set(), destroy_rc=teardown.rc,
                    cpu_s=plays.cpu_s + teardown.cpu_s, verifies="verify" in spec.sequence)


def _new_run_dir(root: Path, stamp: datetime) -> Path:
    run_id = stamp.strftime("DRILL-%Y%m%d-%H%M%S")
    run_dir = root / DRILLS_DIR / run_id
    for n in range(2, 1000):
        if not run_dir.exists():
            break
        run_dir = root / DRILLS_DIR / f"{run_id}-{n}"
    run_dir.mkdir(parents=True)
    return run_dir


def run_drills(request: DrillRequest,
               on_event: Callable[[str, DrillResult | None], None] | None = None) -> DrillRun:
    """Run the requested drills, ``jobs`` at a time, and record each.

    A drill that fails is a result, not an exception; only bad input raises.
    """
    home = (request.home or project_root()).resolve()
    names = select_drills(request.scenarios, home)
    root = state_dir(request.state_dir).resolve()
    stamp = datetime.now(UTC)
    run_dir = _new_run_dir(root, stamp)
    run = DrillRun(run_id=run_dir.name, dir=run_dir, state_dir=root, jobs=request.jobs,
                   started=stamp.isoformat(timespec="seconds").replace("+00:00", "Z"))
    began = time.monotonic()
    cancel = threading.Event()

    def one(name: str) -> DrillResult:
        if cancel.is_set():
            return DrillResult(scenario=name, outcome="interrupted",
                               reason="not started: the run was interrupted")
        if on_event:
            on_event(name, None)
        result = run_drill(name, run_dir, root, home, request.timeout_s, cancel)
        if on_event:
            on_event(name, result)
        return result

    with cancel_on_signals(cancel), ThreadPoolExecutor(max_workers=max(1, request.jobs)) as pool:
        run.results = list(pool.map(one, names))
    run.duration_s = round(time.monotonic() - began, 1)
    write_atomic(run_dir / "summary.json", json.dumps(run.as_dict(), indent=2) + "\n")
    return run
