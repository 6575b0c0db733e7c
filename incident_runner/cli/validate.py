"""``incident-runner validate [PATH...]``: check scenarios, the config and inventories."""

from __future__ import annotations

import json
from pathlib import Path

import click

from incident_runner.cli.options import global_options
from incident_runner.errors import ExitCode
from incident_runner.input_validation import validate_files


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
@global_options
@click.pass_context
def validate(ctx: click.Context, paths: tuple[Path, ...], as_json: bool) -> int:
    """Validate PATHs (scenario files, a config file, inventories) without running anything.

    With no PATH: every scenario in the catalog, the config file in effect and
    the default inventory. The kind of each PATH is detected: a .yml in a
    scenarios/ directory or with `ladders:` is a scenario, incident-runner.yml
    (or a file with only `severity:`/`default_severity:`) is a config, anything
    else is an inventory (checked with `ansible-inventory --list`). Exit 2 if
    any file is invalid; every file is reported.
    """
    report = validate_files(paths, config=(ctx.obj or {}).get("config"))
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        for check in report.checks:
            if check.ok:
                click.echo(f"ok       {check.kind:<9} {check.path}"
                           + (f"  ({check.detail})" if check.detail else ""))
                for note in check.notes:
                    click.echo(f"  note: {note}")
            else:
                click.echo(f"INVALID  {check.kind:<9} {check.error}", err=True)
        click.echo(f"{len(report.checks)} file(s) checked, {len(report.invalid)} invalid")
    return int(ExitCode.RESOLVED if report.ok else ExitCode.BAD_INPUT)
