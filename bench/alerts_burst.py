"""Benchmark: a burst of Alertmanager webhooks at `incident-runner serve`, optionally with
a kill -9 of the server in the middle and a restart.

N alerts (distinct fingerprints) in G alert groups, posted by C client threads; a
refused or unanswered post is retried as Alertmanager does, until answered 202.
Afterwards it checks the intake: every posted alert recorded, exactly one
incident per group, every incident finished. Prints answer times (p50/p99 of
the 202s) and the counts; exits 1 when an invariant fails. The incidents come
from tests/fixtures/serve_home (they escalate without an Ansible run), so this
measures serve, not Ansible. Bounded: N posts, each retried for at most --timeout s.

    python bench/alerts_burst.py --alerts 1000 --groups 20 --kill-at 500 \\
        --out bench/results-alerts.md
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.serve_proc import Serve, alertmanager_payload, post


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


class Burst:
    def __init__(self, serve: Serve, alerts: int, groups: int, kill_at: int | None,
                 timeout: float) -> None:
        self.serve = serve
        self.alerts = alerts
        self.groups = groups
        self.kill_at = kill_at
        self.timeout = timeout
        self.sent = 0
        self.lock = threading.Lock()
        self.kill_now = threading.Event()
        self.restarted = threading.Event()
        self.downtime_s = 0.0
        self.kill_error = ""
        self.answers: dict[str, dict[str, Any]] = {}

    def one(self, i: int) -> None:
        group, fingerprint = f"burst-{i % self.groups:02d}", f"a{i:05d}"
        body = alertmanager_payload("BurstAlert", group, fingerprint)
        with self.lock:
            self.sent += 1
            if self.kill_at is not None and self.sent == self.kill_at:
                self.kill_now.set()
        deadline = time.monotonic() + self.timeout
        attempts, last = 0, (0, {})
        while time.monotonic() < deadline:
            attempts += 1
            t0 = time.perf_counter()
            try:
                last = post(self.serve.url + "/alerts/alertmanager", body, timeout=30)
            # refused, or cut mid-answer by the kill (IncompleteRead, BadStatusLine are
            # HTTPExceptions, not OSErrors): retry, as Alertmanager does
            except (OSError, http.client.HTTPException):
                time.sleep(0.2)
                continue
            if last[0] == 202:
                self.answers[fingerprint] = {"ms": (time.perf_counter() - t0) * 1000,
                                             "attempts": attempts, "group": group}
                return
            time.sleep(0.2)  # 429/5xx: Alertmanager retries too
        self.answers[fingerprint] = {"ms": None, "attempts": attempts, "status": last[0],
                                     "group": group}

    def killer(self) -> None:
        if not self.kill_now.wait(timeout=self.timeout):
            return
        t0 = time.monotonic()
        try:
            self.serve.kill()  # SIGKILL
            self.serve.start()
        except (AssertionError, OSError, subprocess.SubprocessError) as exc:
            self.kill_error = f"{type(exc).__name__}: {exc}"
        self.downtime_s = time.monotonic() - t0
        self.restarted.set()

    def run(self, concurrency: int) -> float:
        killer = threading.Thread(target=self.killer, daemon=True)
        killer.start()
        t0 = time.monotonic()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(self.one, range(self.alerts)))
        elapsed = time.monotonic() - t0
        if self.kill_at is not None:
            self.restarted.wait(timeout=self.timeout)
        return elapsed


def account(serve: Serve, burst: Burst, wait_s: float) -> dict[str, Any]:
    """Wait until no incident is queued or running, then check the intake's records."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        busy = serve.rows("SELECT count(*) FROM incidents WHERE state != 'done'")[0][0]
        if busy == 0:
            break
        time.sleep(0.5)
    recorded = dict(serve.rows("SELECT fingerprint, count(*) FROM alerts "
                               "WHERE group_key LIKE 'burst-%' GROUP BY fingerprint"))
    posted = {f"a{i:05d}" for i in range(burst.alerts)}
    answered = {f for f, a in burst.answers.items() if a["ms"] is not None}
    per_group = dict(serve.rows("SELECT dedupe_key, count(*) FROM incidents "
                                "WHERE dedupe_key LIKE 'burst-%' GROUP BY dedupe_key"))
    states = dict(serve.rows("SELECT state, count(*) FROM incidents GROUP BY state"))
    outcomes = dict(serve.rows("SELECT outcome, count(*) FROM incidents GROUP BY outcome"))
    dispositions = dict(serve.rows("SELECT disposition, count(*) FROM alerts GROUP BY "
                                   "disposition"))
    folders = sorted(p.name for p in serve.state.glob("INC-*") if p.is_dir())
    attempts = dict(serve.rows("SELECT attempts, count(*) FROM incidents GROUP BY attempts"))
    return {
        "posted": len(posted), "answered_202": len(answered),
        "unanswered": sorted(posted - answered)[:20],
        "lost": sorted(answered - set(recorded))[:20],  # said 202, not in the intake
        "recorded_rows": sum(recorded.values()),
        "recorded_twice": sum(1 for n in recorded.values() if n > 1),
        "groups": burst.groups, "incidents": sum(per_group.values()),
        "groups_with_one_incident": sum(1 for n in per_group.values() if n == 1),
        "incident_states": states, "outcomes": outcomes, "dispositions": dispositions,
        "runner_attempts": attempts, "runner_folders": len(folders),
    }


