"""Severity as configuration: presets, config discovery and merging, and the engine's use of it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from incident_runner import engine
from incident_runner.config import CONFIG_ENV, Config, load_config, parse_config
from incident_runner.errors import InputError
from incident_runner.executor import PlaybookRun
from incident_runner.severity import DEFAULT_PRESET, load_preset, preset_names
from incident_runner.timeline import read_timeline

ROOT = Path(__file__).resolve().parents[2]


def _write(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No config anywhere: empty cwd, empty project root, no env var."""
    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("INCIDENT_RUNNER_HOME", str(home))
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    monkeypatch.chdir(work)
    return work


# -- presets -------------------------------------------------------------------
def test_the_five_seed_scales_ship_as_presets() -> None:
    scales = {name: load_preset(name).names for name in preset_names()}
    assert scales == {
        "p0-p3": ["P0", "P1", "P2", "P3"],
        "sev1-sev4": ["SEV1", "SEV2", "SEV3", "SEV4"],
        "sev-1-sev-3": ["SEV-1", "SEV-2", "SEV-3"],
        "p1-p4": ["P1", "P2", "P3", "P4"],
        "p1-p4-client": ["P1", "P2", "P3", "P4"],
    }


def test_p1_means_different_things_in_different_scales() -> None:
    p0_p3 = load_preset("p0-p3").get("P1")
    p1_p4 = load_preset("p1-p4").get("P1")
    assert p0_p3 is not None and p1_p4 is not None
    assert (p0_p3.label, p0_p3.rank) == ("Major", 1)
    assert (p1_p4.label, p1_p4.rank) == ("Critical", 0)


@pytest.mark.parametrize(("preset", "level", "response", "window", "cadence", "contacts"), [
    ("p0-p3", "P0", 15, 15, 15, ["on-call engineer", "CTO"]),
    ("p0-p3", "P3", None, None, None, ["on-call engineer"]),
    ("sev1-sev4", "SEV1", 0, 0, None, ["all hands"]),
    ("sev1-sev4", "SEV2", 30, 30, None, ["engineering lead"]),
    ("sev1-sev4", "SEV3", 120, 120, None, ["on-call engineer"]),
    ("sev-1-sev-3", "SEV-2", 15, 15, 30, ["Reliability Team", "engineer", "#incidents"]),
    ("p1-p4", "P1", 15, 15, 30, ["on-call engineer", "CTO/founder",
                                 "all available team members"]),
    ("p1-p4", "P2", 60, 60, 60, ["on-call engineer", "team lead"]),
    ("p1-p4-client", "P1", 60, 240, None, ["AI solutions engineer",
                                           "Ben (client communication)"]),
])
def test_preset_levels_carry_the_seed_numbers(preset: str, level: str, response: float | None,
                                              window: float | None, cadence: float | None,
                                              contacts: list[str]) -> None:
    lv = load_preset(preset).get(level)
    assert lv is not None
    assert lv.response_time_minutes == response
    assert lv.escalation_window_minutes == window
    assert lv.update_cadence_minutes == cadence
    assert list(lv.contacts) == contacts


def test_seed_002_levels_pick_their_ladders() -> None:
    scale = load_preset("sev-1-sev-3")
    assert {lv.name: lv.ladder for lv in scale.levels} == {
        "SEV-1": "rollback-now", "SEV-2": None, "SEV-3": "monitor"}


def test_level_lookup_is_case_insensitive_and_info_is_complete() -> None:
    level = load_preset("sev-1-sev-3").get(" sev-1 ")
    assert level is not None and level.name == "SEV-1"
    info = level.info()
    assert info["level"] == "SEV-1" and info["scale"] == "sev-1-sev-3"
    assert {"response_time_minutes", "escalation_window_minutes", "contacts",
            "update_cadence_minutes", "ladder"} <= set(info)
    json.dumps(info)  # goes into the timeline as is


def test_unknown_preset_names_the_field() -> None:
    with pytest.raises(InputError) as err:
        parse_config({"severity": {"preset": "p9"}}, Path("ir.yml"))
    assert err.value.field == "severity.preset" and err.value.source == "ir.yml"
    assert "p0-p3" in err.value.message


