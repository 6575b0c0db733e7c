#!/usr/bin/python
"""Ansible module: restart what is down or unhealthy, in order, waiting for each."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.docker_engine import Engine, EngineError, describe, health, wait_until

DOCUMENTATION = r"""
---
module: container_restart
short_description: Restart one container or an ordered group, waiting for each
description:
  - probe - reads every named container and, with
    O(restart_containers_only_if_unhealthy), requests the URLs of the running
    ones; works out which to restart and why; fails naming the variable on bad
    input before anything changes.
  - remediate - in the given order, for each container to restart, rebuilds
    its image (O(restart_containers_rebuild)), recreates it through compose
    (O(restart_containers_force_recreate), keeping the service's replica
    count) or starts/restarts it, then waits until it runs, is healthy when it
    has a Docker healthcheck, and its URL answers 200. The containers after
    one that does not come back are not touched.
  - verify - every named container runs and none is unhealthy.
  - Check mode reports the restarts it would do and changes nothing; diff mode
    shows each container's state before and after.
  - Options carry the role's variable names so a bad value is reported under
    the name the user set.
options:
  restart_containers_names:
    type: list
    elements: str
    required: true
    description: "Containers, in order."
  restart_containers_only_if_unhealthy:
    type: bool
    default: true
    description: "Restart only what is down, unhealthy or failing its URL."
  restart_containers_force_recreate:
    type: bool
    default: false
    description: Recreate through compose instead of restarting.
  restart_containers_rebuild:
    type: bool
    default: false
    description: Rebuild the image first (implies recreate).
  restart_containers_build_path:
    type: str
    default: ""
    description: "Build context, required with rebuild."
  restart_containers_build_args: {type: dict, default: {}, description: Build arguments.}
  restart_containers_build_labels:
    type: dict
    default: {}
    description: Labels of the rebuilt image (the image it replaces loses its tag).
  restart_containers_project_src:
    type: str
    default: ""
    description: Compose project directory (default from the label).
  restart_containers_urls:
    type: dict
    default: {}
    description: Container name to URL that must answer 200.
  restart_containers_wait_timeout:
    type: int
    default: 60
    description: "Seconds to wait for each container, and again for its URL."
  restart_containers_url_timeout:
    type: int
    default: 2
    description: Per-request timeout of URL probes.
