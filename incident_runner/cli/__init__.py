"""The ``incident-runner`` command line: a thin layer over the API.

Only this layer turns exceptions into exit codes: 0 resolved, 1 remediation
failed, 2 bad input or usage, 3 escalated to a human.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import logging
import os
import sys

import click

from incident_runner import __version__
from incident_runner.errors import ExitCode, IncidentRunnerError

LOG = logging.getLogger("incident_runner")

# Subcommands by name -> "module:attribute", imported only when used: `remediate`
# does not pay for serve's web stack or the PostgreSQL driver.
COMMANDS = {
    "remediate": "incident_runner.cli.remediate:remediate",
    "scenarios": "incident_runner.cli.scenarios:scenarios",
    "validate": "incident_runner.cli.validate:validate",
    "incidents": "incident_runner.cli.incidents:incidents",
    "report": "incident_runner.cli.report:report",
    "stats": "incident_runner.cli.stats:stats",
    "drill": "incident_runner.cli.drill:drill",
    "mark-good": "incident_runner.cli.mark_good:mark_good",
    "serve": "incident_runner.cli.serve:serve",
    "db": "incident_runner.cli.db:db",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attr = target.split(":")
        command: click.Command = getattr(importlib.import_module(module), attr)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="incident-runner")
@click.option("--state-dir", type=click.Path(file_okay=False), envvar="INCIDENT_RUNNER_STATE_DIR",
              help="Where incidents are kept (default ./incidents).")
@click.option("--config", default=None, metavar="PATH",
              help="Config file (default: $INCIDENT_RUNNER_CONFIG, else ./incident-runner.yml, "
                   "else the project root's; without one the built-in preset p0-p3).")
@click.option("--state-url", default=None, metavar="URL",
              help="Share history, locks and flap-guard counts in PostgreSQL (postgresql://...; "
                   "default: $INCIDENT_RUNNER_STATE_URL, else the config's state_url, else "
                   "SQLite in the state dir).")
@click.option("--debug", is_flag=True, help="Log debug detail and show tracebacks.")
@click.pass_context
def cli(ctx: click.Context, state_dir: str | None, config: str | None, state_url: str | None,
        debug: bool) -> None:
    """Ansible-driven incident remediation: pick, run, verify, escalate, record, report."""
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = {"state_dir": state_dir, "config": config, "state_url": state_url, "debug": debug}




def main() -> None:
    """Console entry point: run the CLI, map errors to exit codes, never a traceback."""
    debug = "--debug" in sys.argv or bool(os.environ.get("INCIDENT_RUNNER_DEBUG"))
    try:
        code = cli.main(prog_name="incident-runner", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("incident-runner: aborted", err=True)
        sys.exit(int(ExitCode.FAILED))
    except click.ClickException as exc:
        exc.show()
        sys.exit(int(ExitCode.BAD_INPUT))
    except IncidentRunnerError as exc:
        message = " ".join(exc.message.split())  # one line, whatever the input contained
        click.echo(f"incident-runner: error: {message}", err=True)
        sys.exit(int(exc.code))
    except Exception as exc:
        if debug:
            raise
        click.echo(f"incident-runner: internal error: {type(exc).__name__}: {exc} "
                   "(rerun with --debug for the traceback)", err=True)
        sys.exit(int(ExitCode.FAILED))
    sys.exit(int(code or 0))


def console() -> None:
    """The installed command: ``main``, then exit without the interpreter's teardown.

    With Ansible's modules loaded, tearing the interpreter down costs ~0.15 s of CPU
    after the work is done; every incident, alert and drill paid it. The ``atexit``
    handlers still run (logging flushed and closed), the commands have closed their
    thread pools and child processes before returning, and everything the runner
    writes was written atomically before this point.
    """
    try:
        main()
        code: int | str | None = 0
    except SystemExit as exc:
        code = exc.code
    if isinstance(code, str):  # sys.exit("message"): as Python does it
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more to say
            stream.flush()
    os._exit(int(code or 0))
