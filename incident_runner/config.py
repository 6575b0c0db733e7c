"""The runner's configuration (``incident-runner.yml``): found, validated, frozen.

Holds the severity scale in effect, the safety settings and where user
scenario catalogs live. Imports nothing stateful: loading the config never
opens the history or a lock.

The config is found at ``--config PATH``, else ``$INCIDENT_RUNNER_CONFIG``,
else ``./incident-runner.yml`` in the working directory, else
``incident-runner.yml`` in the project root; without one the built-in preset
``p0-p3`` applies and incidents without ``--severity`` are unrated.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from incident_runner.errors import InputError
from incident_runner.paths import project_root
from incident_runner.severity import (
    DEFAULT_PRESET,
    LEVEL_REQUIRED,
    Level,
    SeverityScale,
    _check_unique,
    _level,
    _preset_levels,
    load_preset,
)
from incident_runner.validation import load_yaml, validate

LOG = logging.getLogger(__name__)

CONFIG_ENV = "INCIDENT_RUNNER_CONFIG"
CONFIG_FILE = "incident-runner.yml"
DEFAULT_FLAP_MAX = 3
DEFAULT_FLAP_WINDOW_MINUTES = 60.0
DEFAULT_INCIDENT_TIMEOUT_MINUTES = 60.0
DEFAULT_APPROVAL_TIMEOUT_SECONDS = 300.0


@dataclass(frozen=True)
class SafetySettings:
    """The ``safety:`` section of incident-runner.yml (all optional)."""

    flap_max: int = DEFAULT_FLAP_MAX
    flap_window_minutes: float = DEFAULT_FLAP_WINDOW_MINUTES
    incident_timeout_minutes: float | None = DEFAULT_INCIDENT_TIMEOUT_MINUTES
    approval_timeout_seconds: float = DEFAULT_APPROVAL_TIMEOUT_SECONDS
    secret_env: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, raw: Any) -> SafetySettings:
        """Build from the (schema-validated) ``safety`` mapping; missing keys keep defaults."""
        if not isinstance(raw, dict):
            return cls()
        flap = raw.get("flap_guard") or {}
        timeout = raw.get("incident_timeout_minutes", DEFAULT_INCIDENT_TIMEOUT_MINUTES)
        return cls(
            flap_max=int(flap.get("max_remediations", DEFAULT_FLAP_MAX)),
            flap_window_minutes=float(flap.get("window_minutes", DEFAULT_FLAP_WINDOW_MINUTES)),
            incident_timeout_minutes=None if timeout is None else float(timeout),
            approval_timeout_seconds=float(raw.get("approval_timeout_seconds",
                                                   DEFAULT_APPROVAL_TIMEOUT_SECONDS)),
            secret_env=tuple(str(n) for n in raw.get("secret_env") or ()),
        )



@dataclass(frozen=True)
class Config:
    """The runner's configuration: the severity scale and run defaults."""

    source: Path | None  # None: no config file, built-in defaults
    scale: SeverityScale
    default_severity: str | None = None
    safety: SafetySettings = field(default_factory=SafetySettings)
    scenario_paths: tuple[Path, ...] = ()
    state_url: str | None = None  # postgresql://... shares the state (incident_runner.store)

    @property
    def origin(self) -> str:
        return str(self.source) if self.source else f"built-in preset {self.scale.name}"

    def level(self, requested: str | None, flag: str = "--severity") -> Level | None:
        """Resolve a requested level (or the default); None when the incident is unrated."""
        name = requested if requested is not None else self.default_severity
        if name is None:
            return None
        level = self.scale.get(name) if name.strip() else None
        if level is None:
            raise InputError(
                f"unknown severity '{name[:40]}' (valid levels in {self.scale.name}: "
                f"{', '.join(self.scale.names)})",
                source=self.origin, field=flag if requested is not None else "default_severity")
        return level


# -- the config file ---------------------------------------------------------
def _existing(path: Path, field: str) -> Path:
    if path.is_dir():
        raise InputError("is a directory, expected a config file", source=str(path), field=field)
    if not path.is_file():
        raise InputError("config file not found", source=str(path), field=field)
    return path


def find_config(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The config file in effect: --config, $INCIDENT_RUNNER_CONFIG, ./, project root."""
    if explicit:
        return _existing(Path(explicit), "--config")
    env = os.environ.get(CONFIG_ENV)
    if env:
        return _existing(Path(env), f"${CONFIG_ENV}")
    for candidate in (Path.cwd() / CONFIG_FILE, project_root() / CONFIG_FILE):
        if candidate.is_file():
            return candidate
    return None


def _merge_levels(preset: str | None, overrides: list[dict[str, Any]],
                  source: str) -> tuple[str, str, list[dict[str, Any]]]:
    """Apply the config's levels to the preset: override by name, append new ones."""
    if preset:
        description, merged = _preset_levels(preset, source, "severity.preset")
        name = preset
    else:
        description, merged, name = "levels defined in the config file", [], "custom"
    _check_unique(overrides, source, "severity.levels")
    for i, raw in enumerate(overrides):
        current = next((lv for lv in merged if lv["name"].casefold() == raw["name"].casefold()),
                       None)
        if current is not None:
            current.update({k: v for k, v in raw.items() if k != "name"})
            continue
        missing = [key for key in LEVEL_REQUIRED if key not in raw]
        if missing:
            known = f"not in preset {preset}" if preset else "a new level"
            raise InputError(f"level '{raw['name']}' is {known}, so it needs every field; "
                             f"missing: {', '.join(missing)}",
                             source=source, field=f"severity.levels.{i}")
        merged.append(dict(raw))
    if preset and overrides:
        name = f"{preset}+config"
    return name, description, merged


def parse_config(data: Any, source: Path) -> Config:
    """Validate a parsed config file and build the scale it selects."""
    if data is None:  # an empty file: all defaults
        data = {}
    validate(data, "config", str(source))
    severity = data.get("severity") or {}
    preset = severity.get("preset")
    overrides = [dict(raw) for raw in severity.get("levels") or []]
    if not preset and not overrides:
        preset = DEFAULT_PRESET
    name, description, levels = _merge_levels(preset, overrides, str(source))
    scale = SeverityScale(name=name, description=description,
                          levels=tuple(_level(raw, name, i) for i, raw in enumerate(levels)))
    safety = SafetySettings.from_config(data.get("safety"))
    paths = tuple((source.parent / p).resolve() for p in data.get("scenario_paths") or ())
    for i, path in enumerate(paths):
        if not path.is_dir():
            raise InputError(f"not a directory: {path}", source=str(source),
                             field=f"scenario_paths.{i}")
    config = Config(source=source, scale=scale, default_severity=data.get("default_severity"),
                    safety=safety, scenario_paths=paths, state_url=data.get("state_url"))
    level = config.level(None)  # an unknown default raises InputError naming default_severity
    if level is not None:  # store the canonical spelling (p2 -> P2)
        config = replace(config, default_severity=level.name)
    return config


def load_config(explicit: str | os.PathLike[str] | None = None) -> Config:
    """The configuration in effect (see ``find_config``); built-in defaults without a file."""
    path = find_config(explicit)
    if path is None:
        LOG.debug("no %s found; using built-in preset %s", CONFIG_FILE, DEFAULT_PRESET)
        return Config(source=None, scale=load_preset(DEFAULT_PRESET))
    LOG.debug("config: %s", path)
    return parse_config(load_yaml(path), path)