# -- config discovery ------------------------------------------------------------
def test_no_config_means_the_default_preset_and_unrated(no_config: Path) -> None:
    config = load_config()
    assert config.source is None
    assert config.scale.name == DEFAULT_PRESET
    assert config.level(None) is None
    assert config.origin == f"built-in preset {DEFAULT_PRESET}"


def test_discovery_order(no_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root_cfg = _write(tmp_path / "home" / "incident-runner.yml", {"severity": {"preset": "p1-p4"}})
    assert load_config().source == root_cfg
    cwd_cfg = _write(no_config / "incident-runner.yml", {"severity": {"preset": "sev1-sev4"}})
    assert load_config().source == cwd_cfg
    env_cfg = _write(tmp_path / "env.yml", {"severity": {"preset": "sev-1-sev-3"}})
    monkeypatch.setenv(CONFIG_ENV, str(env_cfg))
    assert load_config().scale.name == "sev-1-sev-3"
    flag_cfg = _write(tmp_path / "flag.yml", {"severity": {"preset": "p1-p4-client"}})
    assert load_config(flag_cfg).scale.name == "p1-p4-client"


def test_missing_config_names_where_it_came_from(no_config: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InputError) as err:
        load_config(tmp_path / "nope.yml")
    assert err.value.field == "--config"
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "also-nope.yml"))
    with pytest.raises(InputError) as err:
        load_config()
    assert err.value.field == f"${CONFIG_ENV}"
    with pytest.raises(InputError, match="is a directory"):
        load_config(tmp_path)


def test_the_shipped_config_is_valid_and_uses_the_staging_preset() -> None:
    config = load_config(ROOT / "incident-runner.yml")
    assert config.scale.name == "p0-p3"


def test_an_empty_config_file_is_all_defaults(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.yml", "")
    config = load_config(path)
    assert config.scale.name == DEFAULT_PRESET and config.default_severity is None


# -- merging -------------------------------------------------------------------
def test_levels_override_by_name_and_append_new_ones() -> None:
    config = parse_config({
        "severity": {"preset": "p0-p3", "levels": [
            {"name": "p1", "escalation_window_minutes": 20, "contacts": ["#incidents"]},
            {"name": "P4", "label": "Info", "response_time_minutes": None,
             "escalation_window_minutes": None, "contacts": []},
        ]},
        "default_severity": "p2",
    }, Path("c.yml"))
    assert config.scale.names == ["P0", "P1", "P2", "P3", "P4"]
    p1 = config.scale.get("P1")
    assert p1 is not None
    assert (p1.escalation_window_minutes, p1.contacts, p1.response_time_minutes) == (
        20, ("#incidents",), 60)
    assert config.default_severity == "P2"  # canonical spelling
    assert config.scale.name == "p0-p3+config"


def test_levels_without_a_preset_are_the_whole_scale() -> None:
    config = parse_config({"severity": {"levels": [
        {"name": "RED", "label": "Red", "response_time_minutes": 5,
         "escalation_window_minutes": 10, "contacts": ["ops"], "ladder": "rollback-now"},
        {"name": "AMBER", "label": "Amber", "response_time_minutes": 60,
         "escalation_window_minutes": None, "contacts": ["ops"]},
    ]}}, Path("c.yml"))
    assert config.scale.name == "custom"
    assert config.scale.names == ["RED", "AMBER"]


@pytest.mark.parametrize(("data", "field", "words"), [
    ({"severity": {"preset": "p0-p3", "levels": [{"name": "P9", "label": "x"}]}},
     "severity.levels.0", "missing: response_time_minutes"),
    ({"severity": {"levels": [{"name": "A", "label": "a"}]}}, "severity.levels.0", "needs every"),
    ({"severity": {"preset": "p0-p3", "levels": [{"name": "P1"}, {"name": "p1"}]}},
     "severity.levels.1.name", "duplicate level"),
    ({"default_severity": "SEV1"}, "default_severity", "valid levels in p0-p3: P0, P1, P2, P3"),
    ({"severity": {"preset": "p0-p3", "levels": [{"name": "P0", "contacts": "CTO"}]}},
     "severity.levels.0.contacts", "not of type 'array'"),
    ({"severity": {"preset": "p0-p3", "levels": [{"name": "P0", "escalation_window_minutes": -1}]}},
     "severity.levels.0.escalation_window_minutes", "less than the minimum"),
    ({"severty": {"preset": "p0-p3"}}, "severty", "unknown key"),
    ({"severity": {"preset": "p0-p3", "level": []}}, "severity.level", "unknown key"),
    (["severity"], "(top level)", "not of type 'object'"),
])
def test_bad_configs_name_file_and_field(data: Any, field: str, words: str) -> None:
    with pytest.raises(InputError) as err:
        parse_config(data, Path("conf/ir.yml"))
    assert err.value.source == "conf/ir.yml"
    assert err.value.field == field
    assert words in err.value.message
    assert "\n" not in err.value.message


def test_unknown_severity_names_the_flag_and_lists_levels() -> None:
    config = Config(source=Path("ir.yml"), scale=load_preset("sev1-sev4"))
    with pytest.raises(InputError) as err:
        config.level("P1")
    assert err.value.field == "--severity"
    assert err.value.message == (
        "ir.yml: --severity: unknown severity 'P1' (valid levels in sev1-sev4: "
        "SEV1, SEV2, SEV3, SEV4)")
    with pytest.raises(InputError):
        config.level("")


# -- property: config loading only ever raises InputError ------------------------
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**12),
                     st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8)
