"""The remediation roles' modules: their argument specs equal the roles' meta/argument_specs.yml
(the module validates its own input, so both document and check the same thing), and their
pure logic (input checks, network lists). Real Docker behaviour is tested by the molecule
scenarios (tests/integration/test_molecule.py)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from incident_runner import local_module
from incident_runner.plays import SELF_VALIDATING_ROLES

ROOT = Path(__file__).resolve().parents[2]
MODULES = {
    "reconnect_networks": "network_attach",
    "restart_containers": "container_restart",
    "scale_service": "service_scale",
}


def test_the_runner_skips_validation_only_for_these_roles() -> None:
    # role_play turns Ansible's validation task off for these: their module must check
    # the same spec (the test below), or bad input would go unchecked.
    assert set(MODULES) == SELF_VALIDATING_ROLES


def _load(role: str) -> ModuleType:
    # The runner's loader: module_utils (docker_engine) importable as Ansible ships them.
    path = ROOT / "roles" / role / "library" / f"{MODULES[role]}.py"
    return local_module.load(path, MODULES[role])


def _role_spec(role: str) -> dict[str, dict[str, Any]]:
    data = yaml.safe_load((ROOT / "roles" / role / "meta/argument_specs.yml").read_text())
    options: dict[str, dict[str, Any]] = data["argument_specs"]["main"]["options"]
    return options


@pytest.mark.parametrize("role", sorted(MODULES))
def test_module_argument_spec_equals_the_role_spec(role: str) -> None:
    keys = ("type", "elements", "required", "default", "choices")
    role_spec = {name: {k: v for k, v in opt.items() if k in keys}
                 for name, opt in _role_spec(role).items()}
    module_spec = {name: {k: v for k, v in opt.items() if k in keys}
                   for name, opt in _load(role).ARGUMENT_SPEC.items()}
    for spec in (role_spec, module_spec):  # required: false is the default
        for opt in spec.values():
            if opt.get("required") is False:
                del opt["required"]
    assert module_spec == role_spec


@pytest.mark.parametrize("role", sorted(MODULES))
def test_role_defaults_equal_the_spec_defaults(role: str) -> None:
    defaults = yaml.safe_load((ROOT / "roles" / role / "defaults/main.yml").read_text())
    for name, opt in _role_spec(role).items():
        assert name in defaults, f"{role}: {name} has no default in defaults/main.yml"
        if "default" in opt:
            assert defaults[name] == opt["default"], name


def test_wanted_networks_normalises_and_names_bad_items() -> None:
    rn = _load("reconnect_networks")
    assert rn.wanted_networks(["a", {"name": "b", "aliases": ["proxy"]}]) == [
        {"name": "a", "aliases": []}, {"name": "b", "aliases": ["proxy"]}]
    with pytest.raises(ValueError, match="reconnect_networks_networks: 3 is neither"):
        rn.wanted_networks(["a", 3])
    with pytest.raises(ValueError, match="aliases of b must be a list"):
        rn.wanted_networks([{"name": "b", "aliases": "proxy"}])


def _scale_params(**over: Any) -> dict[str, Any]:
    ss = _load("scale_service")
    params = {name: opt.get("default") for name, opt in ss.ARGUMENT_SPEC.items()}
    return params | {"scale_service_container": "api-1"} | over


@pytest.mark.parametrize(("over", "message"), [
    ({"scale_service_replicas": 9},
     "scale_service_replicas: 9 is above scale_service_max_replicas (4)"),
    ({"scale_service_replicas": 0}, "0 stops every replica (containment)"),
    ({"scale_service_replicas": 0, "scale_service_allow_zero": True}, ""),
    ({"scale_service_memory": "2g"},
     "scale_service_memory: 2g is above scale_service_max_memory (1g)"),
    ({"scale_service_memory": "12x"}, "scale_service_memory: '12x' is not a size"),
    ({"scale_service_memory": "4m"}, "below Docker's minimum of 6m"),
    ({"scale_service_memory": "160m", "scale_service_memory_swap": "100m"},
     "scale_service_memory_swap: 100m is below scale_service_memory (160m)"),
    ({"scale_service_memory": "160m", "scale_service_memory_swap": "-1"}, ""),
    ({}, "set at least one of them"),
    ({"scale_service_container": "", "scale_service_replicas": 2}, "name a container"),
])
def test_scale_bounds(over: dict[str, Any], message: str) -> None:
    errors = _load("scale_service").bound_errors(_scale_params(**over))
    assert (message in "; ".join(errors)) if message else errors == []


def test_restart_input_errors_name_the_variable() -> None:
    rc = _load("restart_containers")
    params = {name: opt.get("default") for name, opt in rc.ARGUMENT_SPEC.items()}
    plain = {"Config": {"Labels": {}, "Image": "x:1"}, "State": {"Running": True}}
    errors = rc.input_errors(params | {
        "restart_containers_names": ["a", "b"], "restart_containers_rebuild": True,
        "restart_containers_urls": {"c": "http://127.0.0.1:1/"}}, {"a": None, "b": plain})
    assert errors == [
        "restart_containers_names: no container named 'a'",
        "restart_containers_rebuild: 'b' is not managed by docker compose, so it cannot be "
        "recreated from its definition",
        "restart_containers_urls: 'c' is not one of restart_containers_names",
        "restart_containers_build_path: required when restart_containers_rebuild is true",
    ]


def test_role_play_skips_the_validation_task_only_for_self_validating_roles() -> None:
    from incident_runner.plays import role_play  # noqa: PLC0415

    [own] = role_play("x", "staging", "reconnect_networks", {"a": 1})
    assert own["tasks"] == [{"name": "Run the reconnect_networks role",
                             "ansible.builtin.import_role": {"name": "reconnect_networks",
                                                             "rolespec_validate": False}}]
    assert "roles" not in own and own["vars"] == {"a": 1} and own["gather_facts"] is False
    [other] = role_play("x", "staging", "systemd_restart", {})
    assert other["roles"] == [{"role": "systemd_restart"}] and "tasks" not in other
