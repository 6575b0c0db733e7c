"""Where the shipped content (playbooks, roles, scenarios) and the state live."""

from __future__ import annotations

import os
from pathlib import Path

STATE_DIR_ENV = "INCIDENT_RUNNER_STATE_DIR"
HOME_ENV = "INCIDENT_RUNNER_HOME"


def project_root() -> Path:
    """The directory holding playbooks/, roles/ and scenarios/.

    INCIDENT_RUNNER_HOME wins; otherwise the checkout the package was
    installed from (editable install), which is how the tool is deployed.
    """
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parent.parent


def playbooks_dir() -> Path:
    return project_root() / "playbooks"


def roles_dir() -> Path:
    return project_root() / "roles"


def scenarios_dir() -> Path:
    return project_root() / "scenarios"


def default_inventory() -> Path:
    return project_root() / "inventories" / "staging"


def state_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """Incident state: --state-dir, then $INCIDENT_RUNNER_STATE_DIR, then ./incidents."""
    if override:
        return Path(override)
    env = os.environ.get(STATE_DIR_ENV)
    return Path(env) if env else Path.cwd() / "incidents"
