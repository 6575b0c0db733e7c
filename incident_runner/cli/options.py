"""Parsing helpers shared by subcommands."""

from __future__ import annotations

import re
from typing import Any

from incident_runner.errors import InputError

VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
MAX_VALUE = 64 * 1024


def parse_extra_vars(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``-e KEY=VALUE`` pairs into a dict; values are strings, passed as data."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise InputError(f"expected KEY=VALUE, got '{pair[:60]}'", field="-e")
        if not VAR_NAME.match(key):
            raise InputError(f"'{key[:60]}' is not a valid variable name", field="-e")
        if len(value) > MAX_VALUE:
            raise InputError(f"value of '{key}' is longer than {MAX_VALUE} bytes", field="-e")
        out[key] = value
    return out
