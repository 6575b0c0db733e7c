"""Benchmark: service-down on a fleet of real systemd hosts (docs/fleet.md). Not a test.

One set of ``max(--sizes)`` systemd hosts (playbooks/systemd_hosts.yml:
containers with systemd as PID 1, sshd on 127.0.0.1 ports) is made once; each
row breaks some of them (the api's unit SIGKILLed, as
playbooks/faults/systemd-service-down.yml does; confirmed from here before the
clock starts) and times one ``incident-runner remediate --scenario
service-down --limit HOSTS --json`` over the first N hosts:

- N = each of ``--sizes`` (default 5, 50, 100), all broken: wall and CPU
  seconds (user+sys of the runner's process tree; the hosts' own CPU from their
  containers' cpuacct cgroups, the modules run there), the runner tree's peak RSS
  (summed over its processes) and its largest process's, sampled from /proc
  every 0.2 s; the ratios N / smallest N;
- 50 hosts of which 3 are broken against the 3 broken hosts alone: only the
  3 are acted on (read from the incident's journal), and the wall ratio;
- the hosts' memory (``docker stats``, summed) with every host healthy.

Every row checks its own outcome (exit 0, every broken host resolved, healthy
ones never acted on) and raises if not. Ratios from one run on one machine are
what we compare, never absolute seconds.

    python bench/fleet.py --out bench/results.md            # appends a section
    python bench/fleet.py --sizes 5,20 --mixed 20:3         # smaller machine
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.stack import ROOT, VENV_BIN, docker, env, http_status, run

PREFIX = "ir-bench-fleet"
PAGE = os.sysconf("SC_PAGE_SIZE")
INOTIFY_PER_HOST = 5
UNITS = {"B": 1 / 2**20, "KiB": 1 / 1024, "MiB": 1.0, "GiB": 1024.0}


@dataclass
class Row:
    label: str
    hosts: int
    broken: int
    acted: int
    wall: float
    cpu: float
    host_cpu: float
    tree_rss_mb: float
    max_rss_mb: float
    steps: str


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def tree_rss(root: int) -> tuple[int, int]:
    """Bytes resident in ``root`` and every descendant, and in the largest one (/proc)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            statm = (entry / "statm").read_text().split()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        parents[int(entry.name)] = int(fields[1])
        rss[int(entry.name)] = int(statm[1]) * PAGE
    total, largest, todo = 0, 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        largest = max(largest, rss.get(pid, 0))
        todo += [p for p, pp in parents.items() if pp == pid]
    return total, largest


