"""Input validation of files without running anything: scenarios, the config, inventories.

``validate_files`` is the API behind ``incident-runner validate``. Every file is
checked and reported (one bad file does not hide the next); each problem is
one line naming the file and the field.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from incident_runner.ansible_env import ansible_tool, base_env
from incident_runner.config import CONFIG_FILE, Config, find_config, load_config, parse_config
from incident_runner.errors import InputError
from incident_runner.paths import default_inventory, scenarios_dir
from incident_runner.scenario import load_scenario_file
from incident_runner.validation import load_yaml

LOG = logging.getLogger(__name__)

INVENTORY_TIMEOUT = 120
CONFIG_KEYS = {"severity", "default_severity", "safety"}
INVENTORY_KEYS = {"hosts", "children", "vars"}
YAML_SUFFIXES = {".yml", ".yaml"}
_ERROR_LINE = re.compile(r"^(?:\[ERROR\]:|ERROR!)\s*(.*)$")
_PLUGIN_FAIL = re.compile(r"Failed to parse inventory with '([a-z_.]+)' plugin: (.*)$")


@dataclass
class FileCheck:
    """The outcome for one file: ok, or the one-line error."""

    path: str
    kind: str  # scenario | config | inventory | yaml
    ok: bool
    detail: str = ""
    error: str = ""
    notes: list[str] = field(default_factory=list)


@dataclass
class ValidationReport:
    checks: list[FileCheck]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def invalid(self) -> list[FileCheck]:
        return [c for c in self.checks if not c.ok]

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": len(self.checks), "invalid": len(self.invalid),
                "files": [asdict(c) for c in self.checks]}


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# -- kinds -------------------------------------------------------------------
def detect_kind(path: Path) -> str:
    """scenario, config, catalog (a scenarios dir), or inventory; a YAML error raises."""
    if path.is_dir():
        return "catalog" if path.name == "scenarios" else "inventory"
    if path.suffix in YAML_SUFFIXES:
        if path.parent.name == "scenarios":
            return "scenario"
        if path.name == CONFIG_FILE:
            return "config"
        return _yaml_kind(load_yaml(path))  # a syntax error is reported against the file
    return "inventory"  # ini, script, or anything ansible-inventory understands


def _yaml_kind(data: Any) -> str:
    if not isinstance(data, dict) or not data:
        return "inventory"
    if "ladders" in data or {"id", "verify"} <= set(data):
        return "scenario"
    if set(data) & CONFIG_KEYS or not _inventory_shaped(data):
        return "config"  # a typo in a config key must not pass as an empty inventory
    return "inventory"


def _inventory_shaped(data: dict[Any, Any]) -> bool:
    """An Ansible YAML inventory (groups of hosts/children/vars) or a plugin config."""
    if "plugin" in data:
        return True
    return all(group is None or (isinstance(group, dict) and set(group) <= INVENTORY_KEYS)
               for group in data.values())


def check_scenario(path: Path) -> FileCheck:
    scenario = load_scenario_file(path)
    steps = sum(len(steps) for steps in scenario.ladders.values())
    ladders = ", ".join(f"{name}: {len(steps)}" for name, steps in scenario.ladders.items())
    return FileCheck(_shown(path), "scenario", True,
                     detail=f"{scenario.id}: {steps} step(s) in ladders ({ladders})")


def _config_detail(config: Config) -> str:
    safety = config.safety
    timeout = (f"{safety.incident_timeout_minutes:g} min" if safety.incident_timeout_minutes
               else "none")
    return (f"scale {config.scale.name}: {', '.join(config.scale.names)}; "
            f"default severity: {config.default_severity or 'none (unrated)'}; "
            f"flap guard: {safety.flap_max} per {safety.flap_window_minutes:g} min; "
            f"incident timeout: {timeout}")


def check_config(path: Path) -> tuple[FileCheck, Config]:
    config = parse_config(load_yaml(path), path)
    return FileCheck(_shown(path), "config", True, detail=_config_detail(config)), config


def _inventory_env() -> dict[str, str]:
    return {
        **os.environ, **base_env(),
        # Unparseable sources are warnings by default (and an implicit localhost remains):
        # make them fatal, so a broken inventory is reported, not silently empty.
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "1",
        "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "1",
    }


def _inventory_error(stderr: str, path: Path) -> str:
    """One line from ansible-inventory's stderr: the error and the plugin's reason."""
    lines = [line.strip() for line in stderr.splitlines()]
    errors = [m.group(1) for m in map(_ERROR_LINE.match, lines) if m and m.group(1)]
    reasons = {m.group(1): m.group(2) for m in map(_PLUGIN_FAIL.search, lines) if m}
    plugin = "yaml" if path.suffix in YAML_SUFFIXES else "ini"
    reason = reasons.get(plugin) or next(iter(reasons.values()), "")
    message = errors[0] if errors else (lines[-1] if lines and lines[-1] else "failed")
    if reason and reason not in message:
        message = f"{message}: {reason}"
    message = " ".join(message.split())
    return message if len(message) <= 300 else message[:297] + "..."


def _vars_files(inventory: Path) -> Iterable[Path]:
    """YAML files Ansible reads from an inventory dir (parsed here to name file and line)."""
    if not inventory.is_dir():
        return []
    found: list[Path] = []
    for sub in ("group_vars", "host_vars"):
        base = inventory / sub
        if base.is_dir():
            found += sorted(p for p in base.rglob("*") if p.suffix in YAML_SUFFIXES and p.is_file())
    found += sorted(p for p in inventory.iterdir() if p.suffix in YAML_SUFFIXES and p.is_file())
    return found


def check_inventory(path: Path) -> FileCheck:
    """Parse the inventory the way the runner will: ``ansible-inventory -i PATH --list``."""
    if not path.exists():
        raise InputError("inventory not found", source=str(path), field="inventory")
    for vars_file in _vars_files(path):
        load_yaml(vars_file)
    argv = [ansible_tool("ansible-inventory"), "-i", str(path), "--list"]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, env=_inventory_env(),
                              timeout=INVENTORY_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise InputError(f"ansible-inventory did not finish within {INVENTORY_TIMEOUT}s",
                         source=str(path)) from None
    if proc.returncode != 0:
        raise InputError(_inventory_error(proc.stderr, path), source=str(path), field="inventory")
    hosts = _host_count(proc.stdout)
    return FileCheck(_shown(path), "inventory", True, detail=f"{hosts} host(s)")


def _host_count(listing: str) -> int | str:
    try:
        data = json.loads(listing)
    except ValueError:
        return "?"
    hostvars = (data.get("_meta") or {}).get("hostvars") if isinstance(data, dict) else None
    return len(hostvars) if isinstance(hostvars, dict) else "?"


# -- the API -----------------------------------------------------------------
def _checked(kind: str, path: Path, func: Any) -> FileCheck:
    try:
        result: FileCheck = func(path)
    except InputError as exc:
        return FileCheck(_shown(path), kind, False, error=exc.message)
    return result


def _check_one(path: Path, kind: str | None = None) -> list[FileCheck]:
    try:
        kind = kind or detect_kind(path)
    except InputError as exc:
        return [FileCheck(_shown(path), "yaml", False, error=exc.message)]
    if kind == "catalog":
        files = sorted(path.glob("*.yml"))
        if not files:
            return [FileCheck(_shown(path), "catalog", False,
                              error=f"{path}: no scenario files (*.yml)")]
        return [_checked("scenario", f, check_scenario) for f in files]
    if kind == "scenario":
        return [_checked("scenario", path, check_scenario)]
    if kind == "config":
        return [_checked("config", path, lambda p: check_config(p)[0])]
    return [_checked("inventory", path, check_inventory)]


def _unused_ladders(checks: list[FileCheck], config: Config) -> None:
    """Note scenario ladders that no level of the active scale selects."""
    wanted = {lv.ladder or lv.name for lv in config.scale.levels} | {"default"}
    for check in checks:
        if check.kind != "scenario" or not check.ok:
            continue
        try:
            scenario = load_scenario_file(Path(check.path))
        except InputError:
            continue
        for name in sorted(set(scenario.ladders) - wanted):
            check.notes.append(f"ladder '{name}' is not selected by any level of scale "
                               f"{config.scale.name}")


def validate_files(paths: Iterable[Path] = (), config: str | os.PathLike[str] | None = None,
                   ) -> ValidationReport:
    """Check the given files; with none, the catalog, the config in effect and the default
    inventory."""
    given = list(paths)
    checks: list[FileCheck] = []
    if given:
        for path in given:
            checks += _check_one(path)
        return ValidationReport(checks)
    checks += _check_one(scenarios_dir(), "catalog")
    active: Config | None = None
    try:
        found = find_config(config)
    except InputError as exc:
        checks.append(FileCheck(str(config or os.environ.get("INCIDENT_RUNNER_CONFIG", "")),
                                "config", False, error=exc.message))
    else:
        if found is None:
            active = load_config(None)
            checks.append(FileCheck("(no config file)", "config", True,
                                    detail=f"built-in defaults; {_config_detail(active)}"))
        else:
            try:
                check, active = check_config(found)
            except InputError as exc:
                check = FileCheck(_shown(found), "config", False, error=exc.message)
            checks.append(check)
    if active is not None:
        _unused_ladders(checks, active)
    checks += _check_one(default_inventory(), "inventory")
    return ValidationReport(checks)
