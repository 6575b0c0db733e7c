#!/usr/bin/python
"""Ansible module: bring the local staging stack up, or tear it down, in one call."""

from __future__ import annotations

import hashlib
import http.client
import json
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.docker_engine import Engine, EngineError, describe

DOCUMENTATION = r"""
---
module: staging_stack
short_description: Bring the local staging stack up or tear it down
description:
  - present - probe (deploy source seeded?, its HEAD, the app/queues images, the
    compose file on disk), then remediate - seed the deploy-source repository on
    first bring-up (one commit, marked refs/deploy/good/<env>), build
    <project>/app:<HEAD> tagged <project>/app:deployed (GIT_COMMIT build arg,
    io.incident-runner.stack label) when it is missing or move the deployed tag
    to it, build <project>/queues:latest (with queues), write compose.yml when
    it differs, C(docker compose up -d --wait) with the web replicas - then
    verify that api and web (and worker, flows) answer 200 through the proxy.
  - absent - C(docker compose down -v --remove-orphans) when compose.yml exists
    and the project has containers, networks or volumes, removes the stack
    directory, then removes the images labelled io.incident-runner.stack=<project>
    that no container uses (newest first, so a child goes before its parent).
  - Check mode reports what would change and changes nothing (no build, no
    compose up, no wait); a second present on a healthy stack changes nothing.
  - Options carry the role's variable names so a bad value is reported under
    the name the user set.
options:
  staging_stack_project: {type: str, default: ir-staging, description: Compose project name.}
  staging_stack_state:
    type: str
    default: present
    choices: [present, absent]
    description: Up or down.
  staging_stack_dir:
    type: path
    description: Directory of compose.yml and the deploy source (the role sets it).
  staging_stack_deploy_src:
    type: path
    description: Deploy-source git checkout (the role sets it).
  staging_stack_app_template:
    type: path
    description: Tree the deploy source is seeded from (the role sets it).
  staging_stack_env:
    type: str
    default: staging
    description: Environment of refs/deploy/good/<env>.
  staging_stack_bind_address:
    type: str
    default: 127.0.0.1
    description: Host address of the proxy.
  staging_stack_http_port: {type: int, default: 18080, description: Host port of the proxy.}
  staging_stack_api_memory: {type: str, default: 64m, description: Memory limit of the api.}
  staging_stack_web_replicas: {type: int, default: 1, description: Web replicas.}
  staging_stack_wait_timeout: {type: int, default: 60, description: Seconds to wait for health.}
  staging_stack_queues: {type: bool, default: false, description: Add Redis, worker and flows.}
  staging_stack_redis_port: {type: int, default: 18081, description: Host port of Redis.}
  staging_stack_queue_names: {type: list, elements: str, description: BullMQ queues.}
  staging_stack_workflow_names: {type: list, elements: str, description: Scheduled workflows.}
  staging_stack_queues_src:
    type: path
    description: Build context of the queues image (the role sets it).
  role_path:
    type: path
    required: true
    description: The role's directory (its files/Caddyfile); set by the role's task.
"""

RETURN = r"""
evidence: {description: What was found and done, one clause per step (also the msg)., type: str}
actions: {description: Each change made (or that would be made in check mode)., type: list}
commit:
  description: The deployed commit (HEAD of the deploy source); empty in check mode before seeding.
  type: str
"""

LABEL = "io.incident-runner.stack"
PROJECT = "com.docker.compose.project"
SERVICE = "com.docker.compose.service"
GIT_IDENTITY = ["-c", "user.name=incident-runner",
                "-c", "user.email=staging@incident-runner.invalid"]
# Compose's progress statuses that mean it did something (community.docker's
# DOCKER_STATUS_WORKING, which docker_compose_v2 reports as changed).
COMPOSE_WORKING = frozenset({"Creating", "Starting", "Restarting", "Stopping", "Killing",
                             "Removing", "Recreate", "Pulling", "Building"})


