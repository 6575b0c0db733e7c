#!/usr/bin/python
"""Ansible module: capture container diagnostics into an incident folder, secrets redacted."""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ansible.module_utils.docker_engine import Engine, EngineError
from ansible.module_utils.incident_redaction import SENSITIVE_NAMES, RuleRedactor

DOCUMENTATION = r"""
module: incident_diagnostics
short_description: Save container status, inspect, logs, recent changes and resource use
description:
  - One pass over the Docker engine API (the docker CLI, argv only, where the API
    cannot answer), the containers' cgroup files, git and /proc, run in
    parallel, written into O(dest) - directories 0700, files 0600, each file
    written to a temporary name and renamed into place, manifest.json last.
  - Read-only toward the system. Secrets are redacted before anything is
    written - environment variables and labels whose names match
    O(secret_names) get the value C(***), and token-like strings (bearer and
    basic credentials, key=value assignments with secret-looking keys,
    credentials in URLs, GitHub/Slack/AWS/JWT shapes, O(secret_patterns)) are
    masked in logs, inspect output and git history.
  - A complete capture (manifest.json present) is never overwritten unless
    O(overwrite) - the evidence from before a change must survive a second
    run. In check mode nothing is written (the role runs this with
    check_mode false on purpose).
  - A listed container that does not exist is recorded as missing and warned
    about, not an error - during an incident it may be exactly what went wrong.
options:
  dest: {type: path, required: true, description: Directory to write (created 0700).}
  containers: {type: list, elements: str, default: [], description: Container names or IDs.}
  project: {type: str, default: "", description: Also every container of this compose project.}
  log_lines: {type: int, default: 200, description: Last N log lines per container.}
  repo: {type: path, required: false, description: Git checkout whose recent history to record.}
  git_log_count: {type: int, default: 20, description: Commits of history to record.}
  docker: {type: str, default: "", description: Docker CLI if the engine API fails.}
  secret_names: {type: str, description: Case-insensitive regex for secret env and label names.}
  secret_patterns: {type: list, elements: str, default: [], description: Extra regexes to mask.}
  overwrite: {type: bool, default: false, description: Capture again over a complete capture.}
  timeout: {type: int, default: 30, description: Seconds allowed for each command.}
"""

# The shared rules (roles/redaction): the same the runner applies to everything it writes.
DEFAULT_SECRET_NAMES = SENSITIVE_NAMES
Redactor = RuleRedactor
_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(?:Z|[+-]\d\d:\d\d)\s")


def _sort_key(line: str) -> str:
    """RFC 3339 timestamp with the fraction padded to 9 digits (docker trims trailing zeros)."""
    m = _TS.match(line)
    return f"{m.group(1)}.{(m.group(2) or '').ljust(9, '0')}" if m else ""


def _json_lines(text: str) -> list[dict[str, Any]]:
    rows = []
    for line in text.splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


def _stats_row(raw: dict[str, Any]) -> dict[str, Any]:
    """The engine's stats in `docker stats --format json`'s keys (one-shot: no CPU delta)."""
    mem = raw.get("memory_stats") or {}
    usage = int(mem.get("usage") or 0) - int((mem.get("stats") or {}).get("inactive_file") or 0)
    limit = int(mem.get("limit") or 0)
    mib = 2 ** 20
    return {
        "Name": str(raw.get("name") or "").lstrip("/"), "ID": str(raw.get("id") or "")[:12],
        "CPUPerc": "n/a", "MemUsage": f"{usage / mib:.1f}MiB / {limit / mib:.1f}MiB",
        "MemPerc": f"{100 * usage / limit:.2f}%" if limit else "n/a",
        "MemUsageBytes": usage, "MemLimitBytes": limit,
        "PIDs": str((raw.get("pids_stats") or {}).get("current", "")),
    }


