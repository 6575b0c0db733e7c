"""``incident-runner mark-good [COMMIT]``: record a verified deploy as the last good one."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from incident_runner import ci
from incident_runner.deploy import mark_good as record_good
from incident_runner.errors import InputError
from incident_runner.paths import default_inventory


@click.command("mark-good")
@click.argument("commit", required=False)
@click.option("--env", help="Environment (default: the inventory's stack_env).")
@click.option("--repo", metavar="PATH",
              help="Deploy-source checkout on the hosts (default: the inventory's "
                   "stack_deploy_src).")
@click.option("--inventory", "-i", type=click.Path(path_type=Path), default=None,
              help="Inventory path (default: inventories/staging).")
@click.option("--hosts", default="all", show_default=True,
              help="Host pattern whose deploy sources are marked.")
@click.option("--limit", "-l", help="Limit to hosts matching this pattern.")
@click.option("--from-ci", "from_ci", is_flag=True,
              help="Name the CI run (GitHub Actions / GitLab CI) in the reflog message.")
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON.")
def mark_good(commit: str | None, env: str | None, repo: str | None, inventory: Path | None,
              hosts: str, limit: str | None, from_ci: bool, as_json: bool) -> None:
    """Record COMMIT (default: the checkout's HEAD) as the last good deploy.

    Run it after a deploy passed its health check. It points
    refs/deploy/good/<env> in the deploy source at COMMIT; that is the commit
    the bad-deploy scenario rolls back to. The previous good commit stays in
    the ref's reflog and under refs/deploy/good-history/<env>/. Runs through
    Ansible on the inventory's hosts, where the deploy source lives.
    """
    message = "incident-runner mark-good"
    if from_ci:
        message += f" from {ci.describe(ci.from_environment())}"
    inventory = inventory or default_inventory()
    if not inventory.exists():
        raise InputError("inventory not found", source=str(inventory), field="--inventory")
    marks = record_good(inventory.resolve(), commit=commit,
                        env=env, repo=repo, hosts=hosts, limit=limit, message=message)
    if as_json:
        click.echo(json.dumps([asdict(m) for m in marks], indent=2))
        return
    for mark in marks:
        click.echo(mark.line())
