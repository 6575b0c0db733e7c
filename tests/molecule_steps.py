"""Run a role's molecule scenario the way `molecule test -s NAME` does, in fewer processes.

molecule starts ``ansible-playbook --version`` and ``ansible-config dump`` before
every step, then the step's own ``ansible-playbook`` (measured: ~1.5 CPU-s of
overhead per step, 7-9 steps per scenario). The suite runs the same playbooks with
the inventory molecule would generate (:func:`incident_runner.drill.catalog.load_scenario`
reads molecule.yml, as ``incident-runner drill`` does for drills), chaining the
consecutive plain steps into one ``ansible-playbook`` run:

- ``check`` runs converge with ``--check``; ``idempotence`` runs converge again and
  fails if its recap counts any change (molecule's rule);
- ``syntax`` is covered by the first run, which parses every imported playbook
  before its first task;
- the last ``destroy`` always runs, after a failure too: it ends the last run
  (verify's, usually: one ansible-playbook start less), and when that run
  failed or never got to it, it runs again on its own.

``molecule test -s NAME`` still runs each scenario by hand, from the same files.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from incident_runner.drill.catalog import DrillSpec, load_scenario
from incident_runner.drill.process import Finished, run_logged, venv_bin

TIMEOUT_S = 900.0


@dataclass
class StepRun:
    """One ansible-playbook run of a scenario: the steps it covered and how it ended."""

    steps: list[str]
    rc: int | None
    cpu_s: float
    wall_s: float
    detail: str = ""


@dataclass
class ScenarioRun:
    name: str
    log: Path
    runs: list[StepRun] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.rc == 0 and not r.detail for r in self.runs)

    def summary(self) -> str:
        return ", ".join(f"{'+'.join(r.steps)} {r.wall_s:.1f}s/{r.cpu_s:.1f}cpu"
                         + (f" rc={r.rc}" if r.rc else "") + (f" ({r.detail})" if r.detail else "")
                         for r in self.runs)


def _batches(spec: DrillSpec) -> Iterator[tuple[list[str], list[str]]]:
    """(steps, extra ansible-playbook args) per run, in sequence order; consecutive plain
    steps share a run, the final destroy included (see :func:`_destroy_again`)."""
    chain: list[str] = []
    for step in spec.sequence:
        if step in ("check", "idempotence"):
            if chain:
                yield chain, []
                chain = []
            yield [step], ["--check"] if step == "check" else []
        elif step != "syntax" and spec.playbooks[step].is_file():  # molecule skips a missing one
            chain.append(step)
    if chain:
        yield chain, []


def _playbook(spec: DrillSpec, steps: list[str], workdir: Path) -> Path:
    if steps in (["check"], ["idempotence"]):
        return spec.playbooks["converge"]
    chain = workdir / f"{'-'.join(steps)}.yml"
    chain.write_text(yaml.safe_dump(
        [{"name": f"{spec.name}: {step}",
          "ansible.builtin.import_playbook": str(spec.playbooks[step])} for step in steps],
        sort_keys=False), encoding="utf-8")
    return chain


def _destroy_again(spec: DrillSpec, runs: list[StepRun], batches: int) -> bool:
    """Whether the final destroy must run on its own: the sequence ends with one and the
    run that ended with it did not happen (an earlier run failed) or did not succeed."""
    if not spec.sequence or spec.sequence[-1] != "destroy":
        return False
    last = runs[-1] if len(runs) == batches else None
    return last is None or last.steps[-1] != "destroy" or last.rc != 0


def _changed_tasks(log_text: str) -> str:
    """Molecule's idempotence rule on the JSON recap: the tasks that reported a change."""
    start = log_text.index("\n{") + 1  # after the "$ argv" line, before any warning
    recap, _ = json.JSONDecoder().raw_decode(log_text, start)
    if not any(host.get("changed") for host in recap.get("stats", {}).values()):
        return ""
    names = [task["task"]["name"] for play in recap.get("plays", []) for task in play["tasks"]
             if any(r.get("changed") for r in task["hosts"].values())]
    return "not idempotent: " + "; ".join(names)


def _unmatched_plays(log_text: str) -> str:
    """Plays that matched no host: a step that silently did nothing (its inventory was
    missing when the run started) must fail the scenario, not pass it."""
    names = re.findall(r"^PLAY \[(.*)\] \**\n+skipping: no hosts matched", log_text, re.M)
    return "played on no host: " + "; ".join(names) if names else ""


def run_scenario(name: str, home: Path) -> ScenarioRun:
    workdir = Path(tempfile.mkdtemp(prefix=f"molecule-{name}-"))
    eph = workdir / "ephemeral"
    eph.mkdir()
    env = {**os.environ,
           "PATH": f"{venv_bin()}{os.pathsep}{os.environ.get('PATH', '')}",
           "MOLECULE_EPHEMERAL_DIRECTORY": str(eph),
           "MOLECULE_PROJECT_DIRECTORY": str(home),
           "MOLECULE_SCENARIO_NAME": name,
           "MOLECULE_SCENARIO_DIRECTORY": str(home / "molecule" / name),
           "ANSIBLE_CONFIG": str(home / "ansible.cfg"),
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    spec = load_scenario(home / "molecule" / name, home, env)
    env |= spec.env
    inventory = eph / "inventory.yml"
    inventory.write_text(yaml.safe_dump(spec.inventory(), sort_keys=False), encoding="utf-8")
    base = [str(venv_bin() / "ansible-playbook"), "--inventory", str(inventory),
            *spec.ansible_args]
    result = ScenarioRun(name, workdir / "log")

    def play(steps: list[str], extra: list[str], timeout: float) -> StepRun:
        log = workdir / f"{'-'.join(steps)}.log"
        run_env = env | ({"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
                          "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.json"}
                         if steps == ["idempotence"] else {})
        started = time.monotonic()
        done: Finished = run_logged([*base, *extra, str(_playbook(spec, steps, workdir))],
                                    cwd=home, env=run_env, log=log, timeout=timeout)
        text = log.read_text(encoding="utf-8", errors="replace")
        with result.log.open("a", encoding="utf-8") as out:
            out.write(text)
        detail = _unmatched_plays(text)
        if steps == ["idempotence"] and done.rc == 0 and not detail:
            detail = _changed_tasks(text)
        return StepRun(steps, done.rc, done.cpu_s, time.monotonic() - started, detail)

    deadline = time.monotonic() + TIMEOUT_S
    batches = list(_batches(spec))
    try:
        for steps, extra in batches:
            run = play(steps, extra, max(1.0, deadline - time.monotonic()))
            result.runs.append(run)
            if run.rc != 0 or run.detail:
                break
    finally:
        if _destroy_again(spec, result.runs, len(batches)):
            result.runs.append(play(["destroy"], [], TIMEOUT_S))
    return result
