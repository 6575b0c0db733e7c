"""The one set of redaction rules, shared by the runner and the role modules.

Standard library only: ``scripts/sync_module_utils.py`` copies this file to
``roles/redaction/module_utils/incident_redaction.py`` so modules running on
any host import the same rules (``tests/unit/test_redaction_rules.py`` fails
when the copy drifts). Each pattern masks its match except a group named
``keep``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

MASK = "***"
# Names of env vars, labels, keys and variables whose values are secret.
SENSITIVE_NAMES = (
    r"(token|secret|passw(?:or)?d|passwd|api[_-]?key|private[_-]?key|credential"
    r"|auth(?!or)|access[_-]?key|ssh[_-]?key|signing[_-]?key|dsn|webhook)")
PATTERNS = (
    # PEM blocks (private keys, certificates with keys): the whole block.
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z0-9 ]*PRIVATE KEY-----",
    # An Authorization header's value (Bearer, Basic, Token, a bare key).
    r"(?i)(?P<keep>authorization[\"']?\s*[:=]\s*[\[\"']*)[^\"'\r\n\]]+",
    r"(?i)(?P<keep>\b(?:bearer|basic|token)\s+)[A-Za-z0-9._~+/=-]{8,}",
    # key=value / "key": "value" where the key looks secret ("author" is not).
    r"(?i)(?P<keep>[A-Za-z0-9_.-]*(?:token|secret|passw(?:or)?d|passwd|api[_-]?key"
    r"|private[_-]?key|credential|access[_-]?key|auth(?!or))[A-Za-z0-9_.-]*[\"']?\s*[:=]\s*"
    r"[\"']?)[^\s\"',;&]{3,}",
    # URL userinfo: scheme://user:PASSWORD@host
    r"(?P<keep>[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)[^/\s@]+(?=@)",
    # Webhook URLs carry their token in the path.
    r"(?P<keep>hooks\.slack\.com/(?:services|workflows|triggers)/)[A-Za-z0-9/_-]+",
    r"(?P<keep>discord(?:app)?\.com/api/webhooks/)[A-Za-z0-9/_-]+",
    r"(?P<keep>/webhooks?/)[A-Za-z0-9_-]{16,}(?:/[A-Za-z0-9_-]+)*",
    # Token shapes: GitHub, Slack, AWS access key ids, JWTs.
    r"gh[pousr]_[A-Za-z0-9]{20,}",
    r"xox[abprs]-[A-Za-z0-9-]{10,}",
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
)
MIN_SECRET_LEN = 4


class RuleRedactor:
    """Masks secret-looking text by pattern and values under secret-looking names."""

    def __init__(self, names: str = SENSITIVE_NAMES, extra: Iterable[str] = ()) -> None:
        self.names = re.compile(names, re.IGNORECASE)
        self.patterns = [re.compile(p) for p in (*PATTERNS, *extra)]
        self.count = 0

    def _sub(self, match: re.Match[str]) -> str:
        self.count += 1
        return (match.groupdict().get("keep") or "") + MASK

    def masked(self) -> str:
        self.count += 1
        return MASK

    def is_secret_name(self, name: str) -> bool:
        return bool(self.names.search(name))

    def text(self, value: str) -> str:
        for pattern in self.patterns:
            value = pattern.sub(self._sub, value)
        return value

    def env(self, entries: Iterable[str]) -> list[str]:
        """``NAME=value`` lines: secret names masked whole, the rest by pattern."""
        out = []
        for entry in entries:
            name, sep, _value = entry.partition("=")
            secret = sep and self.is_secret_name(name)
            out.append(f"{name}={self.masked()}" if secret else self.text(entry))
        return out

    def data(self, value: Any, key: str = "") -> Any:
        """A JSON-like structure: values under secret names masked, every string by pattern;
        ``Env`` lists as environment entries; keys are scrubbed too (results keyed by values)."""
        if isinstance(value, str):
            return self.masked() if key and value and self.is_secret_name(key) else self.text(value)
        if isinstance(value, dict):
            return {self.text(k) if isinstance(k, str) else k: self.data(v, str(k))
                    for k, v in value.items()}
        if isinstance(value, list | tuple):
            if key == "Env":
                return self.env(str(v) for v in value)
            return [self.data(v, key if key != "Env" else "") for v in value]
        return value
