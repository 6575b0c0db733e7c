"""Render reports and communication messages from the journal only.

Templates ship in the package (PackageLoader), render in a sandbox with
StrictUndefined; HTML autoescapes. Scenario-supplied message templates are
rendered in the same sandbox, so a ``{{ }}`` from an incident value can
never reach Python objects.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import FileSystemBytecodeCache, PackageLoader, StrictUndefined, select_autoescape
from jinja2.sandbox import ImmutableSandboxedEnvironment

from incident_runner.chart import timeline_chart
from incident_runner.fsutil import write_atomic
from incident_runner.timeutil import hhmmss, human_duration

DEFAULT_MESSAGES = {
    "initial": "[{{ severity or 'unrated' }}] {{ incident_id }} opened: {{ title }}. "
               "Automated remediation ({{ scenario }}) is running.",
    "update": "[{{ severity or 'unrated' }}] {{ incident_id }}: {{ steps | length }} step(s) run; "
              "status {{ status }}.",
    "resolved": "[{{ severity or 'unrated' }}] {{ incident_id }} resolved"
                "{{ (' by ' ~ resolved_by) if resolved_by else '' }} "
                "in {{ duration_s }}s: {{ title }}.",
    "escalated": "[{{ severity or 'unrated' }}] {{ incident_id }} needs a human: {{ reason }}",
}


@cache
def _env() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        loader=PackageLoader("incident_runner", "templates"),
        # Compiling the two report templates costs ~0.25 s per incident; jinja keeps the
        # compiled code in its per-user 0700 cache directory and recompiles when the
        # template's source no longer matches the checksum stored with it.
        bytecode_cache=FileSystemBytecodeCache(pattern="incident-runner-%s.cache"),
        # Templates are named report.<fmt>.j2: match the inner extension too.
        autoescape=select_autoescape(enabled_extensions=("html", "svg", "html.j2", "svg.j2"),
                                     default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["hhmmss"] = _hhmmss
    env.filters["mdcell"] = _mdcell
    env.filters["duration"] = human_duration
    return env


def _hhmmss(ts: str | None) -> str:
    return hhmmss(ts) if ts else "-"


def _mdcell(value: Any) -> str:
    """Make a value safe inside a Markdown table cell."""
    return str(value if value is not None else "").replace("|", "\\|").replace("\n", " ")[:300]


def slug(text: str, limit: int = 48) -> str:
    cleaned = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return cleaned[:limit].rstrip("-") or "incident"


def report_filename(journal: dict[str, Any]) -> str:
    day = (journal.get("start") or "")[:10] or datetime.now().strftime("%Y-%m-%d")
    return f"{day}-{slug(journal.get('title') or journal.get('scenario') or '')}.md"


def render_message(template: str, journal: dict[str, Any]) -> str:
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
    try:
        return env.from_string(template).render(**journal).strip()
    except Exception as exc:  # a broken scenario template must not lose the incident
        return f"(message template error: {type(exc).__name__}: {exc})"


def message_templates(journal: dict[str, Any]) -> dict[str, str]:
    """The scenario's communication templates over the defaults."""
    return {**DEFAULT_MESSAGES, **(journal.get("communication") or {})}


def messages(journal: dict[str, Any]) -> dict[str, str]:
    templates = message_templates(journal)
    wanted = ["initial", "update"]
    status = journal.get("status")
    if status == "resolved":
        wanted.append("resolved")
    elif status != "not-reproduced":
        wanted.append("escalated")
    return {kind: render_message(templates[kind], journal) for kind in wanted}


def render(journal: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(journal, indent=2, default=str) + "\n"
    template = _env().get_template(f"report.{fmt}.j2")
    return template.render(j=journal, messages=messages(journal), chart=timeline_chart(journal))


def write_reports(incident_dir: Path, journal: dict[str, Any]) -> dict[str, Path]:
    """Write the post-mortem (Markdown, HTML, JSON) and the communication messages."""
    out: dict[str, Path] = {}
    md = incident_dir / report_filename(journal)
    write_atomic(md, render(journal, "md"))
    out["markdown"] = md
    for fmt in ("html", "json"):
        out[fmt] = incident_dir / f"report.{fmt}"
        write_atomic(out[fmt], render(journal, fmt))
    comms = incident_dir / "messages.json"
    write_atomic(comms, json.dumps(messages(journal), indent=2) + "\n")
    out["messages"] = comms
    return out
