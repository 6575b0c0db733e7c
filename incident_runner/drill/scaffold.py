"""The drills' ``molecule.yml`` files, generated from one table.

Every drill's ``molecule.yml`` is the same delegated scenario on localhost; only
the scenario name, the port and the detector's probe differ. They are written
from ``molecule/resources/drill/drills.yml`` (ports allocated in row order:
row i gets ``BASE_PORT + i``), so molecule runs each by hand
(``molecule test -s drill-<name>``) and ``incident-runner drill`` reads the
same file. A new row also gets a ``side_effect.yml`` (detector, fault,
detection) and a ``verify.yml`` skeleton to fill in; existing ones are kept.

    python -m incident_runner.drill.scaffold [--check]
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from incident_runner.drill.catalog import DRILL_PREFIX
from incident_runner.errors import InputError
from incident_runner.paths import project_root

TABLE = Path("molecule") / "resources" / "drill" / "drills.yml"
BASE_PORT = 18700
MAX_DRILLS = 90  # 18700-18789; the test-only drills use 18790 and up

MOLECULE_YML = """\
---
# GENERATED from molecule/resources/drill/drills.yml by
# `python -m incident_runner.drill.scaffold`: edit the table, not this file.
{header}
# No prerun: the collections come with the ansible package (Galaxy is unreachable).
prerun: false
driver:
  name: default
  options:
    managed: false
    ansible_connection_options:
      ansible_connection: local
platforms:
  - name: localhost
    groups: [staging]
provisioner:
  name: ansible
  env:
    ANSIBLE_ROLES_PATH: "${{MOLECULE_PROJECT_DIRECTORY}}/roles"
  ansible_args: [--inventory, "${{MOLECULE_PROJECT_DIRECTORY}}/inventories/staging"]
  playbooks:
    create: ../resources/drill/create.yml
    converge: ../resources/drill/converge.yml
    destroy: ../resources/drill/destroy.yml
  inventory:
    host_vars:
      localhost:
        drill_scenario: {name}
        drill_repo: "${{MOLECULE_PROJECT_DIRECTORY}}"
        drill_workdir: "${{DRILL_WORKDIR:-/tmp/ir-drill-{name}}}"
{vars}        drill_probe:
{probe}        stack_project: ir-drill-{name}
        stack_http_port: {port}
        stack_dir: "${{DRILL_WORKDIR:-/tmp/ir-drill-{name}}}/stack"
verifier:
  name: ansible
scenario:
  test_sequence: [create, side_effect, converge, verify, destroy]
"""

SIDE_EFFECT_YML = """\
---
- name: Start the detector
  ansible.builtin.import_playbook: ../resources/drill/probe_start.yml
- name: Inject the fault (the fault playbook asserts it is real)
  ansible.builtin.import_playbook: ../../playbooks/faults/{name}.yml
- name: Require the detector to have seen it
  ansible.builtin.import_playbook: ../resources/drill/probe_wait.yml
"""

VERIFY_YML = """\
---
- name: The runner resolved the incident
  ansible.builtin.import_playbook: ../resources/drill/verify_runner.yml

- name: "Drill {name}: the stack is healthy again"
  hosts: staging
  gather_facts: false
  tasks:
    - name: TODO look at the stack itself in one call (HTTP checks, docker inspect, reads)
      ansible.builtin.import_tasks: ../resources/drill/look.yml
      vars:
        drill_look:
          http: []
          inspect: []

    - name: TODO assert on what it saw (drill_seen)
      ansible.builtin.fail:
        msg: write the drill's own checks
"""


@dataclass(frozen=True)
class Row:
    name: str
    about: str
    probe: tuple[dict[str, Any], ...]
    vars: dict[str, Any]


def _flow(value: Any) -> str:
    text = str(yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=1000))
    return text.removesuffix("\n").removesuffix("\n...").strip()  # a scalar ends the document


def load_table(home: Path) -> list[Row]:
    path = home / TABLE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: {exc}", field="drills") from exc
    rows = data.get("drills") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        raise InputError(f"{path}: drills must be a list", field="drills")
    out: list[Row] = []
    for i, row in enumerate(rows):
        where = f"{path}: drills[{i}]"
        if not isinstance(row, dict) or not row.get("name") or not row.get("probe"):
            raise InputError(f"{where} needs name and probe", field=f"drills[{i}]")
        if not isinstance(row["probe"], list) or not all(
                isinstance(p, dict) and p.get("name") and p.get("path") for p in row["probe"]):
            raise InputError(f"{where}.probe: a list of {{name, path, ...}}",
                             field=f"drills[{i}].probe")
        out.append(Row(name=str(row["name"]), about=str(row.get("about") or "").strip(),
                       probe=tuple(row["probe"]), vars=dict(row.get("vars") or {})))
    names = [r.name for r in out]
    if len(set(names)) != len(names) or len(names) > MAX_DRILLS:
        raise InputError(f"{path}: names must be unique, at most {MAX_DRILLS} drills",
                         field="drills")
    return out


def render(row: Row, port: int) -> str:
    header = textwrap.wrap(
        f"Drill {row.name}: {row.about} Own stack: project ir-drill-{row.name}, port {port}. "
        "Shared plays and variables: ../resources/drill/README.md.", 76)
    return MOLECULE_YML.format(
        name=row.name, port=port, header="\n".join(f"# {line}" for line in header),
        vars="".join(f"        {k}: {_flow(v)}\n" for k, v in row.vars.items()),
        probe="".join(f"          - {_flow(p)}\n" for p in row.probe))


def generate(home: Path) -> dict[Path, str]:
    """Every generated file and its text (molecule.yml always; the others if missing)."""
    files: dict[Path, str] = {}
    for i, row in enumerate(load_table(home)):
        folder = home / "molecule" / f"{DRILL_PREFIX}{row.name}"
        files[folder / "molecule.yml"] = render(row, BASE_PORT + i)
        for name, text in (("side_effect.yml", SIDE_EFFECT_YML), ("verify.yml", VERIFY_YML)):
            if not (folder / name).exists():
                files[folder / name] = text.format(name=row.name)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m incident_runner.drill.scaffold",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if a generated file is missing or differs; write nothing")
    args = parser.parse_args(argv)
    home = project_root()
    try:
        files = generate(home)
    except InputError as exc:
        print(exc, file=sys.stderr)
        return 2
    stale = [p for p, text in files.items()
             if not p.exists() or p.read_text(encoding="utf-8") != text]
    if args.check:
        for path in stale:
            print(f"out of date: {path.relative_to(home)}", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[path], encoding="utf-8")
        print(f"wrote {path.relative_to(home)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