_level_keys = st.sampled_from(["name", "label", "definition", "response_time_minutes",
                               "escalation_window_minutes", "update_cadence_minutes",
                               "resolution_target_minutes", "contacts", "ladder", "bogus"])
_level_values = st.one_of(_values, st.sampled_from(["P0", "P1", "SEV-1", "p9", "rollback-now"]),
                          st.integers(0, 1000), st.lists(st.text(max_size=5), max_size=2))
_levels = st.lists(st.dictionaries(_level_keys, _level_values, max_size=9), max_size=4)
_configs = st.fixed_dictionaries({}, optional={
    "severity": st.one_of(_values, st.fixed_dictionaries({}, optional={
        "preset": st.one_of(st.sampled_from([*preset_names(), "p9", ""]), _values),
        "levels": st.one_of(_levels, _values),
    })),
    "default_severity": st.one_of(st.sampled_from(["P0", "p1", "SEV-2", "P9", ""]), _values),
    "extra": _values,
})


@settings(max_examples=300, deadline=None)
@given(_configs)
def test_parse_config_raises_only_input_error(data: dict[str, Any]) -> None:
    try:
        config = parse_config(data, Path("random.yml"))
    except InputError as exc:
        assert exc.source == "random.yml"
        return
    assert config.scale.levels
    for level in config.scale.levels:
        json.dumps(level.info())


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.text(max_size=80), _configs.map(yaml.safe_dump)))
def test_config_files_raise_only_input_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "random.yml"
    path.write_text(text, encoding="utf-8")
    try:
        load_config(path)
    except InputError as exc:
        assert str(path) in exc.message


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=40))
def test_level_lookup_raises_only_input_error(name: str) -> None:
    config = Config(source=None, scale=load_preset("p0-p3"))
    try:
        level = config.level(name)
    except InputError as exc:
        assert exc.field == "--severity"
        return
    assert level is not None and level.name.casefold() == name.strip().casefold()


# -- the engine: ladder per level, escalation window -----------------------------
def _scenario(dirpath: Path) -> Path:
    scenarios = dirpath / "scenarios"
    _write(scenarios / "sev-test.yml", {
        "id": "sev-test", "title": "severity test", "description": "fake runs only",
        "targets": {"hosts": "staging"}, "diagnostics": {"enabled": False},
        "ladders": {
            "default": [{"name": "first", "role": "reconnect_networks"},
                        {"name": "second", "role": "reconnect_networks"}],
            "rollback-now": [{"name": "rollback", "role": "reconnect_networks"}],
        },
        "verify": {"checks": [{"name": "api", "url": "http://127.0.0.1:9/"}]},
    })
    return scenarios


class FakeRuns(list[str]):
    """Stands in for ansible-runner through the engine's seam: every playbook 'fails',
    and we record which ran."""

    def __call__(self, **kwargs: Any) -> PlaybookRun:
        self.append(str(kwargs["ident"]))
        now = time.time()
        return PlaybookRun(ident=str(kwargs["ident"]), status="failed", rc=2, started=now,
                           ended=now, check_mode=bool(kwargs.get("check")))