def q(value: Any) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML): no value can break the file."""
    return json.dumps(str(value))


def render_compose(p: dict[str, Any]) -> str:
    """compose.yml of the stack: what templates/compose.yml.j2 rendered before it moved here
    (tests/unit/test_staging_stack.py pins the structure)."""
    role = Path(p["role_path"])
    caddyfile = role / "files" / "Caddyfile"
    # lookup('file') stripped trailing whitespace before hashing: keep the same label value,
    # so a stack made by the template is not recreated for nothing.
    caddy_sha1 = hashlib.sha1(caddyfile.read_text(encoding="utf-8").rstrip().encode(),
                              usedforsecurity=False).hexdigest()
    project, bind, queues = p["staging_stack_project"], p["staging_stack_bind_address"], \
        p["staging_stack_queues"]
    memory = q(p["staging_stack_api_memory"])
    proxy_nets = "edge, api_net, web_net" + (", queue_net" if queues else "")
    out = f"""\
# Written by the staging_stack role (library/staging_stack.py): edits are overwritten.
# Mirrors seed 000: Caddy in front, attached to one network per app, an api
# that calls a dependency (langfuse there, deps here), and a scalable web.
x-labels: &labels
  {LABEL}: {q(project)}

x-app: &app
  image: {q(f"{project}/app:deployed")}
  init: true
  restart: "no"
  stop_grace_period: 2s
  labels: *labels

services:
  proxy:
    image: incident-runner/proxy:latest
    init: true
    restart: "no"
    stop_grace_period: 2s
    labels:
      <<: *labels
      # A changed Caddyfile changes this label, so compose recreates the proxy
      # and it loads the file: no restart handler, none on a first bring-up.
      io.incident-runner.caddyfile-sha1: {q(caddy_sha1)}
    ports:
      - {q(f"{bind}:{p['staging_stack_http_port']}:8080")}
    volumes:
      - {q(f"{caddyfile}:/etc/caddy/Caddyfile:ro")}
    networks: [{proxy_nets}]

  api:
    <<: *app
    mem_limit: {memory}
    memswap_limit: {memory}
    environment:
      APP_ROLE: api
      DEPENDENCY_URL: http://deps:8080
    volumes:
      - api_state:/state
    networks: [api_net, backend]
    depends_on: [deps]

  web:
    <<: *app
    environment:
      APP_ROLE: web
    volumes:
      - web_state:/state
    networks: [web_net]

  deps:
    <<: *app
    environment:
      APP_ROLE: deps
    volumes:
      - deps_state:/state
    networks: [backend]

"""
    if queues:
        queue_names = q(",".join(p["staging_stack_queue_names"]))
        out += f"""\
  # Seeds 003/004: a real Redis, a BullMQ worker and the workflows app that
  # feeds its queues (staging/queues/). Redis is published on the bind
  # address for the pause_queue and redis_diagnostics roles.
  redis:
    image: incident-runner/redis:bookworm
    init: true
    restart: "no"
    stop_grace_period: 2s
    labels: *labels
    ports:
      - {q(f"{bind}:{p['staging_stack_redis_port']}:6379")}
    networks: [queue_net]

  worker:
    image: {q(f"{project}/queues:latest")}
    init: true
    restart: "no"
    stop_grace_period: 2s
    labels: *labels
    environment:
      REDIS_URL: redis://redis:6379
      QUEUES: {queue_names}
    networks: [queue_net]
    depends_on: [redis]

  flows:
    image: {q(f"{project}/queues:latest")}
    command: ["python3", "/app/flows.py"]
    init: true
    restart: "no"
    stop_grace_period: 2s
    labels: *labels
    environment:
      REDIS_URL: redis://redis:6379
      FEED_QUEUES: {queue_names}
      WORKFLOWS: {q(",".join(p["staging_stack_workflow_names"]))}
    networks: [queue_net]
    depends_on: [redis]

"""
    out += """\
networks:
  edge: {labels: *labels}
  api_net: {labels: *labels}
  web_net: {labels: *labels}
  backend: {labels: *labels}
