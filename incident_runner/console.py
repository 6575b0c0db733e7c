"""Live view of an incident: one line per phase on stderr, coloured on a terminal
unless NO_COLOR is set or TERM=dumb."""

from __future__ import annotations

import os
import sys
import time

import click

from incident_runner.executor import TaskResult


def wants_color() -> bool:
    """https://no-color.org: any NO_COLOR value turns colour off; so does TERM=dumb."""
    if "NO_COLOR" in os.environ or os.environ.get("TERM") == "dumb":
        return False
    return sys.stderr.isatty()


class LineReporter:
    """One line per phase and outcome; on a TTY phases are coloured."""

    def __init__(self, quiet: bool = False, color: bool | None = None) -> None:
        self.quiet = quiet
        self.color = wants_color() if color is None else color
        self.started = time.monotonic()

    def _emit(self, text: str, fg: str | None = None) -> None:
        if self.quiet:
            return
        stamp = f"[{time.monotonic() - self.started:6.1f}s]"
        click.secho(f"{stamp} {text}", fg=fg if self.color else None, err=True)

    def phase(self, name: str, detail: str = "") -> None:
        self._emit(f"{name:<14} {detail}", "cyan")

    def task(self, result: TaskResult) -> None:
        if result.status != "ok" or result.changed:
            mark = "changed" if result.status == "ok" else result.status
            self._emit(f"  {mark:<10} {result.task}"
                       + (f": {result.message}" if result.status != "ok" else ""),
                       "yellow" if result.status == "ok" else "red")

    def outcome(self, name: str, ok: bool, detail: str = "") -> None:
        self._emit(f"{name:<14} {'ok' if ok else 'NOT OK'} {detail}".rstrip(),
                   "green" if ok else "red")


def make_reporter(quiet: bool = False) -> LineReporter:
    return LineReporter(quiet=quiet)
