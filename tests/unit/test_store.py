"""The state backend choice and its pure logic (the server: tests/integration/test_postgres.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from incident_runner.config import Config, SafetySettings, parse_config
from incident_runner.errors import ExitCode, InputError
from incident_runner.lock import TargetLock
from incident_runner.safety import FlapGuard
from incident_runner.store import STATE_URL_ENV, LocalStore, open_store, resolve_state_url
from incident_runner.store.postgres import (
    SCHEMA_VERSION,
    advisory_key,
    check_url,
    connect,
    describe_url,
    migrations,
)


def _config(tmp_path: Path, state_url: str | None) -> Config:
    data = {"state_url": state_url} if state_url else {}
    return parse_config(data, tmp_path / "incident-runner.yml")


def test_precedence_flag_then_environment_then_config(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config(tmp_path, "postgresql://cfg/db")
    monkeypatch.setenv(STATE_URL_ENV, "postgresql://env/db")
    assert resolve_state_url("postgresql://flag/db", config)[:1] == ("postgresql://flag/db",)
    assert resolve_state_url(None, config) == ("postgresql://env/db", "",
                                               f"${STATE_URL_ENV}")
    monkeypatch.delenv(STATE_URL_ENV)
    assert resolve_state_url(None, config) == ("postgresql://cfg/db", config.origin,
                                               "state_url")
    assert resolve_state_url(None, _config(tmp_path, None)) == (None, "", "")


def test_without_a_url_the_default_is_sqlite_and_flock(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(STATE_URL_ENV, raising=False)
    store = open_store(None, _config(tmp_path, None), tmp_path)
    assert isinstance(store, LocalStore)
    lock = store.lock(["env/host:svc"], {"incident_id": "INC-1"}, {})
    assert isinstance(lock, TargetLock)
    lock.acquire(0)
    lock.ensure_held()  # a flock lasts as long as the process: never raises
    lock.close()
    assert store.list_incidents() == []
    assert (tmp_path / "history.sqlite").is_file()


@pytest.mark.parametrize(("url", "says"), [
    ("mysql://u@h/db", "'mysql' is not a postgresql:// URL"),
    ("sqlite:///tmp/x", "'sqlite' is not a postgresql:// URL"),
    ("postgresql://h/db?nonsense_option=1", "not a valid PostgreSQL URL"),
    ("postgresql://h:notaport/db", "not a valid PostgreSQL URL"),
])
def test_a_bad_url_is_bad_input_naming_where_it_came_from(url: str, says: str) -> None:
    with pytest.raises(InputError) as err:
        check_url(url, "incident-runner.yml", "state_url")
    assert err.value.code == ExitCode.BAD_INPUT
    assert says in str(err.value)
    assert str(err.value).startswith("incident-runner.yml: state_url: ")


def test_a_config_state_url_must_be_a_string(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="state_url"):
        parse_config({"state_url": 5}, tmp_path / "incident-runner.yml")


def test_describe_url_never_shows_the_password() -> None:
    text = describe_url("postgresql://runner:s3cret@db.example:6543/ir")
    assert text == "db.example:6543/ir"
    assert "s3cret" not in text


def test_unreachable_server_is_one_line_exit_1_without_the_password() -> None:
    # Port 1 on loopback: refused at once, no traffic leaves the machine.
    from incident_runner.store import StoreUnavailableError  # noqa: PLC0415

    with pytest.raises(StoreUnavailableError) as err:
        connect("postgresql://runner:s3cret@127.0.0.1:1/ir", "test")
    assert err.value.code == ExitCode.FAILED
    assert "\n" not in str(err.value) and "s3cret" not in str(err.value)
    assert str(err.value).startswith("state database 127.0.0.1:1/ir unreachable: ")


def test_advisory_keys_are_stable_signed_64_bit_and_namespaced() -> None:
    key = advisory_key("lock", "staging/web/shop:api")
    assert key == advisory_key("lock", "staging/web/shop:api")
    assert -(2 ** 63) <= key < 2 ** 63
    assert key != advisory_key("incident", "staging/web/shop:api")
    assert key != advisory_key("lock", "staging/web/shop:db")


def test_migrations_are_numbered_in_order() -> None:
    found = migrations()
    assert [v for v, _, _ in found] == list(range(1, len(found) + 1))
    assert found[-1][0] == SCHEMA_VERSION
    assert "CREATE TABLE ir_incidents" in found[0][2]


class CountingStore(LocalStore):
    def __init__(self, root: Path, count: int) -> None:
        super().__init__(root)
        self.count = count
        self.asked: list[str] = []

    def count_remediations(self, target_key: str, since: datetime | float | str) -> int:
        self.asked.append(target_key)
        return self.count


def test_the_flap_guard_counts_through_the_store(tmp_path: Path) -> None:
    store = CountingStore(tmp_path, 2)
    guard = FlapGuard.for_scenario(2, None, SafetySettings(), tmp_path, store)
    verdict = guard.check("env/host:svc", datetime.now(UTC))
    assert not verdict.allowed and verdict.count == 2
    assert store.asked == ["env/host:svc"]


@pytest.mark.parametrize("args", [
    ["--state-url", "mysql://u@h/db", "incidents"],
    ["incidents", "--state-url", "mysql://u@h/db"],
    ["stats", "--state-url", "mysql://u@h/db"],
    ["db", "upgrade", "--state-url", "mysql://u@h/db"],
])
def test_state_url_before_or_after_the_subcommand_is_checked(
        args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner  # noqa: PLC0415

    from incident_runner.cli import cli  # noqa: PLC0415

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, args, standalone_mode=False)
    assert isinstance(result.exception, InputError)
    assert result.exception.field == "--state-url"
    assert not (tmp_path / "incidents").exists()
