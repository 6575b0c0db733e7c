"""roles/staging_stack's module: its argument spec equals the role's, the compose file it
renders, the deploy-source seed, compose's event parsing and the health wait's failure
message. The real bring-up and teardown are tested by tests/integration/test_foundation.py
and every drill and role scenario (they all bring a stack up)."""

from __future__ import annotations

import hashlib
import http.server
import json
import socket
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from incident_runner import local_module

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "staging_stack"


def _load() -> ModuleType:
    # The runner's loader: module_utils (docker_engine) importable as Ansible ships them.
    return local_module.load(ROLE / "library/staging_stack.py", "staging_stack")


ss = _load()


def _role_spec() -> dict[str, dict[str, Any]]:
    data = yaml.safe_load((ROLE / "meta/argument_specs.yml").read_text())
    options: dict[str, dict[str, Any]] = data["argument_specs"]["main"]["options"]
    return options


def _params(**over: Any) -> dict[str, Any]:
    params = {name: opt.get("default") for name, opt in ss.ARGUMENT_SPEC.items()}
    return params | {"role_path": str(ROLE)} | over


def test_module_argument_spec_equals_the_role_spec() -> None:
    keys = ("type", "elements", "required", "default", "choices")
    role_spec = {name: {k: v for k, v in opt.items()
                        if k in keys and (k, v) != ("required", False)}  # the default
                 for name, opt in _role_spec().items()}
    module_spec = {name: {k: v for k, v in opt.items() if k in keys}
                   for name, opt in ss.ARGUMENT_SPEC.items()}
    assert module_spec == role_spec
    assert set(ss.INTERNAL_SPEC) == {"role_path"}


def test_role_defaults_and_task_pass_every_variable() -> None:
    defaults = yaml.safe_load((ROLE / "defaults/main.yml").read_text())
    [task] = yaml.safe_load((ROLE / "tasks/main.yml").read_text())
    args = task["staging_stack"]
    for name, opt in _role_spec().items():
        assert name in defaults, f"{name} has no default in defaults/main.yml"
        if "default" in opt:
            assert defaults[name] == opt["default"], name
        assert args[name] == "{{ " + name + " }}", f"tasks/main.yml does not pass {name}"
    assert set(args) == set(ss.ARGUMENT_SPEC) | set(ss.INTERNAL_SPEC)


def test_compose_file_without_queues() -> None:
    compose = yaml.safe_load(ss.render_compose(_params(
        staging_stack_project="ir-x", staging_stack_http_port=18650)))
    label = {"io.incident-runner.stack": "ir-x"}
    assert set(compose["services"]) == {"proxy", "api", "web", "deps"}
    proxy, api = compose["services"]["proxy"], compose["services"]["api"]
    sha1 = hashlib.sha1((ROLE / "files/Caddyfile").read_text().rstrip().encode(),
                        usedforsecurity=False).hexdigest()
    assert proxy["labels"] == label | {"io.incident-runner.caddyfile-sha1": sha1}
    assert proxy["ports"] == ["127.0.0.1:18650:8080"]
    assert proxy["volumes"] == [f"{ROLE}/files/Caddyfile:/etc/caddy/Caddyfile:ro"]
    assert proxy["networks"] == ["edge", "api_net", "web_net"]
    assert api["image"] == "ir-x/app:deployed"
    assert (api["mem_limit"], api["memswap_limit"]) == ("64m", "64m")
    assert api["environment"] == {"APP_ROLE": "api", "DEPENDENCY_URL": "http://deps:8080"}
    assert api["depends_on"] == ["deps"]
    for name, service in compose["services"].items():
        assert service["init"] is True and service["restart"] == "no", name
        assert service["labels"]["io.incident-runner.stack"] == "ir-x", name
    assert compose["networks"] == {name: {"labels": label}
                                   for name in ("edge", "api_net", "web_net", "backend")}
    assert compose["volumes"] == {name: {"labels": label}
                                  for name in ("api_state", "web_state", "deps_state")}


def test_compose_file_with_queues() -> None:
    compose = yaml.safe_load(ss.render_compose(_params(
        staging_stack_project="ir-x", staging_stack_queues=True, staging_stack_redis_port=18651,
        staging_stack_queue_names=["a", "b"], staging_stack_workflow_names=["w"])))
    services = compose["services"]
    assert set(services) == {"proxy", "api", "web", "deps", "redis", "worker", "flows"}
    assert services["proxy"]["networks"] == ["edge", "api_net", "web_net", "queue_net"]
    assert services["redis"]["ports"] == ["127.0.0.1:18651:6379"]
    assert services["worker"]["environment"] == {"REDIS_URL": "redis://redis:6379", "QUEUES": "a,b"}
    assert services["flows"]["environment"]["WORKFLOWS"] == "w"
    assert services["flows"]["image"] == "ir-x/queues:latest"
    assert "queue_net" in compose["networks"]


def test_compose_values_cannot_break_the_file() -> None:
    odd = 'ir-x" \n  evil: [1'
    compose = yaml.safe_load(ss.render_compose(_params(staging_stack_project=odd,
                                                       staging_stack_api_memory="64m # x")))
    assert compose["services"]["api"]["image"] == f"{odd}/app:deployed"
    assert compose["services"]["api"]["mem_limit"] == "64m # x"
    assert "evil" not in compose["services"]["api"]


