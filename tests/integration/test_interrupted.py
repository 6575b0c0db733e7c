"""Issue 4, must show: ``kill -9`` of the runner in the middle of a playbook leaves a
timeline every command still reads, and the incident shows as interrupted.

Issue 7, must show: the playbook dies with the runner (no ansible-playbook,
worker or module process of that run survives, so nothing goes on changing
the system unrecorded) and its private data dir is removed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from incident_runner.timeline import read_timeline
from tests.stack import ROOT, VENV_BIN, Stack, env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FIXTURE_HOME = ROOT / "tests" / "fixtures" / "slow_home"
SLOW_TASK = "Hold the step open (the test kills the runner here)"


@pytest.fixture
def slow_home(tmp_path: Path) -> Path:
    """A project root with the shipped roles and config plus the test-only scenario and
    playbook (INCIDENT_RUNNER_HOME), so nothing test-only lands in the real catalog."""
    home = tmp_path / "home"
    home.mkdir()
    for name in ("roles", "ansible.cfg", "incident-runner.yml"):
        (home / name).symlink_to(ROOT / name)
    for name in ("scenarios", "playbooks"):
        (home / name).symlink_to(FIXTURE_HOME / name)
    return home


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        kids = _children(todo.pop())
        out += kids
        todo += kids
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _wait_for_task(state: Path, proc: subprocess.Popen[bytes], logs: Path,
                   timeout: float = 180) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"runner exited {proc.returncode} before the slow task started:\n"
                        f"{logs.read_text()[-3000:]}")
        for folder in state.glob("INC-*-slow-step"):
            for event in read_timeline(folder / "timeline.jsonl"):
                if (event["kind"], event.get("phase"), event.get("step"), event.get("task")) == (
                        "task_started", "mitigate", "slow-step", SLOW_TASK):
                    return folder
        time.sleep(0.2)
    pytest.fail("the slow task never started")


class KilledRun(NamedTuple):
    folder: Path
    run_env: dict[str, str]
    descendants: list[int]  # the runner's process tree just before the kill
    private_dirs: list[Path]  # the playbooks' private data dirs (their cwd's parent)


def _private_dirs(pids: list[int]) -> list[Path]:
    found = set()
    for pid in pids:
        try:
            cwd = Path(f"/proc/{pid}/cwd").readlink()
        except OSError:
            continue
        if cwd.name == "project" and cwd.parent.name.startswith("ir-run-"):
            found.add(cwd.parent)
    return sorted(found)


@pytest.fixture
def killed_incident(stack: Stack, slow_home: Path, tmp_path: Path,
                    _state_under_tmp: Path) -> Iterator[KilledRun]:
    """Start a real ``remediate``, wait until its slow task runs, ``kill -9`` it."""
    run_env = {**env(), "INCIDENT_RUNNER_HOME": str(slow_home),
               "INCIDENT_RUNNER_STATE_DIR": str(_state_under_tmp)}
    logs = tmp_path / "runner.log"
    with logs.open("wb") as out:
        proc = subprocess.Popen(
            [str(VENV_BIN / "incident-runner"), "remediate", "--scenario", "slow-step",
             "--inventory", str(stack.inventory)],
            cwd=ROOT, env=run_env, stdout=out, stderr=subprocess.STDOUT)
    leftovers: list[int] = []
    try:
        folder = _wait_for_task(_state_under_tmp, proc, logs)
        time.sleep(0.5)  # let the playbook settle into the wait
        leftovers = _descendants(proc.pid)
        assert leftovers, "the runner should have ansible-playbook running under it"
        private = _private_dirs(leftovers)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL  # reaped: its pid is gone
        yield KilledRun(folder, run_env, leftovers, private)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in leftovers:  # only processes this test started
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _cli(run_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VENV_BIN / "incident-runner"), *args], cwd=ROOT, env=run_env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_kill_9_mid_playbook_leaves_a_readable_interrupted_incident(
        killed_incident: KilledRun) -> None:
    folder, run_env = killed_incident.folder, killed_incident.run_env

    # The timeline parses line by line; only a torn last line may not.
    lines = (folder / "timeline.jsonl").read_bytes().split(b"\n")
    complete, tail = lines[:-1], lines[-1]
    events = [json.loads(line) for line in complete]
    if tail:
        with pytest.raises(ValueError):
            json.loads(tail)
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "incident_opened"
    assert "incident_closed" not in kinds
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert not (folder / "journal.json").exists(), "nothing closed the incident"
    incident_id = events[0]["incident_id"]

    listed = _cli(run_env, "incidents", "--json")
    assert listed.returncode == 0, listed.stderr
    [row] = [r for r in json.loads(listed.stdout) if r["dir"] == folder.name]
    assert row["status"] == "interrupted" and row["incident_id"] == incident_id
    assert row["resolved_by"] is None and row["duration_s"] > 0
    table = _cli(run_env, "incidents")
    assert table.returncode == 0 and "interrupted" in table.stdout

    for ref in (incident_id, folder.name):
        md = _cli(run_env, "report", ref, "--format", "md")
        assert md.returncode == 0, md.stderr
        assert "| **Status** | interrupted |" in md.stdout
        assert "**Interrupted**" in md.stdout
    html = _cli(run_env, "report", incident_id, "--format", "html")
    assert html.returncode == 0, html.stderr
    assert "<strong>Interrupted</strong>" in html.stdout and "<svg" in html.stdout
    as_json = _cli(run_env, "report", incident_id, "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    journal = json.loads(as_json.stdout)
    assert journal["status"] == "interrupted"
    steps = {(s["phase"], s["name"]): s["status"] for s in journal["steps"]}
    assert steps[("diagnose", "capture-diagnostics")] == "successful"
    assert steps[("mitigate", "slow-step")] == "interrupted"

    assert not list(folder.rglob("*.tmp")), "no half-written files left behind"

    stats = _cli(run_env, "stats", "--json")
    assert stats.returncode == 0, stats.stderr
    [slow] = json.loads(stats.stdout)["incidents"]
    assert (slow["scenario"], slow["count"], slow["interrupted"]) == ("slow-step", 1, 1)
    assert _cli(run_env, "stats").returncode == 0

    # A write torn by the kill (simulated on top of the real one) is still tolerated.
    with (folder / "timeline.jsonl").open("a", encoding="utf-8") as handle:
        handle.write('{"seq": 9999, "ts": "2026-')
    again = _cli(run_env, "incidents", "--json")
    assert again.returncode == 0, again.stderr
    assert [r["status"] for r in json.loads(again.stdout) if r["dir"] == folder.name] == [
        "interrupted"]
    assert _cli(run_env, "report", incident_id, "--format", "html").returncode == 0


def test_unknown_incident_is_bad_input(_state_under_tmp: Path) -> None:
    run_env = {**env(), "INCIDENT_RUNNER_STATE_DIR": str(_state_under_tmp)}
    proc = _cli(run_env, "report", "INC-20000101-000000")
    assert proc.returncode == 2
    assert "INC-20000101-000000" in proc.stderr and "Traceback" not in proc.stderr


def test_kill_9_takes_the_playbook_down_with_the_runner(killed_incident: KilledRun) -> None:
    """No ansible-playbook, worker or module process of the killed run survives it."""
    tree = killed_incident.descendants
    cmdlines = {pid: _cmdline(pid) for pid in tree}
    assert any("ansible-playbook" in c for c in cmdlines.values()), cmdlines
    # Ansible's workers leave the playbook's process group (setsid): killing the group
    # alone would miss them. The guard kills the whole tree.
    assert len({_pgid(pid) for pid in tree} - {None}) > 1, "workers run in their own session"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(map(_alive, tree)):
        time.sleep(0.1)
    survivors = {pid: cmdlines[pid] for pid in tree if _alive(pid)}
    assert survivors == {}, f"still running after the runner died: {survivors}"
    assert killed_incident.private_dirs, "the playbook ran from a private data dir"
    for private in killed_incident.private_dirs:
        assert not private.exists(), f"{private} (extra vars, the play) was left behind"
    assert not [c for c in _all_cmdlines() if any(str(p) in c
                                                  for p in killed_incident.private_dirs)]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _all_cmdlines() -> list[str]:
    return [_cmdline(int(p.name)) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None
