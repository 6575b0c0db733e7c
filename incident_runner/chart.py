"""Geometry of the HTML report's visual timeline, computed from the journal only.

The template draws the SVG; this module only turns timestamps into numbers
(a lane per phase, a bar per step, a time axis with readable ticks), so the
template stays free of arithmetic and every string it prints is escaped.
"""

from __future__ import annotations

import math
from typing import Any

from incident_runner.timeutil import epoch

LANES = ("diagnose", "mitigate", "verify", "escalate")
STATUS_COLORS = {
    "successful": "#2e7d32",
    "failed": "#c62828",
    "error": "#c62828",
    "timeout": "#ef6c00",
    "canceled": "#6d4c41",
    "interrupted": "#6a1b9a",
    "running": "#1565c0",
    "escalated": "#ad1457",
}
OTHER_COLOR = "#757575"
TICK_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400)
MAX_TICKS = 8

GUTTER = 96  # left column with the lane names
PLOT_WIDTH = 720
LANE_HEIGHT = 26
LANE_GAP = 8
TOP = 8
AXIS_HEIGHT = 30
CHAR_WIDTH = 6.6  # ~11px sans-serif; only decides whether a label fits in its bar


def color(status: str | None) -> str:
    return STATUS_COLORS.get(status or "", OTHER_COLOR)


def duration_label(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def tick_step(span: float) -> int:
    for step in TICK_STEPS:
        if span / step <= MAX_TICKS:
            return step
    return math.ceil(span / MAX_TICKS / 3600) * 3600  # whole hours


def _place_labels(bars: list[dict[str, Any]]) -> None:
    """Name inside the bar when it fits, else just right of it when the lane is free there."""
    for bar in bars:
        need = len(bar["name"]) * CHAR_WIDTH + 8
        right = bar["x"] + bar["width"]
        same_lane = [b for b in bars if b["y"] == bar["y"] and b is not bar]
        room_right = min([b["x"] for b in same_lane if b["x"] >= right],
                         default=GUTTER + PLOT_WIDTH + 40) - right
        room_left = bar["x"] - max([b["x"] + b["width"] for b in same_lane
                                    if b["x"] + b["width"] <= bar["x"]], default=GUTTER)
        label, x, fill, anchor = bar["name"], bar["x"] + 4, "#fff", "start"
        if bar["width"] < need:
            fill = "#24292f"
            if room_right >= need:
                x = right + 4
            elif room_left >= need:
                x, anchor = bar["x"] - 4, "end"
            else:
                label = ""  # the tooltip and the table below still name it
        bar.update(label=label, label_x=round(x, 1), label_fill=fill, label_anchor=anchor)


def timeline_chart(journal: dict[str, Any]) -> dict[str, Any]:
    """Lanes, bars, markers and ticks of the timeline SVG, in pixels."""
    steps = [s for s in journal.get("steps") or [] if isinstance(s, dict)]
    escalations = [d for d in journal.get("decisions") or []
                   if isinstance(d, dict) and d.get("kind") == "escalated"]
    lanes = list(LANES)
    lanes += sorted({str(s.get("phase")) for s in steps} - set(LANES))

    start = epoch(journal.get("start"))
    times = [t for s in steps for t in (epoch(s.get("start")), epoch(s.get("end")))
             if t is not None]
    times += [t for t in (epoch(d.get("ts")) for d in escalations) if t is not None]
    end = epoch(journal.get("end"))
    if start is None:
        start = min(times) if times else 0.0
    last = max([t for t in (end, *times) if t is not None], default=start)
    span = max(last - start, 1.0)

    def x(ts: float) -> float:
        return round(GUTTER + (ts - start) / span * PLOT_WIDTH, 1)

    def lane_y(phase: str) -> int:
        return TOP + lanes.index(phase) * (LANE_HEIGHT + LANE_GAP)

    bars = []
    for step in steps:
        s0 = epoch(step.get("start"))
        if s0 is None:
            continue
        s1 = epoch(step.get("end"))
        s1 = last if s1 is None else s1
        x0, x1 = x(s0), x(max(s1, s0))
        width = max(round(x1 - x0, 1), 2.0)
        name = str(step.get("name") or "-")
        status = str(step.get("status") or "unknown")
        seconds = max(s1 - s0, 0.0)
        bars.append({
            "x": x0, "y": lane_y(str(step.get("phase"))), "width": width,
            "height": LANE_HEIGHT, "color": color(status), "status": status, "name": name,
            "title": f"{step.get('phase')} / {name}: {status}, {seconds:.1f}s, "
                     f"{step.get('changed', 0)} change(s)",
        })
    _place_labels(bars)
    markers = []
    for decision in escalations:
        ts = epoch(decision.get("ts"))
        if ts is None:
            continue
        markers.append({"x": x(ts), "y": lane_y("escalate"), "height": LANE_HEIGHT,
                        "color": color("escalated"),
                        "title": f"escalated: {decision.get('reason', '')}"})

    plot_bottom = TOP + len(lanes) * (LANE_HEIGHT + LANE_GAP)
    every = tick_step(span)
    ticks = [{"x": x(start + t), "label": "0" if t == 0 else f"+{duration_label(t)}"}
             for t in range(0, int(span) + 1, every)]
    end_line = None
    if journal.get("status") in {"interrupted", "running"}:
        end_line = {"x": x(last), "label": str(journal.get("status")),
                    "color": color(str(journal.get("status")))}
    legend = sorted({(b["status"], b["color"]) for b in bars})
    if markers:
        legend.append(("escalated", color("escalated")))
    return {
        "width": GUTTER + PLOT_WIDTH + 40,
        "height": plot_bottom + AXIS_HEIGHT,
        "plot_left": GUTTER,
        "plot_right": GUTTER + PLOT_WIDTH,
        "plot_bottom": plot_bottom,
        "lanes": [{"name": name, "y": lane_y(name), "mid": lane_y(name) + LANE_HEIGHT // 2 + 4,
                   "height": LANE_HEIGHT} for name in lanes],
        "bars": bars,
        "markers": markers,
        "ticks": ticks,
        "end_line": end_line,
        "span_s": round(span, 3),
        "span_label": duration_label(span),
        "legend": [{"status": s, "color": c} for s, c in legend],
    }
