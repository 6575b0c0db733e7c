"""Time, in one place: every timestamp we write is ISO 8601 UTC with a ``Z``.

Timelines, journals, history and reports all parse and format through here,
so a timestamp written by one is always read the same way by the others.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from incident_runner.errors import InputError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h)?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}
MAX_DURATION_SECONDS = 7 * 24 * 3600


def now_iso(timespec: str = "milliseconds") -> str:
    return datetime.now(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def iso_from_epoch(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def parse_iso(ts: Any) -> datetime | None:
    """An aware datetime from an ISO string (``Z`` or offset; naive means UTC); else None."""
    if not isinstance(ts, str) or not ts:
        return None
    try:
        parsed = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def epoch(ts: Any) -> float | None:
    parsed = parse_iso(ts)
    return parsed.timestamp() if parsed else None


def seconds_between(start: Any, end: Any) -> float | None:
    """``end - start`` in seconds (rounded to ms), None if either is unknown."""
    a, b = epoch(start), epoch(end)
    return round(b - a, 3) if a is not None and b is not None else None


def hhmmss(ts: Any) -> str:
    parsed = parse_iso(ts)
    return parsed.strftime("%H:%M:%S") if parsed else str(ts or "")


def human_duration(seconds: float | None) -> str:
    """``4.2s``, ``3m 05s``, ``1h 02m``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def parse_duration(text: str, field: str = "--timeout") -> float:
    """``90s``, ``15m``, ``1.5h``; a bare number is seconds, for every duration flag."""
    match = _DURATION.match(str(text or ""))
    if not match:
        raise InputError(f"'{str(text)[:40]}' is not a duration (e.g. 90s, 15m, 1h; a bare "
                         "number is seconds)", field=field)
    seconds = float(match.group(1)) * _UNIT_SECONDS[(match.group(2) or "s").lower()]
    if not 0 < seconds <= MAX_DURATION_SECONDS:
        raise InputError(f"'{str(text)[:40]}' must be more than 0 and at most 7 days",
                         field=field)
    return seconds
