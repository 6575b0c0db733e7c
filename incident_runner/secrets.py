"""Where secrets come from, and scrubbing them out of what ansible-runner writes.

- ``vault_values``: with ``--vault-password-file``, every value Ansible Vault
  protects in the inventory (``!vault`` strings and wholly encrypted vars
  files) is decrypted once, in memory, so the redactor can mask it wherever
  a task prints it.
- ``scrub_file`` / ``scrub_artifacts``: rewrite an artifact through the
  redactor (JSON structurally, anything else as text), atomically, 0600.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from incident_runner.errors import InputError
from incident_runner.fsutil import write_atomic
from incident_runner.redaction import Redactor

LOG = logging.getLogger(__name__)

VAULT_HEADER = "$ANSIBLE_VAULT;"
VARS_SUFFIXES = {"", ".yml", ".yaml", ".json"}
MAX_VARS_FILE = 4 * 1024 * 1024


class _Vaulted(str):
    """Ciphertext of a ``!vault`` scalar."""


class _VaultLoader(yaml.SafeLoader):
    pass


def _vault_constructor(loader: yaml.SafeLoader, node: yaml.Node) -> _Vaulted:
    return _Vaulted(loader.construct_scalar(node))  # type: ignore[arg-type]


def _unknown_tag(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)  # type: ignore[arg-type]


_VaultLoader.add_constructor("!vault", _vault_constructor)
_VaultLoader.add_multi_constructor("!", _unknown_tag)  # !unsafe and friends: plain data


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _inventory_files(inventory: Path) -> Iterator[Path]:
    if inventory.is_file():
        yield inventory
        base = inventory.parent
    else:
        base = inventory
    for sub in ("group_vars", "host_vars"):
        folder = base / sub
        if folder.is_dir():
            for path in sorted(folder.rglob("*")):
                if path.is_file() and path.suffix in VARS_SUFFIXES:
                    yield path
    if inventory.is_dir():
        for path in sorted(inventory.iterdir()):
            if path.is_file() and path.suffix in {".yml", ".yaml", ".ini", ""}:
                yield path


def vault_secret(password_file: Path) -> Any:
    """The vault secret in ``password_file`` (a file or a script), loaded."""
    from ansible.parsing.dataloader import DataLoader  # noqa: PLC0415 (slow import, rarely needed)
    from ansible.parsing.vault import get_file_vault_secret  # noqa: PLC0415

    if not password_file.is_file():
        raise InputError("vault password file not found", source=str(password_file),
                         field="--vault-password-file")
    try:
        secret = get_file_vault_secret(filename=str(password_file), loader=DataLoader())
        secret.load()
    except Exception as exc:  # ansible raises AnsibleError subclasses with file details
        raise InputError(f"cannot read the vault password: {type(exc).__name__}",
                         source=str(password_file), field="--vault-password-file") from None
    return secret


def _vault(password_file: Path) -> Any:
    """An ansible VaultLib holding the secret from ``password_file``."""
    from ansible.parsing.vault import VaultLib  # noqa: PLC0415

    return VaultLib([("default", vault_secret(password_file))])


def vault_values(inventory: Path, password_file: Path) -> set[str]:
    """Every string Ansible Vault protects in ``inventory``'s files, decrypted."""
    vault = _vault(password_file)
    found: set[str] = set()
    for path in _inventory_files(inventory):
        try:
            if path.stat().st_size > MAX_VARS_FILE:
                continue
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        try:
            if text.lstrip().startswith(VAULT_HEADER):
                plain = vault.decrypt(text.strip()).decode("utf-8", "replace")
                found.update(_leaf_secrets(plain, whole_file=True))
            elif "!vault" in text:
                data = yaml.load(text, Loader=_VaultLoader)  # noqa: S506 (safe loader subclass)
                for value in _strings(data):
                    if isinstance(value, _Vaulted):
                        found.add(vault.decrypt(value.strip()).decode("utf-8", "replace"))
        except Exception as exc:  # a wrong password or a broken file: Ansible will say so
            LOG.warning("cannot read vaulted values in %s: %s", path, type(exc).__name__)
    return {v for v in found if v}


def _leaf_secrets(plain: str, whole_file: bool) -> set[str]:
    """A decrypted vars file: all its values are secret (the file was encrypted whole)."""
    try:
        data = yaml.load(plain, Loader=_VaultLoader)  # noqa: S506 (safe loader subclass)
    except yaml.YAMLError:
        return {plain.strip()} if whole_file else set()
    return {s.strip() for s in _strings(data) if s.strip()}


# -- scrubbing files -----------------------------------------------------------------
def scrub_file(path: Path, redactor: Redactor) -> bool:
    """Rewrite ``path`` with secrets masked; True if it changed."""
    try:
        raw = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    try:
        data = json.loads(raw)
    except ValueError:
        clean = redactor.text(raw)
    else:
        clean = json.dumps(redactor.data(data), ensure_ascii=False)
        if clean == json.dumps(data, ensure_ascii=False):
            clean = raw
    if clean == raw:
        return False
    write_atomic(path, clean)
    return True


def scrub_artifacts(folder: Path, redactor: Redactor) -> int:
    """Scrub every file under one run's ``artifacts/<ident>/``; returns files changed."""
    changed = 0
    if not folder.is_dir():
        return 0
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            if path.name.endswith("-partial.json"):
                path.unlink(missing_ok=True)  # raw event data the runner never read
                continue
            changed += scrub_file(path, redactor)
    for path in folder.rglob("*"):
        if path.is_file():
            path.chmod(0o600)
    return changed
