"""The playbook guard on its own: a fake ansible-playbook with a tree of processes.

The fake forks a child that calls ``setsid()`` (as Ansible's workers do, so
killing the process group misses it) and that child starts a grandchild. The
guard must take all of them down when its parent is killed with SIGKILL or
when it gets SIGTERM (the executor's timeout/cancel path), and must pass the
playbook's exit status through otherwise.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from incident_runner import playbook_guard
from incident_runner.ansible_env import install_guard

FAKE = textwrap.dedent("""\
    #!{python}
    import os, sys, time
    pids = [os.getpid()]
    if os.environ.get("FAKE_EXIT"):
        sys.exit(int(os.environ["FAKE_EXIT"]))
    child = os.fork()
    if child == 0:
        os.setsid()  # like an Ansible worker: out of the playbook's process group
        grandchild = os.fork()
        if grandchild == 0:
            os.execv("/bin/sleep", ["sleep", "3001"])
        open(os.environ["FAKE_PIDS"] + ".worker", "w").write(f"{{os.getpid()}} {{grandchild}}")
        time.sleep(3001)
    open(os.environ["FAKE_PIDS"], "w").write(str(os.getpid()))
    time.sleep(3001)
""")

# A stand-in for the runner: starts the guard in a new session (as pexpect does),
# prints the guard's pid, then waits.
RUNNER = textwrap.dedent("""\
    import os, subprocess, sys, time
    proc = subprocess.Popen([sys.argv[1]], start_new_session=True,
                            env={**os.environ, "IR_RUNNER_PID": str(os.getpid())})
    print(proc.pid, flush=True)
    sys.exit(proc.wait())
""")


@pytest.fixture
def guard_env(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    private = tmp_path / "ir-run-test"
    private.mkdir()
    guard = install_guard(private) / "ansible-playbook"
    fake = tmp_path / "fake-ansible-playbook"
    fake.write_text(FAKE.format(python=sys.executable))
    fake.chmod(0o700)
    (private / "extravars.yml").write_text("password: secret\n")
    env = {**os.environ, playbook_guard.REAL_ENV: str(fake),
           playbook_guard.PRIVATE_ENV: str(private), "FAKE_PIDS": str(tmp_path / "pids")}
    env.pop(playbook_guard.ARTIFACTS_ENV, None)
    return guard, env


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _tree_pids(tmp_path: Path, timeout: float = 10) -> list[int]:
    deadline = time.monotonic() + timeout
    main, worker = tmp_path / "pids", tmp_path / "pids.worker"
    while time.monotonic() < deadline:
        if main.exists() and worker.exists() and worker.read_text().strip():
            return [int(main.read_text()), *map(int, worker.read_text().split())]
        time.sleep(0.05)
    pytest.fail("the fake playbook never started its tree")


def _wait_dead(pids: list[int], timeout: float = 5) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(map(_alive, pids)):
        time.sleep(0.05)
    return [p for p in pids if _alive(p)]


def _cleanup(pids: list[int]) -> None:
    for pid in pids:  # only processes this test started
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_kill_9_of_the_runner_kills_the_whole_tree(
        guard_env: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    guard, env = guard_env
    runner = subprocess.Popen([sys.executable, "-c", RUNNER, str(guard)], env=env,
                              stdout=subprocess.PIPE, text=True)
    assert runner.stdout is not None
    guard_pid = int(runner.stdout.readline())
    pids = _tree_pids(tmp_path)
    try:
        assert all(map(_alive, pids))
        # The worker really is outside the playbook's process group.
        assert os.getpgid(pids[1]) != os.getpgid(pids[0])
        runner.kill()
        runner.wait()
        assert _wait_dead([guard_pid, *pids]) == []
        assert not (tmp_path / "ir-run-test").exists(), "the private dir (secrets) is removed"
    finally:
        _cleanup([guard_pid, *pids])


def test_sigterm_to_the_guard_kills_the_tree(guard_env: tuple[Path, dict[str, str]],
                                             tmp_path: Path) -> None:
    guard, env = guard_env
    proc = subprocess.Popen([str(guard)], env=env, start_new_session=True)
    pids = _tree_pids(tmp_path)
    try:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 128 + signal.SIGTERM
        assert _wait_dead(pids) == []
    finally:
        _cleanup([proc.pid, *pids])


def test_exit_status_passes_through(guard_env: tuple[Path, dict[str, str]]) -> None:
    guard, env = guard_env
    proc = subprocess.run([str(guard)], env={**env, "FAKE_EXIT": "4"}, timeout=30, check=False)
    assert proc.returncode == 4


def test_runs_nothing_when_the_runner_is_already_gone(
        guard_env: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    guard, env = guard_env
    proc = subprocess.run([str(guard)], env={**env, playbook_guard.PARENT_ENV: "1"},
                          timeout=30, check=False)
    assert proc.returncode == playbook_guard.EXIT_RUNNER_GONE
    assert not (tmp_path / "pids").exists()


def test_a_missing_real_playbook_is_an_error_not_a_hang(
        guard_env: tuple[Path, dict[str, str]]) -> None:
    guard, env = guard_env
    proc = subprocess.run([str(guard)], env={**env, playbook_guard.REAL_ENV: "/nonexistent"},
                          timeout=30, check=False, capture_output=True, text=True)
    assert proc.returncode == 127 and "not executable" in proc.stderr
