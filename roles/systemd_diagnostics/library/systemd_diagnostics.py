#!/usr/bin/python
"""Ansible module: read a systemd host's diagnostics (units, journal, ports, memory, deploy)."""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
---
module: systemd_diagnostics
short_description: Read unit status, the journal, listening ports, memory, the deployed commit
description:
  - Read-only. Runs argv commands (never a shell) and returns their output as
    named sections; the caller redacts and stores them (the role does it on
    the controller with the runner's one redactor). A failing command's
    error is its section's text. Runs in check mode too.
options:
  units: {type: list, elements: str, default: [], description: Units to describe.}
  log_lines: {type: int, default: 50, description: Journal lines per unit.}
  repo: {type: path, description: Deploy checkout (its HEAD and recent commits).}
"""

RETURN = r"""
sections: {type: dict, description: Section name to text.}
"""


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "units": {"type": "list", "elements": "str", "default": []},
            "log_lines": {"type": "int", "default": 50},
            "repo": {"type": "path"},
        },
        supports_check_mode=True,
    )
    p = module.params
    commands: dict[str, list[str]] = {}
    for unit in p["units"]:
        commands[f"systemctl status {unit}"] = ["systemctl", "status", "--no-pager", "-l", "--",
                                                unit]
        commands[f"systemctl show {unit}"] = [
            "systemctl", "show", "-p", "ActiveState,SubState,Result,ExecMainStatus,MainPID,"
            "MemoryMax,MemoryCurrent,NRestarts,DropInPaths", "--", unit]
        commands[f"journalctl -u {unit}"] = ["journalctl", "--no-pager", "-o", "short-iso",
                                             "-n", str(p["log_lines"]), "-u", unit]
    commands["ss -ltnp"] = ["ss", "-ltnp"]
    commands["memory"] = ["free", "-m"]
    commands["failed units"] = ["systemctl", "--failed", "--no-pager", "--plain"]
    if p["repo"]:
        commands["deployed commit"] = ["git", "-C", p["repo"], "log", "-1", "--format=%H %s"]
        commands["recent commits"] = ["git", "-C", p["repo"], "log", "-5", "--oneline",
                                      "--decorate", "--all"]
    sections = {}
    for name, argv in commands.items():
        rc, out, err = module.run_command(argv)
        sections[name] = out if out.strip() else (err or f"(exit {rc}, no output)")
    module.exit_json(changed=False, sections=sections)


if __name__ == "__main__":
    main()
