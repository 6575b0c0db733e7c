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


def test_engine_logs_split_the_multiplexed_streams(mod: ModuleType) -> None:
    # Without a TTY the engine frames each chunk: stream (1 out, 2 err), 3 zero bytes, length.
    def frame(stream: int, text: str) -> bytes:
        data = text.encode()
        return bytes([stream, 0, 0, 0]) + len(data).to_bytes(4, "big") + data

    body = frame(1, "t1 out one\n") + frame(2, "t2 err one\n") + frame(1, "t3 out two\n")
    engine = mod.Engine()
    engine.request_raw = lambda *a, **k: body
    assert engine.logs("api", 10) == ("t1 out one\nt3 out two\n", "t2 err one\n")
    engine.request_raw = lambda *a, **k: b"t1 tty line\n"
    assert engine.logs("api", 10, tty=True) == ("t1 tty line\n", "")


def test_a_cgroup_that_does_not_name_the_container_is_not_read(mod: ModuleType) -> None:
    # The engine's PID may be another PID namespace's: this process is not that container.
    import os  # noqa: PLC0415

    assert mod.cgroup_stats({"Id": "f" * 64, "Name": "/x", "State": {"Pid": os.getpid()}}) is None
    assert mod.cgroup_stats({"Id": "f" * 64, "Name": "/x", "State": {"Pid": 0}}) is None


def test_engine_ps_rows_in_the_cli_keys(mod: ModuleType) -> None:
    row = mod._ps_row({"Names": ["/ir-x-proxy-1"], "Image": "caddy", "State": "running",
                       "Status": "Up 3 minutes", "Created": 0,
                       "Ports": [{"IP": "127.0.0.1", "PrivatePort": 8080, "PublicPort": 18099,
                                  "Type": "tcp"}, {"PrivatePort": 443, "Type": "tcp"}]})
    assert row == {"Names": "ir-x-proxy-1", "Image": "caddy", "State": "running",
                   "Status": "Up 3 minutes", "Ports": "127.0.0.1:18099->8080/tcp, 443/tcp",
                   "CreatedAt": "1970-01-01 00:00:00 +0000 UTC"}


def test_called_in_process_the_arguments_are_checked_by_the_spec(tmp_path: Path) -> None:
    # What AnsibleModule would say for a wrong type; the capture never starts.
    out = local_module.call(MODULE, "capture", {"dest": str(tmp_path / "d"), "project": "p",
                                                "log_lines": "many"})
    assert out["failed"] and "log_lines" in out["msg"]
    assert not (tmp_path / "d").exists()
    out = local_module.call(MODULE, "capture", {"dest": str(tmp_path / "d")})
    assert out["failed"]
    assert "capture_diagnostics_containers or capture_diagnostics_project" in out["msg"]


def test_without_the_engine_api_the_cli_does_the_reads(
        mod: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A tcp DOCKER_HOST: the engine client refuses it, the docker CLI (here a stand-in
    # answering like the real one) reads everything, and the manifest says why.
    fake = tmp_path / "docker"
    inspect = ('[{"Id": "abc123", "Name": "/p-api-1", "Config": {"Labels": {}}, '
               '"State": {"Status": "exited", "Running": false}}]')
    fake.write_text(f"""#!/bin/sh
case "$1" in
  ps) if [ "$3" = "-q" ]; then echo abc123; else echo '{{"Names": "p-api-1"}}'; fi ;;
  inspect) echo '{inspect}' ;;
  logs) echo '2026-12-03T10:00:00.1Z hello' ;;
esac
""")
    fake.chmod(0o755)
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")
    out = local_module.call(MODULE, "capture", {"dest": str(tmp_path / "d"), "project": "p",
                                                "docker": str(fake)})
    assert out["containers"] == ["p-api-1"], out
    assert any("only a unix:// socket" in e for e in out["errors"])
    log = (tmp_path / "d" / "logs" / "p-api-1.log").read_text()
    assert log == "2026-12-03T10:00:00.1Z out hello\n"
