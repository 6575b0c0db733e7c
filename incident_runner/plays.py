"""The plays the runner generates, and how values reach them: people's values as data.

A value wrapped in ``mark_unsafe`` is written with YAML's ``!unsafe`` tag, so
Ansible never templates it: a ``{{ }}`` in an incident value, an alert label or
an ``-e`` value is data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class _Unsafe(str):
    """A string Ansible must never template."""


def _unsafe_representer(dumper: yaml.SafeDumper, value: _Unsafe) -> yaml.Node:
    return dumper.represent_scalar("!unsafe", str(value))


class _VarsDumper(yaml.SafeDumper):
    pass


_VarsDumper.add_representer(_Unsafe, _unsafe_representer)


def mark_unsafe(value: Any) -> Any:
    """Tag every string in a structure as !unsafe (data, not template)."""
    if isinstance(value, str):
        return _Unsafe(value)
    if isinstance(value, dict):
        return {k: mark_unsafe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mark_unsafe(v) for v in value]
    return value


def dump_play(play: list[dict[str, Any]]) -> str:
    """YAML of a generated play, unsafe values tagged."""
    return yaml.dump(play, Dumper=_VarsDumper, sort_keys=False)


def dump_vars(data: dict[str, Any]) -> str:
    """YAML of people's extra vars, every string tagged unsafe."""
    return yaml.dump(mark_unsafe(data), Dumper=_VarsDumper)


# Roles whose one module checks its input against the same spec as the role's
# meta/argument_specs.yml (tests/unit/test_role_modules.py holds them equal): Ansible's
# separate validation task would check it twice, at ~0.3 s per step.
SELF_VALIDATING_ROLES = frozenset({"reconnect_networks", "restart_containers", "scale_service"})


def role_play(name: str, hosts: str, role: str, play_vars: dict[str, Any]) -> list[dict[str, Any]]:
    """A one-play wrapper running ``role`` on ``hosts`` with scenario vars."""
    play: dict[str, Any] = {"name": name, "hosts": hosts, "gather_facts": False,
                            "vars": play_vars}
    if role in SELF_VALIDATING_ROLES:  # only import_role can turn the validation task off
        play["tasks"] = [{"name": f"Run the {role} role", "ansible.builtin.import_role": {
            "name": role, "rolespec_validate": False}}]
    else:
        play["roles"] = [{"role": role}]
    return [play]


def playbook_play(playbook: Path, play_vars: dict[str, Any]) -> list[dict[str, Any]]:
    """A wrapper importing a shipped playbook with scenario vars."""
    return [{"ansible.builtin.import_playbook": str(playbook), "vars": play_vars}]
