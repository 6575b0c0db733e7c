"""``incident-runner db``: the shared state database (PostgreSQL, see docs/postgres.md)."""

from __future__ import annotations

import click

from incident_runner.cli.options import global_options
from incident_runner.config import load_config
from incident_runner.errors import InputError
from incident_runner.store import resolve_state_url


@click.group()
def db() -> None:
    """The PostgreSQL state database (state_url): schema upgrades."""


@db.command()
@global_options
@click.pass_context
def upgrade(ctx: click.Context) -> None:
    """Apply the pending schema migrations (safe to run again, and from several places)."""
    from incident_runner.store.postgres import check_url, describe_url  # noqa: PLC0415
    from incident_runner.store.postgres import upgrade as apply  # noqa: PLC0415

    obj = ctx.obj or {}
    url, source, field = resolve_state_url(obj.get("state_url"),
                                           load_config(obj.get("config")))
    if url is None:
        raise InputError("no state database: give --state-url, $INCIDENT_RUNNER_STATE_URL or "
                         "state_url in incident-runner.yml (SQLite needs no upgrade)",
                         field="--state-url")
    url = check_url(url, source or None, field)
    before, after, applied = apply(url)
    done = f"applied {', '.join(applied)}" if applied else "nothing to apply"
    click.echo(f"{describe_url(url)}: schema version {before} -> {after} ({done})")
