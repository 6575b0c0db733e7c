"""Secrets: vaulted values found for the redactor, artifacts scrubbed, events redacted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ansible.parsing.vault import VaultLib, VaultSecret

from incident_runner.errors import InputError
from incident_runner.executor import _EventSink
from incident_runner.redaction import Redactor
from incident_runner.secrets import scrub_artifacts, scrub_file, vault_values
from incident_runner.timeline import Timeline, read_timeline

PASSWORD = "correct horse battery"  # noqa: S105 (the test vault's password)


def encrypt(text: str) -> str:
    vault = VaultLib([("default", VaultSecret(PASSWORD.encode()))])
    return str(vault.encrypt(text).decode())


def vaulted_inventory(root: Path) -> tuple[Path, Path]:
    inv = root / "inventory"
    (inv / "group_vars" / "all").mkdir(parents=True)
    (inv / "hosts.yml").write_text("all:\n  hosts:\n    localhost:\n")
    (inv / "group_vars" / "all" / "vault.yml").write_text(
        encrypt("vault_db_password: whole-file-secret-1\nvault_list: [listed-secret-2]\n"))
    inline = encrypt("inline-secret-3")
    (inv / "group_vars" / "all" / "vars.yml").write_text(
        "plain: not-a-secret\napi: !vault |\n" + "".join(
            f"  {line}\n" for line in inline.splitlines()) + "other: !unsafe '{{ x }}'\n")
    pw = root / "vault-pass"
    pw.write_text(PASSWORD + "\n")
    return inv, pw


def test_vault_values_whole_files_and_inline(tmp_path: Path) -> None:
    inv, pw = vaulted_inventory(tmp_path)
    found = vault_values(inv, pw)
    assert found == {"whole-file-secret-1", "listed-secret-2", "inline-secret-3"}


def test_vault_with_a_wrong_password_finds_nothing_but_does_not_crash(tmp_path: Path) -> None:
    inv, pw = vaulted_inventory(tmp_path)
    pw.write_text("wrong\n")
    assert vault_values(inv, pw) == set()


def test_missing_vault_password_file_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        vault_values(tmp_path, tmp_path / "nope")
    assert err.value.field == "--vault-password-file"


def test_scrub_file_json_and_text(tmp_path: Path) -> None:
    redactor = Redactor(["s3cr3t-value"])
    command = tmp_path / "command"
    command.write_text(json.dumps({"command": ["ansible-playbook", "-e", "@/x"],
                                   "env": {"MY_TOKEN": "tok-abcdef", "HOME": "/root",
                                           "OTHER": "has s3cr3t-value inside"}}))
    assert scrub_file(command, redactor)
    data = json.loads(command.read_text())
    assert data["env"] == {"MY_TOKEN": "***", "HOME": "/root", "OTHER": "has *** inside"}
    assert command.stat().st_mode & 0o777 == 0o600
    text = tmp_path / "stdout"
    text.write_text("ok: password=hunter22 and s3cr3t-value\n")
    assert scrub_file(text, redactor)
    assert text.read_text() == "ok: password=*** and ***\n"
    assert not scrub_file(text, redactor), "already clean: left alone"


def test_scrub_artifacts_removes_unread_partial_events(tmp_path: Path) -> None:
    run = tmp_path / "01-mitigate-x"
    (run / "job_events").mkdir(parents=True)
    (run / "job_events" / "abc-partial.json").write_text('{"res": "s3cr3t-value"}')
    (run / "job_events" / "1-abc.json").write_text('{"stdout": "s3cr3t-value"}')
    scrub_artifacts(run, Redactor(["s3cr3t-value"]))
    assert not (run / "job_events" / "abc-partial.json").exists()
    assert "s3cr3t-value" not in (run / "job_events" / "1-abc.json").read_text()


def test_event_sink_redacts_the_event_ansible_runner_will_write(tmp_path: Path) -> None:
    timeline = Timeline(tmp_path / "timeline.jsonl")
    sink = _EventSink(timeline, {"phase": "mitigate"}, Redactor(["s3cr3t-value"]), None)
    event: dict[str, Any] = {
        "event": "runner_on_failed", "counter": 3, "stdout": "fatal: s3cr3t-value",
        "event_data": {"task": "t", "host": "h", "res": {
            "msg": "bad s3cr3t-value", "invocation": {"module_args": {"api_key": "k-123456"}}}},
    }
    assert sink(event) is True
    dumped = json.dumps(event)
    assert "s3cr3t-value" not in dumped and "k-123456" not in dumped
    assert sink.stdout == [(3, "fatal: ***")]
    [result] = [e for e in read_timeline(tmp_path / "timeline.jsonl")
                if e["kind"] == "task_result"]
    assert result["message"] == "bad ***"