def test_a_changed_caddyfile_changes_the_proxy_label(tmp_path: Path) -> None:
    (tmp_path / "files").mkdir()
    (tmp_path / "files/Caddyfile").write_text(":8080 {\n}\n")
    first = ss.render_compose(_params(role_path=str(tmp_path)))
    (tmp_path / "files/Caddyfile").write_text(":8081 {\n}\n")
    assert ss.render_compose(_params(role_path=str(tmp_path))) != first


def test_compose_events_and_actions() -> None:
    noop = "\n".join(json.dumps({"id": "Container p-api-1", "status": s})
                     for s in ("Running", "Waiting", "Healthy"))
    assert ss.compose_actions("up", ss.compose_events(noop)) == []
    changed = "\n".join([
        "a plain warning line",
        json.dumps({"id": "Network p_edge", "status": "Creating"}),
        json.dumps({"id": "Network p_edge", "status": "Created"}),
        json.dumps({"id": "Container p-api-1", "status": "Recreate"}),
        json.dumps({"id": "Container p-api-1", "status": "Starting"}),
        "{not json",
    ])
    assert ss.compose_actions("up", ss.compose_events(changed)) == [
        "up: Network p_edge Creating, Container p-api-1 Recreate"]
    error = json.dumps({"error": True, "message": "Error response from daemon: bind: in use"})
    assert ss.compose_error(1, "", changed + "\n" + error) == (
        "exit 1: Error response from daemon: bind: in use | a plain warning line")


class _Module:
    """What Stack uses of AnsibleModule: params, check_mode, run_command, fail_json."""

    def __init__(self, params: dict[str, Any], check_mode: bool = False) -> None:
        self.params = params
        self.check_mode = check_mode

    def get_bin_path(self, name: str, required: bool = False) -> str:
        return name

    def run_command(self, argv: list[str], cwd: str | None = None,
                    environ_update: dict[str, str] | None = None) -> tuple[int, str, str]:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
        return proc.returncode, proc.stdout, proc.stderr

    def fail_json(self, **result: Any) -> None:
        raise AssertionError(result["msg"])


def _stack(tmp_path: Path, check_mode: bool = False, engine: Any = None) -> Any:
    params = _params(staging_stack_dir=str(tmp_path / "stack"),
                     staging_stack_deploy_src=str(tmp_path / "stack/deploy-src"),
                     staging_stack_app_template=str(ROOT / "staging/app"),
                     staging_stack_queues_src=str(ROOT / "staging/queues"),
                     staging_stack_env="qa")
    return ss.Stack(_Module(params, check_mode), engine)


def test_seed_makes_one_commit_marked_good_and_only_once(tmp_path: Path) -> None:
    assert _stack(tmp_path, check_mode=True).seed() == ""
    assert not (tmp_path / "stack").exists()  # check mode creates nothing

    stack = _stack(tmp_path)
    head = stack.seed()
    src = tmp_path / "stack/deploy-src"
    git = ["git", "-C", str(src)]
    assert head == subprocess.run([*git, "rev-parse", "refs/deploy/good/qa"], text=True,
                                  capture_output=True, check=True).stdout.strip()
    assert subprocess.run([*git, "rev-list", "--count", "HEAD"], text=True,
                          capture_output=True, check=True).stdout.strip() == "1"
    assert (src / "Dockerfile").read_bytes() == (ROOT / "staging/app/Dockerfile").read_bytes()
    assert (tmp_path / "stack").stat().st_mode & 0o777 == 0o750
    assert stack.actions and stack.actions[0].startswith("seed ")

    again = _stack(tmp_path)
    assert again.seed() == head and again.actions == []


def test_seed_names_a_missing_template(tmp_path: Path) -> None:
    stack = _stack(tmp_path)
    stack.p["staging_stack_app_template"] = str(tmp_path / "nope")
    with pytest.raises(AssertionError, match=r"staging_stack_app_template: .*nope is not a dir"):
        stack.seed()


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/api/health" else 502)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def proxy() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


class _Engine:
    def containers(self, labels: list[str]) -> list[dict[str, Any]]:
        return [{"Id": "c1"}] if "com.docker.compose.service=web" in labels else []

    def container(self, ident: str) -> dict[str, Any]:
        return {"Name": "/p-web-1",
                "State": {"Running": False, "Status": "exited", "ExitCode": 137,
                          "OOMKilled": True}}


def test_health_wait_names_the_service_that_did_not_answer(tmp_path: Path, proxy: int) -> None:
    stack = _stack(tmp_path, engine=_Engine())
    stack.p.update(staging_stack_http_port=proxy, staging_stack_wait_timeout=0)
    with pytest.raises(AssertionError) as failed:
        stack.wait_healthy()
    msg = str(failed.value)
    assert msg.startswith("staging_stack_wait_timeout: not healthy through the proxy after 0s")
    assert f"web: http://127.0.0.1:{proxy}/web/health answers HTTP 502; " \
           "p-web-1 exited 137, OOM-killed" in msg
    assert "api:" not in msg  # it answered 200

    stack.p["staging_stack_queues"] = True  # worker and flows are asked too
    with pytest.raises(AssertionError, match=r"worker: .* answers HTTP 502; no container"):
        stack.wait_healthy()


@pytest.mark.parametrize(("answer", "want"), [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "200"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello", "IncompleteRead"),  # cut short
    (b"HTTP/1.1 2x0 OK\r\n\r\n", "BadStatusLine"),
])
def test_a_broken_answer_is_no_answer(answer: bytes, want: str) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        got = ss.url_status(opener, f"http://127.0.0.1:{server.getsockname()[1]}/", 2)
    finally:
        thread.join(5)
        server.close()
    assert got.startswith(want)