class Fleet:
    def __init__(self, count: int, ssh_base: int, app_base: int, inventory: Path,
                 parallel: int, forks: int | None = None) -> None:
        self.forks = forks
        self.count, self.ssh_base, self.app_base = count, ssh_base, app_base
        self.inventory = inventory
        self.args = ["-e", json.dumps({
            "systemd_hosts_prefix": PREFIX, "systemd_hosts_count": count,
            "systemd_hosts_ssh_port_base": ssh_base, "systemd_hosts_app_port_base": app_base,
            "systemd_hosts_inventory_dir": str(inventory), "systemd_hosts_parallel": parallel})]

    def name(self, n: int) -> str:
        return f"{PREFIX}-{n}"

    def host_cpu(self) -> float:
        """CPU seconds the hosts' containers used so far (cgroup v1 cpuacct, summed)."""
        ids = docker("ps", "-q", "--no-trunc", "--filter",
                     f"label=io.incident-runner.systemd-hosts={PREFIX}").split()
        total = 0
        for cid in ids:
            path = Path(f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage")
            if path.exists():
                total += int(path.read_text())
        return total / 1e9

    def url(self, n: int) -> str:
        return f"http://127.0.0.1:{self.app_base + n}/health"

    def hosts(self, state: str) -> None:
        run([str(VENV_BIN / "ansible-playbook"), str(ROOT / "playbooks" / "systemd_hosts.yml"),
             *self.args, "-e", f"systemd_hosts_state={state}"], timeout=3600)

    def each(self, fn: object, ns: list[int]) -> list[object]:
        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(fn, ns))  # type: ignore[arg-type]

    def break_api(self, ns: list[int]) -> None:
        def one(n: int) -> None:
            docker("exec", self.name(n), "systemctl", "kill", "--signal=SIGKILL",
                   "ir-app.service")
            for _ in range(100):
                if http_status(self.url(n), 1) != 200:
                    return
                time.sleep(0.1)
            raise AssertionError(f"{self.name(n)}: the api still answers after the kill")
        self.each(one, ns)

    def healthy(self, ns: list[int]) -> None:
        bad = [n for n, code in zip(ns, self.each(lambda n: http_status(self.url(n), 2), ns),
                                    strict=True) if code != 200]
        if bad:
            raise AssertionError(f"not healthy: {', '.join(self.name(n) for n in bad)}")

    def memory_mb(self) -> float:
        names = [self.name(n) for n in range(1, self.count + 1)]
        out = docker("stats", "--no-stream", "--format", "{{.MemUsage}}", *names)
        total = 0.0
        for line in out.splitlines():
            match = re.match(r"\s*([\d.]+)\s*([KMG]iB|B)", line)
            if match:
                total += float(match.group(1)) * UNITS[match.group(2)]
        return total

    def remediate(self, label: str, ns: list[int], broken: list[int], state: Path) -> Row:
        limit = ",".join(self.name(n) for n in ns)
        argv = [str(VENV_BIN / "incident-runner"), "--state-dir", str(state), "remediate",
                "--scenario", "service-down", "--inventory", str(self.inventory),
                "--limit", limit, "--json",
                *(["--forks", str(self.forks)] if self.forks else [])]
        peak = [0, 0]
        host0 = self.host_cpu()
        cpu0, t0 = children_cpu(), time.monotonic()
        proc = subprocess.Popen(argv, cwd=ROOT, env=env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.2):
                total, largest = tree_rss(proc.pid)
                peak[0], peak[1] = max(peak[0], total), max(peak[1], largest)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        out, err = proc.communicate(timeout=3600)
        wall = time.monotonic() - t0
        stop.set()
        sampler.join()
        cpu = children_cpu() - cpu0
        host_cpu = self.host_cpu() - host0
        if proc.returncode != 0:
            raise AssertionError(f"{label}: exit {proc.returncode}\n{out[-3000:]}\n{err[-2000:]}")
        summary = json.loads(out)
        rows = {h["host"]: h for h in summary["hosts"]}
        acted = sorted(h for h, r in rows.items() if r["steps"])
        want = sorted(self.name(n) for n in broken)
        if acted != want or any(rows[h]["outcome"] != "resolved" for h in want):
            raise AssertionError(f"{label}: acted on {acted}, broken {want}: {summary}")
        self.healthy(ns)
        steps = sorted({str(rows[h]["resolved_by"]) for h in want})
        return Row(label, len(ns), len(broken), len(acted), wall, cpu, host_cpu,
                   peak[0] / 2**20, peak[1] / 2**20, ",".join(steps))


def table(rows: list[Row], base: Row) -> list[str]:
    out = ["| run | hosts | broken | acted on | wall s | runner CPU s | hosts' CPU s | "
           "wall / base | CPU / base | runner tree peak RSS MiB | largest process MiB | "
           "fixed by |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    out += [f"| {r.label} | {r.hosts} | {r.broken} | {r.acted} | {r.wall:.1f} | {r.cpu:.1f} | "
            f"{r.host_cpu:.1f} | {r.wall / base.wall:.2f}x | "
            f"{(r.cpu + r.host_cpu) / (base.cpu + base.host_cpu):.2f}x | "
            f"{r.tree_rss_mb:.0f} | {r.max_rss_mb:.0f} | {r.steps} |" for r in rows]
    return out


