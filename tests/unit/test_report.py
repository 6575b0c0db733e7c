"""Reports rendered from journals built from synthetic timelines: md, html (+SVG), json."""

from __future__ import annotations

import json
import re
import stat
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import jsonschema
import pytest

from incident_runner import chart
from incident_runner.journal import build_journal, load_journal
from incident_runner.paths import project_root
from incident_runner.report import render, write_reports
from incident_runner.timeline import Timeline
from tests.unit.timelines import T0, dead_pid, write_incident

OK = "successful"
SVG_NS = "{http://www.w3.org/2000/svg}"


def _climbed(root: Path, **kw: Any) -> dict[str, Any]:
    """Step 1 does not fix it, step 2 does."""
    folder = write_incident(root, steps=[
        ("diagnose", "capture-diagnostics", OK, 2.0),
        ("mitigate", "reconnect-networks", OK, 1.5),
        ("verify", "after-reconnect-networks", "failed", 15.0),
        ("mitigate", "restart-proxy", OK, 3.0),
        ("verify", "after-restart-proxy", OK, 1.0),
    ], status="resolved", resolved_by="restart-proxy", **kw)
    return load_journal(folder)


def _svg(html: str) -> ElementTree.Element:
    match = re.search(r"<svg .*?</svg>", html, re.S)
    assert match, "the HTML report must carry an inline SVG timeline"
    return ElementTree.fromstring(match.group(0))  # noqa: S314 (our own output)


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.script_text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_text.append(data)


def test_markdown_has_the_post_mortem_sections(tmp_path: Path) -> None:
    md = render(_climbed(tmp_path), "md")
    for heading in ("## Key times", "## Summary", "## Evidence", "## Impact", "## Timeline",
                    "## Runbook notes (likely cause)", "## Resolution",
                    "## Steps run", "## Action items", "## Lessons learned", "## Communication"):
        assert heading in md
    assert "Resolved by step `restart-proxy`" in md


def test_html_is_self_contained_with_the_same_sections(tmp_path: Path) -> None:
    html = render(_climbed(tmp_path), "html")
    for heading in ("Summary", "Impact", "Timeline", "Runbook notes (likely cause)", "Resolution",
                    "Steps run",
                    "Action items", "Lessons learned", "Communication"):
        assert f"<h2>{heading}</h2>" in html
    parser = _Collect()
    parser.feed(html)
    assert "style" in parser.tags and "script" not in parser.tags
    assert not re.search(r"""(?:src|href)=["']?(?:https?:)?//""", html), "no external resources"
    assert "default-src 'none'" in html


def test_svg_has_a_lane_per_phase_and_a_bar_per_step(tmp_path: Path) -> None:
    journal = _climbed(tmp_path)
    svg = _svg(render(journal, "html"))
    texts = [t.text for t in svg.iter(f"{SVG_NS}text")]
    for lane in ("diagnose", "mitigate", "verify", "escalate"):
        assert lane in texts
    bars = [g for g in svg.iter(f"{SVG_NS}g") if g.find(f"{SVG_NS}rect") is not None]
    assert len(bars) == len(journal["steps"]) == 5
    titles = [g.findtext(f"{SVG_NS}title") or "" for g in bars]
    assert titles[2].startswith("verify / after-reconnect-networks: failed, 15.0s")
    fills = [g.find(f"{SVG_NS}rect").get("fill") for g in bars]  # type: ignore[union-attr]
    assert fills[2] == chart.STATUS_COLORS["failed"] and fills[3] == chart.STATUS_COLORS[OK]
    # Bars follow each other along the time axis, inside the plot.
    xs = [float(g.find(f"{SVG_NS}rect").get("x")) for g in bars]  # type: ignore[union-attr, arg-type]
    assert xs == sorted(xs) and xs[0] >= chart.GUTTER
    assert all(x <= chart.GUTTER + chart.PLOT_WIDTH for x in xs)
    # Time axis labels: 0 and relative seconds.
    assert "0" in texts and "+10s" in texts and "+20s" in texts


def test_escalation_is_a_marker_in_the_escalate_lane(tmp_path: Path) -> None:
    folder = write_incident(tmp_path, steps=[("mitigate", "reconnect-networks", "failed", 2.0)],
                            status="escalated", escalate_reason="ladder exhausted")
    html = render(load_journal(folder), "html")
    svg = _svg(html)
    [marker] = list(svg.iter(f"{SVG_NS}polygon"))
    assert marker.get("fill") == chart.STATUS_COLORS["escalated"]
    assert "Escalated to a human." in html


def test_interrupted_run_renders_in_every_format(tmp_path: Path) -> None:
    folder = write_incident(tmp_path, steps=[("mitigate", "slow-step", "running", 5.0)],
                            status=None, pid=dead_pid())
    journal = load_journal(folder)
    assert journal["status"] == "interrupted"
    md, html = render(journal, "md"), render(journal, "html")
    assert "**Interrupted**" in md and "| interrupted |" in md
    assert "<strong>Interrupted</strong>" in html
    svg = _svg(html)
    assert "interrupted" in [t.text for t in svg.iter(f"{SVG_NS}text")]  # the end line
    assert json.loads(render(journal, "json"))["status"] == "interrupted"


def test_html_escapes_everything_from_the_incident(tmp_path: Path) -> None:
    evil = "<script>alert(1)</script>"
    folder = write_incident(tmp_path, title=f"Proxy {evil} down",
                            steps=[("mitigate", f"step-{evil}", "failed", 1.0)],
                            status="escalated", escalate_reason=f"because {evil}")
    journal = load_journal(folder)
    journal["description"] = f"desc {evil}"
    journal["report_hints"] = {"impact": evil, "action_items": [evil], "lessons": [evil]}
    html = render(journal, "html")
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    parser = _Collect()
    parser.feed(html)
    assert "script" not in parser.tags
    _svg(html)  # still well-formed XML with the payload in titles and labels


