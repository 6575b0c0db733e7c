"""``incident-runner drill``: break a staging stack on purpose, remediate it, time it."""

from __future__ import annotations

import json
from pathlib import Path

import click

from incident_runner.cli.options import global_options
from incident_runner.drill import (
    DEFAULT_TIMEOUT_S,
    DrillRequest,
    DrillResult,
    available_drills,
    markdown,
    run_drills,
    table,
)
from incident_runner.errors import ExitCode, InputError
from incident_runner.fsutil import write_atomic


@click.command()
@click.option("--scenario", "-s", "scenarios", multiple=True, metavar="NAME",
              help="Drill this scenario (repeatable).")
@click.option("--all", "run_all", is_flag=True, help="Drill every scenario that has a drill.")
@click.option("--jobs", "-j", type=click.IntRange(1, 8), default=1, show_default=True,
              help="Drills run at a time (each has its own stack and port).")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=30), default=DEFAULT_TIMEOUT_S,
              show_default=True, help="Seconds one drill may take before it is stopped.")
@click.option("--markdown", "markdown_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write the results as a markdown table (e.g. docs/drills.md).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON on stdout.")
@click.option("--list", "list_only", is_flag=True, help="List the drills and exit.")
@global_options
@click.pass_context
def drill(ctx: click.Context, scenarios: tuple[str, ...], run_all: bool, jobs: int,
          timeout_s: float, markdown_path: Path | None, as_json: bool, list_only: bool) -> int:
    """Drill scenarios: inject the real fault on a stack of their own, remediate, verify, time.

    Runs the steps of each drill's molecule scenario (molecule/drill-NAME:
    create, side_effect, converge, verify in one ansible-playbook, then
    destroy) and records its incident as a drill (see `stats`), with the time
    from the fault injection to detection, first action and verified recovery.
    Exit 0 when every drill ended as expected (recovered, or escalated for a
    scenario with no local fix); 1 when any did not (not recovered, fault not
    injected, verify failed, error); 2 for bad input.
    """
    if list_only:
        click.echo("\n".join(available_drills()))
        return int(ExitCode.RESOLVED)
    if bool(scenarios) == run_all:
        raise InputError("give --scenario NAME (repeatable) or --all", field="drill")
    request = DrillRequest(scenarios=scenarios, state_dir=ctx.obj.get("state_dir"), jobs=jobs,
                           timeout_s=timeout_s)

    def progress(name: str, result: DrillResult | None) -> None:
        if result is None:
            click.echo(f"drill {name}: started", err=True)
        else:
            click.echo(f"drill {name}: {result.outcome} in {result.total_s or 0:.0f}s"
                       + ("" if result.ok else f" ({result.reason[:200]})"), err=True)

    run = run_drills(request, on_event=progress)
    if markdown_path is not None:
        command = "incident-runner drill " + (
            "--all" if run_all else " ".join(f"--scenario {s}" for s in scenarios)) + (
            f" --jobs {jobs}" if jobs > 1 else "") + f" --markdown {markdown_path}"
        write_atomic(markdown_path, markdown(run, command), mode=0o644)
    if as_json:
        click.echo(json.dumps(run.as_dict(), indent=2))
    else:
        click.echo(table(run.results))
        failed = [r for r in run.results if not r.ok]
        click.echo(f"\n{len(run.results) - len(failed)} of {len(run.results)} drill(s) passed "
                   f"in {run.duration_s:.0f}s; logs: {run.dir}")
    return int(ExitCode.RESOLVED if run.ok else ExitCode.FAILED)
