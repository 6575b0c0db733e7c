"""Options for running inside a CI/CD pipeline, shared by subcommands that open incidents.

``@pipeline_options`` adds ``--from-ci``, ``--junit``, ``--artifacts-dir`` and
``--lock-timeout`` and hands the command one ``Pipeline`` object; paths are
checked before anything runs, so a typo fails with exit 2 instead of after a
rollback.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from incident_runner import ci
from incident_runner.cli.options import Duration
from incident_runner.engine import IncidentResult
from incident_runner.errors import InputError
from incident_runner.lock import DEFAULT_LOCK_TIMEOUT

LOCK_TIMEOUT_ENV = "INCIDENT_RUNNER_LOCK_TIMEOUT"
MAX_LOCK_TIMEOUT = 24 * 3600.0


@dataclass
class Pipeline:
    from_ci: bool
    junit: Path | None
    artifacts_dir: Path | None
    lock_timeout: float

    def context(self) -> dict[str, Any]:
        """The CI context to record (empty without --from-ci)."""
        return ci.from_environment() if self.from_ci else {}

    def publish(self, result: IncidentResult) -> dict[str, Any]:
        """Write JUnit, the step summary and the artifacts; their paths for the output."""
        try:
            outputs = ci.publish(result.journal, result.incident_dir, result.reports,
                                 junit=self.junit, artifacts_dir=self.artifacts_dir)
        except OSError as exc:  # the incident's outcome stands; say what is missing
            click.echo(f"incident-runner: error: could not write the pipeline outputs: {exc}",
                       err=True)
            return {"error": str(exc)}
        return outputs.as_dict()

    @staticmethod
    def echo(outputs: dict[str, Any]) -> None:
        """The files a pipeline uploads, one per line (after the outcome line)."""
        for key in ("timeline", "junit", "step_summary"):
            if outputs.get(key):
                click.echo(f"{key.replace('_', ' ')}: {outputs[key]}")
        if outputs.get("artifacts"):
            folder = Path(next(iter(outputs["artifacts"].values()))).parent
            click.echo(f"artifacts: {folder} ({', '.join(outputs['artifacts'])})")


def pipeline_options(command: Callable[..., Any]) -> Callable[..., Any]:
    @click.option("--from-ci", "from_ci", is_flag=True,
                  help="Record the CI context (GitHub Actions or GitLab CI variables) in the "
                       "incident; exit 2 if neither is found.")
    @click.option("--junit", "junit", type=click.Path(dir_okay=False, path_type=Path),
                  default=None, metavar="PATH",
                  help="Write JUnit XML: one test case per step, the outcome last "
                       "(an escalation is a failure).")
    @click.option("--artifacts-dir", "artifacts_dir",
                  type=click.Path(file_okay=False, path_type=Path), default=None, metavar="DIR",
                  help="Copy report.md/html/json, messages.json and timeline.jsonl here.")
    @click.option("--lock-timeout", "lock_timeout", envvar=LOCK_TIMEOUT_ENV,
                  type=Duration(allow_zero=True), default=DEFAULT_LOCK_TIMEOUT,
                  show_default=True, metavar="DURATION",
                  help="Wait this long for another run that holds the target's lock, then "
                       f"escalate (exit 3). Env: {LOCK_TIMEOUT_ENV}.")
    @functools.wraps(command)
    def wrapper(*args: Any, from_ci: bool, junit: Path | None, artifacts_dir: Path | None,
                lock_timeout: float, **kwargs: Any) -> Any:
        if junit is not None:
            ci.check_output_path(junit, "--junit")
        if artifacts_dir is not None and artifacts_dir.exists() and not artifacts_dir.is_dir():
            ci.check_output_path(artifacts_dir, "--artifacts-dir")
        if lock_timeout > MAX_LOCK_TIMEOUT:
            raise InputError(f"at most {MAX_LOCK_TIMEOUT:g}s", field="--lock-timeout")
        pipeline = Pipeline(from_ci=from_ci, junit=junit, artifacts_dir=artifacts_dir,
                            lock_timeout=lock_timeout)
        return command(*args, pipeline=pipeline, **kwargs)

    return wrapper


def summary_json(result: IncidentResult, outputs: dict[str, Any]) -> str:
    return json.dumps({**result.summary(), "outputs": outputs}, indent=2)
