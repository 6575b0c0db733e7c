"""incident-runner serve over real HTTP: auth, size, malformed, injection, routing, metrics.

A real server process on 127.0.0.1:18901 with the serve_home fixture catalog,
whose scenarios escalate without an Ansible run (tests/fixtures/serve_home).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serve_proc import (
    SERVE_HOME,
    TOKEN,
    VENV_BIN,
    Serve,
    alertmanager_payload,
    get,
    post,
)

PORT = 18901


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    server = Serve(PORT, tmp_path_factory.mktemp("serve") / "state").start()
    try:
        yield server
    finally:
        server.stop()


def recorded(serve: Serve) -> int:
    return int(serve.rows("SELECT count(*) FROM alerts")[0][0])


def test_missing_or_wrong_token_is_401_and_records_nothing(serve: Serve) -> None:
    before = recorded(serve)
    body = alertmanager_payload("BurstAlert", "auth", "f")
    for token in (None, "wrong-token-0123456789", TOKEN + "x", ""):
        status, answer = post(serve.url + "/alerts/alertmanager", body, token=token)
        assert status == 401, (token, answer)
    assert recorded(serve) == before


def test_body_over_the_limit_is_413(serve: Serve) -> None:
    before = recorded(serve)
    big = alertmanager_payload("BurstAlert", "big", "f", padding="x" * 70_000)
    status, answer = post(serve.url + "/alerts/alertmanager", big)
    assert status == 413 and "65536" in answer["error"]
    assert recorded(serve) == before


@pytest.mark.parametrize(("body", "reason"), [
    (b"{not json", "malformed JSON: Expecting property name"),
    (b"\xff\xfe", "malformed JSON"),
    (b"[]", "body: expected a JSON object"),
    (json.dumps({"version": "4", "alerts": [{"status": "firing", "labels": {"a": 1}}]}).encode(),
     "alerts.0.labels.a: expected a string"),
])
def test_malformed_or_invalid_body_is_400_one_line(serve: Serve, body: bytes,
                                                   reason: str) -> None:
    before = recorded(serve)
    status, answer = post(serve.url + "/alerts/alertmanager", body)
    assert status == 400
    assert answer["error"].startswith(reason) and "\n" not in answer["error"]
    assert recorded(serve) == before


def test_unrouted_alert_recorded_202_no_scenario(serve: Serve) -> None:
    status, answer = post(serve.url + "/alerts/alertmanager",
                          alertmanager_payload("NobodyKnowsThis", "unrouted", "f"))
    assert status == 202
    (one,) = answer["alerts"]
    assert one["disposition"] == "no-scenario" and one["incident"] is None


def test_injection_in_labels_stays_data(serve: Serve, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    hostile = {
        "service": f"x; touch {marker} $(touch {marker}) `touch {marker}`",
        "summary_label": "{{ lookup('pipe', 'touch " + str(marker) + "') }}",
        "severity": "{{ 7 * 7 }}",
    }
    status, answer = post(serve.url + "/alerts/alertmanager",
                          alertmanager_payload("BurstAlert", "inject", "inj", **hostile))
    assert status == 202
    (one,) = answer["alerts"]
    assert one["disposition"] == "queued"
    # a host label that is not a plain host name never becomes --limit
    status, bad = post(serve.url + "/alerts/alertmanager",
                       alertmanager_payload("BurstAlert", "inject-host", "h", host="@/etc/passwd"))
    assert status == 202 and bad["alerts"][0]["disposition"] == "bad-target"

    done = {row[0]: row for row in serve.wait_done(0)}
    while one["incident"] not in done:
        done = {row[0]: row for row in serve.wait_done(len(done) + 1)}
    _, scenario, outcome, folder, _ = done[one["incident"]]
    assert (scenario, outcome) == ("alert-escalate", "escalated")
    events = [json.loads(line) for line in
              (Path(folder) / "timeline.jsonl").read_text().splitlines()]
    opened = next(e for e in events if e["kind"] == "incident_opened")
    assert opened["alert"]["labels"] == {"alertname": "BurstAlert", **hostile}
    assert opened["alert"]["starts_at"] == "2026-12-02T10:00:00Z"
    assert opened["severity"] is None  # "{{ 7 * 7 }}" is no level of the scale
    assert not marker.exists()


def test_repeat_attached_to_the_incident_timeline(serve: Serve) -> None:
    status, first = post(serve.url + "/alerts/alertmanager",
                         alertmanager_payload("BurstAlert", "repeat", "r1"))
    incident = first["alerts"][0]["incident"]
    status, again = post(serve.url + "/alerts/alertmanager",
                         alertmanager_payload("BurstAlert", "repeat", "r2"))
    assert status == 202 and again["alerts"][0] == {
        **again["alerts"][0], "disposition": "deduplicated", "incident": incident}
    status, resolved = post(serve.url + "/alerts/alertmanager",
                            alertmanager_payload("BurstAlert", "repeat", "r1", status="resolved"))
    assert resolved["alerts"][0]["disposition"] == "resolved"
    rows = serve.wait_done(0)
    while incident not in {r[0] for r in rows}:
        rows = serve.wait_done(len(rows) + 1)
    folder = next(r[3] for r in rows if r[0] == incident)
    timeline = Path(folder) / "timeline.jsonl"
    repeats: list[dict[str, object]] = []
    for _ in range(100):  # attached right after the run's end
        repeats = [e for e in map(json.loads, timeline.read_text().splitlines())
                   if e["kind"] == "alert_repeat"]
        if len(repeats) == 2:
            break
        subprocess.run(["sleep", "0.1"], check=True)
    assert sorted(str(r["fingerprint"]) + str(r["status"]) for r in repeats) == [
        "r1resolved", "r2firing"]
    assert serve.rows("SELECT count(*) FROM incidents WHERE dedupe_key = 'repeat'")[0][0] == 1


def test_destructive_step_not_approved_by_default(serve: Serve) -> None:
    status, answer = post(serve.url + "/alerts/alertmanager",
                          alertmanager_payload("DestructiveAlert", "destructive", "d1"))
    assert status == 202
    incident = answer["alerts"][0]["incident"]
    rows = serve.wait_done(0)
    while incident not in {r[0] for r in rows}:
        rows = serve.wait_done(len(rows) + 1)
    _, scenario, outcome, folder, _ = next(r for r in rows if r[0] == incident)
    assert (scenario, outcome) == ("alert-destructive", "escalated")
    events = [json.loads(line) for line in
              (Path(folder) / "timeline.jsonl").read_text().splitlines()]
    approval = next(e for e in events if e["kind"] == "approval")
    assert (approval["step"], approval["decision"], approval["by"]) == (
        "destroy", "skipped", "no-tty")
    assert not any(e["kind"] == "step_started" and e.get("phase") == "mitigate"
                   for e in events)  # the destructive playbook never started


def test_generic_endpoint_maps_configured_fields(serve: Serve) -> None:
    body = {"alert": "BurstAlert", "event_id": "ev-1", "message": "api down",
            "check": {"id": "uptime-7", "state": "down", "down_since": "2026-12-02T09:59:00Z",
                      "host": "localhost"}}
    status, answer = post(serve.url + "/alerts/generic", body)
    assert status == 202
    (one,) = answer["alerts"]
    assert one["disposition"] == "queued" and one["fingerprint"] == "ev-1"
    row = serve.rows("SELECT group_key, starts_at, labels, annotations FROM alerts WHERE id = ?",
                     one["alert"])[0]
    assert row[:2] == ("uptime-7", "2026-12-02T09:59:00Z")
    assert json.loads(row[2]) == {"alertname": "BurstAlert", "host": "localhost"}
    assert json.loads(row[3]) == {"summary": "api down"}
    status, up = post(serve.url + "/alerts/generic", {**body, "check": {
        **body["check"], "state": "up"}})
    assert up["alerts"][0]["disposition"] == "resolved"


def test_metrics_and_healthz(serve: Serve) -> None:
    # Its own traffic: under xdist the module's other tests may run on another worker.
    post(serve.url + "/alerts/alertmanager", b"{", token=TOKEN)
    post(serve.url + "/alerts/alertmanager", alertmanager_payload("BurstAlert", "m", "m"),
         token=None)
    status, answer = post(serve.url + "/alerts/alertmanager",
                          alertmanager_payload("BurstAlert", "metrics", "m1"))
    incident = answer["alerts"][0]["incident"]
    rows = serve.wait_done(0)
    while incident not in {r[0] for r in rows}:
        rows = serve.wait_done(len(rows) + 1)
    status, text = get(serve.url + "/metrics")
    assert status == 200
    assert 'incident_runner_alerts_rejected_total{reason="malformed"}' in text
    assert 'incident_runner_alerts_rejected_total{reason="unauthorized"}' in text
    assert "incident_runner_alerts_received_total{" in text
    assert "incident_runner_remediation_duration_seconds_bucket{" in text
    assert 'incident_runner_incidents_total{outcome="escalated",scenario="alert-escalate"}' in text
    status, health = get(serve.url + "/healthz")
    assert status == 200 and json.loads(health)["status"] == "ok"


def test_full_queue_is_429_and_records_nothing(tmp_path: Path) -> None:
    # one worker, one waiting incident: of four new groups posted at once, the worker can
    # hold one and the queue one, so at least two are refused until the queue drains
    small = Serve(18905, tmp_path / "state", args=("--queue-max", "1", "--workers", "1"))
    small.start()
    try:
        answers = [post(small.url + "/alerts/alertmanager",
                        alertmanager_payload("BurstAlert", f"full-{n}", f"q{n}"))
                   for n in range(4)]
        statuses = [status for status, _ in answers]
        assert statuses.count(429) >= 2 and statuses[0] == 202, statuses
        refused = [body for status, body in answers if status == 429]
        assert all(body["error"].startswith("queue full") for body in refused)
        recorded = {row[0] for row in small.rows("SELECT group_key FROM alerts")}
        assert recorded == {f"full-{n}" for n, s in enumerate(statuses) if s == 202}
        _, text = get(small.url + "/metrics")
        assert 'incident_runner_alerts_rejected_total{reason="queue-full"}' in text
    finally:
        small.stop()


def test_insecure_no_auth_on_loopback_takes_requests_without_a_token(tmp_path: Path) -> None:
    open_server = Serve(18906, tmp_path / "state", env={"IR_SERVE_TEST_TOKEN": ""},
                        args=("--insecure-no-auth",)).start()
    try:
        status, answer = post(open_server.url + "/alerts/alertmanager",
                              alertmanager_payload("NobodyKnowsThis", "open", "o"), token=None)
        assert status == 202 and answer["alerts"][0]["disposition"] == "no-scenario"
    finally:
        open_server.stop()


@pytest.mark.parametrize(("args", "env", "message"), [
    (("--listen", "0.0.0.0:18949", "--insecure-no-auth"), {},
     "--insecure-no-auth is only allowed on a loopback bind"),
    (("--listen", "127.0.0.1:18949"), {"IR_SERVE_TEST_TOKEN": ""},
     "IR_SERVE_TEST_TOKEN is empty or unset"),
    (("--listen", "127.0.0.1:18949", "--token-file", "/nonexistent/tok"), {},
     "/nonexistent/tok: serve.token_file: cannot read the token file"),
])
def test_serve_refuses_to_start_without_auth(args: tuple[str, ...], env: dict[str, str],
                                             message: str, tmp_path: Path) -> None:
    run_env = {**os.environ, "INCIDENT_RUNNER_HOME": str(SERVE_HOME),
               "INCIDENT_RUNNER_CONFIG": str(SERVE_HOME / "incident-runner.yml"),
               "IR_SERVE_TEST_TOKEN": TOKEN, **env}
    proc = subprocess.run([str(VENV_BIN / "incident-runner"), "--state-dir", str(tmp_path),
                           "serve", *args], env=run_env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(("content", "message"), [
    (None, "--alert-file: cannot read: FileNotFoundError"),
    ("{x", "--alert-file: not JSON: Expecting property name"),
    ('{"source": 1}', "source: expected str"),
    ('{"source": "s", "group_key": "g", "fingerprint": "f", "starts_at": "t", '
     '"labels": {"a": 1}, "annotations": {}}', "labels.a: expected a string"),
])
def test_remediate_refuses_a_bad_alert_file(content: str | None, message: str,
                                            tmp_path: Path) -> None:
    path = tmp_path / "alert.json"
    if content is not None:
        path.write_text(content)
    proc = subprocess.run([str(VENV_BIN / "incident-runner"), "remediate", "--scenario",
                           "proxy-502", "--alert-file", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert f"{path}: {message}" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "incidents").exists()  # refused before an incident opened
