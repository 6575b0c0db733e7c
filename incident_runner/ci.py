"""CI/CD context and pipeline outputs: who triggered an incident, and what it hands back.

``from_environment`` reads the variables GitHub Actions and GitLab CI set on
every job and returns one normalised mapping (``provider``, ``commit``,
``ref``, ``repository``, ``actor``, ``run_id``, ``run_url``, ``job_url``...)
that the engine records in the incident (``incident_opened.ci``, journal
``ci``). The values come from the pipeline, which may run for a pull request
from a fork: each is cut to one printable line, commits must be hex, URLs
must be http(s); a value that fails is left out and named in ``ignored``.

``publish`` writes what a pipeline consumes after the run: JUnit XML, the
Markdown report appended to ``$GITHUB_STEP_SUMMARY``, and the report files
copied to an artifacts folder. See docs/ci.md.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from incident_runner.errors import InputError
from incident_runner.junit import write_junit
from incident_runner.layout import TIMELINE_FILE
from incident_runner.report import render

LOG = logging.getLogger(__name__)

GITHUB = "github-actions"
GITLAB = "gitlab-ci"
STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"
MAX_VALUE = 200
_COMMIT = re.compile(r"^[0-9a-f]{7,64}$")
_URL = re.compile(r"^https?://[^\s<>\"'`()]+$")
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]")

# normalised key -> (GitHub Actions variable, GitLab CI variable)
_FIELDS: dict[str, tuple[str | None, str | None]] = {
    "commit": ("GITHUB_SHA", "CI_COMMIT_SHA"),
    "ref": ("GITHUB_REF_NAME", "CI_COMMIT_REF_NAME"),
    "repository": ("GITHUB_REPOSITORY", "CI_PROJECT_PATH"),
    "actor": ("GITHUB_ACTOR", "GITLAB_USER_LOGIN"),
    "run_id": ("GITHUB_RUN_ID", "CI_PIPELINE_ID"),
    "run_attempt": ("GITHUB_RUN_ATTEMPT", None),
    "workflow": ("GITHUB_WORKFLOW", None),
    "job": ("GITHUB_JOB", "CI_JOB_NAME"),
    "event": ("GITHUB_EVENT_NAME", "CI_PIPELINE_SOURCE"),
    "server_url": ("GITHUB_SERVER_URL", "CI_SERVER_URL"),
    "run_url": (None, "CI_PIPELINE_URL"),
    "job_url": (None, "CI_JOB_URL"),
    "project_url": (None, "CI_PROJECT_URL"),
}
_URL_FIELDS = {"server_url", "run_url", "job_url", "project_url"}
PROVIDER_LABELS = {GITHUB: "GitHub Actions", GITLAB: "GitLab CI"}


def detect(env: Mapping[str, str]) -> str | None:
    """Which CI system set this environment: ``github-actions``, ``gitlab-ci`` or None."""
    if env.get("GITHUB_ACTIONS") == "true" or env.get("GITHUB_RUN_ID"):
        return GITHUB
    if env.get("GITLAB_CI") == "true" or env.get("CI_PIPELINE_URL"):
        return GITLAB
    return None


def _clean(key: str, raw: str) -> str | None:
    value = _UNPRINTABLE.sub("", raw).strip()[:MAX_VALUE]
    if not value:
        return None
    if key == "commit" and not _COMMIT.match(value.lower()):
        return None
    if key in _URL_FIELDS and not _URL.match(value):
        return None
    return value.lower() if key == "commit" else value


def from_environment(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The CI context of this job, normalised; InputError if no CI system is recognised."""
    env = os.environ if env is None else env
    provider = detect(env)
    if provider is None:
        raise InputError("no CI environment found: expected the variables GitHub Actions "
                         "(GITHUB_ACTIONS, GITHUB_RUN_ID, ...) or GitLab CI (GITLAB_CI, "
                         "CI_PIPELINE_URL, ...) set", field="--from-ci")
    column = 0 if provider == GITHUB else 1
    out: dict[str, Any] = {"provider": provider}
    ignored: list[str] = []
    for key, names in _FIELDS.items():
        name = names[column]
        if name is None or not env.get(name):
            continue
        value = _clean(key, env[name])
        if value is None:
            ignored.append(name)
            LOG.warning("ignoring %s: not a valid %s", name, key.replace("_", " "))
            continue
        out[key] = value
    if provider == GITHUB and {"server_url", "repository", "run_id"} <= out.keys():
        out["run_url"] = f"{out['server_url']}/{out['repository']}/actions/runs/{out['run_id']}"
        if out.get("run_attempt") not in (None, "1"):
            out["run_url"] += f"/attempts/{out['run_attempt']}"
        if not _URL.match(out["run_url"]):
            ignored.append("GITHUB_SERVER_URL/GITHUB_REPOSITORY")
            del out["run_url"]
    commit_url = None
    if provider == GITHUB and {"server_url", "repository", "commit"} <= out.keys():
        commit_url = f"{out['server_url']}/{out['repository']}/commit/{out['commit']}"
    elif provider == GITLAB and {"project_url", "commit"} <= out.keys():
        commit_url = f"{out['project_url']}/-/commit/{out['commit']}"
    if commit_url and _URL.match(commit_url):
        out["commit_url"] = commit_url
    if ignored:
        out["ignored"] = ignored
    return out


