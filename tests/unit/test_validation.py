"""Scenario and input validation: broken files give one-line errors naming file and field."""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from incident_runner.errors import ExitCode, InputError
from incident_runner.input_validation import detect_kind, validate_files
from incident_runner.scenario import catalog, find_scenario, load_scenario_file, parse_scenario
from incident_runner.validation import load_yaml, validate

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "bad_input"
SCENARIOS = FIXTURES / "scenarios"
VALID = yaml.safe_load((SCENARIOS / "valid.yml").read_text())


@pytest.mark.parametrize(("name", "field", "words"), [
    ("syntax-error", "line 8", "invalid YAML: expected ',' or ']'"),
    ("wrong-type", "ladders.default.0.timeout", "'soon' is not of type 'integer'"),
    ("unknown-key", "targets.service", "unknown key (allowed: hosts, services)"),
    ("missing-field", "title", "required field is missing"),
    ("id-mismatch", "id", "id 'proxy-502' must match the file name 'id-mismatch'"),
    ("not-a-mapping", "(top level)", "is not of type 'object'"),
    ("empty-ladder", "ladders.default", "needs escalation.no_local_fix: true"),
])
def test_broken_scenarios_name_file_and_field(name: str, field: str, words: str) -> None:
    path = SCENARIOS / f"{name}.yml"
    with pytest.raises(InputError) as err:
        load_scenario_file(path)
    exc = err.value
    assert exc.code == ExitCode.BAD_INPUT
    assert exc.source == str(path)
    assert exc.field == field
    assert words in exc.message
    assert exc.message.startswith(f"{path}: {field}: ")
    assert "\n" not in exc.message


def test_the_control_fixture_is_valid() -> None:
    scenario = load_scenario_file(SCENARIOS / "valid.yml")
    assert scenario.ladder_for("rollback-now")[0] == "rollback-now"
    assert scenario.ladder_for("monitor")[0] == "default"


def test_the_shipped_catalog_is_valid() -> None:
    found = catalog([ROOT / "scenarios"])
    assert "proxy-502" in found


def test_every_error_is_reported_at_once() -> None:
    data = copy.deepcopy(VALID)
    data["title"] = 5
    data["targets"]["hosts"] = ""
    data["verify"]["checks"][0]["successes"] = 0
    with pytest.raises(InputError) as err:
        parse_scenario(data, Path("valid.yml"))
    assert "(and 2 more: " in err.value.message


def test_unknown_scenario_names_the_catalog_and_the_flag() -> None:
    with pytest.raises(InputError) as err:
        find_scenario("no-such-thing", [SCENARIOS])
    assert str(SCENARIOS) in str(err.value.source)  # names where it looked
    assert err.value.field == "--scenario"
    assert "valid" in err.value.message  # lists what exists
    with pytest.raises(InputError):
        find_scenario("../scenarios/valid", [SCENARIOS])


@pytest.mark.parametrize(("text", "words"), [
    ("title: 2024-13-45\n", "invalid YAML value"),  # PyYAML raises ValueError for this date
    ("a: !!python/object:os.system {}\n", "invalid YAML"),
    ("a: [" * 5000 + "\n", "invalid YAML"),
    ("\x00", "invalid YAML"),
    ("? [a]\n: b\nc: {[x]: y}\n", "invalid YAML"),
])
def test_load_yaml_turns_every_failure_into_input_error(tmp_path: Path, text: str,
                                                        words: str) -> None:
    path = tmp_path / "x.yml"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        load_yaml(path)
    assert words in err.value.message and str(path) in err.value.message


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        load_yaml(tmp_path / "absent.yml")
    (tmp_path / "bin.yml").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(InputError, match="cannot read"):
        load_yaml(tmp_path / "bin.yml")


def test_validate_names_an_unknown_key_in_a_step() -> None:
    data = copy.deepcopy(VALID)
    data["ladders"]["default"][0]["rolle"] = "x"
    with pytest.raises(InputError) as err:
        validate(data, "scenario", "s.yml")
    assert "ladders.default.0" in err.value.message


