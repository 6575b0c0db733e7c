"""Shared fixtures: every test's incidents and artifacts live under tmp_path."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest
from _pytest.nodeid import NodeId


@pytest.fixture(autouse=True)
def _state_under_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    state = tmp_path / "incidents"
    monkeypatch.setenv("INCIDENT_RUNNER_STATE_DIR", str(state))
    return state


# The longest units of work (a test, or a module's group of tests sharing a stack) start
# first, so the rest of the suite fills the other workers around them instead of queueing
# behind them at the end (scripts/test.sh passes --no-loadscope-reorder to keep this
# order). Ranked by the "CPU by file" table of a full run; the rest keep file order.
LONGEST_FIRST = tuple(f"tests/integration/test_{name}.py" for name in (
    "drills", "ci", "systemd", "fleet", "molecule", "alert_loop", "safety", "queues",
    "ladder", "postgres", "serve_postgres", "foundation"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under xdist, keep tests that share a module-scoped fixture (a stack) on one worker.

    Everything else (molecule scenarios, drills) spreads across workers.
    """
    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: file order within each rank
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        defs = info.name2fixturedefs.values() if info else []
        if item.get_closest_marker("xdist_group") is None and any(
                d and d[-1].scope == "module" for d in defs):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
        _suffix_group(item)


def _suffix_group(item: pytest.Item) -> None:
    """Give a grouped test the `nodeid@group` id that `--dist loadgroup` schedules by.

    pytest-xdist 3.8 writes the suffix to `item._nodeid`, which pytest 9 no longer reads
    (`nodeid` is `str(item._id)`): every test became its own unit and one module's stack
    came up on every worker. Done here, where the groups are known; a no-op when the id
    already carries it or when not on a loadgroup worker.
    """
    if not getattr(item.config.option, "loadgroup", False):  # set on xdist workers only
        return
    mark = item.get_closest_marker("xdist_group")
    if mark is None or "@" in item.nodeid.rsplit("]", 1)[-1]:
        return
    group = mark.args[0] if mark.args else mark.kwargs.get("name", "default")
    item._id = NodeId.parse(f"{item.nodeid}@{group}")  # type: ignore[attr-defined]


# -- where the suite's CPU goes --------------------------------------------------------
# The suite is CPU-bound on 2 cores; most of it is spent in child processes
# (ansible-playbook, molecule, the modules they fork). Each test records the CPU of
# the children it reaped; the terminal summary lists the heaviest.
_CPU_KEY = "children_cpu_s"
_CPU_START = pytest.StashKey[float]()


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_CPU_START] = _children_cpu()  # before fixtures: a stack's bring-up counts


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> None:
    if call.when == "call" and _CPU_START in item.stash:  # before the report is built
        spent = _children_cpu() - item.stash[_CPU_START]
        item.user_properties.append((_CPU_KEY, round(spent, 1)))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    spent: dict[str, float] = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            for key, value in getattr(report, "user_properties", ()):
                if key == _CPU_KEY and getattr(report, "when", "") == "call":
                    spent[report.nodeid] = float(value)
    if not spent:
        return
    terminalreporter.section("CPU of child processes (ansible, molecule, docker CLI)")
    for nodeid, seconds in sorted(spent.items(), key=lambda kv: -kv[1])[:25]:
        terminalreporter.write_line(f"{seconds:8.1f}s  {nodeid}")
    terminalreporter.write_line(f"{sum(spent.values()):8.1f}s  in all ({len(spent)} tests)")
    by_file: dict[str, float] = {}
    for nodeid, seconds in spent.items():
        path = nodeid.split("::", 1)[0]
        by_file[path] = by_file.get(path, 0.0) + seconds
    terminalreporter.section("CPU of child processes by file")
    for path, seconds in sorted(by_file.items(), key=lambda kv: -kv[1])[:15]:
        terminalreporter.write_line(f"{seconds:8.1f}s  {path}")
