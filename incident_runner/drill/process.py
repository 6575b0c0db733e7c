"""Running one drill's playbooks as child processes: deadlines, cancel, teardown, locks.

Molecule would start a process per step (create, side_effect, converge,
verify, destroy), each loading molecule and then ``ansible-playbook``.
Measured, that cost more CPU than the drill's own plays (docs/drills.md), so
the drill runs its scenario's steps up to verify in ONE ``ansible-playbook``
(a generated playbook importing each step's playbook in order, with the
inventory molecule would generate), then destroy in a second one that always
runs, also after a failure, a timeout or a signal.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from incident_runner.drill.catalog import DrillSpec

# The one /proc reader for now (issue 17 gives process checks one home).
from incident_runner.procutil import proc_state

DESTROY_TIMEOUT_S = 300.0


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the group, SIGKILL it after 20 s; the caller reaps the leader."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)  # the leader lingers as a zombie until reaped
        except ProcessLookupError:
            return
        state = proc_state(proc.pid)
        if state is None or state[0] == "Z":
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


@dataclass
class Finished:
    """How a child ended: exit code (None: stopped) and the CPU seconds of it and its
    descendants (user + system, as the test suite's CPU table counts them)."""

    rc: int | None
    cpu_s: float = 0.0


def _reap(proc: subprocess.Popen[bytes], block: bool) -> Finished | None:
    pid, status, usage = os.wait4(proc.pid, 0 if block else os.WNOHANG)
    if pid == 0:
        return None
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Finished(proc.returncode, round(usage.ru_utime + usage.ru_stime, 2))


def run_logged(argv: list[str], *, cwd: Path, env: dict[str, str], log: Path, timeout: float,
               cancel: threading.Event | None = None) -> Finished:
    """Run ``argv`` in its own process group, output appended to ``log``.

    Returns its exit code (None if it was stopped: deadline or ``cancel``; a
    stopped one is killed with its whole group, the plays' children too) and
    its CPU time, read from ``wait4`` (per child, so drills running in threads
    side by side do not mix).
    """
    with log.open("ab") as out:
        out.write(f"$ {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        try:
            while True:
                done = _reap(proc, block=False)
                if done is not None:
                    return done
                if time.monotonic() >= deadline or (cancel is not None and cancel.is_set()):
                    _kill_group(proc)
                    return Finished(None, (_reap(proc, block=True) or Finished(None)).cpu_s)
                time.sleep(0.2)
        except BaseException:
            _kill_group(proc)
            raise


def venv_bin() -> Path:
    """The tools (ansible-playbook, incident-runner) of the interpreter running us."""
    return Path(sys.executable).parent


def drill_env(workdir: Path, home: Path, spec_env: dict[str, str] | None = None) -> dict[str, str]:
    """Environment of one drill's plays: the venv's tools first, the drill's own dirs."""
    env = {
        **os.environ,
        **(spec_env or {}),
        "PATH": f"{venv_bin()}{os.pathsep}{os.environ.get('PATH', '')}",
        "DRILL_WORKDIR": str(workdir),
        # Where molecule would keep its state; here: the generated inventory and sequence.
        "MOLECULE_EPHEMERAL_DIRECTORY": str(workdir / "molecule"),
        "MOLECULE_PROJECT_DIRECTORY": str(home),
        # The runner's own state dir: the flap guard sees only this drill.
        "INCIDENT_RUNNER_STATE_DIR": str(workdir / "incidents"),
        "NO_COLOR": "1",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        # Failed results as JSON (as under molecule): the verdict quotes the failed task's msg.
        "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
    }
    if (home / "ansible.cfg").is_file():
        env["ANSIBLE_CONFIG"] = str(home / "ansible.cfg")
    return env


def write_plays(spec: DrillSpec, workdir: Path) -> tuple[Path, Path, Path]:
    """The inventory, the sequence playbook (every step but destroy) and destroy's playbook."""
    eph = workdir / "molecule"
    eph.mkdir(parents=True, exist_ok=True)
    inventory = eph / "inventory.yml"
    inventory.write_text(yaml.safe_dump(spec.inventory(), sort_keys=False), encoding="utf-8")
    sequence = eph / "sequence.yml"
    steps = [s for s in spec.sequence if s != "destroy"]
    sequence.write_text(yaml.safe_dump(
        [{"name": f"Drill {spec.name}: {step}",
          "ansible.builtin.import_playbook": str(spec.playbooks[step])} for step in steps],
        sort_keys=False), encoding="utf-8")
    return inventory, sequence, spec.playbooks["destroy"]


def run_plays(spec: DrillSpec, workdir: Path, home: Path, log: Path, timeout_s: float,
              cancel: threading.Event) -> tuple[Finished, Finished]:
    """How the sequence (create .. verify) and destroy of one drill ended."""
    env = drill_env(workdir, home, spec.env)
    inventory, sequence, destroy = write_plays(spec, workdir)
    base = [str(venv_bin() / "ansible-playbook"), "--inventory", str(inventory),
            *spec.ansible_args]
    plays = run_logged([*base, str(sequence)], cwd=home, env=env, log=log, timeout=timeout_s,
                       cancel=cancel)
    # Teardown whatever happened; a signal already seen must not stop it.
    teardown = run_logged([*base, str(destroy)], cwd=home, env=env, log=log,
                          timeout=DESTROY_TIMEOUT_S)
    return plays, teardown


@contextlib.contextmanager
def drill_lock(scenario: str, timeout_s: float,
               cancel: threading.Event | None = None) -> Iterator[bool]:
    """One run of a drill at a time on this machine (its stack's project and port are
    fixed, and create removes a leftover stack). Yields False if not had in time."""
    path = Path(tempfile.gettempdir()) / f"incident-runner-drill-{scenario}.lock"
    with path.open("a") as handle:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline or (cancel is not None and cancel.is_set()):
                    yield False
                    return
                time.sleep(1)
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


