"""Health checks from the runner's own process: the symptom check and verification.

The probing logic has one home, the ``health_check`` role's ``http_check``
module (playbooks and remote vantage points use it through Ansible); the
runner imports its pure ``probe`` function instead of paying an Ansible run
(~3 CPU-seconds) for a few HTTP requests. All checks of a scenario run at
once, one thread each.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from incident_runner import local_module
from incident_runner.paths import roles_dir
from incident_runner.scenario import Check

LOG = logging.getLogger(__name__)

# Symptom confirmation: this many failed rounds in a row confirm the symptom;
# one lost request on a busy machine does not.
CONFIRM_FAILED_ROUNDS = 2
# and it never waits longer than this for a verdict (a slow target counts as failing)
CONFIRM_DEADLINE_S = 10.0


@dataclass(frozen=True)
class CheckResult:
    name: str
    url: str
    healthy: bool
    message: str
    rounds: int = 0
    p95_ms: float | None = None
    last: dict[str, Any] = field(default_factory=dict)

    def as_event(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "healthy": self.healthy,
                "message": self.message, "rounds": self.rounds, "p95_ms": self.p95_ms,
                "statuses": self.last.get("statuses", []),
                "latency_ms": self.last.get("latency_ms", []),
                "errors": self.last.get("errors", [])[:2]}


@cache
def _probe() -> Callable[..., dict[str, Any]]:
    module = local_module.load(roles_dir() / "health_check" / "library" / "http_check.py",
                               "incident_runner_http_check")
    probe: Callable[..., dict[str, Any]] = module.probe
    return probe


def run_check(check: Check, url: str, *, confirm: bool = False) -> CheckResult:
    """One check against ``url`` (already templated). ``confirm``: stop at a sustained failure."""
    args = check.as_vars()
    args["url"] = url
    if confirm:
        args["deadline"] = min(float(args["deadline"]), CONFIRM_DEADLINE_S)
        args["fail_after"] = CONFIRM_FAILED_ROUNDS
    try:
        out = _probe()(**args)
    except Exception as exc:  # a broken URL is a failed check, not a crash
        LOG.debug("check %s raised", check.name, exc_info=True)
        return CheckResult(check.name, url, False, f"{check.name}: {type(exc).__name__}: {exc}")
    return CheckResult(check.name, url, bool(out.get("healthy")), str(out.get("msg", "")),
                       rounds=int(out.get("rounds") or 0),
                       p95_ms=out.get("p95_ms"), last=dict(out.get("last") or {}))


def run_checks(checks: list[tuple[Check, str]], *, confirm: bool = False) -> list[CheckResult]:
    """Every check at once; results in the order given."""
    if not checks:
        return []
    with ThreadPoolExecutor(max_workers=len(checks)) as pool:
        return list(pool.map(lambda c: run_check(c[0], c[1], confirm=confirm), checks))
