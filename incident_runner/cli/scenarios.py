"""``incident-runner scenarios``: list the catalog or show one scenario."""

from __future__ import annotations

import json

import click

from incident_runner.scenario import catalog, find_scenario


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def scenarios(ctx: click.Context, as_json: bool) -> None:
    """List the scenario catalog."""
    if ctx.invoked_subcommand:
        return
    found = catalog()
    if as_json:
        click.echo(json.dumps([
            {"id": s.id, "title": s.title, "ladders": {k: [st.name for st in v]
                                                      for k, v in s.ladders.items()},
             "no_local_fix": s.no_local_fix, "platforms": list(s.platforms),
             "source": str(s.source)}
            for s in found.values()], indent=2))
        return
    for s in found.values():
        steps = " -> ".join(st.name for st in s.ladders["default"]) or "escalate (no local fix)"
        also = f"  (also on: {', '.join(s.platforms[1:])})" if len(s.platforms) > 1 else ""
        click.echo(f"{s.id:20} {s.title}  [{steps}]{also}")


@scenarios.command("show")
@click.argument("name")
def show(name: str) -> None:
    """Show one scenario: its ladders, checks and escalation."""
    top = find_scenario(name)
    click.echo(f"{top.id}: {top.title}\n\n{top.description.strip()}\n")
    click.echo(f"targets: {top.hosts} {', '.join(top.services)}")
    for platform in top.platforms:
        s = top.for_platform(platform)
        if len(top.platforms) > 1:
            click.echo(f"\nplatform {platform}:")
        for level, steps in s.ladders.items():
            click.echo(f"ladder {level}:")
            for k, st in enumerate(steps, 1):
                flag = " [destructive]" if st.destructive else ""
                click.echo(f"  {k}. {st.name}: {st.action}{flag}")
        click.echo("verify:")
        for c in s.verify.checks:
            budget = f", p95<={c.p95_ms}ms" if c.p95_ms else ""
            click.echo(f"  - {c.name}: {c.url} -> {list(c.status)} x{c.successes}{budget}")
        if s.verify.playbook:
            click.echo(f"  - playbook {s.verify.playbook}")
        if s.no_local_fix:
            click.echo(f"escalation: no local fix: {s.escalation_reason}")
