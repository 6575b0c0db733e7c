"""Parsing helpers and options shared by subcommands."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import yaml

from incident_runner.errors import InputError
from incident_runner.timeutil import parse_duration

VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
MAX_VALUE = 64 * 1024
MAX_VARS_FILE = 1024 * 1024


def _check_vars(data: Any, source: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InputError("extra vars must be a mapping of names to values", source=source,
                         field="-e")
    for key in data:
        if not isinstance(key, str) or not VAR_NAME.match(key):
            raise InputError(f"'{str(key)[:60]}' is not a valid variable name", source=source,
                             field="-e")
    return data


def _vars_file(ref: str) -> dict[str, Any]:
    path = Path(ref)
    if not path.is_file():
        raise InputError("extra vars file not found", source=ref, field="-e")
    if path.stat().st_size > MAX_VARS_FILE:
        raise InputError(f"extra vars file is larger than {MAX_VARS_FILE} bytes", source=ref,
                         field="-e")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise InputError(f"not valid YAML or JSON{line}", source=ref, field="-e") from None
    return _check_vars(data or {}, ref)


def parse_extra_vars(items: tuple[str, ...]) -> dict[str, Any]:
    """``-e`` as in ansible-playbook: ``KEY=VALUE``, ``@vars.yml`` or a JSON/YAML mapping.

    Values are data: the runner passes them to Ansible tagged ``!unsafe``.
    """
    out: dict[str, Any] = {}
    for item in items:
        text = item.strip()
        if text.startswith("@"):
            out.update(_vars_file(text[1:]))
            continue
        if text.startswith("{"):
            try:
                out.update(_check_vars(json.loads(text), "-e"))
            except ValueError as exc:
                raise InputError(f"not valid JSON: {exc.args[0][:80]}", field="-e") from None
            continue
        key, sep, value = item.partition("=")
        if not sep:
            raise InputError(f"expected KEY=VALUE, @FILE or a JSON object, got '{item[:60]}'",
                             field="-e")
        if not VAR_NAME.match(key):
            raise InputError(f"'{key[:60]}' is not a valid variable name", field="-e")
        out[key] = value
    for key, value in out.items():
        if len(json.dumps(value, default=str)) > MAX_VALUE:
            raise InputError(f"value of '{key}' is longer than {MAX_VALUE} bytes", field="-e")
    return out


def global_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--state-dir``, ``--state-url`` and ``--config`` after the subcommand too
    (they win over the group's)."""
    def keep(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is not None:
            ctx.ensure_object(dict)[str(param.name)] = value
        return value

    command = click.option("--state-url", default=None, metavar="URL", expose_value=False,
                           callback=keep, help="Shared state in PostgreSQL (postgresql://...; "
                           "also accepted before the subcommand).")(command)
    command = click.option("--state-dir", type=click.Path(file_okay=False), default=None,
                           expose_value=False, callback=keep,
                           help="Where incidents are kept (also accepted before the "
                                "subcommand).")(command)
    return click.option("--config", default=None, metavar="PATH", expose_value=False,
                        callback=keep, help="Config file (also accepted before the "
                                            "subcommand).")(command)


class Duration(click.ParamType):  # type: ignore[type-arg]
    """``90s``, ``15m``, ``1h``; a bare number is seconds (every duration flag is the same)."""

    name = "duration"

    def __init__(self, allow_zero: bool = False) -> None:
        self.allow_zero = allow_zero

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        if isinstance(value, int | float):
            return float(value)
        text = str(value).strip()
        if self.allow_zero and text in {"0", "0s"}:
            return 0.0
        flag = f"--{param.name.replace('_', '-')}" if param is not None and param.name else "-"
        return parse_duration(text, flag)
