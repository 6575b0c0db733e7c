"""``ansible-playbook`` that dies with the runner, taking everything it started with it.

ansible-runner spawns ``ansible-playbook`` through pexpect, in a new session,
with SIGHUP ignored: when the runner is killed with ``kill -9`` nothing tells
the playbook, and it goes on changing the system with nobody recording it.
Ansible's worker processes also call ``setsid()``, so killing the playbook's
process group (what ansible-runner does on timeout or cancel) leaves the
workers, and the modules they run, alive.

The executor therefore puts a copy of this file, named ``ansible-playbook``,
first on the PATH it gives ansible-runner. The guard:

1. becomes a child subreaper (``PR_SET_CHILD_SUBREAPER``: orphans of the
   playbook's tree are re-parented to it, not to PID 1) and asks for SIGTERM
   when its parent, the runner, dies (``PR_SET_PDEATHSIG``); if the runner
   died before that, it runs nothing;
2. writes its pid to ``$IR_PRIVATE_DIR/guard.pid`` (the executor signals it
   on timeout and cancel), forks and execs the real ``ansible-playbook``
   (``$IR_REAL_ANSIBLE_PLAYBOOK``) and exits with its status;
3. on SIGTERM (runner died, step timed out, run cancelled): freezes every
   descendant (SIGSTOP, rescanning until no new one appears, so nothing forks
   away), SIGKILLs them all, removes the run's secret-bearing files (the
   private data dir, unread partial event files) and exits.

Standard library only, run with ``python -IS``: it starts in milliseconds.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from types import FrameType

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
REAL_ENV = "IR_REAL_ANSIBLE_PLAYBOOK"
PARENT_ENV = "IR_RUNNER_PID"
PRIVATE_ENV = "IR_PRIVATE_DIR"
ARTIFACTS_ENV = "AWX_ISOLATED_DATA_DIR"  # set by ansible-runner: artifacts/<ident>
PID_FILE = "guard.pid"
EXIT_RUNNER_GONE = 143


def _children_of() -> dict[int, list[int]]:
    """ppid -> live child pids, from /proc (zombies are already dead)."""
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            tree.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return tree


def descendants(pid: int) -> set[int]:
    tree = _children_of()
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _signal(pids: set[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def kill_tree() -> None:
    """Freeze then kill every descendant: nothing gets to fork away or act meanwhile."""
    me = os.getpid()
    frozen: set[int] = set()
    for _ in range(100):
        new = descendants(me) - frozen
        if not new:
            break
        _signal(new, signal.SIGSTOP)
        frozen |= new
    _signal(frozen, signal.SIGKILL)
    _signal(frozen, signal.SIGCONT)  # a stopped process dies of SIGKILL anyway; belt and braces
    deadline = time.monotonic() + 5
    while descendants(me) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        time.sleep(0.02)


def remove_secret_files() -> None:
    """The private data dir (extra vars, generated play) and unread partial events."""
    private = os.environ.get(PRIVATE_ENV)
    if private and Path(private).name.startswith("ir-run-"):
        shutil.rmtree(private, ignore_errors=True)
    artifacts = os.environ.get(ARTIFACTS_ENV)
    if artifacts:
        for partial in Path(artifacts, "job_events").glob("*-partial.json"):
            with contextlib.suppress(OSError):
                partial.unlink()


def _stop(signum: int, _frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    kill_tree()
    remove_secret_files()
    os._exit(128 + signum)


def _prctl(option: int, value: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(option, value, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _wait(child: int, watch_parent: int | None) -> int:
    """Wait for the playbook; returns its wait status. Polls the parent if prctl failed."""
    while True:
        if watch_parent is None:
            pid, status = os.waitpid(child, 0)
        else:
            pid, status = os.waitpid(child, os.WNOHANG)
            if not pid and os.getppid() != watch_parent:
                _stop(signal.SIGTERM, None)
        if pid == child:
            return status
        time.sleep(0.2)


def main() -> None:
    real = os.environ.get(REAL_ENV, "")
    if not real or not os.access(real, os.X_OK):
        sys.stderr.write(f"incident-runner playbook guard: ${REAL_ENV} is not executable: "
                         f"{real!r}\n")
        sys.exit(127)
    signal.signal(signal.SIGTERM, _stop)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    armed = _prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))
    expected = os.environ.get(PARENT_ENV, "")
    parent = os.getppid()
    if expected.isdigit() and parent != int(expected):
        # The runner died before the death signal was armed: run nothing.
        remove_secret_files()
        sys.exit(EXIT_RUNNER_GONE)
    private = os.environ.get(PRIVATE_ENV)
    if private:
        with contextlib.suppress(OSError):
            Path(private, PID_FILE).write_text(str(os.getpid()))
    child = os.fork()
    if child == 0:
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.execv(real, [real, *sys.argv[1:]])  # noqa: S606 (argv, no shell)
        finally:
            os._exit(127)
    status = _wait(child, None if armed else parent)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    sys.exit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
