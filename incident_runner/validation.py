"""Load user YAML and validate it against the JSON Schemas shipped in the package."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from incident_runner.errors import InputError


@cache
def validator(schema_name: str) -> Draft202012Validator:
    text = resources.files("incident_runner.schemas").joinpath(f"{schema_name}.schema.json")
    return Draft202012Validator(json.loads(text.read_text(encoding="utf-8")))


def load_yaml(path: Path) -> Any:
    """Parse a YAML file safely; errors name the file and line, never a traceback."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("file not found", source=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read: {exc}", source=str(path)) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"invalid YAML: {problem}", source=str(path), field=where) from None
    except RecursionError:
        raise InputError("invalid YAML: nested too deeply", source=str(path)) from None


def field_path(error: ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "(top level)"


def _short(error: ValidationError) -> str:
    message = error.message
    return message if len(message) <= 200 else message[:197] + "..."


def validate(data: Any, schema_name: str, source: str) -> None:
    """Raise one InputError listing every schema violation as ``field: problem``."""
    errors = sorted(validator(schema_name).iter_errors(data), key=lambda e: list(map(str, e.path)))
    if not errors:
        return
    first = errors[0]
    rest = f" (and {len(errors) - 1} more: " + "; ".join(
        f"{field_path(e)}: {_short(e)}" for e in errors[1:5]
    ) + ")" if len(errors) > 1 else ""
    raise InputError(_short(first) + rest, source=source, field=field_path(first))
