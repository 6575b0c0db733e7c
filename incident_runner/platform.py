"""Which platform an inventory's target hosts are: ``incident_runner_platform``.

A group (or host) var says it, e.g. ``incident_runner_platform: systemd``;
unset means ``docker``. YAML inventories (a file or a directory with
``group_vars/`` and ``host_vars/``) are read directly: ``ansible-inventory``
costs about a CPU-second, so it is only the fallback for other inventories
(INI, scripts, plugins) and for host patterns beyond a plain group or host name.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from incident_runner.errors import InputError
from incident_runner.scenario import DEFAULT_PLATFORM

LOG = logging.getLogger(__name__)

PLATFORM_VAR = "incident_runner_platform"
SIMPLE_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+$")
YAML_SUFFIXES = (".yml", ".yaml")


class _Loader(yaml.SafeLoader):
    """Safe YAML that reads ``!vault`` and other tagged values as opaque."""


_Loader.add_multi_constructor("!", lambda _loader, _suffix, _node: None)


class _NotNativeError(Exception):
    """The inventory needs Ansible's own parser."""


def _load(path: Path) -> Any:
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506 (safe subclass)
    except (OSError, yaml.YAMLError) as exc:
        raise _NotNativeError(str(exc)) from exc


def _vars_from(directory: Path, name: str) -> dict[str, Any]:
    """group_vars/NAME.yml, or every YAML file under group_vars/NAME/."""
    found: dict[str, Any] = {}
    for path in [directory / f"{name}{s}" for s in YAML_SUFFIXES] + sorted(
            (directory / name).glob("*.y*ml") if (directory / name).is_dir() else []):
        data = _load(path) if path.is_file() else None
        if isinstance(data, dict):
            found.update(data)
    return found


class _Tree:
    """Groups, hosts and vars of YAML inventory sources (enough for one var)."""

    def __init__(self) -> None:
        self.group_vars: dict[str, dict[str, Any]] = {"all": {}}
        self.children: dict[str, set[str]] = {"all": set()}
        self.hosts: dict[str, set[str]] = {"all": set()}
        self.host_vars: dict[str, dict[str, Any]] = {}

    def add_group(self, name: str, body: Any) -> None:
        if body is not None and not isinstance(body, dict):
            raise _NotNativeError(f"group {name} is not a mapping")
        body = body or {}
        self.group_vars.setdefault(name, {}).update(body.get("vars") or {})
        self.children.setdefault(name, set())
        self.hosts.setdefault(name, set())
        for host, hvars in (body.get("hosts") or {}).items():
            self.hosts[name].add(str(host))
            self.host_vars.setdefault(str(host), {}).update(hvars or {})
        for child, child_body in (body.get("children") or {}).items():
            self.children[name].add(str(child))
            self.add_group(str(child), child_body)

    def depth(self, group: str) -> int:
        parents = [g for g, kids in self.children.items() if group in kids]
        return 0 if group == "all" or not parents else 1 + max(self.depth(p) for p in parents)

    def members(self, group: str) -> set[str]:
        out = set(self.hosts.get(group, set()))
        for child in self.children.get(group, set()):
            out |= self.members(child)
        return out

    def groups_of(self, host: str) -> list[str]:
        return [g for g in self.hosts if host in self.members(g)] + ["all"]

    def value(self, host: str) -> Any:
        if PLATFORM_VAR in self.host_vars.get(host, {}):
            return self.host_vars[host][PLATFORM_VAR]
        for group in sorted(set(self.groups_of(host)), key=self.depth, reverse=True):
            if PLATFORM_VAR in self.group_vars.get(group, {}):
                return self.group_vars[group][PLATFORM_VAR]
        return DEFAULT_PLATFORM


def _native(inventory: Path, pattern: str) -> dict[str, Any]:
    if not SIMPLE_PATTERN.match(pattern):
        raise _NotNativeError("host pattern")
    base = inventory if inventory.is_dir() else inventory.parent
    sources = ([p for p in sorted(inventory.iterdir()) if p.is_file()]
               if inventory.is_dir() else [inventory])
    tree = _Tree()
    for source in sources:
        if source.name.startswith(".") or source.suffix in {".md", ".txt", ".cfg"}:
            continue
        if source.suffix not in YAML_SUFFIXES:
            raise _NotNativeError(f"{source.name} is not YAML")
        data = _load(source)
        if not isinstance(data, dict) or "plugin" in data:
            raise _NotNativeError(f"{source.name} is not a YAML host list")
        for name, body in data.items():
            tree.add_group(str(name), body)
    for group in list(tree.group_vars):
        tree.group_vars[group].update(_vars_from(base / "group_vars", group))
    for host in list(tree.host_vars):
        tree.host_vars[host].update(_vars_from(base / "host_vars", host))
    hosts = tree.members(pattern) if pattern in tree.hosts else (
        {pattern} if pattern in tree.host_vars else set())
    return {host: tree.value(host) for host in hosts}


def _ansible_inventory(inventory: Path, pattern: str) -> dict[str, Any]:
    beside = Path(sys.executable).parent / "ansible-inventory"  # the venv's, as the executor
    program = str(beside) if beside.is_file() else (shutil.which("ansible-inventory") or
                                                    "ansible-inventory")
    try:
        out = subprocess.run(
            [program, "-i", str(inventory), "--list"],
            capture_output=True, text=True, check=True, timeout=120,
        ).stdout
        data = json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise InputError(f"cannot read the inventory ({exc})", source=str(inventory),
                         field="--inventory") from exc
    hostvars = data.get("_meta", {}).get("hostvars", {})

    def members(group: str) -> set[str]:
        body = data.get(group) or {}
        out = set(body.get("hosts") or [])
        for child in body.get("children") or []:
            out |= members(child)
        return out

    hosts = members(pattern) if pattern in data else ({pattern} if pattern in hostvars else set())
    return {h: (hostvars.get(h) or {}).get(PLATFORM_VAR, DEFAULT_PLATFORM) for h in hosts}


def platform_of(inventory: Path, pattern: str) -> str:
    """The platform of the hosts ``pattern`` selects; one platform per incident."""
    try:
        found = _native(inventory, pattern)
    except _NotNativeError as exc:
        LOG.debug("inventory %s read by ansible-inventory: %s", inventory, exc)
        found = _ansible_inventory(inventory, pattern)
    platforms = sorted({str(v) for v in found.values()})
    if len(platforms) > 1:
        per_host = ", ".join(f"{h}={found[h]}" for h in sorted(found))
        raise InputError(f"hosts of '{pattern}' are on different platforms ({per_host}); "
                         "one incident runs on one platform", source=str(inventory),
                         field=PLATFORM_VAR)
    return platforms[0] if platforms else DEFAULT_PLATFORM
