"""Issue 16, must show: runners in separate working directories sharing one PostgreSQL
never act twice on one target, see one history, survive a killed holder and stop
(fencing) when the database goes away mid-incident.

One real cluster (tests/pg_server.py) serves every test here; the runners are real
``incident-runner`` processes over the test-only scenarios in tests/fixtures/pg_home."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from incident_runner.store.postgres import SCHEMA_VERSION, upgrade
from incident_runner.timeline import read_timeline
from tests.pg_server import PgServer
from tests.stack import ROOT, VENV_BIN, env

# One worker runs them all (--dist loadgroup): one cluster, never two on one port.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.xdist_group("postgres")]

FIXTURE_HOME = ROOT / "tests" / "fixtures" / "pg_home"
RUNNER = str(VENV_BIN / "incident-runner")


@pytest.fixture(scope="session")
def pg() -> Iterator[PgServer]:
    server = PgServer()
    try:
        server.start()
        server.create_database()
        assert upgrade(server.url) == (0, SCHEMA_VERSION,
                                      ["0001_initial", "0002_serve_intake", "0003_incident_ids"])
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def pg_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("pg-home")
    for name in ("roles", "ansible.cfg", "incident-runner.yml"):
        (home / name).symlink_to(ROOT / name)
    for name in ("scenarios", "playbooks", "inventory"):
        (home / name).symlink_to(FIXTURE_HOME / name)
    return home


@pytest.fixture(scope="session")
def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on: the symptom check always fails."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Runners:
    """Two runners, each in its own working directory (its own ./incidents)."""

    def __init__(self, base: Path, url: str, home: Path, closed_port: int) -> None:
        self.dirs = [base / "runner-a", base / "runner-b"]
        for d in self.dirs:
            d.mkdir()
        self.marks = base / "marks"
        self.marks.mkdir()
        self.url = url
        self.env = {**env(), "INCIDENT_RUNNER_HOME": str(home),
                    "INCIDENT_RUNNER_STATE_URL": url}
        self.env.pop("INCIDENT_RUNNER_STATE_DIR", None)
        self.closed_port = closed_port

    def argv(self, scenario: str) -> list[str]:
        return [RUNNER, "remediate", "-s", scenario, "-i", str(FIXTURE_HOME / "inventory"),
                "-e", f"pg_dir={self.marks}", "-e", f"pg_closed_port={self.closed_port}",
                "--json"]

    def start(self, which: int, scenario: str) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv(scenario), cwd=self.dirs[which], env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def cli(self, which: int, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([RUNNER, *args], cwd=self.dirs[which], env=self.env,
                              capture_output=True, text=True, timeout=120, check=False)

    def marks_named(self, prefix: str) -> list[Path]:
        return sorted(self.marks.glob(f"{prefix}-*"))



@pytest.fixture
def runners(tmp_path: Path, pg: PgServer, pg_home: Path, closed_port: int) -> Runners:
    with psycopg.connect(pg.url) as conn:  # each test starts from an empty shared history
        conn.execute("TRUNCATE ir_incidents, ir_steps, ir_lock_holders")
    return Runners(tmp_path, pg.url, pg_home, closed_port)


def _wait(proc: subprocess.Popen[str], timeout: float = 300) -> tuple[int, dict[str, object]]:
    out, err = proc.communicate(timeout=timeout)
    try:
        summary = json.loads(out) if out.strip() else {}
    except ValueError:
        summary = {}
    assert summary or proc.returncode != 0, f"no summary: {out[-2000:]}\n{err[-2000:]}"
    return proc.returncode, {**summary, "_stderr": err}


def _wait_for(what: str, predicate: object, proc: subprocess.Popen[str],
              timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"runner exited {proc.returncode} before {what}:\n{out[-2000:]}\n"
                        f"{err[-2000:]}")
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def _shared_rows(url: str, incident_id: str) -> list[dict[str, object]]:
    with psycopg.connect(url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute("SELECT * FROM ir_incidents WHERE incident_id = %s",
                           (incident_id,)).fetchall()


def test_ten_triggers_across_two_runners_act_once_and_history_is_shared(
        runners: Runners) -> None:
    procs = [runners.start(i % 2, "pg-touch") for i in range(10)]
    results = [_wait(p) for p in procs]
    acted = runners.marks_named("acted")
    assert len(acted) == 1, [r[1].get("reason") for r in results]
    # Everyone else stopped on the lock or the shared flap guard, none acted.
    reasons = [str(r[1].get("reason")) for r in results]
    assert sum("flap guard" in r for r in reasons) == 9, reasons
    assert {r[0] for r in results} == {3}, reasons
    with psycopg.connect(runners.url) as conn:
        row = conn.execute("SELECT count(*), count(DISTINCT origin), count(DISTINCT incident_id) "
                           "FROM ir_incidents WHERE scenario = 'pg-touch'").fetchone()
        mitigated = conn.execute("SELECT count(DISTINCT (origin, incident_dir)) FROM ir_steps "
                                 "WHERE phase = 'mitigate'").fetchone()
    # ten incidents, ten ids: two runners opening in the same second never share one
    assert row == (10, 2, 10)
    assert mitigated == (1,)

    # One truth: `incidents` and `stats` print the same whichever runner asks.
    for args in (["incidents"], ["stats"]):
        a, b = runners.cli(0, *args), runners.cli(1, *args)
        assert a.returncode == b.returncode == 0, a.stderr + b.stderr
        assert a.stdout == b.stdout
        assert "pg-touch" in a.stdout
    a_json = json.loads(runners.cli(0, "incidents", "--json").stdout)
    b_json = json.loads(runners.cli(1, "incidents", "--json").stdout)
    assert [{k: v for k, v in r.items() if k != "path"} for r in a_json] == [
        {k: v for k, v in r.items() if k != "path"} for r in b_json]
    stats_a = json.loads(runners.cli(0, "stats", "--json").stdout)
    [touch] = [s for s in stats_a["incidents"] if s["scenario"] == "pg-touch"]
    assert touch["count"] == 10
    assert touch["escalated"] == 10


def test_kill_9_of_the_holder_releases_the_lock_and_shows_interrupted(
        runners: Runners) -> None:
    holder = runners.start(0, "pg-hold")
    _wait_for("the holder's step started", lambda: bool(runners.marks_named("hold-started")),
              holder)
    waiter = runners.start(1, "pg-hold")

    def waiting() -> bool:
        folders = list((runners.dirs[1] / "incidents").glob("INC-*-pg-hold"))
        return any(e.get("kind") == "lock" and e.get("decision") == "wait"
                   for f in folders for e in read_timeline(f / "timeline.jsonl"))

    _wait_for("the second runner waiting for the lock", waiting, waiter)
    assert not runners.marks_named("second")
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
    (runners.marks / "release").touch()  # the waiter's own step 1 passes at once

    code, summary = _wait(waiter)
    assert code == 3, summary
    events = list(read_timeline(runners.dirs[1] / str(summary["dir"]) / "timeline.jsonl"))
    decisions = [e.get("decision") for e in events if e.get("kind") == "lock"]
    assert decisions == ["wait", "acquired"]
    assert any(e.get("kind") == "step_started" and e.get("step") == "second"
               for e in events), (summary, [(e.get("kind"), e.get("reason")) for e in events])
    assert len(runners.marks_named("second")) == 1  # only the next runner reached step 2

    # The killed incident: interrupted in the shared history, whichever runner asks.
    listing = json.loads(runners.cli(1, "incidents", "--json").stdout)
    killed = [r for r in listing if r["scenario"] == "pg-hold" and
              r["incident_id"] != summary["incident_id"]]
    assert [r["status"] for r in killed] == ["interrupted"]
    assert "session ended" in str(killed[0]["reason"])
    assert runners.cli(0, "incidents").stdout == runners.cli(1, "incidents").stdout


def test_postgres_stopped_mid_incident_stops_before_the_next_action(
        runners: Runners, pg: PgServer) -> None:
    holder = runners.start(0, "pg-hold")
    _wait_for("the holder's step started", lambda: bool(runners.marks_named("hold-started")),
              holder)
    pg.stop("fast")
    try:
        (runners.marks / "release").touch()
        code, summary = _wait(holder)
    finally:
        pg.start()
    assert code == 1, summary
    assert summary["status"] == "failed"
    reason = str(summary["reason"])
    assert "lost the lock" in reason and "stopped before the next action" in reason
    assert "\n" not in reason and "Traceback" not in str(summary["_stderr"])
    assert not runners.marks_named("second")  # step 2 never ran without the lock

    # The server is back: nothing resumes or repeats the action.
    rows = _shared_rows(runners.url, str(summary["incident_id"]))
    assert [r["status"] for r in rows] in (["interrupted"], ["running"], ["failed"])
    listing = json.loads(runners.cli(1, "incidents", "--json").stdout)
    [row] = [r for r in listing if r["incident_id"] == summary["incident_id"]
             and r["scenario"] == "pg-hold"]
    assert row["status"] in {"interrupted", "failed"}
    assert len(runners.marks_named("hold-started")) == 1
    assert not runners.marks_named("second")


def test_db_upgrade_is_idempotent_and_an_old_schema_is_refused(runners: Runners,
                                                               pg: PgServer) -> None:
    again = runners.cli(0, "db", "upgrade")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip().endswith(
        f"schema version {SCHEMA_VERSION} -> {SCHEMA_VERSION} (nothing to apply)")
    with psycopg.connect(pg.url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS ir_empty")
        conn.execute("CREATE DATABASE ir_empty")
    empty = pg.url.rsplit("/", 1)[0] + "/ir_empty"
    proc = runners.cli(0, "--state-url", empty, "incidents")
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1
    assert "schema version 0" in proc.stderr and "incident-runner db upgrade" in proc.stderr


def test_bad_url_exits_2_and_unreachable_server_exits_1_with_one_line(
        runners: Runners, closed_port: int) -> None:
    bad = runners.cli(0, "--state-url", "mysql://x@127.0.0.1/db", "incidents")
    assert bad.returncode == 2, bad.stderr
    assert bad.stderr.count("\n") == 1 and "--state-url" in bad.stderr
    down = f"postgresql://postgres@127.0.0.1:{closed_port}/x"
    for args in (["incidents"], ["remediate", "-s", "pg-touch", "-i",
                                  str(FIXTURE_HOME / "inventory")]):
        proc = runners.cli(0, "--state-url", down, *args)
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.count("\n") == 1 and "unreachable" in proc.stderr
        assert "Traceback" not in proc.stderr
    assert not (runners.dirs[0] / "incidents").exists()  # nothing opened, nothing acted


def test_sqlite_stays_the_default_without_a_server(runners: Runners) -> None:
    runners.env.pop("INCIDENT_RUNNER_STATE_URL")
    proc = runners.start(0, "pg-touch")
    code, summary = _wait(proc)
    assert code == 3, summary
    assert (runners.dirs[0] / "incidents" / "history.sqlite").is_file()
    assert (runners.dirs[0] / "incidents" / "locks").is_dir()
    assert _shared_rows(runners.url, str(summary["incident_id"])) == []


def test_awx_job_template_playbook_runs_a_whole_incident(runners: Runners) -> None:
    """playbooks/awx_incident.yml as AWX runs it: survey answers as extra vars, the
    state URL from the job's environment (a credential), the runner inside."""
    state = runners.dirs[0] / "incidents"
    survey = {"ir_scenario": "pg-touch", "ir_inventory": str(FIXTURE_HOME / "inventory"),
              "ir_state_dir": str(state),
              "ir_vars": {"pg_dir": str(runners.marks),
                          "pg_closed_port": runners.closed_port}}
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", "localhost,",
         str(ROOT / "playbooks" / "awx_incident.yml"), "-e", json.dumps(survey)],
        cwd=runners.dirs[0], env=runners.env, capture_output=True, text=True, timeout=300,
        check=False)
    # The scenario's verification always fails: the incident escalates and the job fails
    # saying so, after the one action.
    assert proc.returncode == 2, proc.stdout[-3000:]
    assert "escalated (exit 3)" in proc.stdout
    assert len(runners.marks_named("acted")) == 1
    assert len(list(state.glob("INC-*-pg-touch"))) == 1  # the folder where the survey said
    listing = json.loads(runners.cli(1, "incidents", "--json").stdout)
    assert [(r["scenario"], r["status"]) for r in listing] == [("pg-touch", "escalated")]
