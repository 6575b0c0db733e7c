"""``incident-runner scenarios``: list the catalog or show one scenario."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from incident_runner.cli.options import global_options
from incident_runner.config import load_config
from incident_runner.scenario import Scenario, catalog, find_scenario

SCENARIOS_OPTION = click.option(
    "--scenarios", "scenario_paths", multiple=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="A folder of your own scenario files (repeatable; later ones override).")


def _paths(ctx: click.Context, extra: tuple[Path, ...]) -> tuple[Path, ...]:
    return (*load_config(ctx.obj.get("config")).scenario_paths, *extra)


def _origin(s: Scenario) -> str:
    from incident_runner.paths import scenarios_dir  # noqa: PLC0415

    return "shipped" if s.source.parent.resolve() == scenarios_dir().resolve() else str(
        s.source.parent)


def as_dict(s: Scenario) -> dict[str, Any]:
    """Everything the runner will do: each step's vars and timeout, the checks."""
    return {
        "id": s.id, "title": s.title, "description": s.description, "source": str(s.source),
        "origin": _origin(s), "targets": {"hosts": s.hosts, "services": list(s.services)},
        "symptom": {"enabled": s.confirm, "reason": s.confirm_reason,
                    "checks": [asdict(c) for c in s.symptom_checks] or "the verify checks"},
        "ladders": {name: [{"name": st.name, "action": st.action, "vars": st.vars,
                            "timeout_s": st.timeout, "destructive": st.destructive,
                            "description": st.description} for st in steps]
                    for name, steps in s.ladders.items()},
        "verify": {"checks": [asdict(c) for c in s.verify.checks],
                   "playbook": s.verify.playbook, "vars": s.verify.vars,
                   "stabilisation_seconds": s.verify.stabilisation_seconds},
        "no_local_fix": s.no_local_fix, "escalation_reason": s.escalation_reason,
        "fleet": None if s.fleet is None else {
            "checks": [asdict(c) for c in s.fleet.checks], "serial": s.fleet.serial,
            "forks": s.fleet.forks},
        "platform": s.platform,
        "platforms": {p: as_dict(s.for_platform(p)) for p in s.platforms if p != s.platform},
    }


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@SCENARIOS_OPTION
@global_options
@click.pass_context
def scenarios(ctx: click.Context, as_json: bool, scenario_paths: tuple[Path, ...]) -> None:
    """List the scenario catalog (shipped and your own) and where each came from."""
    if ctx.invoked_subcommand:
        return
    found = catalog(_paths(ctx, scenario_paths))
    if as_json:
        click.echo(json.dumps([
            {"id": s.id, "title": s.title, "ladders": {k: [st.name for st in v]
                                                      for k, v in s.ladders.items()},
             "no_local_fix": s.no_local_fix, "platforms": list(s.platforms),
             "source": str(s.source), "origin": _origin(s)}
            for s in found.values()], indent=2))
        return
    for s in found.values():
        steps = " -> ".join(st.name for st in s.ladders["default"]) or "escalate (no local fix)"
        origin = "" if _origin(s) == "shipped" else f"  (from {_origin(s)})"
        also = f"  (also on: {', '.join(s.platforms[1:])})" if len(s.platforms) > 1 else ""
        click.echo(f"{s.id:20} {s.title}  [{steps}]{also}{origin}")


@scenarios.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@SCENARIOS_OPTION
@global_options
@click.pass_context
def show(ctx: click.Context, name: str, as_json: bool, scenario_paths: tuple[Path, ...]) -> None:
    """Show one scenario: its ladders, checks and escalation."""
    top = find_scenario(name, _paths(ctx, scenario_paths))
    if as_json:
        click.echo(json.dumps(as_dict(top), indent=2, default=str))
        return
    click.echo(f"{top.id}: {top.title}  ({_origin(top)}: {top.source})\n\n"
               f"{top.description.strip()}\n")
    click.echo(f"targets: {top.hosts} {', '.join(top.services)}")
    if not top.confirm:
        click.echo(f"symptom check: skipped ({top.confirm_reason})")
    for platform in top.platforms:
        s = top.for_platform(platform)
        if len(top.platforms) > 1:
            click.echo(f"\nplatform {platform}:")
        for level, steps in s.ladders.items():
            click.echo(f"ladder {level}:")
            for k, st in enumerate(steps, 1):
                flag = " [destructive]" if st.destructive else ""
                timeout = f", timeout {st.timeout}s" if st.timeout else ""
                click.echo(f"  {k}. {st.name}: {st.action}{flag}{timeout}")
        click.echo("verify:")
        for c in s.verify.checks:
            budget = f", p95<={c.p95_ms}ms" if c.p95_ms else ""
            click.echo(f"  - {c.name}: {c.url} -> {list(c.status)} x{c.successes}{budget}")
        if s.verify.playbook:
            click.echo(f"  - playbook {s.verify.playbook}")
        if s.fleet is not None:
            rolling = f", serial {s.fleet.serial}" if s.fleet.serial else ""
            click.echo(f"fleet (several hosts: each on its own{rolling}):")
            for c in s.fleet.checks:
                click.echo(f"  - {c.name}: {c.url} -> {list(c.status)} x{c.successes}")
        if s.no_local_fix:
            click.echo(f"escalation: no local fix: {s.escalation_reason}")
