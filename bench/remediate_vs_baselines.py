"""Benchmark: the same proxy-502 fault fixed three ways, on one stack, in one run.

1. the runbook's shell one-liner (seed 000: ``docker network connect`` x N),
2. plain ``ansible-playbook playbooks/reconnect_networks.yml``,
3. ``incident-runner remediate --scenario proxy-502`` (diagnostics, the
   ladder, verification, timeline, report).

Each is timed from "fault injected and confirmed" to "the proxy answers 200",
``--rounds`` times; we report medians and ratios to the one-liner. Ratios from
one run on one machine are what we compare, never absolute seconds.

    python bench/remediate_vs_baselines.py --rounds 5 --out bench/results.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.stack import ROOT, VENV_BIN, Stack, docker, free_port, http_status, run


def break_proxy(stack: Stack) -> None:
    for net in ("api_net", "web_net"):
        docker("network", "disconnect", f"{stack.project}_{net}", stack.container("proxy"))
    assert http_status(stack.url + "/api/health") == 502


def wait_healthy(stack: Stack, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if http_status(stack.url + "/api/health", 1) == 200 and \
                http_status(stack.url + "/web/health", 1) == 200:
            return
        time.sleep(0.05)
    raise AssertionError("stack did not recover")


def one_liner(stack: Stack) -> None:
    # The runbook's fix, argv instead of a shell string.
    for net in ("api_net", "web_net"):
        docker("network", "connect", f"{stack.project}_{net}", stack.container("proxy"))


def plain_playbook(stack: Stack) -> None:
    nets = f'["{stack.project}_edge", "{stack.project}_api_net", "{stack.project}_web_net"]'
    run([str(VENV_BIN / "ansible-playbook"), "-i", str(stack.inventory),
         str(ROOT / "playbooks/reconnect_networks.yml"), "-e",
         f'{{"reconnect_networks_container": "{stack.container("proxy")}", '
         f'"reconnect_networks_networks": {nets}}}'])


def incident_runner(stack: Stack) -> None:
    proc = stack.remediate("--scenario", "proxy-502", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]


def measure(stack: Stack, fix: Callable[[Stack], None], rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        break_proxy(stack)
        started = time.monotonic()
        fix(stack)
        wait_healthy(stack)
        times.append(time.monotonic() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ir-bench-") as tmp:
        stack = Stack(project="ir-bench", port=free_port(), workdir=Path(tmp))
        stack.up()
        try:
            results = {name: measure(stack, fix, args.rounds) for name, fix in (
                ("runbook one-liner (docker network connect)", one_liner),
                ("plain ansible-playbook reconnect_networks.yml", plain_playbook),
                ("incident-runner remediate --scenario proxy-502", incident_runner),
            )}
        finally:
            stack.down()
    base = statistics.median(next(iter(results.values())))
    lines = [
        f"# proxy-502: time from confirmed fault to 200 through the proxy ({args.rounds} rounds)",
        "",
        "| method | median s | min s | max s | ratio to one-liner |",
        "|---|---|---|---|---|",
    ]
    for name, times in results.items():
        med = statistics.median(times)
        lines.append(f"| {name} | {med:.2f} | {min(times):.2f} | {max(times):.2f} "
                     f"| {med / base:.1f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
