"""Issue 7, must show: the safety rails hold against the real runner, Ansible and Docker.

Each test runs the installed ``incident-runner`` in a subprocess (a fresh
process per run: what one run leaves behind is all the next one sees).
Scenarios that need no stack live in tests/fixtures/safety_home (loaded with
INCIDENT_RUNNER_HOME); they act on localhost only, verify against an HTTP
server this module starts on 127.0.0.1, and write marker files into a
directory the test owns. The proxy-502 tests use the module's staging stack.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from ansible.parsing.vault import VaultLib, VaultSecret

from incident_runner.timeline import read_timeline
from tests.stack import LABEL, ROOT, VENV_BIN, Stack, docker, env, http_status

pytestmark = pytest.mark.integration

FIXTURE_HOME = ROOT / "tests" / "fixtures" / "safety_home"
CLI = str(VENV_BIN / "incident-runner")
# One canary per way a secret can reach the runner; none may ever be written or printed.
CANARIES = {
    "env_token": "cnry-envtok-5521-Yq",      # CANARY_TOKEN: an env var named as secret
    "opaque_env": "cnry-opaque-8802-Lm",     # SAFETY_OPAQUE: listed in safety.secret_env
    "extra_var": "cnry-pw-7731-Xz",          # -e password=...
    "vault_file": "cnry-vault-9931-Wk",      # a wholly encrypted group_vars file
    "vault_inline": "cnry-inline-4471-Bn",   # an inline !vault value
    # Secrets by shape, under names that do not look secret (issue 11's list):
    "dsn": "cnry-dsn-6612-Pq",               # -e dsn=postgres://app:PASSWORD@db/x
    "header": "cnryhdr7723Rs",               # env LEAKY_HEADER="Authorization: Bearer ..."
    "hook": "cnryhook8834Tu",                # inventory: a Slack webhook URL
    "aws": "AKIACNRY1234ABCD5678",           # inventory: an AWS access key id
    "pem": "cnrypem9945Vw",                  # inventory: a PEM private key block
}
VAULT_PASSWORD = "test-vault-pass-31337"  # noqa: S105 (the test vault's password)


# -- helpers ----------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(503 if self.path.startswith("/down") else 200)
        self.end_headers()
        self.wfile.write(b"ok\n")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.server.posts.append(self.rfile.read(length).decode())  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        return


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server: /health -> 200, /down/health -> 503, POSTs recorded."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.posts = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd.posts  # type: ignore[attr-defined]
    finally:
        httpd.shutdown()


@pytest.fixture
def marks() -> Iterator[Path]:
    """Where steps write their markers and payloads name the files they would create
    (a short path: scenario titles that name it must stay under 200 characters)."""
    path = Path(tempfile.mkdtemp(prefix="irm-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def home(tmp_path: Path, marks: Path) -> Path:
    """A project root: shipped roles and ansible.cfg + the test-only scenarios/playbooks."""
    home = tmp_path / "home"
    home.mkdir()
    for name in ("roles", "ansible.cfg"):
        (home / name).symlink_to(ROOT / name)
    for name in ("playbooks", "inventory", "incident-runner.yml"):
        (home / name).symlink_to(FIXTURE_HOME / name)
    (home / "scenarios").mkdir()
    for path in (FIXTURE_HOME / "scenarios").glob("*.yml"):
        (home / "scenarios" / path.name).write_text(
            path.read_text().replace("SAFETY_DIR", str(marks)))
    return home


def cli(*args: str, home: Path | None, state: Path, extra_env: dict[str, str] | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    run_env = {**env(), "INCIDENT_RUNNER_STATE_DIR": str(state)}
    for key in ("INCIDENT_RUNNER_HOME", "INCIDENT_RUNNER_CONFIG", "INCIDENT_RUNNER_WEBHOOK_URL"):
        run_env.pop(key, None)
    if home is not None:
        run_env.update(INCIDENT_RUNNER_HOME=str(home),
                       INCIDENT_RUNNER_CONFIG=str(home / "incident-runner.yml"))
    run_env.update(extra_env or {})
    return subprocess.run([CLI, *args], cwd=ROOT, env=run_env, capture_output=True, text=True,
                          timeout=timeout, check=False, stdin=subprocess.DEVNULL)


def local(*args: str, home: Path, state: Path, url: str, marks: Path,
          **kw: Any) -> subprocess.CompletedProcess[str]:
    """``remediate`` a safety_home scenario on localhost."""
    return cli("remediate", "--inventory", str(home / "inventory"), "-e", f"safety_url={url}",
               "-e", f"safety_dir={marks}", *args, home=home, state=state, **kw)


def summary(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    try:
        return dict(json.loads(proc.stdout))
    except ValueError:
        pytest.fail(f"no JSON summary (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


def events(folder: Path | str) -> list[dict[str, Any]]:
    return list(read_timeline(Path(folder) / "timeline.jsonl"))


def steps(evts: list[dict[str, Any]], phase: str = "mitigate") -> dict[str, dict[str, Any]]:
    return {e["step"]: e for e in evts if e["kind"] == "step_finished" and e["phase"] == phase}


def _cmdlines() -> list[str]:
    out = []
    for cmd in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            out.append(cmd.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return out


def grep_tree(root: Path, needle: str) -> list[str]:
    """Every file under ``root`` whose bytes contain ``needle``."""
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                if needle.encode() in path.read_bytes():
                    hits.append(str(path.relative_to(root)))
            except OSError:
                continue
    return hits


# -- timeouts ------------------------------------------------------------------------------
def test_a_hanging_step_is_killed_at_its_timeout_and_the_incident_escalates(
        home: Path, _state_under_tmp: Path, server: tuple[str, list[str]], marks: Path) -> None:
    url, _ = server
    seconds = str(7000 + os.getpid() % 1000)  # a sleep we can recognise in /proc
    started = time.monotonic()
    proc = local("--scenario", "hang-step", "--json", "-e", f"hang_seconds={seconds}",
                 home=home, state=_state_under_tmp, url=f"{url}/down", marks=marks)
    elapsed = time.monotonic() - started
    assert proc.returncode == 3, proc.stdout + proc.stderr
    result = summary(proc)
    assert result["status"] == "escalated"
    evts = events(result["dir"])
    done = steps(evts)
    hang = done["hang"]
    assert hang["status"] == "timeout"
    assert 2.5 <= hang["duration"] < 8, hang
    assert "timed out after 3s (step timeout)" in hang["summary"]
    # The ladder went on after the timeout, then escalated.
    assert done["after-hang"]["status"] == "successful"
    decisions = [e for e in evts if e["kind"] == "decision"]
    assert decisions[0]["after"] == "hang" and decisions[0]["reason"] == "step timeout"
    assert decisions[-1]["decision"] == "escalate"
    assert decisions[-1]["trigger"] == "ladder_exhausted"
    # Killed means killed: the sleep is gone and the task after it never ran.
    assert not [c for c in _cmdlines() if c.startswith(f"sleep {seconds}")]
    assert not (marks / "hang-finished").exists()
    assert elapsed < 60
    journal = json.loads((Path(result["dir"]) / "journal.json").read_text())
    assert {s["name"]: s["status"] for s in journal["steps"]}["hang"] == "timeout"


def test_the_incident_timeout_caps_the_step_and_escalates(
        home: Path, _state_under_tmp: Path, server: tuple[str, list[str]], marks: Path) -> None:
    url, _ = server
    seconds = str(8000 + os.getpid() % 1000)
    proc = local("--scenario", "hang-long", "--json", "--timeout", "4s",
                 "-e", f"hang_seconds={seconds}",
                 home=home, state=_state_under_tmp, url=url, marks=marks)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    result = summary(proc)
    assert result["reason"].startswith("incident timeout: the time budget of 4s ran out at 'hang'")
    evts = events(result["dir"])
    hang = steps(evts)["hang"]
    assert hang["status"] == "timeout"
    assert "(incident time budget)" in hang["summary"], "the 300 s step timeout was capped"
    assert hang["duration"] < 10
    assert [e["trigger"] for e in evts if e["kind"] == "decision"] == ["incident_timeout"]
    assert not [e for e in evts if e["kind"] == "step_started" and e["phase"] == "verify"]
    assert not [c for c in _cmdlines() if c.startswith(f"sleep {seconds}")]


def test_sigterm_to_the_runner_stops_the_whole_playbook_tree(
        home: Path, _state_under_tmp: Path, server: tuple[str, list[str]], marks: Path) -> None:
    url, _ = server
    seconds = str(9000 + os.getpid() % 1000)
    run_env = {**env(), "INCIDENT_RUNNER_STATE_DIR": str(_state_under_tmp),
               "INCIDENT_RUNNER_HOME": str(home),
               "INCIDENT_RUNNER_CONFIG": str(home / "incident-runner.yml")}
    run_env.pop("INCIDENT_RUNNER_WEBHOOK_URL", None)
    proc = subprocess.Popen(
        [CLI, "remediate", "--scenario", "hang-long", "--inventory", str(home / "inventory"),
         "-e", f"safety_url={url}", "-e", f"safety_dir={marks}", "-e", f"hang_seconds={seconds}"],
        cwd=ROOT, env=run_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not [c for c in _cmdlines() if c.startswith(f"sleep {seconds}")]:
            assert time.monotonic() < deadline and proc.poll() is None, "the step never hung"
            time.sleep(0.1)
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err  # interrupted
    assert not [c for c in _cmdlines() if c.startswith(f"sleep {seconds}")]
    [folder] = _state_under_tmp.glob("INC-*-hang-long")
    evts = events(folder)
    assert steps(evts)["hang"]["status"] == "canceled"
    assert evts[-1]["kind"] == "incident_closed" and evts[-1]["status"] == "interrupted"


def test_bad_timeout_is_bad_input(home: Path, _state_under_tmp: Path) -> None:
    proc = cli("remediate", "--scenario", "hang-step", "--timeout", "soon", home=home,
               state=_state_under_tmp)
    assert proc.returncode == 2 and "--timeout" in proc.stderr
    assert "Traceback" not in proc.stderr


# -- flap guard -----------------------------------------------------------------------------
def test_the_flap_guard_stops_the_third_remediation_also_across_restarts(
        home: Path, _state_under_tmp: Path, server: tuple[str, list[str]], marks: Path) -> None:
    url, _ = server
    runs = [local("--scenario", "flappy", "--json", home=home, state=_state_under_tmp, url=url,
                  marks=marks) for _ in range(2)]
    for proc in runs:  # each run is its own process: the count comes from the state dir
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert summary(proc)["status"] == "resolved"

    blocked = local("--scenario", "flappy", "--json", home=home, state=_state_under_tmp, url=url,
                    marks=marks)
    assert blocked.returncode == 3, blocked.stdout + blocked.stderr
    result = summary(blocked)
    assert result["status"] == "escalated"
    key = f"{(home / 'inventory').resolve()}/localhost:flappy"  # the inventory's path: no env var
    assert f"flap guard: '{key}' was already remediated 2 time(s) in the last 60 min " \
           "(limit 2, from the scenario)" in result["reason"]
    evts = events(result["dir"])
    [guard] = [e for e in evts if e["kind"] == "flap_guard"]
    assert (guard["decision"], guard["count"], guard["max_remediations"]) == ("block", 2, 2)
    assert not [e for e in evts if e["kind"] == "step_started" and e["phase"] == "mitigate"]
    kinds = [e["kind"] for e in evts]
    assert "escalated" in kinds and kinds[-1] == "incident_closed"

    # The human-readable run says why, too.
    again = local("--scenario", "flappy", home=home, state=_state_under_tmp, url=url, marks=marks)
    assert again.returncode == 3
    assert "flap guard" in again.stderr and "not acting again" in again.stderr

    # A dry run changes nothing, so it is not refused, but its plan says what would happen.
    check = local("--scenario", "flappy", "--check", home=home, state=_state_under_tmp, url=url,
                  marks=marks)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "WOULD BLOCK" in check.stderr

    # Another target in the same state dir (another inventory: another stack project) is
    # not blocked by this one's history.
    other = home / "other-stack"
    other.mkdir()
    (other / "hosts.yml").write_text((home / "inventory" / "hosts.yml").read_text()
                                     + "  vars:\n    stack_env: staging\n"
                                       "    stack_project: ir-other\n")
    elsewhere = local("--scenario", "flappy", "--json", "--inventory", str(other), home=home,
                      state=_state_under_tmp, url=url, marks=marks)
    assert elsewhere.returncode == 0, elsewhere.stdout + elsewhere.stderr
    assert summary(elsewhere)["status"] == "resolved"
    [guard] = [e for e in events(summary(elsewhere)["dir"]) if e["kind"] == "flap_guard"]
    assert (guard["target_key"], guard["count"]) == ("staging/localhost/ir-other:flappy", 0)


# -- approvals -------------------------------------------------------------------------------
def test_destructive_step_without_yes_or_terminal_is_skipped_and_escalated(
        home: Path, _state_under_tmp: Path, server: tuple[str, list[str]], marks: Path) -> None:
    url, _ = server
    proc = local("--scenario", "destructive", "--json", home=home, state=_state_under_tmp,
                 url=url, marks=marks)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert not (marks / "destroyed").exists(), "nothing destructive happens by default"
    result = summary(proc)
    assert "needs approval: no --yes and no terminal" in result["reason"]
    evts = events(result["dir"])
    [approval] = [e for e in evts if e["kind"] == "approval"]
    assert (approval["step"], approval["decision"], approval["by"]) == (
        "destroy", "skipped", "no-tty")
    assert [e["trigger"] for e in evts if e["kind"] == "decision"] == ["approval"]
    assert not [e for e in evts if e["kind"] == "step_started" and e["phase"] == "mitigate"]


def test_destructive_step_runs_with_yes(home: Path, _state_under_tmp: Path,
                                       server: tuple[str, list[str]], marks: Path) -> None:
    url, _ = server
    proc = local("--scenario", "destructive", "--json", "--yes", home=home,
                 state=_state_under_tmp, url=url, marks=marks)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (marks / "destroyed").exists()
    [approval] = [e for e in events(summary(proc)["dir"]) if e["kind"] == "approval"]
    assert (approval["decision"], approval["by"]) == ("approved", "--yes")


@pytest.mark.parametrize(("answer", "code", "by"), [("n", 3, "declined"), ("y", 0, "interactive")])
def test_destructive_step_asks_on_a_terminal(home: Path, _state_under_tmp: Path,
                                             server: tuple[str, list[str]], marks: Path,
                                             answer: str, code: int, by: str) -> None:
    import pexpect  # noqa: PLC0415 (ansible-runner's dependency; only this test drives a pty)

    url, _ = server
    run_env = {**env(), "INCIDENT_RUNNER_STATE_DIR": str(_state_under_tmp),
               "INCIDENT_RUNNER_HOME": str(home),
               "INCIDENT_RUNNER_CONFIG": str(home / "incident-runner.yml")}
    run_env.pop("INCIDENT_RUNNER_WEBHOOK_URL", None)
    child = pexpect.spawn(CLI, ["remediate", "--scenario", "destructive", "--inventory",
                                str(home / "inventory"), "-e", f"safety_url={url}",
                                "-e", f"safety_dir={marks}"],
                          cwd=str(ROOT), env=run_env, encoding="utf-8", timeout=120)
    try:
        child.expect(r"Step 'destroy' \(playbook touch_marker.yml\) is destructive\. Run it\?")
        assert not (marks / "destroyed").exists(), "asked before acting"
        child.sendline(answer)
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == code, child.before
    assert (marks / "destroyed").exists() is (answer == "y")
    [folder] = _state_under_tmp.glob("INC-*-destructive")
    [approval] = [e for e in events(folder) if e["kind"] == "approval"]
    assert approval["by"] == by


# -- dry run plan on the local fixture ---------------------------------------------------------
def test_check_prints_the_plan_first_and_reports_unknown_impact(
        home: Path, _state_under_tmp: Path, server: tuple[str, list[str]], marks: Path) -> None:
    url, _ = server
    proc = local("--scenario", "hang-long", "--check", "-e", "hang_seconds=1",
                 home=home, state=_state_under_tmp, url=url, marks=marks)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stderr
    first_plan, first_mitigate = out.index("plan "), out.index("mitigate 1/1")
    assert first_plan < first_mitigate, "the plan comes before anything runs"
    for words in ("mode       check", "scenario   hang-long", "severity   unrated",
                  "targets    hosts local", "target     ", "symptom    before the first step",
                  "ladder     default (1",
                  "1. hang: playbook hang.yml; timeout 300s", "hang_seconds:",
                  "verify     test server:", "escalate   to a human", "flap guard 0 of 100",
                  "timeout    incident 10 min"):
        assert words in out, words
    # `command` cannot be checked: its impact is unknown, not "no change".
    assert re.search(r"impact +hang: Hang in a child process on localhost: impact unknown", out)
    [folder] = _state_under_tmp.glob("INC-*-hang-long")
    journal = json.loads((folder / "journal.json").read_text())
    assert journal["plan"]["ladder"]["steps"][0]["name"] == "hang"
    [first] = [c for c in journal["check_results"] if c["step"] == "hang"]
    assert first["impact_unknown"] == ["Hang in a child process on localhost"]
    assert "impact unknown for part of the plan" in journal["reason"]
    assert not (marks / "hang-finished").exists(), "check mode touched nothing"


# -- secrets -------------------------------------------------------------------------------------
def _vaulted_inventory(tmp_path: Path) -> tuple[Path, Path]:
    vault = VaultLib([("default", VaultSecret(VAULT_PASSWORD.encode()))])
    inv = tmp_path / "vaulted-inventory"
    (inv / "group_vars" / "all").mkdir(parents=True)
    shutil.copy(FIXTURE_HOME / "inventory" / "hosts.yml", inv / "hosts.yml")
    (inv / "group_vars" / "all" / "vault.yml").write_bytes(
        vault.encrypt(f"vault_canary: {CANARIES['vault_file']}\n"))
    inline = vault.encrypt(CANARIES["vault_inline"]).decode()
    (inv / "group_vars" / "all" / "vars.yml").write_text(
        "inline_canary: !vault |\n" + "".join(f"  {line}\n" for line in inline.splitlines()))
    (inv / "group_vars" / "all" / "shapes.yml").write_text(
        f"shapes_hook: https://hooks.slack.com/services/T00/B00/{CANARIES['hook']}\n"
        f"shapes_aws: {CANARIES['aws']}\n"
        "shapes_pem: |\n  -----BEGIN RSA PRIVATE KEY-----\n"
        f"  MIIEpA{CANARIES['pem']}\n  -----END RSA PRIVATE KEY-----\n")
    password_file = tmp_path / "vault-password"
    password_file.write_text(VAULT_PASSWORD + "\n")
    password_file.chmod(0o600)
    return inv, password_file


def _assert_no_canary(state: Path, *procs: subprocess.CompletedProcess[str]) -> None:
    for name, canary in CANARIES.items():
        for proc in procs:
            assert canary not in proc.stdout, (name, "stdout")
            assert canary not in proc.stderr, (name, "stderr")
        assert grep_tree(state, canary) == [], name


def test_secrets_never_appear_in_any_output(home: Path, _state_under_tmp: Path, tmp_path: Path,
                                            server: tuple[str, list[str]], marks: Path) -> None:
    url, posts = server
    inv, password_file = _vaulted_inventory(tmp_path)
    secret_env = {"CANARY_TOKEN": CANARIES["env_token"], "SAFETY_OPAQUE": CANARIES["opaque_env"],
                  "INCIDENT_RUNNER_WEBHOOK_URL": f"{url}/hook",
                  "LEAKY_HEADER": f"Authorization: Bearer {CANARIES['header']}"}
    common = ("--scenario", "leaky", "--inventory", str(inv), "--vault-password-file",
              str(password_file), "-e", f"password={CANARIES['extra_var']}",
              "-e", f"dsn=postgres://app:{CANARIES['dsn']}@db.internal/x")
    ok = local(*common, "--json", home=home, state=_state_under_tmp, url=url, marks=marks,
               extra_env=secret_env)
    failed = local(*common, "-e", "leaky_fail=true", home=home, state=_state_under_tmp,
                   url=url, marks=marks, extra_env=secret_env)
    verbose = local(*common, "-vvv", home=home, state=_state_under_tmp, url=url, marks=marks,
                    extra_env=secret_env)
    dry = local(*common, "-vvv", "--check", home=home, state=_state_under_tmp, url=url,
                marks=marks, extra_env=secret_env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert failed.returncode == 3, failed.stdout + failed.stderr
    assert verbose.returncode == 0, verbose.stdout + verbose.stderr
    assert dry.returncode == 0, dry.stdout + dry.stderr

    # Positive control: the step did print them (masked), so the test exercises the leak.
    folder = Path(summary(ok)["dir"])
    [printed] = [e for e in events(folder) if e["kind"] == "task_result"
                 and e["task"] == "Print the secrets"]
    assert "password=*** token=*** vault=*** inline=*** opaque=***" in printed["message"]
    assert "failing with *** *** *** *** ***" in failed.stderr
    [shaped] = [e for e in events(folder) if e["kind"] == "task_result"
                and e["task"] == "Print the shaped secrets"]
    assert shaped["status"] == "ok"  # it ran and printed them; the greps below find none
    artifacts = list((folder / "artifacts").iterdir())
    assert artifacts and all((a / "command").exists() and (a / "stdout").exists()
                             for a in artifacts)
    stdout = (folder / "artifacts" / "02-mitigate-leak" / "stdout").read_text()
    assert "password=*** token=***" in stdout
    assert len(list(_state_under_tmp.glob("INC-*-leaky"))) == 4

    _assert_no_canary(_state_under_tmp, ok, failed, verbose, dry)
    for body in posts:  # the webhook messages too
        for canary in CANARIES.values():
            assert canary not in body


# -- hostile input -------------------------------------------------------------------------------
def test_injection_payloads_are_data_everywhere(home: Path, _state_under_tmp: Path,
                                                tmp_path: Path, server: tuple[str, list[str]],
                                                marks: Path) -> None:
    url, posts = server
    payload = (f"; touch {marks}/semi $(touch {marks}/subshell) `touch {marks}/backtick` "
               f"{{{{ lookup('pipe', 'touch {marks}/jinja') }}}} {{% raw %}}\n"
               f"second line {{{{ lookup('ansible.builtin.pipe', 'touch {marks}/jinja2') }}}}"
               + " long" * 4000)
    inv = tmp_path / "hostile-inventory"
    inv.mkdir()
    evil_host = f"evil;$(touch {marks}/host)`touch {marks}/host-bt`"
    (inv / "hosts.yml").write_text(json.dumps({"all": {"children": {"local": {"hosts": {
        evil_host: {"ansible_connection": "local",
                    "ansible_python_interpreter": "{{ ansible_playbook_python }}"}}}}}}))
    proc = cli("remediate", "--scenario", "hostile", "--inventory", str(inv), "--json",
               "-e", f"safety_url={url}", "-e", f"safety_dir={marks}", "-e", f"payload={payload}",
               home=home, state=_state_under_tmp,
               extra_env={"INCIDENT_RUNNER_WEBHOOK_URL": f"{url}/hook"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # Nothing ran: the only file is the one the step wrote, holding the payload as text.
    assert sorted(p.name for p in marks.iterdir()) == ["payload-as-written"]
    assert (marks / "payload-as-written").read_text() == payload
    folder = Path(summary(proc)["dir"])
    hosts = {e.get("host") for e in events(folder) if e["kind"] == "task_result"}
    assert evil_host in hosts  # (verify and notify run on the implicit localhost)
    html = (folder / "report.html").read_text()
    assert "<script>alert(1)</script>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    sent = json.loads((folder / "messages.json").read_text())
    assert "message template error" in sent["initial"]  # no lookup() in the sandbox
    assert "message template error" in sent["resolved"]  # no __class__ either
    assert posts, "the webhook was called with the hostile title"

    # A hostile --limit is an argument, not a command.
    limited = cli("remediate", "--scenario", "hostile", "--inventory", str(inv),
                  "--limit", f"$(touch {marks}/limit);`touch {marks}/limit-bt`",
                  "-e", f"safety_url={url}", "-e", f"safety_dir={marks}", "-e", "payload=x",
                  home=home, state=_state_under_tmp)
    # It matches no host: bad input, one line naming --limit, before anything runs.
    assert limited.returncode == 2, limited.stdout + limited.stderr
    assert len(limited.stderr.strip().splitlines()) == 1, limited.stderr
    assert "--limit" in limited.stderr
    assert sorted(p.name for p in marks.iterdir()) == ["payload-as-written"]


# -- the live fault: --check changes nothing (staging stack) ---------------------------------------
def _docker_state(stack: Stack) -> dict[str, Any]:
    flt = f"label={LABEL}={stack.project}"
    ids = docker("ps", "-aq", "--filter", flt).split()
    containers = {}
    services: Counter[str] = Counter()
    for c in json.loads(docker("inspect", *ids)):
        labels = c["Config"]["Labels"] or {}
        services[labels.get("com.docker.compose.service", c["Name"])] += 1
        containers[c["Name"]] = {
            "id": c["Id"], "image": c["Image"], "running": c["State"]["Running"],
            "started": c["State"]["StartedAt"], "pid": c["State"]["Pid"],
            "restarts": c["RestartCount"],
            "memory": c["HostConfig"]["Memory"], "swap": c["HostConfig"]["MemorySwap"],
            "networks": {name: sorted(net.get("Aliases") or [])
                         for name, net in c["NetworkSettings"]["Networks"].items()},
            "labels": labels,
        }
    networks = {}
    for net_id in docker("network", "ls", "-q", "--filter", flt).split():
        net = json.loads(docker("network", "inspect", net_id))[0]
        networks[net["Name"]] = sorted(m["Name"] for m in (net.get("Containers") or {}).values())
    images = sorted(docker("images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}",
                           f"{stack.project}/app").splitlines())
    return {"containers": containers, "replicas": dict(services), "networks": networks,
            "images": images}


def _git_state(repo: Path) -> dict[str, str]:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              check=True).stdout
    return {"head": git("rev-parse", "HEAD"), "refs": git("for-each-ref"),
            "status": git("status", "--porcelain"), "stash": git("stash", "list")}


@pytest.fixture
def evil_container(stack: Stack, marks: Path) -> Iterator[str]:
    """A container of the project with hostile labels and a secret in its environment."""
    name = f"{stack.project}-evil-1"
    docker("run", "-d", "--init", "--name", name,
           "--label", f"{LABEL}={stack.project}",
           "--label", f"com.docker.compose.project={stack.project}",
           "--label", f"evil.sh=$(touch {marks}/label-sh);`touch {marks}/label-bt`",
           "--label", f"evil.j2={{{{ lookup('pipe', 'touch {marks}/label-j2') }}}}",
           "--label", "evil.nl=line1\nline2 <script>alert(1)</script>",
           "--env", f"EVIL_TOKEN={CANARIES['env_token']}",
           "incident-runner/base:bookworm", "sleep", "3600")
    try:
        yield name
    finally:
        docker("rm", "-f", name, check=False)


def test_check_on_a_live_fault_changes_nothing(stack: Stack, evil_container: str,
                                               _state_under_tmp: Path, marks: Path) -> None:
    stack.playbook("playbooks/faults/proxy-502.yml")
    assert http_status(stack.url + "/api/health") == 502
    before = (_docker_state(stack), _git_state(stack.deploy_src))
    secret_env = {"CANARY_TOKEN": CANARIES["env_token"]}

    proc = cli("remediate", "--scenario", "proxy-502", "--inventory", str(stack.inventory),
               "--check", "-vvv", "-e", f"password={CANARIES['extra_var']}",
               home=None, state=_state_under_tmp, extra_env=secret_env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    after = (_docker_state(stack), _git_state(stack.deploy_src))
    assert after == before, "check mode changed the Docker state or the deploy source"
    assert http_status(stack.url + "/api/health") == 502, "still broken: nothing was fixed"
    for words in ("plan           scenario   proxy-502", "reconnect-networks: role "
                  "reconnect_networks", "restart-proxy",
                  f"target     staging/localhost/{stack.project}:proxy",
                  "verify     api through the proxy", "targets    hosts staging"):
        assert words in proc.stderr, words
    [folder] = _state_under_tmp.glob("INC-*-proxy-502")
    evts = events(folder)
    kinds = [e["kind"] for e in evts]
    assert kinds.index("plan") < kinds.index("step_started")
    assert all(e["check_mode"] for e in evts if e["kind"] == "step_started"
               and e["phase"] == "mitigate")
    checked = [e for e in evts if e["kind"] == "check_result"]
    assert [c["step"] for c in checked] == ["reconnect-networks", "restart-proxy"]
    assert checked[0]["would_change"], "the plan shows the reconnection it would make"
    journal = json.loads((folder / "journal.json").read_text())
    assert journal["status"] == "checked" and journal["check_mode"] is True
    # Hostile labels were captured as data by the diagnostics, never executed.
    assert list(marks.iterdir()) == []
    assert grep_tree(folder / "diagnostics", "evil.j2"), "the evil container was captured"
    _assert_no_canary(_state_under_tmp, proc)

    # And the real run, with the same canaries at -vvv, fixes it without leaking them.
    fixed = cli("remediate", "--scenario", "proxy-502", "--inventory", str(stack.inventory),
                "-vvv", "-e", f"password={CANARIES['extra_var']}", "--json",
                home=None, state=_state_under_tmp, extra_env=secret_env)
    assert fixed.returncode == 0, fixed.stdout[-3000:] + fixed.stderr[-3000:]
    assert summary(fixed)["status"] == "resolved"
    assert http_status(stack.url + "/api/health") == 200
    assert list(marks.iterdir()) == []
    _assert_no_canary(_state_under_tmp, proc, fixed)
