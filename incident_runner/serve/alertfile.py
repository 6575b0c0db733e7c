"""The alert file `serve` hands to `remediate --alert-file`: the alert that opened an incident."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from incident_runner.errors import InputError

# field -> type; every field is required so the report never guesses an impact start.
ALERT_FIELDS: dict[str, type] = {
    "source": str, "group_key": str, "fingerprint": str, "starts_at": str,
    "labels": dict, "annotations": dict,
}


def check_alert(data: Any, source: str) -> dict[str, Any]:
    """The alert as a dict, or InputError naming the file and the field."""
    if not isinstance(data, dict):
        raise InputError("expected a JSON object", source=source, field="--alert-file")
    for name, kind in ALERT_FIELDS.items():
        if name not in data:
            raise InputError("missing", source=source, field=name)
        if not isinstance(data[name], kind):
            raise InputError(f"expected {kind.__name__}", source=source, field=name)
    for name in ("labels", "annotations"):
        for key, value in data[name].items():
            if not isinstance(value, str):
                raise InputError("expected a string", source=source, field=f"{name}.{key}"[:120])
    return {name: data[name] for name in ALERT_FIELDS}


def load_alert_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read: {exc.__class__.__name__}", source=str(path),
                         field="--alert-file") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"not JSON: {exc.msg} at line {exc.lineno}", source=str(path),
                         field="--alert-file") from None
    return check_alert(data, str(path))
