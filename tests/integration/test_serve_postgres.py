"""Issue 16: two `serve` instances (separate state dirs, different ports) on one PostgreSQL
share intake and dedupe: one incident per alert group whichever instance an alert reaches,
none lost when one instance is killed (kill -9) mid-burst and restarted, and `incidents`
and `stats` the same whichever runner asks.

One real cluster (tests/pg_server.py) for the module. The incidents come from
tests/fixtures/serve_home's alert-escalate (it escalates without an Ansible run), so
this measures the shared intake, not Ansible."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest

from incident_runner.serve.intake import QueueFullError
from incident_runner.serve.pg_intake import PostgresIntake
from incident_runner.serve.routing import Alert, Route
from incident_runner.store.postgres import SCHEMA_VERSION, upgrade
from tests.pg_server import PgServer
from tests.serve_proc import (
    SERVE_HOME,
    TOKEN,
    VENV_BIN,
    Serve,
    alertmanager_payload,
    get,
    post,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GROUPS, PER_GROUP = 10, 5
ALERTS = GROUPS * PER_GROUP
KILL_AT = ALERTS // 2
WAIT_S = 300


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rows(url: str, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return list(conn.execute(sql, params or None).fetchall())


@pytest.fixture(scope="module")
def pg() -> Iterator[PgServer]:
    server = PgServer()
    try:
        server.start()
        server.create_database()
        assert upgrade(server.url)[1] == SCHEMA_VERSION
        yield server
    finally:
        server.destroy()


# -- the shared intake itself, in-process: two instances, one database of their own ------
QUEUED = Route("queued", scenario="proxy-502", severity="P1")


def _alert(group: str, fp: str) -> Alert:
    return Alert("alertmanager", "firing", group, fp, "2026-12-02T10:00:00Z",
                 {"alertname": "ProxyBadGateway"}, {"summary": "s"})


@pytest.fixture
def unit_url(pg: PgServer) -> str:
    with psycopg.connect(pg.url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS ir_intake_unit")
        conn.execute("CREATE DATABASE ir_intake_unit")
    url = pg.url.rsplit("/", 1)[0] + "/ir_intake_unit"
    upgrade(url)
    return url


def test_two_intakes_dedupe_claim_once_and_requeue_a_dead_instances_claims(
        unit_url: str, tmp_path: Path) -> None:
    # 8 instances (own connections) post each group's alert at the same instant
    many = [PostgresIntake(unit_url, tmp_path / f"i{n}", queue_max=100) for n in range(8)]
    a, b = many[0], many[1]
    barrier = threading.Barrier(len(many))

    def post_all(n: int) -> list[dict[str, Any]]:
        out = []
        for g in range(5):
            barrier.wait(timeout=60)
            out += many[n].accept([(_alert(f"g{g}", f"f{n}-{g}"), QUEUED)])
        return out

    with ThreadPoolExecutor(len(many)) as pool:
        answers = [x for xs in pool.map(post_all, range(len(many))) for x in xs]
    by_disposition: dict[str, set[int]] = {}
    for answer in answers:
        by_disposition.setdefault(answer["disposition"], set()).add(answer["incident"])
    assert sorted(by_disposition) == ["deduplicated", "queued"]
    assert len(by_disposition["queued"]) == 5  # one incident per group
    assert by_disposition["deduplicated"] == by_disposition["queued"]
    assert len([x for x in answers if x["disposition"] == "queued"]) == 5
    assert len({r[0] for r in _rows(unit_url, "SELECT DISTINCT received_by FROM "
                                    "ir_serve_alerts")}) == len(many)

    # a claims one; then all 8 claim at once: each incident claimed exactly once
    first = a.claim()
    assert first is not None
    claimed: list[tuple[PostgresIntake, int]] = [(a, first.id)]
    guard = threading.Lock()

    def drain(intake: PostgresIntake) -> None:
        while (c := intake.claim()) is not None:
            with guard:
                claimed.append((intake, c.id))

    with ThreadPoolExecutor(len(many)) as pool:
        list(pool.map(drain, many))
    assert sorted(i for _, i in claimed) == sorted(by_disposition["queued"])
    b_claims = [i for x, i in claimed if x is b]
    dead_claims = [i for x, i in claimed if x is not b]

    # repeats: only the instance that ran an incident (its folder) attaches them
    assert b.unattached_repeats(first.id) == (None, [])
    assert a.unattached_repeats(first.id)[1]

    # every instance but b dies (live sessions end): b requeues their claims, not its own
    for x in many:
        if x is not b:
            x.close()
    requeued, deadline = 0, time.monotonic() + 30
    while requeued < len(dead_claims) and time.monotonic() < deadline:  # backends end async
        requeued += b.recover()
        time.sleep(0.05)
    assert requeued == len(dead_claims)
    again = [c.id for c in iter(b.claim, None)]
    assert sorted(again) == sorted(dead_claims)
    assert b.recover() == 0  # b is alive: its running claims stay
    # a restarted (a new claim key) cannot finish what b now runs (fencing); b can
    a2 = PostgresIntake(unit_url, tmp_path / "i0", queue_max=100)
    for incident in again:
        a2.finish(incident, "escalated", 3, "INC-x", None)
    assert _rows(unit_url, "SELECT count(*) FROM ir_serve_incidents WHERE state = 'done'"
                 ) == [(0,)]
    for incident in again + b_claims:
        b.finish(incident, "escalated", 3, "INC-x", None)
    assert _rows(unit_url, "SELECT state, count(*), max(attempts) FROM ir_serve_incidents "
                 "GROUP BY state") == [("done", 5, 2)]
    # the queue bound counts the shared queue: 2 + 1 queued fill a bound of 3
    small, other = (PostgresIntake(unit_url, tmp_path / n, queue_max=3) for n in "cd")
    small.accept([(_alert("q1", "x"), QUEUED), (_alert("q2", "x"), QUEUED)])
    other.accept([(_alert("q3", "x"), QUEUED)])
    with pytest.raises(QueueFullError):
        small.accept([(_alert("q4", "x"), QUEUED)])
    for intake in (a2, b, small, other):
        intake.close()


def _serve_env(url: str) -> dict[str, str]:
    return {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "INCIDENT_RUNNER_HOME": str(SERVE_HOME),
            "INCIDENT_RUNNER_CONFIG": str(SERVE_HOME / "incident-runner.yml"),
            "IR_SERVE_TEST_TOKEN": TOKEN, "INCIDENT_RUNNER_STATE_URL": url}


def test_serve_refuses_a_bad_url_an_unreachable_server_and_an_old_schema(
        pg: PgServer, tmp_path: Path) -> None:
    with psycopg.connect(pg.url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS ir_serve_v1")
        conn.execute("CREATE DATABASE ir_serve_v1")
    v1 = pg.url.rsplit("/", 1)[0] + "/ir_serve_v1"
    with psycopg.connect(v1, autocommit=True) as conn:  # a database the last release made
        conn.execute("CREATE TABLE ir_schema_migrations (version INTEGER PRIMARY KEY, "
                     "name TEXT NOT NULL)")
        conn.execute("INSERT INTO ir_schema_migrations VALUES (1, 'initial')")
    for url, code, words in (
            ("mysql://db/x", 2, "not a postgresql:// URL"),
            (f"postgresql://postgres@127.0.0.1:{_free_port()}/x", 1, "unreachable"),
            (v1, 1, "incident-runner db upgrade")):
        proc = subprocess.run(
            [str(VENV_BIN / "incident-runner"), "--state-dir", str(tmp_path / "state"),
             "serve", "--listen", f"127.0.0.1:{_free_port()}"],
            env=_serve_env(url), capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == code, proc.stderr
        assert proc.stderr.count("\n") == 1 and words in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    assert not (tmp_path / "state" / "serve-intake.sqlite").exists()  # never a silent fallback


# -- two real serve processes behind a "load balancer" -------------------------------------
class Burst:
    """ALERTS alerts in GROUPS groups; alert i goes to instance i % 2 first, and a refused or
    failed post is retried on the next instance (as a load balancer with health checks
    would); instance 0 is killed (SIGKILL) after KILL_AT posts and restarted."""

    def __init__(self, serves: list[Serve], url: str) -> None:
        self.serves = serves
        self.url = url
        self.running_at_kill: list[int] = []
        self.sent = 0
        self.lock = threading.Lock()
        self.kill_now = threading.Event()
        self.killed_pid: int | None = None
        self.answered: dict[str, int] = {}  # fingerprint -> the port that said 202

    def one(self, i: int) -> None:
        body = alertmanager_payload("BurstAlert", f"pgb-{i % GROUPS:02d}", f"p{i:04d}")
        with self.lock:
            self.sent += 1
            if self.sent == KILL_AT:
                self.kill_now.set()
        deadline = time.monotonic() + WAIT_S
        attempt = 0
        while time.monotonic() < deadline:
            serve = self.serves[(i + attempt) % 2]
            attempt += 1
            try:
                status, _ = post(serve.url + "/alerts/alertmanager", body, timeout=30)
            except OSError:
                time.sleep(0.1)
                continue
            if status == 202:
                self.answered[f"p{i:04d}"] = serve.port
                return
            time.sleep(0.1)

    def killer(self) -> None:
        """Kill instance 0 once half the alerts are sent, while it runs an incident (waits a
        bounded time for one: alert-escalate runs take seconds)."""
        if not self.kill_now.wait(timeout=WAIT_S):
            return
        victim = self.serves[0]
        origin = f"{socket.gethostname()}:{victim.state.resolve()}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            self.running_at_kill = [r[0] for r in _rows(
                self.url, "SELECT id FROM ir_serve_incidents WHERE state = 'running' AND "
                "claimed_by = %s", origin)]
            if self.running_at_kill:
                break
            time.sleep(0.05)
        self.killed_pid = victim.proc.pid if victim.proc else None
        victim.kill()  # SIGKILL: no shutdown, its runners get SIGTERM (PDEATHSIG)
        victim.start()


@pytest.fixture(scope="module")
def burst(pg: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("serve-pg")
    serves = [Serve(_free_port(), base / name / "state",
                    env={"INCIDENT_RUNNER_STATE_URL": pg.url}) for name in ("a", "b")]
    try:
        for serve in serves:
            serve.start()
        run = Burst(serves, pg.url)
        killer = threading.Thread(target=run.killer, daemon=True)
        killer.start()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(run.one, range(ALERTS)))
        killer.join(timeout=WAIT_S)
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            (busy,) = _rows(pg.url, "SELECT count(*) FROM ir_serve_incidents "
                            "WHERE state != 'done'")[0]
            if busy == 0:
                break
            time.sleep(0.5)
        yield {"serves": serves, "run": run, "url": pg.url}
    finally:
        for serve in serves:
            serve.stop()


def test_two_instances_burst_with_kill_9_one_incident_per_group_none_lost(
        burst: dict[str, Any]) -> None:
    url, run, serves = burst["url"], burst["run"], burst["serves"]
    a, b = serves
    # the kill happened mid-burst and instance a runs again (a new process)
    assert run.killed_pid is not None and a.proc is not None and a.proc.pid != run.killed_pid
    assert a.proc.poll() is None and b.proc is not None and b.proc.poll() is None
    # ... while it ran incidents: each was requeued and run again to its one outcome
    assert run.running_at_kill
    attempts = dict(_rows(url, "SELECT id, attempts FROM ir_serve_incidents"))
    assert any(attempts[i] >= 2 for i in run.running_at_kill), (run.running_at_kill, attempts)
    print(f"running at the kill: {run.running_at_kill}; attempts {attempts}")
    posted = {f"p{i:04d}" for i in range(ALERTS)}
    assert set(run.answered) == posted, sorted(posted - set(run.answered))
    assert set(run.answered.values()) == {a.port, b.port}

    # every alert answered 202 is in the shared intake (a retry after the kill may add one)
    recorded = dict(_rows(url, "SELECT fingerprint, count(*) FROM ir_serve_alerts "
                          "WHERE group_key LIKE 'pgb-%' GROUP BY fingerprint"))
    assert set(recorded) == posted
    by_instance = dict(_rows(url, "SELECT received_by, count(*) FROM ir_serve_alerts "
                             "GROUP BY received_by"))
    assert len(by_instance) == 2, by_instance  # both instances took alerts

    # exactly one incident per group, whichever instance got its alerts; all finished
    per_group = dict(_rows(url, "SELECT dedupe_key, count(*) FROM ir_serve_incidents "
                           "GROUP BY dedupe_key"))
    assert per_group == {f"pgb-{g:02d}": 1 for g in range(GROUPS)}
    assert _rows(url, "SELECT state, outcome, count(*) FROM ir_serve_incidents GROUP BY "
                 "state, outcome") == [("done", "escalated", GROUPS)]
    dispositions = dict(_rows(url, "SELECT disposition, count(*) FROM ir_serve_alerts "
                              "GROUP BY disposition"))
    assert dispositions["queued"] == GROUPS
    assert set(dispositions) == {"queued", "deduplicated"}
    assert sum(dispositions.values()) == sum(recorded.values())
    # each group's alerts point at its one incident
    assert _rows(url, "SELECT count(*) FROM ir_serve_alerts a JOIN ir_serve_incidents i "
                 "ON i.id = a.incident WHERE a.group_key != i.dedupe_key") == [(0,)]

    # repeats end on the timeline of the instance that ran the incident, whichever
    # instance received them (bounded poll: the runner's instance sweeps each second)
    deadline = time.monotonic() + 60
    while _rows(url, "SELECT count(*) FROM ir_serve_alerts WHERE disposition = "
                "'deduplicated' AND attached = 0") != [(0,)] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _rows(url, "SELECT count(*) FROM ir_serve_alerts WHERE disposition = "
                 "'deduplicated' AND attached = 0") == [(0,)]
    repeats = 0
    for folder, origin in _rows(url, "SELECT incident_dir, claimed_by FROM ir_serve_incidents"):
        assert origin.endswith(str(Path(folder).parent)), (origin, folder)
        timeline = Path(folder) / "timeline.jsonl"
        repeats += sum(1 for line in timeline.read_text().splitlines()
                       if json.loads(line).get("kind") == "alert_repeat")
    assert repeats == dispositions["deduplicated"]

    # /healthz shows the same shared counts on both instances
    health = [json.loads(get(s.url + "/healthz")[1]) for s in serves]
    assert health[0]["alerts"] == health[1]["alerts"] == dispositions
    assert health[0]["incidents"] == health[1]["incidents"] == {"done": GROUPS}


def test_incidents_and_stats_identical_whichever_instance_asks(
        burst: dict[str, Any]) -> None:
    url, serves = burst["url"], burst["serves"]
    env = _serve_env(url)

    def cli(serve: Serve, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(VENV_BIN / "incident-runner"), "--state-dir",
                               str(serve.state), *args], env=env, capture_output=True,
                              text=True, timeout=120, check=False)

    for args in (["incidents"], ["stats"]):
        a, b = cli(serves[0], *args), cli(serves[1], *args)
        assert a.returncode == b.returncode == 0, a.stderr + b.stderr
        assert a.stdout == b.stdout
        assert "alert-escalate" in a.stdout
    # the JSON names the state dir asked about; everything else is the shared truth
    stats = [json.loads(cli(s, "stats", "--json").stdout) for s in serves]
    assert [s.pop("state_dir") for s in stats] == [str(s.state) for s in serves]
    assert stats[0] == stats[1]
    [escalate] = [s for s in stats[0]["incidents"] if s["scenario"] == "alert-escalate"]
    assert escalate["escalated"] == GROUPS
    a_rows, b_rows = (json.loads(cli(s, "incidents", "--json").stdout) for s in serves)
    assert [{k: v for k, v in r.items() if k != "path"} for r in a_rows] == [
        {k: v for k, v in r.items() if k != "path"} for r in b_rows]
    # the shared history holds every run serve started: the final one of each incident
    # escalated, a run cut by the kill as interrupted (its rerun is the final one)
    # Keyed by folder, not incident id: two runners with their own state dirs can mint the
    # same INC-YYYYMMDD-HHMMSS in one second (seen in a full run: 10 incidents, 7 ids).
    final = _rows(url, "SELECT incident_dir, attempts FROM ir_serve_incidents")
    status = {r["dir"]: r["status"] for r in a_rows}
    assert len(final) == GROUPS
    assert all(status.get(Path(d).name) == "escalated" for d, _ in final), (final, status)
    runs = [r for r in a_rows if r["scenario"] == "alert-escalate"]
    assert GROUPS <= len(runs) <= sum(attempts for _, attempts in final)
    assert {r["status"] for r in runs} <= {"escalated", "interrupted"}


def test_database_down_answers_503_then_both_instances_carry_on(
        burst: dict[str, Any], pg: PgServer) -> None:
    """Runs last: stops the module's cluster under the two running instances."""
    serves = burst["serves"]
    body = alertmanager_payload("BurstAlert", "pg-down", "d0001")
    pg.stop()
    try:
        for serve in serves:  # nothing can be committed: 503, never a 202, never a crash
            assert post(serve.url + "/alerts/alertmanager", body)[0] == 503
            status, text = get(serve.url + "/healthz")
            assert status == 503 and "intake unavailable" in text
    finally:
        pg.start()
    # back: each instance reconnects (its first query may still meet the dead session)
    for serve, fp in zip(serves, ("d0002", "d0003"), strict=True):
        for _ in range(20):
            status, answer = post(serve.url + "/alerts/alertmanager",
                                  alertmanager_payload("BurstAlert", "pg-down", fp))
            if status == 202:
                break
            assert status == 503, answer
            time.sleep(0.2)
        assert status == 202
    deadline = time.monotonic() + WAIT_S
    while _rows(burst["url"], "SELECT state FROM ir_serve_incidents WHERE dedupe_key = "
                "'pg-down'") != [("done",)] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _rows(burst["url"], "SELECT state, outcome FROM ir_serve_incidents "
                 "WHERE dedupe_key = 'pg-down'") == [("done", "escalated")]
    assert _rows(burst["url"], "SELECT disposition FROM ir_serve_alerts WHERE group_key = "
                 "'pg-down' ORDER BY id") == [("queued",), ("deduplicated",)]
    assert all(s.proc is not None and s.proc.poll() is None for s in serves)
