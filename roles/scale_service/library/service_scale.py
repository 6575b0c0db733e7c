#!/usr/bin/python
"""Ansible module: set a service's replicas and/or memory limit within bounds, in one call."""

from __future__ import annotations

import re
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.docker_engine import Engine, EngineError, describe, wait_until

DOCUMENTATION = r"""
---
module: service_scale
short_description: Set the replicas and/or memory limit of a service, within bounds
description:
  - probe - checks the bounds first (out-of-bound or malformed values fail
    naming the variable, before anything is read or touched), then reads the
    named container (its compose labels give project, service and directory)
    and the service's containers, and works out what differs.
  - remediate - scales the compose service (C(docker compose up --scale
    --no-recreate)), sets the memory and swap limits of every container of the
    service that differs (C(docker update), no restart), and with
    O(scale_service_restart) restarts (or starts, when OOM-killed) those.
  - verify - the running replica count and the memory limits are what was asked
    (and the restarted containers run).
  - Check mode reports the change and makes none; diff mode shows replicas and
    limits before and after. Changes only what differs (idempotent).
  - Options carry the role's variable names so a bad value is reported under
    the name the user set.
options:
  scale_service_container: {type: str, default: "", description: A container of the service.}
  scale_service_project_name: {type: str, default: "", description: Compose project name.}
  scale_service_service: {type: str, default: "", description: Compose service name.}
  scale_service_project_src: {type: str, default: "", description: Compose project directory.}
  scale_service_replicas:
    type: int
    required: false
    description: Wanted replicas; null leaves the count alone.
  scale_service_memory:
    type: str
    default: ""
    description: "Memory limit, e.g. 128m; empty leaves it alone."
  scale_service_memory_swap:
    type: str
    default: ""
    description: "Memory + swap limit; empty equals the memory limit, -1 unlimited."
  scale_service_min_replicas:
    type: int
    default: 1
    description: Lowest allowed non-zero replica count.
  scale_service_max_replicas: {type: int, default: 4, description: Highest allowed replica count.}
  scale_service_max_memory: {type: str, default: 1g, description: Highest allowed memory limit.}
  scale_service_allow_zero:
    type: bool
    default: false
    description: Allow zero replicas (containment).
  scale_service_restart:
    type: bool
    default: false
    description: Restart (or start) the containers whose limit changed.
  scale_service_wait_timeout:
    type: int
    default: 60
    description: Seconds compose waits for new replicas.
"""

RETURN = r"""
evidence: {description: One line - state before (OOM-killed, limit) and what was done., type: str}
before:
  description: replicas running/total and each container's memory limit and state.
  type: dict
after: {description: The same after (predicted in check mode)., type: dict}
"""

SIZE = re.compile(r"^([0-9]+)([bkmgBKMG]?)$")
UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
MIN_MEMORY = 6 * 1024 * 1024  # Docker refuses less
PROJECT, SERVICE, WORKDIR = (
    "com.docker.compose.project", "com.docker.compose.service",
    "com.docker.compose.project.working_dir")


def to_bytes(size: str) -> int | None:
    m = SIZE.match(size)
    return int(m.group(1)) * UNITS[m.group(2).lower()] if m else None


def human(n: int) -> str:
    if n <= 0:
        return "unlimited" if n < 0 else "none"
    for unit in ("g", "m", "k"):
        if n % UNITS[unit] == 0:
            return f"{n // UNITS[unit]}{unit}"
    return str(n)


def bound_errors(p: dict[str, Any]) -> list[str]:
    """The same checks, in the same words, as the role always made: before any read."""
    return _replica_errors(p) + _memory_errors(p)


