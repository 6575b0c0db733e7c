"""One set of redaction rules: the runner's and the modules' are the same file, and they
mask every secret shape the issue lists."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from incident_runner import local_module
from incident_runner.redaction import Redactor
from incident_runner.redaction_rules import MASK

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "roles" / "capture_diagnostics" / "library" / "incident_diagnostics.py"

SECRET = "S3cr3tValue-99"  # noqa: S105 (a canary)
SAMPLES = [
    f"dsn postgres://app:{SECRET}@db.internal/x",
    f"Authorization: Bearer {SECRET}abcdef",
    f"authorization: Token {SECRET}abcdef",
    f"curl -H 'X-Auth-Token: {SECRET}'",
    f"https://hooks.slack.com/services/T000/B000/{SECRET}xyz",
    f"https://discord.com/api/webhooks/123456/{SECRET}xyz",
    f"aws_secret_access_key = {SECRET}",
    "AKIAABCDEFGHIJKLMNOP",
    f"-----BEGIN RSA PRIVATE KEY-----\nMIIE{SECRET}\n-----END RSA PRIVATE KEY-----",
    f"password={SECRET}",
]


def test_the_modules_copy_is_the_runners_rules() -> None:
    check = subprocess.run([sys.executable, str(ROOT / "scripts" / "sync_module_utils.py"),
                            "--check"], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout


@pytest.mark.parametrize("line", SAMPLES)
def test_runner_and_module_mask_the_same(line: str) -> None:
    ours = Redactor().text(line)
    theirs = local_module.load(MODULE, "incident_diagnostics").Redactor().text(line)
    assert ours == theirs
    assert SECRET not in ours and "AKIAABCDEFGHIJKLMNOP" not in ours
    assert MASK in ours


def test_a_dsn_in_extra_vars_is_masked_whole_elsewhere() -> None:
    redactor = Redactor()
    redactor.add_from_mapping({"target": f"postgres://app:{SECRET}@db/x", "n": "1"})
    assert SECRET not in redactor.text(f"connecting to postgres://app:{SECRET}@db/x failed")
    assert redactor.text("n=1") == "n=1"


def test_env_and_labels_by_name() -> None:
    r = Redactor()
    assert r.env([f"API_KEY={SECRET}", "HOME=/root"]) == ["API_KEY=***", "HOME=/root"]
    assert r.data({"Labels": {"deploy_token": SECRET}})["Labels"]["deploy_token"] == MASK
    assert r.data({"author": "bob"}) == {"author": "bob"}
