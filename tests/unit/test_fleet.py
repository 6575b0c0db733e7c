"""Fleet mode's pure parts: batch sizes, the journal's host rows, JUnit per host, and the
flap guard counting a fleet incident for each host it acted on (docs/fleet.md)."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree

import pytest

from incident_runner import history
from incident_runner.cli.remediate import parse_serial
from incident_runner.errors import InputError
from incident_runner.journal import build_journal, load_journal
from incident_runner.junit import render_junit
from incident_runner.scenario import Check, Fleet, find_scenario
from tests.unit.timelines import T0, write_incident

CHECK = Check(name="api", url="{{ systemd_app_url }}/health")


@pytest.mark.parametrize(("serial", "affected", "size"), [
    (None, 7, 7), (1, 7, 1), (3, 7, 3), ("25%", 8, 2), ("25%", 3, 1), ("100%", 5, 5),
    (None, 0, 1),
])
def test_batch_size(serial: int | str | None, affected: int, size: int) -> None:
    assert Fleet(checks=(CHECK,)).batch_size(affected, serial) == size
    assert Fleet(checks=(CHECK,), serial=serial).batch_size(affected) == size


def test_service_down_has_fleet_checks_per_platform() -> None:
    scenario = find_scenario("service-down")
    assert scenario.fleet is not None
    assert scenario.fleet.checks[0].url == "{{ stack_url }}/api/health"
    systemd = scenario.for_platform("systemd").fleet
    assert systemd is not None
    assert systemd.checks[0].url == "{{ systemd_app_url }}/health"


def _fleet_incident(root: Path) -> Path:
    folder = write_incident(root, scenario="service-down", steps=[
        ("mitigate", "restart", "failed", 2.0), ("mitigate", "restart-all", "successful", 2.0)],
        status="escalated", escalate_reason="not every host recovered",
        target_key="staging/h1,h2,h3:api")
    rows = [
        {"host": "h1", "symptom": "seen", "steps": [
            {"name": "restart", "status": "ok", "verified": True, "duration_s": 2.0}],
         "outcome": "resolved", "reason": "verified", "resolved_by": "restart",
         "time_to_recover_s": 9.5, "batch": 1},
        {"host": "h2", "symptom": "seen", "steps": [
            {"name": "restart", "status": "failed", "verified": None, "duration_s": 2.0},
            {"name": "restart-all", "status": "ok", "verified": False, "duration_s": 2.0}],
         "outcome": "escalated", "reason": "ladder exhausted", "resolved_by": None,
         "time_to_recover_s": None, "batch": 1},
        {"host": "h3", "symptom": "absent", "steps": [], "outcome": "not-reproduced",
         "reason": "healthy", "resolved_by": None, "time_to_recover_s": None, "batch": None},
    ]
    timeline = folder / "timeline.jsonl"
    lines = timeline.read_text().splitlines()
    extra = [{"kind": "flap_guard", "host": h, "target_key": f"staging/{h}:api",
              "decision": "allow"} for h in ("h1", "h2", "h3")]
    extra += [{"kind": "host_outcome", **row} for row in rows]
    closing = lines.pop()  # keep incident_closed last
    for event in extra:
        lines.append(json.dumps({"seq": len(lines) + 1, "ts": json.loads(closing)["ts"],
                                 **event}))
    lines.append(closing)
    timeline.write_text("\n".join(lines) + "\n")
    (folder / "journal.json").unlink(missing_ok=True)
    return folder


def test_journal_rows_junit_and_flap_keys(tmp_path: Path) -> None:
    journal = build_journal(_fleet_incident(tmp_path))
    assert [h["host"] for h in journal["fleet"]["hosts"]] == ["h1", "h2", "h3"]
    assert journal["fleet"]["counts"] == {"resolved": 1, "escalated": 1, "not-reproduced": 1}
    # only the hosts a step ran on count for their flap guard
    assert journal["target_keys"] == ["staging/h1:api", "staging/h2:api"]
    suite = ElementTree.fromstring(render_junit(journal)).find("testsuite")  # noqa: S314 (ours)
    assert suite is not None
    cases = {(c.get("classname"), c.get("name")): c.find("failure") for c in
             suite.iter("testcase") if ".host." in str(c.get("classname"))}
    prefix = "incident-runner.service-down.host."
    assert cases[(prefix + "h1", "restart")] is None
    assert cases[(prefix + "h1", "outcome")] is None
    assert cases[(prefix + "h2", "restart")] is not None
    failure = cases[(prefix + "h2", "restart-all")]
    assert failure is not None
    assert failure.get("type") == "not_verified"
    assert cases[(prefix + "h2", "outcome")] is not None
    assert cases[(prefix + "h3", "outcome")] is None
    assert (prefix + "h3", "restart") not in cases


def test_a_fleet_incident_counts_for_each_host_it_acted_on(tmp_path: Path) -> None:
    folder = _fleet_incident(tmp_path)
    assert history.record(build_journal(folder), tmp_path)
    assert history.count_remediations("staging/h1:api", T0, tmp_path) == 1
    assert history.count_remediations("staging/h2:api", T0, tmp_path) == 1
    assert history.count_remediations("staging/h3:api", T0, tmp_path) == 0  # not acted on
    assert history.count_remediations("staging/h1,h2,h3:api", T0, tmp_path) == 1
    assert load_journal(folder)["target_keys"] == ["staging/h1:api", "staging/h2:api"]


@pytest.mark.parametrize(("value", "parsed"), [("1", 1), ("25", 25), ("25%", "25%"),
                                               ("100%", "100%"), (None, None)])
def test_serial_option(value: str | None, parsed: int | str | None) -> None:
    assert parse_serial(value) == parsed


@pytest.mark.parametrize("value", ["0", "0%", "101%", "-1", "1.5", "a", "25 %", "{{ x }}"])
def test_serial_option_bad_input(value: str) -> None:
    with pytest.raises(InputError, match="--serial"):
        parse_serial(value)
