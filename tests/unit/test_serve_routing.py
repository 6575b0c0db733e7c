"""serve: payload parsing, routing by scenario match:, severity and target from labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from incident_runner.errors import InputError
from incident_runner.scenario import Scenario, catalog, parse_scenario
from incident_runner.serve.alertfile import check_alert
from incident_runner.serve.intake import Claimed
from incident_runner.serve.routing import (
    Alert,
    PayloadError,
    parse_alertmanager,
    parse_generic,
    route,
)
from incident_runner.serve.runner import remediate_argv
from incident_runner.serve.settings import GenericMapping, ServeSettings, parse_settings

ROOT = Path(__file__).resolve().parents[2]
LEVELS = {"p0": "P0", "p1": "P1", "p2": "P2", "p3": "P3"}
SETTINGS = ServeSettings(severity_map={"critical": "P1"}, host_label="host",
                         service_label="service")


def scenario(sid: str, match: dict[str, Any]) -> Scenario:
    data = {"id": sid, "title": sid, "description": "", "targets": {"hosts": "local"},
            "ladders": {"default": []}, "verify": {"checks": []},
            "escalation": {"no_local_fix": True}, "match": match}
    return parse_scenario(data, Path(f"/x/{sid}.yml"))


CATALOG = {s.id: s for s in (
    scenario("proxy", {"alertname": "ProxyBadGateway"}),
    scenario("proxy-caddy", {"alertname": "ProxyBadGateway", "job": {"regex": "caddy|proxy"}}),
    scenario("tie-a", {"alertname": "Tie"}),
    scenario("tie-b", {"alertname": "Tie"}),
)}


def alert(status: str = "firing", **labels: str) -> Alert:
    return Alert("alertmanager", status, "g1", "f1", "2026-01-01T00:00:00Z", labels, {})


def am_payload(*alerts: dict[str, Any]) -> dict[str, Any]:
    return {"version": "4", "status": "firing", "groupKey": "{}:{alertname=\"X\"}",
            "alerts": list(alerts)}


def test_alertmanager_payload_parsed() -> None:
    got = parse_alertmanager(am_payload(
        {"status": "firing", "labels": {"alertname": "X"}, "annotations": {"summary": "s"},
         "startsAt": "2026-12-02T10:00:00Z", "fingerprint": "abc"},
        {"status": "resolved", "labels": {"alertname": "X", "i": "2"}}))
    assert [a.status for a in got] == ["firing", "resolved"]
    assert got[0].fingerprint == "abc" and got[0].starts_at == "2026-12-02T10:00:00Z"
    assert got[0].group_key == "{}:{alertname=\"X\"}" == got[0].dedupe_key
    assert got[1].fingerprint and got[1].fingerprint != got[0].fingerprint  # derived from labels


@pytest.mark.parametrize(("body", "field"), [
    ([], "body"),
    ({"version": "3", "alerts": []}, "version"),
    ({"version": "4"}, "alerts"),
    (am_payload("x"), "alerts.0"),
    (am_payload({"status": "pending", "labels": {}}), "alerts.0.status"),
    (am_payload({"status": "firing", "labels": {"a": 1}}), "alerts.0.labels.a"),
    (am_payload({"status": "firing", "labels": {}, "annotations": []}), "alerts.0.annotations"),
])
def test_alertmanager_payload_errors_name_the_field(body: Any, field: str) -> None:
    with pytest.raises(PayloadError, match=f"^{field}"):
        parse_alertmanager(body)


def test_route_most_specific_match_wins_and_regex_is_anchored() -> None:
    assert route(alert(alertname="ProxyBadGateway"), CATALOG, SETTINGS, LEVELS).scenario == "proxy"
    assert route(alert(alertname="ProxyBadGateway", job="caddy"), CATALOG, SETTINGS,
                 LEVELS).scenario == "proxy-caddy"
    # full match: "caddy-x" is not "caddy|proxy"
    assert route(alert(alertname="ProxyBadGateway", job="caddy-x"), CATALOG, SETTINGS,
                 LEVELS).scenario == "proxy"


def test_route_never_guesses() -> None:
    none = route(alert(alertname="Unknown"), CATALOG, SETTINGS, LEVELS)
    assert none.disposition == "no-scenario" and none.scenario is None
    tie = route(alert(alertname="Tie"), CATALOG, SETTINGS, LEVELS)
    assert tie.disposition == "no-scenario" and "tie-a, tie-b" in tie.reason
    resolved = route(alert("resolved", alertname="ProxyBadGateway"), CATALOG, SETTINGS, LEVELS)
    assert resolved.disposition == "resolved" and resolved.scenario == "proxy"


@pytest.mark.parametrize(("label", "level"), [
    ("critical", "P1"), ("p2", "P2"), ("P3", "P3"), ("bogus", None), ("", None)])
def test_route_severity_from_label(label: str, level: str | None) -> None:
    got = route(alert(alertname="ProxyBadGateway", severity=label), CATALOG, SETTINGS, LEVELS)
    assert got.severity == level


@pytest.mark.parametrize("host", ["@/etc/passwd", "all,web", "*", "!db", "-e x=1", "a b",
                                  "$(touch /tmp/x)", "", "a" * 201])
def test_route_refuses_a_host_that_is_not_a_plain_name(host: str) -> None:
    got = route(alert(alertname="ProxyBadGateway", host=host), CATALOG, SETTINGS, LEVELS)
    assert got.disposition == "bad-target" and got.host is None


def test_route_target_from_labels() -> None:
    got = route(alert(alertname="ProxyBadGateway", host="staging-1.example", service="proxy"),
                CATALOG, SETTINGS, LEVELS)
    assert (got.disposition, got.host, got.service) == ("queued", "staging-1.example", "proxy")


def test_generic_mapping_by_field_paths() -> None:
    mapping = GenericMapping(status="check.state", firing_values=("down",),
                             group_key="check.id", fingerprint="event", starts_at="check.since",
                             labels={"alertname": "alert", "host": "check.hosts.0"},
                             annotations={"summary": "message"})
    body = {"alert": "ProxyBadGateway", "event": "e1", "message": "502 x3",
            "check": {"id": 42, "state": "down", "since": "2026-12-02T10:00:00Z",
                      "hosts": ["web1"]}}
    (got,) = parse_generic(body, mapping)
    assert (got.status, got.group_key, got.fingerprint, got.starts_at) == (
        "firing", "42", "e1", "2026-12-02T10:00:00Z")
    assert got.labels == {"alertname": "ProxyBadGateway", "host": "web1"}
    assert got.annotations == {"summary": "502 x3"}
    (up,) = parse_generic({**body, "check": {**body["check"], "state": "up"}}, mapping)
    assert up.status == "resolved"
    with pytest.raises(PayloadError, match=r"^alert: missing"):
        parse_generic({"event": "e1"}, mapping)
    with pytest.raises(PayloadError, match=r"^message: expected a string"):
        parse_generic({**body, "message": {"x": 1}}, mapping)


def test_argv_keeps_hostile_label_values_as_single_items() -> None:
    hostile = "x; touch /tmp/pwn $(id) `id` {{ lookup('pipe', 'id') }}"
    claimed = Claimed(1, "proxy-502", "P1", "web1", hostile, 1, {})
    argv = remediate_argv(claimed, Path("/s/a.json"), SETTINGS, Path("/s"), None)
    assert argv[argv.index("--limit") + 1] == "web1"
    assert f"alert_service={hostile}" in argv
    assert argv[argv.index("--scenario") + 1] == "proxy-502"
    assert "--yes" not in argv  # destructive steps only with approve_destructive
    approving = ServeSettings(approve_destructive=True)
    assert "--yes" in remediate_argv(claimed, Path("/s/a.json"), approving, Path("/s"), None)
    # Incidents are recorded as drills only when the config says so (the alert-loop drill).
    assert "--drill" not in argv
    drilling = ServeSettings(drill=True)
    assert "--drill" in remediate_argv(claimed, Path("/s/a.json"), drilling, Path("/s"), None)


def test_scenario_match_validated() -> None:
    with pytest.raises(InputError, match=r"match\.job\.regex: invalid regex"):
        scenario("bad", {"job": {"regex": "("}})
    with pytest.raises(InputError, match="match"):
        scenario("bad", {"job": ["a"]})


def test_shipped_catalog_routes_proxy_502_and_never_contain() -> None:
    shipped = catalog([ROOT / "scenarios"])
    got = route(alert(alertname="ProxyBadGateway"), shipped, SETTINGS, LEVELS)
    assert got.scenario == "proxy-502"
    assert not shipped["contain"].match  # scaling web to zero is a human's call


def test_alert_file_checked() -> None:
    good = {"source": "alertmanager", "group_key": "g", "fingerprint": "f", "starts_at": "t",
            "labels": {"a": "b"}, "annotations": {}}
    assert check_alert(good, "f.json") == good
    with pytest.raises(InputError, match=r"f\.json: starts_at: missing"):
        check_alert({k: v for k, v in good.items() if k != "starts_at"}, "f.json")
    with pytest.raises(InputError, match=r"f.json: labels\.a: expected a string"):
        check_alert({**good, "labels": {"a": 1}}, "f.json")


def test_settings_schema_errors_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="serve"):
        parse_settings({"workers": 0}, "cfg.yml: serve", tmp_path)
    got = parse_settings({"token_file": "tok", "generic": {"firing_values": ["down"]}},
                         "cfg.yml: serve", tmp_path)
    assert got.token_file == (tmp_path / "tok").resolve()
    assert got.generic.firing_values == ("down",)