def _replica_errors(p: dict[str, Any]) -> list[str]:
    out = []
    r, lo, hi = (p["scale_service_replicas"], p["scale_service_min_replicas"],
                 p["scale_service_max_replicas"])
    if r is None and not p["scale_service_memory"]:
        out.append("scale_service_replicas, scale_service_memory: set at least one of them")
    if not p["scale_service_container"] and not (p["scale_service_project_name"]
                                                 and p["scale_service_service"]):
        out.append("scale_service_container: name a container of the service (or set "
                   "scale_service_project_name and scale_service_service)")
    if lo > hi:
        out.append(f"scale_service_min_replicas: {lo} is above scale_service_max_replicas ({hi})")
    if r is None:
        return out
    if r < 0:
        out.append(f"scale_service_replicas: must not be negative (got {r})")
    elif r == 0 and not p["scale_service_allow_zero"]:
        out.append("scale_service_replicas: 0 stops every replica (containment); set "
                   "scale_service_allow_zero: true to allow it")
    elif 0 < r < lo:
        out.append(f"scale_service_replicas: {r} is below scale_service_min_replicas ({lo})")
    elif r > hi:
        out.append(f"scale_service_replicas: {r} is above scale_service_max_replicas ({hi})")
    return out


def _memory_errors(p: dict[str, Any]) -> list[str]:
    out = []
    mem, swap = p["scale_service_memory"], p["scale_service_memory_swap"]
    max_mem = to_bytes(p["scale_service_max_memory"])
    if max_mem is None:
        out.append(f"scale_service_max_memory: '{p['scale_service_max_memory']}' is not a size "
                   "like 512m or 1g")
    if not mem:
        return out
    m = to_bytes(mem)
    if m is None:
        out.append(f"scale_service_memory: '{mem}' is not a size like 128m or 1g")
    elif max_mem is not None and m > max_mem:
        out.append(f"scale_service_memory: {mem} is above scale_service_max_memory "
                   f"({p['scale_service_max_memory']})")
    elif m < MIN_MEMORY:
        out.append(f"scale_service_memory: {mem} is below Docker's minimum of 6m")
    elif swap and swap != "-1":
        s = to_bytes(swap)
        if s is None:
            out.append(f"scale_service_memory_swap: '{swap}' is not a size like 256m, or -1")
        elif s < m:
            out.append(f"scale_service_memory_swap: {swap} is below scale_service_memory "
                       f"({mem})")
    return out


def snapshot(containers: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "replicas_running": sum(1 for c in containers if c["State"].get("Running")),
        "replicas_total": len(containers),
        "containers": {c["Name"].lstrip("/"): {
            "state": describe(c["State"]), "oom_killed": bool(c["State"].get("OOMKilled")),
            "memory": human(c["HostConfig"].get("Memory") or 0),
            "memory_swap": human(c["HostConfig"].get("MemorySwap") or 0)} for c in containers},
    }


