"""Benchmark: the cost of fixing a fault, against the floor of any Ansible-run fix, in one run.

One staging stack; every row measured ``--rounds`` times (median), wall seconds
and CPU seconds (user+sys of the whole process tree, from the rusage of waited-for
children):

- floor: ``ansible-playbook`` of a play with one
  ``community.docker.docker_container_info`` task on localhost, no facts;
- proxy-502, from "fault injected and confirmed (502)" to "verified 200":
  the runbook one-liner (``docker network connect`` x2), plain
  ``ansible-playbook playbooks/reconnect_networks.yml``, both followed by the
  scenario's HTTP checks (3 consecutive 200s for api and web through the proxy),
  and ``incident-runner remediate --scenario proxy-502`` (symptom check,
  diagnostics, lock, fix, verification, journal, report), with its per-phase
  breakdown read from the incident's timeline.jsonl;
- the plain playbook of each common remediation role, each with its fault
  injected (proxy-502: reconnect_networks; service-down: restart_containers;
  oom: scale_service), against the floor;
- the argument-spec validation task: the playbooks import their role with
  ``rolespec_validate: false`` (the module validates the same spec itself);
  ``roles: [reconnect_networks]``, as the runner calls a role, pays the task;
- one Docker engine read by the ``docker`` CLI vs the engine API over the socket.

Ratios from one run on one machine are what we compare, never absolute seconds.

    python bench/remediate_vs_baselines.py --rounds 3 --out bench/results.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "roles/docker_engine/module_utils"))

from docker_engine import Engine

from tests.stack import ROOT, VENV_BIN, Stack, docker, env, free_port, http_status

PLAYBOOK = str(VENV_BIN / "ansible-playbook")


@dataclass
class Sample:
    wall: float
    cpu: float
    phases: dict[str, float] = field(default_factory=dict)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(fn: Callable[[], None]) -> Sample:
    cpu0, t0 = children_cpu(), time.monotonic()
    fn()
    return Sample(time.monotonic() - t0, children_cpu() - cpu0)


def call(argv: list[str]) -> None:
    proc = subprocess.run(argv, cwd=ROOT, env=env(), capture_output=True, text=True,
                          timeout=600, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"{argv[:3]} exited {proc.returncode}\n{proc.stdout[-3000:]}"
                             f"\n{proc.stderr[-2000:]}")


def http_checks(stack: Stack, successes: int = 3, interval: float = 0.2,
                deadline: float = 15) -> None:
    """The proxy-502 scenario's checks: 3 consecutive 200s for api, then for web."""
    for path in ("/api/health", "/web/health"):
        good, end = 0, time.monotonic() + deadline
        while good < successes:
            if time.monotonic() > end:
                raise AssertionError(f"{path} not healthy within {deadline}s")
            good = good + 1 if http_status(stack.url + path, 2) == 200 else 0
            if good < successes:
                time.sleep(interval)


# Faults, each confirmed before the clock starts.
def break_proxy(stack: Stack) -> None:
    for net in ("api_net", "web_net"):
        docker("network", "disconnect", f"{stack.project}_{net}", stack.container("proxy"))
    assert http_status(stack.url + "/api/health") == 502


def stop_api(stack: Stack) -> None:
    docker("stop", "-t", "1", stack.container("api"))
    assert stack.wait_status("/api/health", 502) == 502


def oom_api(stack: Stack) -> None:
    """The state an OOM kill leaves: the api stopped under its old 64m limit."""
    docker("stop", "-t", "1", stack.container("api"))
    docker("update", "--memory", "64m", "--memory-swap", "64m", stack.container("api"))


def extra(stack: Stack, role_vars: dict[str, object]) -> list[str]:
    return ["-i", str(stack.inventory), "-e", json.dumps(role_vars)]


def proxy_vars(stack: Stack) -> dict[str, object]:
    return {"reconnect_networks_container": stack.container("proxy"),
            "reconnect_networks_networks": [
                f"{stack.project}_edge",
                {"name": f"{stack.project}_api_net", "aliases": ["proxy"]},
                {"name": f"{stack.project}_web_net", "aliases": ["proxy"]}]}


def write_plays(tmp: Path, stack: Stack) -> dict[str, Path]:
    floor = tmp / "floor.yml"
    floor.write_text(json.dumps([{
        "name": "Floor", "hosts": "staging", "gather_facts": False,
        "tasks": [{"name": "One module call", "community.docker.docker_container_info":
                   {"name": stack.container("proxy")}}]}]))
    validate = tmp / "reconnect_roles_keyword.yml"
    validate.write_text(json.dumps([{
        "name": "Reconnect as the runner calls a role", "hosts": "staging",
        "gather_facts": False, "roles": [{"role": "reconnect_networks"}]}]))
    return {"floor": floor, "validate": validate}


