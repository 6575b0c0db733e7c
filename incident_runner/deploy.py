"""Deploy records: ``refs/deploy/good/<env>`` in the deploy source is what a rollback returns to.

``mark_good`` runs ``playbooks/mark_good.yml`` through the same executor as
every remediation step, on the inventory's hosts, because the deploy-source
checkout lives where the service runs (the host rollback_commit acts on), not
necessarily where the runner runs. Repo and environment default to the
inventory's ``stack_deploy_src`` and ``stack_env``; ``--repo`` / ``--env``
override them. See docs/ci.md.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from incident_runner.errors import ExecutionError, InputError
from incident_runner.executor import run_playbook
from incident_runner.layout import TIMELINE_FILE
from incident_runner.paths import playbooks_dir
from incident_runner.plays import playbook_play
from incident_runner.timeline import Timeline

LOG = logging.getLogger(__name__)

PLAYBOOK = "mark_good.yml"
REPORT_TASK = "Report the deploy record"
INPUT_PREFIXES = ("mark_good_repo:", "mark_good_env:", "mark_good_commit:")
TIMEOUT_SECONDS = 120


@dataclass(frozen=True)
class GoodMark:
    host: str
    env: str
    repo: str
    ref: str
    previous: str
    commit: str
    moved: bool

    def line(self) -> str:
        if not self.moved:
            return f"{self.host}: {self.ref} already at {self.commit} ({self.repo})"
        was = self.previous or "nothing recorded"
        return f"{self.host}: {self.ref} {was} -> {self.commit} ({self.repo})"


def mark_good(inventory: Path, *, commit: str | None = None, env: str | None = None,
              repo: str | None = None, hosts: str = "all", limit: str | None = None,
              message: str = "incident-runner mark-good") -> list[GoodMark]:
    """Record ``commit`` (default HEAD) as the last good deploy of ``env`` on each host."""
    playbook = playbooks_dir() / PLAYBOOK
    data = {"mark_good_commit": commit or "HEAD", "mark_good_env": env or "",
            "mark_good_repo": repo or "", "mark_good_message": " ".join(message.split())[:300],
            "mark_good_hosts": hosts}
    with tempfile.TemporaryDirectory(prefix="ir-mark-good-") as tmp, \
            Timeline(Path(tmp) / TIMELINE_FILE) as timeline:
        run = run_playbook(
            ident="mark-good", play=playbook_play(playbook, {}), inventory=inventory,
            timeline=timeline, artifacts_dir=Path(tmp) / "artifacts",
            context={"phase": "mark-good"}, limit=limit, data_vars=data,
            timeout=TIMEOUT_SECONDS,
        )
    try:
        marks = [_mark(t.message) for t in run.tasks
                 if t.task == REPORT_TASK and t.status == "ok"]
    except (ValueError, KeyError) as exc:
        raise ExecutionError(f"mark-good: unreadable report from the playbook: {exc}") from exc
    if not run.ok:
        failures = [t.message for t in run.tasks if t.status != "ok" and t.message]
        detail = "; ".join(failures[:3]) or f"playbook {run.status} (rc {run.rc})"
        if failures and all(f.startswith(INPUT_PREFIXES) for f in failures):
            raise InputError(detail, field="mark-good")
        raise ExecutionError(f"mark-good failed: {detail}")
    if not marks:
        raise InputError(f"no host matched '{hosts}'" + (f" with --limit {limit}" if limit else ""),
                         source=str(inventory), field="--hosts")
    return marks


def _mark(message: str) -> GoodMark:
    raw: dict[str, Any] = json.loads(message)
    return GoodMark(host=str(raw["host"]), env=str(raw["env"]), repo=str(raw["repo"]),
                    ref=str(raw["ref"]), previous=str(raw["previous"]),
                    commit=str(raw["commit"]), moved=bool(raw["moved"]))
