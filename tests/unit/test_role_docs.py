"""scripts/role_docs.py: role README variable tables match meta/argument_specs.yml."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("role_docs", ROOT / "scripts" / "role_docs.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["role_docs"] = module
    spec.loader.exec_module(module)
    return module


role_docs = _load()


def test_repo_readmes_match_their_argument_specs(capsys: pytest.CaptureFixture[str]) -> None:
    rc = role_docs.main(["--check"])
    assert rc == 0, capsys.readouterr().err


def test_every_remediation_role_has_a_generated_table() -> None:
    for role in ("reconnect_networks", "restart_containers", "scale_service",
                 "health_check", "notify"):
        assert role_docs.BEGIN in (ROOT / "roles" / role / "README.md").read_text(), role


@pytest.fixture
def roles(tmp_path: Path) -> Path:
    role = tmp_path / "roles" / "demo"
    (role / "meta").mkdir(parents=True)
    shutil.copy(ROOT / "roles/reconnect_networks/meta/argument_specs.yml", role / "meta")
    (role / "README.md").write_text("# demo\n\n## Variables\n\n| a | b |\n|---|---|\n| x | y |\n"
                                    "\nAfter the table.\n\n## Example\n\ntext\n")
    return tmp_path / "roles"


def test_write_adds_markers_then_check_passes_and_catches_drift(roles: Path) -> None:
    readme = roles / "demo" / "README.md"
    assert role_docs.main(["--check"], roles_dir=roles) == 0  # unmarked: not checked
    assert role_docs.main(["--write", "demo"], roles_dir=roles) == 0
    text = readme.read_text()
    assert "| x | y |" not in text
    assert "After the table." in text and "## Example" in text
    assert "| `reconnect_networks_container` | str | (required) |" in text
    assert "| `reconnect_networks_restart` | bool | `false` |" in text
    assert role_docs.main(["--check"], roles_dir=roles) == 0

    spec = roles / "demo" / "meta" / "argument_specs.yml"
    spec.write_text(spec.read_text().replace("default: false", "default: true"))
    assert role_docs.main(["--check"], roles_dir=roles) == 1
    assert role_docs.main(["--write"], roles_dir=roles) == 0
    assert "| `reconnect_networks_restart` | bool | `true` |" in readme.read_text()
    assert role_docs.main(["--check"], roles_dir=roles) == 0


def test_bad_spec_and_unknown_role_exit_2(roles: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert role_docs.main(["--write", "nope"], roles_dir=roles) == 2
    assert "no such role: nope" in capsys.readouterr().err
    (roles / "demo" / "meta" / "argument_specs.yml").write_text("argument_specs: {}\n")
    assert role_docs.main(["--check"], roles_dir=roles) == 2
    assert "roles/demo/meta/argument_specs.yml" in capsys.readouterr().err