def phases(incident_dir: Path, started_wall: float, ended_wall: float) -> dict[str, float]:
    """Seconds per phase from the incident's timeline (startup and the tail from our clock)."""
    events = [json.loads(line) for line in (incident_dir / "timeline.jsonl").read_text()
              .splitlines() if line.strip()]

    def ts(event: dict[str, object]) -> float:
        return dt.datetime.fromisoformat(str(event["ts"]).replace("Z", "+00:00")).timestamp()

    out = {"startup": ts(events[0]) - started_wall}
    opened: dict[str, float] = {}
    look: list[float] = []  # the symptom check and diagnostics run at once: one span
    step_ended = 0.0
    for event in events:
        kind = event.get("kind")
        if kind == "step_started":
            opened[str(event["step"])] = ts(event)
        elif kind == "step_finished" and str(event["step"]) in opened:
            phase = str(event.get("phase") or "other")
            began = opened.pop(str(event["step"]))
            if phase == "diagnose":
                look += [began, ts(event)]
            else:
                out[phase] = out.get(phase, 0.0) + ts(event) - began
                step_ended = ts(event)
        elif kind in {"symptom", "verify_result"} and event.get("started"):
            began = ts({"ts": event["started"]})
            if kind == "symptom":
                look += [began, ts(event)]
            else:  # the runner's own HTTP checks (a verify playbook is a step above);
                # checks started while ansible-playbook exited count from the step's end
                out["verify"] = out.get("verify", 0.0) + ts(event) - max(began, step_ended)
    if look:
        out["look (symptom check + diagnostics)"] = max(look) - min(look)
    out["journal/report"] = ended_wall - ts(events[-1])
    out["other"] = (ended_wall - started_wall) - sum(out.values())
    return out


Method = tuple[Callable[[], None] | None, Callable[[], object], Callable[[], None] | None]


def measure(rounds: int, methods: dict[str, Method]) -> dict[str, list[Sample]]:
    """Every method once per round, the rounds one after another: the machine's drift
    (a shared 2-core machine) falls on every row alike, not on whichever ran last."""
    samples: dict[str, list[Sample]] = {name: [] for name in methods}
    for _ in range(rounds):
        for name, (fault, fix, after) in methods.items():
            if fault:
                fault()
            started_wall = time.time()
            cpu0, t0 = children_cpu(), time.monotonic()
            detail = fix()
            if after:
                after()
            sample = Sample(time.monotonic() - t0, children_cpu() - cpu0)
            if isinstance(detail, Path):
                sample.phases = phases(detail, started_wall, started_wall + sample.wall)
            samples[name].append(sample)
    return samples


