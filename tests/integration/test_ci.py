"""Issue 6: triggered from CI after a failed deploy, against a real stack and git deploy source.

A bad commit is committed and deployed (playbooks/faults/bad-deploy.yml, the
path a real deploy takes); the runner is started the way a GitHub Actions or
GitLab CI job starts it, with the job's variables in its environment.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from junitparser import Failure, JUnitXml, TestCase, TestSuite

from tests.stack import ROOT, VENV_BIN, Stack, docker, env, http_json, http_status, run

pytestmark = pytest.mark.integration

REMEDIATE_TIMEOUT = 300
SERVER = "https://github.com"
REPO = "acme/shop"


def git(stack: Stack, *args: str) -> str:
    return run(["git", "-C", str(stack.deploy_src), *args]).stdout.strip()


def github_env(summary: Path, sha: str, run_id: str) -> dict[str, str]:
    """What a GitHub-hosted runner exports to a job step (the parts we read)."""
    return {
        "CI": "true", "GITHUB_ACTIONS": "true", "GITHUB_SHA": sha, "GITHUB_REF_NAME": "main",
        "GITHUB_REF": "refs/heads/main", "GITHUB_RUN_ID": run_id, "GITHUB_RUN_ATTEMPT": "1",
        "GITHUB_SERVER_URL": SERVER, "GITHUB_REPOSITORY": REPO, "GITHUB_ACTOR": "deploy-bot",
        "GITHUB_WORKFLOW": "deploy", "GITHUB_JOB": "deploy", "GITHUB_EVENT_NAME": "push",
        "GITHUB_STEP_SUMMARY": str(summary), "RUNNER_OS": "Linux",
    }


def gitlab_env(sha: str) -> dict[str, str]:
    return {
        "CI": "true", "GITLAB_CI": "true", "CI_COMMIT_SHA": sha, "CI_COMMIT_REF_NAME": "main",
        "CI_PIPELINE_ID": "77", "CI_PIPELINE_URL": "https://gitlab.example.com/acme/shop/-/pipelines/77",
        "CI_JOB_URL": "https://gitlab.example.com/acme/shop/-/jobs/901",
        "GITLAB_USER_LOGIN": "deployer", "CI_PROJECT_PATH": REPO,
        "CI_PROJECT_URL": "https://gitlab.example.com/acme/shop",
    }


def start(stack: Stack, ci_env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """``incident-runner remediate`` as a pipeline step starts it (no terminal)."""
    base = {k: v for k, v in env().items() if not k.startswith(("GITHUB_", "GITLAB_", "CI_"))}
    return subprocess.Popen(
        [str(VENV_BIN / "incident-runner"), "remediate", "--inventory", str(stack.inventory),
         "--scenario", "bad-deploy", "--from-ci", "--yes", "--json", *args],
        cwd=ROOT, env={**base, **ci_env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL, text=True)


def finish(proc: subprocess.Popen[str]) -> tuple[int, dict[str, Any], str]:
    out, err = proc.communicate(timeout=REMEDIATE_TIMEOUT)
    assert out, err
    return proc.returncode, json.loads(out), err


def deploy_bad(stack: Stack) -> tuple[str, str]:
    """(last good, bad): a broken release committed, built, tagged and running in the api."""
    good = git(stack, "rev-parse", "refs/deploy/good/staging")
    stack.playbook("playbooks/faults/bad-deploy.yml")
    bad = git(stack, "rev-parse", "HEAD")
    assert bad != good
    assert http_status(stack.url + "/api/health") == 500
    assert http_json(stack.url + "/api/version")["version"] == bad
    return good, bad


def services(stack: Stack) -> dict[str, tuple[str, str, str, str]]:
    """name -> (container id, image id, state, revision label) of every container of the stack."""
    fmt = "{{.Name}} {{.Id}} {{.Image}} {{.State.Status}} " \
          "{{index .Config.Labels \"org.opencontainers.image.revision\"}}"
    ids = docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={stack.project}")
    out = {}
    for line in docker("inspect", "--format", fmt, *ids.split()).splitlines():
        name, cid, image, state, revision = [*line.split(), ""][:5]
        out[name.lstrip("/")] = (cid, image, state, revision)
    return out


def snapshot(stack: Stack) -> tuple[object, ...]:
    """What a rollback would change: HEAD, refs, the work tree, containers, the deployed tag."""
    deployed = docker("image", "inspect", "--format", "{{.Id}}", f"{stack.project}/app:deployed")
    return (git(stack, "rev-parse", "HEAD"), git(stack, "for-each-ref"),
            git(stack, "status", "--porcelain"), services(stack), deployed)


def events(incident: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (incident / "timeline.jsonl").read_text().splitlines()]


def rollbacks_with_changes(incident: Path) -> list[dict[str, Any]]:
    return [e for e in events(incident) if e["kind"] == "step_finished"
            and e["phase"] == "mitigate" and e["step"] == "rollback" and e.get("changed")]


def junit_cases(path: Path) -> tuple[TestSuite, dict[str, TestCase]]:
    xml = JUnitXml.fromfile(str(path))
    suite = next(iter(xml)) if isinstance(xml, JUnitXml) else xml
    assert isinstance(suite, TestSuite)
    cases = {}
    for case in suite:
        assert isinstance(case, TestCase)
        cases[f"{case.classname.rsplit('.', 1)[-1]}/{case.name}"] = case
    return suite, cases


def test_failed_deploy_rolls_back_to_the_last_good_commit_and_reports_to_github(
        stack: Stack, tmp_path: Path) -> None:
    good, bad = deploy_bad(stack)
    summary = tmp_path / "step_summary.md"
    summary.write_text("## Deploy\nhealth check failed after deploying main\n")
    junit, artifacts = tmp_path / "junit.xml", tmp_path / "artifacts"

    proc = start(stack, github_env(summary, bad, "9001"), "--junit", str(junit),
                 "--artifacts-dir", str(artifacts))
    rc, result, err = finish(proc)

    assert rc == 0, err
    assert result["status"] == "resolved" and result["resolved_by"] == "rollback"
    # The running version is the last good commit, everywhere.
    assert http_json(stack.url + "/api/version")["version"] == good
    assert http_status(stack.url + "/api/health") == 200
    assert git(stack, "rev-parse", "HEAD") == good
    assert git(stack, "rev-parse", "refs/deploy/previous/staging") == bad
    running = services(stack)
    for name in [stack.container("api"), stack.container("web"), stack.container("deps")]:
        assert running[name][2:] == ("running", good), name

    # The incident records who triggered it.
    journal = json.loads((Path(result["dir"]) / "journal.json").read_text())
    run_url = f"{SERVER}/{REPO}/actions/runs/9001"
    assert journal["ci"]["provider"] == "github-actions"
    assert journal["ci"]["commit"] == bad and journal["ci"]["run_url"] == run_url
    assert journal["ci"]["actor"] == "deploy-bot"

    # JUnit says what happened, step by step.
    suite, cases = junit_cases(junit)
    assert list(cases) == ["lock/target lock", "diagnose/capture-diagnostics",
                           "mitigate/rollback", "verify/after-rollback",
                           "notify/notify-initial", "notify/notify-resolved", "incident/outcome"]
    assert suite.failures == 0 and suite.errors == 0
    assert not cases["mitigate/rollback"].result
    assert f"{bad} -> {good}" in (cases["mitigate/rollback"].system_out or "")
    assert "resolved by step rollback" in (cases["incident/outcome"].system_out or "")
    props = {p.name: p.value for p in suite.properties()}
    assert props["status"] == "resolved" and props["ci.run_url"] == run_url

    # The step summary got the report appended; the job's own lines are kept.
    text = summary.read_text()
    assert text.startswith("## Deploy\nhealth check failed after deploying main\n\n# INC-")
    assert "## Triggered by" in text and f"[run 9001]({run_url})" in text
    assert "**resolved**" in text and "Resolved by step `rollback`" in text

    # Artifacts to upload, with their paths in the output.
    assert sorted(p.name for p in artifacts.iterdir()) == sorted(
        ["report.md", "report.html", "report.json", "messages.json", "timeline.jsonl"])
    assert result["outputs"]["junit"] == str(junit)
    assert result["outputs"]["timeline"] == str(Path(result["dir"]) / "timeline.jsonl")
    assert (artifacts / "report.md").read_text() == Path(result["reports"]["markdown"]).read_text()
    assert rollbacks_with_changes(Path(result["dir"]))


def test_two_concurrent_triggers_roll_back_once(stack: Stack, tmp_path: Path) -> None:
    good, bad = deploy_bad(stack)
    # Two pipelines (say, two merges deployed back to back) fail their health check together.
    first = start(stack, github_env(tmp_path / "s1.md", bad, "9101"), "--junit",
                  str(tmp_path / "j1.xml"))
    second = start(stack, github_env(tmp_path / "s2.md", bad, "9102"), "--junit",
                   str(tmp_path / "j2.xml"))
    outcomes = [finish(first), finish(second)]

    for rc, result, err in outcomes:
        assert rc == 0, (result, err)
        assert result["status"] == "resolved", result
    dirs = [Path(result["dir"]) for _, result, _ in outcomes]
    # Exactly one rollback changed anything; the other run waited for the lock, then
    # found the target healthy and did not act.
    acted = [d for d in dirs if rollbacks_with_changes(d)]
    assert len(acted) == 1, [e for d in dirs for e in events(d) if e["kind"] == "step_finished"]
    waiter = next(d for d in dirs if d not in acted)
    waiter_events = events(waiter)
    locks = [e for e in waiter_events if e["kind"] == "lock"]
    assert [e["decision"] for e in locks] == ["wait", "acquired"]
    assert acted[0].name.split("-bad-deploy")[0] in locks[0]["reason"]  # names the holder
    assert not [e for e in waiter_events if e["kind"] == "step_started"
                and e["phase"] in {"mitigate", "diagnose"}]
    assert [e["step"] for e in waiter_events if e["kind"] == "verify_result"] == \
        ["after-lock-wait"]
    waiter_summary = next(r for _, r, _ in outcomes if Path(r["dir"]) == waiter)
    assert "released the lock; nothing left to do" in waiter_summary["reason"]
    assert waiter_summary["resolved_by"] is None
    assert http_json(stack.url + "/api/version")["version"] == good


def test_no_good_commit_recorded_escalates_and_changes_nothing(
        stack: Stack, tmp_path: Path) -> None:
    good, bad = deploy_bad(stack)
    git(stack, "update-ref", "-d", "refs/deploy/good/staging")
    try:
        before = snapshot(stack)
        junit = tmp_path / "junit.xml"
        rc, result, err = finish(start(stack, gitlab_env(bad), "--junit", str(junit)))
        after = snapshot(stack)
    finally:
        git(stack, "update-ref", "refs/deploy/good/staging", good)

    assert rc == 3, err
    assert result["status"] == "escalated"
    assert "no good commit recorded for env staging" in result["reason"]
    assert after == before, "an escalation for a missing good commit must change nothing"
    assert before[0] == bad and http_json(stack.url + "/api/version")["version"] == bad
    report = Path(result["reports"]["markdown"]).read_text()
    assert "**Escalated to a human.** step rollback refused: rollback_commit_target: " \
           "no good commit recorded for env staging" in report
    assert "GitLab CI [run 77](https://gitlab.example.com/acme/shop/-/pipelines/77)" in report
    _, cases = junit_cases(junit)
    outcome = cases["incident/outcome"].result
    assert outcome and isinstance(outcome[0], Failure) and outcome[0].type == "escalated"
    assert "no good commit recorded for env staging" in (outcome[0].message or "")
    rollback = cases["mitigate/rollback"].result
    assert rollback and isinstance(rollback[0], Failure)
    assert "verify/after-rollback" not in cases  # escalated at once: nothing else ran
    journal = json.loads((Path(result["dir"]) / "journal.json").read_text())
    assert [s["changed"] for s in journal["steps"] if s["phase"] == "mitigate"] == [0]


def mark_good(stack: Stack, *args: str, ci_env: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in env().items() if not k.startswith(("GITHUB_", "GITLAB_", "CI_"))}
    return subprocess.run(
        [str(VENV_BIN / "incident-runner"), "mark-good", "--inventory", str(stack.inventory),
         *args], cwd=ROOT, env={**base, **(ci_env or {})}, capture_output=True, text=True,
        timeout=120, check=False)


def test_mark_good_moves_the_deploy_record_that_rollbacks_return_to(
        stack: Stack, tmp_path: Path) -> None:
    old_good = git(stack, "rev-parse", "refs/deploy/good/staging")
    # A fixed release, deployed and verified by the pipeline: commit it, then mark it.
    release = stack.deploy_src / "release.json"
    release.write_text(json.dumps({"healthy": True, "reason": "release 2"}) + "\n")
    git(stack, "-c", "user.name=t", "-c", "user.email=t@t.invalid", "commit", "-qm",
        "release 2", "--", "release.json")
    fixed = git(stack, "rev-parse", "HEAD")

    ci_env = github_env(tmp_path / "s.md", fixed, "9301")
    proc = mark_good(stack, "--from-ci", "--json", ci_env=ci_env)  # COMMIT defaults to HEAD
    assert proc.returncode == 0, proc.stderr
    [mark] = json.loads(proc.stdout)
    assert mark == {"host": "localhost", "env": "staging", "repo": str(stack.deploy_src),
                    "ref": "refs/deploy/good/staging", "previous": old_good, "commit": fixed,
                    "moved": True}
    assert git(stack, "rev-parse", "refs/deploy/good/staging") == fixed
    history = git(stack, "for-each-ref", "--format=%(objectname) %(refname)",
                  "refs/deploy/good-history/staging/").splitlines()
    assert any(line.startswith(f"{old_good} ") for line in history)
    reflog = git(stack, "reflog", "show", "--format=%H %gs", "refs/deploy/good/staging")
    assert reflog.splitlines()[0] == (f"{fixed} incident-runner mark-good from GitHub Actions "
                                      f"{SERVER}/{REPO}/actions/runs/9301 by deploy-bot")
    again = mark_good(stack, fixed)
    assert again.returncode == 0 and "already at" in again.stdout

    # Bad input: exit 2, the record untouched.
    for args, message in [(("no-such-commit",), "is not a commit in"),
                          (("--env", "../prod"), "is not a valid environment name"),
                          (("--repo", str(tmp_path)), "is not a git checkout"),
                          (("--hosts", "nowhere"), "no host matched")]:
        bad_input = mark_good(stack, *args)
        assert bad_input.returncode == 2, (args, bad_input.stderr)
        assert message in bad_input.stderr
    assert git(stack, "rev-parse", "refs/deploy/good/staging") == fixed

    # The next bad deploy rolls back to the newly recorded commit (its image built on the way).
    good, bad = deploy_bad(stack)
    assert good == fixed
    rc, _, err = finish(start(stack, github_env(tmp_path / "s2.md", bad, "9302")))
    assert rc == 0, err
    assert http_json(stack.url + "/api/version")["version"] == fixed
    assert git(stack, "rev-parse", "HEAD") == fixed
    assert os.environ.get("GITHUB_STEP_SUMMARY") != str(tmp_path / "s2.md")
    assert (tmp_path / "s2.md").read_text().count("# INC-") == 1
