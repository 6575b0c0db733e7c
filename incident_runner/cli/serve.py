"""``incident-runner serve``: take alerts over HTTP and remediate them (docs/alerts.md)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from incident_runner.config import load_config
from incident_runner.errors import InputError
from incident_runner.paths import state_dir as resolve_state_dir
from incident_runner.scenario import catalog
from incident_runner.serve.intake import INTAKE_FILE
from incident_runner.serve.settings import load_settings, read_token
from incident_runner.store import resolve_state_url

LOG = logging.getLogger(__name__)


@click.command()
@click.option("--listen", metavar="HOST:PORT", default=None,
              help="Bind address (default: serve.listen, else 127.0.0.1:18900).")
@click.option("--token-file", type=click.Path(path_type=Path), default=None,
              help="File holding the bearer token clients must send (overrides the config).")
@click.option("--insecure-no-auth", is_flag=True,
              help="Accept requests without a token; only on a loopback bind.")
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Incidents run at once (default: serve.workers, else 2).")
@click.option("--queue-max", type=click.IntRange(1, 100000), default=None,
              help="Incidents waiting for a worker before new ones get 429 (default 100).")
@click.option("--approve-destructive", is_flag=True, default=None,
              help="Pass --yes to every remediation: destructive steps run unattended.")
@click.pass_context
def serve(ctx: click.Context, listen: str | None, token_file: Path | None,
          insecure_no_auth: bool, workers: int | None, queue_max: int | None,
          approve_destructive: bool | None) -> int:
    """Take alerts (Alertmanager webhook, generic JSON) and remediate them."""
    import uvicorn  # noqa: PLC0415  (only this command needs the server)

    from incident_runner.serve.app import Server  # noqa: PLC0415

    config = ctx.obj.get("config")
    settings = load_settings(config).with_flags(
        listen=listen, token_file=token_file.resolve() if token_file else None,
        workers=workers, queue_max=queue_max, approve_destructive=approve_destructive or None,
        insecure_no_auth=insecure_no_auth or None)
    if token_file is not None:  # the flag wins over a token_env from the config
        settings = settings.with_flags(token_env="")
    if ":" not in settings.listen or not settings.listen.rsplit(":", 1)[1].isdigit():
        raise InputError(f"expected HOST:PORT, got {settings.listen[:60]!r}", field="--listen")
    token = read_token(settings)
    loaded = load_config(config)
    levels = {lv.name.casefold(): lv.name for lv in loaded.scale.levels}
    scenarios = catalog(loaded.scenario_paths)
    routed = sorted(s.id for s in scenarios.values() if s.match)
    state = resolve_state_dir(ctx.obj.get("state_dir")).resolve()
    url, source, field = resolve_state_url(ctx.obj.get("state_url"), loaded)
    intake = f"intake {state / INTAKE_FILE}"
    if url is not None:  # the intake is shared by every serve instance on that database
        from incident_runner.store.postgres import check_url, describe_url  # noqa: PLC0415

        url = check_url(url, source or None, field)  # bad URL: exit 2
        intake = f"shared intake in {describe_url(url)}"
    server = Server(settings, token, state, scenarios, levels, config, url)  # down: exit 1
    click.echo(f"incident-runner serve on http://{settings.listen} "
               f"(state {state}, {intake}, {settings.workers} workers, scenarios with match: "
               f"{', '.join(routed) or 'none'})", err=True)
    uvicorn.run(server.app(), host=settings.host, port=settings.port, log_level="warning",
                access_log=False, lifespan="on")
    return 0