"""

RETURN = r"""
evidence: {description: One line per container - what was wrong and what was done., type: str}
plan: {description: Containers to restart with the reason, in order., type: list}
before: {description: Container name to state before (e.g. exited 137, OOM-killed)., type: dict}
after: {description: Container name to state after., type: dict}
"""

PROJECT, SERVICE, WORKDIR = (
    "com.docker.compose.project", "com.docker.compose.service",
    "com.docker.compose.project.working_dir")


def url_status(url: str, timeout: float) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (URL from the role's config)
            return int(resp.status), ""
    except urllib.error.HTTPError as exc:
        return int(exc.code), f"HTTP {exc.code}"
    except (OSError, ValueError, http.client.HTTPException) as exc:  # cut short: no answer
        return 0, f"{type(exc).__name__}: {exc}"[:200]


def reason(state: dict[str, Any], url: str | None, url_timeout: float,
           only_if_unhealthy: bool) -> str:
    """Why this container needs a restart ('' when it does not)."""
    if not state.get("Running"):
        oom = ", OOM-killed" if state.get("OOMKilled") else ""
        return (f"not running ({state.get('Status', 'gone')}, exit code "
                f"{state.get('ExitCode', '')}{oom})")
    if health(state) == "unhealthy":
        return "Docker healthcheck says unhealthy"
    if not only_if_unhealthy:
        return "healthy, restarted anyway (restart_containers_only_if_unhealthy is false)"
    if url:
        status, error = url_status(url, url_timeout)
        if status != 200:
            return f"{url} does not answer 200: {error or status}"
    return ""


def input_errors(p: dict[str, Any], found: dict[str, dict[str, Any] | None]) -> list[str]:
    errors = []
    if not p["restart_containers_names"]:
        errors.append("restart_containers_names: give at least one container")
    var = "restart_containers_rebuild" if p["restart_containers_rebuild"] else \
    "restart_containers_force_recreate"
    for name, c in found.items():
        if c is None:
            errors.append(f"restart_containers_names: no container named '{name}'")
        elif p["restart_containers_force_recreate"] or p["restart_containers_rebuild"]:
            if PROJECT not in (c["Config"].get("Labels") or {}):
                errors.append(f"{var}: '{name}' is not managed by docker compose, so it cannot be "
                              "recreated from its definition")
            elif p["restart_containers_rebuild"] and c["Config"]["Image"].startswith("sha256:"):
                errors.append(f"restart_containers_rebuild: '{name}' runs an untagged image, "
                              "there is no name to rebuild")
    errors += [f"restart_containers_urls: '{name}' is not one of restart_containers_names"
               for name in p["restart_containers_urls"] if name not in found]
    if p["restart_containers_rebuild"] and not p["restart_containers_build_path"]:
        errors.append("restart_containers_build_path: required when restart_containers_rebuild "
                      "is true")
    return errors


class Restarter:
    def __init__(self, module: AnsibleModule, engine: Engine) -> None:
        self.module = module
        self.engine = engine
        self.p = module.params
        self.timeout = self.p["restart_containers_wait_timeout"]

    def run(self, argv: list[str], what: str) -> None:
        rc, out, err = self.module.run_command(argv, environ_update={"DOCKER_BUILDKIT": "0"})
        if rc != 0:
            tail = (err or out).strip().splitlines()[-3:]
            raise RuntimeError(f"{what} exited {rc}: {' '.join(tail)}")

    def rebuild(self, image: str) -> None:
        argv = ["docker", "build", "-q", "-t", image]
        for key, value in self.p["restart_containers_build_args"].items():
            argv += ["--build-arg", f"{key}={value}"]
        for key, value in self.p["restart_containers_build_labels"].items():
            argv += ["--label", f"{key}={value}"]
        self.run([*argv, self.p["restart_containers_build_path"]], f"docker build {image}")

    def recreate(self, c: dict[str, Any]) -> str:
        labels = c["Config"]["Labels"]
        project, service = labels[PROJECT], labels[SERVICE]
        replicas = len(self.engine.containers([f"{PROJECT}={project}", f"{SERVICE}={service}"]))
        src = self.p["restart_containers_project_src"] or labels.get(WORKDIR, "")
        self.run(["docker", "compose", "--project-directory", src, "-p", project, "up", "-d",
                  "--force-recreate", "--no-deps", "--no-build", "--pull", "never",
                  "--scale", f"{service}={max(replicas, 1)}", "--wait",
                  "--wait-timeout", str(self.timeout), service],
                 f"docker compose up --force-recreate {service}")
        # The name is kept by compose; read the new container.
        return str(c["Name"]).lstrip("/")

    def wait_healthy(self, name: str) -> str:
        """'' once the container runs and is not starting/unhealthy, else what is wrong."""
        last: dict[str, Any] = {}

        def ready() -> bool:
            c = self.engine.container(name)
            last["state"] = (c or {}).get("State") or {}
            state = last["state"]
            return bool(state.get("Running")) and health(state) in {"none", "healthy"}

        if wait_until(ready, self.timeout, 0.1):
            return ""
        return f"state is {describe(last.get('state') or {}) or 'gone'}"

    def wait_url(self, url: str) -> str:
        last = {"error": ""}

        def ok() -> bool:
            status, error = url_status(url, self.p["restart_containers_url_timeout"])
            last["error"] = error or str(status)
            return status == 200

        return "" if wait_until(ok, self.timeout, 0.25) else f"{url} answers {last['error']}"

    def bring_back(self, name: str, c: dict[str, Any], why: str) -> str:
        """Restart one container and wait for it; the action taken."""
        rebuild = self.p["restart_containers_rebuild"]
        recreate = self.p["restart_containers_force_recreate"] or rebuild
        step = "restart"
        try:
            if rebuild:
                step = "rebuild"
                self.rebuild(c["Config"]["Image"])
            if recreate:
                step = "recreate"
                self.recreate(c)
                action = "rebuilt and recreated" if rebuild else "recreated"
            elif c["State"].get("Running"):
                self.engine.restart(name)
                action = "restarted"
            else:
                self.engine.start(name)
                action = "started"
            step = "wait for running and healthy"
            problem = self.wait_healthy(name)
            url = self.p["restart_containers_urls"].get(name)
            if not problem and url:
                step = "wait for its URL to answer 200"
                problem = self.wait_url(url)
        except (EngineError, RuntimeError) as exc:
            problem = str(exc)
        if problem:
            self.module.fail_json(
                msg=f"restart_containers_wait_timeout: {name} ({why}) did not come back within "
                    f"{self.timeout}s; {step} failed: {problem}")
        return action


# The role's meta/argument_specs.yml options, the same names and types (a unit test
# keeps them equal): the module validates its own input, so no validation task is needed.
ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "restart_containers_names": {"type": "list", "elements": "str", "required": True},
    "restart_containers_only_if_unhealthy": {"type": "bool", "default": True},
    "restart_containers_force_recreate": {"type": "bool", "default": False},
    "restart_containers_rebuild": {"type": "bool", "default": False},
    "restart_containers_build_path": {"type": "str", "default": ""},
    "restart_containers_build_args": {"type": "dict", "default": {}},
    "restart_containers_build_labels": {"type": "dict", "default": {}},
    "restart_containers_project_src": {"type": "str", "default": ""},
    "restart_containers_urls": {"type": "dict", "default": {}},
    "restart_containers_wait_timeout": {"type": "int", "default": 60},
    "restart_containers_url_timeout": {"type": "int", "default": 2},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    engine = Engine()
    try:
        # probe
        found = {name: engine.container(name) for name in p["restart_containers_names"]}
        errors = input_errors(p, found)
        if errors:
            module.fail_json(msg="; ".join(errors))
        containers = {n: c for n, c in found.items() if c is not None}
        before = {n: describe(c["State"]) for n, c in containers.items()}
        plan = []
        for name, c in containers.items():
            why = reason(c["State"], p["restart_containers_urls"].get(name),
                         p["restart_containers_url_timeout"],
                         p["restart_containers_only_if_unhealthy"])
            if why:
                plan.append({"name": name, "why": why,
                             "oom_killed": bool(c["State"].get("OOMKilled")),
                             "exit_code": c["State"].get("ExitCode")})
        result: dict[str, Any] = {"changed": bool(plan), "plan": plan, "before": before,
                                  "after": dict(before)}
        if not plan:
            result["evidence"] = (f"all {len(containers)} container(s) running and healthy, "
                                  "nothing to restart")
        elif module.check_mode:
            result["evidence"] = "would restart, in order: " + "; ".join(
                f"{s['name']} - {s['why']}" for s in plan)
        else:
            # remediate, in order; a failure stops before the next container
            restarter = Restarter(module, engine)
            done = [f"{s['name']} {s['why']}: "
                    f"{restarter.bring_back(s['name'], containers[s['name']], s['why'])}"
                    for s in plan]
            # verify
            after = {n: engine.container(n) for n in containers}
            result["after"] = {n: describe(c["State"]) if c else "gone" for n, c in after.items()}
            bad = [f"{n} ({result['after'][n]})" for n, c in after.items()
                   if not c or not c["State"].get("Running") or health(c["State"]) == "unhealthy"]
            if bad:
                module.fail_json(msg="restart_containers_names: not running or unhealthy after "
                                     f"the restarts: {', '.join(bad)}", **result)
            result["evidence"] = "; ".join(done) + "; now " + ", ".join(
                f"{n} {s}" for n, s in result["after"].items())
        result["diff"] = {"before": json.dumps(before, indent=1) + "\n",
                          "after": json.dumps(result["after"] if not module.check_mode else
                                              {n: ("restarted" if n in {s["name"] for s in plan}
                                                   else v) for n, v in before.items()},
                                              indent=1) + "\n"}
    except EngineError as exc:
        module.fail_json(msg=f"restart_containers: {exc}")
    module.exit_json(msg=result["evidence"], **result)


if __name__ == "__main__":
    main()
