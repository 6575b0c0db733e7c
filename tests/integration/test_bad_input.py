"""Bad input through the real CLI: exit 2, one line on stderr naming file and field, no traceback.

These run the installed ``incident-runner`` from the venv in a subprocess; none
needs a stack (every case fails before a playbook would run).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.stack import ROOT, VENV_BIN

pytestmark = pytest.mark.integration

FIXTURES = ROOT / "tests" / "fixtures" / "bad_input"
CLI = str(VENV_BIN / "incident-runner")


def run_cli(*args: str, cwd: Path, home: Path | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items()
               if k not in {"INCIDENT_RUNNER_HOME", "INCIDENT_RUNNER_CONFIG",
                            "INCIDENT_RUNNER_DEBUG"}}
    if home is not None:
        environ["INCIDENT_RUNNER_HOME"] = str(home)
    environ.update(env or {})
    return subprocess.run([CLI, *args], cwd=cwd, env=environ, capture_output=True, text=True,
                          timeout=120, check=False)


def assert_bad_input(proc: subprocess.CompletedProcess[str], *names: str) -> str:
    """Exit 2, exactly one stderr line that mentions every name, no traceback anywhere."""
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Traceback" not in out, out
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


@pytest.fixture
def state(_state_under_tmp: Path) -> Path:
    return _state_under_tmp


@pytest.fixture
def inventory() -> str:
    return str(ROOT / "inventories" / "staging")


def assert_no_incident(state: Path) -> None:
    assert not state.exists() or not any(state.iterdir()), "bad input must not open an incident"


@pytest.mark.parametrize(("scenario", "field"), [
    ("syntax-error", "line 8"),
    ("wrong-type", "ladders.default.0.timeout"),
    ("unknown-key", "targets.service"),
    ("missing-field", "title"),
    ("id-mismatch", "id"),
    ("not-a-mapping", "(top level)"),
    ("empty-ladder", "ladders.default"),
])
def test_malformed_scenario(tmp_path: Path, state: Path, inventory: str, scenario: str,
                            field: str) -> None:
    proc = run_cli("remediate", "--scenario", scenario, "--inventory", inventory,
                   cwd=tmp_path, home=FIXTURES)
    line = assert_bad_input(proc, f"scenarios/{scenario}.yml", f": {field}: ")
    assert line.startswith("incident-runner: error: ")
    assert_no_incident(state)


@pytest.mark.parametrize("scenario", ["syntax-error", "wrong-type", "unknown-key"])
def test_malformed_scenario_via_validate(tmp_path: Path, scenario: str) -> None:
    path = FIXTURES / "scenarios" / f"{scenario}.yml"
    proc = run_cli("validate", str(path), cwd=tmp_path)
    assert_bad_input(proc, str(path), "INVALID")


def test_unknown_scenario(tmp_path: Path, state: Path, inventory: str) -> None:
    proc = run_cli("remediate", "--scenario", "no-such-scenario", "--inventory", inventory,
                   cwd=tmp_path)
    assert_bad_input(proc, str(ROOT / "scenarios"), "--scenario", "no-such-scenario",
                     "proxy-502")
    assert_no_incident(state)


def test_unknown_severity(tmp_path: Path, state: Path, inventory: str) -> None:
    proc = run_cli("remediate", "--scenario", "proxy-502", "--severity", "SEV-1",
                   "--inventory", inventory, cwd=tmp_path)
    line = assert_bad_input(proc, str(ROOT / "incident-runner.yml"), "--severity", "'SEV-1'")
    assert "P0, P1, P2, P3" in line
    assert_no_incident(state)


def test_unknown_severity_for_the_configured_preset(tmp_path: Path, state: Path,
                                                   inventory: str) -> None:
    config = tmp_path / "ir.yml"
    config.write_text("severity:\n  preset: sev-1-sev-3\n")
    proc = run_cli("--config", str(config), "remediate", "--scenario", "proxy-502",
                   "--severity", "P0", "--inventory", inventory, cwd=tmp_path)
    line = assert_bad_input(proc, str(config), "--severity")
    assert "SEV-1, SEV-2, SEV-3" in line
    assert_no_incident(state)


def test_missing_inventory(tmp_path: Path, state: Path) -> None:
    missing = tmp_path / "no-inventory"
    proc = run_cli("remediate", "--scenario", "proxy-502", "--inventory", str(missing),
                   cwd=tmp_path)
    assert_bad_input(proc, str(missing), "--inventory", "inventory not found")
    assert_no_incident(state)


def test_broken_inventory_via_validate(tmp_path: Path) -> None:
    path = FIXTURES / "inventories" / "broken.ini"
    proc = run_cli("validate", str(path), cwd=tmp_path)
    assert_bad_input(proc, str(path), "inventory:")


def test_broken_group_vars_name_the_file(tmp_path: Path) -> None:
    inv = tmp_path / "inv"
    (inv / "group_vars").mkdir(parents=True)
    (inv / "hosts.yml").write_text((ROOT / "inventories/staging/hosts.yml").read_text())
    (inv / "group_vars" / "all.yml").write_text("stack_project: [unclosed\n")
    proc = run_cli("validate", str(inv), cwd=tmp_path)
    assert_bad_input(proc, str(inv / "group_vars" / "all.yml"), "line 2", "invalid YAML")


@pytest.mark.parametrize(("arg", "words"), [
    ("novalue", "expected KEY=VALUE"),
    ("1bad=x", "not a valid variable name"),
])
def test_bad_extra_var(tmp_path: Path, state: Path, inventory: str, arg: str,
                       words: str) -> None:
    proc = run_cli("remediate", "--scenario", "proxy-502", "--inventory", inventory,
                   "-e", arg, cwd=tmp_path)
    assert_bad_input(proc, "-e", words)
    assert_no_incident(state)


@pytest.mark.parametrize(("config", "field"), [
    ("syntax-error", "line 4"),
    ("unknown-preset", "severity.preset"),
    ("wrong-type", "severity.levels.0.contacts"),
    ("unknown-key", "severty"),
    ("bad-default", "default_severity"),
    ("incomplete-level", "severity.levels.0"),
])
def test_bad_config(tmp_path: Path, state: Path, inventory: str, config: str,
                    field: str) -> None:
    path = FIXTURES / "configs" / f"{config}.yml"
    proc = run_cli("--config", str(path), "remediate", "--scenario", "proxy-502",
                   "--inventory", inventory, cwd=tmp_path)
    assert_bad_input(proc, str(path), f": {field}: ")
    assert_no_incident(state)
    # the same file found through the environment, and through validate
    proc = run_cli("remediate", "--scenario", "proxy-502", "--inventory", inventory,
                   cwd=tmp_path, env={"INCIDENT_RUNNER_CONFIG": str(path)})
    assert_bad_input(proc, str(path), f": {field}: ")
    proc = run_cli("--config", str(path), "validate", cwd=ROOT)
    assert_bad_input(proc, str(path), f": {field}: ")


def test_missing_config(tmp_path: Path, inventory: str) -> None:
    proc = run_cli("--config", str(tmp_path / "nope.yml"), "remediate", "--scenario",
                   "proxy-502", "--inventory", inventory, cwd=tmp_path)
    assert_bad_input(proc, "nope.yml", "--config", "config file not found")
    proc = run_cli("remediate", "--scenario", "proxy-502", "--inventory", inventory,
                   cwd=tmp_path, env={"INCIDENT_RUNNER_CONFIG": str(tmp_path / "gone.yml")})
    assert_bad_input(proc, "gone.yml", "$INCIDENT_RUNNER_CONFIG")


def test_validate_reports_every_file_and_exits_2(tmp_path: Path) -> None:
    files = [FIXTURES / "scenarios" / "valid.yml", FIXTURES / "scenarios" / "wrong-type.yml",
             FIXTURES / "configs" / "bad-default.yml", ROOT / "inventories" / "staging"]
    proc = run_cli("validate", *map(str, files), cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 2  # one line per invalid file
    assert proc.stdout.count("ok ") == 2
    assert "4 file(s) checked, 2 invalid" in proc.stdout


def test_validate_the_shipped_project_is_clean() -> None:
    proc = run_cli("validate", cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 invalid" in proc.stdout
    for kind in ("scenario", "config", "inventory"):
        assert f" {kind} " in proc.stdout


# -- issue 11's new inputs: each names its file or field, exit 2, nothing opened ---------------
def test_new_flags_and_files_are_checked(tmp_path: Path, state: Path, inventory: str) -> None:
    broken_vars = tmp_path / "vars.yml"
    broken_vars.write_text("a: [unclosed\n")
    list_vars = tmp_path / "list.yml"
    list_vars.write_text("- not\n- a mapping\n")
    bad_alert = tmp_path / "alert.json"
    bad_alert.write_text("[1, 2]")
    config = tmp_path / "broken-config.yml"  # not ./incident-runner.yml: that is discovered
    config.write_text("scenario_paths: [no-such-folder]\n")
    remediate = ("remediate", "--scenario", "proxy-502", "--inventory", inventory)
    cases: list[tuple[tuple[str, ...], tuple[str, ...]]] = [
        ((*remediate, "-e", f"@{tmp_path / 'missing.yml'}"), ("missing.yml", "-e")),
        ((*remediate, "-e", f"@{broken_vars}"), ("vars.yml", "-e", "line")),
        ((*remediate, "-e", f"@{list_vars}"), ("list.yml", "mapping")),
        ((*remediate, "-e", '{"broken": '), ("-e", "JSON")),
        ((*remediate, "-e", '{"bad name": 1}'), ("-e", "bad name")),
        ((*remediate, "--scenarios", str(tmp_path / "nowhere")), ("nowhere", "--scenarios")),
        ((*remediate, "--timeout", "5 parsecs"), ("--timeout", "5 parsecs")),
        ((*remediate, "--lock-timeout", "soon"), ("--lock-timeout", "soon")),
        ((*remediate, "--alert-file", str(bad_alert)), ("alert.json", "--alert-file")),
        (("--config", str(config), *remediate), ("broken-config.yml", "scenario_paths.0")),
        ((*remediate, "--config", str(config)), ("broken-config.yml", "scenario_paths.0")),
        (("incidents", "--since", "yesterday-ish"), ("--since", "yesterday-ish")),
    ]
    for args, names in cases:
        assert_bad_input(run_cli(*args, cwd=tmp_path), *names)
    assert not list(state.glob("INC-*")), "bad input must not open an incident"


def test_global_options_after_the_subcommand(tmp_path: Path) -> None:
    """--state-dir after the subcommand is the same as before it."""
    before = run_cli("--state-dir", str(tmp_path / "s"), "incidents", "--json", cwd=tmp_path)
    after = run_cli("incidents", "--json", "--state-dir", str(tmp_path / "s"), cwd=tmp_path)
    assert before.returncode == after.returncode == 0, before.stderr + after.stderr
    assert before.stdout == after.stdout == "[]\n"
