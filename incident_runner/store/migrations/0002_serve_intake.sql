-- 0002: serve's intake queue, shared by every `serve` instance on this database
-- (incident_runner/serve/pg_intake.py). Same columns as the SQLite intake
-- (incident_runner/serve/intake.py) plus which instance received an alert and
-- which instance runs (ran) an incident.
CREATE TABLE ir_serve_incidents (
    id           BIGSERIAL PRIMARY KEY,
    dedupe_key   TEXT NOT NULL,             -- groupKey, else fingerprint
    scenario     TEXT NOT NULL,
    severity     TEXT,
    host         TEXT,
    service      TEXT,
    alert_id     BIGINT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done')),
    created_at   DOUBLE PRECISION NOT NULL,
    claimed_at   DOUBLE PRECISION,
    finished_at  DOUBLE PRECISION,
    attempts     INTEGER NOT NULL DEFAULT 0,
    outcome      TEXT,                      -- the runner's status: resolved, escalated, ...
    exit_code    INTEGER,
    incident_id  TEXT,
    incident_dir TEXT,
    detail       TEXT NOT NULL DEFAULT '',
    -- the serve instance running it: its origin (host + state dir, where the
    -- incident folder is) and the advisory lock key its live session holds; a
    -- 'running' row whose key nobody holds belongs to a dead instance: requeued
    claimed_by   TEXT,
    claim_key    BIGINT
);
CREATE INDEX ir_serve_incidents_key ON ir_serve_incidents (dedupe_key, scenario, id);
CREATE INDEX ir_serve_incidents_state ON ir_serve_incidents (state, id);

CREATE TABLE ir_serve_alerts (
    id           BIGSERIAL PRIMARY KEY,
    received_at  TEXT NOT NULL,
    received_by  TEXT NOT NULL,             -- origin of the instance that answered 202
    source       TEXT NOT NULL,
    status       TEXT NOT NULL,
    group_key    TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    starts_at    TEXT NOT NULL,
    labels       TEXT NOT NULL,             -- JSON
    annotations  TEXT NOT NULL,             -- JSON
    scenario     TEXT,
    disposition  TEXT NOT NULL,             -- queued | deduplicated | resolved | no-scenario | bad-target
    reason       TEXT NOT NULL DEFAULT '',
    incident     BIGINT REFERENCES ir_serve_incidents (id),
    attached     INTEGER NOT NULL DEFAULT 0 -- 1: on the incident's timeline as alert_repeat
);
CREATE INDEX ir_serve_alerts_incident ON ir_serve_alerts (incident, attached);
-- repeats not yet on their incident's timeline (swept by the instance that ran it)
CREATE INDEX ir_serve_alerts_unattached ON ir_serve_alerts (incident)
    WHERE attached = 0 AND disposition IN ('deduplicated', 'resolved');
