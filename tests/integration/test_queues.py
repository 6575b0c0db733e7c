"""Seeds 003 and 004 against a real Redis, the real BullMQ worker and the workflows app.

One queue stack for the module. The counts are read here with the official
BullMQ client, independently of the roles: pausing lost no job and stopped
processing, resuming drains, disabling stops exactly the failing workflow.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from bullmq import Queue
from redis import Redis

from tests.stack import Stack, docker, free_port, http_json, new_stack

# One queue stack per module: every test of it on one xdist worker.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("queue-stack")]

QUEUES = ("ingest", "notifications")
COUNT_TYPES = ("waiting", "paused", "active", "delayed", "prioritized", "failed", "completed")


class QueueStack(Stack):
    redis_port: int = 0

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}"

    def write_inventory(self) -> Path:
        inv = super().write_inventory()
        path = inv / "group_vars" / "all.yml"
        data = yaml.safe_load(path.read_text())
        data.update(stack_queues=True, stack_redis_port=self.redis_port)
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return inv

    def knob(self, **values: str) -> None:
        with Redis.from_url(self.redis_url) as conn:
            conn.mset({f"ir:knob:{k}": v for k, v in values.items()})

    def counts(self, name: str) -> dict[str, Any]:
        async def read() -> dict[str, Any]:
            queue = Queue(name, {"connection": self.redis_url})
            try:
                counts = await queue.getJobCounts(*COUNT_TYPES)
                return {**{t: int(counts.get(t, 0)) for t in COUNT_TYPES},
                        "is_paused": bool(await queue.isPaused())}
            finally:
                await queue.close()

        out = asyncio.run(read())
        with Redis.from_url(self.redis_url, decode_responses=True) as conn:
            out["produced"] = int(conn.get(f"ir:produced:{name}") or 0)
        out["total"] = sum(out[t] for t in COUNT_TYPES)
        return out

    def workflows(self) -> dict[str, dict[str, Any]]:
        with urllib.request.urlopen(f"{self.url}/flows/workflows", timeout=3) as resp:
            return {w["name"]: w for w in json.loads(resp.read())}


@pytest.fixture(scope="module")
def qstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QueueStack]:
    base = new_stack(tmp_path_factory.mktemp("queues"), "queues")
    s = QueueStack(project=base.project, port=base.port, workdir=base.workdir)
    s.redis_port = free_port()
    s.up()
    try:
        yield s
    finally:
        s.down()


def settled(stack: QueueStack, name: str, seconds: float = 2.0) -> tuple[dict[str, Any], int]:
    """Counts once nothing is active, and how many jobs finished over the next window."""
    deadline = time.monotonic() + 10
    start = stack.counts(name)
    while start["active"] and time.monotonic() < deadline:
        start = stack.counts(name)
    end, finished = start, 0
    window = time.monotonic() + seconds
    while time.monotonic() < window:  # bounded: a reading every ~0.1 s for the window
        end = stack.counts(name)
        finished = max(finished, end["completed"] + end["failed"]
                       - start["completed"] - start["failed"])
        time.sleep(0.1)
    return end, finished


def test_pause_keeps_every_job_and_stops_processing_then_resume_drains(qstack: QueueStack) -> None:
    qstack.knob(bad_data="*")
    assert qstack.wait_status("/worker/data/health", 500) == 500
    proc = qstack.remediate("--scenario", "queue-poison", "--yes", "--json")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    summary = json.loads(proc.stdout)
    incident = Path(summary["dir"])
    # The counts before and after are in the reason and the report.
    for name in QUEUES:
        assert f"{name} paused" in summary["reason"] and f"{name} over 3s: 0 processed, 0 lost" \
            in summary["reason"], summary["reason"]
    report = Path(summary["reports"]["markdown"]).read_text()
    assert "waiting/active/failed/completed" in report and "Escalated to a human" in report
    assert json.loads((incident / "paused_queues.json").read_text())["queues"] == list(QUEUES)
    assert (incident / "diagnostics" / "redis" / "redis.json").is_file()

    # Independently: stop the producers, then nothing is processed and no job is lost.
    qstack.knob(feed="off", bad_data="")
    for name in QUEUES:
        counts, finished = settled(qstack, name)
        assert counts["is_paused"] and finished == 0, counts
        assert counts["total"] == counts["produced"], counts  # every job produced is still there
        assert counts["waiting"] + counts["paused"] > 0, counts  # the backlog is kept

    # The follow-up resumes exactly what the incident paused, and the backlog drains.
    qstack.playbook("playbooks/resume_queues.yml", "-e",
                    f"queues_record={incident / 'paused_queues.json'}")
    for name in QUEUES:
        deadline = time.monotonic() + 60
        counts = qstack.counts(name)
        while (counts["completed"] + counts["failed"] < counts["produced"]
               and time.monotonic() < deadline):
            time.sleep(0.2)
            counts = qstack.counts(name)
        assert not counts["is_paused"], counts
        done = counts["completed"] + counts["failed"]
        assert done == counts["produced"] == counts["total"], counts
    qstack.knob(feed="on")


@pytest.mark.parametrize(("scenario", "var", "kind"), [
    ("queue-poison", "queue=nope-queue", "queue"),
    ("workflow-failing", "workflow=nope-flow", "workflow"),
])
def test_unknown_name_is_bad_input(qstack: QueueStack, scenario: str, var: str, kind: str) -> None:
    before = qstack.workflows()
    # --force: on a healthy stack the runner would otherwise not act (not reproduced), and
    # the name is only checked by the step that uses it.
    proc = qstack.remediate("--scenario", scenario, "--yes", "--force", "-e", var)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    name = var.split("=", 1)[1]
    assert f"bad input: unknown {kind} '{name}'" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert {n: w["active"] for n, w in qstack.workflows().items()} == {
        n: w["active"] for n, w in before.items()}
    assert not any(qstack.counts(q)["is_paused"] for q in QUEUES)


def test_failing_workflow_disabled_alone_and_re_enabled(qstack: QueueStack) -> None:
    qstack.knob(workflow_fail="sync-crm")
    assert qstack.wait_status("/flows/workflows/health", 500) == 500
    proc = qstack.remediate("--scenario", "workflow-failing", "--yes", "--json")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    summary = json.loads(proc.stdout)
    assert "disabled: sync-crm; still active: ingest-orders, send-digest" in summary["reason"]
    record = Path(summary["dir"]) / "disabled_workflows.json"
    assert json.loads(record.read_text())["workflows"] == ["sync-crm"]
    flows = qstack.workflows()
    assert [n for n, w in flows.items() if not w["active"]] == ["sync-crm"]
    # The others still run: their run counters move on.
    runs = {n: flows[n]["runs"] for n in ("ingest-orders", "send-digest")}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not all(
            qstack.workflows()[n]["runs"] > r for n, r in runs.items()):
        time.sleep(0.2)
    assert all(qstack.workflows()[n]["runs"] > r for n, r in runs.items())

    qstack.knob(workflow_fail="")
    qstack.playbook("playbooks/enable_workflows.yml", "-e", f"workflows_record={record}")
    assert all(w["active"] for w in qstack.workflows().values())


def test_redis_down_escalates_and_changes_nothing(qstack: QueueStack) -> None:
    # Last in the module: Redis keeps no data across a stop.
    redis = qstack.container("redis")
    docker("stop", "-t", "1", redis)
    try:
        proc = qstack.remediate("--scenario", "queue-poison", "--yes", "--json")
        assert proc.returncode == 3, proc.stdout + proc.stderr
        summary = json.loads(proc.stdout)
        assert "redis unreachable" in summary["reason"], summary["reason"]
        journal = json.loads((Path(summary["dir"]) / "journal.json").read_text())
        mitigate = [s for s in journal["steps"] if s["phase"] == "mitigate"]
        assert [s["changed"] for s in mitigate] == [0], mitigate
        assert not (Path(summary["dir"]) / "paused_queues.json").exists()
        health = http_json(f"{qstack.url}/worker/health", timeout=10)
        assert str(health["status"]).startswith("redis unreachable"), health
    finally:
        docker("start", redis)
