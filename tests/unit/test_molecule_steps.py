"""The suite's molecule step runner keeps molecule's rules (tests/molecule_steps.py)."""

from __future__ import annotations

import json
from pathlib import Path

from incident_runner.drill.catalog import load_scenario
from tests.molecule_steps import StepRun, _batches, _changed_tasks, _destroy_again, _unmatched_plays

ROOT = Path(__file__).resolve().parents[2]


def _spec(name: str):  # type: ignore[no-untyped-def]
    return load_scenario(ROOT / "molecule" / name, ROOT, {"MOLECULE_EPHEMERAL_DIRECTORY": "/x"})


def test_steps_chain_until_check_or_idempotence_and_the_last_run_ends_with_destroy() -> None:
    assert list(_batches(_spec("systemd_restart"))) == [
        (["destroy", "create", "prepare"], []), (["check"], ["--check"]), (["converge"], []),
        (["idempotence"], []), (["verify", "destroy"], [])]
    assert list(_batches(_spec("restart_containers"))) == [
        (["destroy", "create", "prepare", "converge"], []), (["idempotence"], []),
        (["verify", "destroy"], [])]


def test_the_final_destroy_runs_again_unless_the_last_run_did_it() -> None:
    spec = _spec("restart_containers")  # three runs, the last ends with destroy

    def run(steps: list[str], rc: int | None = 0) -> StepRun:
        return StepRun(steps, rc, 0.0, 0.0)

    first, idempotence = run(["destroy", "create", "prepare", "converge"]), run(["idempotence"])
    assert not _destroy_again(spec, [first, idempotence, run(["verify", "destroy"])], 3)
    # verify failed (so its destroy never ran), or the run was cut off
    assert _destroy_again(spec, [first, idempotence, run(["verify", "destroy"], 2)], 3)
    assert _destroy_again(spec, [first, idempotence, run(["verify", "destroy"], None)], 3)
    # an earlier run failed: the last one never started
    assert _destroy_again(spec, [run(first.steps, 2)], 3)
    not_idempotent = StepRun(["idempotence"], 0, 0.0, 0.0, "not idempotent: x")
    assert _destroy_again(spec, [first, not_idempotent], 3)


def test_scenario_inventory_carries_group_vars_and_connection() -> None:
    inventory = _spec("restart_containers").inventory()["all"]
    assert inventory["hosts"] == {"localhost": {"ansible_connection": "local"}}
    assert inventory["vars"]["test_project"] == "ir-r1-rc"
    assert inventory["vars"]["test_port_file"] == "/x/test_port"


def _recap(changed: int) -> str:
    task = {"task": {"name": "Restart web"}, "hosts": {"localhost": {"changed": bool(changed)}}}
    return "$ ansible-playbook converge.yml\n" + json.dumps(
        {"plays": [{"tasks": [task]}], "stats": {"localhost": {"changed": changed}}}
    ) + "\n[WARNING]: trailing output\n"


def test_idempotence_fails_on_any_changed_task_and_names_it() -> None:
    assert _changed_tasks(_recap(0)) == ""
    assert _changed_tasks(_recap(1)) == "not idempotent: Restart web"


def test_a_play_that_matched_no_host_is_reported() -> None:
    # The log of a fresh machine's systemd scenario, before create refreshed the inventory.
    log = ("PLAY [Create: a systemd host over SSH] *****\n\nTASK [x] ***\nok: [localhost]\n\n"
           "PLAY [Prepare - OOM-kill the api] ******************\n"
           "skipping: no hosts matched\n\n"
           "PLAY [Fault oom (systemd): push the api over MemoryMax] *****\n"
           "skipping: no hosts matched\n\nPLAY RECAP ****\n")
    assert _unmatched_plays(log) == ("played on no host: Prepare - OOM-kill the api; "
                                     "Fault oom (systemd): push the api over MemoryMax")
    assert _unmatched_plays(log.replace("skipping: no hosts matched", "ok: [h1]")) == ""
