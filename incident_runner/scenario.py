"""The scenario catalog: ``scenarios/*.yml`` validated, then frozen dataclasses.

Adding a scenario is adding a YAML file; no Python changes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
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
class Fleet:
    """How a scenario runs on a group of hosts (``fleet:``; docs/fleet.md)."""

    checks: tuple[Check, ...]  # per host: each URL rendered with that host's variables
    serial: int | str | None = None  # rolling: hosts per batch, or "25%" of the affected ones
    forks: int | None = None  # cap on Ansible forks per step (default: hosts, up to 50)

    def batch_size(self, affected: int, serial: int | str | None = None) -> int:
        """Hosts per batch for ``affected`` hosts (``serial`` overrides the scenario's)."""
        value = serial if serial is not None else self.serial
        if value is None or affected == 0:
            return max(affected, 1)
        if isinstance(value, str) and value.endswith("%"):
            return max(1, affected * int(value[:-1]) // 100)
        return max(1, int(value))


DEFAULT_PLATFORM = "docker"
DEFAULT_DIAGNOSTICS_ROLE = "capture_diagnostics"


@dataclass(frozen=True)
class PlatformVariant:
    """What a scenario does differently on one platform (``platforms.<name>``)."""

    ladders: dict[str, tuple[Step, ...]]
    verify: Verify | None = None
    diagnostics: dict[str, Any] | None = None
    escalation: dict[str, Any] | None = None
    fleet: Fleet | None = None


@dataclass(frozen=True)
class LabelMatcher:
    """One condition of a scenario's ``match:`` block on an alert's labels."""

    label: str
    value: str
    regex: bool = False

    def matches(self, labels: dict[str, str]) -> bool:
        have = labels.get(self.label)
        if have is None:
            return False
        # Anchored like Alertmanager's =~ matchers: the whole value must match.
        return re.fullmatch(self.value, have) is not None if self.regex else have == self.value


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
    symptom_checks: tuple[Check, ...] = ()  # empty: the verify checks are the symptom check
    confirm: bool = True  # false: act without confirming (confirm_reason says why)
    confirm_reason: str = ""
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
    # Alert routing for `incident-runner serve`: every matcher must hold; empty = never routed.
    match: tuple[LabelMatcher, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        return bool(self.match) and all(m.matches(labels) for m in self.match)
    diagnostics_role: str = DEFAULT_DIAGNOSTICS_ROLE
    platform: str = DEFAULT_PLATFORM
    variants: dict[str, PlatformVariant] = field(default_factory=dict)
    fleet: Fleet | None = None  # per-host checks, rolling batches, forks (docs/fleet.md)

    @property
    def platforms(self) -> tuple[str, ...]:
        return (DEFAULT_PLATFORM, *self.variants)

    def for_platform(self, platform: str) -> Scenario:
        """This scenario as it runs on ``platform`` (the top level is 'docker')."""
        if platform == self.platform:
            return self
        variant = self.variants.get(platform)
        if variant is None:
            raise InputError(f"scenario '{self.id}' has no ladder for platform '{platform}' "
                             f"(it has: {', '.join(self.platforms)})",
                             source=str(self.source), field="platforms")
        diagnostics = variant.diagnostics
        escalation = variant.escalation
        return replace(
            self, platform=platform, ladders=variant.ladders,
            verify=variant.verify or self.verify,
            # a platform with checks of its own needs fleet checks of its own
            fleet=variant.fleet or (self.fleet if variant.verify is None else None),
            **({} if diagnostics is None else _diagnostics_fields(diagnostics)),
            **({} if escalation is None else _escalation_fields(escalation, self.notify)),
        )

    def ladder_for(self, severity: str | None) -> tuple[str, tuple[Step, ...]]:
        """The ladder for a severity level, falling back to 'default'."""
        if severity and severity in self.ladders:
            return severity, self.ladders[severity]
        return "default", self.ladders["default"]



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


def _matchers(raw: dict[str, Any], source: Path) -> tuple[LabelMatcher, ...]:
    out = []
    for label, want in raw.items():
        if isinstance(want, dict):
            try:
                re.compile(want["regex"])
            except re.error as exc:
                raise InputError(f"invalid regex: {exc}", source=str(source),
                                 field=f"match.{label}.regex") from None
            out.append(LabelMatcher(label, want["regex"], regex=True))
        else:
            out.append(LabelMatcher(label, str(want)))
    return tuple(out)


def _verify(verify: dict[str, Any]) -> Verify:
    return Verify(
        checks=tuple(_check(c) for c in verify["checks"]), playbook=verify.get("playbook"),
        vars=dict(verify.get("vars") or {}),
        stabilisation_seconds=float(verify.get("stabilisation_seconds", 0)),
    )


def _fleet(raw: dict[str, Any] | None) -> Fleet | None:
    if raw is None:
        return None
    return Fleet(checks=tuple(_check(c) for c in raw["checks"]), serial=raw.get("serial"),
                 forks=raw.get("forks"))


def _diagnostics_fields(diagnostics: dict[str, Any]) -> dict[str, Any]:
    return {"diagnostics_enabled": bool(diagnostics.get("enabled", True)),
            "diagnostics_vars": dict(diagnostics.get("vars") or {}),
            "diagnostics_role": diagnostics.get("role", DEFAULT_DIAGNOSTICS_ROLE)}


def _escalation_fields(escalation: dict[str, Any], notify: bool = True) -> dict[str, Any]:
    return {"no_local_fix": bool(escalation.get("no_local_fix", False)),
            "escalation_reason": escalation.get("reason", ""),
            "escalate_after_containment": bool(escalation.get("after_containment", False)),
            "notify": bool(escalation.get("notify", notify))}


def _ladders(raw: dict[str, Any], escalation: dict[str, Any], source: Path,
             where: str = "") -> dict[str, tuple[Step, ...]]:
    ladders = {level: tuple(_step(s) for s in steps) for level, steps in raw.items()}
    if not escalation.get("no_local_fix") and not ladders["default"]:
        raise InputError("an empty ladder needs escalation.no_local_fix: true",
                         source=str(source), field=f"{where}ladders.default")
    return ladders


def _variant(name: str, raw: dict[str, Any], top_escalation: dict[str, Any],
             source: Path) -> PlatformVariant:
    escalation = raw.get("escalation")
    return PlatformVariant(
        ladders=_ladders(raw["ladders"], escalation if escalation is not None else top_escalation,
                         source, f"platforms.{name}."),
        verify=_verify(raw["verify"]) if "verify" in raw else None,
        diagnostics=raw.get("diagnostics"), escalation=escalation,
        fleet=_fleet(raw.get("fleet")),
    )


def parse_scenario(data: Any, source: Path) -> Scenario:
    validate(data, "scenario", str(source))
    if data["id"] != source.stem:
        raise InputError(f"id '{data['id']}' must match the file name '{source.stem}'",
                         source=str(source), field="id")
    escalation = data.get("escalation") or {}
    flap = data.get("flap_guard") or {}
    symptom = data.get("symptom") or {}
    return Scenario(
        id=data["id"], title=data["title"], description=data.get("description", ""),
        source=source, hosts=data["targets"]["hosts"],
        services=tuple(data["targets"].get("services", [])),
        ladders=_ladders(data["ladders"], escalation, source),
        verify=_verify(data["verify"]),
        **_diagnostics_fields(data.get("diagnostics") or {}),
        **_escalation_fields(escalation),
        symptom_checks=tuple(_check(c) for c in symptom.get("checks") or ()),
        confirm=bool(symptom.get("enabled", True)), confirm_reason=symptom.get("reason", ""),
        variants={name: _variant(name, raw, escalation, source)
                  for name, raw in (data.get("platforms") or {}).items()},
        flap_max=flap.get("max_remediations"), flap_window_minutes=flap.get("window_minutes"),
        lock=data.get("lock"), seeds=tuple(data.get("seeds", [])),
        communication=dict(data.get("communication") or {}),
        report=dict(data.get("report") or {}),
        match=_matchers(data.get("match") or {}, source),
        fleet=_fleet(data.get("fleet")),
    )


def load_scenario_file(path: Path) -> Scenario:
    return parse_scenario(load_yaml(path), path)


def catalog_paths(extra: Sequence[Path] = ()) -> list[Path]:
    """Where scenarios come from, lowest precedence first: the shipped catalog, then the
    user's (``scenario_paths`` in the config, then ``--scenarios``): a later path's
    scenario overrides an earlier one with the same id."""
    return [scenarios_dir(), *extra]


def _files(paths: Sequence[Path]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for directory in paths:
        if not directory.is_dir():
            raise InputError("scenario catalog directory not found", source=str(directory),
                             field="--scenarios")
        for path in sorted(directory.glob("*.yml")):
            found[path.stem] = path
    return found


def catalog(extra: Sequence[Path] = ()) -> dict[str, Scenario]:
    """Every scenario of the catalog (shipped + the user's), validated; later paths win."""
    return {name: load_scenario_file(path)
            for name, path in sorted(_files(catalog_paths(extra)).items())}


def find_scenario(name: str, extra: Sequence[Path] = ()) -> Scenario:
    """Load one scenario by id (only its file is parsed)."""
    files = _files(catalog_paths(extra))
    if not name or "/" in name or name.startswith(".") or name not in files:
        known = ", ".join(sorted(files)) or "none"
        raise InputError(f"unknown scenario '{name[:60]}' (known: {known})",
                         source=", ".join(str(p) for p in catalog_paths(extra)),
                         field="--scenario")
    return load_scenario_file(files[name])
