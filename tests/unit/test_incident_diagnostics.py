"""Pure logic of roles/capture_diagnostics/library/incident_diagnostics.py: redaction, log order."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from incident_runner import local_module

MODULE = (Path(__file__).parents[2] / "roles" / "capture_diagnostics" / "library"
          / "incident_diagnostics.py")


@pytest.fixture(scope="module")
def mod() -> ModuleType:
    return local_module.load(MODULE, "incident_diagnostics")


@pytest.fixture
def redactor(mod: ModuleType) -> object:
    return mod.Redactor(mod.DEFAULT_SECRET_NAMES, [])


@pytest.mark.parametrize(("line", "expected"), [
    ("login ok password=hunter2 user=bob", "login ok password=*** user=bob"),
    ("password: hunter2", "password: ***"),
    ("PASSWORD=abc123 started", "PASSWORD=*** started"),
    ('{"api_key": "s3cr3t"}', '{"api_key": "***"}'),
    ("secret_key_base = 'abcdef123456'", "secret_key_base = '***'"),
    ("x-auth-token: abcdef", "x-auth-token: ***"),
    ("GET /cb?token=abcdef&x=1 HTTP/1.1", "GET /cb?token=***&x=1 HTTP/1.1"),
    ("Authorization: Token abc123", "Authorization: ***"),
    ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "Authorization: ***"),
    ('{"headers":{"Authorization":["Bearer sk-live-abcdefgh12345"]}}',
     '{"headers":{"Authorization":["***"]}}'),
    ("curl -H 'Authorization: Bearer abcdefghijk' http://x", "curl -H 'Authorization: ***' http://x"),
    ("retry with Bearer abcdefghijklmnop", "retry with Bearer ***"),
    ("fetch https://deploy:pw0rd@git.example.invalid/r.git", "fetch https://deploy:***@git.example.invalid/r.git"),
    ("pushed with ghp_abcdefghijklmnopqrstuvwxyz0123456789", "pushed with ***"),
    ("using AKIAABCDEFGHIJKLMNOP for s3", "using *** for s3"),
    ("hook https://hooks.slack.com/services/T000/B000/XXXXXXXX", "hook https://hooks.slack.com/services/***"),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N", "jwt ***"),
])
def test_secrets_are_masked(redactor: object, line: str, expected: str) -> None:
    assert redactor.text(line) == expected  # type: ignore[attr-defined]


@pytest.mark.parametrize("line", [
    "GET /api/health HTTP/1.1 200 X-App-Version: a06170bd2afe21f65a0f28d5b6f739ff4c6d1f03",
    "author: alice fixed the proxy",
    "api 172.18.0.4 \"GET /health HTTP/1.1\" 500 -",
    "keyboard layout: us",
])
def test_ordinary_lines_are_kept(redactor: object, line: str) -> None:
    assert redactor.text(line) == line  # type: ignore[attr-defined]


def test_env_and_labels_by_name_other_strings_by_pattern(redactor: object) -> None:
    inspect = {
        "Config": {
            "Env": ["GITHUB_TOKEN=x", "HOME=/root", "OAUTH_CLIENT=abc", "DB_PASSWORD=", "NOVALUE"],
            "Labels": {"traefik.http.basicauth.users": "u:$apr1$x",
                       "com.docker.compose.service": "api"},
            "Cmd": ["--password=xyz", "--port=8080"],
        },
        "State": {"Running": True, "ExitCode": 0},
    }
    out = redactor.data(inspect)  # type: ignore[attr-defined]
    assert out["Config"]["Env"] == ["GITHUB_TOKEN=***", "HOME=/root", "OAUTH_CLIENT=***",
                                    "DB_PASSWORD=***", "NOVALUE"]
    assert out["Config"]["Labels"] == {"traefik.http.basicauth.users": "***",
                                       "com.docker.compose.service": "api"}
    assert out["Config"]["Cmd"] == ["--password=***", "--port=8080"]
    assert out["State"] == {"Running": True, "ExitCode": 0}
    assert redactor.count == 5  # type: ignore[attr-defined]


def test_extra_patterns(mod: ModuleType) -> None:
    r = mod.Redactor(mod.DEFAULT_SECRET_NAMES, [r"(?P<keep>customer=)\d+"])
    assert r.text("order for customer=12345 done") == "order for customer=*** done"


def test_log_timestamps_sort_by_time_not_text(mod: ModuleType) -> None:
    # Docker trims trailing zeros: .1Z is later than .09Z, and text order says otherwise.
    early = "2026-11-24T06:00:00.09Z early"
    late = "2026-11-24T06:00:00.1Z late"
    assert sorted([late, early], key=mod._sort_key) == [early, late]
    assert mod._sort_key("no timestamp here") == ""


def test_summarize_reads_state(mod: ModuleType) -> None:
    row = mod.summarize({
        "Name": "/ir-x-api-1", "Id": "0123456789abcdef", "Image": "sha256:1", "RestartCount": 2,
        "Created": "2026-11-24T06:00:00Z",
        "Config": {"Image": "ir-x/app:deployed",
                   "Labels": {"org.opencontainers.image.revision": "abc"}},
        "State": {"Status": "exited", "ExitCode": 137, "OOMKilled": True},
        "HostConfig": {"Memory": 67108864},
        "NetworkSettings": {"Networks": {"b": {}, "a": {}}},
    })
    assert row["name"] == "ir-x-api-1"
    assert (row["status"], row["exit_code"], row["oom_killed"]) == ("exited", 137, True)
    assert row["revision"] == "abc"
    assert row["networks"] == ["a", "b"]