def _ps_row(c: dict[str, Any]) -> dict[str, Any]:
    """An engine /containers/json entry in `docker ps --format json`'s keys."""
    ports = ", ".join(
        (f"{p['IP']}:{p['PublicPort']}->" if p.get("PublicPort") else "")
        + f"{p.get('PrivatePort')}/{p.get('Type', 'tcp')}" for p in c.get("Ports") or [])
    created = datetime.datetime.fromtimestamp(int(c.get("Created") or 0), datetime.UTC)
    return {"Names": ",".join(n.lstrip("/") for n in c.get("Names") or []),
            "Image": c.get("Image", ""), "State": c.get("State", ""),
            "Status": c.get("Status", ""), "Ports": ports,
            "CreatedAt": created.strftime("%Y-%m-%d %H:%M:%S +0000 UTC")}


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _cgroup_dirs(pid: int, cid: str) -> dict[str, Path]:
    """The container's memory and pids cgroup directories (v1 or v2), from /proc/PID/cgroup.
    Empty unless the path names the container: a PID of another PID namespace must not
    be read as this container's."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text(encoding="ascii").splitlines()
    except OSError:
        return {}
    dirs: dict[str, Path] = {}
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if cid not in path:
            continue
        if controllers == "":  # v2: one unified hierarchy
            dirs.setdefault("memory", Path("/sys/fs/cgroup" + path))
            dirs.setdefault("pids", Path("/sys/fs/cgroup" + path))
        for name in ("memory", "pids"):
            if name in controllers.split(","):
                dirs[name] = Path(f"/sys/fs/cgroup/{name}{path}")
    return dirs


def cgroup_stats(container: dict[str, Any]) -> dict[str, Any] | None:
    """`_stats_row`'s fields from the container's cgroup files; None when unreadable."""
    pid = int((container.get("State") or {}).get("Pid") or 0)
    dirs = _cgroup_dirs(pid, container["Id"]) if pid else {}
    mem, pids = dirs.get("memory"), dirs.get("pids")
    if mem is None:
        return None
    v2 = (mem / "memory.current").exists()
    usage = _read_int(mem / ("memory.current" if v2 else "memory.usage_in_bytes"))
    if usage is None:
        return None
    limit = _read_int(mem / ("memory.max" if v2 else "memory.limit_in_bytes"))
    inactive = 0
    try:
        for line in (mem / "memory.stat").read_text(encoding="ascii").splitlines():
            key, _, value = line.partition(" ")
            if key == ("inactive_file" if v2 else "total_inactive_file") and value.isdigit():
                inactive = int(value)
    except OSError:
        pass
    if not limit or limit >= 2 ** 62:  # "max" (v2) or the v1 sentinel: the host's memory
        limit = meminfo().get("MemTotal", 0)
    current = _read_int(pids / "pids.current") if pids else None
    return _stats_row({"name": container.get("Name", ""), "id": container["Id"],
                       "memory_stats": {"usage": usage, "limit": limit,
                                        "stats": {"inactive_file": inactive}},
                       "pids_stats": {"current": "" if current is None else current}})


class Capture:
    def __init__(self, params: dict[str, Any]) -> None:
        self.p = params
        self.dest = Path(self.p["dest"])
        self.errors: list[str] = []
        self.files: list[str] = []
        self.docker = ""
        self.engine: Engine | None = None
        try:
            self.engine = Engine(timeout=self.p["timeout"])
        except EngineError as exc:  # a tcp DOCKER_HOST: the CLI knows how to reach it
            self.errors.append(f"engine API: {exc}; using the docker CLI")
        self.redactor = Redactor(self.p["secret_names"] or DEFAULT_SECRET_NAMES,
                                 self.p["secret_patterns"])

    def docker_cli(self) -> str:
        """The docker CLI, for what the engine API could not answer."""
        if self.docker:
            return self.docker
        wanted = self.p["docker"]
        if wanted:
            found = shutil.which(wanted)
        elif os.access("/usr/bin/docker", os.X_OK):
            found = "/usr/bin/docker"
        else:
            found = shutil.which("docker")
        self.docker = str(found or wanted or "docker")  # a missing CLI: each call records it
        return self.docker

    def run(self, argv: list[str], what: str, record: bool = True) -> tuple[int, str, str]:
        """Run argv (never a shell); a failure goes into the manifest unless record is false."""
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, errors="replace",
                                  timeout=self.p["timeout"], env={**os.environ, "LC_ALL": "C"},
                                  check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            self.errors.append(f"{what}: {exc}")
            return -1, "", str(exc)
        if proc.returncode != 0 and record:
            self.errors.append(f"{what}: rc {proc.returncode}: {proc.stderr.strip()[:300]}")
        return proc.returncode, proc.stdout, proc.stderr

    # -- gathering ----------------------------------------------------------
    # Reads go to the engine API over its socket (~1 ms each; a `docker` CLI call is a
    # process, 20-150 ms); the first API failure (no socket, a tcp DOCKER_HOST) is
    # recorded and the CLI does the rest.
    def api_failed(self, what: str, exc: EngineError) -> None:
        self.errors.append(f"engine API ({what}): {exc}; using the docker CLI")
        self.engine = None

    def containers(self) -> tuple[list[dict[str, Any]], list[str]]:
        """Inspect the listed containers and the project's; name the missing ones."""
        refs = list(self.p["containers"])
        engine = self.engine
        if engine is not None:
            try:
                if self.p["project"]:
                    listed = engine.containers([f"com.docker.compose.project={self.p['project']}"])
                    refs += [c["Id"] for c in listed if c["Id"] not in refs]
                with ThreadPoolExecutor(max_workers=8) as pool:
                    found = [c for c in pool.map(engine.container, refs) if c is not None]
                return self._judge(refs, found)
            except EngineError as exc:
                self.api_failed("inspect", exc)
                refs = list(self.p["containers"])
        if self.p["project"]:
            _, out, _ = self.run([self.docker_cli(), "ps", "-a", "-q", "--no-trunc", "--filter",
                                  f"label=com.docker.compose.project={self.p['project']}"],
                                 "list project containers")
            refs += [line for line in out.split() if line not in refs]
        if not refs:
            return [], []
        # Some missing: rc 1, the found ones still on stdout. Judged below, not an error.
        _, out, err = self.run([self.docker_cli(), "inspect", "--type", "container", *refs],
                               "docker inspect", record=False)
        try:
            found = json.loads(out) if out.strip() else []
        except ValueError as exc:
            self.errors.append(f"docker inspect: unreadable output: {exc}; {err.strip()[:300]}")
            found = []
        return self._judge(refs, found)

    @staticmethod
    def _judge(refs: list[str], found: list[dict[str, Any]]) -> tuple[list[dict[str, Any]],
                                                                       list[str]]:
        unique = list({c["Id"]: c for c in found}.values())
        unique.sort(key=lambda c: c["Name"])
        names = {c["Name"].lstrip("/") for c in unique}
        missing = [ref for ref in refs
                   if ref not in names and not any(c["Id"].startswith(ref) for c in unique)]
        return unique, missing

    def logs(self, container: dict[str, Any]) -> str:
        """The last N lines, stdout and stderr merged in time order, each marked out/err."""
        if self.p["log_lines"] == 0:
            return ""
        cid, tail = container["Id"], self.p["log_lines"]
        out = err = None
        if self.engine is not None:
            try:
                tty = bool((container.get("Config") or {}).get("Tty"))
                out, err = self.engine.logs(cid, tail, tty=tty)
            except EngineError as exc:
                self.api_failed(f"logs {cid[:12]}", exc)
        if out is None or err is None:
            _, out, err = self.run([self.docker_cli(), "logs", "--timestamps", "--tail",
                                    str(tail), cid], f"docker logs {cid[:12]}")
        lines = [(_sort_key(ln), 0, ln) for ln in out.splitlines()]
        lines += [(_sort_key(ln), 1, ln) for ln in err.splitlines()]
        lines.sort(key=lambda t: (t[0], t[1]))
        merged = []
        for _key, stream, line in lines[-tail:]:
            ts, _, rest = line.partition(" ")
            merged.append(f"{ts} {'err' if stream else 'out'} {rest}")
        return self.redactor.text("".join(f"{m}\n" for m in merged))

    def stats(self, running: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Memory and pids per running container, read from its cgroup (microseconds);
        the engine's stats API only for a container whose cgroup this host cannot read
        (it answers ~1 s after the request on Docker 20.10), the CLI if the API fails."""
        rows, unread = [], []
        for c in running:
            row = cgroup_stats(c)
            if row is None:
                unread.append(c["Id"])
            else:
                rows.append(row)
        if not unread:
            return rows
        engine = self.engine
        if engine is not None:
            try:
                with ThreadPoolExecutor(max_workers=8) as pool:
                    raw = list(pool.map(lambda cid: engine.request(
                        "GET", f"/containers/{cid}/stats",
                        query={"stream": "false", "one-shot": "true"}), unread))
                return rows + [_stats_row(r) for r in raw if isinstance(r, dict)]
            except EngineError as exc:
                self.api_failed("stats", exc)
        _, out, _ = self.run([self.docker_cli(), "stats", "--no-stream", "--no-trunc",
                              "--format", "{{json .}}", *unread], "docker stats")
        return rows + _json_lines(out)

    def host_containers(self) -> list[dict[str, Any]]:
        """Every container of the host, in `docker ps -a --format json`'s keys."""
        keys = ("Names", "Image", "State", "Status", "Ports", "CreatedAt")
        if self.engine is not None:
            try:
                listed = self.engine.request("GET", "/containers/json", query={"all": "1"})
                return [_ps_row(c) for c in listed]
            except EngineError as exc:
                self.api_failed("ps", exc)
        _, out, _ = self.run([self.docker_cli(), "ps", "-a", "--no-trunc", "--format",
                              "{{json .}}"], "docker ps -a")
        return [{k: row.get(k, "") for k in keys} for row in _json_lines(out)]

    def df(self) -> tuple[str, list[dict[str, Any]]]:
        _, out, _ = self.run(["df", "-P", "-k"], "df")
        rows = []
        for line in out.splitlines()[1:]:
            parts = line.split()
            if len(parts) >= 6 and all(x.isdigit() for x in parts[1:4]):
                rows.append({"filesystem": parts[0], "kib": int(parts[1]),
                             "used_kib": int(parts[2]), "available_kib": int(parts[3]),
                             "use": parts[4], "mount": " ".join(parts[5:])})
        return out, rows

    def git(self) -> dict[str, Any]:
        repo = self.p["repo"]
        if not repo:
            return {}
        git = shutil.which("git")
        if not git:
            self.errors.append("git: not found on PATH")
            return {"repo": repo}
        base = [git, "-C", repo]
        rc, head, _ = self.run([*base, "rev-parse", "HEAD"], f"git rev-parse HEAD in {repo}")
        if rc != 0:
            return {"repo": repo, "error": "not a git checkout"}
        _, log, _ = self.run([*base, "log", "-n", str(self.p["git_log_count"]),
                              "--format=%H%x1f%aI%x1f%an%x1f%s"], "git log")
        _, refs, _ = self.run([*base, "for-each-ref", "--format=%(refname)%1f%(objectname)",
                               "refs/deploy", "refs/heads", "refs/tags"], "git for-each-ref")
        _, status, _ = self.run([*base, "status", "--porcelain"], "git status")
        commits = []
        for line in log.splitlines():
            sha, date, author, subject = [*line.split("\x1f"), "", "", ""][:4]
            commits.append({"sha": sha, "date": date, "author": author,
                            "subject": self.redactor.text(subject)})
        return {"repo": repo, "head": head.strip(), "local_changes": status.splitlines(),
                "refs": dict(ln.split("\x1f", 1) for ln in refs.splitlines() if "\x1f" in ln),
                "log": commits}

    # -- writing ------------------------------------------------------------
    @staticmethod
    def mkdir(path: Path) -> None:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.chmod(0o700)

    def write(self, rel: str, content: str) -> None:
        """Write atomically: a 0600 temporary file in the same directory, fsynced, renamed."""
        path = self.dest / rel
        self.mkdir(path.parent)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(content)
                fh.flush()
                os.fsync(fh.fileno())
            Path(tmp).chmod(0o600)
            Path(tmp).replace(path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.files.append(rel)

    def write_json(self, rel: str, data: Any) -> None:
        self.write(rel, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def summarize(c: dict[str, Any]) -> dict[str, Any]:
    state = c.get("State") or {}
    config = c.get("Config") or {}
    labels = config.get("Labels") or {}
    return {
        "name": (c.get("Name") or "").lstrip("/"),
        "id": c.get("Id", "")[:12],
        "image": config.get("Image", ""),
        "image_id": c.get("Image", ""),
        "revision": labels.get("org.opencontainers.image.revision", ""),
        "compose_project": labels.get("com.docker.compose.project", ""),
        "compose_service": labels.get("com.docker.compose.service", ""),
        "status": state.get("Status", ""),
        "health": (state.get("Health") or {}).get("Status", ""),
        "exit_code": state.get("ExitCode"),
        "oom_killed": state.get("OOMKilled", False),
        "restart_count": c.get("RestartCount", 0),
        "created": c.get("Created", ""),
        "started_at": state.get("StartedAt", ""),
        "finished_at": state.get("FinishedAt", ""),
        "memory_limit": (c.get("HostConfig") or {}).get("Memory", 0),
        "networks": sorted(((c.get("NetworkSettings") or {}).get("Networks") or {}).keys()),
    }


def meminfo() -> dict[str, int]:
    out = {}
    try:
        text = Path("/proc/meminfo").read_text(encoding="ascii")
    except OSError:
        return out
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    return out


def loadavg() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text(encoding="ascii").split()[:3]]
    except (OSError, ValueError):
        return []


def summary_text(captured_at: str, rows: list[dict[str, Any]], missing: list[str],
                 stats: list[dict[str, Any]], mem: dict[str, int], disks: list[dict[str, Any]],
                 git: dict[str, Any], errors: list[str]) -> str:
    """A page a responder reads first; the JSON files hold the details."""
    lines = [f"Diagnostics captured {captured_at} on {socket.gethostname()}", "", "Containers:"]
    for r in rows:
        extra = [f"health={r['health']}"] if r["health"] else []
        if r["status"] != "running":
            extra.append(f"exit={r['exit_code']}")
        if r["oom_killed"]:
            extra.append("OOMKilled")
        if r["restart_count"]:
            extra.append(f"restarts={r['restart_count']}")
        lines.append(f"  {r['name']:<32} {r['status']:<10} {' '.join(extra):<28}"
                     f" created {r['created'][:19]}  rev {r['revision'][:12] or '-'}")
    lines += [f"  {name:<32} MISSING" for name in missing]
    if stats:
        lines += ["", "Resource use (memory and pids per container):"]
        lines += [f"  {s.get('Name', ''):<32} cpu {s.get('CPUPerc', ''):>7}"
                  f"  mem {s.get('MemUsage', '')} ({s.get('MemPerc', '')})"
                  f"  pids {s.get('PIDs', '')}" for s in stats]
    if mem:
        lines += ["", f"Host memory: {mem.get('MemAvailable', 0) // 2**20} MiB available"
                      f" of {mem.get('MemTotal', 0) // 2**20} MiB"]
    full = [d for d in disks if d["use"].rstrip("%").isdigit() and int(d["use"].rstrip("%")) >= 85]
    lines.append("Disks at 85% or more: "
                 + (", ".join(f"{d['mount']} {d['use']}" for d in full) or "none"))
    if git.get("log"):
        lines += ["", f"Recent commits in {git['repo']} (HEAD {git.get('head', '')[:12]}):"]
        lines += [f"  {c['sha'][:12]} {c['date'][:19]} {c['subject']}" for c in git["log"][:10]]
        if git.get("local_changes"):
            lines.append(f"  local changes: {len(git['local_changes'])} file(s)")
    if errors:
        lines += ["", "Errors while capturing:", *[f"  {e}" for e in errors]]
    return "\n".join(lines) + "\n"


ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "dest": {"type": "path", "required": True},
    "containers": {"type": "list", "elements": "str", "default": []},
    "project": {"type": "str", "default": ""},
    "log_lines": {"type": "int", "default": 200},
    "repo": {"type": "path", "required": False},
    "git_log_count": {"type": "int", "default": 20},
    "docker": {"type": "str", "default": ""},
    "secret_names": {"type": "str", "required": False},
    "secret_patterns": {"type": "list", "elements": "str", "default": []},
    "overwrite": {"type": "bool", "default": False},
    "timeout": {"type": "int", "default": 30},
}


class CaptureError(Exception):
    """Bad input or an unwritable destination: the capture did not start."""


def check_input(p: dict[str, Any]) -> None:
    if not p["containers"] and not p["project"]:
        raise CaptureError("capture_diagnostics_containers or capture_diagnostics_project: give "
                           "at least one (container names, or a compose project to capture)")
    if p["log_lines"] < 0 or p["git_log_count"] < 0:
        raise CaptureError("capture_diagnostics_log_lines and capture_diagnostics_git_log_count "
                           "must be 0 or more")
    patterns = [("capture_diagnostics_secret_names", p["secret_names"] or DEFAULT_SECRET_NAMES)]
    patterns += [("capture_diagnostics_secret_patterns", x) for x in p["secret_patterns"]]
    for name, pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise CaptureError(f"{name}: invalid regular expression {pattern!r}: {exc}") from None
    dest = Path(p["dest"])
    if dest.exists() and not dest.is_dir():
        raise CaptureError(f"capture_diagnostics_dest: {dest} exists and is not a directory")


def capture(p: dict[str, Any], check_mode: bool = False) -> dict[str, Any]:
    """The whole capture, from validated parameters to the module's result (its warnings
    under ``warnings``). Raises CaptureError before anything is written. The runner calls
    this in its own process for a target on its machine (incident_runner/evidence.py)."""
    check_input(p)
    dest = Path(p["dest"])
    if (dest / "manifest.json").exists() and not p["overwrite"]:
        return {"changed": False, "dest": str(dest), "kept_existing": True,
                "msg": f"diagnostics already captured in {dest}; kept as they are "
                       "(capture_diagnostics_overwrite: true captures again)"}
    if check_mode:
        return {"changed": True, "dest": str(dest),
                "msg": f"would capture diagnostics into {dest}"}

    started = time.monotonic()
    captured_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    cap = Capture(p)
    try:
        cap.mkdir(dest)
    except OSError as exc:
        raise CaptureError(f"capture_diagnostics_dest: cannot create {dest}: {exc}") from None

    inspected, missing = cap.containers()
    running = [c for c in inspected if (c.get("State") or {}).get("Running")]
    with ThreadPoolExecutor(max_workers=8) as pool:
        logs_f = {c["Id"]: pool.submit(cap.logs, c) for c in inspected}
        stats_f = pool.submit(cap.stats, running)
        host_f = pool.submit(cap.host_containers)
        df_f = pool.submit(cap.df)
        git_f = pool.submit(cap.git)
        logs = {cid: f.result() for cid, f in logs_f.items()}
        stats, host, git = stats_f.result(), host_f.result(), git_f.result()
        df_raw, disks = df_f.result()

    rows = [summarize(c) for c in inspected]
    mem = meminfo()
    for c, row in zip(inspected, rows, strict=True):
        cap.write_json(f"inspect/{row['name']}.json", cap.redactor.data(c))
        cap.write(f"logs/{row['name']}.log", logs[c["Id"]])
    cap.write_json("containers.json", {"selected": rows, "missing": missing, "host": host})
    cap.write_json("resources.json", {"docker_stats": stats, "memory_bytes": mem,
                                      "loadavg": loadavg(), "disks": disks})
    cap.write("df.txt", df_raw)
    by_created = sorted(({"name": r["name"], "created": r["created"], "started_at": r["started_at"],
                          "revision": r["revision"]} for r in rows),
                        key=lambda r: r["created"], reverse=True)
    cap.write_json("changes.json", {"git": git, "containers_by_created": by_created})
    cap.write("summary.txt", cap.redactor.text(
        summary_text(captured_at, rows, missing, stats, mem, disks, git, cap.errors)))
    duration = round(time.monotonic() - started, 3)
    cap.write_json("manifest.json", {
        "captured_at": captured_at, "duration_s": duration, "host": socket.gethostname(),
        "containers": [r["name"] for r in rows], "missing": missing, "project": p["project"],
        "repo": p["repo"] or "", "log_lines": p["log_lines"], "files": sorted(cap.files),
        "errors": cap.errors, "redacted": cap.redactor.count,
    })
    msg = f"captured {len(rows)} container(s) into {dest} in {duration}s"
    if missing:
        msg += f"; missing: {', '.join(missing)}"
    if cap.errors:
        msg += f"; {len(cap.errors)} error(s), see manifest.json"
    return {"changed": True, "dest": str(dest), "files": sorted(cap.files),
            "containers": [r["name"] for r in rows], "missing": missing, "errors": cap.errors,
            "redacted": cap.redactor.count, "duration_s": duration, "msg": msg,
            "warnings": [f"capture_diagnostics_containers: no container named {name} "
                         "(recorded as missing)" for name in missing]}


def main() -> None:
    # Imported here: the runner imports this file for `capture` and need not pay for it.
    from ansible.module_utils.basic import AnsibleModule  # noqa: PLC0415

    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = capture(module.params, module.check_mode)
    except CaptureError as exc:
        module.fail_json(msg=str(exc))
    for warning in result.pop("warnings", []):
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