def preflight(count: int) -> None:
    """Every host's systemd takes inotify instances of uid 0 (no user namespaces): with
    Debian's default of 128 the ~30th host's systemd cannot start (the container exits)."""
    limit = int(Path("/proc/sys/fs/inotify/max_user_instances").read_text())
    if limit < INOTIFY_PER_HOST * count + 128:
        sys.exit(f"fs.inotify.max_user_instances is {limit}: {count} hosts need about "
                 f"{INOTIFY_PER_HOST * count + 128} (sysctl -w "
                 f"fs.inotify.max_user_instances={max(1024, 8 * count)})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="5,50,100")
    parser.add_argument("--mixed", default="50:3", help="HOSTS:BROKEN (and BROKEN alone)")
    parser.add_argument("--ssh-base", type=int, default=20000)
    parser.add_argument("--app-base", type=int, default=20200)
    parser.add_argument("--parallel", type=int, default=8, help="hosts made at once")
    parser.add_argument("--keep", action="store_true", help="leave the hosts up")
    parser.add_argument("--forks", type=int, help="remediate --forks (default: the runner's)")
    parser.add_argument("--out", type=Path, help="append the results to this Markdown file")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    mixed_hosts, mixed_broken = (int(x) for x in args.mixed.split(":"))
    count = max(*sizes, mixed_hosts)
    preflight(count)
    started = dt.datetime.now(dt.UTC)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="ir-bench-fleet-") as tmp:
        fleet = Fleet(count, args.ssh_base, args.app_base, Path(tmp) / "inventory",
                      args.parallel, args.forks)
        fleet.hosts("absent")
        t0 = time.monotonic()
        fleet.hosts("present")
        made = time.monotonic() - t0
        try:
            every = list(range(1, count + 1))
            fleet.healthy(every)
            time.sleep(5)  # let the hosts settle after boot
            host_mb = fleet.memory_mb()
            rows: list[Row] = []
            for n in sizes:
                ns = list(range(1, n + 1))
                fleet.break_api(ns)
                rows.append(fleet.remediate(f"{n} hosts, all broken", ns, ns,
                                            Path(tmp) / f"state-{n}"))
                print(rows[-1], flush=True)
            spread = [1 + i * (mixed_hosts - 1) // max(1, mixed_broken - 1)
                      for i in range(mixed_broken)]
            fleet.break_api(spread)
            alone = fleet.remediate(f"{mixed_broken} hosts, all broken", spread, spread,
                                    Path(tmp) / "state-alone")
            print(alone, flush=True)
            fleet.break_api(spread)
            mixed = fleet.remediate(f"{mixed_hosts} hosts, {mixed_broken} broken",
                                    list(range(1, mixed_hosts + 1)), spread,
                                    Path(tmp) / "state-mixed")
            print(mixed, flush=True)
        finally:
            if not args.keep:
                fleet.hosts("absent")
    version = run([str(VENV_BIN / "ansible-playbook"), "--version"]).stdout.splitlines()[0]
    lines = [
        "", f"## Fleet: service-down on {', '.join(map(str, sizes))} systemd hosts "
        f"({started:%Y-%m-%d %H:%M} UTC)", "",
        "    python bench/fleet.py --out bench/results.md", "",
        f"Machine: {platform.node()}, nproc {os.cpu_count()}, kernel {platform.release()}, "
        f"Python {platform.python_version()}, {version}; load average at start {load:.2f}. "
        f"{count} hosts made once in {made:.0f} s ({args.parallel} at once); every row over "
        "the first N of them (`--limit`), so the smaller rows ran with all the hosts up. "
        + (f"Forks: --forks {args.forks}. " if args.forks else
           "Default forks: one per host acted on, at most 50. ")
        + "What it measures: "
        "bench/fleet.py's docstring; docs/fleet.md.", "",
        *table(rows, rows[0]), "",
        "Wall ratios: " + ", ".join(f"{r.hosts}/{rows[0].hosts} = "
                                     f"{r.wall / rows[0].wall:.2f}x" for r in rows[1:]) + ".", "",
        *table([alone, mixed], alone), "",
        f"{mixed_hosts} hosts with {mixed_broken} broken: acted on {mixed.acted} "
        f"(the broken ones), {mixed.wall / alone.wall:.2f}x the wall time of the "
        f"{mixed_broken} broken hosts alone (the difference: the symptom check of every "
        "host, and the lock and flap guard of each).", "",
        f"Hosts' memory (docker stats, {count} healthy hosts): {host_mb:.0f} MiB in all, "
        f"{host_mb / count:.1f} MiB per host.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with args.out.open("a", encoding="utf-8") as fh:
            fh.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
