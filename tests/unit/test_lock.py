"""Target locks: keys, waiting, timeouts, holder info, reclaiming a killed holder's lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from incident_runner.engine import RemediateRequest, remediate
from incident_runner.lock import (
    LockBusyError,
    TargetLock,
    describe_holder,
    lock_path,
    read_holder,
)
from incident_runner.paths import project_root
from incident_runner.scenario import find_scenario
from incident_runner.target import resolve_target

STAGING = project_root() / "inventories" / "staging"


def _keys(scenario: str, inventory: Path = STAGING) -> list[str]:
    return resolve_target(inventory, find_scenario(scenario)).lock_keys()


def test_keys_name_environment_host_project_and_service(tmp_path: Path) -> None:
    assert _keys("bad-deploy") == ["staging/localhost/ir-staging:api",
                                   "staging/localhost/ir-staging:deps",
                                   "staging/localhost/ir-staging:web"]
    # Another stack (another project) in the same environment: other keys.
    other = tmp_path / "inventory.yml"
    other.write_text("all:\n  children:\n    staging:\n      hosts:\n        localhost:\n"
                     "  vars:\n    stack_env: staging\n    stack_project: ir-other\n")
    assert _keys("bad-deploy", other)[0] == "staging/localhost/ir-other:api"


def test_lock_files_are_safe_names_and_distinct(tmp_path: Path) -> None:
    a = lock_path(tmp_path, "staging:api")
    b = lock_path(tmp_path, "staging/api")
    evil = lock_path(tmp_path, "../../etc/passwd")
    assert a != b
    assert a.parent == b.parent == evil.parent == tmp_path / "locks"
    assert a.name.startswith("staging_api-") and a.suffix == ".lock"
    assert ".." not in evil.name and "/" not in evil.name


def test_acquire_writes_holder_and_release_frees(tmp_path: Path) -> None:
    lock = TargetLock(tmp_path, ["staging:api"], holder={"incident_id": "INC-1"})
    lock.acquire(0)
    assert lock.held and not lock.contended
    holder = read_holder(lock_path(tmp_path, "staging:api"))
    assert holder["incident_id"] == "INC-1" and holder["pid"] == os.getpid()
    assert holder["keys"] == ["staging:api"]
    assert (lock_path(tmp_path, "staging:api").stat().st_mode & 0o777) == 0o600
    other = TargetLock(tmp_path, ["staging:api"])
    with pytest.raises(LockBusyError) as caught:
        other.acquire(0)
    assert "INC-1" in str(caught.value) and f"pid {os.getpid()}" in str(caught.value)
    assert caught.value.holder["incident_id"] == "INC-1"
    lock.close()
    lock.close()  # idempotent
    other.acquire(0)
    other.close()


def test_waiter_gets_the_lock_when_the_holder_releases(tmp_path: Path) -> None:
    first = TargetLock(tmp_path, ["staging:web"], holder={"incident_id": "INC-A"})
    first.acquire(0)
    waits: list[tuple[str, dict[str, Any]]] = []
    threading.Timer(0.5, first.close).start()
    second = TargetLock(tmp_path, ["staging:web"], holder={"incident_id": "INC-B"})
    second.acquire(10, on_wait=lambda key, holder: waits.append((key, holder)))
    assert second.held and second.contended
    assert 0.3 < second.waited < 5
    assert second.last_holder["incident_id"] == "INC-A"
    assert [(k, h["incident_id"]) for k, h in waits] == [("staging:web", "INC-A")]  # said once
    assert read_holder(lock_path(tmp_path, "staging:web"))["incident_id"] == "INC-B"
    second.close()


def test_all_or_nothing_over_several_keys(tmp_path: Path) -> None:
    web = TargetLock(tmp_path, ["staging:web"])
    web.acquire(0)
    both = TargetLock(tmp_path, ["staging:web", "staging:api"])
    with pytest.raises(LockBusyError) as caught:
        both.acquire(0.3)
    assert caught.value.key == "staging:web" and caught.value.waited >= 0.3
    assert not both.held
    api = TargetLock(tmp_path, ["staging:api"])  # the key taken first was given back
    api.acquire(0)
    api.close()
    web.close()


def test_cancel_stops_the_wait(tmp_path: Path) -> None:
    holder = TargetLock(tmp_path, ["k"])
    holder.acquire(0)
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(LockBusyError) as caught:
        TargetLock(tmp_path, ["k"]).acquire(60, cancel=cancel)
    assert caught.value.cancelled and time.monotonic() - started < 5
    holder.close()


HOLD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from incident_runner.lock import TargetLock
    lock = TargetLock(Path(sys.argv[1]), ["staging:api"], holder={"incident_id": "INC-KILLED"})
    lock.acquire(0)
    print("held", flush=True)
    time.sleep(600)
""")


def test_lock_of_a_killed_run_is_reclaimed(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE,
                             text=True, cwd=project_root())
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        with pytest.raises(LockBusyError, match=f"INC-KILLED.*pid {child.pid}"):
            TargetLock(tmp_path, ["staging:api"]).acquire(0)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        lock = TargetLock(tmp_path, ["staging:api"], holder={"incident_id": "INC-NEXT"})
        lock.acquire(5)  # the kernel dropped the dead run's flock: no stale-lock cleanup needed
        assert lock.waited < 1
        assert read_holder(lock_path(tmp_path, "staging:api"))["incident_id"] == "INC-NEXT"
        lock.close()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_holder_description_is_robust() -> None:
    assert describe_holder({}) == "another run (holder unknown)"
    assert describe_holder({"incident_id": "INC-9", "scenario": "oom", "pid": 7, "host": "h",
                            "since": "t"}) == "INC-9 (oom), pid 7 on h, since t"


def test_remediate_escalates_when_the_lock_stays_held(tmp_path: Path) -> None:
    """Exit 3 with the holder in the reason; nothing runs (no diagnose, no step)."""
    state = tmp_path / "state"
    keys = _keys("bad-deploy")
    other = TargetLock(state, keys[1:2], holder={"incident_id": "INC-OTHER", "scenario": "oom"})
    other.acquire(0)
    try:
        result = remediate(RemediateRequest(
            scenario="bad-deploy", inventory=project_root() / "inventories" / "staging",
            state_dir=state, lock_timeout=0.5, assume_yes=True))
    finally:
        other.close()
    assert result.status == "escalated" and int(result.exit_code) == 3
    reason = result.journal["reason"]
    assert "another remediation holds the lock on 'staging/localhost/ir-staging:deps'" in reason
    assert "INC-OTHER (oom)" in reason
    assert result.journal["steps"] == []  # not even diagnostics: the other run is acting
    events = [json.loads(line) for line in
              (result.incident_dir / "timeline.jsonl").read_text().splitlines()]
    locks = [e["decision"] for e in events if e["kind"] == "lock"]
    assert locks == ["wait", "timeout"]
    assert "holds the lock" in result.reports["markdown"].read_text()
    # The keys it did take were released: another run can take all of them now.
    free = TargetLock(state, keys)
    free.acquire(0)
    free.close()
