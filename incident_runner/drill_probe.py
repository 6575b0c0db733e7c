"""The drill's detector: probe health endpoints until the injected fault shows.

A drill measures the time from fault injection to detection: the first failed
health probe, as a monitor would see it. The drill's side_effect starts this
probe (detached) before it injects the fault:

1. baseline: probe until one round of every check passes, then write
   ``armed`` (a stack that is already unhealthy cannot measure anything);
2. watch: probe every ``interval`` seconds; ``confirm`` failing rounds in a
   row (default 2: one slow or lost request on a busy machine is not an
   outage) make the detection, timed at the first of them, written with why,
   and the probe exits 0. Nothing seen before ``deadline``: ``not-detected``
   and exit 1.

A check fails on a status outside its list (connection errors count as 0),
or, with ``p95_ms``, when the p95 of the last ``window`` rounds is over the
budget (one slow round alone on a busy machine is not an incident).

The state goes to ``--out`` as JSON (atomically, after every change), so the
playbook and ``incident-runner drill`` read it without talking to the process.
The drill's plays drive it in one call per step: ``--detach`` (start it and
return once armed), ``--wait-while armed`` (return once it saw the fault or
gave up; with ``--fault-out`` it also writes the drill's ``fault.json``: when
the injection started and ended, when it was detected), ``--stop`` (teardown;
only if the pid still runs the detector).

    python -m incident_runner.drill_probe --out probe.json \
        --check '{"name": "api", "url": "http://127.0.0.1:18700/api/health"}'
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from incident_runner.fsutil import write_atomic


@dataclass
class ProbeCheck:
    name: str
    url: str
    status: tuple[int, ...] = (200,)
    concurrency: int = 1
    p95_ms: float | None = None
    timeout: float = 2.0
    samples: deque[float] = field(default_factory=deque)

    @classmethod
    def parse(cls, raw: str) -> ProbeCheck:
        data = json.loads(raw)
        if not isinstance(data, dict) or not data.get("url"):
            raise ValueError(f"a check needs at least a url: {raw[:120]}")
        status = data.get("status", [200])
        return cls(name=str(data.get("name") or data["url"]), url=str(data["url"]),
                   status=tuple(int(s) for s in (status if isinstance(status, list) else [status])),
                   concurrency=max(1, int(data.get("concurrency", 1))),
                   p95_ms=float(data["p95_ms"]) if data.get("p95_ms") is not None else None,
                   timeout=float(data.get("timeout", 2.0)))


def get(url: str, timeout: float) -> tuple[int, float]:
    """Status (0: no answer) and milliseconds of one GET."""
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (http only, our stack)
            resp.read()
            status = int(resp.status)
    except urllib.error.HTTPError as exc:
        status = int(exc.code)
    # An answer cut short (the upstream killed mid-response: IncompleteRead, BadStatusLine)
    # is an HTTPException, not an OSError: a failed probe, never a dead detector.
    except (OSError, ValueError, http.client.HTTPException):
        status = 0
    return status, (time.monotonic() - started) * 1000


def p95(samples: Sequence[float]) -> float:
    """Nearest-rank 95th percentile (as the health_check role computes it)."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


class Probe:
    def __init__(self, checks: list[ProbeCheck], window: int = 3) -> None:
        self.checks = checks
        self.window = window
        self.pool = ThreadPoolExecutor(max_workers=max(c.concurrency for c in checks))

    def round(self) -> tuple[bool, str, str]:
        """One round of every check: (all good, failing check's name, why)."""
        for check in self.checks:
            n = check.concurrency
            results = list(self.pool.map(get, [check.url] * n, [check.timeout] * n))
            statuses = [s for s, _ in results]
            bad = [s for s in statuses if s not in check.status]
            if bad:
                return False, check.name, f"status {bad[0]} (expected {list(check.status)})"
            if check.p95_ms is not None:
                check.samples.extend(ms for _, ms in results)
                while len(check.samples) > self.window * check.concurrency:
                    check.samples.popleft()
                latency = p95(check.samples)
                if len(check.samples) >= self.window * check.concurrency \
                        and latency > check.p95_ms:
                    return False, check.name, (f"p95 {latency:.0f} ms over {check.p95_ms:.0f} ms "
                                               f"at concurrency {check.concurrency}")
        return True, "", ""

    def reset_latency(self) -> None:
        for check in self.checks:
            check.samples.clear()

    def close(self) -> None:
        self.pool.shutdown(wait=False)


def run(checks: list[ProbeCheck], out: Path, interval: float = 0.1, deadline: float = 180.0,
        baseline_timeout: float = 60.0, window: int = 3, confirm: int = 2) -> int:
    state: dict[str, Any] = {"pid": os.getpid(), "state": "starting", "started": time.time(),
                             "armed": None, "detected": None, "check": None, "detail": None,
                             "rounds": 0, "checks": [c.name for c in checks]}

    def save(**changes: Any) -> None:
        state.update(changes)
        write_atomic(out, json.dumps(state, indent=2) + "\n", mode=0o644)

    save()
    probe = Probe(checks, window=window)
    try:
        # 1. Baseline: healthy before the fault, or the measurement means nothing.
        until = time.monotonic() + baseline_timeout
        why = "no round finished"
        while True:
            ok, name, why = probe.round()
            if ok:
                break
            if time.monotonic() >= until:
                save(state="unhealthy-baseline", check=name, detail=why)
                return 2
            probe.reset_latency()
            time.sleep(interval)
        probe.reset_latency()
        save(state="armed", armed=time.time())
        # 2. Watch until `confirm` failed rounds in a row; the first of them is the detection.
        until = time.monotonic() + deadline
        rounds = 0
        streak: list[float] = []
        while time.monotonic() < until:
            started = time.time()
            ok, name, why = probe.round()
            rounds += 1
            streak = [] if ok else [*streak, started]
            if len(streak) >= confirm:
                save(state="detected", detected=streak[0], check=name, detail=why, rounds=rounds)
                return 0
            time.sleep(interval)
        save(state="not-detected", rounds=rounds,
             detail=f"every probe passed for {deadline:g}s after arming")
        return 1
    finally:
        probe.close()