class Scaler:
    def __init__(self, module: AnsibleModule, engine: Engine) -> None:
        self.module = module
        self.engine = engine
        self.p = module.params
        self.project = self.service = self.src = ""
        self.mem = self.swap = 0

    def fail(self, msg: str, **kw: Any) -> None:
        self.module.fail_json(msg=msg, **kw)

    def service_containers(self) -> list[dict[str, Any]]:
        """Inspect data of the service's containers (or the named one, outside compose)."""
        if self.project and self.service:
            listed = self.engine.containers([f"{PROJECT}={self.project}",
                                             f"{SERVICE}={self.service}"])
            found = [self.engine.container(c["Id"]) for c in listed]
            return sorted((c for c in found if c), key=lambda c: str(c["Name"]))
        named = self.engine.container(self.p["scale_service_container"])
        return [named] if named else []

    def compose_scale(self, replicas: int) -> None:
        argv = ["docker", "compose", "--project-directory", self.src, "-p", self.project, "up",
                "-d", "--no-recreate", "--no-deps", "--no-build", "--pull", "never",
                "--scale", f"{self.service}={replicas}"]
        if replicas > 0:
            argv += ["--wait", "--wait-timeout", str(self.p["scale_service_wait_timeout"])]
        rc, out, err = self.module.run_command([*argv, self.service])
        if rc != 0:
            tail = " ".join((err or out).strip().splitlines()[-3:])
            self.fail(f"scale_service_replicas: docker compose up --scale "
                      f"{self.service}={replicas} exited {rc}: {tail}")

    def probe(self) -> list[dict[str, Any]]:
        """Bounds first, then the service's containers; fails naming the variable."""
        p = self.p
        errors = bound_errors(p)
        if errors:
            self.fail("; ".join(errors))
        named = None
        if p["scale_service_container"]:
            named = self.engine.container(p["scale_service_container"])
            if named is None:
                self.fail(f"scale_service_container: no container named "
                          f"'{p['scale_service_container']}'")
        labels = ((named or {}).get("Config") or {}).get("Labels") or {}
        self.project = p["scale_service_project_name"] or labels.get(PROJECT, "")
        self.service = p["scale_service_service"] or labels.get(SERVICE, "")
        self.src = p["scale_service_project_src"] or labels.get(WORKDIR, "")
        if p["scale_service_replicas"] is not None and not (
                self.project and self.service and self.src):
            self.fail(f"scale_service_replicas: {p['scale_service_container'] or 'the service'} "
                      "is not managed by docker compose; set scale_service_project_name, "
                      "scale_service_service and scale_service_project_src")
        containers = self.service_containers()
        if p["scale_service_memory"] and self.service and not containers:
            self.fail(f"scale_service_service: no container of {self.project}/{self.service} "
                      "to set the memory of")
        swap_s = p["scale_service_memory_swap"]
        self.mem = to_bytes(p["scale_service_memory"] or "0") or 0
        self.swap = -1 if swap_s == "-1" else (to_bytes(swap_s) or 0) if swap_s else self.mem
        return containers

    def limits_differ(self, c: dict[str, Any]) -> bool:
        return bool(self.p["scale_service_memory"]) and (
            c["HostConfig"].get("Memory") != self.mem
            or c["HostConfig"].get("MemorySwap") != self.swap)

    def remediate(self, scale_needed: bool, containers: list[dict[str, Any]]) -> list[str]:
        """Scale, then set the limits (and restart); the names whose limit changed."""
        p = self.p
        if scale_needed:
            self.compose_scale(p["scale_service_replicas"])
            # New replicas start from the compose file's definition: give them the limit too.
            containers = self.service_containers()
        changed = [c for c in containers if self.limits_differ(c)]
        for c in changed:
            self.engine.update(c["Id"], {"Memory": self.mem, "MemorySwap": self.swap})
            if p["scale_service_restart"]:
                if c["State"].get("Running"):
                    self.engine.restart(c["Id"])
                else:
                    self.engine.start(c["Id"])
        return [c["Name"].lstrip("/") for c in changed]

    def verify(self, mem_changes: list[str]) -> tuple[dict[str, Any], str]:
        """The state after, and what is not as asked ('' when all is)."""
        p, replicas = self.p, self.p["scale_service_replicas"]
        containers = self.service_containers()

        def settled() -> bool:
            nonlocal containers
            containers = self.service_containers()
            return sum(1 for c in containers if c["State"].get("Running")) == replicas

        if replicas is not None:
            # compose --wait returned; a replica may still be starting: give it the timeout.
            wait_until(settled, p["scale_service_wait_timeout"], 0.2)
        after = snapshot(containers)
        wrong_mem = [c["Name"].lstrip("/") for c in containers
                     if p["scale_service_memory"] and c["HostConfig"].get("Memory") != self.mem]
        not_running = [n for n in mem_changes if p["scale_service_restart"] and not
                       after["containers"].get(n, {}).get("state", "").startswith("running")]
        if (replicas is None or after["replicas_running"] == replicas) and not wrong_mem \
                and not not_running:
            return after, ""
        return after, (
            f"scale_service: after scaling {after['replicas_running']} replica(s) run "
            f"(wanted {replicas}); memory limit not {p['scale_service_memory']} on: "
            f"{', '.join(wrong_mem) or 'none'}; not running after the restart: "
            f"{', '.join(not_running) or 'none'}")

    def run(self) -> dict[str, Any]:
        p = self.p
        containers = self.probe()
        replicas, mem_s = p["scale_service_replicas"], p["scale_service_memory"]
        label = f"{self.project}/{self.service}" if self.service else p["scale_service_container"]
        before = snapshot(containers)
        scale_needed = replicas is not None and (
            before["replicas_running"] != replicas or before["replicas_total"] != replicas)
        mem_changes = [c["Name"].lstrip("/") for c in containers if self.limits_differ(c)]
        plan = [f"replicas {before['replicas_running']} running of {before['replicas_total']}"
                f" -> {replicas}"] if scale_needed else []
        restart = " and restart" if p["scale_service_restart"] else ""
        plan += [f"{n} ({before['containers'][n]['state']}) memory "
                 f"{before['containers'][n]['memory']} -> {human(self.mem)}{restart}"
                 for n in mem_changes]
        predicted = predict(before, replicas, mem_changes, human(self.mem), human(self.swap),
                            p["scale_service_restart"])
        result: dict[str, Any] = {
            "changed": bool(plan), "before": before, "after": predicted,
            "diff": {"before": _diff_view(before), "after": _diff_view(predicted)}}
        if not plan:
            result["evidence"] = (f"{label}: " + ", ".join(
                [f"replicas already {replicas}"] * (replicas is not None)
                + [f"memory already {mem_s}"] * bool(mem_s)) + "; nothing to do")
            return result
        if self.module.check_mode:
            result["evidence"] = f"{label}: would set " + "; ".join(plan)
            return result
        changed = self.remediate(scale_needed, containers)
        after, problem = self.verify(changed)
        result["after"] = after
        result["diff"]["after"] = _diff_view(after)
        if problem:
            self.fail(problem, **result)
        now = f"{after['replicas_running']} replica(s) running" + (
            f", memory limit {mem_s}" if mem_s else "")
        result["evidence"] = f"{label}: " + "; ".join(plan) + f"; now {now}"
        return result


