-- 0003: incident ids are unique across every runner sharing this database. An id
-- is minted from the clock (INC-YYYYMMDD-HHMMSS[-n]); each runner's folder is
-- created exclusively in its own state dir, and the id is then claimed here: two
-- runners opening incidents in the same second get INC-...-HHMMSS and
-- INC-...-HHMMSS-2, never the same id.
CREATE TABLE ir_incident_ids (
    incident_id  TEXT PRIMARY KEY,
    origin       TEXT NOT NULL,             -- host:state dir of the runner that claimed it
    dir          TEXT NOT NULL,             -- its incident folder's name
    claimed_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
