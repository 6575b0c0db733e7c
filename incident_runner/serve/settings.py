"""The ``serve:`` section of incident-runner.yml, validated, with flags on top."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from incident_runner.config import find_config
from incident_runner.errors import InputError
from incident_runner.validation import load_yaml, validate

DEFAULT_LISTEN = "127.0.0.1:18900"


@dataclass(frozen=True)
class GenericMapping:
    """Where POST /alerts/generic finds each alert field (dotted paths into the body)."""

    status: str = "status"
    firing_values: tuple[str, ...] = ("firing", "down", "open", "triggered", "alert")
    group_key: str = "group"
    fingerprint: str = "id"
    starts_at: str = "started_at"
    labels: dict[str, str] = field(default_factory=lambda: {"alertname": "alertname"})
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ServeSettings:
    listen: str = DEFAULT_LISTEN
    token_file: Path | None = None
    token_env: str | None = None
    workers: int = 2
    queue_max: int = 100
    max_body_bytes: int = 1024 * 1024
    dedupe_window_minutes: float = 30.0
    approve_destructive: bool = False
    drill: bool = False
    inventory: Path | None = None
    incident_timeout: str | None = None
    extra_vars: dict[str, Any] = field(default_factory=dict)
    severity_label: str = "severity"
    severity_map: dict[str, str] = field(default_factory=dict)
    host_label: str | None = None
    service_label: str | None = None
    generic: GenericMapping = field(default_factory=GenericMapping)
    insecure_no_auth: bool = False
    source: str = "built-in defaults"

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    def with_flags(self, **flags: Any) -> ServeSettings:
        return replace(self, **{k: v for k, v in flags.items() if v is not None})


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_settings(raw: Any, source: str, base: Path) -> ServeSettings:
    """Build settings from a parsed ``serve:`` mapping; relative paths are from the config's dir."""
    raw = raw or {}
    validate(raw, "serve", source)
    generic_raw: dict[str, Any] = dict(raw.pop("generic", {}) or {})
    if "firing_values" in generic_raw:
        generic_raw["firing_values"] = tuple(generic_raw["firing_values"])
    generic = GenericMapping(**generic_raw)
    for key in ("token_file", "inventory"):
        if key in raw:
            raw[key] = (base / raw[key]).resolve()
    return ServeSettings(**raw, generic=generic, source=source)


def load_settings(config: str | None) -> ServeSettings:
    """The ``serve:`` section of the config in effect (see severity.find_config)."""
    path = find_config(config)
    if path is None:
        return ServeSettings()
    data = load_yaml(path) or {}
    return parse_settings(dict(data.get("serve") or {}), f"{path}: serve", path.parent)


def read_token(settings: ServeSettings) -> str | None:
    """The bearer token; None only with --insecure-no-auth on a loopback bind."""
    if settings.insecure_no_auth:
        if not is_loopback(settings.host):
            raise InputError(f"--insecure-no-auth is only allowed on a loopback bind, "
                             f"not {settings.host}", field="--listen")
        return None
    token = None
    if settings.token_file is not None:
        try:
            token = settings.token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise InputError(f"cannot read the token file: {exc.__class__.__name__}",
                             source=str(settings.token_file), field="serve.token_file") from None
    elif settings.token_env:
        token = os.environ.get(settings.token_env, "").strip()
        if not token:
            raise InputError(f"env var {settings.token_env} is empty or unset",
                             source=settings.source, field="serve.token_env")
    if not token:
        raise InputError("a bearer token is required: set serve.token_file or serve.token_env "
                         "(or --token-file), or --insecure-no-auth on a loopback bind",
                         source=settings.source, field="serve")
    if len(token) < 16:
        raise InputError("the bearer token is shorter than 16 characters",
                         source=str(settings.token_file or settings.token_env), field="token")
    return token
