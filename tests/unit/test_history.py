"""History index: record, rebuild from folders, killed runs, concurrency, stats, lookups."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import sqlite3
import stat
import sys
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest

from incident_runner import history, layout, stats
from incident_runner.errors import ExitCode, InputError
from incident_runner.journal import load_journal
from tests.unit.timelines import T0, dead_pid, iso, write_incident

OK = "successful"


def _resolved(root: Path, minutes: int, seconds: float, **kw: object) -> Path:
    return write_incident(root, start=T0 + timedelta(minutes=minutes),
                          steps=[("diagnose", "capture-diagnostics", OK, 1.0),
                                 ("mitigate", "reconnect-networks", OK, seconds - 2.2),
                                 ("verify", "after-reconnect-networks", OK, 0.0)],
                          status="resolved", resolved_by="reconnect-networks", **kw)  # type: ignore[arg-type]


def test_record_indexes_incident_and_steps(tmp_path: Path) -> None:
    folder = _resolved(tmp_path, 0, 5.0)
    journal = load_journal(folder)
    assert history.record(journal, tmp_path)
    with history.History.open(tmp_path) as h:
        [row] = h.incidents()
        steps = h.steps(folder.name)
    assert row.incident_id == "INC-20261124-060000" and row.dir == folder.name
    assert (row.scenario, row.severity, row.status) == ("proxy-502", "SEV2", "resolved")
    assert row.resolved_by == "reconnect-networks" and not row.escalated
    assert row.duration_s == pytest.approx(5.0, abs=0.01)
    assert row.ci == {"job": "42"} and row.kind == "real"
    assert [(s["phase"], s["name"], s["status"], s["changed"]) for s in steps] == [
        ("diagnose", "capture-diagnostics", OK, 1),
        ("mitigate", "reconnect-networks", OK, 1),
        ("verify", "after-reconnect-networks", OK, 1),
    ]
    assert steps[0]["start"] == iso(T0 + timedelta(seconds=1))


def test_database_is_wal_private_and_rebuildable(tmp_path: Path) -> None:
    _resolved(tmp_path, 0, 5.0)
    _resolved(tmp_path, 1, 7.0, scenario="service-down")
    first = [r.as_dict() for r in history.list_incidents(tmp_path)]
    db = tmp_path / history.HISTORY_FILE
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    assert [r.as_dict() for r in history.list_incidents(tmp_path)] == first
    assert len(first) == 2


def test_killed_run_without_journal_or_row_is_listed_interrupted(tmp_path: Path) -> None:
    folder = write_incident(tmp_path, steps=[("mitigate", "slow-step", "running", 3.0)],
                            status=None, pid=dead_pid())
    assert not (folder / "journal.json").exists()
    [row] = history.list_incidents(tmp_path)
    assert row.status == "interrupted"
    assert row.duration_s == pytest.approx(1.0, abs=0.01)  # up to the last event written
    with history.History.open(tmp_path) as h:
        [step] = h.steps(folder.name)
    assert (step["name"], step["status"]) == ("slow-step", "interrupted")


def test_torn_last_line_is_tolerated(tmp_path: Path) -> None:
    folder = write_incident(tmp_path, steps=[("mitigate", "slow-step", "running", 3.0)],
                            status=None, pid=dead_pid())
    with (folder / "timeline.jsonl").open("a") as handle:
        handle.write('{"seq": 99, "ts": "2026-11-24T06:00:0')  # killed mid-write
    [row] = history.list_incidents(tmp_path)
    assert row.status == "interrupted"


def test_running_incident_is_reindexed_once_it_closes(tmp_path: Path) -> None:
    folder = write_incident(tmp_path, steps=[("mitigate", "reconnect-networks", OK, 2.0)],
                            status=None, pid=os.getpid())
    assert [r.status for r in history.list_incidents(tmp_path)] == ["running"]
    with (folder / "timeline.jsonl").open("a") as handle:
        handle.write(json.dumps({"seq": 50, "ts": iso(T0 + timedelta(seconds=4)),
                                 "kind": "incident_closed", "status": "resolved",
                                 "resolved_by": "reconnect-networks", "reason": "ok"}) + "\n")
    [row] = history.list_incidents(tmp_path)
    assert (row.status, row.resolved_by, row.duration_s) == ("resolved", "reconnect-networks", 4.0)


def test_removed_folder_drops_its_row(tmp_path: Path) -> None:
    keep = _resolved(tmp_path, 0, 5.0)
    gone = _resolved(tmp_path, 1, 5.0)
    assert len(history.list_incidents(tmp_path)) == 2
    shutil.rmtree(gone)
    assert [r.dir for r in history.list_incidents(tmp_path)] == [keep.name]


def test_corrupt_database_is_moved_aside_and_rebuilt(tmp_path: Path) -> None:
    _resolved(tmp_path, 0, 5.0)
    (tmp_path / history.HISTORY_FILE).write_bytes(b"this is not sqlite" * 100)
    assert [r.status for r in history.list_incidents(tmp_path)] == ["resolved"]
    assert list(tmp_path.glob("history.sqlite.corrupt-*"))


def test_unwritable_state_dir_falls_back_to_memory(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    assert history.list_incidents(not_a_dir) == []
    assert not history.record({"incident_id": "INC-1", "dir": "INC-1-x"}, not_a_dir)


def test_schema_from_another_version_is_rebuilt(tmp_path: Path) -> None:
    _resolved(tmp_path, 0, 5.0)
    conn = sqlite3.connect(tmp_path / history.HISTORY_FILE)
    conn.execute("CREATE TABLE incidents (old TEXT)")
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()
    assert [r.status for r in history.list_incidents(tmp_path)] == ["resolved"]


def _record_many(args: tuple[str, int]) -> int:
    root, worker = Path(args[0]), args[1]
    ok = 0
    for n in range(15):
        start = T0 + timedelta(hours=worker, minutes=n)
        folder = write_incident(root, start=start, name=f"INC-w{worker}-{n}-proxy-502",
                                steps=[("mitigate", "reconnect-networks", OK, 1.0)],
                                resolved_by="reconnect-networks")
        ok += history.record(load_journal(folder), root)
        if n % 5 == 0:
            history.list_incidents(root)  # readers and a syncing writer at the same time
    return ok


def test_concurrent_runs_record_without_failing(tmp_path: Path) -> None:
    # fork: children inherit sys.path (tests.* importable) and are cheap.
    ctx = multiprocessing.get_context("fork" if sys.platform != "win32" else "spawn")
    with ProcessPoolExecutor(max_workers=6, mp_context=ctx) as pool:
        results = list(pool.map(_record_many, [(str(tmp_path), w) for w in range(6)]))
    assert results == [15] * 6
    assert len(history.list_incidents(tmp_path)) == 90


def test_count_remediations_for_the_flap_guard(tmp_path: Path) -> None:
    key = "staging:proxy"
    for minute in (0, 10, 20):
        _resolved(tmp_path, minute, 5.0, target_key=key)
    _resolved(tmp_path, 25, 5.0, target_key=key, check_mode=True)  # changed nothing
    _resolved(tmp_path, 26, 5.0, target_key="staging:web")  # another target
    write_incident(tmp_path, start=T0 + timedelta(minutes=27), target_key=key,  # no mitigation
                   steps=[("diagnose", "capture-diagnostics", OK, 1.0)], status="escalated")
    write_incident(tmp_path, start=T0 + timedelta(minutes=28), target_key=key, pid=dead_pid(),
                   steps=[("mitigate", "reconnect-networks", "running", 1.0)], status=None)
    assert history.count_remediations(key, T0, tmp_path) == 4  # the killed run counts too
    assert history.count_remediations(key, T0 + timedelta(minutes=5), tmp_path) == 3
    assert history.count_remediations(key, iso(T0 + timedelta(minutes=15)), tmp_path) == 2
    since = (T0 + timedelta(minutes=21)).timestamp()
    assert history.count_remediations(key, since, tmp_path) == 1
    # Without a recorded target_key the fallback is <hosts>:<scenario>.
    _resolved(tmp_path, 40, 5.0, scenario="oom")
    assert history.count_remediations("staging:oom", T0, tmp_path) == 1


def test_stats_per_scenario_with_drills_apart(tmp_path: Path) -> None:
    for minute, seconds in enumerate((4.0, 6.0, 8.0, 10.0, 30.0)):
        _resolved(tmp_path, minute, seconds)
    write_incident(tmp_path, start=T0 + timedelta(minutes=10),
                   steps=[("mitigate", "reconnect-networks", "failed", 2.0)],
                   status="escalated", escalate_reason="ladder exhausted")
    write_incident(tmp_path, start=T0 + timedelta(minutes=11),
                   steps=[("mitigate", "reconnect-networks", "failed", 2.0)], status="failed")
    write_incident(tmp_path, start=T0 + timedelta(minutes=12), pid=dead_pid(), status=None,
                   steps=[("mitigate", "reconnect-networks", "running", 2.0)])
    _resolved(tmp_path, 20, 12.0, drill=True)
    write_incident(tmp_path, start=T0 + timedelta(minutes=21), drill=True,
                   steps=[("mitigate", "x", "failed", 1.0)], status="escalated",
                   escalate_reason="drill")
    _resolved(tmp_path, 30, 3.0, check_mode=True)

    data = stats.stats(tmp_path)
    [real] = data["incidents"]
    assert real["scenario"] == "proxy-502"
    assert (real["count"], real["resolved"], real["escalated"], real["failed"],
            real["interrupted"]) == (8, 5, 1, 1, 1)
    assert real["success_rate"] == pytest.approx(5 / 8, abs=1e-4)
    assert real["escalation_rate"] == pytest.approx(1 / 8, abs=1e-4)
    assert real["ttr_mean_s"] == pytest.approx(11.6, abs=0.01)
    assert real["ttr_p50_s"] == pytest.approx(8.0, abs=0.01)
    assert real["ttr_p95_s"] == pytest.approx(26.0, abs=0.01)
    [drill] = data["drills"]
    assert (drill["count"], drill["resolved"], drill["escalated"]) == (2, 1, 1)
    assert drill["success_rate"] == 0.5 and drill["ttr_p95_s"] == pytest.approx(12.0, abs=0.01)
    assert data["check_mode_runs"] == 1


def test_stats_of_an_empty_state_dir(tmp_path: Path) -> None:
    assert stats.stats(tmp_path / "nothing-yet") == {
        "incidents": [], "drills": [], "check_mode_runs": 0}


@pytest.mark.parametrize(("values", "pct", "want"), [
    ([], 50, None), ([7.0], 95, 7.0), ([1.0, 2.0], 50, 1.5), ([1, 2, 3, 4], 95, 3.85),
])
def test_percentile(values: list[float], pct: float, want: float | None) -> None:
    assert stats.percentile(values, pct) == want


def test_find_incident_by_id_or_folder(tmp_path: Path) -> None:
    folder = _resolved(tmp_path, 0, 5.0)
    assert layout.find_incident("INC-20261124-060000", tmp_path) == folder
    assert layout.find_incident(folder.name, tmp_path) == folder
    # Two scenarios opened in the same second share the id: ask for the folder.
    other = _resolved(tmp_path, 0, 5.0, scenario="service-down")
    with pytest.raises(InputError, match="ambiguous"):
        layout.find_incident("INC-20261124-060000", tmp_path)
    assert layout.find_incident(other.name, tmp_path) == other


@pytest.mark.parametrize("ref", ["INC-20991231-000000", "INC-../../etc", "nonsense", "INC-x/y"])
def test_find_incident_unknown_or_malformed_is_bad_input(tmp_path: Path, ref: str) -> None:
    _resolved(tmp_path, 0, 5.0)
    with pytest.raises(InputError) as err:
        layout.find_incident(ref, tmp_path)
    assert err.value.code == ExitCode.BAD_INPUT
    assert ref[:20] in str(err.value)