"""
    if queues:
        out += "  queue_net: {labels: *labels}\n"
    out += """
volumes:
  api_state: {labels: *labels}
  web_state: {labels: *labels}
  deps_state: {labels: *labels}
"""
    return out


def compose_events(stderr: str) -> list[dict[str, Any]]:
    """The JSON progress events of ``docker compose --progress json`` (other lines skipped)."""
    events = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                events.append(event)
    return events


def compose_actions(command: str, events: list[dict[str, Any]]) -> list[str]:
    """['<command>: Container x-api-1 Recreate, Network x_edge Creating'] (each object
    compose changed, with its first working status, in order), or [] when it changed none."""
    first: dict[str, str] = {}
    for event in events:
        if event.get("status") in COMPOSE_WORKING:
            first.setdefault(str(event.get("id", "")), str(event["status"]))
    done = ", ".join(f"{what} {status}" for what, status in first.items())
    return [f"{command}: {done}"] if done else []


def compose_error(rc: int, stdout: str, stderr: str) -> str:
    """The tail of what compose said when it failed: its error events, else its last lines."""
    lines = [str(e.get("text") or e.get("message") or e.get("status") or "")
             for e in compose_events(stderr) if e.get("error") or e.get("level") == "error"]
    lines += [line for line in (stderr + "\n" + stdout).splitlines()
              if line.strip() and not line.startswith("{")]
    return f"exit {rc}: " + " | ".join(line.strip() for line in lines[-5:] if line.strip())


def url_status(opener: urllib.request.OpenerDirector, url: str, timeout: float) -> str:
    """'200', 'HTTP 502' or why there was no answer."""
    try:
        with opener.open(url, timeout=timeout) as resp:
            resp.read()  # an answer cut short (upstream killed mid-response) is no answer
            return str(resp.status) if resp.status == 200 else f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (OSError, ValueError, http.client.HTTPException) as exc:  # cut short: no answer
        return f"{type(exc).__name__}: {exc}"[:200]


class Stack:
    def __init__(self, module: AnsibleModule, engine: Engine) -> None:
        self.module = module
        self.engine = engine
        self.p = module.params
        self.project = self.p["staging_stack_project"]
        self.dir = Path(self.p["staging_stack_dir"])
        self.compose_file = self.dir / "compose.yml"
        self.actions: list[str] = []
        self.notes: list[str] = []

    # helpers -------------------------------------------------------------------------

    def fail(self, msg: str) -> None:
        self.module.fail_json(msg=msg, changed=bool(self.actions), actions=self.actions)

    def run(self, argv: list[str], what: str, cwd: str | None = None,
            env: dict[str, str] | None = None) -> str:
        rc, out, err = self.module.run_command(argv, cwd=cwd, environ_update=env or {})
        if rc != 0:
            tail = " | ".join((err or out).strip().splitlines()[-3:])
            self.fail(f"{what}: exit {rc}: {tail}")
        return str(out)

    def image(self, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self.engine.request(
                "GET", f"/images/{urllib.parse.quote(name)}/json")
        except EngineError as exc:
            if exc.status == 404:
                return None
            raise
        return found

    def compose(self, *args: str, dry_run: bool = False) -> list[dict[str, Any]]:
        argv = [self.module.get_bin_path("docker", required=True), "compose", "--ansi", "never",
                "--progress", "json", "--project-directory", str(self.dir),
                "--file", str(self.compose_file), "--project-name", self.project, *args]
        if dry_run:
            argv.append("--dry-run")
        rc, out, err = self.module.run_command(argv, cwd=str(self.dir))
        if rc != 0:
            self.fail(f"docker compose {args[0]} of {self.project} failed "
                      f"({self.compose_file}), {compose_error(rc, out, err)}")
        return compose_events(err)

    # present ---------------------------------------------------------------------------

    def seed(self) -> str:
        """Seed the deploy source on first bring-up; its HEAD ('' in check mode before seeding)."""
        src = Path(self.p["staging_stack_deploy_src"])
        git = self.module.get_bin_path("git", required=True)
        if not (src / ".git").is_dir():
            template = Path(self.p["staging_stack_app_template"])
            if not template.is_dir():
                self.fail(f"staging_stack_app_template: {template} is not a directory")
            self.actions.append(f"seed {src} from {template} "
                                f"(refs/deploy/good/{self.p['staging_stack_env']})")
            if self.module.check_mode:
                return ""
            self.dir.mkdir(parents=True, exist_ok=True)
            self.dir.chmod(0o750)
            src.mkdir(parents=True, exist_ok=True)
            shutil.copytree(template, src, symlinks=True, dirs_exist_ok=True)
            what = f"staging_stack_deploy_src: seeding {src}"
            self.run([git, "init", "-q", "-b", "main"], f"{what}: git init", cwd=str(src))
            self.run([git, *GIT_IDENTITY, "add", "-A"], f"{what}: git add", cwd=str(src))
            self.run([git, *GIT_IDENTITY, "commit", "-q", "-m", "staging app: initial release"],
                     f"{what}: git commit", cwd=str(src))
            self.run([git, "update-ref", f"refs/deploy/good/{self.p['staging_stack_env']}",
                      "HEAD"], f"{what}: git update-ref", cwd=str(src))
        return self.run([git, "-C", str(src), "rev-parse", "HEAD"],
                        f"staging_stack_deploy_src: reading HEAD of {src}").strip()

    def build(self, tags: list[str], path: str, args: dict[str, str], what: str) -> str:
        """docker build (the legacy builder, as community.docker.docker_image builds); the ID."""
        # --force-rm: a failed step leaves no container behind.
        argv = [self.module.get_bin_path("docker", required=True), "build", "-q", "--force-rm",
                "--label", f"{LABEL}={self.project}"]
        for tag in tags:
            argv += ["-t", tag]
        for key, value in args.items():
            argv += ["--build-arg", f"{key}={value}"]
        return self.run([*argv, "--", path], f"{what}: docker build {tags[0]} from {path}",
                        env={"DOCKER_BUILDKIT": "0"}).strip()

    def app_image(self, head: str) -> None:
        name = f"{self.project}/app"
        built, deployed = f"{name}:{head or '<HEAD>'}", f"{name}:deployed"
        src = self.p["staging_stack_deploy_src"]
        have = self.image(built) if head else None
        if have is None:
            self.actions.append(f"build {built} from {src}, tag {deployed}")
            if not self.module.check_mode:
                self.build([built, deployed], src, {"GIT_COMMIT": head},
                           "staging_stack_deploy_src")
            return
        current = self.image(deployed)
        if current is None or current["Id"] != have["Id"]:
            self.actions.append(f"tag {built} as {deployed}")
            if not self.module.check_mode:
                self.engine.request("POST", f"/images/{urllib.parse.quote(have['Id'])}/tag",
                                    query={"repo": name, "tag": "deployed"})

    def queues_image(self) -> None:
        # Always built (from the layer cache when nothing changed), as docker_image with
        # force_source did, so an edit of staging/queues reaches the stack; changed only
        # when the ID moves. Check mode cannot know without building: missing = change.
        name = f"{self.project}/queues:latest"
        before = self.image(name)
        if self.module.check_mode:
            if before is None:
                self.actions.append(f"build {name} from {self.p['staging_stack_queues_src']}")
            return
        built = self.build([name], self.p["staging_stack_queues_src"], {},
                           "staging_stack_queues_src")
        if before is None or before["Id"] != built:
            self.actions.append(f"build {name} from {self.p['staging_stack_queues_src']}")

    def write_compose(self) -> None:
        want = render_compose(self.p)
        try:
            have = self.compose_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            have = None
        if have == want:
            return
        self.actions.append(f"{'write' if have is None else 'update'} {self.compose_file}")
        if not self.module.check_mode:
            self.dir.mkdir(parents=True, exist_ok=True)
            tmp = self.compose_file.with_name(".compose.yml.tmp")
            tmp.write_text(want, encoding="utf-8")
            tmp.chmod(0o640)
            tmp.replace(self.compose_file)

    def up(self) -> None:
        args = ["up", "--detach", "--no-color", "--quiet-pull", "--pull", "never",
                "--scale", f"web={self.p['staging_stack_web_replicas']}"]
        if self.module.check_mode:
            # A dry run on the file on disk tells more only when the steps above change
            # nothing (no new file, image or tag); else the up is one of their changes.
            if self.actions or not self.compose_file.is_file():
                self.actions.append(f"docker compose up {self.project}")
            else:
                self.actions += compose_actions("docker compose up",
                                                self.compose(*args, dry_run=True))
            return
        self.actions += compose_actions("docker compose up", self.compose(
            *args, "--wait", "--wait-timeout", str(self.p["staging_stack_wait_timeout"])))

    def wait_healthy(self) -> None:
        services = ["api", "web"] + (["worker", "flows"] if self.p["staging_stack_queues"] else [])
        base = f"http://{self.p['staging_stack_bind_address']}:{self.p['staging_stack_http_port']}"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy
        timeout = self.p["staging_stack_wait_timeout"]
        deadline = time.monotonic() + timeout
        last = dict.fromkeys(services, "not asked")
        while True:
            for service in services:
                if last[service] != "200":
                    last[service] = url_status(opener, f"{base}/{service}/health", 2)
            if all(v == "200" for v in last.values()) or time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        bad = [s for s, v in last.items() if v != "200"]
        if bad:
            states = []
            for service in bad:
                found = self.engine.containers([f"{PROJECT}={self.project}",
                                                f"{SERVICE}={service}"])
                states.append(f"{service}: {base}/{service}/health answers {last[service]}; "
                              + (", ".join(self._container(c["Id"]) for c in found)
                                 or "no container"))
            self.fail(f"staging_stack_wait_timeout: not healthy through the proxy after {timeout}s "
                      f"- {'; '.join(states)}")
        self.notes.append(f"{', '.join(services)} answer 200 through {base}")

    def _container(self, ident: str) -> str:
        """'x-api-1 exited 137, OOM-killed' (the list's State lacks the exit code and OOM)."""
        found = self.engine.container(ident)
        return f"{found['Name'].lstrip('/')} {describe(found['State'])}" if found else ident[:12]

    def present(self) -> str:
        head = self.seed()
        self.app_image(head)
        if self.p["staging_stack_queues"]:
            self.queues_image()
        self.write_compose()
        self.up()
        if not self.module.check_mode:
            self.wait_healthy()
        return head

    # absent ----------------------------------------------------------------------------

    def absent(self) -> None:
        if self.compose_file.is_file():
            label = f"{PROJECT}={self.project}"
            flt = {"filters": json.dumps({"label": [label]})}
            volumes = self.engine.request("GET", "/volumes", query=flt) or {}
            objects = [*self.engine.containers([label]),
                       *(self.engine.request("GET", "/networks", query=flt) or []),
                       *(volumes.get("Volumes") or [])]
            # Nothing of the project left: compose down would do nothing, skip its run.
            if objects:
                if self.module.check_mode:
                    self.actions.append(f"docker compose down -v --remove-orphans {self.project}")
                else:
                    self.actions += compose_actions("docker compose down", self.compose(
                        "down", "--volumes", "--remove-orphans"))
        if self.dir.exists():
            self.actions.append(f"remove {self.dir}")
            if not self.module.check_mode:
                shutil.rmtree(self.dir)
        self.remove_images()

    def remove_images(self) -> None:
        # Listed and deleted one by one rather than pruned: a prune takes the engine's
        # global prune lock, and stacks torn down at once got 409 'a prune operation is
        # already running'. Like the prune, images a container uses are left alone.
        images = self.engine.request("GET", "/images/json", query={
            "filters": json.dumps({"label": [f"{LABEL}={self.project}"]})}) or []
        if not images:
            return
        containers = self.engine.request("GET", "/containers/json", query={"all": "1"}) or []
        # In check mode the project's own containers count as gone (compose down goes first).
        used = {c.get("ImageID") for c in containers
                if not (self.module.check_mode
                        and (c.get("Labels") or {}).get(PROJECT) == self.project)}
        for img in sorted(images, key=lambda i: i.get("Created", 0), reverse=True):
            tags = [t for t in img.get("RepoTags") or [] if t != "<none>:<none>"]
            shown = ", ".join(tags) or img["Id"][:19]
            if img["Id"] in used:
                self.notes.append(f"kept image {shown}: a container uses it")
                continue
            self.actions.append(f"remove image {shown}")
            if self.module.check_mode:
                continue
            try:  # force: an image tagged twice (<commit> and deployed) needs it
                self.engine.request("DELETE", f"/images/{urllib.parse.quote(img['Id'])}",
                                    query={"force": "1"})
            except EngineError as exc:
                if exc.status == 404:  # gone with its child (untagged parent)
                    continue
                raise


# The role's meta/argument_specs.yml options, the same names and types
# (tests/unit/test_staging_stack.py keeps them equal), plus the role's path: the module
# validates its own input, so playbooks/stack.yml skips Ansible's validation task.
ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "staging_stack_project": {"type": "str", "default": "ir-staging"},
    "staging_stack_state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
    "staging_stack_dir": {"type": "path"},
    "staging_stack_deploy_src": {"type": "path"},
    "staging_stack_app_template": {"type": "path"},
    "staging_stack_env": {"type": "str", "default": "staging"},
    "staging_stack_bind_address": {"type": "str", "default": "127.0.0.1"},
    "staging_stack_http_port": {"type": "int", "default": 18080},
    "staging_stack_api_memory": {"type": "str", "default": "64m"},
    "staging_stack_web_replicas": {"type": "int", "default": 1},
    "staging_stack_wait_timeout": {"type": "int", "default": 60},
    "staging_stack_queues": {"type": "bool", "default": False},
    "staging_stack_redis_port": {"type": "int", "default": 18081},
    "staging_stack_queue_names": {"type": "list", "elements": "str",
                                  "default": ["ingest", "notifications"]},
    "staging_stack_workflow_names": {"type": "list", "elements": "str",
                                     "default": ["ingest-orders", "sync-crm", "send-digest"]},
    "staging_stack_queues_src": {"type": "path"},
}
INTERNAL_SPEC: dict[str, dict[str, Any]] = {"role_path": {"type": "path", "required": True}}
# The role's defaults fill these; called without them there is nothing to act on.
NEEDED = ("staging_stack_dir", "staging_stack_deploy_src", "staging_stack_app_template",
          "staging_stack_queues_src")


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC | INTERNAL_SPEC, supports_check_mode=True)
    p = module.params
    missing = [name for name in NEEDED if not p[name]]
    if missing:
        module.fail_json(msg=f"{', '.join(missing)}: required (the role's defaults set them)")
    try:
        engine = Engine()  # DOCKER_HOST must be a unix:// socket
    except EngineError as exc:
        module.fail_json(msg=f"staging_stack: {exc}")
    stack = Stack(module, engine)
    head = ""
    try:
        if p["staging_stack_state"] == "present":
            head = stack.present()
        else:
            stack.absent()
    except (EngineError, OSError) as exc:
        stack.fail(f"staging_stack ({p['staging_stack_state']}): {exc}")
    done = ("would " if module.check_mode else "") + "; ".join(stack.actions) \
        if stack.actions else f"{stack.project} already {p['staging_stack_state']}"
    evidence = "; ".join([done, *stack.notes])
    module.exit_json(changed=bool(stack.actions), msg=evidence, evidence=evidence,
                     actions=stack.actions, commit=head)


if __name__ == "__main__":
    main()
