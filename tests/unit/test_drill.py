"""Drills without Docker: the detector and the plays' helper against a local HTTP
server, and how a drill's leftovers (probe.json, fault.json, runner.json, the
incident) and the plays' exit code become an outcome, timings, a history entry and
a table."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from incident_runner import drill_probe, drill_steps, stats
from incident_runner.cli import cli
from incident_runner.drill import (
    DrillRun,
    available_drills,
    drill_lock,
    evaluate,
    last_failure,
    load_spec,
    markdown,
    run_drill,
    scaffold,
    select_drills,
    table,
)
from incident_runner.errors import IncidentRunnerError, InputError
from incident_runner.journal import build_journal, write_journal
from incident_runner.scenario import catalog
from tests.unit.timelines import T0, iso, write_incident

ROOT = Path(__file__).resolve().parents[2]


# -- the detector ---------------------------------------------------------------------
class Behaviour:
    status = 200
    delay = 0.0
    fail_next = 0  # answer 502 to this many requests, then `status` again


@pytest.fixture
def server() -> Iterator[tuple[str, type[Behaviour]]]:
    behaviour = type("B", (Behaviour,), {})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            time.sleep(behaviour.delay)
            status = behaviour.status
            if behaviour.fail_next > 0:
                behaviour.fail_next -= 1
                status = 502
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/health", behaviour
    finally:
        httpd.shutdown()
        httpd.server_close()


def _state(out: Path) -> dict[str, Any]:
    return dict(json.loads(out.read_text())) if out.exists() else {}


def _wait_armed(out: Path, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while _state(out).get("state") != "armed":
        assert time.monotonic() < deadline, _state(out)
        time.sleep(0.02)


def test_probe_arms_on_a_healthy_endpoint_and_detects_the_first_failure(
        server: tuple[str, type[Behaviour]], tmp_path: Path) -> None:
    url, behaviour = server
    out = tmp_path / "probe.json"
    rc: list[int] = []
    thread = threading.Thread(target=lambda: rc.append(drill_probe.run(
        [drill_probe.ProbeCheck(name="api", url=url)], out, interval=0.02, deadline=10)))
    thread.start()
    _wait_armed(out)
    broke_at = time.time()
    behaviour.status = 502
    thread.join(10)
    state = _state(out)
    assert rc == [0]
    assert state["state"] == "detected"
    assert state["check"] == "api" and "status 502" in state["detail"]
    # The round that saw it started at most one interval (+ one request) before the break.
    assert broke_at - 0.1 <= state["detected"] <= broke_at + 1
    assert state["armed"] <= state["detected"]


def test_probe_detects_latency_over_budget_not_a_single_fast_round(
        server: tuple[str, type[Behaviour]], tmp_path: Path) -> None:
    url, behaviour = server
    out = tmp_path / "probe.json"
    check = drill_probe.ProbeCheck(name="web", url=url, concurrency=2, p95_ms=100)
    rc: list[int] = []
    thread = threading.Thread(target=lambda: rc.append(
        drill_probe.run([check], out, interval=0.02, deadline=10, window=2)))
    thread.start()
    _wait_armed(out)
    behaviour.delay = 0.2
    thread.join(10)
    assert rc == [0]
    assert "p95" in _state(out)["detail"] and "over 100 ms" in _state(out)["detail"]


def test_probe_does_not_count_a_single_failed_request_as_a_detection(
        server: tuple[str, type[Behaviour]], tmp_path: Path) -> None:
    url, behaviour = server
    out = tmp_path / "probe.json"
    rc: list[int] = []
    thread = threading.Thread(target=lambda: rc.append(drill_probe.run(
        [drill_probe.ProbeCheck(name="api", url=url)], out, interval=0.02, deadline=1.5)))
    thread.start()
    _wait_armed(out)
    behaviour.fail_next = 1
    thread.join(10)
    assert rc == [1]
    assert _state(out)["state"] == "not-detected"


def test_probe_reports_a_fault_it_never_saw(server: tuple[str, type[Behaviour]],
                                            tmp_path: Path) -> None:
    url, _ = server
    out = tmp_path / "probe.json"
    rc = drill_probe.run([drill_probe.ProbeCheck(name="api", url=url)], out, interval=0.02,
                         deadline=0.3)
    assert rc == 1
    assert _state(out)["state"] == "not-detected"
    assert _state(out)["detected"] is None


def test_probe_refuses_to_arm_on_an_unhealthy_stack(server: tuple[str, type[Behaviour]],
                                                    tmp_path: Path) -> None:
    url, behaviour = server
    behaviour.status = 500
    out = tmp_path / "probe.json"
    rc = drill_probe.run([drill_probe.ProbeCheck(name="api", url=url)], out, interval=0.02,
                         baseline_timeout=0.3)
    assert rc == 2
    assert _state(out)["state"] == "unhealthy-baseline"
    assert _state(out)["armed"] is None


def test_probe_command_line(tmp_path: Path) -> None:
    # Nothing listens on port 9 of 127.0.0.1: the baseline never passes.
    out = tmp_path / "probe.json"
    rc = drill_probe.main(["--out", str(out), "--baseline-timeout", "0.2", "--interval", "0.05",
                           "--check", json.dumps({"name": "api", "url": "http://127.0.0.1:9/",
                                                  "timeout": 0.2})])
    assert rc == 2
    assert _state(out)["checks"] == ["api"]
    with pytest.raises(SystemExit):
        drill_probe.main(["--out", str(out), "--check", '{"name": "no url"}'])


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_probe_detach_wait_and_stop_drive_a_real_detector(
        server: tuple[str, type[Behaviour]], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """What the drill's plays call: start detached and armed, wait for the detection, stop."""
    url, behaviour = server
    out = tmp_path / "probe.json"
    out.write_text('{"state": "detected"}')  # an earlier run's: must not count
    check = json.dumps({"name": "api", "url": url, "timeout": 1})
    assert drill_probe.main(["--out", str(out), "--detach", "--interval", "0.05",
                             "--check", check]) == 0
    armed = json.loads(capsys.readouterr().out)
    assert armed["state"] == "armed"
    pid = armed["pid"]
    assert drill_probe.main(["--out", str(out), "--wait-while", "armed", "--timeout", "0.3"]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "armed"  # nothing wrong yet
    behaviour.status = 503
    fault = tmp_path / "fault.json"
    started = time.time()
    assert drill_probe.main(["--out", str(out), "--wait-while", "armed", "--timeout", "10",
                             "--fault-out", str(fault), "--scenario", "proxy-502",
                             "--started", str(started), "--injected", str(started + 1)]) == 0
    detected = json.loads(capsys.readouterr().out)
    assert (detected["state"], detected["detail"]) == ("detected", "status 503 (expected [200])")
    # The drill's fault.json, as the verdict reads it.
    assert json.loads(fault.read_text()) == {
        "scenario": "proxy-502", "started": started, "injected": started + 1,
        "detected": detected["detected"], "probe": detected}
    deadline = time.monotonic() + 10  # it exits on its own after the detection
    while b"drill_probe" in _cmdline(pid):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert drill_probe.main(["--out", str(out), "--stop"]) == 0
    assert json.loads(capsys.readouterr().out)["stopped"] is False
    # A detector still watching is stopped, and only when its pid is still the detector.
    behaviour.status = 200
    assert drill_probe.main(["--out", str(out), "--detach", "--check", check]) == 0
    pid = json.loads(capsys.readouterr().out)["pid"]
    assert drill_probe.main(["--out", str(out), "--stop"]) == 0
    assert json.loads(capsys.readouterr().out) == {"stopped": True, "pid": pid}
    out.write_text(json.dumps({"pid": os.getpid()}))  # a pid that is not the detector
    assert drill_probe.main(["--out", str(out), "--stop"]) == 0
    assert json.loads(capsys.readouterr().out)["stopped"] is False


# -- the plays' helper (incident_runner.drill_steps) -------------------------------------
def test_the_drill_inventory_is_the_staging_one_with_the_drills_own_values() -> None:
    values = {"stack_project": "ir-drill-x", "stack_http_port": 18799, "stack_dir": "/w/stack"}
    inventory = drill_steps.drill_inventory(ROOT / "inventories" / "staging", "staging", values)
    staging = inventory["all"]["children"]["staging"]
    assert staging["hosts"]["localhost"]["ansible_connection"] == "local"
    assert staging["vars"] == values  # they win over all's
    assert inventory["all"]["vars"]["stack_project"] == "ir-staging"
    assert inventory["all"]["vars"]["stack_url"].startswith("http://")


def test_look_checks_http_as_the_health_check_role_and_reads(
        server: tuple[str, type[Behaviour]]) -> None:
    url, behaviour = server
    quick = {"interval": 0.01, "timeout": 1}
    seen = drill_steps.look(
        [{"name": "api", "url": url, "successes": 3, "deadline": 5, **quick}],
        [{"name": "once", "url": url}], [], [],
        [{"name": "echo", "argv": [sys.executable, "-c", "print('hi')"]}])
    assert seen["unhealthy"] == []
    assert seen["http"]["api"]["healthy"] and seen["http"]["api"]["rounds"] == 3
    assert seen["request"]["once"]["status"] == 200
    assert seen["run"]["echo"] == {"rc": 0, "stdout": "hi", "stderr": ""}
    # A check that never passes is reported, with the role's message.
    behaviour.status = 503
    seen = drill_steps.look([{"name": "api", "url": url, "deadline": 0.3, **quick},
                             {"name": "down is fine", "url": url, "status": [503], **quick}],
                            [], [], [], [])
    assert [m.split(":")[0] for m in seen["unhealthy"]] == ["api"]
    assert "not healthy" in seen["unhealthy"][0]


def test_remediate_keeps_the_runners_answer(tmp_path: Path) -> None:
    fake = tmp_path / "runner.py"
    fake.write_text("import json, sys\n"
                    "print(json.dumps({'status': 'escalated', 'argv': sys.argv[1:]}))\n"
                    "print('why', file=sys.stderr)\nsys.exit(3)\n")
    answer = drill_steps.remediate(tmp_path, "stuck", "/inv.yml", "resolved", 30,
                                   runner=[sys.executable, str(fake)])
    assert json.loads((tmp_path / "runner.json").read_text()) == answer
    assert (answer["rc"], answer["expect"], answer["stderr"]) == (3, "resolved", "why\n")
    assert answer["summary"]["argv"] == ["remediate", "--scenario", "stuck", "--inventory",
                                         "/inv.yml", "--yes", "--json", "--drill"]
    # A runner past its deadline is killed; the answer says so.
    fake.write_text("import time\ntime.sleep(30)\n")
    answer = drill_steps.remediate(tmp_path, "stuck", "/inv.yml", "resolved", 0.5,
                                   runner=[sys.executable, str(fake)])
    assert (answer["rc"], answer["summary"]) == (None, {})
    assert "killed after 0.5s" in answer["stderr"]


# -- a drill's leftovers -----------------------------------------------------------------
FAULT_AT = T0 + timedelta(seconds=-5)


def _incident(root: Path, *, resolved: bool = True) -> Path:
    """An incident as the drill's runner leaves it: opened at T0, one mitigation at T0+1s."""
    folder = write_incident(
        root, drill=True, status="resolved" if resolved else "escalated",
        steps=[("diagnose", "capture-diagnostics", "successful", 0.0),
               ("mitigate", "reconnect-networks", "successful", 2.0),
               ("verify", "after-reconnect-networks", "successful", 1.0)] if resolved else [],
        resolved_by="reconnect-networks" if resolved else None,
        escalate_reason=None if resolved else "no local fix: dependency down")
    if resolved:  # the runner's decision, just before it closes
        lines = (folder / "timeline.jsonl").read_text().splitlines()
        lines.insert(-1, json.dumps({"seq": 99, "ts": iso(T0 + timedelta(seconds=4)),
                                     "kind": "decision", "decision": "resolved",
                                     "after": "reconnect-networks", "reason": "verified"}))
        (folder / "timeline.jsonl").write_text("\n".join(lines) + "\n")
        write_journal(folder, build_journal(folder))
    return folder


def _leftovers(workdir: Path, *, probe: str | None = "detected", fault: bool = True,
               runner_rc: int | None = 0, expect: str = "resolved",
               resolved: bool = True) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    start = FAULT_AT.timestamp()
    probe_state = {"state": probe, "pid": 1, "armed": start - 1,
                   "detected": start + 1.5 if probe == "detected" else None,
                   "check": "api", "detail": "status 502 (expected [200])"}
    if probe is not None:
        (workdir / "probe.json").write_text(json.dumps(probe_state))
    if fault:
        (workdir / "fault.json").write_text(json.dumps(
            {"started": start, "injected": start + 3, "detected": probe_state["detected"],
             "probe": probe_state}))
    if runner_rc is not None:
        folder = _incident(workdir / "incidents", resolved=resolved)
        summary = {"incident_id": "INC-20261124-060000", "dir": str(folder),
                   "status": "resolved" if resolved else "escalated",
                   "resolved_by": "reconnect-networks" if resolved else None,
                   "reason": "verified healthy" if resolved else "no local fix: dependency down"}
        (workdir / "runner.json").write_text(json.dumps(
            {"rc": runner_rc, "expect": expect, "summary": summary, "stderr": ""}))


def test_a_recovered_drill_is_timed_from_the_fault_and_recorded_as_a_drill(
        tmp_path: Path) -> None:
    workdir, state = tmp_path / "run" / "proxy-502", tmp_path / "state"
    _leftovers(workdir)
    result = evaluate("proxy-502", workdir, 0, "", state, wall_s=42.0)
    assert (result.outcome, result.ok) == ("recovered", True)
    assert result.resolved_by == "reconnect-networks"
    # The fault started 5 s before the incident opened (T0).
    assert result.detect_s == 1.5
    assert result.first_action_s == 6.0   # mitigation started at T0 + 1 s
    assert result.recovered_s == 9.0      # decision at T0 + 4 s
    assert result.total_s == 42.0
    # The incident moved into the state dir stats reads, with the drill's timing.
    assert result.incident_dir == str(state / "INC-20261124-060000-proxy-502")
    assert not list((workdir / "incidents").glob("INC-*"))
    assert json.loads((state / "INC-20261124-060000-proxy-502" / "drill.json").read_text())[
        "outcome"] == "recovered"
    summary = stats.stats(state)
    assert [s["scenario"] for s in summary["drills"]] == ["proxy-502"]
    assert summary["incidents"] == []


def test_an_escalation_drill_passes_when_the_runner_escalates(tmp_path: Path) -> None:
    workdir = tmp_path / "run" / "dependency-down"
    _leftovers(workdir, runner_rc=3, expect="escalated", resolved=False)
    result = evaluate("dependency-down", workdir, 0, "", tmp_path / "state", 30.0)
    assert (result.outcome, result.ok) == ("escalated", True)
    assert result.first_action_s is None and result.recovered_s is None
    assert result.escalated_s == 6.0  # escalated at T0 + 1 s
    assert "dependency down" in result.reason


@pytest.mark.parametrize(("kwargs", "rc", "outcome", "words"), [
    ({"runner_rc": 3, "resolved": False}, 2, "not-recovered", "exited 3 (escalated)"),
    ({"runner_rc": 0, "expect": "escalated"}, 2, "not-escalated", "exited 0"),
    # The runner said resolved, but the plays (verify their last step) failed.
    ({}, 2, "not-verified", "verify failed: boom"),
    ({"fault": False, "runner_rc": None}, 2, "fault-not-injected",
     "playbooks/faults/proxy-502.yml failed"),
    ({"probe": "not-detected", "runner_rc": None}, 2, "fault-not-injected", "boom"),
    ({"probe": "unhealthy-baseline", "fault": False, "runner_rc": None}, 2,
     "error", "not healthy before the fault"),
    ({"probe": None, "fault": False, "runner_rc": None}, 2, "error", "create failed"),
    ({}, None, "timeout", "did not finish"),
])
def test_a_drill_that_did_not_do_its_job_fails(tmp_path: Path, kwargs: dict[str, Any],
                                               rc: int | None, outcome: str,
                                               words: str) -> None:
    workdir = tmp_path / "run" / "proxy-502"
    _leftovers(workdir, **kwargs)
    log = 'TASK [x]\nfatal: [localhost]: FAILED! => {"changed": false, "msg": "boom"}\n'
    result = evaluate("proxy-502", workdir, rc, log, tmp_path / "state", 10.0)
    assert (result.outcome, result.ok) == (outcome, False)
    assert words in result.reason


def test_a_drill_without_a_verify_step_is_never_verified(tmp_path: Path) -> None:
    workdir = tmp_path / "run" / "proxy-502"
    _leftovers(workdir)
    result = evaluate("proxy-502", workdir, 0, "", tmp_path / "state", 10.0, verifies=False)
    assert (result.outcome, result.ok) == ("not-verified", False)


def test_a_drill_whose_teardown_failed_fails(tmp_path: Path) -> None:
    workdir = tmp_path / "run" / "proxy-502"
    _leftovers(workdir)
    result = evaluate("proxy-502", workdir, 0, "", tmp_path / "state", 10.0, destroy_rc=2)
    assert (result.outcome, result.ok) == ("error", False)
    assert "destroy exited 2" in result.reason


def test_an_unseen_fault_without_a_log_still_says_why(tmp_path: Path) -> None:
    workdir = tmp_path / "run" / "proxy-502"
    _leftovers(workdir, probe="armed", runner_rc=None)
    result = evaluate("proxy-502", workdir, 2, "", tmp_path / "state", 10.0)
    assert result.outcome == "fault-not-injected"
    assert result.reason == ("the fault injection did nothing the detector could see "
                             "(detector armed)")


def test_last_failure_reads_one_line_and_multi_line_results() -> None:
    assert last_failure("ok: [localhost]\n") == ""
    assert last_failure('fatal: [localhost]: FAILED! => {"msg": "one"}\nfatal: [localhost]: '
                        'FAILED! => {\n  "changed": false,\n  "msg": "two"\n}\n') == "two"
    looped = {"msg": "One or more items failed", "results": [
        {"failed": False, "msg": "fine"}, {"failed": True, "msg": "item broke"}]}
    assert last_failure(f"failed: [localhost] => {json.dumps(looped)}") == (
        "One or more items failed | item broke")


def test_table_and_markdown(tmp_path: Path) -> None:
    ok_dir, bad_dir = tmp_path / "run" / "proxy-502", tmp_path / "run" / "oom"
    _leftovers(ok_dir)
    _leftovers(bad_dir, fault=False, runner_rc=None)
    results = [evaluate("proxy-502", ok_dir, 0, "", tmp_path / "state", 40.0, cpu_s=12.5),
               evaluate("oom", bad_dir, 2, "", tmp_path / "state", 20.0, cpu_s=7.5)]
    text = table(results).splitlines()
    assert text[0].split()[:2] == ["SCENARIO", "OUTCOME"]
    assert text[1].split()[:8] == ["proxy-502", "recovered", "1.5s", "6.0s", "9.0s", "4.2s",
                                   "40.0s", "12.5s"]
    assert text[2].split()[:2] == ["oom", "fault-not-injected"]
    run = DrillRun(run_id="DRILL-1", dir=tmp_path, state_dir=tmp_path, jobs=2, results=results,
                   started="2026-11-24T06:00:00Z", duration_s=60)
    md = markdown(run, "incident-runner drill --all --markdown docs/drills.md")
    assert ("| proxy-502 | recovered | 1.5s | 6.0s | 9.0s | 4.2s | 40.0s | 12.5s | api status 502 "
            "(expected [200]) | reconnect-networks |" in md)
    assert "1 of 2 drills passed; see the failures above, 20 CPU-s in all." in md
    assert "`incident-runner drill --all --markdown docs/drills.md`" in md


# -- selection and the command line --------------------------------------------------------
def test_every_catalog_scenario_has_a_drill() -> None:
    # drill-systemd-<scenario>: the same scenario on a systemd host (docs/systemd.md);
    # alert-loop: proxy-502 found by Prometheus and run by serve (docs/alerts.md).
    drills = available_drills()
    assert [d for d in drills if not d.startswith("systemd-") and d != "alert-loop"] == sorted(
        catalog())
    assert {d.removeprefix("systemd-") for d in drills if d.startswith("systemd-")} == {
        "service-down", "oom", "port-conflict", "bad-deploy", "dependency-down"}


def test_select_drills(tmp_path: Path) -> None:
    assert select_drills([]) == available_drills()
    assert select_drills(["oom", "oom", "proxy-502"]) == ["oom", "proxy-502"]
    with pytest.raises(InputError, match="no drill for nope"):
        select_drills(["nope"])
    with pytest.raises(InputError, match="no drills found"):
        select_drills([], home=tmp_path)


@pytest.mark.parametrize("args", [[], ["--all", "--scenario", "oom"], ["--scenario", "nope"]])
def test_drill_command_bad_input_exits_2(tmp_path: Path, args: list[str]) -> None:
    result = CliRunner().invoke(cli, ["--state-dir", str(tmp_path), "drill", *args],
                                standalone_mode=False)
    assert isinstance(result.exception, IncidentRunnerError)
    assert int(result.exception.code) == 2
    assert not (tmp_path / "drills").exists()


def test_drill_list() -> None:
    result = CliRunner().invoke(cli, ["drill", "--list"], catch_exceptions=False)
    assert result.output.split() == available_drills()


def test_a_drill_already_running_on_this_machine_is_not_started_twice(tmp_path: Path) -> None:
    name = f"lock-test-{os.getpid()}"
    with drill_lock(name, 1) as first:
        assert first
        result = run_drill(name, tmp_path / "run", tmp_path / "state", tmp_path, timeout_s=0.3)
    assert (result.outcome, result.ok) == ("error", False)
    assert f"another run of drill {name} held its lock" in result.reason
    assert not (tmp_path / "run" / name / "drill.log").exists()
    with drill_lock(name, 1) as again:  # released
        assert again


def test_a_stopped_drill_is_killed_and_torn_down(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGINT/SIGTERM set the cancel event: the running plays (a stand-in ansible-playbook
    here) are killed with their process group, then the drill's destroy playbook runs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    fake = bin_dir / "ansible-playbook"
    # The last argument is the playbook: the generated sequence, then destroy.
    fake.write_text(f"#!/bin/sh\nfor a; do last=$a; done\n"
                    f"echo \"$(basename $last) $DRILL_WORKDIR\" >> {calls}\n"
                    "case $last in *sequence.yml) exec sleep 60;; esac\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python3"))
    cancel = threading.Event()
    threading.Timer(1.0, cancel.set).start()
    started = time.monotonic()
    result = run_drill("proxy-502", tmp_path / "run", tmp_path / "state", ROOT,
                       timeout_s=30, cancel=cancel)
    assert time.monotonic() - started < 10
    assert (result.outcome, result.ok) == ("interrupted", False)
    workdir = tmp_path / "run" / "proxy-502"
    assert calls.read_text().splitlines() == [f"sequence.yml {workdir}",
                                              f"destroy.yml {workdir}"]
    assert "$ " in (workdir / "drill.log").read_text()


# -- the scenarios as molecule reads them ----------------------------------------------------
def test_a_drill_spec_is_what_molecule_would_run() -> None:
    env = {"DRILL_WORKDIR": "/w/oom"}
    spec = load_spec("oom", ROOT, env)
    assert spec.sequence == ("create", "side_effect", "converge", "verify", "destroy")
    assert spec.playbooks["create"] == ROOT / "molecule/resources/drill/create.yml"
    assert spec.playbooks["side_effect"] == ROOT / "molecule/drill-oom/side_effect.yml"
    assert spec.ansible_args == ("--inventory", f"{ROOT}/inventories/staging")
    assert spec.env == {"ANSIBLE_ROLES_PATH": f"{ROOT}/roles"}
    host = spec.inventory()["all"]["hosts"]["localhost"]
    assert host["ansible_connection"] == "local"
    assert (host["drill_workdir"], host["stack_dir"]) == ("/w/oom", "/w/oom/stack")
    assert spec.inventory()["all"]["children"] == {"staging": {"hosts": {"localhost": None}}}
    assert load_spec("oom", ROOT, {}).host_vars["drill_workdir"] == "/tmp/ir-drill-oom"


def test_the_generated_molecule_files_are_current_and_ports_are_distinct() -> None:
    stale = [str(p) for p, text in scaffold.generate(ROOT).items()
             if not p.exists() or p.read_text(encoding="utf-8") != text]
    assert stale == [], "run: python -m incident_runner.drill.scaffold"
    # The table's drills (the docker stack); the systemd drills publish their hosts' own ports.
    table = [p.parent.name.removeprefix("drill-") for p in scaffold.generate(ROOT)]
    ports = [load_spec(n, ROOT, {}).host_vars["stack_http_port"] for n in table]
    assert len(set(ports)) == len(ports) == len(table)
    assert all(scaffold.BASE_PORT <= p < scaffold.BASE_PORT + scaffold.MAX_DRILLS for p in ports)


def test_a_bad_drill_table_names_the_file_and_row(tmp_path: Path) -> None:
    (tmp_path / scaffold.TABLE).parent.mkdir(parents=True)
    (tmp_path / scaffold.TABLE).write_text("drills:\n  - {name: x, probe: [{path: /}]}\n")
    with pytest.raises(InputError, match=r"drills\.yml: drills\[0\]\.probe"):
        scaffold.generate(tmp_path)
