-- Kathikon's SQLite schema, version 1. Released migrations are never edited; add 002_*.sql instead.
--
-- Times are fixed-width UTC ISO-8601 text ('YYYY-MM-DDTHH:MM:SS.ffffffZ'), so they compare and sort as text.
-- JSON columns hold text written by json.dumps. There is no CHECK on state: a new state must not need a
-- table rebuild. Every object is prefixed kathikon_, and Kathikon never touches anything else in the file.

CREATE TABLE kathikon_schema (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
);

CREATE TABLE kathikon_jobs (
    id           TEXT PRIMARY KEY NOT NULL,
    queue        TEXT NOT NULL,
    worker       TEXT NOT NULL,
    args         TEXT NOT NULL DEFAULT '{}',
    meta         TEXT NOT NULL DEFAULT '{}',
    tags         TEXT NOT NULL DEFAULT '[]',
    state        TEXT NOT NULL DEFAULT 'available',
    priority     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 20,
    attempts     INTEGER NOT NULL DEFAULT 0,
    errors       TEXT NOT NULL DEFAULT '[]',
    result       TEXT,
    unique_key   TEXT,
    scheduled_at TEXT,
    available_at TEXT NOT NULL,
    inserted_at  TEXT NOT NULL,
    started_at   TEXT,
    completed_at TEXT,
    cancelled_at TEXT,
    attempted_by TEXT
);

-- claim: the first rows of this index in order are the next jobs to run, so claim cost stays flat.
CREATE INDEX kathikon_jobs_claim_idx
    ON kathikon_jobs (queue, priority DESC, available_at, id) WHERE state = 'available';

-- stage: scheduled and retryable jobs by due time.
CREATE INDEX kathikon_jobs_stage_idx
    ON kathikon_jobs (available_at, id) WHERE state IN ('scheduled', 'retryable');

-- prune: finished jobs by finish time.
CREATE INDEX kathikon_jobs_prune_completed_idx
    ON kathikon_jobs (completed_at) WHERE state IN ('completed', 'discarded');
CREATE INDEX kathikon_jobs_prune_cancelled_idx
    ON kathikon_jobs (cancelled_at) WHERE state = 'cancelled';

-- rescue and prune_nodes: executing jobs by the node that claimed them.
CREATE INDEX kathikon_jobs_executing_idx
    ON kathikon_jobs (attempted_by) WHERE state = 'executing';

CREATE TABLE kathikon_nodes (
    name         TEXT PRIMARY KEY NOT NULL,
    started_at   TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL,
    queues       TEXT NOT NULL DEFAULT '{}',
    meta         TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE kathikon_leases (
    name       TEXT PRIMARY KEY NOT NULL,
    holder     TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

-- Persisted per-queue state (pause/resume and the like); room for later, nothing uses it yet.
CREATE TABLE kathikon_queues (
    name       TEXT PRIMARY KEY NOT NULL,
    state      TEXT NOT NULL DEFAULT '{}',
    updated_at TEXT NOT NULL
);
