"""The scenario catalog: ``scenarios/*.yml`` validated, then frozen dataclasses.

Adding a scenario is adding a YAML file; no Python changes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from incident_runner.errors import InputError
from incident_runner.paths import scenarios_dir
from incident_runner.validation import load_yaml, validate

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Step:
    """One rung of a remediation ladder: a playbook or a role with vars."""

    name: str
    playbook: str | None = None
    role: str | None = None
    vars: dict[str, Any] = field(default_factory=dict)
    destructive: bool = False
    timeout: int | None = None
    description: str = ""

    @property
    def action(self) -> str:
        return f"playbook {self.playbook}" if self.playbook else f"role {self.role}"


@dataclass(frozen=True)
class Check:
    name: str
    url: str
    status: tuple[int, ...] = (200,)
    successes: int = 3
    interval: float = 0.2
    timeout: float = 2.0
    p95_ms: int | None = None
    concurrency: int = 1
    deadline: float = 30.0

    def as_vars(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name, "url": self.url, "status": list(self.status),
            "successes": self.successes, "interval": self.interval, "timeout": self.timeout,
            "concurrency": self.concurrency, "deadline": self.deadline,
        }
        if self.p95_ms is not None:
            out["p95_ms"] = self.p95_ms
        return out


@dataclass(frozen=True)
class Verify:
    checks: tuple[Check, ...]
    playbook: str | None = None
    vars: dict[str, Any] = field(default_factory=dict)
    stabilisation_seconds: float = 0.0


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    description: str
    source: Path
    hosts: str
    services: tuple[str, ...]
    ladders: dict[str, tuple[Step, ...]]
    verify: Verify
    diagnostics_enabled: bool = True
    diagnostics_vars: dict[str, Any] = field(default_factory=dict)
    no_local_fix: bool = False
    escalation_reason: str = ""
    # Containment (pause a queue, disable a workflow): a verified step stops the
    # damage but a human must finish, so the incident escalates instead of resolving.
    escalate_after_containment: bool = False
    notify: bool = True
    flap_max: int | None = None
    flap_window_minutes: float | None = None
    lock: str | None = None
    seeds: tuple[str, ...] = ()
    communication: dict[str, str] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)

    def ladder_for(self, severity: str | None) -> tuple[str, tuple[Step, ...]]:
        """The ladder for a severity level, falling back to 'default'."""
        if severity and severity in self.ladders:
            return severity, self.ladders[severity]
        return "default", self.ladders["default"]

    @property
    def lock_key(self) -> str:
        return self.lock or f"{self.hosts}:{','.join(self.services) or self.id}"


def _step(raw: dict[str, Any]) -> Step:
    return Step(
        name=raw["name"], playbook=raw.get("playbook"), role=raw.get("role"),
        vars=dict(raw.get("vars") or {}), destructive=bool(raw.get("destructive", False)),
        timeout=raw.get("timeout"), description=raw.get("description", ""),
    )


def _check(raw: dict[str, Any]) -> Check:
    return Check(
        name=raw["name"], url=raw["url"], status=tuple(raw.get("status", [200])),
        successes=raw.get("successes", 3), interval=raw.get("interval", 0.2),
        timeout=raw.get("timeout", 2.0), p95_ms=raw.get("p95_ms"),
        concurrency=raw.get("concurrency", 1), deadline=raw.get("deadline", 30.0),
    )


def parse_scenario(data: Any, source: Path) -> Scenario:
    validate(data, "scenario", str(source))
    if data["id"] != source.stem:
        raise InputError(f"id '{data['id']}' must match the file name '{source.stem}'",
                         source=str(source), field="id")
    verify = data["verify"]
    escalation = data.get("escalation") or {}
    flap = data.get("flap_guard") or {}
    diagnostics = data.get("diagnostics") or {}
    ladders = {level: tuple(_step(s) for s in steps) for level, steps in data["ladders"].items()}
    if not escalation.get("no_local_fix") and not ladders["default"]:
        raise InputError("an empty ladder needs escalation.no_local_fix: true",
                         source=str(source), field="ladders.default")
    return Scenario(
        id=data["id"], title=data["title"], description=data.get("description", ""),
        source=source, hosts=data["targets"]["hosts"],
        services=tuple(data["targets"].get("services", [])), ladders=ladders,
        verify=Verify(
            checks=tuple(_check(c) for c in verify["checks"]), playbook=verify.get("playbook"),
            vars=dict(verify.get("vars") or {}),
            stabilisation_seconds=float(verify.get("stabilisation_seconds", 0)),
        ),
        diagnostics_enabled=bool(diagnostics.get("enabled", True)),
        diagnostics_vars=dict(diagnostics.get("vars") or {}),
        no_local_fix=bool(escalation.get("no_local_fix", False)),
        escalation_reason=escalation.get("reason", ""),
        escalate_after_containment=bool(escalation.get("after_containment", False)),
        notify=bool(escalation.get("notify", True)),
        flap_max=flap.get("max_remediations"), flap_window_minutes=flap.get("window_minutes"),
        lock=data.get("lock"), seeds=tuple(data.get("seeds", [])),
        communication=dict(data.get("communication") or {}),
        report=dict(data.get("report") or {}),
    )


def load_scenario_file(path: Path) -> Scenario:
    return parse_scenario(load_yaml(path), path)


def catalog(directory: Path | None = None) -> dict[str, Scenario]:
    """Every scenario in the catalog directory, validated."""
    directory = directory or scenarios_dir()
    if not directory.is_dir():
        raise InputError("scenario catalog directory not found", source=str(directory))
    found: dict[str, Scenario] = {}
    for path in sorted(directory.glob("*.yml")):
        scenario = load_scenario_file(path)
        found[scenario.id] = scenario
    return found


def find_scenario(name: str, directory: Path | None = None) -> Scenario:
    """Load one scenario by id (only its file is parsed)."""
    directory = directory or scenarios_dir()
    path = directory / f"{name}.yml"
    if not name or "/" in name or name.startswith(".") or not path.is_file():
        known = ", ".join(sorted(p.stem for p in directory.glob("*.yml"))) or "none"
        raise InputError(f"unknown scenario '{name[:60]}' (known: {known})",
                         source=str(directory), field="--scenario")
    return load_scenario_file(path)
