"""``incident-runner remediate``: run a scenario's ladder against an inventory."""

from __future__ import annotations

import re
from pathlib import Path

import click

from incident_runner.cli.options import Duration, global_options, parse_extra_vars
from incident_runner.cli.pipeline import Pipeline, pipeline_options, summary_json
from incident_runner.console import make_reporter
from incident_runner.engine import RemediateRequest
from incident_runner.engine import remediate as run_remediation
from incident_runner.errors import InputError
from incident_runner.paths import default_inventory
from incident_runner.serve.alertfile import load_alert_file

SERIAL = re.compile(r"^(?:[1-9][0-9]{0,3}|(?:[1-9][0-9]?|100)%)$")


def parse_serial(value: str | None) -> int | str | None:
    """``--serial``: a host count (``2``) or a percentage of the affected hosts (``25%``)."""
    if value is None:
        return None
    if not SERIAL.match(value):
        raise InputError(f"'{value[:20]}' is not a host count (1-9999) or a percentage "
                         "(1%-100%)", field="--serial")
    return value if value.endswith("%") else int(value)


@click.command()
@click.option("--scenario", "-s", required=True, help="Scenario id from the catalog.")
@click.option("--severity", help="Severity level of the configured scale (picks the ladder "
              "and the escalation window; see `incident-runner validate`).")
@click.option("--inventory", "-i", type=click.Path(path_type=Path), default=None,
              help="Inventory path (default: inventories/staging).")
@click.option("--limit", "-l", help="Limit to hosts matching this pattern.")
@click.option("--check", is_flag=True, help="Dry run: Ansible check + diff mode; change nothing.")
@click.option("--extra-var", "-e", "extra_vars", multiple=True, metavar="KEY=VALUE|@FILE|JSON",
              help="Extra variables as in ansible-playbook (repeatable): KEY=VALUE, @vars.yml "
                   "or a JSON object; passed to Ansible as data, never templated.")
@click.option("--force", is_flag=True,
              help="Act even when the symptom check finds the target healthy (said so in the "
                   "timeline and report).")
@click.option("--scenarios", "scenario_paths", multiple=True,
              type=click.Path(path_type=Path, file_okay=False),
              help="A folder of your own scenario files (repeatable; later folders override "
                   "shipped scenarios with the same id).")
@click.option("--alert-file", type=click.Path(path_type=Path, dir_okay=False), hidden=True,
              help="JSON of the alert that opened the incident (written by `serve`).")
@click.option("--yes", "-y", "assume_yes", is_flag=True, help="Approve destructive steps.")
@click.option("--drill", is_flag=True, hidden=True,
              help="Record the incident as a drill (set by `incident-runner drill`).")
@click.option("--timeout", "timeout", metavar="DURATION", default=None, type=Duration(),
              help="Time budget of the incident (90s, 15m, 1h; a bare number is seconds); "
                   "default: the config's safety.incident_timeout_minutes.")
@click.option("--vault-password-file", type=click.Path(path_type=Path), default=None,
              help="Passed to ansible-playbook; every vaulted value in the inventory is "
                   "masked in all output.")
@click.option("--serial", metavar="N|N%", default=None,
              help="Fleet scenarios on several hosts: act on at most N (or N% of the) affected "
                   "hosts per batch; a batch not resolved stops the rollout (docs/fleet.md).")
@click.option("--forks", type=click.IntRange(1, 500), default=None,
              help="Fleet scenarios: at most this many Ansible forks per step (default: the "
                   "scenario's fleet.forks, else one per host up to 50).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary on stdout.")
@click.option("-v", "--verbose", count=True, help="Ansible verbosity (-v .. -vvvv).")
@pipeline_options
@global_options
@click.pass_context
def remediate(ctx: click.Context, scenario: str, severity: str | None, inventory: Path | None,
              limit: str | None, check: bool, extra_vars: tuple[str, ...], assume_yes: bool,
              as_json: bool, verbose: int, drill: bool, timeout: float | None,
              vault_password_file: Path | None, pipeline: Pipeline, force: bool,
              scenario_paths: tuple[Path, ...], alert_file: Path | None,
              serial: str | None, forks: int | None) -> int:
    """Remediate SCENARIO: diagnose, climb the ladder, verify, escalate, report."""
    request = RemediateRequest(
        scenario=scenario, severity=severity, inventory=inventory or default_inventory(),
        limit=limit, check=check, extra_vars=parse_extra_vars(extra_vars),
        assume_yes=assume_yes, state_dir=ctx.obj.get("state_dir"), verbosity=verbose,
        drill=drill, force=force, scenario_paths=scenario_paths,
        config=ctx.obj.get("config"),
        timeout_seconds=timeout,
        vault_password_file=vault_password_file,
        ci=pipeline.context(), lock_timeout=pipeline.lock_timeout,
        alert=load_alert_file(alert_file) if alert_file is not None else {},
        state_url=ctx.obj.get("state_url"),
        serial=parse_serial(serial), forks=forks,
    )
    result = run_remediation(request, make_reporter(quiet=as_json))
    outputs = pipeline.publish(result)
    if as_json:
        click.echo(summary_json(result, outputs))
    else:
        click.echo(f"{result.incident_id}: {result.status} "
                   f"(exit {int(result.exit_code)}); report: {result.reports['markdown']}")
        pipeline.echo(outputs)
    return int(result.exit_code)

