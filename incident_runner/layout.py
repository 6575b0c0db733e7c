"""The incident folder: its name, the files in it, and finding one again.

``<state dir>/INC-YYYYMMDD-HHMMSS[-n]-<scenario>/``:
``timeline.jsonl`` (the record: append-only), ``journal.json`` (folded from it),
``report.json``, ``report.html``, ``YYYY-MM-DD-<title>.md``, ``messages.json``,
``diagnostics/`` (evidence captured before acting) and ``artifacts/`` (one
folder per Ansible run).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from incident_runner.errors import ExecutionError, InputError
from incident_runner.paths import state_dir

INCIDENT_PREFIX = "INC-"
TIMELINE_FILE = "timeline.jsonl"
JOURNAL_FILE = "journal.json"
REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
MESSAGES_FILE = "messages.json"
DIAGNOSTICS_DIR = "diagnostics"
ARTIFACTS_DIR = "artifacts"


def new_incident_dir(root: Path, scenario: str,
                     claim: Callable[[str, str], bool] | None = None) -> tuple[str, Path]:
    """Create ``INC-YYYYMMDD-HHMMSS[-n]-<scenario>`` exclusively (never reuse a folder).
    CLAIM(id, folder) also reserves the id where runners share a store; False: taken
    elsewhere, so this folder goes and the next ``-n`` is tried."""
    root.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime(f"{INCIDENT_PREFIX}%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        incident_id = stamp if n == 1 else f"{stamp}-{n}"
        path = root / f"{incident_id}-{scenario}"
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            continue
        try:
            claimed = claim is None or claim(incident_id, path.name)
        except BaseException:
            path.rmdir()  # nothing written in it yet
            raise
        if claimed:
            return incident_id, path
        path.rmdir()
    raise ExecutionError(f"cannot allocate an incident folder under {root}")


def incident_dirs(root: Path) -> list[Path]:
    """Every incident folder under ``root`` (sorted by name: oldest first)."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(INCIDENT_PREFIX))


def _opened_id(path: Path) -> str | None:
    try:  # the first event of a timeline is incident_opened
        with (path / TIMELINE_FILE).open(encoding="utf-8") as handle:
            first = json.loads(handle.readline() or "{}")
        if isinstance(first, dict) and first.get("kind") == "incident_opened":
            value = first.get("incident_id")
            return str(value) if value else None
    except (OSError, ValueError):
        pass
    journal = path / JOURNAL_FILE
    if journal.exists():
        try:
            value = json.loads(journal.read_text(encoding="utf-8")).get("incident_id")
        except (OSError, ValueError, AttributeError):
            return None
        return str(value) if value else None
    return None


def find_incident(ref: str, root: Path | None = None) -> Path:
    """The folder of incident ``ref``: a folder name or an ``INC-YYYYMMDD-HHMMSS`` id.

    Reads the folders, not the index, so it works even without a database.
    """
    root = Path(root) if root is not None else state_dir()
    ref = ref.strip()
    if not ref.startswith(INCIDENT_PREFIX) or "/" in ref or "\\" in ref or ".." in ref:
        raise InputError(f"'{ref[:80]}' is not an incident id (INC-YYYYMMDD-HHMMSS)",
                         field="INC-ID")
    exact = root / ref
    if exact.is_dir() and ((exact / TIMELINE_FILE).exists() or (exact / JOURNAL_FILE).exists()):
        return exact
    matches = []
    if root.is_dir():
        for path in sorted(root.glob(f"{ref}-*")):
            if path.is_dir() and _opened_id(path) == ref:
                matches.append(path)
    if not matches:
        raise InputError(f"no incident '{ref}' under {root}", field="INC-ID")
    if len(matches) > 1:
        names = ", ".join(p.name for p in matches)
        raise InputError(f"incident id '{ref}' is ambiguous: {names}; give the folder name",
                         field="INC-ID")
    return matches[0]
