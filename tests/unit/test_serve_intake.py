"""serve intake on a real SQLite file: dedupe, resolved alerts, queue bound, claims, restart."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from incident_runner.serve.intake import Claimed, Intake, QueueFullError, open_intake
from incident_runner.serve.routing import Alert, Route
from incident_runner.serve.runner import Runner, remediate_argv
from incident_runner.serve.settings import ServeSettings
from incident_runner.store import STATE_URL_ENV

QUEUED = Route("queued", scenario="proxy-502", severity="P1")


def alert(group: str, status: str = "firing", fp: str = "f") -> Alert:
    return Alert("alertmanager", status, group, fp, "2026-12-02T10:00:00Z",
                 {"alertname": "ProxyBadGateway"}, {"summary": "s"})


def test_one_incident_per_group_repeats_deduplicated(tmp_path: Path) -> None:
    intake = Intake(tmp_path)
    (first,) = intake.accept([(alert("g1"), QUEUED)])
    assert first["disposition"] == "queued" and first["incident"]
    (repeat,) = intake.accept([(alert("g1", fp="f2"), QUEUED)])
    assert repeat == {**repeat, "disposition": "deduplicated", "incident": first["incident"]}
    (other,) = intake.accept([(alert("g2"), QUEUED)])
    assert other["disposition"] == "queued" and other["incident"] != first["incident"]
    # in one request too: the second alert of a group joins the first's incident
    answers = intake.accept([(alert("g3"), QUEUED), (alert("g3", fp="x"), QUEUED)])
    assert [a["disposition"] for a in answers] == ["queued", "deduplicated"]
    assert intake.counts() == {"alerts": {"queued": 3, "deduplicated": 2},
                               "incidents": {"queued": 3}}


def test_resolved_recorded_never_queued(tmp_path: Path) -> None:
    intake = Intake(tmp_path)
    (queued,) = intake.accept([(alert("g1"), QUEUED)])
    (resolved,) = intake.accept([(alert("g1", "resolved"),
                                  Route("resolved", scenario="proxy-502", reason="r"))])
    assert resolved["disposition"] == "resolved" and resolved["incident"] == queued["incident"]
    (alone,) = intake.accept([(alert("g9", "resolved"), Route("resolved", reason="r"))])
    assert alone["disposition"] == "resolved" and alone["incident"] is None
    assert intake.counts()["incidents"] == {"queued": 1}


def test_dedupe_window_after_the_incident_closed(tmp_path: Path) -> None:
    keep = Intake(tmp_path / "keep", dedupe_window_minutes=30)
    (a,) = keep.accept([(alert("g1"), QUEUED)])
    claimed = keep.claim()
    assert claimed is not None and claimed.id == a["incident"]
    keep.finish(claimed.id, "resolved", 0, "INC-1", "/x")
    assert keep.accept([(alert("g1"), QUEUED)])[0]["disposition"] == "deduplicated"

    fresh = Intake(tmp_path / "fresh", dedupe_window_minutes=0)
    fresh.accept([(alert("g1"), QUEUED)])
    claimed = fresh.claim()
    assert claimed is not None
    fresh.finish(claimed.id, "resolved", 0, "INC-1", "/x")
    assert fresh.accept([(alert("g1"), QUEUED)])[0]["disposition"] == "queued"


def test_queue_full_rejects_and_records_nothing(tmp_path: Path) -> None:
    intake = Intake(tmp_path, queue_max=2)
    intake.accept([(alert("g1"), QUEUED), (alert("g2"), QUEUED)])
    before = intake.counts()
    with pytest.raises(QueueFullError):
        intake.accept([(alert("g1", fp="dup"), QUEUED), (alert("g3"), QUEUED)])
    assert intake.counts() == before  # the whole request rolled back
    # repeats of open incidents need no queue slot
    assert intake.accept([(alert("g1", fp="dup"), QUEUED)])[0]["disposition"] == "deduplicated"


def test_claims_are_exclusive_across_connections(tmp_path: Path) -> None:
    seed = Intake(tmp_path, queue_max=1000)
    for i in range(60):
        seed.accept([(alert(f"g{i}"), QUEUED)])
    servers = [Intake(tmp_path) for _ in range(4)]  # as if four processes shared the file
    got: list[int] = []
    lock = threading.Lock()

    def drain(intake: Intake) -> None:
        while (claimed := intake.claim()) is not None:
            with lock:
                got.append(claimed.id)

    threads = [threading.Thread(target=drain, args=(s,)) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == sorted(set(got)) and len(got) == 60


def test_recover_requeues_what_a_killed_server_left_running(tmp_path: Path) -> None:
    intake = Intake(tmp_path)
    intake.accept([(alert("g1"), QUEUED), (alert("g2"), QUEUED)])
    first = intake.claim()
    assert first is not None and first.attempts == 1
    intake.close()  # the server dies here
    restarted = Intake(tmp_path)
    assert restarted.recover() == 1
    again = restarted.claim()
    assert again is not None and again.id == first.id and again.attempts == 2
    assert again.alert["labels"] == {"alertname": "ProxyBadGateway"}
    assert again.alert["starts_at"] == "2026-12-02T10:00:00Z"


def test_open_intake_defaults_to_sqlite_in_the_state_dir(tmp_path: Path) -> None:
    intake = open_intake(None, tmp_path, 30, 100)
    assert isinstance(intake, Intake)
    assert intake.path == tmp_path / "serve-intake.sqlite"
    assert intake.pending_attachments() == []
    intake.close()


def test_the_shared_intake_is_migration_0002() -> None:
    from incident_runner.serve.pg_intake import INTAKE_SCHEMA_VERSION  # noqa: PLC0415
    from incident_runner.store.postgres import migrations  # noqa: PLC0415

    [(version, sql)] = [(v, q) for v, n, q in migrations() if n == "serve_intake"]
    assert version == INTAKE_SCHEMA_VERSION
    assert "CREATE TABLE ir_serve_incidents" in sql and "CREATE TABLE ir_serve_alerts" in sql


def test_the_runner_gets_the_state_url_in_its_environment_never_in_argv(
        tmp_path: Path) -> None:
    url = "postgresql://runner:s3cret@db.internal/ir"
    runner = Runner(ServeSettings(), tmp_path, None, url)
    assert runner.env is not None and runner.env[STATE_URL_ENV] == url
    claimed = Claimed(1, "proxy-502", "P1", "web1", "caddy", 1, {})
    argv = remediate_argv(claimed, tmp_path / "a.json", ServeSettings(), tmp_path, None)
    assert not any("s3cret" in a or "postgresql" in a for a in argv)
    assert Runner(ServeSettings(), tmp_path, None).env is None  # SQLite: inherit as is