def check(result: dict[str, Any]) -> list[str]:
    problems = [f"kill and restart of serve failed: {result['kill_error']}"] \
        if result["kill_error"] else []
    if result["unanswered"]:
        problems.append(f"alerts never answered 202: {result['unanswered']}")
    if result["lost"]:
        problems.append(f"answered 202 but not in the intake: {result['lost']}")
    if result["incidents"] != result["groups"] or \
            result["groups_with_one_incident"] != result["groups"]:
        problems.append(f"{result['incidents']} incidents for {result['groups']} groups")
    if set(result["incident_states"]) != {"done"}:
        problems.append(f"incidents not finished: {result['incident_states']}")
    return problems


def markdown(result: dict[str, Any]) -> str:
    t = result["answer_ms"]
    kill = (f"kill -9 after {result['kill_at']} alerts sent, restart took "
            f"{result['downtime_s']:.1f} s" if result["kill_at"] else "no kill")
    return "\n".join([
        f"### {result['alerts']} alerts, {result['groups']} groups, "
        f"{result['concurrency']} clients, {kill}",
        "",
        f"Measured {result['when']} on {result['machine']}; load average (1 min) "
        f"{result['load'][0]:.1f} before, {result['load'][1]:.1f} after.",
        "",
        "| answers (202) | p50 ms | p95 ms | p99 ms | max ms | burst s | alerts/s |",
        "|---|---|---|---|---|---|---|",
        f"| {result['answered_202']} | {t['p50']:.1f} | {t['p95']:.1f} | {t['p99']:.1f} | "
        f"{t['max']:.1f} | {result['burst_s']:.1f} | "
        f"{result['answered_202'] / result['burst_s']:.0f} |",
        "",
        f"- incidents: {result['incidents']} for {result['groups']} groups "
        f"({result['groups_with_one_incident']} groups with exactly one); states "
        f"{result['incident_states']}; outcomes {result['outcomes']}",
        f"- intake rows: {result['recorded_rows']} ({result['recorded_twice']} alerts recorded "
        f"twice: committed, then the server died before answering, and the client retried); "
        f"dispositions {result['dispositions']}",
        f"- lost (answered 202, not in the intake): {len(result['lost'])}; "
        f"runner attempts per incident {result['runner_attempts']}; "
        f"incident folders {result['runner_folders']}",
        f"- invariants: {'all hold' if not result['problems'] else result['problems']}",
        "",
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--kill-at", type=int, default=None,
                        help="kill -9 the server when this many alerts were sent, restart it")
    parser.add_argument("--port", type=int, default=18920)
    parser.add_argument("--timeout", type=float, default=300,
                        help="give up on one alert after this long; wait this long for the "
                             "incidents to finish")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--out", type=Path, default=None, help="append a markdown section")
    args = parser.parse_args()
    if not 1 <= args.alerts <= 10000 or not 1 <= args.groups <= args.alerts:
        parser.error("--alerts 1..10000 and --groups 1..alerts")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ir-alert-burst-"))
    load_before = os.getloadavg()[0]
    serve = Serve(args.port, workdir / "state").start()
    try:
        burst = Burst(serve, args.alerts, args.groups, args.kill_at, args.timeout)
        elapsed = burst.run(args.concurrency)
        result = account(serve, burst, args.timeout)
    finally:
        serve.stop()
    times = [a["ms"] for a in burst.answers.values() if a["ms"] is not None]
    result.update(
        alerts=args.alerts, concurrency=args.concurrency, kill_at=args.kill_at,
        downtime_s=burst.downtime_s, kill_error=burst.kill_error, burst_s=elapsed,
        workdir=str(workdir),
        load=(load_before, os.getloadavg()[0]),
        retried=sum(1 for a in burst.answers.values() if a["attempts"] > 1),
        answer_ms={"p50": statistics.median(times) if times else float("nan"),
                   "p95": percentile(times, 95), "p99": percentile(times, 99),
                   "max": max(times, default=float("nan"))},
        when=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        machine=f"{platform.system()} {platform.machine()}, 2 shared cores")
    result["problems"] = check(result)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(markdown(result))
    if args.out:
        with args.out.open("a", encoding="utf-8") as handle:
            handle.write(markdown(result) + "\n")
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
