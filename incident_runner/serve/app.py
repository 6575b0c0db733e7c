"""The HTTP app (Starlette on uvicorn), its workers and its metrics."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route as HttpRoute

from incident_runner.scenario import Scenario
from incident_runner.serve.intake import IntakeUnavailableError, QueueFullError, open_intake
from incident_runner.serve.routing import (
    Alert,
    PayloadError,
    parse_alertmanager,
    parse_generic,
    route,
)
from incident_runner.serve.runner import Runner, RunOutcome
from incident_runner.serve.settings import ServeSettings
from incident_runner.timeline import TIMELINE_FILE, Timeline

LOG = logging.getLogger(__name__)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.received = Counter("incident_runner_alerts_received", "Alerts accepted (202)",
                                ["source", "status"], registry=r)
        self.deduplicated = Counter("incident_runner_alerts_deduplicated",
                                    "Alerts attached to an open incident", registry=r)
        self.unrouted = Counter("incident_runner_alerts_unrouted",
                                "Alerts recorded without work (no scenario, bad target)",
                                ["disposition"], registry=r)
        self.rejected = Counter("incident_runner_alerts_rejected",
                                "Requests refused (nothing recorded)", ["reason"], registry=r)
        self.incidents = Counter("incident_runner_incidents", "Incidents finished",
                                 ["scenario", "outcome"], registry=r)
        self.duration = Histogram("incident_runner_remediation_duration_seconds",
                                  "Wall time of one remediate run", ["scenario"], registry=r,
                                  buckets=(1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600))
        self.queued = Gauge("incident_runner_incidents_queued", "Incidents waiting for a worker",
                            registry=r)


def _append_repeats(path: Path, repeats: list[dict[str, Any]]) -> None:
    with Timeline(path) as timeline:
        for r in repeats:
            timeline.append("alert_repeat", alert_id=r["id"], received_at=r["received_at"],
                            status=r["status"], fingerprint=r["fingerprint"],
                            starts_at=r["starts_at"])


def _reject(metrics: Metrics, status: int, reason: str, message: str) -> JSONResponse:
    metrics.rejected.labels(reason).inc()
    return JSONResponse({"error": message}, status_code=status)


class Server:
    """State shared by the routes and the workers."""

    def __init__(self, settings: ServeSettings, token: str | None, state_dir: Path,
                 scenarios: dict[str, Scenario], levels: dict[str, str],
                 config: str | None, state_url: str | None = None) -> None:
        self.settings = settings
        self.token = token
        self.state_dir = state_dir
        self.scenarios = scenarios
        self.levels = levels
        self.metrics = Metrics()
        # SQLite in the state dir, or shared by every instance on one PostgreSQL (state_url)
        self.intake = open_intake(state_url, state_dir, settings.dedupe_window_minutes,
                                  settings.queue_max)
        self.runner = Runner(settings, state_dir, config, state_url)
        self.wake = asyncio.Event()
        self.attach_lock = asyncio.Lock()  # one attacher at a time: no repeat written twice
        self.stopping = False

    # -- requests -------------------------------------------------------------
    def _authorized(self, request: Request) -> bool:
        if self.token is None:
            return True
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode())

    async def _body(self, request: Request) -> bytes | None:
        """The body, or None when it is over the limit (read no further than that)."""
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return None
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    async def _alerts(self, request: Request,
                      parse: Callable[[Any], list[Alert]]) -> list[Alert] | Response:
        """The request's alerts, or the 4xx answer (checked in this order: auth, size, JSON)."""
        m = self.metrics
        if not self._authorized(request):
            return _reject(m, 401, "unauthorized", "missing or wrong bearer token")
        body = await self._body(request)
        if body is None:
            return _reject(m, 413, "too-large",
                           f"body over {self.settings.max_body_bytes} bytes")
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            return _reject(m, 400, "malformed", f"malformed JSON: {str(exc).splitlines()[0]}")
        try:
            return parse(data)
        except PayloadError as exc:
            return _reject(m, 400, "invalid", str(exc))

    async def intake_request(self, request: Request,
                             parse: Callable[[Any], list[Alert]]) -> Response:
        m = self.metrics
        alerts = await self._alerts(request, parse)
        if isinstance(alerts, Response):
            return alerts
        routed = [(a, route(a, self.scenarios, self.settings, self.levels)) for a in alerts]
        try:
            answers = await asyncio.to_thread(self.intake.accept, routed)
        except QueueFullError as exc:
            return _reject(m, 429, "queue-full", f"queue full: {exc}")
        except (sqlite3.Error, IntakeUnavailableError) as exc:  # locked, disk full, DB down
            LOG.error("intake: %s", exc)
            return _reject(m, 503, "intake-error", f"intake unavailable: {exc}")
        for alert, answer in zip(alerts, answers, strict=True):
            m.received.labels(alert.source, alert.status).inc()
            if answer["disposition"] == "deduplicated":
                m.deduplicated.inc()
            elif answer["disposition"] in ("no-scenario", "bad-target"):
                m.unrouted.labels(answer["disposition"]).inc()
        if any(a["disposition"] == "queued" for a in answers):
            self.wake.set()
        await self._attach_repeats({a["incident"] for a in answers
                                    if a["incident"] and a["disposition"] != "queued"})
        return JSONResponse({"accepted": len(answers), "alerts": answers}, status_code=202)

    # -- repeats --------------------------------------------------------------
    async def _attach_repeats(self, incidents: set[int]) -> None:
        """Append repeats to a finished incident's timeline (a running one gets them at its end).

        Only a finished runner's timeline is written to, so serve is its only writer then.
        """
        async with self.attach_lock:
            for incident in incidents:
                await self._attach_repeats_of(incident)

    async def _attach_repeats_of(self, incident: int) -> None:
        try:
            folder, repeats = await asyncio.to_thread(self.intake.unattached_repeats, incident)
            if folder is None or not repeats:
                return
            path = Path(folder) / TIMELINE_FILE
            if path.is_file():
                await asyncio.to_thread(_append_repeats, path, repeats)
                await asyncio.to_thread(self.intake.mark_attached, [r["id"] for r in repeats])
        except IntakeUnavailableError as exc:  # the shared database is down: the sweep retries
            LOG.error("incident %d: repeats not attached yet: %s", incident, exc)

    # -- workers --------------------------------------------------------------
    async def _idle(self) -> None:
        self.wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), timeout=1.0)

    async def worker(self, n: int) -> None:
        while not self.stopping:
            try:
                claimed = await asyncio.to_thread(self.intake.claim)
                if claimed is None and n == 0:  # repeats another instance recorded
                    await self._attach_repeats(
                        set(await asyncio.to_thread(self.intake.pending_attachments)))
            except IntakeUnavailableError as exc:  # the shared database is down: retry
                LOG.error("worker %d: %s", n, exc)
                await self._idle()
                continue
            if claimed is None:
                await self._idle()
                continue
            with contextlib.suppress(IntakeUnavailableError):
                self.metrics.queued.set(await asyncio.to_thread(self.intake.queued))
            LOG.info("worker %d: incident %d (%s)", n, claimed.id, claimed.scenario)
            started = time.monotonic()
            try:
                outcome = await self.runner.run(claimed)
            except (OSError, ValueError) as exc:  # could not even start the runner
                LOG.error("worker %d: incident %d: %s", n, claimed.id, exc)
                outcome = RunOutcome("error", None, None, None,
                                     f"runner not started: {exc.__class__.__name__}: {exc}")
            if self.stopping:  # interrupted by our own shutdown: requeued at the next start
                return
            if not await self._finish(n, claimed.id, outcome):
                return
            self.metrics.duration.labels(claimed.scenario).observe(time.monotonic() - started)
            self.metrics.incidents.labels(claimed.scenario, outcome.outcome).inc()
            await self._attach_repeats({claimed.id})

    async def _finish(self, n: int, incident: int, outcome: RunOutcome) -> bool:
        """Record the outcome, retrying while the database is down; False when stopping."""
        while True:
            try:
                await asyncio.to_thread(self.intake.finish, incident, outcome.outcome,
                                        outcome.exit_code, outcome.incident_id,
                                        outcome.incident_dir, outcome.detail)
                return True
            except IntakeUnavailableError as exc:
                LOG.error("worker %d: incident %d: outcome not recorded yet: %s", n,
                          incident, exc)
                if self.stopping:
                    return False
                await asyncio.sleep(1.0)

    # -- app ------------------------------------------------------------------
    def app(self) -> Starlette:
        async def alertmanager(request: Request) -> Response:
            return await self.intake_request(request, parse_alertmanager)

        async def generic(request: Request) -> Response:
            return await self.intake_request(
                request, lambda body: parse_generic(body, self.settings.generic))

        async def healthz(_request: Request) -> Response:
            try:
                counts = await asyncio.to_thread(self.intake.counts)
            except (sqlite3.Error, IntakeUnavailableError) as exc:  # a load balancer skips us
                return JSONResponse({"status": "intake unavailable", "error": str(exc)},
                                    status_code=503)
            return JSONResponse({"status": "ok", **counts})

        async def metrics(_request: Request) -> Response:
            with contextlib.suppress(sqlite3.Error, IntakeUnavailableError):
                self.metrics.queued.set(await asyncio.to_thread(self.intake.queued))
            return Response(generate_latest(self.metrics.registry),
                            media_type=CONTENT_TYPE_LATEST)

        @asynccontextmanager
        async def lifespan(_app: Starlette) -> AsyncIterator[None]:
            requeued = await asyncio.to_thread(self.intake.recover)
            if requeued:
                LOG.warning("requeued %d incident(s) left running by a stopped server", requeued)
            tasks = [asyncio.create_task(self.worker(i)) for i in range(self.settings.workers)]
            try:
                yield
            finally:
                self.stopping = True
                self.wake.set()
                await self.runner.stop_all()
                await asyncio.wait(tasks, timeout=25)
                self.intake.close()

        return Starlette(routes=[
            HttpRoute("/alerts/alertmanager", alertmanager, methods=["POST"]),
            HttpRoute("/alerts/generic", generic, methods=["POST"]),
            HttpRoute("/healthz", healthz, methods=["GET"]),
            HttpRoute("/metrics", metrics, methods=["GET"]),
        ], lifespan=lifespan)
