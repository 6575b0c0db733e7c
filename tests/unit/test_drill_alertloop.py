"""The alert loop without its daemons: serve's intake (real SQLite) read into the loop's
stages and the runner's answer, the verdict and table of an alert-loop drill, the configs
the loop writes, and stopping a loop that is not ours."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from incident_runner.drill import (
    DrillRun,
    alertloop,
    available_drills,
    evaluate,
    load_spec,
    markdown,
    table,
)
from incident_runner.drill.alertloop import ALERT_FILE, LOOP_DIR, RUNNER_FILE, STATE_FILE
from incident_runner.drill.present import stages
from incident_runner.journal import build_journal, write_journal
from incident_runner.scenario import catalog
from incident_runner.serve.intake import Intake
from incident_runner.serve.routing import Alert, Route
from incident_runner.serve.settings import parse_settings
from tests.unit.timelines import T0, iso, write_incident

ROOT = Path(__file__).resolve().parents[2]
STARTS_AT = T0 - timedelta(seconds=3)  # the alert became active 3 s before the incident opened
QUEUED = Route("queued", scenario="proxy-502", severity="P1", host="staging")


def _alert(status: str = "firing") -> Alert:
    return Alert("alertmanager", status, "{}:{alertname=\"ProxyBadGateway\"}", "fp1",
                 iso(STARTS_AT), {"alertname": "ProxyBadGateway", "host": "staging"},
                 {"summary": "502"})


def _loop(workdir: Path, *, alerted: bool = True, done: bool = True, resolved: bool = True,
          outcome: str = "resolved", rc: int = 0, loop_state: str = "ready") -> Path:
    """A work dir as the loop leaves it: serve's intake and incident, the supervisor's state."""
    state = workdir / LOOP_DIR / "state"
    intake = Intake(state)
    try:
        if alerted:
            intake.accept([(_alert(), QUEUED)])
        if done:
            folder = write_incident(
                state, steps=[("mitigate", "reconnect-networks", "successful", 2.0)],
                resolved_by="reconnect-networks" if outcome == "resolved" else None,
                status=outcome)
            if outcome == "resolved":  # the runner's decision, just before it closes
                lines = (folder / "timeline.jsonl").read_text().splitlines()
                lines.insert(-1, json.dumps({"seq": 99, "ts": iso(T0 + timedelta(seconds=4)),
                                             "kind": "decision", "decision": "resolved",
                                             "after": "reconnect-networks", "reason": "ok"}))
                (folder / "timeline.jsonl").write_text("\n".join(lines) + "\n")
                write_journal(folder, build_journal(folder))
            claimed = intake.claim()
            assert claimed is not None
            intake.finish(claimed.id, outcome, rc, "INC-20261124-060000", str(folder),
                          "verified healthy after reconnect-networks")
        if resolved:
            intake.accept([(_alert("resolved"),
                            Route("resolved", scenario="proxy-502", reason="resolved"))])
    finally:
        intake.close()
    (workdir / LOOP_DIR / STATE_FILE).write_text(json.dumps(
        {"pid": 1, "state": loop_state, "error": None if loop_state == "ready" else "boom",
         "ports": {"serve": 1}, "cpu_s": 7.5}))
    return workdir


def test_follow_reads_every_stage_and_writes_the_runners_answer(tmp_path: Path) -> None:
    workdir = _loop(tmp_path / "w")
    alert = alertloop.follow(workdir, "proxy-502", timeout=5, resolve_timeout=5)
    assert alert["error"] is None
    assert (alert["alertname"], alert["disposition"], alert["incidents"]) == (
        "ProxyBadGateway", "queued", 1)
    assert (alert["severity"], alert["host"], alert["outcome"]) == ("P1", "staging", "resolved")
    assert alert["started"] == STARTS_AT.timestamp()
    assert alert["started"] <= alert["received"] <= alert["resolved"]
    assert alert["alerts"] == {"firing/queued": 1, "resolved/resolved": 1}
    assert json.loads((workdir / ALERT_FILE).read_text())["received"] == alert["received"]
    runner = json.loads((workdir / RUNNER_FILE).read_text())
    assert (runner["rc"], runner["expect"], runner["via"]) == (0, "resolved", "serve")
    summary = runner["summary"]
    assert (summary["status"], summary["resolved_by"]) == ("resolved", "reconnect-networks")
    assert summary["incident_id"] == "INC-20261124-060000"
    assert summary["reports"]["markdown"].endswith(".md")


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"alerted": False, "done": False, "resolved": False},
     "no firing alert for proxy-502 reached serve"),
    ({"done": False, "resolved": False}, "did not finish (queued)"),
    ({"resolved": False}, "did not send the alert resolved"),
    ({"outcome": "escalated", "rc": 3, "resolved": False}, "ended escalated (exit 3)"),
    ({"loop_state": "failed", "done": False, "resolved": False},
     "the alert loop is failed: boom"),
])
def test_follow_says_which_stage_did_not_happen(tmp_path: Path, kwargs: dict[str, object],
                                                words: str) -> None:
    workdir = _loop(tmp_path / "w", **kwargs)  # type: ignore[arg-type]
    alert = alertloop.follow(workdir, "proxy-502", timeout=0.5, resolve_timeout=0.5)
    assert alert["error"] is not None and words in alert["error"], alert["error"]
    # The runner's answer is written once its incident finished, whatever came after.
    assert (workdir / RUNNER_FILE).exists() == bool(kwargs.get("done", True))


def _drill_leftovers(workdir: Path, **kwargs: object) -> None:
    """What the alert-loop drill's plays leave: detector, fault, the loop's files."""
    _loop(workdir, **kwargs)  # type: ignore[arg-type]
    start = (T0 - timedelta(seconds=5)).timestamp()  # the fault, 2 s before the alert started
    probe = {"state": "detected", "detected": start + 1.0, "check": "api",
             "detail": "status 0 (expected [200])"}
    (workdir / "probe.json").write_text(json.dumps(probe))
    (workdir / "fault.json").write_text(json.dumps(
        {"started": start, "injected": start + 4, "detected": start + 1.0, "probe": probe}))
    alertloop.follow(workdir, "proxy-502", timeout=0.5, resolve_timeout=0.5)


def test_an_alert_loop_drill_is_timed_from_the_fault_through_every_stage(
        tmp_path: Path) -> None:
    workdir = tmp_path / "run" / "alert-loop"
    _drill_leftovers(workdir)
    result = evaluate("alert-loop", workdir, 0, "", tmp_path / "state", 60.0, cpu_s=30.0)
    assert (result.outcome, result.ok) == ("recovered", True), result.reason
    assert result.alert_started_s == 2.0
    assert result.alert_received_s is not None and result.alert_resolved_s is not None
    assert result.first_action_s == 6.0  # mitigation at T0 + 1 s
    assert result.cpu_s == 37.5  # the plays and the loop's own 7.5 (daemons, serve's runner)
    names = [name for name, _ in stages(result)]
    assert names[:3] == ["fault injected", "detector saw it", "alert started (startsAt)"]
    assert {"alert received by serve", "first action", "recovery verified",
            "alert resolved (received by serve)"} <= set(names)
    assert result.recovered_s == 9.0  # the resolved decision at T0 + 4 s
    # The incident moved out of serve's state dir into the one stats reads.
    assert result.incident_dir == str(tmp_path / "state" / "INC-20261124-060000-proxy-502")
    drill = json.loads((Path(result.incident_dir) / "drill.json").read_text())
    assert drill["alert"]["alertname"] == "ProxyBadGateway"
    # One line of stages under the table, and a stage table in the markdown.
    assert table([result]).splitlines()[-1].startswith(
        "alert-loop stages: fault injected 0.0s, detector saw it 1.0s, "
        "alert started (startsAt) 2.0s")
    run = DrillRun(run_id="DRILL-1", dir=tmp_path, state_dir=tmp_path, jobs=1,
                   results=[result], started="2026-11-24T06:00:00Z", duration_s=60)
    md = markdown(run, "incident-runner drill --scenario alert-loop")
    assert "| alert started (startsAt) | 2.0 |" in md
    assert "| first action | 6.0 |" in md


def test_an_alert_that_never_reached_serve_fails_the_drill_as_not_alerted(
        tmp_path: Path) -> None:
    workdir = tmp_path / "run" / "alert-loop"
    _drill_leftovers(workdir, alerted=False, done=False, resolved=False)
    log = ('fatal: [localhost]: FAILED! => {"changed": false, "msg": "no firing alert for '
           'proxy-502 reached serve"}\n')
    result = evaluate("alert-loop", workdir, 2, log, tmp_path / "state", 60.0)
    assert (result.outcome, result.ok) == ("not-alerted", False)
    assert result.reason.startswith("no alert reached serve: no firing alert for proxy-502")
    assert result.alert_received_s is None and result.incident_id is None


def test_the_loops_configs_are_the_examples_with_our_addresses(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               ) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("INCIDENT_RUNNER_CONFIG", raising=False)
    token, inventory = tmp_path / "serve.token", tmp_path / "inventory.yml"
    path = alertloop.serve_config(tmp_path, inventory, token, ROOT)
    data = yaml.safe_load(path.read_text())
    assert data["severity"] == yaml.safe_load((ROOT / "incident-runner.yml").read_text())[
        "severity"]
    settings = parse_settings(data["serve"], str(path), path.parent)  # valid per the schema
    assert (settings.workers, settings.drill, settings.inventory, settings.token_file) == (
        1, True, inventory, token)
    assert settings.severity_map["critical"] == "P1" and settings.host_label == "host"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    prom = alertloop.prometheus(tmp_path, 9, "http://127.0.0.1:18830/api/health", 7, 8,
                                home=ROOT)
    config = yaml.safe_load((tmp_path / "prometheus" / "prometheus.yml").read_text())
    assert config["global"]["scrape_interval"] == "1s"
    assert config["scrape_configs"][0]["static_configs"][0]["targets"] == [
        "http://127.0.0.1:18830/api/health"]
    assert config["scrape_configs"][0]["relabel_configs"][-1]["replacement"] == "127.0.0.1:7"
    rules = yaml.safe_load((tmp_path / "prometheus" / "rules.yml").read_text())
    assert rules["groups"][0]["rules"][0]["for"] == "2s"
    assert prom.ready_url == "http://127.0.0.1:9/-/ready" and prom.port == 9
    am = alertloop.alertmanager(tmp_path, 8, "http://127.0.0.1:6", token, home=ROOT)
    hook = yaml.safe_load((tmp_path / "alertmanager" / "alertmanager.yml").read_text())[
        "receivers"][0]["webhook_configs"][0]
    assert hook["url"] == "http://127.0.0.1:6/alerts/alertmanager"
    assert hook["http_config"]["authorization"]["credentials_file"] == str(token)
    assert am.port == 8


def test_down_stops_only_the_loops_supervisor(tmp_path: Path) -> None:
    assert alertloop.down(tmp_path) == {"stopped": False, "why": "no alert loop state"}
    (tmp_path / LOOP_DIR).mkdir()
    (tmp_path / LOOP_DIR / STATE_FILE).write_text(json.dumps({"pid": os.getpid()}))
    answer = alertloop.down(tmp_path)  # our own pid: pytest, not a supervisor
    assert answer["stopped"] is False and "is not the alert loop's supervisor" in answer["why"]


def test_alert_loop_is_a_drill_of_proxy_502() -> None:
    assert "alert-loop" in available_drills()
    spec = load_spec("alert-loop", ROOT, {"DRILL_WORKDIR": "/w/a"})
    assert spec.host_vars["drill_scenario"] in catalog()
    assert spec.host_vars["drill_scenario"] == "proxy-502"
    assert spec.playbooks["converge"] == ROOT / "molecule/drill-alert-loop/converge.yml"
    # Its own stack port, outside the table's 18700-18789 and the queue drills' 18820-18827.
    assert spec.host_vars["stack_http_port"] == 18830
