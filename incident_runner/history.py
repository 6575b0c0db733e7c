"""Incident history: an embedded SQLite index of incidents and their steps.

The incident folders are the source of truth; ``history.sqlite`` in the state
dir is only an index over them, so it can always be rebuilt:

- ``record`` upserts one incident from its journal when the runner closes it;
- ``History.sync`` scans the state dir for ``INC-*`` folders and (re)indexes
  every folder that is new or changed since it was indexed, including runs
  that were killed before they could close (``load_journal`` derives an
  ``interrupted`` journal from their timeline), and drops rows whose folder
  is gone. A corrupt or unreadable index is moved aside and rebuilt.

WAL mode and a busy timeout let concurrent runs record and read at once;
writes take the lock up front (``BEGIN IMMEDIATE``) so they wait instead of
failing on a lock upgrade.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from incident_runner.journal import load_journal
from incident_runner.layout import INCIDENT_PREFIX, JOURNAL_FILE, TIMELINE_FILE
from incident_runner.paths import state_dir
from incident_runner.timeutil import epoch, now_iso

LOG = logging.getLogger(__name__)

HISTORY_FILE = "history.sqlite"
SCHEMA_VERSION = 2  # 2: the targets table (fleet incidents, per host)
BUSY_TIMEOUT_S = 15.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS incidents (
    dir          TEXT PRIMARY KEY,          -- folder name: unique per incident
    incident_id  TEXT NOT NULL,             -- INC-YYYYMMDD-HHMMSS[-n]
    scenario     TEXT,
    title        TEXT,
    severity     TEXT,
    status       TEXT NOT NULL,
    drill        INTEGER NOT NULL DEFAULT 0,
    check_mode   INTEGER NOT NULL DEFAULT 0,
    start        TEXT,
    end          TEXT,
    start_epoch  REAL,
    end_epoch    REAL,
    duration_s   REAL,
    resolved_by  TEXT,
    escalated    INTEGER NOT NULL DEFAULT 0,
    reason       TEXT,
    target_key   TEXT,
    ci           TEXT NOT NULL DEFAULT '{}',
    source_mtime REAL NOT NULL DEFAULT 0,   -- newest mtime of journal/timeline when indexed
    indexed_at   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS incidents_by_id ON incidents (incident_id);
CREATE INDEX IF NOT EXISTS incidents_by_target ON incidents (target_key, start_epoch);
CREATE TABLE IF NOT EXISTS steps (
    incident_dir TEXT NOT NULL REFERENCES incidents (dir) ON DELETE CASCADE,
    seq          INTEGER NOT NULL,
    phase        TEXT,
    name         TEXT,
    action       TEXT,
    status       TEXT,
    start        TEXT,
    end          TEXT,
    duration_s   REAL,
    changed      INTEGER NOT NULL DEFAULT 0,
    destructive  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (incident_dir, seq)
);
-- Fleet incidents (docs/fleet.md): the per-host keys they acted on, for each host's flap guard.
CREATE TABLE IF NOT EXISTS targets (
    incident_dir TEXT NOT NULL REFERENCES incidents (dir) ON DELETE CASCADE,
    target_key   TEXT NOT NULL,
    PRIMARY KEY (incident_dir, target_key)
);
CREATE INDEX IF NOT EXISTS targets_by_key ON targets (target_key);
"""


# -- small helpers ----------------------------------------------------------
def _since_epoch(since: datetime | float | str) -> float:
    if isinstance(since, datetime):
        return (since if since.tzinfo else since.replace(tzinfo=UTC)).timestamp()
    if isinstance(since, str):
        value = epoch(since)
        if value is None:
            raise ValueError(f"not an ISO timestamp: {since!r}")
        return value
    return float(since)


def _source_mtime(incident_dir: Path) -> float:
    mtimes = [0.0]
    for name in (JOURNAL_FILE, TIMELINE_FILE):
        try:
            mtimes.append((incident_dir / name).stat().st_mtime)
        except OSError:
            continue
    return max(mtimes)


