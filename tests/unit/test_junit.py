"""JUnit XML rendered from journals: read back with junitparser, as a CI server would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from junitparser import Error, Failure, JUnitXml, TestCase, TestSuite

from incident_runner.journal import load_journal
from incident_runner.junit import render_junit, write_junit
from tests.unit.timelines import write_incident

OK = "successful"


def _parse(path: Path) -> TestSuite:
    xml = JUnitXml.fromfile(str(path))
    suites = list(xml) if isinstance(xml, JUnitXml) else [xml]
    assert len(suites) == 1
    suite = suites[0]
    assert isinstance(suite, TestSuite)
    return suite


def _cases(suite: TestSuite) -> list[tuple[str, str, str | None, str | None]]:
    """(classname, name, result kind, result message) per test case, in order."""
    out = []
    for case in suite:
        assert isinstance(case, TestCase)
        result = case.result[0] if case.result else None
        kind = type(result).__name__.lower() if result is not None else None
        out.append((case.classname, case.name, kind, result.message if result else None))
    return out


def _write(tmp_path: Path, journal: dict[str, Any]) -> TestSuite:
    path = write_junit(tmp_path / "junit.xml", journal)
    return _parse(path)


def test_resolved_incident_one_case_per_step_then_the_outcome(tmp_path: Path) -> None:
    folder = write_incident(tmp_path, scenario="bad-deploy", steps=[
        ("diagnose", "capture-diagnostics", OK, 2.0),
        ("mitigate", "rollback", OK, 8.5),
        ("verify", "after-rollback", OK, 3.0),
    ], resolved_by="rollback")
    journal = load_journal(folder)
    suite = _write(tmp_path, journal)
    assert _cases(suite) == [
        ("incident-runner.bad-deploy.diagnose", "capture-diagnostics", None, None),
        ("incident-runner.bad-deploy.mitigate", "rollback", None, None),
        ("incident-runner.bad-deploy.verify", "after-rollback", None, None),
        ("incident-runner.bad-deploy.incident", "outcome", None, None),
    ]
    assert suite.tests == 4 and suite.failures == 0 and suite.errors == 0
    assert abs(float(suite.time) - journal["duration_s"]) < 0.01
    rollback = list(suite)[1]
    assert isinstance(rollback, TestCase)
    assert rollback.time == 8.5
    assert "rollback task" in (rollback.system_out or "")
    props = {p.name: p.value for p in suite.properties()}
    assert props["status"] == "resolved" and props["resolved_by"] == "rollback"
    assert props["incident_id"] == journal["incident_id"] and props["ci.job"] == "42"


def test_escalation_is_a_failure_carrying_the_reason(tmp_path: Path) -> None:
    reason = "step rollback refused: no good commit recorded for env staging"
    folder = write_incident(tmp_path, scenario="bad-deploy", steps=[
        ("diagnose", "capture-diagnostics", OK, 1.0),
        ("mitigate", "rollback", "failed", 1.0),
    ], status="escalated", escalate_reason=reason)
    journal = load_journal(folder)
    journal["reason"] = reason
    suite = _write(tmp_path, journal)
    cases = _cases(suite)
    assert cases[1][:3] == ("incident-runner.bad-deploy.mitigate", "rollback", "failure")
    assert "boom" in (cases[1][3] or "")
    assert cases[-1] == ("incident-runner.bad-deploy.incident", "outcome", "failure",
                         f"escalated to a human: {reason}")
    assert suite.failures == 2 and suite.errors == 0
    outcome = list(suite)[-1]
    assert isinstance(outcome, TestCase) and isinstance(outcome.result[0], Failure)
    assert outcome.result[0].type == "escalated"


def test_interrupted_run_is_an_error(tmp_path: Path) -> None:
    folder = write_incident(tmp_path, steps=[("mitigate", "restart", "running", 5.0)],
                            status=None, pid=0)
    suite = _write(tmp_path, load_journal(folder))
    kinds = [c[2] for c in _cases(suite)]
    assert kinds == ["error", "error"]
    assert suite.errors == 2
    last = list(suite)[-1]
    assert isinstance(last, TestCase) and isinstance(last.result[0], Error)


def test_lock_wait_skips_and_timeouts(tmp_path: Path) -> None:
    folder = write_incident(tmp_path, steps=[("verify", "after-lock-wait", OK, 1.0)])
    journal = load_journal(folder)
    journal["decisions"] = [
        {"kind": "lock", "decision": "wait", "step": "staging:api", "reason": "waiting for X"},
        {"kind": "lock", "decision": "acquired", "waited_s": 4.5, "reason": "holding staging:api"},
        {"kind": "skipped", "phase": "notify", "step": "notify-initial", "reason": "no webhook"},
    ]
    cases = _cases(_write(tmp_path, journal))
    assert cases[0] == ("incident-runner.proxy-502.lock", "target lock", None, None)
    assert ("incident-runner.proxy-502.notify", "notify-initial", "skipped", "no webhook") in cases

    journal["decisions"] = [{"kind": "lock", "decision": "timeout", "waited_s": 1.0,
                             "reason": "another remediation holds the lock on 'staging:api'"}]
    journal["status"], journal["reason"] = "escalated", "another remediation holds the lock"
    journal["steps"] = []
    suite = _write(tmp_path, journal)
    cases = _cases(suite)
    assert cases[0][2] == "failure" and "holds the lock" in (cases[0][3] or "")
    assert cases[-1][2] == "failure"
    assert suite.tests == 2 and suite.failures == 2


def test_characters_xml_cannot_carry_are_replaced(tmp_path: Path) -> None:
    folder = write_incident(tmp_path, steps=[("mitigate", "restart", "failed", 1.0)],
                            status="failed")
    journal = load_journal(folder)
    journal["steps"][0]["messages"] = ["ansi \x1b[31mred\x1b[0m and nul \x00 and <tag> & 'q'"]
    journal["reason"] = "bell \x07"
    text = render_junit(journal)
    assert "\x1b" not in text and "\x00" not in text and "\x07" not in text
    suite = _write(tmp_path, journal)
    cases = _cases(suite)
    assert cases[0][3] == ("mitigate step restart failed: "
                           "ansi ?[31mred?[0m and nul ? and <tag> & 'q'")
    assert cases[-1][2] == "failure"  # failed outcome


def test_file_is_written_atomically_and_readable_by_ci(tmp_path: Path) -> None:
    folder = write_incident(tmp_path, steps=[("mitigate", "x", OK, 1.0)])
    path = write_junit(tmp_path / "out.xml", load_journal(folder))
    assert path.stat().st_mode & 0o777 == 0o644
    assert not list(tmp_path.glob(".out.xml.*"))