def describe(ci: Mapping[str, Any]) -> str:
    """One line for logs and reflog messages: provider, run and actor."""
    label = PROVIDER_LABELS.get(str(ci.get("provider")), str(ci.get("provider") or "CI"))
    parts = [label]
    if ci.get("run_url"):
        parts.append(str(ci["run_url"]))
    elif ci.get("run_id"):
        parts.append(f"run {ci['run_id']}")
    if ci.get("actor"):
        parts.append(f"by {ci['actor']}")
    return " ".join(parts)


# -- outputs for the pipeline ------------------------------------------------------
ARTIFACT_FILES = ("report.md", "report.html", "report.json", "messages.json", TIMELINE_FILE)


@dataclass
class Outputs:
    """Where the pipeline's files went (printed by the CLI, returned in --json)."""

    report: Path
    timeline: Path
    junit: Path | None = None
    step_summary: Path | None = None
    artifacts: dict[str, Path] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "report": str(self.report), "timeline": str(self.timeline),
            "junit": str(self.junit) if self.junit else None,
            "step_summary": str(self.step_summary) if self.step_summary else None,
            "artifacts": {k: str(v) for k, v in self.artifacts.items()},
        }


def check_output_path(path: Path, option: str) -> Path:
    """Fail before anything runs if an output file cannot be written there."""
    parent = path.parent if str(path.parent) else Path()
    if path.is_dir():
        raise InputError("is a directory; give a file path", source=str(path), field=option)
    if not parent.is_dir():
        raise InputError("its folder does not exist", source=str(path), field=option)
    return path


def append_step_summary(path: Path, markdown: str) -> None:
    """Append to the file GitHub renders on the run's summary page (never truncate it)."""
    with path.open("a", encoding="utf-8") as handle:
        handle.write(("\n" if handle.tell() else "") + markdown.rstrip("\n") + "\n")


def copy_artifacts(incident_dir: Path, reports: Mapping[str, Path], dest: Path) -> dict[str, Path]:
    """report.md/html/json, messages.json and timeline.jsonl under fixed names in ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    sources = {
        "report.md": reports.get("markdown"), "report.html": reports.get("html"),
        "report.json": reports.get("json"), "messages.json": reports.get("messages"),
        TIMELINE_FILE: incident_dir / TIMELINE_FILE,
    }
    out: dict[str, Path] = {}
    for name in ARTIFACT_FILES:
        src = sources[name]
        if src is not None and src.is_file():
            out[name] = Path(shutil.copyfile(src, dest / name))
    return out


def publish(journal: dict[str, Any], incident_dir: Path, reports: Mapping[str, Path], *,
            junit: Path | None = None, artifacts_dir: Path | None = None,
            env: Mapping[str, str] | None = None) -> Outputs:
    """Write the pipeline's outputs for a closed incident (all rendered from the journal)."""
    env = os.environ if env is None else env
    outputs = Outputs(report=reports["markdown"], timeline=incident_dir / TIMELINE_FILE)
    if junit is not None:
        write_junit(junit, journal)
        outputs.junit = junit
    summary = env.get(STEP_SUMMARY_ENV)
    if summary:
        append_step_summary(Path(summary), render(journal, "md"))
        outputs.step_summary = Path(summary)
    if artifacts_dir is not None:
        outputs.artifacts = copy_artifacts(incident_dir, reports, artifacts_dir)
    return outputs