def predict(before: dict[str, Any], replicas: int | None, mem_changes: list[str],
            mem: str, swap: str, restart: bool) -> dict[str, Any]:
    """What check mode expects after: the wanted replicas, the new limits."""
    out = {**before, "containers": {n: dict(c) for n, c in before["containers"].items()}}
    if replicas is not None:
        out.update(replicas_running=replicas, replicas_total=replicas)
    for name in mem_changes:
        out["containers"][name].update(memory=mem, memory_swap=swap)
        if restart:
            out["containers"][name]["state"] = "running"
    return out


def _diff_view(snap: dict[str, Any]) -> str:
    lines = [f"replicas: {snap['replicas_running']} running of {snap['replicas_total']}"]
    lines += [f"{n}: {c['state']}, memory {c['memory']}, swap {c['memory_swap']}"
              for n, c in snap["containers"].items()]
    return "\n".join(lines) + "\n"


# The role's meta/argument_specs.yml options, the same names and types (a unit test
# keeps them equal): the module validates its own input, so no validation task is needed.
ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "scale_service_container": {"type": "str", "default": ""},
    "scale_service_project_name": {"type": "str", "default": ""},
    "scale_service_service": {"type": "str", "default": ""},
    "scale_service_project_src": {"type": "str", "default": ""},
    "scale_service_replicas": {"type": "int", "required": False},
    "scale_service_memory": {"type": "str", "default": ""},
    "scale_service_memory_swap": {"type": "str", "default": ""},
    "scale_service_min_replicas": {"type": "int", "default": 1},
    "scale_service_max_replicas": {"type": "int", "default": 4},
    "scale_service_max_memory": {"type": "str", "default": "1g"},
    "scale_service_allow_zero": {"type": "bool", "default": False},
    "scale_service_restart": {"type": "bool", "default": False},
    "scale_service_wait_timeout": {"type": "int", "default": 60},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = Scaler(module, Engine()).run()
    except EngineError as exc:
        module.fail_json(msg=f"scale_service: {exc}")
    module.exit_json(msg=result["evidence"], **result)


if __name__ == "__main__":
    main()
