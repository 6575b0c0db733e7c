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
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from incident_runner.errors import InputError
from incident_runner.validation import validate

LOG = logging.getLogger(__name__)

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


