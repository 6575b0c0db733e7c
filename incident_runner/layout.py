"""The incident folder: its name, the files in it, and finding one again.

``<state dir>/INC-YYYYMMDD-HHMMSS[-n]-<scenario>/``:
``timeline.jsonl`` (the record: append-only), ``journal.json`` (folded from it),
``report.json``, ``report.html``, ``YYYY-MM-DD-<title>.md``, ``messages.json``,
``diagnostics/`` (evidence captured before acting) and ``artifacts/`` (one
folder per Ansible run).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from incident_runner.errors import ExecutionError

INCIDENT_PREFIX = "INC-"
TIMELINE_FILE = "timeline.jsonl"
JOURNAL_FILE = "journal.json"
REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
MESSAGES_FILE = "messages.json"
DIAGNOSTICS_DIR = "diagnostics"
ARTIFACTS_DIR = "artifacts"


def new_incident_dir(root: Path, scenario: str) -> tuple[str, Path]:
    """Create ``INC-YYYYMMDD-HHMMSS-<scenario>`` exclusively (never reuse a folder)."""
    root.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime(f"{INCIDENT_PREFIX}%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        incident_id = stamp if n == 1 else f"{stamp}-{n}"
        path = root / f"{incident_id}-{scenario}"
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            continue
        return incident_id, path
    raise ExecutionError(f"cannot allocate an incident folder under {root}")


def incident_dirs(root: Path) -> list[Path]:
    """Every incident folder under ``root`` (sorted by name: oldest first)."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(INCIDENT_PREFIX))
