"""A real Alertmanager (Debian package, examples/alerting/alertmanager.yml) posts to serve.

Alerts posted to Alertmanager's API are grouped by it, sent to serve's webhook
with the bearer token from a file, routed by the fixture catalog's match:
blocks and run by the real runner; resolving them sends `resolved`, which
serve records without starting work.
"""

from __future__ import annotations

import json
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from incident_runner.drill.alertloop import alertmanager
from tests.serve_proc import TOKEN, Serve

SERVE_PORT, AM_PORT = 18903, 18904


def am_post(alerts: list[dict[str, Any]]) -> None:
    req = urllib.request.Request(f"http://127.0.0.1:{AM_PORT}/api/v2/alerts",
                                 data=json.dumps(alerts).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


def wait_rows(serve: Serve, sql: str, want: int, timeout: float = 120) -> list[tuple[Any, ...]]:
    deadline = time.monotonic() + timeout
    rows = serve.rows(sql)
    while len(rows) < want and time.monotonic() < deadline:
        time.sleep(0.2)
        rows = serve.rows(sql)
    return rows


def test_alertmanager_webhook_to_serve(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    serve = Serve(SERVE_PORT, tmp_path / "state").start()
    am = alertmanager(tmp_path, AM_PORT, serve.url, token).start()
    try:
        now = datetime.now(UTC)
        starts = now.isoformat().replace("+00:00", "Z")
        firing = [{"labels": {"alertname": "BurstAlert", "instance": "i1", "n": str(n),
                              "severity": "critical"},
                   "annotations": {"summary": f"alert {n}"}, "startsAt": starts}
                  for n in range(3)]
        other = {"labels": {"alertname": "OtherAlert", "instance": "i1", "team": "ops"},
                 "startsAt": starts}
        am_post([*firing, other])
        got = wait_rows(serve, "SELECT fingerprint, group_key, disposition, scenario "
                               "FROM alerts WHERE status = 'firing'", 4)
        assert len(got) == 4, got
        by_scenario = {row[3] for row in got}
        assert by_scenario == {"alert-escalate", "alert-other"}
        burst = [row for row in got if row[3] == "alert-escalate"]
        # Alertmanager grouped the three (group_by alertname, instance): one incident
        assert len({row[1] for row in burst}) == 1 and "BurstAlert" in burst[0][1]
        assert sorted(row[2] for row in burst) == ["deduplicated", "deduplicated", "queued"]
        done = serve.wait_done(2, timeout=120)
        assert sorted((row[1], row[2]) for row in done) == [
            ("alert-escalate", "escalated"), ("alert-other", "escalated")]
        severity = serve.rows("SELECT severity FROM incidents WHERE scenario = 'alert-escalate'")
        assert severity == [("P1",)]  # severity=critical mapped by serve.severity_map

        ended = (now + timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
        am_post([{**a, "endsAt": ended} for a in [*firing, other]])
        resolved = wait_rows(serve, "SELECT disposition, incident FROM alerts "
                                    "WHERE status = 'resolved'", 4)
        assert len(resolved) == 4 and {r[0] for r in resolved} == {"resolved"}
        assert all(r[1] is not None for r in resolved)  # tied to the incident they closed
        assert serve.rows("SELECT count(*) FROM incidents")[0][0] == 2  # no new work
    finally:
        am.stop()
        serve.stop()