def remediate(stack: Stack) -> Path:
    # A fresh state dir each round: the flap guard allows 3 remediations of a target an hour.
    os.environ["INCIDENT_RUNNER_STATE_DIR"] = tempfile.mkdtemp(prefix="state-", dir=stack.workdir)
    proc = stack.remediate("--scenario", "proxy-502", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return Path(json.loads(proc.stdout)["dir"])


def engine_read_costs(stack: Stack, n: int = 20) -> dict[str, Sample]:
    """One container inspect: the docker CLI (a process) vs the API over the socket."""
    name = stack.container("proxy")
    cli = timed(lambda: [docker("inspect", name) for _ in range(n)])
    engine = Engine()
    cpu0, t0 = time.process_time(), time.monotonic()
    for _ in range(n):
        engine.container(name)
    api = Sample(time.monotonic() - t0, time.process_time() - cpu0)
    return {"docker CLI `docker inspect`": Sample(cli.wall / n, cli.cpu / n),
            "engine API GET /containers/NAME/json": Sample(api.wall / n, api.cpu / n)}


def machine() -> str:
    def version(argv: list[str]) -> str:
        out = subprocess.run(argv, capture_output=True, text=True, check=False, env=env())
        return out.stdout.splitlines()[0] if out.stdout else "?"
    return (f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; nproc {os.cpu_count()}; "
            f"kernel {platform.release()}; Python {platform.python_version()}; "
            f"{version([PLAYBOOK, '--version'])}; load average at start "
            f"{os.getloadavg()[0]:.2f}")


def med(samples: list[Sample], attr: str) -> float:
    return statistics.median(getattr(s, attr) for s in samples)


def table(title: str, rows: dict[str, list[Sample]], base: str, note: str = "") -> list[str]:
    bw, bc = med(rows[base], "wall"), med(rows[base], "cpu")
    lines = [f"## {title}", "", *([note, ""] if note else []),
             "| method | wall s (median) | min-max | CPU s (median) | wall / floor "
             "| CPU / floor |", "|---|---|---|---|---|---|"]
    for name, samples in rows.items():
        w, c = med(samples, "wall"), med(samples, "cpu")
        walls = [s.wall for s in samples]
        lines.append(f"| {name} | {w:.2f} | {min(walls):.2f}-{max(walls):.2f} | {c:.2f} "
                     f"| {w / bw:.2f}x | {c / bc:.2f}x |")
    return [*lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--project", default="ir-bench", help="compose project of the stack")
    parser.add_argument("--port", type=int, default=0, help="stack port (default: a free one)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    header = machine()
    with tempfile.TemporaryDirectory(prefix="ir-bench-") as tmp_name:
        tmp = Path(tmp_name)
        stack = Stack(project=args.project, port=args.port or free_port(), workdir=tmp)
        stack.up()
        plays = write_plays(tmp, stack)
        pv = proxy_vars(stack)
        api = stack.container("api")
        try:
            floor_name = "floor: one-module play"
            plain_pb = [PLAYBOOK, str(ROOT / "playbooks/reconnect_networks.yml"),
                        *extra(stack, pv)]
            proxy_methods: dict[str, Method] = {
                floor_name: (None, lambda: call([PLAYBOOK, str(plays["floor"]),
                                                 "-i", str(stack.inventory)]), None),
                "runbook one-liner (`docker network connect` x2) + HTTP checks": (
                    lambda: break_proxy(stack),
                    lambda: [docker("network", "connect", f"{stack.project}_{net}",
                                    stack.container("proxy")) for net in ("api_net", "web_net")],
                    lambda: http_checks(stack)),
                "plain `ansible-playbook playbooks/reconnect_networks.yml` + HTTP checks": (
                    lambda: break_proxy(stack), lambda: call(plain_pb),
                    lambda: http_checks(stack)),
                "`incident-runner remediate --scenario proxy-502`": (
                    lambda: break_proxy(stack), lambda: remediate(stack), None),
            }
            role_methods: dict[str, Method] = {
                "proxy-502: playbooks/reconnect_networks.yml": (
                    lambda: break_proxy(stack), lambda: call(plain_pb), None),
                "service-down: playbooks/restart_containers.yml": (
                    lambda: stop_api(stack),
                    lambda: call([PLAYBOOK, str(ROOT / "playbooks/restart_containers.yml"),
                                  *extra(stack, {"restart_containers_names": [api]})]), None),
                "oom: playbooks/scale_service.yml (160m, restart)": (
                    lambda: oom_api(stack),
                    lambda: call([PLAYBOOK, str(ROOT / "playbooks/scale_service.yml"), *extra(
                        stack, {"scale_service_container": api, "scale_service_memory": "160m",
                                "scale_service_memory_swap": "160m",
                                "scale_service_max_memory": "512m",
                                "scale_service_restart": True})]), None),
                "proxy-502: `roles: [reconnect_networks]` (+ the argument-spec task)": (
                    lambda: break_proxy(stack),
                    lambda: call([PLAYBOOK, str(plays["validate"]), *extra(stack, pv)]), None),
            }
            measured = measure(args.rounds, {**proxy_methods, **role_methods})
            proxy = {name: measured[name] for name in proxy_methods}
            roles = {floor_name: measured[floor_name],
                     **{name: measured[name] for name in role_methods}}
            reads = engine_read_costs(stack)
        finally:
            stack.down()
    runner = proxy["`incident-runner remediate --scenario proxy-502`"]
    plain = proxy["plain `ansible-playbook playbooks/reconnect_networks.yml` + HTTP checks"]
    phase_names = list(dict.fromkeys(p for s in runner for p in s.phases))
    lines = [
        "# Remediation cost against the floor", "",
        "One command, from the repository root with the venv active (the stack is its own):",
        "", "    python bench/remediate_vs_baselines.py --rounds 3 --out bench/results.md", "",
        f"Run: {header}; {args.rounds} rounds. What the rows mean and what was concluded: "
        "bench/README.md.", "",
        *table("proxy-502: fault confirmed (502) -> verified 200", proxy,
               "floor: one-module play",
               "Rows after the floor include the scenario's HTTP checks."),
        f"remediate / plain playbook + checks: wall "
        f"{med(runner, 'wall') / med(plain, 'wall'):.2f}x,"
        f" CPU {med(runner, 'cpu') / med(plain, 'cpu'):.2f}x", "",
        "### incident-runner remediate, per phase (median s, from timeline.jsonl)", "",
        "| phase | s | share |", "|---|---|---|",
        *[f"| {p} | {statistics.median(s.phases.get(p, 0.0) for s in runner):.2f} | "
          f"{statistics.median(s.phases.get(p, 0.0) / s.wall for s in runner):.0%} |"
          for p in phase_names], "",
        *table("Plain playbook of each common role, fault injected", roles,
               "floor: one-module play"),
        "## One engine read: docker CLI vs engine API (mean of 20)", "",
        "| method | wall ms | CPU ms |", "|---|---|---|",
        *[f"| {k} | {v.wall * 1000:.1f} | {v.cpu * 1000:.1f} |" for k, v in reads.items()], "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