def read_state(out: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(out.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def wait_while(out: Path, state: str, timeout: float, poll: float = 0.05) -> dict[str, Any]:
    """The detector's state once it is no longer ``state`` (or as it is after ``timeout``)."""
    until = time.monotonic() + timeout
    while True:
        current = read_state(out) or {"state": "missing"}
        if current.get("state") not in (state, "missing") or time.monotonic() >= until:
            return current
        time.sleep(poll)


def fault_record(state: dict[str, Any], scenario: str, started: float,
                 injected: float) -> dict[str, Any]:
    """The drill's ``fault.json``: the injection's start and end and the detector's verdict."""
    return {"scenario": scenario, "started": started, "injected": injected,
            "detected": state.get("detected"), "probe": state}


def start_detached(argv: list[str], out: Path, arm_timeout: float) -> dict[str, Any]:
    """Start the detector in its own session (it outlives us) and wait until it is armed,
    or says why not: one call for the drill's play instead of an async task and a poll."""
    out.unlink(missing_ok=True)
    subprocess.Popen([sys.executable, "-m", "incident_runner.drill_probe", *argv],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, start_new_session=True)
    return wait_while(out, "starting", arm_timeout)


def stop(out: Path) -> dict[str, Any]:
    """Stop the detector named in ``out`` if that pid still runs it (not a reused pid)."""
    pid = (read_state(out) or {}).get("pid")
    if not isinstance(pid, int):
        return {"stopped": False, "why": "no detector state"}
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return {"stopped": False, "why": f"pid {pid} is gone"}
    if b"incident_runner.drill_probe" not in cmdline:
        return {"stopped": False, "why": f"pid {pid} is not the detector"}
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return {"stopped": False, "why": f"pid {pid} is gone"}
    return {"stopped": True, "pid": pid}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m incident_runner.drill_probe",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="state file (JSON)")
    parser.add_argument("--check", action="append", metavar="JSON",
                        help='one check: {"name", "url", "status", "concurrency", "p95_ms", '
                             '"timeout"} (repeatable; needed to probe)')
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--deadline", type=float, default=180.0,
                        help="seconds to watch after arming")
    parser.add_argument("--baseline-timeout", type=float, default=60.0)
    parser.add_argument("--window", type=int, default=3,
                        help="rounds a p95 budget is computed over")
    parser.add_argument("--confirm", type=int, default=2,
                        help="failed rounds in a row that make a detection (a lone timeout on "
                             "a busy machine is not one)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--detach", action="store_true",
                      help="probe in the background; print the state once armed (or why not)")
    mode.add_argument("--wait-while", metavar="STATE",
                      help="do not probe: print the state once it is no longer STATE")
    mode.add_argument("--stop", action="store_true",
                      help="do not probe: stop the detector of --out if it still runs")
    parser.add_argument("--timeout", type=float, default=15.0,
                        help="seconds --wait-while waits")
    parser.add_argument("--fault-out", type=Path, metavar="PATH",
                        help="with --wait-while: write the drill's fault.json there")
    parser.add_argument("--scenario", default="", help="for --fault-out")
    parser.add_argument("--started", type=float, help="for --fault-out: when the injection "
                                                      "started (epoch seconds)")
    parser.add_argument("--injected", type=float, help="for --fault-out: when it ended "
                                                       "(default: now)")
    args = parser.parse_args(argv)
    if args.stop:
        print(json.dumps(stop(args.out)))
        return 0
    if args.wait_while:
        injected = time.time() if args.injected is None else args.injected
        if args.fault_out and args.started is None:
            parser.error("--fault-out needs --started")
        state = wait_while(args.out, args.wait_while, args.timeout)
        if args.fault_out:
            write_atomic(args.fault_out, json.dumps(fault_record(
                state, args.scenario, args.started, injected), indent=2) + "\n", mode=0o640)
        print(json.dumps(state))
        return 0
    if not args.check:
        parser.error("give at least one --check to probe")
    try:
        checks = [ProbeCheck.parse(raw) for raw in args.check]
    except (ValueError, TypeError) as exc:
        parser.error(str(exc))
    if args.detach:
        rest = list(argv if argv is not None else sys.argv[1:])
        rest.remove("--detach")
        # The detector answers first (baseline timeout), then us.
        print(json.dumps(start_detached(rest, args.out, args.baseline_timeout + 15)))
        return 0
    return run(checks, args.out, interval=args.interval, deadline=args.deadline,
               baseline_timeout=args.baseline_timeout, window=max(1, args.window),
               confirm=max(1, args.confirm))


if __name__ == "__main__":
    sys.exit(main())
