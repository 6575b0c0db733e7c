"""Safety rails the engine consults before it acts: flap guard, approvals, time budget.

Each rail decides; the engine records the decision in the timeline and, when
a rail says stop, escalates (exit 3) with the rail's reason. See
docs/safety.md for the promises and the tests that hold them.

- ``FlapGuard``: at most N remediations of one target per window. Counts come
  from the history index (``history.count_remediations``), so they survive
  restarts of the runner and count every process sharing the state dir.
- ``ApprovalGate``: a step marked ``destructive`` runs only with ``--yes`` or
  an interactive "yes" on a terminal; with neither it does not run.
- ``Budget``: the incident's deadline (``--timeout`` / config
  ``safety.incident_timeout_minutes``), which also caps every step's timeout.
"""

from __future__ import annotations

import logging
import math
import select
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from incident_runner import history
from incident_runner.config import DEFAULT_APPROVAL_TIMEOUT_SECONDS, SafetySettings

if TYPE_CHECKING:
    from incident_runner.store.base import Store

LOG = logging.getLogger(__name__)



# -- flap guard ---------------------------------------------------------------------
@dataclass(frozen=True)
class FlapVerdict:
    allowed: bool
    target_key: str
    count: int
    max_remediations: int
    window_minutes: float
    source: str  # "scenario" | "config"

    @property
    def reason(self) -> str:
        window = f"{self.window_minutes:g} min"
        if self.allowed:
            return (f"{self.count} of {self.max_remediations} remediations of "
                    f"'{self.target_key}' in the last {window} (flap guard, {self.source})")
        return (f"flap guard: '{self.target_key}' was already remediated {self.count} time(s) "
                f"in the last {window} (limit {self.max_remediations}, from the "
                f"{self.source}); not acting again: a fix that does not hold needs a human")

    def as_event(self) -> dict[str, Any]:
        return {"decision": "allow" if self.allowed else "block", "target_key": self.target_key,
                "count": self.count, "max_remediations": self.max_remediations,
                "window_minutes": self.window_minutes, "limit_from": self.source,
                "reason": self.reason}


class FlapGuard:
    """At most ``max_remediations`` incidents that remediated ``target_key`` per window."""

    def __init__(self, max_remediations: int, window_minutes: float, source: str,
                 root: Path, store: Store | None = None) -> None:
        self.max = max_remediations
        self.window_minutes = window_minutes
        self.source = source
        self.root = root
        self.store = store  # None: the SQLite index of ``root``

    @classmethod
    def for_scenario(cls, flap_max: int | None, flap_window: float | None,
                     settings: SafetySettings, root: Path,
                     store: Store | None = None) -> FlapGuard:
        """The scenario's ``flap_guard`` wins field by field over the config's."""
        source = "scenario" if flap_max is not None or flap_window is not None else "config"
        return cls(flap_max if flap_max is not None else settings.flap_max,
                   flap_window if flap_window is not None else settings.flap_window_minutes,
                   source, root, store)

    def check(self, target_key: str, now: datetime | None = None) -> FlapVerdict:
        since = (now or datetime.now(UTC)) - timedelta(minutes=self.window_minutes)
        count = (self.store.count_remediations(target_key, since) if self.store is not None
                 else history.count_remediations(target_key, since, self.root))
        return FlapVerdict(allowed=count < self.max, target_key=target_key, count=count,
                           max_remediations=self.max, window_minutes=self.window_minutes,
                           source=self.source)


# -- approval gate --------------------------------------------------------------------
Confirm = Callable[[str, float], "bool | None"]


def tty_confirm(question: str, timeout: float) -> bool | None:
    """Ask on the terminal; None when stdin is not a TTY. No answer in time is a no."""
    stdin = sys.stdin
    try:
        if stdin is None or not stdin.isatty():
            return None
    except (ValueError, OSError):  # closed or detached stdin
        return None
    sys.stderr.write(f"{question} [y/N] (no answer in {timeout:g}s = no) ")
    sys.stderr.flush()
    try:
        ready, _, _ = select.select([stdin], [], [], max(0.0, timeout))
    except (ValueError, OSError):
        return False
    if not ready:
        sys.stderr.write("\n")
        return False
    answer = stdin.readline().strip().lower()
    return answer in {"y", "yes"}


@dataclass(frozen=True)
class Approval:
    approved: bool
    by: str  # "--yes" | "interactive" | "no-tty" | "declined" | "not-needed"
    reason: str

    def as_event(self, step: str) -> dict[str, Any]:
        return {"step": step, "decision": "approved" if self.approved else "skipped",
                "by": self.by, "reason": self.reason}


class ApprovalGate:
    """Destructive steps need ``--yes`` or an interactive yes; nothing destructive by default."""

    def __init__(self, assume_yes: bool, confirm: Confirm | None = tty_confirm,
                 timeout: float = DEFAULT_APPROVAL_TIMEOUT_SECONDS) -> None:
        self.assume_yes = assume_yes
        self.confirm = confirm
        self.timeout = timeout

    def approve(self, step: str, action: str, destructive: bool,
                budget_left: float | None = None) -> Approval:
        if not destructive:
            return Approval(True, "not-needed", "not destructive")
        if self.assume_yes:
            return Approval(True, "--yes", f"destructive step '{step}' approved by --yes")
        timeout = self.timeout if budget_left is None else min(self.timeout, budget_left)
        answer = self.confirm(f"Step '{step}' ({action}) is destructive. Run it?",
                              timeout) if self.confirm else None
        if answer is None:
            return Approval(False, "no-tty",
                            f"destructive step '{step}' needs approval: no --yes and no "
                            "terminal to ask on; skipped, nothing destructive was done")
        if answer:
            return Approval(True, "interactive", f"destructive step '{step}' approved on the "
                            "terminal")
        return Approval(False, "declined", f"destructive step '{step}' was not approved on the "
                        "terminal (declined or no answer); skipped")


# -- time budget -----------------------------------------------------------------------
class Budget:
    """The incident's deadline on the monotonic clock; None means no limit."""

    def __init__(self, seconds: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self.started = clock()

    def left(self) -> float | None:
        if self.seconds is None:
            return None
        return self.seconds - (self.clock() - self.started)

    @property
    def expired(self) -> bool:
        left = self.left()
        return left is not None and left <= 0

    def cap(self, step_timeout: int | None) -> tuple[int | None, bool]:
        """The timeout for the next playbook and whether the incident budget is what bounds it."""
        left = self.left()
        if left is None:
            return step_timeout, False
        whole = max(1, math.ceil(left))
        if step_timeout is None or whole < step_timeout:
            return whole, True
        return step_timeout, False

    def describe(self) -> str:
        if self.seconds is None:
            return "no incident timeout"
        return f"incident timeout {self.seconds / 60:g} min"
