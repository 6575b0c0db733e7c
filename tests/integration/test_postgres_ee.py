"""Issue 16: the AWX/AAP execution environment definition builds a context offline.

``ansible-builder create`` needs no registry; building the image does (docs/awx.md)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.stack import ROOT, VENV_BIN, env

pytestmark = [pytest.mark.integration]


def test_ansible_builder_create_writes_a_context_with_the_runner(tmp_path: Path) -> None:
    context = tmp_path / "context"
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-builder"), "create", "-f", "execution-environment.yml",
         "-c", str(context), "--output-filename", "Containerfile"],
        cwd=ROOT, env=env(), capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    containerfile = (context / "Containerfile").read_text()
    assert "pip install --no-cache-dir /opt/incident-runner" in containerfile
    assert "ENV INCIDENT_RUNNER_HOME=/opt/incident-runner" in containerfile
    build = context / "_build"
    shipped = build / "incident-runner"
    for name in ("pyproject.toml", "ansible.cfg", "incident_runner/store/migrations",
                 "roles", "playbooks/awx_incident.yml", "scenarios"):
        assert (shipped / name).exists(), name
    assert not (shipped / ".venv").exists()
    galaxy = yaml.safe_load((build / "requirements.yml").read_text())
    assert {c["name"] for c in galaxy["collections"]} >= {"community.docker", "ansible.posix"}
    assert "psycopg[binary]" in (build / "requirements.txt").read_text()
    assert "openssh-client" in (build / "bindep.txt").read_text()
