#!/usr/bin/python
"""Ansible module: attach a container to the networks it is missing, in one call."""

from __future__ import annotations

from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.docker_engine import Engine, EngineError, describe

DOCUMENTATION = r"""
---
module: network_attach
short_description: Attach a container to the networks it lost, and prove it
description:
  - probe - reads the container and every wanted network; fails naming the
    variable on a missing container or an unknown network, before any change.
  - remediate - connects only the missing networks (with their aliases), keeping
    every other attachment; with O(reconnect_networks_restart) restarts the
    container, only when something was connected.
  - verify - reads the container again and fails unless every wanted network
    is attached (and the container runs, after a restart).
  - Check mode reports the connections it would make and changes nothing;
    diff mode shows the attachments before and after.
  - Options carry the role's variable names so a bad value is reported under
    the name the user set.
options:
  reconnect_networks_container: {type: str, required: true, description: Container name or ID.}
  reconnect_networks_networks:
    type: list
    elements: raw
    required: true
    description: Networks to be attached to; each a name or a dict with name and aliases.
  reconnect_networks_restart:
    type: bool
    default: false
    description: Restart the container after connecting any network.
"""

RETURN = r"""
evidence: {description: One line saying what was missing and what was done., type: str}
missing: {description: Networks that were not attached., type: list}
before: {description: Attached networks before., type: list}
after: {description: Attached networks after (predicted in check mode)., type: list}
state: {description: The container's state after, e.g. running., type: str}
restarted: {description: Whether the container was restarted., type: bool}
"""


def wanted_networks(raw: list[Any]) -> list[dict[str, Any]]:
    """Normalise names and {name, aliases} dicts; raise ValueError naming the bad item."""
    out = []
    for item in raw:
        if isinstance(item, str) and item:
            out.append({"name": item, "aliases": []})
        elif isinstance(item, dict) and isinstance(item.get("name"), str) and item["name"]:
            aliases = item.get("aliases") or []
            if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
                raise ValueError(f"reconnect_networks_networks: aliases of {item['name']} "
                                 "must be a list of strings")
            out.append({"name": item["name"], "aliases": list(aliases)})
        else:
            raise ValueError(f"reconnect_networks_networks: {item!r} is neither a network "
                             "name nor a dict with a name")
    return out


def attached(container: dict[str, Any]) -> list[str]:
    return sorted((container.get("NetworkSettings") or {}).get("Networks") or {})


def run(module: AnsibleModule, engine: Engine) -> dict[str, Any]:
    p = module.params
    name = p["reconnect_networks_container"]
    try:
        wanted = wanted_networks(p["reconnect_networks_networks"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    if not wanted:
        module.fail_json(msg="reconnect_networks_networks: give at least one network")

    # probe
    container = engine.container(name)
    if container is None:
        module.fail_json(msg=f"reconnect_networks_container: no container named {name}")
    unknown = [w["name"] for w in wanted if engine.network(w["name"]) is None]
    if unknown:
        module.fail_json(msg="reconnect_networks_networks: no such network: " + ", ".join(unknown))
    before = attached(container)
    missing = [w for w in wanted if w["name"] not in before]
    missing_names = [w["name"] for w in missing]
    result: dict[str, Any] = {
        "changed": bool(missing), "missing": missing_names, "before": before,
        "after": sorted({*before, *missing_names}), "restarted": False,
        "diff": {"before": {"networks": before},
                 "after": {"networks": sorted({*before, *missing_names})}},
    }
    if not missing:
        result.update(state=describe(container["State"]),
                      evidence=f"{name} is on all {len(wanted)} network(s); nothing to do")
        return result
    restart = p["reconnect_networks_restart"]
    plan = f"{name} is missing {len(missing)} network(s): {', '.join(missing_names)}"
    if module.check_mode:
        result.update(state=describe(container["State"]),
                      evidence=plan + "; would connect them" + (" and restart" if restart else ""))
        return result

    # remediate
    for net in missing:
        engine.connect(net["name"], name, net["aliases"])
    if restart:
        engine.restart(name)
        result["restarted"] = True

    # verify
    after = engine.container(name) or {}
    result["after"] = attached(after) if after else []
    result["diff"]["after"] = {"networks": result["after"]}
    state = after.get("State") or {}
    result["state"] = describe(state) if state else "gone"
    still = [n for n in missing_names if n not in result["after"]]
    if still:
        module.fail_json(msg=f"reconnect_networks_networks: still not attached after "
                             f"reconnecting: {', '.join(still)}", **result)
    if restart and not state.get("Running"):
        module.fail_json(msg=f"reconnect_networks_restart: {name} is {result['state']} "
                             "after the restart", **result)
    result["evidence"] = (plan + "; connected" + (" and restarted" if restart else "")
                          + f"; now on {len(result['after'])} network(s)")
    return result


# The role's meta/argument_specs.yml options, the same names and types (a unit test
# keeps them equal): the module validates its own input, so no validation task is needed.
ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "reconnect_networks_container": {"type": "str", "required": True},
    "reconnect_networks_networks": {"type": "list", "elements": "raw", "required": True},
    "reconnect_networks_restart": {"type": "bool", "default": False},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = run(module, Engine())
    except EngineError as exc:
        module.fail_json(msg=f"reconnect_networks: {exc}")
    module.exit_json(msg=result["evidence"], **result)


if __name__ == "__main__":
    main()