def test_minimal_journal_renders_with_strict_undefined(tmp_path: Path) -> None:
    folder = tmp_path / "INC-20261124-060000-x"
    folder.mkdir()
    (folder / "timeline.jsonl").write_text("")  # opened, then killed before the first event
    journal = build_journal(folder)
    for fmt in ("md", "html", "json"):
        assert render(journal, fmt)


def test_write_reports_writes_md_html_json_atomically(tmp_path: Path) -> None:
    journal = _climbed(tmp_path, title="Proxy answers 502 Bad Gateway")
    folder = tmp_path / journal["dir"]
    out = write_reports(folder, journal)
    assert out["markdown"].name == "2026-11-24-proxy-answers-502-bad-gateway.md"
    assert out["html"].name == "report.html" and out["json"].name == "report.json"
    assert json.loads(out["json"].read_text())["incident_id"] == journal["incident_id"]
    assert out["html"].read_text().startswith("<!DOCTYPE html>")
    for path in out.values():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not list(folder.glob("*.tmp")) and not list(folder.glob(".*.tmp"))


@pytest.mark.parametrize(("span", "step"), [(0.5, 1), (8, 1), (9, 2), (40, 5), (75, 10),
                                            (600, 120), (3600, 600), (10**6, 126000)])
def test_tick_step_keeps_the_axis_readable(span: float, step: int) -> None:
    assert chart.tick_step(span) == step
    assert span / chart.tick_step(span) <= chart.MAX_TICKS


@pytest.mark.parametrize(("seconds", "label"), [(0, "0s"), (59.4, "59s"), (65, "1m05s"),
                                                (3725, "1h02m")])
def test_duration_label(seconds: float, label: str) -> None:
    assert chart.duration_label(seconds) == label


def test_chart_of_a_long_step_without_end_reaches_the_last_event(tmp_path: Path) -> None:
    journal = _climbed(tmp_path)
    journal["steps"][-1]["end"] = None  # e.g. a journal from a run still going
    model = chart.timeline_chart(journal)
    last = model["bars"][-1]
    assert last["x"] + last["width"] <= model["plot_right"] + 0.1
    assert T0 + timedelta(seconds=1) < T0 + timedelta(seconds=model["span_s"])


def _evidenced(root: Path) -> dict[str, Any]:
    """A run with a confirmed symptom, container evidence, a module's evidence and an alert."""
    folder = write_incident(root, steps=[("mitigate", "reconnect-networks", OK, 1.5)],
                            status="resolved", resolved_by="reconnect-networks")
    timeline = Timeline(folder / "timeline.jsonl")
    events = [json.loads(line) for line in (folder / "timeline.jsonl").read_text().splitlines()]
    closed = events.pop()  # re-append the close after the evidence, as the runner orders them
    (folder / "timeline.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    timeline = Timeline(folder / "timeline.jsonl")
    timeline.append("symptom", confirmed=True, reason="api: statuses [502]", checks=[
        {"name": "api", "url": "http://127.0.0.1:1/api/health", "healthy": False,
         "statuses": [502], "latency_ms": [3.2], "errors": []}])
    timeline.append("evidence", source="diagnostics", containers=[
        {"name": "ir-proxy-1", "status": "running", "exit_code": 0, "oom_killed": False,
         "restart_count": 0, "memory_limit": 0, "networks": ["ir_edge"]}])
    timeline.append("step_started", phase="mitigate", step="restart-proxy", action="role x")
    timeline.append("task_result", phase="mitigate", step="restart-proxy", task="connect",
                    host="localhost", status="ok", changed=True, message="",
                    evidence="proxy is missing 2 networks: ir_api_net, ir_web_net")
    timeline.append("step_finished", phase="mitigate", step="restart-proxy", status=OK)
    timeline.append("verify_result", step="after-reconnect-networks", healthy=True,
                    details=["api: 3 good rounds"], checks=[
                        {"name": "api", "healthy": True, "message": "api: 3 good rounds"}])
    timeline.append("incident_closed", **{k: v for k, v in closed.items()
                                          if k not in {"seq", "ts", "kind"}})
    timeline.close()
    return build_journal(folder)


def test_report_shows_key_times_and_the_evidence(tmp_path: Path) -> None:
    journal = _evidenced(tmp_path)
    kt = journal["key_times"]
    assert kt["detected"] and kt["mitigated"] and kt["closed"]
    md = render(journal, "md")
    assert "| impact start | detected | first action | mitigated | closed |" in md
    assert "api: statuses [502]" not in md or "confirmed" in md
    assert "statuses 502" in md  # the failing status seen by the symptom check
    assert "`ir-proxy-1`: running" in md and "networks ir_edge" in md
    assert "proxy is missing 2 networks" in md
    assert "Runbook notes (likely cause)" in md and "not confirmed by the runner" in md
    html = render(journal, "html")
    assert "Key times" in html and "proxy is missing 2 networks" in html


def test_report_json_matches_its_schema(tmp_path: Path) -> None:
    schema = json.loads((project_root() / "incident_runner/schemas/report.schema.json")
                        .read_text())
    for journal in (_evidenced(tmp_path / "a"), _climbed(tmp_path / "b")):
        data = json.loads(render(journal, "json"))
        jsonschema.validate(data, schema)
        assert data["schema_version"] == 2
