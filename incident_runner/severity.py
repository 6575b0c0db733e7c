"""Severity as configuration: scales ship as presets, a config file picks and adjusts one.

The five seed runbooks use colliding scales (P1 is "critical" to some and
"major" to others), so a level is only meaningful inside its scale. A scale
is a preset (``incident_runner/presets/<name>.yml``) optionally adjusted by
the config file (``incident-runner.yml``)::

    severity:
      preset: sev-1-sev-3
      levels:
        - name: SEV-2                     # known name: fields override the preset
          escalation_window_minutes: 20
        - name: SEV-4                     # new name: a complete level, appended
          label: Informational
          response_time_minutes: null
          escalation_window_minutes: null
          contacts: [backlog]
    default_severity: SEV-2

The config is found at ``--config PATH``, else ``$INCIDENT_RUNNER_CONFIG``,
else ``./incident-runner.yml`` in the working directory, else
``incident-runner.yml`` in the project root; without one the built-in preset
``p0-p3`` applies and incidents without ``--severity`` are unrated.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from incident_runner.errors import InputError
from incident_runner.paths import project_root
from incident_runner.safety import SafetySettings
from incident_runner.validation import load_yaml, validate

LOG = logging.getLogger(__name__)

CONFIG_ENV = "INCIDENT_RUNNER_CONFIG"
CONFIG_FILE = "incident-runner.yml"
DEFAULT_PRESET = "p0-p3"
LEVEL_REQUIRED = ("label", "response_time_minutes", "escalation_window_minutes", "contacts")


@dataclass(frozen=True)
class Level:
    """One severity level of one scale; times are minutes, None = no target."""

    name: str
    label: str
    scale: str
    rank: int  # 0 = most severe in its scale
    response_time_minutes: float | None
    escalation_window_minutes: float | None
    contacts: tuple[str, ...]
    definition: str = ""
    update_cadence_minutes: float | None = None
    resolution_target_minutes: float | None = None
    ladder: str | None = None

    def info(self) -> dict[str, Any]:
        """What the incident records about its severity (``severity_info``)."""
        return {
            "level": self.name, "label": self.label, "scale": self.scale, "rank": self.rank,
            "definition": self.definition,
            "response_time_minutes": self.response_time_minutes,
            "escalation_window_minutes": self.escalation_window_minutes,
            "update_cadence_minutes": self.update_cadence_minutes,
            "resolution_target_minutes": self.resolution_target_minutes,
            "contacts": list(self.contacts), "ladder": self.ladder,
        }


@dataclass(frozen=True)
class SeverityScale:
    """An ordered scale of levels, most severe first."""

    name: str
    description: str
    levels: tuple[Level, ...]

    @property
    def names(self) -> list[str]:
        return [level.name for level in self.levels]

    def get(self, name: str) -> Level | None:
        """The level called ``name`` (case-insensitive: ``p1`` is ``P1``)."""
        wanted = name.strip().casefold()
        return next((lv for lv in self.levels if lv.name.casefold() == wanted), None)


@dataclass(frozen=True)
class Config:
    """The runner's configuration: the severity scale and run defaults."""

    source: Path | None  # None: no config file, built-in defaults
    scale: SeverityScale
    default_severity: str | None = None
    safety: SafetySettings = field(default_factory=SafetySettings)

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


# -- presets -----------------------------------------------------------------
def _presets_dir() -> Any:
    return resources.files("incident_runner.presets")


def preset_names() -> list[str]:
    return sorted(entry.name.removesuffix(".yml") for entry in _presets_dir().iterdir()
                  if entry.name.endswith(".yml"))


def _minutes(value: Any) -> float | None:
    return None if value is None else float(value)


def _level(raw: dict[str, Any], scale: str, rank: int) -> Level:
    return Level(
        name=raw["name"], label=raw["label"], scale=scale, rank=rank,
        response_time_minutes=_minutes(raw["response_time_minutes"]),
        escalation_window_minutes=_minutes(raw["escalation_window_minutes"]),
        contacts=tuple(raw["contacts"]), definition=raw.get("definition", ""),
        update_cadence_minutes=_minutes(raw.get("update_cadence_minutes")),
        resolution_target_minutes=_minutes(raw.get("resolution_target_minutes")),
        ladder=raw.get("ladder"),
    )


def _check_unique(levels: list[dict[str, Any]], source: str, prefix: str) -> None:
    seen: set[str] = set()
    for i, raw in enumerate(levels):
        key = raw["name"].casefold()
        if key in seen:
            raise InputError(f"duplicate level '{raw['name']}' (names are case-insensitive)",
                             source=source, field=f"{prefix}.{i}.name")
        seen.add(key)


def _preset_levels(name: str, source: str, field: str) -> tuple[str, list[dict[str, Any]]]:
    """A shipped preset's description and raw levels, validated."""
    if name not in preset_names():
        raise InputError(f"unknown severity preset '{name}' (known: {', '.join(preset_names())})",
                         source=source, field=field)
    entry = _presets_dir().joinpath(f"{name}.yml")
    where = f"preset {name}"
    try:
        data = yaml.safe_load(entry.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InputError(f"invalid YAML in shipped preset: {exc}", source=where) from None
    validate(data, "preset", where)
    if data["name"] != name:
        raise InputError(f"name '{data['name']}' must match the file name '{name}'",
                         source=where, field="name")
    _check_unique(data["levels"], where, "levels")
    return str(data["description"]), [dict(raw) for raw in data["levels"]]


def load_preset(name: str) -> SeverityScale:
    """One shipped preset as a scale."""
    description, levels = _preset_levels(name, "presets", "name")
    return SeverityScale(name=name, description=description,
                         levels=tuple(_level(raw, name, i) for i, raw in enumerate(levels)))


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
    config = Config(source=source, scale=scale, default_severity=data.get("default_severity"),
                    safety=safety)
    level = config.level(None)  # an unknown default raises InputError naming default_severity
    if level is not None:  # store the canonical spelling (p2 -> P2)
        config = Config(source=source, scale=scale, default_severity=level.name, safety=safety)
    return config


def load_config(explicit: str | os.PathLike[str] | None = None) -> Config:
    """The configuration in effect (see ``find_config``); built-in defaults without a file."""
    path = find_config(explicit)
    if path is None:
        LOG.debug("no %s found; using built-in preset %s", CONFIG_FILE, DEFAULT_PRESET)
        return Config(source=None, scale=load_preset(DEFAULT_PRESET))
    LOG.debug("config: %s", path)
    return parse_config(load_yaml(path), path)
