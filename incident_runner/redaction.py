"""Keep secrets out of everything we write or print.

Two sources: values we are told are secret (vault, env vars named as secret,
extra vars with secret-looking names, webhook URLs), masked wherever they
appear; and the shared pattern rules (``redaction_rules``: URL userinfo,
Authorization/Bearer/Token headers, webhook paths, AWS keys, PEM blocks, token
shapes, secret-looking assignments), which the role modules apply too.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from incident_runner.redaction_rules import MASK, MIN_SECRET_LEN, RuleRedactor

__all__ = ["MASK", "Redactor"]


class Redactor(RuleRedactor):
    """The shared rules plus the values known to be secret in this run."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._values: set[str] = set()
        for value in secrets:
            self.add(value)

    def add(self, value: str) -> None:
        if isinstance(value, str) and len(value) >= MIN_SECRET_LEN:
            self._values.add(value)

    def add_from_mapping(self, mapping: Mapping[str, Any]) -> None:
        """Values under secret-looking keys are secrets; every string is checked for
        secret-looking parts (a DSN's password) so they are masked whole elsewhere too."""
        for key, value in mapping.items():
            if isinstance(value, Mapping):
                self.add_from_mapping(value)
            elif isinstance(value, str) and (self.is_secret_name(str(key))
                                             or self.text(value) != value):
                self.add(value)  # a DSN's password masked here is masked whole elsewhere

    @classmethod
    def from_environment(cls, names: Iterable[str] = ()) -> Redactor:
        """Secrets from env vars named as secret (by pattern or listed explicitly)."""
        redactor = cls()
        listed = set(names)
        for key, value in os.environ.items():
            if key in listed or redactor.is_secret_name(key):
                redactor.add(value)
        return redactor

    @property
    def values(self) -> frozenset[str]:
        return frozenset(self._values)

    def text(self, value: str) -> str:
        for secret in sorted(self._values, key=len, reverse=True):
            if secret in value:
                value = value.replace(secret, MASK)
        return super().text(value)