@pytest.fixture
def fake_runs() -> FakeRuns:
    return FakeRuns()


def remediate_with(runs: FakeRuns, request: engine.RemediateRequest) -> engine.IncidentResult:
    return engine.remediate(request, runner=runs)


def _request(tmp_path: Path, severity: str | None, levels: list[dict[str, Any]],
             preset: str = "sev-1-sev-3") -> engine.RemediateRequest:
    config = _write(tmp_path / "ir.yml", {"severity": {"preset": preset, "levels": levels}})
    inventory = _write(tmp_path / "inventory.yml",
                       "all:\n  children:\n    staging:\n      hosts:\n        localhost:\n")
    return engine.RemediateRequest(scenario="sev-test", inventory=inventory, severity=severity,
                                   scenario_paths=(_scenario(tmp_path),), config=config)


def _events(result: engine.IncidentResult) -> list[dict[str, Any]]:
    return list(read_timeline(result.incident_dir / "timeline.jsonl"))


def test_level_ladder_and_severity_info_are_recorded(tmp_path: Path, fake_runs: FakeRuns) -> None:
    result = remediate_with(fake_runs, _request(tmp_path, "sev-1", []))
    opened = _events(result)[0]
    assert opened["kind"] == "incident_opened"
    assert opened["severity"] == "SEV-1"
    assert opened["ladder"] == "rollback-now" and opened["steps"] == ["rollback"]
    info = opened["severity_info"]
    assert info["level"] == "SEV-1" and info["escalation_window_minutes"] == 0
    assert info["contacts"] == ["Reliability Team", "engineer", "manager", "#incidents"]
    assert result.journal["severity_info"]["level"] == "SEV-1"
    assert result.status == "escalated"


def test_a_level_without_the_ladder_falls_back_to_default(tmp_path: Path,
                                                          fake_runs: FakeRuns) -> None:
    result = remediate_with(fake_runs, _request(tmp_path, "SEV-3", [{"name": "SEV-3",
                                                            "escalation_window_minutes": None}]))
    opened = _events(result)[0]
    assert opened["severity_info"]["ladder"] == "monitor"
    assert opened["ladder"] == "default" and opened["steps"] == ["first", "second"]


def test_escalates_when_the_window_has_passed(tmp_path: Path, fake_runs: FakeRuns) -> None:
    result = remediate_with(fake_runs, _request(tmp_path, "SEV-2", [{"name": "SEV-2",
                                                            "escalation_window_minutes": 0}]))
    assert result.status == "escalated" and int(result.exit_code) == 3
    assert "escalation window for SEV-2 (0 min) passed" in result.journal["reason"]
    assert "Reliability Team" in result.journal["reason"]
    mitigations = [r for r in fake_runs if "-mitigate-" in r]
    assert mitigations == ["01-mitigate-first"], "step 2 must not run once the window passed"
    decision = [e for e in _events(result) if e["kind"] == "decision"][-1]
    assert decision["trigger"] == "escalation_window"
    escalated = [e for e in _events(result) if e["kind"] == "escalated"]
    assert escalated[0]["contacts"] == ["Reliability Team", "engineer", "#incidents"]


def test_no_window_climbs_the_whole_ladder(tmp_path: Path, fake_runs: FakeRuns) -> None:
    result = remediate_with(fake_runs, _request(tmp_path, "SEV-2", [{"name": "SEV-2",
                                                            "escalation_window_minutes": None}]))
    assert [r for r in fake_runs if "-mitigate-" in r] == ["01-mitigate-first",
                                                           "02-mitigate-second"]
    assert "exhausted" in result.journal["reason"]
    assert [e for e in _events(result) if e["kind"] == "decision"][-1]["trigger"] == (
        "ladder_exhausted")


def test_unknown_severity_fails_before_opening_an_incident(
        tmp_path: Path, fake_runs: FakeRuns, _state_under_tmp: Path) -> None:
    with pytest.raises(InputError) as err:
        remediate_with(fake_runs, _request(tmp_path, "P1", []))
    assert err.value.field == "--severity"
    assert "SEV-1, SEV-2, SEV-3" in err.value.message
    assert not fake_runs
    assert not _state_under_tmp.exists() or not any(_state_under_tmp.iterdir())
