"""The Ansible side of the runner's environment, in one place: tool paths and env vars.

Every Ansible process the runner starts (playbooks through ansible-runner,
``ansible-inventory`` for validation) gets its tools and environment here.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from incident_runner import playbook_guard
from incident_runner.errors import ExecutionError
from incident_runner.paths import project_root, roles_dir

CHECK_CALLBACK = "incident_runner_check"
CALLBACK_DIR = Path(__file__).resolve().parent / "ansible_plugins" / "callback"


def ansible_tool(name: str) -> str:
    """``ansible-playbook``, ``ansible-inventory``: beside the runner's Python (its venv),
    else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if not found:
        raise ExecutionError(f"{name} not found beside the runner's Python nor on PATH")
    return found


def base_env() -> dict[str, str]:
    """What every Ansible process of ours runs with (merged over the caller's environment)."""
    venv_bin = str(Path(sys.executable).parent)
    return {
        # ansible-runner runs ansible-playbook from PATH: use the one beside us.
        "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
        "ANSIBLE_CONFIG": str(project_root() / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(roles_dir()),
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        # Module files carry their arguments (secrets included): never leave them behind,
        # and pipe modules instead of writing them (a killed run leaves no AnsiballZ files).
        "ANSIBLE_KEEP_REMOTE_FILES": "0",
        "ANSIBLE_PIPELINING": os.environ.get("ANSIBLE_PIPELINING", "True"),
    }


def install_guard(private: Path) -> Path:
    """``private/bin/ansible-playbook``: the guard, run by this Python (-IS: stdlib only)."""
    bin_dir = private / "bin"
    bin_dir.mkdir(mode=0o700)
    guard = bin_dir / "ansible-playbook"
    source = Path(playbook_guard.__file__).read_text(encoding="utf-8")
    guard.write_text(f"#!{sys.executable} -IS\n{source}", encoding="utf-8")
    guard.chmod(0o700)
    return bin_dir


def playbook_env(private: Path, impact_file: Path | None = None) -> dict[str, str]:
    """A playbook run's env: the guard first on PATH (it is what ansible-runner starts as
    ansible-playbook); with ``impact_file``, check mode's callback records there."""
    env = base_env()
    env.update({
        "PATH": str(private / "bin") + os.pathsep + env["PATH"],
        playbook_guard.REAL_ENV: ansible_tool("ansible-playbook"),
        playbook_guard.PARENT_ENV: str(os.getpid()),
        playbook_guard.PRIVATE_ENV: str(private),
        # Ansible's controller-side temp files go away with the private dir.
        "ANSIBLE_LOCAL_TEMP": str(private / "tmp"),
    })
    if impact_file is not None:
        enabled = [n for n in os.environ.get("ANSIBLE_CALLBACKS_ENABLED", "").split(",") if n]
        plugins = [p for p in os.environ.get("ANSIBLE_CALLBACK_PLUGINS", "").split(os.pathsep)
                   if p]
        env.update({
            "ANSIBLE_CALLBACKS_ENABLED": ",".join([*enabled, CHECK_CALLBACK]),
            "ANSIBLE_CALLBACK_PLUGINS": os.pathsep.join([*plugins, str(CALLBACK_DIR)]),
            "IR_CHECK_IMPACT_FILE": str(impact_file),
        })
    return env
