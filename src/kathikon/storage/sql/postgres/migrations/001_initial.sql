-- Kathikon schema version 1 for PostgreSQL. {schema} is replaced by the quoted schema name at load time.
-- Released migrations are never edited; a change is a new file 002_….sql.

CREATE TABLE IF NOT EXISTS {schema}.kathikon_schema (
    version integer NOT NULL PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- state is plain text (no enum, no CHECK) so a new state such as 'suspended' needs no table rebuild.
CREATE TABLE IF NOT EXISTS {schema}.kathikon_jobs (
    id text PRIMARY KEY,
    queue text NOT NULL,
    worker text NOT NULL,
    args jsonb NOT NULL DEFAULT '{}',
    meta jsonb NOT NULL DEFAULT '{}',
    tags jsonb NOT NULL DEFAULT '[]',
    state text NOT NULL,
    priority integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    errors jsonb NOT NULL DEFAULT '[]',
    result jsonb NULL,
    unique_key text NULL,
    scheduled_at timestamptz NULL,
    available_at timestamptz NOT NULL,
    inserted_at timestamptz NOT NULL,
    started_at timestamptz NULL,
    completed_at timestamptz NULL,
    cancelled_at timestamptz NULL,
    attempted_by text NULL
);

-- claim: the next available jobs of one queue in claim order, without touching other states.
CREATE INDEX IF NOT EXISTS kathikon_jobs_claim_idx
    ON {schema}.kathikon_jobs (queue, priority DESC, available_at, id) WHERE state = 'available';
-- stage: scheduled and retryable jobs that came due.
CREATE INDEX IF NOT EXISTS kathikon_jobs_stage_idx
    ON {schema}.kathikon_jobs (available_at, id) WHERE state IN ('scheduled', 'retryable');
-- prune: terminal jobs by the time they finished.
CREATE INDEX IF NOT EXISTS kathikon_jobs_prune_completed_idx
    ON {schema}.kathikon_jobs (completed_at) WHERE state IN ('completed', 'discarded');
CREATE INDEX IF NOT EXISTS kathikon_jobs_prune_cancelled_idx
    ON {schema}.kathikon_jobs (cancelled_at) WHERE state = 'cancelled';
-- rescue and prune_nodes: the jobs each node is executing.
CREATE INDEX IF NOT EXISTS kathikon_jobs_executing_idx
    ON {schema}.kathikon_jobs (attempted_by) WHERE state = 'executing';
-- counts and all(queue=…, state=…).
CREATE INDEX IF NOT EXISTS kathikon_jobs_queue_state_idx
    ON {schema}.kathikon_jobs (queue, state);

CREATE TABLE IF NOT EXISTS {schema}.kathikon_nodes (
    name text PRIMARY KEY,
    started_at timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL,
    queues jsonb NOT NULL DEFAULT '{}',
    meta jsonb NOT NULL DEFAULT '{}'
);

CREATE TABLE IF NOT EXISTS {schema}.kathikon_leases (
    name text PRIMARY KEY,
    holder text NOT NULL,
    expires_at timestamptz NOT NULL
);

-- Room for persisted per-queue state (pause/resume, dynamic queues, rate-limit windows).
CREATE TABLE IF NOT EXISTS {schema}.kathikon_queues (
    name text PRIMARY KEY,
    state jsonb NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL DEFAULT now()
);
