"""Platforms: the inventory's incident_runner_platform picks a scenario's ladder."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from incident_runner.errors import InputError
from incident_runner.paths import scenarios_dir
from incident_runner.platform import platform_of
from incident_runner.scenario import catalog, find_scenario, parse_scenario

SYSTEMD_SCENARIOS = ("service-down", "oom", "port-conflict", "bad-deploy", "dependency-down")


def _write(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def test_group_var_in_the_hosts_file(tmp_path: Path) -> None:
    _write(tmp_path / "hosts.yml", {"all": {"children": {"staging": {
        "hosts": {"vm1": {}, "vm2": {}}, "vars": {"incident_runner_platform": "systemd"}}}}})
    assert platform_of(tmp_path, "staging") == "systemd"
    assert platform_of(tmp_path, "vm1") == "systemd"
    assert platform_of(tmp_path, "absent-group") == "docker"


def test_group_vars_dir_and_host_override(tmp_path: Path) -> None:
    _write(tmp_path / "hosts.yml", {"all": {"children": {"web": {"children": {"staging": {
        "hosts": {"vm1": {}}}}}}}})
    assert platform_of(tmp_path, "staging") == "docker"
    _write(tmp_path / "group_vars" / "web.yml", {"incident_runner_platform": "systemd"})
    assert platform_of(tmp_path, "staging") == "systemd"
    # The deeper group wins over its parent.
    _write(tmp_path / "group_vars" / "staging" / "p.yml", {"incident_runner_platform": "docker"})
    assert platform_of(tmp_path, "staging") == "docker"


def test_mixed_platforms_in_one_incident_are_refused(tmp_path: Path) -> None:
    _write(tmp_path / "hosts.yml", {"all": {"children": {"staging": {"hosts": {
        "vm1": {"incident_runner_platform": "systemd"}, "local": {}}}}}})
    with pytest.raises(InputError, match=r"different platforms \(local=docker, vm1=systemd\)"):
        platform_of(tmp_path, "staging")


def test_ini_inventory_falls_back_to_ansible_inventory(tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[staging]\nvm1\n\n[staging:vars]\nincident_runner_platform=systemd\n")
    assert platform_of(inventory, "staging") == "systemd"


def test_shipped_inventories() -> None:
    root = scenarios_dir().parent / "inventories"
    assert platform_of(root / "staging", "staging") == "docker"
    assert platform_of(root / "systemd-staging", "staging") == "systemd"


@pytest.mark.parametrize("name", SYSTEMD_SCENARIOS)
def test_catalog_scenarios_have_a_systemd_ladder(name: str) -> None:
    top = find_scenario(name)
    systemd = top.for_platform("systemd")
    assert top.platforms == ("docker", "systemd")
    assert systemd.platform == "systemd" and systemd.ladders["default"]
    assert not systemd.no_local_fix
    assert systemd.diagnostics_role == "systemd_diagnostics"
    assert all(step.role and step.role.startswith("systemd_")
               for step in systemd.ladders["default"])
    assert top.for_platform("docker") is top  # the top level is the docker platform


def test_unknown_platform_is_bad_input() -> None:
    with pytest.raises(InputError, match="no ladder for platform 'k8s'"):
        find_scenario("proxy-502").for_platform("k8s")
    assert catalog()  # scenarios without platforms still load


def test_platform_may_not_redefine_docker(tmp_path: Path) -> None:
    data = yaml.safe_load((scenarios_dir() / "oom.yml").read_text())
    data["platforms"]["docker"] = data["platforms"]["systemd"]
    with pytest.raises(InputError, match="platforms"):
        parse_scenario(data, tmp_path / "oom.yml")
