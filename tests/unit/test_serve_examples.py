"""The alerting examples docs/alerts.md shows are valid for the tools that read them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from incident_runner.serve.settings import parse_settings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "alerting"


def tool(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_prometheus_and_alertmanager_examples_pass_their_checkers() -> None:
    rules = tool("/usr/bin/promtool", "check", "rules", str(EXAMPLES / "rules.yml"))
    assert rules.returncode == 0 and "1 rules found" in rules.stdout, rules.stdout + rules.stderr
    config = tool("/usr/bin/promtool", "check", "config", "--syntax-only",
                  str(EXAMPLES / "prometheus.yml"))
    assert config.returncode == 0, config.stdout + config.stderr
    am = tool("/usr/bin/amtool", "check-config", str(EXAMPLES / "alertmanager.yml"))
    assert am.returncode == 0 and "1 receivers" in am.stdout, am.stdout + am.stderr


def test_serve_config_example_is_valid() -> None:
    raw = yaml.safe_load((EXAMPLES / "serve-config.yml").read_text())["serve"]
    settings = parse_settings(raw, "serve-config.yml: serve", EXAMPLES)
    assert settings.token_file == Path("/etc/incident-runner/serve.token")
    assert settings.generic.labels["alertname"] == "monitor.name"
    assert not settings.approve_destructive
