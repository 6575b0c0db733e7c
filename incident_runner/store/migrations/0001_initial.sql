-- 0001: the shared incident index, its steps and the lock holders.
-- Same columns as the SQLite index (incident_runner/history.py) plus where the
-- incident's folder lives (origin) and the session that runs it.
CREATE TABLE ir_incidents (
    origin       TEXT NOT NULL,             -- runner host + state dir: folders are per runner
    dir          TEXT NOT NULL,             -- folder name under that state dir
    incident_id  TEXT NOT NULL,
    scenario     TEXT,
    title        TEXT,
    severity     TEXT,
    status       TEXT NOT NULL,
    drill        INTEGER NOT NULL DEFAULT 0,
    check_mode   INTEGER NOT NULL DEFAULT 0,
    start        TEXT,
    "end"        TEXT,
    start_epoch  DOUBLE PRECISION,
    end_epoch    DOUBLE PRECISION,
    duration_s   DOUBLE PRECISION,
    resolved_by  TEXT,
    escalated    INTEGER NOT NULL DEFAULT 0,
    reason       TEXT,
    target_key   TEXT,
    ci           TEXT NOT NULL DEFAULT '{}',
    source_mtime DOUBLE PRECISION NOT NULL DEFAULT 0,
    indexed_at   TEXT NOT NULL,
    -- the advisory lock key held by the running incident's session: a 'running'
    -- row whose key nobody holds any more belongs to a runner that died
    session_key  BIGINT,
    PRIMARY KEY (origin, dir)
);
CREATE INDEX ir_incidents_by_target ON ir_incidents (target_key, start_epoch);
CREATE INDEX ir_incidents_running ON ir_incidents (status) WHERE status = 'running';

CREATE TABLE ir_steps (
    origin       TEXT NOT NULL,
    incident_dir TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    phase        TEXT,
    name         TEXT,
    action       TEXT,
    status       TEXT,
    start        TEXT,
    "end"        TEXT,
    duration_s   DOUBLE PRECISION,
    changed      INTEGER NOT NULL DEFAULT 0,
    destructive  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (origin, incident_dir, seq),
    FOREIGN KEY (origin, incident_dir) REFERENCES ir_incidents (origin, dir) ON DELETE CASCADE
);

-- Who holds (or last held) a lock key: only for the message a waiter shows;
-- the lock itself is pg_advisory_lock on the key's hash.
CREATE TABLE ir_lock_holders (
    key          TEXT PRIMARY KEY,
    holder       TEXT NOT NULL,             -- JSON: incident_id, scenario, pid, host, since
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
