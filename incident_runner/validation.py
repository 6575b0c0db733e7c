"""Load user YAML and validate it against the JSON Schemas shipped in the package."""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from incident_runner.errors import InputError

_REQUIRED = re.compile(r"^'(.+)' is a required property$")


@cache
def _schemas() -> dict[str, dict[str, Any]]:
    """Every schema shipped in the package, by name (``scenario``, ``config``, ...)."""
    out: dict[str, dict[str, Any]] = {}
    for entry in resources.files("incident_runner.schemas").iterdir():
        if entry.name.endswith(".schema.json"):
            out[entry.name.removesuffix(".schema.json")] = json.loads(
                entry.read_text(encoding="utf-8"))
    return out


@cache
def validator(schema_name: str) -> Draft202012Validator:
    """A validator for one shipped schema; ``$ref`` between shipped schemas resolves offline."""
    schemas = _schemas()
    registry: Registry[Any] = Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema, default_specification=DRAFT202012))
        for schema in schemas.values() if "$id" in schema
    )
    return Draft202012Validator(schemas[schema_name], registry=registry)


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
    except (ValueError, TypeError, OverflowError) as exc:
        # PyYAML builds dates and numbers eagerly: "2024-13-45" is a ValueError, not a YAMLError.
        raise InputError(f"invalid YAML value: {exc}", source=str(path)) from None


def _key_named(error: ValidationError) -> str | None:
    """For missing/unknown keys, the key itself: errors then name the exact field."""
    if error.validator == "required":
        match = _REQUIRED.match(error.message)
        return match.group(1) if match else None
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        schema = error.schema if isinstance(error.schema, dict) else {}
        known = schema.get("properties") or {}
        unknown = sorted(str(k) for k in error.instance if k not in known)
        return unknown[0] if unknown else None
    return None


def field_path(error: ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    key = _key_named(error)
    if key is not None:
        parts.append(key)
    return ".".join(parts) if parts else "(top level)"


def _short(error: ValidationError) -> str:
    if error.validator == "required" and _key_named(error):
        message = "required field is missing"
    elif error.validator == "additionalProperties" and _key_named(error):
        schema = error.schema if isinstance(error.schema, dict) else {}
        allowed = ", ".join(sorted(schema.get("properties") or {}))
        message = f"unknown key (allowed: {allowed})" if allowed else "unknown key"
    else:
        message = error.message
    message = " ".join(message.split())
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
