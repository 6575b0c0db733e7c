"""Which drills exist, and what one drill's molecule scenario says.

A drill is the molecule scenario ``molecule/drill-<scenario>/``. Its
``molecule.yml`` is the single description of the drill, read by molecule
(``molecule test -s drill-<scenario>`` by hand) and by ``incident-runner
drill``, which runs the same playbooks without molecule's per-step processes
(:func:`load_spec` reads what molecule would: the host vars, the provisioner's
env and ansible_args, the step playbooks and the test sequence).

The shipped drills' ``molecule.yml`` files are generated from one table,
``molecule/resources/drill/drills.yml`` (see :mod:`incident_runner.drill.scaffold`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from incident_runner.errors import InputError
from incident_runner.paths import project_root

DRILL_PREFIX = "drill-"
STEPS = ("create", "side_effect", "converge", "verify", "destroy")
# Every step of `molecule test` that a role scenario's test_sequence may name; syntax,
# check and idempotence run the converge playbook.
MOLECULE_STEPS = ("destroy", "syntax", "create", "prepare", "check", "converge",
                  "idempotence", "side_effect", "verify", "cleanup")
PLAYBOOK_STEPS = ("create", "prepare", "converge", "side_effect", "verify", "cleanup",
                  "destroy")
# ${NAME} and ${NAME:-default}, as molecule interpolates molecule.yml.
_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


def available_drills(home: Path | None = None) -> list[str]:
    """Scenario names that have a drill (``molecule/drill-<name>/molecule.yml``)."""
    root = (home or project_root()) / "molecule"
    return sorted(p.parent.name.removeprefix(DRILL_PREFIX)
                  for p in root.glob(f"{DRILL_PREFIX}*/molecule.yml"))


def select_drills(names: Iterable[str], home: Path | None = None) -> list[str]:
    known = available_drills(home)
    wanted = list(dict.fromkeys(names)) or known
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise InputError(f"no drill for {', '.join(unknown)} "
                         f"(drills: {', '.join(known) or 'none'})", field="--scenario")
    if not wanted:
        raise InputError("no drills found (molecule/drill-*/molecule.yml)", field="--all")
    return wanted


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Molecule's ``${NAME}`` / ``${NAME:-default}`` substitution (unset and no default: '')."""
    return _VAR.sub(lambda m: env.get(m["name"]) or (m["default"] or ""), text)


@dataclass(frozen=True)
class DrillSpec:
    """One molecule scenario as molecule would run it (paths absolute): a drill, or a
    role scenario run by the test suite (tests/molecule_steps.py)."""

    name: str
    scenario_dir: Path
    host: str
    groups: tuple[str, ...]
    host_vars: dict[str, Any]
    env: dict[str, str]
    ansible_args: tuple[str, ...]
    playbooks: dict[str, Path]
    sequence: tuple[str, ...]
    connection: dict[str, Any] = field(default_factory=dict)
    group_vars: dict[str, dict[str, Any]] = field(default_factory=dict)

    def inventory(self) -> dict[str, Any]:
        """The inventory molecule would generate: the one host, its vars, its groups."""
        host = {self.host: {**self.connection, **self.host_vars}}
        groups: dict[str, Any] = {g: {"hosts": {self.host: None}} for g in self.groups}
        for group, values in self.group_vars.items():
            if group != "all":
                groups.setdefault(group, {})["vars"] = values
        return {"all": {"hosts": host, "vars": self.group_vars.get("all") or {},
                        "children": groups}}


def _field(data: Any, path: str, kind: type, source: Path) -> Any:
    value: Any = data
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    if value is None:
        return kind()
    if not isinstance(value, kind):
        raise InputError(f"{source}: {path} must be a {kind.__name__}", field=path)
    return value


def load_spec(name: str, home: Path, env: Mapping[str, str]) -> DrillSpec:
    """Read ``molecule/drill-<name>/molecule.yml`` with ``env`` interpolated."""
    return load_scenario(home / "molecule" / f"{DRILL_PREFIX}{name}", home, env, STEPS)


def load_scenario(scenario_dir: Path, home: Path, env: Mapping[str, str],
                  steps: tuple[str, ...] = MOLECULE_STEPS) -> DrillSpec:
    """Read ``scenario_dir/molecule.yml`` with ``env`` interpolated; ``steps``: the steps
    its test sequence may name (and the playbooks looked up for them)."""
    source = scenario_dir / "molecule.yml"
    env = {**env, "MOLECULE_PROJECT_DIRECTORY": str(home),
           "MOLECULE_SCENARIO_NAME": scenario_dir.name,
           "MOLECULE_SCENARIO_DIRECTORY": str(scenario_dir)}
    try:
        data = yaml.safe_load(interpolate(source.read_text(encoding="utf-8"), env))
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"{source}: {exc}", field="molecule.yml") from exc
    if not isinstance(data, dict):
        raise InputError(f"{source}: not a mapping", field="molecule.yml")
    platforms = _field(data, "platforms", list, source)
    if len(platforms) != 1 or not isinstance(platforms[0], dict):
        raise InputError(f"{source}: exactly one platform (localhost) is supported",
                         field="platforms")
    host = str(platforms[0].get("name") or "localhost")
    host_vars = _field(data, "provisioner.inventory.host_vars", dict, source).get(host) or {}
    given = _field(data, "provisioner.playbooks", dict, source)
    playbooks = {step: (scenario_dir / str(given.get(step) or f"{step}.yml")).resolve()
                 for step in steps if step in PLAYBOOK_STEPS}
    sequence = tuple(_field(data, "scenario.test_sequence", list, source)) or steps
    unknown = [s for s in sequence if s not in steps]
    if unknown:
        raise InputError(f"{source}: scenario.test_sequence: unknown step(s) {unknown} "
                         f"(supported: {', '.join(steps)})", field="scenario.test_sequence")
    return DrillSpec(
        name=scenario_dir.name.removeprefix(DRILL_PREFIX), scenario_dir=scenario_dir, host=host,
        groups=tuple(str(g) for g in platforms[0].get("groups") or ()),
        host_vars=dict(host_vars),
        env={str(k): str(v) for k, v in _field(data, "provisioner.env", dict, source).items()},
        ansible_args=tuple(str(a) for a in _field(data, "provisioner.ansible_args", list, source)),
        playbooks=playbooks, sequence=sequence,
        connection=dict(_field(data, "driver.options.ansible_connection_options", dict, source)),
        group_vars=dict(_field(data, "provisioner.inventory.group_vars", dict, source)))
