"""CI context parsing (GitHub Actions, GitLab CI), its place in the reports, pipeline outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from incident_runner import ci
from incident_runner.errors import InputError
from incident_runner.journal import load_journal
from incident_runner.report import render, write_reports
from tests.unit.timelines import write_incident

SHA = "0123456789abcdef0123456789abcdef01234567"

GITHUB = {
    "CI": "true", "GITHUB_ACTIONS": "true", "GITHUB_SHA": SHA, "GITHUB_REF_NAME": "main",
    "GITHUB_RUN_ID": "7001", "GITHUB_RUN_ATTEMPT": "1", "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_REPOSITORY": "acme/shop", "GITHUB_ACTOR": "octocat", "GITHUB_WORKFLOW": "deploy",
    "GITHUB_JOB": "deploy", "GITHUB_EVENT_NAME": "push",
    "GITHUB_STEP_SUMMARY": "/home/runner/work/_temp/_runner_file_commands/step_summary_x",
}
GITLAB = {
    "CI": "true", "GITLAB_CI": "true", "CI_COMMIT_SHA": SHA, "CI_COMMIT_REF_NAME": "release/1.2",
    "CI_PIPELINE_ID": "991", "CI_PIPELINE_URL": "https://gitlab.example.com/acme/shop/-/pipelines/991",
    "CI_JOB_URL": "https://gitlab.example.com/acme/shop/-/jobs/5512", "CI_JOB_NAME": "rollback",
    "GITLAB_USER_LOGIN": "dev1", "CI_PROJECT_PATH": "acme/shop",
    "CI_PROJECT_URL": "https://gitlab.example.com/acme/shop", "CI_PIPELINE_SOURCE": "push",
}


def test_github_actions_context() -> None:
    got = ci.from_environment(GITHUB)
    assert got == {
        "provider": "github-actions", "commit": SHA, "ref": "main", "repository": "acme/shop",
        "actor": "octocat", "run_id": "7001", "run_attempt": "1", "workflow": "deploy",
        "job": "deploy", "event": "push", "server_url": "https://github.com",
        "run_url": "https://github.com/acme/shop/actions/runs/7001",
        "commit_url": f"https://github.com/acme/shop/commit/{SHA}",
    }
    assert ci.describe(got) == ("GitHub Actions https://github.com/acme/shop/actions/runs/7001 "
                                "by octocat")


def test_github_rerun_links_the_attempt() -> None:
    got = ci.from_environment({**GITHUB, "GITHUB_RUN_ATTEMPT": "3"})
    assert got["run_url"].endswith("/actions/runs/7001/attempts/3")


def test_gitlab_ci_context() -> None:
    got = ci.from_environment(GITLAB)
    assert got["provider"] == "gitlab-ci"
    assert got["commit"] == SHA and got["ref"] == "release/1.2" and got["actor"] == "dev1"
    assert got["run_url"] == GITLAB["CI_PIPELINE_URL"]
    assert got["job_url"] == GITLAB["CI_JOB_URL"]
    assert got["commit_url"] == f"https://gitlab.example.com/acme/shop/-/commit/{SHA}"
    assert "ignored" not in got
    assert ci.describe(got) == f"GitLab CI {GITLAB['CI_PIPELINE_URL']} by dev1"


def test_detection_needs_a_known_ci_system() -> None:
    assert ci.detect({"CI": "true"}) is None
    assert ci.detect({"GITHUB_RUN_ID": "1"}) == "github-actions"
    assert ci.detect({"CI_PIPELINE_URL": "https://x/p/1"}) == "gitlab-ci"
    # A GitLab job that happens to export GITHUB_* is still told apart by GITHUB_ACTIONS.
    assert ci.detect({**GITLAB, "GITHUB_SHA": SHA}) == "gitlab-ci"
    with pytest.raises(InputError, match="no CI environment found"):
        ci.from_environment({"CI": "true", "HOME": "/root"})


@pytest.mark.parametrize(("name", "value"), [
    ("GITHUB_SHA", "not-a-sha; rm -rf /"),
    ("GITHUB_SERVER_URL", "javascript:alert(1)"),
    ("GITHUB_SERVER_URL", "https://evil.example/x\"><script>"),
])
def test_invalid_values_are_left_out_and_named(name: str, value: str) -> None:
    got = ci.from_environment({**GITHUB, name: value})
    assert name in got["ignored"]
    assert value not in json.dumps(got)
    if name == "GITHUB_SERVER_URL":
        assert "run_url" not in got and "commit_url" not in got


def test_values_are_one_printable_bounded_line() -> None:
    got = ci.from_environment({**GITHUB, "GITHUB_REF_NAME": "feat/\x1b[31mred\nline" + "x" * 500,
                               "GITHUB_SHA": SHA.upper()})
    assert "\n" not in got["ref"] and "\x1b" not in got["ref"]
    assert got["ref"].startswith("feat/[31mredline") and len(got["ref"]) == ci.MAX_VALUE
    assert got["commit"] == SHA


def _journal(tmp_path: Path, ci_context: dict[str, Any] | None, **kw: Any) -> dict[str, Any]:
    folder = write_incident(tmp_path, steps=[("diagnose", "capture-diagnostics", "successful", 1),
                                             ("mitigate", "rollback", "successful", 2),
                                             ("verify", "after-rollback", "successful", 1)],
                            scenario="bad-deploy", resolved_by="rollback", **kw)
    journal = load_journal(folder)
    journal["ci"] = ci_context
    if ci_context is None:
        del journal["ci"]  # journals written before the ci field existed
    return journal


def test_reports_show_who_triggered_the_run(tmp_path: Path) -> None:
    journal = _journal(tmp_path, ci.from_environment(GITHUB))
    md = render(journal, "md")
    assert "## Triggered by" in md
    assert "GitHub Actions [run 7001](https://github.com/acme/shop/actions/runs/7001)" in md
    assert f"[`{SHA[:12]}`](https://github.com/acme/shop/commit/{SHA}) on `main`" in md
    assert "| **Actor** | octocat (push) |" in md
    html = render(journal, "html")
    assert "<h2>Triggered by</h2>" in html
    assert '<a href="https://github.com/acme/shop/actions/runs/7001">run 7001</a>' in html


def test_reports_escape_ci_values_and_never_link_other_schemes(tmp_path: Path) -> None:
    hostile = {"provider": "github-actions", "commit": SHA,
               "ref": "<img src=x onerror=alert(1)>|`x`", "actor": "a|b",
               "run_url": "javascript:alert(1)", "run_id": "1"}
    journal = _journal(tmp_path, hostile)
    html = render(journal, "html")
    assert "<img" not in html and "&lt;img src=x" in html
    assert 'href="javascript' not in html and "run 1" in html
    md = render(journal, "md")
    assert "](javascript:" not in md
    assert "on `<img src=x onerror=alert(1)>\\|'x'`" in md  # inside code; no table break
    assert "a\\|b" in md


def test_no_ci_no_section_and_old_journals_render(tmp_path: Path) -> None:
    assert "Triggered by" not in render(_journal(tmp_path / "a", {}), "md")
    old = _journal(tmp_path / "b", None)
    for fmt in ("md", "html"):
        assert "Triggered by" not in render(old, fmt)


def test_publish_writes_junit_summary_and_artifacts(tmp_path: Path) -> None:
    journal = _journal(tmp_path / "state", ci.from_environment(GITHUB))
    folder = tmp_path / "state" / journal["dir"]
    reports = write_reports(folder, journal)
    summary = tmp_path / "step_summary.md"
    summary.write_text("## Deploy\nhealth check failed\n")
    out = ci.publish(journal, folder, reports, junit=tmp_path / "junit.xml",
                     artifacts_dir=tmp_path / "artifacts",
                     env={ci.STEP_SUMMARY_ENV: str(summary)})
    text = summary.read_text()
    assert text.startswith("## Deploy\nhealth check failed\n\n# INC-")  # appended, not replaced
    assert "## Triggered by" in text
    assert out.junit == tmp_path / "junit.xml" and out.junit.read_text().startswith("<?xml")
    assert sorted(out.artifacts) == sorted(ci.ARTIFACT_FILES)
    assert (tmp_path / "artifacts" / "report.md").read_text() == reports["markdown"].read_text()
    assert (tmp_path / "artifacts" / "timeline.jsonl").read_bytes() == \
        (folder / "timeline.jsonl").read_bytes()
    assert out.as_dict()["step_summary"] == str(summary)


def test_publish_without_step_summary_touches_nothing(tmp_path: Path) -> None:
    journal = _journal(tmp_path, {})
    folder = tmp_path / journal["dir"]
    out = ci.publish(journal, folder, write_reports(folder, journal), env={})
    assert out.step_summary is None and out.junit is None and out.artifacts == {}


def test_output_paths_are_checked_before_running(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="folder does not exist"):
        ci.check_output_path(tmp_path / "missing" / "junit.xml", "--junit")
    with pytest.raises(InputError, match="is a directory"):
        ci.check_output_path(tmp_path, "--junit")
    assert ci.check_output_path(tmp_path / "j.xml", "--junit") == tmp_path / "j.xml"


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "incident_runner", *args], capture_output=True,
                          text=True, env=env, timeout=60, check=False)


def test_cli_bad_pipeline_input_is_exit_2_before_anything_runs(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("GITHUB_", "GITLAB_", "CI_"))}
    proc = _cli("remediate", "--scenario", "bad-deploy", "--from-ci", env=clean)
    assert proc.returncode == 2, proc.stderr
    assert "no CI environment found" in proc.stderr
    proc = _cli("remediate", "--scenario", "bad-deploy", "--junit",
                str(tmp_path / "nope" / "junit.xml"), env=clean)
    assert proc.returncode == 2 and "--junit" in proc.stderr
    proc = _cli("remediate", "--scenario", "bad-deploy", "--lock-timeout", "-1", env=clean)
    assert proc.returncode == 2
    state = Path(clean["INCIDENT_RUNNER_STATE_DIR"])
    assert not state.exists() or not list(state.glob("INC-*"))  # no incident was opened
