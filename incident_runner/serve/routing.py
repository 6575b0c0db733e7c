"""Alert payloads -> normalised alerts -> a scenario, a severity and a target.

Label values are data: they are matched, compared and passed on as argv
items or JSON, never formatted into a shell string or a template.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from incident_runner.scenario import Scenario
from incident_runner.serve.settings import GenericMapping, ServeSettings

# An inventory host name for --limit: no patterns (*, !, &, ","), no @file, no leading "-".
HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")
MAX_LABELS = 64
MAX_VALUE = 4096


class PayloadError(ValueError):
    """A request body we refuse (400): the message is one line naming the field."""


@dataclass(frozen=True)
class Alert:
    source: str  # alertmanager | generic
    status: str  # firing | resolved
    group_key: str
    fingerprint: str
    starts_at: str
    labels: dict[str, str]
    annotations: dict[str, str]

    @property
    def dedupe_key(self) -> str:
        return self.group_key or self.fingerprint

    def as_file(self) -> dict[str, Any]:
        """What `remediate --alert-file` reads (incident_runner.serve.alertfile)."""
        return {"source": self.source, "group_key": self.group_key,
                "fingerprint": self.fingerprint, "starts_at": self.starts_at,
                "labels": self.labels, "annotations": self.annotations}


@dataclass(frozen=True)
class Route:
    disposition: str  # queued | resolved | no-scenario | bad-target
    scenario: str | None = None
    severity: str | None = None
    host: str | None = None
    service: str | None = None
    reason: str = ""


def _str_map(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(f"{where}: expected an object")
    if len(value) > MAX_LABELS:
        raise PayloadError(f"{where}: more than {MAX_LABELS} entries")
    out = {}
    for key, item in value.items():
        if not isinstance(item, str):
            raise PayloadError(f"{where}.{key[:60]}: expected a string")
        if len(item) > MAX_VALUE:
            raise PayloadError(f"{where}.{key[:60]}: longer than {MAX_VALUE} characters")
        out[key] = item
    return out


def _fingerprint(labels: dict[str, str]) -> str:
    blob = json.dumps(labels, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_alertmanager(body: Any) -> list[Alert]:
    """An Alertmanager webhook payload (version 4) -> its alerts."""
    if not isinstance(body, dict):
        raise PayloadError("body: expected a JSON object (Alertmanager webhook payload)")
    version = body.get("version", "4")
    if version != "4":
        raise PayloadError(f"version: expected \"4\", got {str(version)[:20]!r}")
    alerts = body.get("alerts")
    if not isinstance(alerts, list):
        raise PayloadError("alerts: expected a list")
    group_key = body.get("groupKey", "")
    if not isinstance(group_key, str):
        raise PayloadError("groupKey: expected a string")
    out = []
    for i, raw in enumerate(alerts):
        if not isinstance(raw, dict):
            raise PayloadError(f"alerts.{i}: expected an object")
        status = raw.get("status", body.get("status"))
        if status not in ("firing", "resolved"):
            raise PayloadError(f"alerts.{i}.status: expected firing or resolved")
        labels = _str_map(raw.get("labels"), f"alerts.{i}.labels")
        fingerprint = raw.get("fingerprint") or _fingerprint(labels)
        starts_at = raw.get("startsAt") or _now()
        if not isinstance(fingerprint, str) or not isinstance(starts_at, str):
            raise PayloadError(f"alerts.{i}: fingerprint and startsAt must be strings")
        out.append(Alert("alertmanager", status, group_key[:1000], fingerprint[:200],
                         starts_at[:64], labels,
                         _str_map(raw.get("annotations"), f"alerts.{i}.annotations")))
    return out


def _lookup(body: Any, path: str) -> Any:
    node = body
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _scalar(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool | int | float | str):
        return str(value)[:MAX_VALUE]
    raise PayloadError(f"{where}: expected a string or number")


def parse_generic(body: Any, mapping: GenericMapping) -> list[Alert]:
    """A JSON body from an uptime monitor or error tracker, mapped by configured field paths."""
    if not isinstance(body, dict):
        raise PayloadError("body: expected a JSON object")
    labels = {}
    for label, path in mapping.labels.items():
        value = _scalar(_lookup(body, path), path)
        if value is not None:
            labels[label] = value
    if not labels.get("alertname"):
        raise PayloadError(f"{mapping.labels.get('alertname', 'alertname')}: missing "
                           "(mapped to the alertname label)")
    raw_status = (_scalar(_lookup(body, mapping.status), mapping.status) or "firing").lower()
    status = "firing" if raw_status in mapping.firing_values or raw_status == "firing" \
        else "resolved"
    annotations = {}
    for name, path in mapping.annotations.items():
        value = _scalar(_lookup(body, path), path)
        if value is not None:
            annotations[name] = value
    fingerprint = _scalar(_lookup(body, mapping.fingerprint), mapping.fingerprint) \
        or _fingerprint(labels)
    group_key = _scalar(_lookup(body, mapping.group_key), mapping.group_key) or ""
    starts_at = _scalar(_lookup(body, mapping.starts_at), mapping.starts_at) or _now()
    return [Alert("generic", status, group_key[:1000], fingerprint[:200], starts_at[:64],
                  labels, annotations)]


def route(alert: Alert, scenarios: dict[str, Scenario], settings: ServeSettings,
          levels: dict[str, str]) -> Route:
    """Pick the scenario (most matchers wins; a tie is not guessed), severity and target.

    ``levels`` maps casefolded level names of the configured scale to their spelling.
    """
    hits = sorted((s for s in scenarios.values() if s.matches(alert.labels)),
                  key=lambda s: -len(s.match))
    tied = len(hits) > 1 and len(hits[0].match) == len(hits[1].match)
    if alert.status == "resolved":  # the scenario only finds the open incident it belongs to
        return Route("resolved", scenario=hits[0].id if hits and not tied else None,
                     reason="resolved alerts are recorded, never start work")
    if not hits:
        return Route("no-scenario", reason="no scenario's match: block fits the labels")
    if tied:
        names = ", ".join(s.id for s in hits if len(s.match) == len(hits[0].match))
        return Route("no-scenario", reason=f"ambiguous: equally specific scenarios {names}")
    scenario = hits[0]
    severity = None
    raw_level = alert.labels.get(settings.severity_label)
    if raw_level is not None:
        mapped = settings.severity_map.get(raw_level, raw_level)
        severity = levels.get(mapped.casefold())
    host = alert.labels.get(settings.host_label) if settings.host_label else None
    if host is not None and not HOST_NAME.fullmatch(host):
        return Route("bad-target", scenario=scenario.id,
                     reason=f"label {settings.host_label} is not a plain inventory host name")
    service = alert.labels.get(settings.service_label) if settings.service_label else None
    return Route("queued", scenario=scenario.id, severity=severity, host=host, service=service)