def target_key_of(journal: dict[str, Any]) -> str:
    """What a flap guard counts against: the journal's ``target_key`` if the
    runner recorded one, else ``<hosts>:<scenario>``."""
    key = journal.get("target_key")
    if isinstance(key, str) and key:
        return key
    return f"{journal.get('hosts') or '-'}:{journal.get('scenario') or '-'}"


def index_rows(journal: dict[str, Any],
               source_mtime: float = 0.0) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The index row of one incident and its step rows (every backend stores these)."""
    folder = str(journal.get("dir") or journal.get("incident_id") or "")
    if not folder:
        raise ValueError("journal has neither 'dir' nor 'incident_id'")
    status = str(journal.get("status") or "unknown")
    escalated = status == "escalated" or any(
        d.get("kind") == "escalated" for d in journal.get("decisions") or []
        if isinstance(d, dict))
    row = {
        "dir": folder,
        "incident_id": str(journal.get("incident_id") or folder),
        "scenario": journal.get("scenario"),
        "title": journal.get("title"),
        "severity": journal.get("severity"),
        "status": status,
        "drill": int(bool(journal.get("drill"))),
        "check_mode": int(bool(journal.get("check_mode"))),
        "start": journal.get("start"),
        "end": journal.get("end"),
        "start_epoch": epoch(journal.get("start")),
        "end_epoch": epoch(journal.get("end")),
        "duration_s": journal.get("duration_s"),
        "resolved_by": journal.get("resolved_by"),
        "escalated": int(escalated),
        "reason": journal.get("reason"),
        "target_key": target_key_of(journal),
        "ci": json.dumps(journal.get("ci") or {}, default=str, sort_keys=True),
        "source_mtime": source_mtime,
        "indexed_at": now_iso("seconds"),
    }
    steps = []
    for seq, step in enumerate(journal.get("steps") or [], start=1):
        if not isinstance(step, dict):
            continue
        start, end = epoch(step.get("start")), epoch(step.get("end"))
        steps.append({
            "incident_dir": folder, "seq": seq, "phase": step.get("phase"),
            "name": step.get("name"), "action": step.get("action"),
            "status": step.get("status"), "start": step.get("start"), "end": step.get("end"),
            "duration_s": round(end - start, 3) if start is not None and end is not None
            else None,
            "changed": int(step.get("changed") or 0),
            "destructive": int(bool(step.get("destructive"))),
        })
    return row, steps


@dataclass(frozen=True)
class IncidentRow:
    """One line of ``incident-runner incidents``."""

    incident_id: str
    dir: str
    scenario: str | None
    title: str | None
    severity: str | None
    status: str
    drill: bool
    check_mode: bool
    start: str | None
    end: str | None
    duration_s: float | None
    resolved_by: str | None
    escalated: bool
    reason: str | None
    target_key: str | None
    ci: dict[str, Any]

    @property
    def kind(self) -> str:
        return "check" if self.check_mode else "drill" if self.drill else "real"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "kind": self.kind}

    @classmethod
    def from_sql(cls, row: Mapping[str, Any]) -> IncidentRow:
        try:
            ci = json.loads(row["ci"] or "{}")
        except ValueError:
            ci = {}
        return cls(
            incident_id=row["incident_id"], dir=row["dir"], scenario=row["scenario"],
            title=row["title"], severity=row["severity"], status=row["status"],
            drill=bool(row["drill"]), check_mode=bool(row["check_mode"]), start=row["start"],
            end=row["end"], duration_s=row["duration_s"], resolved_by=row["resolved_by"],
            escalated=bool(row["escalated"]), reason=row["reason"],
            target_key=row["target_key"], ci=ci if isinstance(ci, dict) else {},
        )


# -- the database -------------------------------------------------------------
def _connect(path: Path | str) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
    conn.row_factory = sqlite3.Row
    return conn


def _prepare(conn: sqlite3.Connection) -> None:
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")  # WAL: durable at checkpoints; it is an index
    conn.execute("PRAGMA foreign_keys = ON")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == SCHEMA_VERSION:
        return
    # Another (older or newer) layout: it is only an index, so rebuild it.
    conn.execute("BEGIN IMMEDIATE")
    try:
        if version != 0:
            conn.execute("DROP TABLE IF EXISTS targets")
            conn.execute("DROP TABLE IF EXISTS steps")
            conn.execute("DROP TABLE IF EXISTS incidents")
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _is_corrupt(exc: sqlite3.DatabaseError) -> bool:
    text = str(exc).lower()
    return not isinstance(exc, sqlite3.OperationalError) or "malformed" in text \
        or "not a database" in text


class History:
    """An open history index over one state dir."""

    def __init__(self, root: Path, conn: sqlite3.Connection, path: Path | None) -> None:
        self.root = root
        self.conn = conn
        self.path = path  # None: an in-memory index (state dir not writable)

    # -- opening ---------------------------------------------------------
    @classmethod
    def open(cls, root: Path | None = None) -> History:
        """Open (creating if needed) ``<root>/history.sqlite``.

        A corrupt file is moved aside and rebuilt; a state dir we cannot
        write to gets an in-memory index, so reading commands still work.
        """
        root = Path(root) if root is not None else state_dir()
        path = root / HISTORY_FILE
        try:
            root.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
            conn = _connect(path)
            try:
                _prepare(conn)
            except sqlite3.DatabaseError as exc:
                conn.close()
                if not _is_corrupt(exc):
                    raise
                cls._move_aside(path, exc)
                conn = _connect(path)
                _prepare(conn)
            return cls(root, conn, path)
        except (OSError, sqlite3.OperationalError) as exc:
            LOG.warning("history index %s unusable (%s); using an in-memory index", path, exc)
            conn = _connect(":memory:")
            _prepare(conn)
            return cls(root, conn, None)

    @staticmethod
    def _move_aside(path: Path, exc: Exception) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        aside = path.with_name(f"{path.name}.corrupt-{stamp}")
        LOG.warning("history index %s is corrupt (%s); moved to %s and rebuilt", path, exc, aside)
        path.rename(aside)
        for suffix in ("-wal", "-shm"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- writing ---------------------------------------------------------
    def upsert(self, journal: dict[str, Any], source_mtime: float | None = None) -> None:
        """Index one incident (replacing its row and its steps)."""
        folder = str(journal.get("dir") or journal.get("incident_id") or "")
        if source_mtime is None and folder:
            source_mtime = _source_mtime(self.root / folder)
        row, steps = index_rows(journal, source_mtime or 0.0)
        folder = row["dir"]
        columns = ", ".join(row)
        marks = ", ".join(f":{k}" for k in row)
        updates = ", ".join(f"{k} = excluded.{k}" for k in row if k != "dir")
        with self._write() as conn:
            conn.execute(f"INSERT INTO incidents ({columns}) VALUES ({marks}) "  # noqa: S608 (fixed column names)
                         f"ON CONFLICT (dir) DO UPDATE SET {updates}", row)
            conn.execute("DELETE FROM steps WHERE incident_dir = ?", (folder,))
            conn.executemany(
                "INSERT INTO steps (incident_dir, seq, phase, name, action, status, start, end, "
                "duration_s, changed, destructive) VALUES (:incident_dir, :seq, :phase, :name, "
                ":action, :status, :start, :end, :duration_s, :changed, :destructive)", steps)
            conn.execute("DELETE FROM targets WHERE incident_dir = ?", (folder,))
            conn.executemany("INSERT OR IGNORE INTO targets (incident_dir, target_key) "
                             "VALUES (?, ?)", [(folder, str(k)) for k in
                                               journal.get("target_keys") or []])

    def sync(self) -> int:
        """Bring the index in line with the incident folders; returns rows (re)indexed."""
        indexed = {r["dir"]: (r["status"], r["source_mtime"]) for r in
                   self.conn.execute("SELECT dir, status, source_mtime FROM incidents")}
        on_disk: dict[str, Path] = {}
        if self.root.is_dir():
            for path in self.root.iterdir():
                if path.name.startswith(INCIDENT_PREFIX) and path.is_dir() and (
                        (path / TIMELINE_FILE).exists() or (path / JOURNAL_FILE).exists()):
                    on_disk[path.name] = path
        count = 0
        for name, path in sorted(on_disk.items()):
            mtime = _source_mtime(path)
            known = indexed.get(name)
            if known is not None and known[0] != "running" and known[1] == mtime:
                continue
            try:
                journal = load_journal(path)
            except (OSError, ValueError, KeyError) as exc:
                LOG.warning("cannot read incident %s: %s", path, exc)
                continue
            journal["dir"] = name  # the folder is the key, whatever the journal says
            self.upsert(journal, source_mtime=mtime)
            count += 1
        gone = sorted(set(indexed) - set(on_disk))
        if gone:
            with self._write() as conn:
                conn.executemany("DELETE FROM incidents WHERE dir = ?", [(g,) for g in gone])
        return count

    # -- reading ---------------------------------------------------------
    def incidents(self) -> list[IncidentRow]:
        rows = self.conn.execute(
            "SELECT * FROM incidents ORDER BY start_epoch IS NULL, start_epoch, dir")
        return [IncidentRow.from_sql(r) for r in rows]

    def steps(self, folder: str) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT phase, name, action, status, start, end, duration_s, changed, destructive "
            "FROM steps WHERE incident_dir = ? ORDER BY seq", (folder,))
        return [dict(r) for r in rows]

    def count_remediations(self, target_key: str, since: datetime | float | str) -> int:
        """Incidents against ``target_key`` started at or after ``since`` that ran at
        least one mitigation step for real (check-mode runs change nothing).

        Drills count: their remediations act on the target just the same.
        The incident asking (before its own first mitigation) is not counted.
        A fleet incident counts for each host it acted on (``target_keys``).
        """
        row = self.conn.execute(
            "SELECT COUNT(*) FROM incidents i WHERE (i.target_key = ? OR EXISTS (SELECT 1 "
            "FROM targets t WHERE t.incident_dir = i.dir AND t.target_key = ?)) AND "
            "i.start_epoch >= ? AND i.check_mode = 0 AND EXISTS (SELECT 1 FROM steps s WHERE "
            "s.incident_dir = i.dir AND s.phase = 'mitigate')",
            (target_key, target_key, _since_epoch(since))).fetchone()
        return int(row[0])


# -- module-level API -----------------------------------------------------------
def record(journal: dict[str, Any], root: Path | None = None) -> bool:
    """Index a closed incident. Never raises: the journal on disk is the truth,
    and the next ``sync`` repairs a missed write."""
    try:
        with History.open(root) as history:
            if history.path is None:
                return False
            history.upsert(journal)
    except (sqlite3.Error, OSError, ValueError) as exc:
        LOG.warning("could not index %s in the history: %s", journal.get("incident_id"), exc)
        return False
    return True


def synced(root: Path | None = None) -> History:
    """Open the index and bring it up to date with the state dir."""
    history = History.open(root)
    try:
        history.sync()
    except BaseException:
        history.close()
        raise
    return history


def list_incidents(root: Path | None = None) -> list[IncidentRow]:
    with synced(root) as history:
        return history.incidents()


def count_remediations(target_key: str, since: datetime | float | str,
                       root: Path | None = None) -> int:
    """For the flap guard: see ``History.count_remediations``."""
    with synced(root) as history:
        return history.count_remediations(target_key, since)