# -- kind detection and the validate API --------------------------------------------
@pytest.mark.parametrize(("path", "kind"), [
    (ROOT / "scenarios", "catalog"),
    (ROOT / "scenarios" / "proxy-502.yml", "scenario"),
    (ROOT / "incident-runner.yml", "config"),
    (ROOT / "inventories" / "staging", "inventory"),
    (ROOT / "inventories" / "staging" / "hosts.yml", "inventory"),
    (FIXTURES / "configs" / "unknown-key.yml", "config"),  # a typo must not pass as inventory
    (FIXTURES / "configs" / "bad-default.yml", "config"),
    (FIXTURES / "inventories" / "broken.ini", "inventory"),
])
def test_detect_kind(path: Path, kind: str) -> None:
    assert detect_kind(path) == kind


def test_validate_files_reports_every_file() -> None:
    files = sorted(SCENARIOS.glob("*.yml")) + sorted((FIXTURES / "configs").glob("*.yml"))
    report = validate_files(files)
    assert len(report.checks) == len(files)
    assert [Path(c.path).name for c in report.checks if c.ok] == ["valid.yml"]
    assert not report.ok
    for check in report.invalid:
        assert "\n" not in check.error
        assert Path(check.path).name in check.error


def test_validate_without_paths_checks_catalog_config_and_inventory(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("INCIDENT_RUNNER_CONFIG", raising=False)
    report = validate_files()
    kinds = {c.kind for c in report.checks}
    assert kinds == {"scenario", "config", "inventory"}, report.as_dict()
    assert report.ok, [c.error for c in report.invalid]


# -- property: parse_scenario only ever raises InputError ----------------------------
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**12),
                     st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=10),
                     st.sampled_from(["default", "staging", "reconnect_networks", "x.yml",
                                      "../x.yml", "valid", "rollback-now"]))
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.one_of(st.text(max_size=8), st.integers(0, 3)), inner, max_size=3)),
    max_leaves=10)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*prefix, i))
    return out


def _mutate(data: Any, draw: st.DrawFn) -> Any:
    """Replace, delete or add at a random place in a valid scenario."""
    path = draw(st.sampled_from(_paths(data)))
    if not path:
        return draw(_values)
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    action = draw(st.sampled_from(["replace", "delete", "add"]))
    if action == "replace":
        parent[path[-1]] = draw(_values)
    elif action == "delete":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[draw(st.text(max_size=8))] = draw(_values)
    else:
        parent.append(draw(_values))
    return data


@st.composite
def _scenario_like(draw: st.DrawFn) -> Any:
    data: Any = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(1, 4))):
        data = _mutate(data, draw)
    return data


def _source_for(data: Any) -> Path:
    ident = data.get("id") if isinstance(data, dict) else None
    return Path(f"{ident}.yml" if isinstance(ident, str) and ident else "random.yml")


@settings(max_examples=400, deadline=None)
@given(_scenario_like())
def test_parse_scenario_raises_only_input_error(data: Any) -> None:
    source = _source_for(data)
    try:
        scenario = parse_scenario(data, source)
    except InputError as exc:
        assert exc.source == str(source)
        assert exc.code == ExitCode.BAD_INPUT
        return
    assert "default" in scenario.ladders


@settings(max_examples=200, deadline=None)
@given(_values)
def test_parse_scenario_on_arbitrary_values(data: Any) -> None:
    with contextlib.suppress(InputError):
        parse_scenario(data, Path("random.yml"))


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(
    st.text(max_size=120),
    _scenario_like().map(lambda d: yaml.safe_dump(d, sort_keys=False)),
    st.tuples(_scenario_like().map(lambda d: yaml.safe_dump(d, sort_keys=False)),
              st.integers(0, 400), st.text(max_size=6)).map(
        lambda t: t[0][:t[1]] + t[2] + t[0][t[1]:]),
))
def test_scenario_files_raise_only_input_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "valid.yml"
    path.write_text(text, encoding="utf-8")
    try:
        load_scenario_file(path)
    except InputError as exc:
        assert str(path) in exc.message
