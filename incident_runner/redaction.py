"""Keep secrets out of everything we write or print.

Three sources of secrets: values we are told are secret (vault, env vars named
as secret, extra vars with secret-looking names), and anything that looks like
a token or password assignment. ``Redactor.text`` scrubs a string,
``Redactor.data`` a JSON-like structure.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"
SECRET_NAME = re.compile(
    r"(token|secret|passw(or)?d|passwd|api[_-]?key|private[_-]?key|credential|auth)", re.IGNORECASE
)
# token=..., password: "...", Authorization: Bearer ...
ASSIGNMENT = re.compile(
    r"(?P<key>[A-Za-z0-9_.-]*(?:token|secret|passw(?:or)?d|passwd|api[_-]?key|private[_-]?key"
    r"|credential)[A-Za-z0-9_.-]*)"
    r"(?P<sep>\"?\s*[:=]\s*\"?)(?P<value>[^\s\"',;&]+)",
    re.IGNORECASE,
)
BEARER = re.compile(r"(?i)(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
# Well-known token shapes: GitHub, Slack, AWS access keys, JWTs.
TOKEN_SHAPES = re.compile(
    r"(gh[pousr]_[A-Za-z0-9]{20,}|xox[abprs]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16}"
    r"|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})"
)
MIN_SECRET_LEN = 4


class Redactor:
    """Masks known secret values and secret-looking patterns."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._values: set[str] = set()
        for value in secrets:
            self.add(value)

    def add(self, value: str) -> None:
        if isinstance(value, str) and len(value) >= MIN_SECRET_LEN:
            self._values.add(value)

    def add_from_mapping(self, mapping: Mapping[str, Any]) -> None:
        """Treat values whose key looks secret as secrets."""
        for key, value in mapping.items():
            if SECRET_NAME.search(str(key)):
                if isinstance(value, str):
                    self.add(value)
            elif isinstance(value, Mapping):
                self.add_from_mapping(value)

    @classmethod
    def from_environment(cls, names: Iterable[str] = ()) -> Redactor:
        """Secrets from env vars named as secret (by pattern or listed explicitly)."""
        redactor = cls()
        listed = set(names)
        for key, value in os.environ.items():
            if key in listed or SECRET_NAME.search(key):
                redactor.add(value)
        return redactor

    @property
    def values(self) -> frozenset[str]:
        return frozenset(self._values)

    def text(self, value: str) -> str:
        for secret in sorted(self._values, key=len, reverse=True):
            if secret in value:
                value = value.replace(secret, MASK)
        value = ASSIGNMENT.sub(lambda m: f"{m.group('key')}{m.group('sep')}{MASK}", value)
        value = BEARER.sub(lambda m: f"{m.group(1)} {MASK}", value)
        return TOKEN_SHAPES.sub(MASK, value)

    def data(self, value: Any, key: str = "") -> Any:
        if isinstance(value, str):
            return MASK if key and SECRET_NAME.search(key) and value else self.text(value)
        if isinstance(value, Mapping):  # keys too: results keyed by values (labels, items)
            return {self.text(k) if isinstance(k, str) else k: self.data(v, str(k))
                    for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(v, key) for v in value]
        return value
